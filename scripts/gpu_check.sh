#!/usr/bin/env bash
# The one script to run when a GPU is lent: every figure the README's GPU speed section needs, within
# 8 minutes on one H200 (each section has its own time limit, so a slow one cannot stall the rest).
#
#   bash scripts/gpu_check.sh                 # with the package installed (pip install -e '.[test]')
#   WHEELS=.whl bash scripts/gpu_check.sh     # a box without network: install carried wheels first
#
# Prints, in order:
#   1. MFU per size at seq 1024 (scripts/bench_gpu.py: steady tokens/s after warm-up, MFU on executed FLOPs
#      and on the exact count, peak memory against the packing estimate);
#   2. a packed sweep of tiny runs against the same runs one at a time, in aggregate FLOP/s;
#   3. the CUDA tests (pytest -m gpu): the CUDA loss curve against the CPU golden curve, CUDA graphs, a
#      resume on CUDA from a checkpoint, the memory estimate against the allocator's peak, and a 2-GPU
#      placement when there are 2 GPUs;
# and ends with `gpu_check=<sections passed>/<sections run>`.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu_check_site "$WHEELS"/*.whl || exit 2
    export PYTHONPATH="/tmp/gpu_check_site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU box" >&2
    exit 2
fi
date -u "+date %Y-%m-%dT%H:%M:%SZ"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"

passed=0
run=0
section() {  # section NAME SECONDS COMMAND...: one timed section; a timeout or failure is reported, not fatal
    local name=$1 limit=$2
    shift 2
    run=$((run + 1))
    echo
    echo "== $name (limit ${limit}s, started $(date -u +%T))"
    local t0=$SECONDS
    timeout --signal=TERM --kill-after=10 "$limit" "$@"
    local rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "== $name: ok in $((SECONDS - t0))s"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "== $name: TIMEOUT after ${limit}s"
    else
        echo "== $name: FAILED (exit $rc) after $((SECONDS - t0))s"
    fi
}

section "1. MFU per size at seq 1024" 170 "$PY" scripts/bench_gpu.py --sections sizes --sizes 1M,20M,100M --steps 20
section "2. packed sweep of tiny runs" 150 "$PY" scripts/bench_gpu.py --sections sweep --sweep-runs 4 --sweep-tokens 2M
section "3. CUDA tests: golden curve, CUDA graphs, resume, memory, 2-GPU placement" 130 \
    "$PY" -m pytest -q -m gpu -rA -p no:cacheprovider tests/test_loss_curve.py tests/test_packing.py \
    tests/test_gpu_path.py
echo
echo "gpu_check=$passed/$run"
[ "$passed" -eq "$run" ]
