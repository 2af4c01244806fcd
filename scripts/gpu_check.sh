#!/usr/bin/env bash
# The one script to run when a GPU is lent: every figure the README's GPU speed section needs, within
# 9 minutes (540 s) in all. Each section has its own time limit, and no section may run past what is left of
# the 540 s, so a slow one cannot stall the rest; a section cut off keeps what it printed and the script goes on.
#
#   bash scripts/gpu_check.sh                          # with the package's dependencies installed
#   WHEELS=dist/gpu_wheels bash scripts/gpu_check.sh   # a box with torch and no network: carried wheels first
#   PYTHON=/opt/venv/bin/python bash scripts/gpu_check.sh
#
# The wheels come from `bash scripts/gpu_wheels.sh`, run where the package is installed (about 24 MB: hydra-core,
# omegaconf, antlr4 built from its sdist, PyYAML, submitit, hydra-submitit-launcher, numpy, tokenizers, pytest;
# never torch). Only those the box lacks are installed, into a private folder put after this checkout on
# PYTHONPATH: the code tested is always this checkout's.
#
# Steps and their limits (seconds; GPU_CHECK_BUDGET overrides the 540):
#   wheels     60  install the carried wheels the box lacks (only with WHEELS)
#   preflight  60  scripts/gpu_preflight.py: imports everything the sections need; exit 2 naming each missing
#                  module and the wheel that provides it. Then exit 2 if torch sees no CUDA device.
#   0. prepare 40  the stdlib corpus's token files and BPE-16384 tokenizer, so no timed section builds them
#   1. sizes  140  MFU per size at seq 1024 (bench_gpu.py --sizes 1M,20M,100M): steady tokens/s after warm-up,
#                  MFU on executed FLOPs and on the exact count, peak memory against the packing estimate;
#                  each size's row printed as it finishes
#   2. sweep  160  3 runs of the 1M size, 20M tokens each, all 3 at once on the GPU and then one at a time:
#                  steady per-run tokens/s (past warm-up; packed: while all 3 train together), and the
#                  whole-wall aggregate labelled as such; each batch printed as it finishes
#   3. tests  140  pytest -m gpu: the CUDA loss curve against the CPU golden curve, CUDA graphs, a resume on
#                  CUDA, the memory estimate against the allocator's peak, a 2-GPU placement when there are 2
# Each limit is `timeout` with SIGTERM, then SIGKILL 5 s later. Section limits and kill grace sum to 500 s;
# the rest is for the preflight and the CUDA probe. Ends with `gpu_check=<sections passed>/<sections run>`.
set -uo pipefail
BUDGET=${GPU_CHECK_BUDGET:-540}
GRACE=5
MIN_SECTION=15  # seconds left below which a section is skipped, not started
passed=0
run=0

section() {  # section NAME SECONDS COMMAND...: one timed section; a timeout or failure is reported, not fatal
    local name=$1 limit=$2
    shift 2
    run=$((run + 1))
    echo
    local left=$((BUDGET - SECONDS - GRACE))
    if [ "$left" -lt "$MIN_SECTION" ]; then
        echo "== $name: SKIPPED, ${left}s left of the ${BUDGET}s budget"
        return
    fi
    if [ "$limit" -gt "$left" ]; then
        echo "== $name: limit cut from ${limit}s to the ${left}s left of the ${BUDGET}s budget"
        limit=$left
    fi
    echo "== $name (limit ${limit}s, started $(date -u +%T), ${SECONDS}s into the check)"
    local t0=$SECONDS
    timeout --signal=TERM --kill-after=$GRACE "$limit" "$@"
    local rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "== $name: ok in $((SECONDS - t0))s"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "== $name: TIMEOUT after ${limit}s; the lines above are what it measured before"
    else
        echo "== $name: FAILED (exit $rc) after $((SECONDS - t0))s"
    fi
}

main() {
    cd "$(dirname "$0")/.."
    PY=${PYTHON:-python3}
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

    if [ -n "${WHEELS:-}" ]; then
        site="${TMPDIR:-/tmp}/gpu_check_site-$(id -u)"
        rm -rf "$site"
        chosen=$(timeout 60 "$PY" scripts/gpu_preflight.py --select "$WHEELS") || exit 2
        wheels=()
        [ -z "$chosen" ] || mapfile -t wheels <<< "$chosen"
        if [ "${#wheels[@]}" -gt 0 ]; then
            echo "gpu_check: installing ${#wheels[@]} carried wheel(s) into $site: ${wheels[*]##*/}"
            if "$PY" -m pip --version >/dev/null 2>&1; then
                timeout 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[@]}" \
                    || { echo "gpu_check: installing the wheels from $WHEELS failed" >&2; exit 2; }
            else  # no pip on the box: a wheel is a zip laid out as site-packages
                for whl in "${wheels[@]}"; do
                    timeout 60 "$PY" -m zipfile -e "$whl" "$site" \
                        || { echo "gpu_check: cannot unpack $whl" >&2; exit 2; }
                done
            fi
        fi
        export PYTHONPATH="$PWD:$site${PYTHONPATH#"$PWD"}"
    fi
    timeout 60 "$PY" scripts/gpu_preflight.py ${WHEELS:+--wheels "$WHEELS"} || exit 2
    if ! timeout 60 "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU box" >&2
        exit 2
    fi
    date -u "+date %Y-%m-%dT%H:%M:%SZ"
    timeout 20 nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus',
              torch.cuda.device_count())"

    section "0. corpus and tokenizer" 40 "$PY" scripts/bench_gpu.py --sections prepare
    section "1. MFU per size at seq 1024" 140 "$PY" scripts/bench_gpu.py --sections sizes --sizes 1M,20M,100M --steps 20
    section "2. packed vs one at a time, steady tokens/s" 160 \
        "$PY" scripts/bench_gpu.py --sections sweep --sweep-runs 3 --sweep-tokens 20M
    section "3. CUDA tests: golden curve, CUDA graphs, resume, memory, 2-GPU placement" 140 \
        "$PY" -m pytest -v -rA -p no:cacheprovider -m gpu tests/test_loss_curve.py tests/test_packing.py \
        tests/test_gpu_path.py
    echo
    echo "gpu_check=$passed/$run in ${SECONDS}s"
    [ "$passed" -eq "$run" ]
}

# sourced (by tests/test_gpu_check.py, for `section`), it only defines; run, it checks
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
