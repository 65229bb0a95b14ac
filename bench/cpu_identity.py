"""Data stages give the same bytes on any CPU: the bundled sample through ingest, clean,
validate, split and augment (augmentation on, embedding and fluency filters running) under
several CPU environments, each in a fresh folder with its own empty caches, side by side.

    python bench/cpu_identity.py                 # 4 environments, augment.max_rows=120
    python bench/cpu_identity.py --rows 40 --envs native-2t avx2-1t      # quicker
    python bench/cpu_identity.py --out bench/results/cpu_identity.txt

No second machine is at hand, so one is imitated: the native ISA (AVX-512 here) against a CPU
capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=
avx2 NPY_DISABLE_CPU_FEATURES=...``: oneDNN, MKL, ATen's own vectorised kernels such as
softmax, and numpy's dispatched loops), each with 2 threads and
with 1 (``OMP_NUM_THREADS``, which sets ``torch.get_num_threads()``). A probe per environment
shows the setting took effect: torch's CPU capability and thread count, a fingerprint of a few
fp32 kernels' output bits (it differs between ISAs, so the models' raw numbers do too) and a
matmul's GFLOP/s. Every stage runs as DVC runs it, through its CLI (``sftops <stage> --set
...``) in a copy of params.yaml and data/sample; only the built-in models' converted weights
(``.cache/sftops/base_models``) are shared, never an embedding, score or translation cache.

Prints one row per output file: its sha256 (first 16 hex digits) per environment and whether
they are identical. Reports that hold wall-clock seconds (``seconds``) are compared with those
removed, and say so. Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sftops.reporting import cpu_model

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["ingest", "clean", "validate", "split", "augment"]
AVX2 = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's own dispatch
}
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "native-2t": {"OMP_NUM_THREADS": "2"},
    "native-1t": {"OMP_NUM_THREADS": "1"},
    "avx2-2t": {**AVX2, "OMP_NUM_THREADS": "2"},
    "avx2-1t": {**AVX2, "OMP_NUM_THREADS": "1"},
}
# Set by the user's shell they would leak into every environment alike; removed so each
# environment is exactly what its row says (and SFTOPS_CACHE_DIR so that no environment reads
# another's embedding, score or translation cache).
CPU_VARIABLES = [
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MKL_CBWR",
    "MKL_DEBUG_CPU_TYPE",
    "SFTOPS_CACHE_DIR",
    *AVX2,
]
OUTPUT_DIRS = ["data/interim", "data/splits", "data/quarantine", "reports"]
TIMING_KEYS = {"seconds"}

PROBE = r"""
import hashlib, json, time, torch
torch.manual_seed(0)
x = torch.randn(96, 384)
lin = torch.nn.Linear(384, 1536)
with torch.inference_mode():
    y = lin(x)
    parts = [y, torch.softmax(y, -1), torch.nn.functional.gelu(y),
             torch.nn.functional.layer_norm(y, (1536,)), torch.log_softmax(y, -1)]
bits = hashlib.sha256(b"".join(p.numpy().tobytes() for p in parts)).hexdigest()[:12]
a = torch.randn(512, 512)
a @ a
started, n = time.perf_counter(), 40
for _ in range(n):
    a @ a
gflops = 2 * 512**3 * n / (time.perf_counter() - started) / 1e9
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(),
                  "threads": torch.get_num_threads(), "kernel_bits": bits,
                  "gflops": round(gflops, 1)}))
