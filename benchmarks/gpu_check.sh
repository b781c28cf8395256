#!/usr/bin/env bash
# GPU check for neurovamp: on a machine with a CUDA device, in under 8 minutes,
#   1. make a Python environment with a CUDA build of torch (reused when the current
#      python already sees a GPU),
#   2. run the CUDA-marked tests (tests/test_cuda.py: batched step = loop on CUDA for every
#      model, the MMVM regulariser's memory at 200 animals, NCCL DDP when 2 GPUs),
#   3. run the training benchmark (bench_training.py --device cuda) and the scaling
#      benchmark (bench_scaling.py --device cuda --memory),
# and write everything into benchmarks/results/ (gpu_*.txt, training_cuda.jsonl,
# scaling.jsonl, scaling_cuda.md).
#
# Usage (from anywhere):  bash benchmarks/gpu_check.sh
# Environment: PYTHON (default python3) to build the environment from; GPU_VENV (default
# .venv-gpu) where it goes; NEUROVAMP_GPU_BUDGET (default 450 s) the time the steps share.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=benchmarks/results
mkdir -p "$RESULTS"
START=$(date +%s)
BUDGET=${NEUROVAMP_GPU_BUDGET:-450}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
log() { echo "[gpu_check $(( $(date +%s) - START ))s] $*" | tee -a "$RESULTS/gpu_check.log"; }
: > "$RESULTS/gpu_check.log"

# ---------------------------------------------------------------- 1. environment
if ! command -v nvidia-smi >/dev/null 2>&1 && ! ls /dev/nvidia0 >/dev/null 2>&1; then
  log "no NVIDIA device on this machine (no nvidia-smi, no /dev/nvidia0); nothing to check"
  exit 1
fi
PY=${PYTHON:-python3}
has_cuda() { "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }
if has_cuda "$PY" && "$PY" -c "import neurovamp, pytest" 2>/dev/null; then
  V=$PY
  log "using $PY (torch sees a GPU; neurovamp importable)"
else
  VENV=${GPU_VENV:-.venv-gpu}
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  V=$VENV/bin/python
  log "installing torch==2.13.0 (CUDA build: PyPI's default Linux wheel) and neurovamp into $VENV"
  "$V" -m pip install -q --upgrade pip
  # neurovamp's own pin: the CUDA wheel of the same torch version (the CPU setup pins the CPU wheel)
  timeout 240 "$V" -m pip install -q "torch==2.13.0" || log "torch install failed"
  timeout 120 "$V" -m pip install -q -e ".[test]" || log "neurovamp install failed"
fi
export PYTHONPATH=$PWD
if ! has_cuda "$V"; then
  log "no CUDA device visible to $V; nothing to check"
  exit 1
fi
{ nvidia-smi || true; "$V" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), 'devices', torch.cuda.device_count())"; } \
  > "$RESULTS/gpu_device.txt" 2>&1
log "$(tail -n 1 "$RESULTS/gpu_device.txt")"

# ---------------------------------------------------------------- 2. CUDA tests
log "CUDA-marked tests"
timeout $(( $(left) > 150 ? 150 : $(left) )) "$V" -m pytest -q -m cuda tests/test_cuda.py tests/test_batched.py \
  > "$RESULTS/gpu_tests.txt" 2>&1
log "tests exit $? ($(tail -n 1 "$RESULTS/gpu_tests.txt"))"

# ---------------------------------------------------------------- 3. benchmarks
log "training benchmark (eager and compiled real path, GEMM bound)"
timeout $(( $(left) > 170 ? 170 : $(left) )) "$V" benchmarks/bench_training.py --device cuda --repeats 5 \
  --out "$RESULTS/training_cuda.jsonl" --note "gpu_check.sh" > "$RESULTS/gpu_training.txt" 2>&1
log "training benchmark exit $?"

log "scaling benchmark"
timeout $(( $(left) > 30 ? $(left) : 30 )) "$V" benchmarks/bench_scaling.py --device cuda --memory --rounds 3 --steps 5 \
  > "$RESULTS/gpu_scaling.txt" 2>&1
log "scaling benchmark exit $? (table: $RESULTS/scaling_cuda.md)"
log "done in $(( $(date +%s) - START )) s; results in $RESULTS/"
