#!/usr/bin/env bash
# Set everything up, then run the pipeline on the embedded defaults (bundled sample data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
.venv/bin/sftops run "$@"