"""


def environment(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CPU_VARIABLES}
    env.update(overrides)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, whatever the venv's install points at
    env["HF_HUB_OFFLINE"] = "1"
    return env


def probe(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(folder: Path) -> None:
    """params.yaml and data/sample copied; the converted base models linked (weights only)."""
    folder.mkdir(parents=True)
    shutil.copy2(ROOT / "params.yaml", folder / "params.yaml")
    shutil.copytree(ROOT / "data" / "sample", folder / "data" / "sample")
    models = ROOT / ".cache" / "sftops" / "base_models"
    if models.is_dir():
        (folder / ".cache" / "sftops").mkdir(parents=True)
        (folder / ".cache" / "sftops" / "base_models").symlink_to(models.resolve())


def run_stages(folder: Path, env: dict[str, str], sets: list[str]) -> dict[str, float]:
    seconds = {}
    args = [a for s in sets for a in ("--set", s)]
    for stage in STAGES:
        started = time.perf_counter()
        done = subprocess.run(
            ["sftops", stage, *args], cwd=folder, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"{stage} failed in {folder}:\n{done.stdout}\n{done.stderr}")
        (folder / "logs").mkdir(exist_ok=True)
        (folder / "logs" / f"{stage}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        seconds[stage] = round(time.perf_counter() - started, 1)
    return seconds


def without_timings(value: Any) -> tuple[Any, bool]:
    """``value`` with every ``seconds`` entry removed, and whether there was one."""
    if isinstance(value, dict):
        out, found = {}, False
        for key, item in value.items():
            if key in TIMING_KEYS:
                found = True
                continue
            out[key], inner = without_timings(item)
            found |= inner
        return out, found
    if isinstance(value, list):
        items = [without_timings(v) for v in value]
        return [v for v, _ in items], any(f for _, f in items)
    return value, False


def digest(path: Path) -> tuple[str, bool]:
    """sha256 of the file (of its JSON without timings for a report holding them)."""
    data = path.read_bytes()
    if path.suffix == ".json":
        value, timed = without_timings(json.loads(data))
        if timed:
            data = json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
            return hashlib.sha256(data).hexdigest(), True
    return hashlib.sha256(data).hexdigest(), False


def outputs(folder: Path) -> dict[str, tuple[str, bool]]:
    found = {}
    for name in OUTPUT_DIRS:
        for path in sorted((folder / name).rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                found[str(path.relative_to(folder))] = digest(path)
    return found


def table(names: list[str], hashes: dict[str, dict[str, tuple[str, bool]]]) -> tuple[str, int]:
    files = sorted({f for h in hashes.values() for f in h})
    header = ["output", *names, "identical"]
    rows, differing = [], 0
    for name in files:
        found = [hashes[env].get(name) for env in names]
        same = None not in found and len({h for h, _ in found}) == 1  # type: ignore[misc]
        differing += not same
        label = name + (" (seconds removed)" if any(f and f[1] for f in found) else "")
        digests = [f[0][:16] if f else "missing" for f in found]
        rows.append([label, *digests, "yes" if same else "NO"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    return "\n".join(lines), differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=120, help="augment.max_rows")
    parser.add_argument("--no-fluency", action="store_true", help="skip the SmolLM2 filter")
    parser.add_argument("--envs", nargs="+", default=list(ENVIRONMENTS), choices=ENVIRONMENTS)
    parser.add_argument("--keep", type=Path, help="keep the environments' folders here")
    parser.add_argument("--out", type=Path, help="also write the printed result here")
    args = parser.parse_args()

    sets = ["augment.enabled=true", f"augment.max_rows={args.rows}"]
    if args.no_fluency:
        sets.append("augment.filter.fluency_model=null")
    base = args.keep or Path(tempfile.mkdtemp(prefix="sftops-cpu-identity-"))
    width = max(len(variables(ENVIRONMENTS[name])) for name in args.envs)
    lines = [
        f"data stages on data/sample, `sftops <stage> --set {' --set '.join(sets)}`",
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.1f}",
        "",
        f"{'environment':<12} {'variables':<{width}} capability  threads  kernel bits   "
        "GFLOP/s  stage seconds",
    ]
    print("\n".join(lines), flush=True)
    hashes: dict[str, dict[str, tuple[str, bool]]] = {}
    kernel_bits = set()
    added: dict[str, int] = {}
    raw: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        for name in args.envs:
            env = environment(ENVIRONMENTS[name])
            seen = probe(env)
            kernel_bits.add(seen["kernel_bits"])
            folder = base / name
            prepare(folder)
            seconds = run_stages(folder, env, sets)
            hashes[name] = outputs(folder)
            raw[name] = model_numbers(folder)
            report = json.loads((folder / "reports" / "augment_report.json").read_text())
            added[name] = report["rows_added"]
            line = (
                f"{name:<12} {variables(ENVIRONMENTS[name]):<{width}} {seen['capability']:<11} "
                f"{seen['threads']:<8} "
                f"{seen['kernel_bits']:<13} {seen['gflops']:<8} {json.dumps(seconds)}"
            )
            rechecked = [
                " ".join(entry.split())
                for entry in (folder / "logs" / "augment.log").read_text().splitlines()
                if "re-checked in fp64" in entry or "quality filter:" in entry
            ]
            line += "".join(f"\n{'':<13}augment log: {entry}" for entry in rechecked)
            print(line, flush=True)
            lines.append(line)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    result, differing = table(args.envs, hashes)
    result += "\n\n" + raw_differences(args.envs, raw)
    verdict = (
        f"{len(kernel_bits)} distinct fp32 kernel fingerprints across the environments "
        "(more than 1: the ISA setting changed the kernels' output bits)\n"
        + f"augment added rows per environment: {added}\n"
        + (
            "IDENTICAL: every output file has the same sha256 in every environment"
            if not differing
            else f"DIFFERENT: {differing} output file(s) differ between environments"
        )
    )
    print("\n" + result + "\n\n" + verdict)
    lines += ["", result, "", verdict]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if differing else 0


def model_numbers(folder: Path) -> dict[str, dict[str, Any]]:
    """The models' raw fp32 outputs the run computed (its embedding and NLL caches)."""
    import numpy as np

    found = {}
    for name in ("embeddings", "fluency"):
        path = folder / ".cache" / "sftops" / f"{name}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                found[name] = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    return found


def raw_differences(names: list[str], raw: dict[str, dict[str, dict[str, Any]]]) -> str:
    """How far each environment's raw model numbers are from the first one's: the outputs
    above are identical although these differ (or because they do not)."""
    import numpy as np

    lines = [f"raw fp32 model outputs vs {names[0]} (same texts):"]
    for name in names[1:]:
        for kind, vectors in raw[names[0]].items():
            other = raw[name].get(kind, {})
            keys = sorted(set(vectors) & set(other))
            if not keys:
                continue
            same = sum(vectors[k].tobytes() == other[k].tobytes() for k in keys)
            most = max(float(np.abs(vectors[k].astype(np.float64) - other[k]).max()) for k in keys)
            lines.append(
                f"  {name:<10} {kind:<10} {len(keys):>4} texts, {same:>4} bit-identical, "
                f"largest difference {most:.3g}"
            )
    return "\n".join(lines)


def variables(overrides: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items())


if __name__ == "__main__":
    sys.exit(main())
