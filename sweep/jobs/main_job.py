"""`sweep main`: the README's main job. The default ladder, its fit, then the run the fit predicts beyond it."""

from __future__ import annotations

import json
from typing import List

from sweep.launch import launch
from sweep.run.cores import usable_cores
from sweep.ladder.plan import MAIN_VERIFY_MULTIPLE
from sweep.ladder.sweep_config import load_sweep
from sweep.store.results import sweep_dir
from sweep.jobs.verify import verify_command



MAIN_MAX_EPOCHS = 2.0
"""Most passes over the embedded corpus the main job's verification run may take (Muennighoff et al. 2023: up to
~4 epochs cost little against fresh data; 2 keeps the run close to the law's one-pass assumption)."""


def main_command(argv: List[str]) -> int:
    """The default sweep, then (when the fitter is present) its fit, its report and the verification run."""
    overrides = list(argv)
    if not any(a.startswith("experiment=") for a in overrides):
        overrides.insert(0, "experiment=default")
    # The ladder's runs are tiny: one per core side by side trains twice as fast as one at a time on all of them.
    if not any(a.startswith(("hydra/launcher=", "launch.slots=")) for a in overrides):
        overrides += ["hydra/launcher=parallel", f"launch.slots={usable_cores()}"]
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
    # One switch for the whole job: the runs' logger (logger=online|offline|disabled, entity, project) is the fit's.
    wandb = [f"wandb.mode={sc.logger.mode}", f"wandb.project={sc.logger.project}"] + (
        [f"wandb.entity={sc.logger.entity}"] if sc.logger.entity else [])
    rc = fit_cli.fit_command([f"input={folder}", *wandb])
    if rc != 0 or not sc.experiment.flops_budgets:
        return rc
    # The promise is the extrapolation: train the run the fit predicts beyond the sweep and score it.
    fit_max = json.loads((folder / "fit" / "fit.json").read_text())["data"]["flops_range"][1]
    # A user's own ladder on a small corpus can need more tokens than it holds at this multiple: the run may
    # see the corpus up to MAIN_MAX_EPOCHS times (an N* that needs more moves up the family to the smallest
    # shape that fits), and verification.json and the report record its epochs.
    sweep_overrides = [a for a in launch.split_flags(overrides)[0] if not a.startswith(("hydra/", "launch.slots="))]
    return verify_command([*sweep_overrides, f"flops={MAIN_VERIFY_MULTIPLE * fit_max:.6g}",
                           "data.allow_repeat=true", f"max_epochs={MAIN_MAX_EPOCHS:g}"])
