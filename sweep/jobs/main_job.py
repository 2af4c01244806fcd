"""`sweep main`: the README's main job. The default ladder, its fit, then the run the fit predicts beyond it."""

from __future__ import annotations

import json
from typing import List

from sweep.ladder import launch
from sweep.ladder.sweep_config import load_sweep
from sweep.store.results import sweep_dir
from sweep.jobs.verify import verify_command


MAIN_VERIFY_MULTIPLE = 3.0
"""`sweep main` verifies at this multiple of the sweep's largest compute: what a CPU main job can afford
(the verification run then costs about as much as the whole sweep); `sweep verify` defaults to 10x."""

MAIN_MAX_EPOCHS = 2.0
"""Most passes over the embedded corpus the main job's verification run may take (Muennighoff et al. 2023: up to
~4 epochs cost little against fresh data; 2 keeps the run close to the law's one-pass assumption)."""


def main_command(argv: List[str]) -> int:
    """The default sweep, then (when the fitter is present) its fit, its report and the verification run."""
    overrides = list(argv)
    if not any(a.startswith("experiment=") for a in overrides):
        overrides.insert(0, "experiment=default")
    rc = launch.run_command(overrides)
    if rc != 0:
        return rc
    sc = load_sweep(launch.split_flags(overrides)[0])
    try:
        from sweep.fit import cli as fit_cli
    except ImportError:
        print("[sweep] the fitter is not installed; results are in", sweep_dir(sc.results_dir, sc.sweep_name))
        return 0
    # IsoFLOP budgets are exact FLOPs (6ND differs by size), so the fit groups runs by exact C.
    folder = sweep_dir(sc.results_dir, sc.sweep_name)
    rc = fit_cli.fit_command([f"input={folder}"])
    if rc != 0 or not sc.experiment.flops_budgets:
        return rc
    # The promise is the extrapolation: train the run the fit predicts beyond the sweep and score it.
    fit_max = json.loads((folder / "fit" / "fit.json").read_text())["data"]["flops_range"][1]
    # At 3x the default sweep's largest budget the run can need more tokens than the embedded corpus holds:
    # it may see the corpus up to MAIN_MAX_EPOCHS times (an N* that needs more moves up the family to the
    # smallest shape that fits), and verification.json and the report record its epochs.
    return verify_command([*launch.split_flags(overrides)[0], f"flops={MAIN_VERIFY_MULTIPLE * fit_max:.6g}",
                           "data.allow_repeat=true", f"max_epochs={MAIN_MAX_EPOCHS:g}"])
