#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv with neurovamp and its test tools.
# The CPU build of torch is pinned so that pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
