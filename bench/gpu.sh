#!/usr/bin/env bash
# Every GPU measurement of issue 16.5 in one run (about 8 minutes on one GPU), one results file.
#
#   bash bench/gpu.sh                      # on a CUDA machine -> bench/results/gpu.json (+ gpu.md)
#   bash bench/gpu.sh --smoke              # any CPU, tiny sizes: the same code paths, seconds
#   bash bench/gpu.sh --out FILE.json
#
# Steps (each under its own time limit, so one stuck step cannot eat the budget):
#   1. train tokens/s and MFU, sftops vs the HF Trainer with its defaults (bf16), GPT-2 124M
#   2. the same for a 0.5B Qwen2-shaped model (both random init from a config: no downloads)
#   3. generate: batched vs one prompt at a time, greedy, exact-match rate
#   4. the demo (`sftops run`, the pipeline on the bundled sample) in a scratch copy of the repo
# The environment must already hold a CUDA build of torch (`pip install torch==2.13.0` from the
# CUDA index, then the rest as scripts/setup.sh does); --smoke runs on the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=0
OUT=bench/results/gpu.json
while (($#)); do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: bash bench/gpu.sh [--smoke] [--out FILE.json]" >&2; exit 2 ;;
  esac
  shift
done
[ -f scripts/env.sh ] && source scripts/env.sh
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python}

if ((SMOKE == 0)) && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "bench/gpu.sh: no CUDA device visible to torch (use --smoke for a CPU check of the paths)" >&2
  exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sftops-gpu-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$(dirname "$OUT")"
STATUS="$WORK/status.txt"
: > "$STATUS"
started=$(date +%s)

step() {  # step NAME LIMIT_S CMD...: run with a time limit, record status and seconds
  local name=$1 limit=$2
  shift 2
  local t0 rc
  t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  set +e
  timeout "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  echo "$name $rc $(($(date +%s) - t0))" >> "$STATUS"
}

if ((SMOKE)); then
  MODELS=(tiny-llama tiny-llama)
  TRAIN_ARGS=(--smoke)
  GEN_MODEL=$("$PY" -c "from tests.assets.tiny_models import tiny_llama; print(tiny_llama('$WORK/tiny'))")
  GEN_ARGS=(--model "$GEN_MODEL" --prompts 4 --batch-size 4 --max-new-tokens 8)
  LIMITS=(600 600 600 900)  # generous: CI and shared machines are slow
else
  MODELS=(gpt2-124m qwen2-0.5b)
  TRAIN_ARGS=()
  GEN_ARGS=()
  LIMITS=(90 150 90 180)
fi

step train_gpt2 "${LIMITS[0]}" "$PY" bench/train_bench.py --reference trainer \
  --model "${MODELS[0]}" "${TRAIN_ARGS[@]}" --results "$WORK/train_gpt2.json"
step train_qwen "${LIMITS[1]}" "$PY" bench/train_bench.py --reference trainer \
  --model "${MODELS[1]}" "${TRAIN_ARGS[@]}" --results "$WORK/train_qwen.json"
step generate "${LIMITS[2]}" "$PY" bench/gpu_generate.py "${GEN_ARGS[@]}" --out "$WORK/generate.json"

# The demo runs in a scratch copy (its own git + DVC state), so this checkout is untouched.
DEMO="$WORK/demo"
mkdir -p "$DEMO"
git ls-files -co --exclude-standard -z | (cd "$ROOT" && xargs -0 cp --parents -t "$DEMO" 2>/dev/null || true)
(cd "$DEMO" && git init -q && git -c user.name=bench -c user.email=bench@localhost add -A >/dev/null \
  && git -c user.name=bench -c user.email=bench@localhost commit -qm demo)
if ((SMOKE)); then
  DEMO_CMD=(sftops run --no-prefect --set "train.base_model=$GEN_MODEL" --set train.max_steps=2
    --set train.eval_every=1 --set train.max_eval_rows=4 --set augment.enabled=false
    --set evaluate.max_rows=4 --set evaluate.generation.max_new_tokens=8
    --set evaluate.bootstrap_resamples=10 --set evaluate.human_eval_rows=0)
else
  DEMO_CMD=(sftops run)
fi
touch "$WORK/demo.start"
step demo "${LIMITS[3]}" bash -c 'cd "$1" && shift && PYTHONPATH="$PWD" "$@"' _ "$DEMO" "${DEMO_CMD[@]}"
# `sftops run` works in a per-run workspace that it removes; its metrics are in the DVC
# experiment it saved (the newest one of the copy).
(cd "$DEMO" && "$PY" -m dvc exp show --json) | "$PY" -c '
import json, sys
exps = [e["revs"][0] for b in json.load(sys.stdin) for e in b.get("experiments") or []]
if exps:
    newest = max(exps, key=lambda r: r["data"]["timestamp"] or "")
    metrics = newest["data"]["metrics"].get("reports/metrics.json", {}).get("data")
    if metrics:
        json.dump(metrics, open(sys.argv[1], "w"))
' "$WORK/demo_metrics.json" || true

"$PY" bench/gpu_report.py --work "$WORK" --out "$OUT" --smoke "$SMOKE" \
  --seconds $(($(date +%s) - started))
