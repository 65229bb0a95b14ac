"""Collect the steps of bench/gpu.sh into one results file (JSON + a markdown table beside it).

Exit status: 1 when a step failed, or (not --smoke) when a target of issue 16.5 is missed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TARGETS = {
    "train_gpt2": {"speedup": 10.0, "mfu": 0.30},
    "train_qwen": {"speedup": 8.0, "mfu": 0.45},
    "generate": {"ratio": 20.0},
}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(work: Path, smoke: bool, seconds: int) -> dict[str, Any]:
    steps = {}
    for line in (work / "status.txt").read_text().splitlines():
        name, rc, took = line.split()
        steps[name] = {"exit": int(rc), "seconds": int(took)}
    results: dict[str, Any] = {"smoke": smoke, "total_seconds": seconds, "steps": steps}
    for name in ("train_gpt2", "train_qwen", "generate"):
        results[name] = _load(work / f"{name}.json")
    results["demo"] = {
        "seconds": steps.get("demo", {}).get("seconds"),
        "metrics": _load(work / "demo_metrics.json"),
    }
    checks: list[dict[str, Any]] = []
    for name, targets in TARGETS.items():
        data = results.get(name) or {}
        for key, want in targets.items():
            got = (data.get("sftops") or {}).get("mfu") if key == "mfu" else data.get(key)
            checks.append(
                {
                    "step": name,
                    "metric": key,
                    "target": want,
                    "value": got,
                    "pass": got is not None and got >= want,
                }
            )
    results["checks"] = checks
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# bench/gpu.sh results{' (smoke: CPU, tiny sizes)' if results['smoke'] else ''}",
        "",
        f"Total {results['total_seconds']} s.",
        "",
        "| step | exit | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {s['exit']} | {s['seconds']} |" for n, s in results["steps"].items()]
    lines += ["", "| step | metric | value | target | pass |", "|---|---|---|---|---|"]
    for c in results["checks"]:
        value = "n/a" if c["value"] is None else f"{c['value']:.3g}"
        lines.append(f"| {c['step']} | {c['metric']} | {value} | {c['target']} | {c['pass']} |")
    for name in ("train_gpt2", "train_qwen"):
        data = results.get(name)
        if data:
            lines.append("")
            lines.append(f"{name}: {data['model']} on {data['device']}")
            for side in ("trainer", "sftops"):
                r = data[side]
                lines.append(
                    f"- {side}: {r['tokens_per_s']:.0f} non-pad tok/s, MFU {r['mfu']:.1%}, "
                    f"peak {r['peak_memory_gib']:.2f} GiB"
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", type=int, default=0)
    parser.add_argument("--seconds", type=int, default=0)
    args = parser.parse_args()
    results = collect(Path(args.work), bool(args.smoke), args.seconds)
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    failed = [n for n, s in results["steps"].items() if s["exit"] != 0]
    if failed:
        print(f"bench/gpu.sh: failed steps: {', '.join(failed)} (logs above)")
        return 1
    if not args.smoke and not all(c["pass"] for c in results["checks"]):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
