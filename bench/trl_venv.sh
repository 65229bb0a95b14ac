#!/usr/bin/env bash
# The reference side of bench/train_bench.py: TRL in its own venv (default .venv-trl), so its
# pins never touch the project's env and the bench measures each side in its own process.
# Same torch CPU wheel and the same transformers / datasets / accelerate pins as constraints.txt.
# Idempotent: a second run with an unchanged pin set returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-trl}
TRL_VERSION=1.16.0
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
pins=$(grep -E '^(torch|transformers|tokenizers|datasets|accelerate|safetensors|huggingface_hub|numpy)==' constraints.txt | sed 's/+cpu//')
want=$(printf '%s\ntrl==%s\n' "$pins" "$TRL_VERSION" | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.trl-hash" ] && [ "$(cat "$VENV/.trl-hash")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$pins" > "$tmp"
"$VENV/bin/pip" install -q -c "$tmp" torch
"$VENV/bin/pip" install -q -c "$tmp" "trl==$TRL_VERSION" transformers datasets accelerate psutil
echo "$want" > "$VENV/.trl-hash"
echo "trl venv ready: $VENV ($("$VENV/bin/python" -c 'import trl, torch, transformers; print("trl", trl.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'))"
