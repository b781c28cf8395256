#!/usr/bin/env bash
# Create (or repair) the virtual environment .venv with neurovamp, its test tools and the CPU
# build of torch==2.13.0, then register the Jupyter kernel "neurovamp" (your other kernels,
# including your default "python3", are left alone).
#
#   bash scripts/setup.sh                      # uses python3 (must be Python >= 3.11)
#   PYTHON=python3.12 bash scripts/setup.sh    # use another interpreter
#   bash scripts/setup.sh --kernel-only        # only (re-)register the "neurovamp" kernel
#
# Environment:
#   PYTHON           interpreter to build .venv with (default: python3); checked first
#   VENV             where the environment goes (default: .venv in the repository)
#   TORCH_INDEX_URL  where the CPU build of torch comes from (default: PyTorch's CPU wheel
#                    index); when it cannot be reached within a few seconds, torch comes
#                    from pip's usual package index instead. Empty: always pip's usual index.
#
# A .venv made with a Python older than 3.11 (or another one than an explicit PYTHON=) is
# removed and made again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_WANTED=${PYTHON:-}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_PIN="torch==2.13.0"
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
KERNEL_NAME=neurovamp
KERNEL_DISPLAY="Python 3 (neurovamp)"

die() { echo "setup.sh: $*" >&2; exit 1; }

# "3.11.7" for a working interpreter, nothing otherwise.
version_of() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true; }

new_enough() {  # new_enough 3.11.7 -> status 0 when >= 3.11
    local major minor
    IFS=. read -r major minor _ <<<"$1"
    [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
    (( major > 3 || (major == 3 && minor >= 11) ))
}

register_kernel() {
    # --user --name neurovamp: its own folder in the user's Jupyter data dir; no other kernel changes.
    "$VENV/bin/python" -m ipykernel install --user --name "$KERNEL_NAME" --display-name "$KERNEL_DISPLAY" >/dev/null \
        || die "could not register the Jupyter kernel '$KERNEL_NAME' (is ipykernel installed in $VENV?)"
}

if [ "${1:-}" = "--kernel-only" ]; then
    [ -x "$VENV/bin/python" ] || die "$VENV/bin/python not found: run bash scripts/setup.sh first"
    register_kernel
    echo "setup.sh: Jupyter kernel '$KERNEL_NAME' -> $VENV/bin/python"
    exit 0
elif [ $# -gt 0 ]; then
    die "unknown argument '$1' (usage: [PYTHON=python3.11] bash scripts/setup.sh [--kernel-only])"
fi

# 1. The Python version, before anything is installed.
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install Python >= 3.11 or point PYTHON= at one (e.g. PYTHON=python3.11 bash scripts/setup.sh)"
PY_VERSION=$(version_of "$PYTHON")
new_enough "$PY_VERSION" || die "neurovamp needs Python >= 3.11, but $PYTHON is Python ${PY_VERSION:-(not runnable)}; rerun with PYTHON=python3.11 (or newer): PYTHON=python3.11 bash scripts/setup.sh"

# 2. The environment: reuse it only when it runs a new-enough Python (the one asked for, if any).
if [ -e "$VENV" ]; then
    VENV_VERSION=$(version_of "$VENV/bin/python")
    if ! new_enough "$VENV_VERSION" \
        || { [ -n "$PYTHON_WANTED" ] && [ "${VENV_VERSION%.*}" != "${PY_VERSION%.*}" ]; }; then
        echo "setup.sh: $VENV runs Python ${VENV_VERSION:-(broken)}; making it again with $PYTHON (Python $PY_VERSION)"
        rm -rf "$VENV"
    fi
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV" \
        || die "'$PYTHON -m venv' failed (on Debian/Ubuntu: apt install python${PY_VERSION%.*}-venv)"
fi
PIP=("$VENV/bin/python" -m pip --quiet)
"${PIP[@]}" install --upgrade pip

# 3. torch: the CPU build, from PyTorch's CPU index when it answers within a few seconds.
if [ "$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)" = "2.13.0" ]; then
    :  # already there
elif [ -n "$TORCH_INDEX_URL" ] && "$VENV/bin/python" - "$TORCH_INDEX_URL" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=4).close()
except Exception:
    sys.exit(1)
EOF
then
    "${PIP[@]}" install --timeout 30 --index-url "$TORCH_INDEX_URL" "$TORCH_PIN" \
        || { echo "setup.sh: $TORCH_INDEX_URL failed; installing $TORCH_PIN from pip's usual index"; \
             "${PIP[@]}" install "$TORCH_PIN"; }
else
    [ -z "$TORCH_INDEX_URL" ] || echo "setup.sh: $TORCH_INDEX_URL cannot be reached; installing $TORCH_PIN from pip's usual index"
    "${PIP[@]}" install "$TORCH_PIN"
fi

# 4. neurovamp itself (editable) with its test and notebook tools, then the Jupyter kernel.
"${PIP[@]}" --quiet install -e ".[test]"  # -qq: without setuptools' notice on editable installs
if [ "$("$VENV/bin/python" -c 'import torch; print(torch.version.cuda is not None)')" = "True" ] \
    && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup.sh: note: pip installed a CUDA build of torch on a machine without an NVIDIA GPU; it works, only larger" >&2
fi
register_kernel
echo "setup.sh: ready: $VENV (Python $PY_VERSION, $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)')); Jupyter kernel '$KERNEL_NAME'"
