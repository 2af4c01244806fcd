#!/usr/bin/env bash
# Builds the wheels scripts/gpu_check.sh needs on a GPU box that has torch and no network: every distribution
# scripts/gpu_preflight.py lists (hydra-core, omegaconf, antlr4-python3-runtime, PyYAML, submitit,
# hydra-submitit-launcher, numpy, tokenizers, pytest, ...) at the version installed in this Python, and this
# package itself. torch and its CUDA libraries are never in it: the box brings its own build for its driver.
#
#   bash scripts/gpu_wheels.sh                        # into dist/gpu_wheels (dist/ is git-ignored)
#   bash scripts/gpu_wheels.sh OUT                    # into OUT
#   bash scripts/gpu_wheels.sh --python 3.12 [OUT]    # compiled wheels (numpy, PyYAML) for another Python
#   PYTHON=.venv/bin/python bash scripts/gpu_wheels.sh
#
# Then carry the folder to the box and run `WHEELS=dist/gpu_wheels bash scripts/gpu_check.sh`.
# antlr4-python3-runtime 4.9.x (what omegaconf 2.3 requires) is an sdist only, so `pip wheel` builds it here;
# that and this package's build need the package index once. The pure-Python wheels install on any Python 3;
# compiled ones only on the Python version (and machine) they were built for, hence --python: they are then
# downloaded, prebuilt, for manylinux x86_64 and that version. gpu_check installs only the wheels whose
# distributions the box lacks, so an image's own numpy or PyYAML stays in use.
# Prints each wheel with its size and the total; exits non-zero if anything could not be built.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
target=""
if [ "${1:-}" = "--python" ]; then
    target=${2:?"--python needs a version, e.g. 3.12"}
    shift 2
fi
OUT=${1:-dist/gpu_wheels}

pins=$("$PY" scripts/gpu_preflight.py --pins)  # name==version as installed here; exits 2 naming what is not
rm -rf "$OUT"
mkdir -p "$OUT"
# --no-deps: the list is the whole closure gpu_check imports; resolving dependencies would pull torch and
# its CUDA libraries back in
# shellcheck disable=SC2086
"$PY" -m pip wheel -q --no-deps --wheel-dir "$OUT" $pins .

if [ -n "$target" ]; then
    short=${target/./}
    for whl in "$OUT"/*.whl; do
        case "$(basename "$whl")" in
            *-none-any.whl | *-abi3-*.whl | sweep-*.whl) continue ;;
        esac
        name=$(basename "$whl" | cut -d- -f1)
        version=$(basename "$whl" | cut -d- -f2)
        rm "$whl"
        "$PY" -m pip download -q --no-deps --only-binary=:all: --dest "$OUT" --python-version "$target" \
            --implementation cp --abi "cp$short" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 "$name==$version"
    done
fi

if ls "$OUT" | grep -qiE '^(torch|nvidia|triton)[-_]'; then
    echo "gpu_wheels: torch or its CUDA libraries ended up in $OUT; they must come from the GPU box" >&2
    exit 1
fi
here=$("$PY" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])')
echo "gpu_wheels: $(ls "$OUT"/*.whl | wc -l) wheels in $OUT for $here${target:+ (compiled ones for Python $target)}"
for whl in "$OUT"/*.whl; do
    printf '  %8s  %s\n' "$(du -k "$whl" | cut -f1)K" "$(basename "$whl")"
done
echo "gpu_wheels: total $(du -sk "$OUT" | cut -f1)K"
