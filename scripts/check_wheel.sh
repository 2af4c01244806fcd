#!/usr/bin/env bash
# The installed package, not the checkout: build a wheel, install it into a fresh venv, and from an empty
# folder outside the checkout plan the default sweep and train a few steps. Run by CI after the tests.
#   scripts/check_wheel.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
. "$work/venv/bin/activate"
pip install -q torch==2.13.0
pip wheel -q --no-deps -w "$work/dist" "$repo"
pip install -q "$work"/dist/sweep-*.whl
mkdir "$work/empty" && cd "$work/empty"
python - <<'PY'
import sweep.compose as c
path = c.conf_dir()
assert "site-packages" in str(path), f"configs come from {path}, not from the installed package"
print(f"configs: {path}")
PY
sweep plan experiment=default launch.probe=false
sweep train budget.n_tokens=16384 train.tokens_per_step=4096 logger.mode=disabled
test -f results/default/runs/*/result.json
sweep export experiment=default format=parquet launch.probe=false
test -f results/default/export.parquet
mkdir -p my_conf/experiment
printf '# @package _global_\ndefaults:\n  - default\nexperiment:\n  name: mine\n  flops_budgets: [1.0e11, 3.2e11]\n' \
  > my_conf/experiment/mine.yaml
sweep plan --config-dir my_conf experiment=mine launch.probe=false > plan.txt
grep -q "sweep 'mine', experiment 'mine'" plan.txt
# the corpus shipped in the package, read from an empty folder
sweep train data=tinyshakespeare tokenizer=byte budget.n_tokens=8192 train.tokens_per_step=4096 logger.mode=disabled \
  sweep_name=shakespeare
test -f results/shakespeare/runs/*/result.json
echo "wheel check: ok"
