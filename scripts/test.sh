#!/usr/bin/env bash
# Set everything up, then run the default test suite (unit + integration; not slow/gpu/e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
.venv/bin/pytest "$@"
