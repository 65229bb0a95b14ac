"""Serving under load: N concurrent clients against `sftops serve`, one request at a time vs
dynamic batching, side by side in one run.

    python bench/serve_bench.py --model tiny --seconds 60
    nice -n 10 python bench/serve_bench.py --model smollm2-135m-instruct --seconds 60

For each engine (``--engines single batched``: ``sftops serve --max-batch 1`` and
``--max-batch N``) the bench starts ``sftops serve --model <folder> --host 127.0.0.1`` on a
free port as a subprocess, checks greedy answers, then runs ``--clients`` concurrent clients
(httpx, asyncio) for ``--seconds``: each loops over short prompts, half streamed
(``stream_options.include_usage``) and half not, greedy, ``max_tokens`` drawn from
``--max-tokens``. A client starts no request after the deadline; requests in flight finish.
Only 127.0.0.1 is contacted.

Reports per engine: requests completed, errors, p50/p95/p99 latency, time to first token of
streams (first content chunk), completion tokens/s over the whole run; then the ratios
batched / single. Greedy check: ``--check-prompts`` prompts sent to each server all at once
(so the batched server batches them); the answers of the two engines must be identical.
Writes ``bench/results/serve_bench_<model>.json``; exits 1 when any request errored or the
greedy answers differ.

``--model tiny`` builds the random tiny Llama of ``tests/assets/tiny_models.py`` in a temp
folder (fast; measures the server's overhead more than the model); a built-in name such as
``smollm2-135m-instruct`` or a model folder measures a real model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
PROMPTS = [
    "What is the capital of France?",
    "Say hello in Spanish.",
    "Give me one word that rhymes with cat.",
    "What is 2 + 2?",
    "Name a primary colour.",
    "Translate 'good morning' into German.",
    "Summarise: the cat sat on the mat.",
    "What day comes after Monday?",
    "请用一个词形容大海。",
    "Is water wet? Answer briefly.",
    "Write a haiku about rain.",
    "What is the opposite of hot?",
]


@dataclass
class Sample:
    stream: bool
    ok: bool
    latency: float
    ttft: float | None = None
    completion_tokens: int = 0
    error: str | None = None


@dataclass
class EngineResult:
    engine: str
    max_batch: int
    clients: int
    seconds: float
    requests: int = 0
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    streamed: int = 0
    elapsed_s: float = 0.0
    requests_per_s: float = 0.0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0
    latency_s: dict[str, float] = field(default_factory=dict)
    latency_stream_s: dict[str, float] = field(default_factory=dict)
    latency_plain_s: dict[str, float] = field(default_factory=dict)
    ttft_s: dict[str, float] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    greedy_answers: list[str] = field(default_factory=list)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max (nearest rank) of ``values``; empty -> {}.

    >>> percentiles([float(i) for i in range(1, 101)])
    {'p50': 50.0, 'p95': 95.0, 'p99': 99.0, 'max': 100.0, 'mean': 50.5}
    """
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def sftops_command() -> list[str]:
    exe = shutil.which("sftops")
    return [exe] if exe else [sys.executable, "-m", "sftops"]


class Server:
    """`sftops serve` in a subprocess (its own process group), log to a file."""

    def __init__(
        self,
        model: str,
        max_batch: int,
        workdir: Path,
        timeout: float,
        omp_wait_policy: str | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / f"serve-{max_batch}.log"
        command = [
            *sftops_command(),
            "serve",
            "--model",
            model,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--poll-seconds",
            "0",
            "--max-batch",
            str(max_batch),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        if omp_wait_policy:  # else `sftops serve` picks its own default (PASSIVE)
            env["OMP_WAIT_POLICY"] = omp_wait_policy
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"sftops serve exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"sftops serve not healthy after {timeout:.0f} s")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


async def one_request(http: httpx.AsyncClient, body: dict[str, Any], timeout: float) -> Sample:
    started = time.perf_counter()
    stream = bool(body.get("stream"))
    try:
        if not stream:
            response = await http.post("/v1/chat/completions", json=body, timeout=timeout)
            latency = time.perf_counter() - started
            if response.status_code != 200:
                return Sample(
                    False, False, latency, error=f"{response.status_code}: {response.text[:200]}"
                )
            usage = response.json()["usage"]
            return Sample(False, True, latency, completion_tokens=int(usage["completion_tokens"]))
        ttft: float | None = None
        tokens = 0
        done = False
        async with http.stream(
            "POST", "/v1/chat/completions", json=body, timeout=timeout
        ) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                return Sample(
                    True,
                    False,
                    time.perf_counter() - started,
                    error=f"{response.status_code}: {text[:200]}",
                )
            async for line in response.aiter_lines():
                if not line:
                    continue
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    return Sample(
                        True, False, time.perf_counter() - started, error=str(chunk["error"])[:200]
                    )
                if chunk.get("usage"):
                    tokens = int(chunk["usage"]["completion_tokens"])
                choices = chunk.get("choices") or []
                if ttft is None and choices and choices[0]["delta"].get("content"):
                    ttft = time.perf_counter() - started
        latency = time.perf_counter() - started
        if not done:
            return Sample(True, False, latency, error="stream ended without [DONE]")
        return Sample(
            True,
            True,
            latency,
            ttft=ttft if ttft is not None else latency,
            completion_tokens=tokens,
        )
    except (httpx.HTTPError, json.JSONDecodeError, KeyError) as exc:
        return Sample(
            stream, False, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"
        )


def request_body(rng: random.Random, low: int, high: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "bench",
        "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
        "max_tokens": rng.randint(low, high),
        "temperature": 0,
    }
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


async def load(url: str, args: argparse.Namespace) -> tuple[list[Sample], float]:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    low, high = args.max_tokens
    deadline = time.perf_counter() + args.seconds
    samples: list[Sample] = []

    async def client(index: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(args.seed * 1000 + index)
        for turn in range(args.max_requests_per_client):  # bounded: never loops forever
            if time.perf_counter() >= deadline:
                return
            stream = (index + turn) % 2 == 0  # half streamed, half not
            samples.append(
                await one_request(http, request_body(rng, low, high, stream), args.request_timeout)
            )

    async with httpx.AsyncClient(base_url=url, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(args.clients)))
        return samples, time.perf_counter() - started


async def greedy_answers(url: str, count: int, max_tokens: int) -> list[str]:
    """The same ``count`` greedy requests, all at once; their answers in order."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        bodies = [
            {
                "messages": [
                    {
                        "role": "user",
                        "content": PROMPTS[i % len(PROMPTS)] + " " * (i // len(PROMPTS)),
                    }
                ],
                "max_tokens": max_tokens - i % 3,
                "temperature": 0,
            }
            for i in range(count)
        ]
        responses = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=b) for b in bodies)
        )
    answers = []
    for response in responses:
        response.raise_for_status()
        answers.append(response.json()["choices"][0]["message"]["content"])
    return answers


def run_engine(
    name: str, max_batch: int, model: str, args: argparse.Namespace, workdir: Path
) -> EngineResult:
    print(f"[{name}] starting sftops serve --max-batch {max_batch} ...", flush=True)
    server = Server(model, max_batch, workdir, args.start_timeout, args.omp_wait_policy)
    result = EngineResult(name, max_batch, args.clients, args.seconds)
    try:
        result.greedy_answers = asyncio.run(
            greedy_answers(server.url, args.check_prompts, args.max_tokens[1])
        )
        print(f"[{name}] {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
        samples, elapsed = asyncio.run(load(server.url, args))
        result.health = httpx.get(server.url + "/health", timeout=10).json()
    finally:
        server.stop()
    good = [s for s in samples if s.ok]
    result.requests = len(samples)
    result.errors = len(samples) - len(good)
    result.error_examples = sorted({s.error or "" for s in samples if not s.ok})[:5]
    result.streamed = sum(s.stream for s in samples)
    result.elapsed_s = elapsed
    result.requests_per_s = len(good) / elapsed
    result.completion_tokens = sum(s.completion_tokens for s in good)
    result.tokens_per_s = result.completion_tokens / elapsed
    result.latency_s = percentiles([s.latency for s in good])
    result.latency_stream_s = percentiles([s.latency for s in good if s.stream])
    result.latency_plain_s = percentiles([s.latency for s in good if not s.stream])
    result.ttft_s = percentiles([s.ttft for s in good if s.ttft is not None])
    return result


def show(result: EngineResult) -> None:
    lat, ttft = result.latency_s, result.ttft_s
    print(
        f"  {result.engine:8s} max_batch {result.max_batch:3d}: {result.requests} requests "
        f"({result.streamed} streamed), {result.errors} errors, {result.requests_per_s:.2f} req/s, "
        f"{result.tokens_per_s:.1f} completion tok/s\n"
        f"           latency p50 {lat.get('p50', 0):.3f} s  p95 {lat.get('p95', 0):.3f} s  "
        f"p99 {lat.get('p99', 0):.3f} s  max {lat.get('max', 0):.3f} s; "
        f"TTFT p50 {ttft.get('p50', 0):.3f} s  p95 {ttft.get('p95', 0):.3f} s"
    )
    if result.health.get("batches"):
        print(
            f"           {result.health['batched_requests']} requests in "
            f"{result.health['batches']} batches "
            f"({result.health['batched_requests'] / result.health['batches']:.1f} per batch)"
        )
    for example in result.error_examples:
        print(f"           error: {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, a built-in name or a folder")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--engines", nargs="+", choices=["single", "batched"], default=["single", "batched"]
    )
    parser.add_argument("--max-batch", type=int, default=32, help="batched engine's --max-batch")
    parser.add_argument("--max-tokens", type=int, nargs=2, default=[8, 24], metavar=("LOW", "HIGH"))
    parser.add_argument("--check-prompts", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--max-requests-per-client", type=int, default=100_000)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument(
        "--omp-wait-policy",
        choices=["PASSIVE", "ACTIVE"],
        help="OMP_WAIT_POLICY for the servers (default: what `sftops serve` sets, PASSIVE)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        workdir = Path(tmp)
        model = args.model
        if model == "tiny":
            from tests.assets.tiny_models import tiny_llama

            model = str(tiny_llama(workdir))
        batches = {"single": 1, "batched": args.max_batch}
        results = [run_engine(name, batches[name], model, args, workdir) for name in args.engines]

    print(
        f"serve bench: {args.model}, {args.clients} clients x {args.seconds:.0f} s, half streamed, "
        f"greedy, max_tokens {args.max_tokens[0]}-{args.max_tokens[1]} "
        f"(machine: {os.cpu_count()} cpus)"
    )
    for result in results:
        show(result)
    summary: dict[str, Any] = {
        "model": args.model,
        "clients": args.clients,
        "seconds": args.seconds,
        "max_tokens": args.max_tokens,
        "omp_wait_policy": args.omp_wait_policy or "PASSIVE (sftops serve default)",
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "engines": [asdict(r) for r in results],
    }
    failed = [f"{r.engine}: {r.errors} errors" for r in results if r.errors or not r.requests]
    by_name = {r.engine: r for r in results}
    if "single" in by_name and "batched" in by_name:
        single, batched = by_name["single"], by_name["batched"]
        same = sum(
            a == b for a, b in zip(single.greedy_answers, batched.greedy_answers, strict=True)
        )
        ratios = {
            "tokens_per_s": batched.tokens_per_s / max(single.tokens_per_s, 1e-9),
            "requests_per_s": batched.requests_per_s / max(single.requests_per_s, 1e-9),
            "p50_latency": batched.latency_s["p50"] / single.latency_s["p50"],
            "p95_latency": batched.latency_s["p95"] / single.latency_s["p95"],
            "p50_ttft": batched.ttft_s["p50"] / single.ttft_s["p50"],
        }
        summary.update(
            ratios_batched_over_single=ratios,
            greedy_identical=same,
            greedy_checked=args.check_prompts,
        )
        print(
            f"  batched / single: tokens/s {ratios['tokens_per_s']:.2f}x, requests/s "
            f"{ratios['requests_per_s']:.2f}x, p50 latency {ratios['p50_latency']:.2f}x, "
            f"p95 latency {ratios['p95_latency']:.2f}x, p50 TTFT {ratios['p50_ttft']:.2f}x"
        )
        print(f"  greedy answers identical (sent concurrently): {same}/{args.check_prompts}")
        if same != args.check_prompts:
            failed.append(f"greedy answers differ ({same}/{args.check_prompts} identical)")
    name = Path(args.model).name.replace(" ", "_") or "model"
    out = ROOT / "bench" / "results" / f"serve_bench_{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    print(f"  results: {out.relative_to(ROOT)}")
    if failed:
        print("FAIL: " + "; ".join(failed))
        sys.exit(1)
    print("PASS: no request errored")


if __name__ == "__main__":
    main()
