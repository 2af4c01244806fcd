"""`sweep verify`: train the run a sweep's fit predicts, and score every method's prediction of it.

A user does this by hand before a big run: take the fitted law's compute-optimal (N*, D*) at a budget
beyond the sweep, train that run with the sweep's own recipe, and compare. Here the run is an
ordinary run of the sweep's results store (its own result.json with role "verification", its own W&B
run with job_type "verify"; it resumes and is skipped when done), and the comparison is written to
verification.json beside fit.json and at the top of report.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

from sweep.config import ConfigError, RunConfig
from sweep.fit import allocation, answer, registry
from sweep.fit.cli import log_verification
from sweep.fit.holdout import predict_run
from sweep.fit.recommend import verification_method
from sweep.fit.report import summary_line, write
from sweep.ladder.grid import planned_run, run_hparams, shape_for_n
from sweep.launch.placement import job_cores
from sweep.ladder.sweep_config import corpus_tokens, load_sweep, to_run_config
from sweep.run.counts import flops_per_token
from sweep.ladder.plan import available_memory, check_plan
from sweep.ladder.planned import PlannedRun
from sweep.store.results import human, sweep_dir, write_json_atomic
from sweep.store.runs import RunFolder, Status
from sweep.run.runtime import free_cores, pick_device
from sweep.run.train import train

DEFAULT_MULTIPLE = 10.0
"""Target compute, as a multiple of the sweep's largest fitted compute, when flops= is not given."""


def _positive(arg: str, value: str, hint: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ConfigError(f"{arg}: {hint}") from None
    if not x > 0:
        raise ConfigError(f"{arg}: must be positive; {hint}")
    return x


def _options(argv: List[str]) -> tuple:
    """(sweep overrides, flops, method or None for the fit's recommended one, input folder, max_epochs) from
    `sweep verify` arguments."""
    overrides, flops, method, folder, max_epochs = [], None, None, None, None
    for a in argv:
        key, _, value = a.partition("=")
        if key == "max_epochs":
            max_epochs = _positive(a, value, "give the most passes over the corpus, e.g. max_epochs=2")
        elif key == "flops":
            flops = _positive(a, value, "give the target compute in FLOPs, e.g. flops=4e12")
        elif key == "method":
            method = value
        elif key == "input":
            folder = Path(value)
        else:
            overrides.append(a)
    return overrides, flops, method, folder, max_epochs


def _sweep_overrides(overrides: List[str], folder: Optional[Path]) -> List[str]:
    """The sweep's own overrides; `input=<results folder>` names its sweep_name, results_dir and experiment."""
    if folder is None:
        return overrides if any(a.startswith("experiment=") for a in overrides) else ["experiment=default", *overrides]
    plan = folder / "plan.json"
    try:
        recorded = json.loads(plan.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"input={folder}: no readable plan.json there; point input= at a sweep's results folder "
                          "(results/<sweep_name>) written by `sweep run`, or give experiment=NAME") from None
    out = [f"results_dir={folder.resolve().parent}", f"sweep_name={recorded['sweep_name']}"]
    if not any(a.startswith("experiment=") for a in overrides):
        out.insert(0, f"experiment={recorded['experiment']}")
    return out + overrides


def load_fit(folder: Path) -> dict:
    path = folder / "fit" / "fit.json"
    try:
        return json.loads(path.read_text())
    except OSError:
        raise ConfigError(f"no fit at {path}: fit the sweep first (`sweep fit input={folder}`, or `sweep main`), "
                          "then verify it") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc}): rerun `sweep fit input={folder}`") from None


def verification_run(sc, fit: dict, method: str, flops: float, max_tokens: Optional[float] = None,
                     n_star: Optional[float] = None) -> PlannedRun:
    """The run `method` calls compute-optimal at `flops` (or the given `n_star`, the answer's when it is a
    stacking): N* mapped to the nearest shape of the sweep's family
    (its shape rule), D from that shape's exact FLOPs per token, LR and batch from the experiment's rules.

    With `max_tokens`, an N* whose D would exceed it moves up the family to the smallest shape whose D fits
    (the run is then off the predicted optimum, which verification.json records; the law still predicts
    its loss at its own N and D)."""
    base = to_run_config(sc)
    vocab = sc.tokenizer.vocab_size
    if n_star is None:
        n_star, d_star, _ = allocation.optimum(method, fit[method]["params"], flops, fit["data"]["flops_per_nd"])
    else:
        d_star = flops / (fit["data"]["flops_per_nd"] * n_star)
    exp = dataclasses.replace(sc.experiment, param_convention=fit["data"]["param_convention"])
    model = shape_for_n(float(n_star), exp, base.model, vocab)
    limited = False
    for k in range(1, 200):
        if max_tokens is None or flops / flops_per_token(model, vocab)["flops_per_token"] <= max_tokens:
            break
        model, limited = shape_for_n(float(n_star) * 1.05**k, exp, base.model, vocab), True
    d_target = flops / flops_per_token(model, vocab)["flops_per_token"]
    meta = {"experiment": sc.experiment.name, "role": "verification", "verify_flops": float(flops),
            "verify_method": method, "target_params": float(n_star), "target_tokens": float(d_star),
            "corpus_limited": limited}
    train = run_hparams(base, exp, model, d_target, vocab, {})
    steps = max(1, round(d_target / train.tokens_per_step))
    return planned_run(0, dataclasses.replace(base, train=train), model, steps, vocab, meta)


def idle_threads(cfg: RunConfig, device: str, n_tokens: int) -> RunConfig:
    """The run on the cores idle now (what `sweep train` picks by itself; inside a SLURM allocation, its cores),
    measured once, and said when that is fewer than the job's: a CPU run's thread count changes its rounding, so a
    busy machine gives another draw of the loss that scores the fit. Every core would repeat an idle machine's loss
    but oversubscribe a busy one many times over (docs/decisions/verification-threads.md). A user's train.threads, a
    checkpoint's count (bit-exact resume) and a run already done or diverged stand."""
    folder = RunFolder.of(cfg, n_tokens)
    if device != "cpu" or cfg.train.threads is not None or folder.checkpoint_path.exists() or _ended(folder):
        return cfg
    cores = job_cores()
    idle = cores if os.environ.get("SLURM_CPUS_PER_TASK") else min(free_cores(), cores)
    if idle < cores:
        print(f"verify: {idle} of {cores} cores idle, so the run trains on {idle} thread(s). A CPU run's rounding "
              f"depends on its thread count: its loss may differ from the same run on an idle machine by about the "
              f"seed noise (train.threads={cores} repeats that one, slowly while the machine is busy)")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=idle))


def _ended(folder: RunFolder) -> bool:
    """Whether the run's result says done or diverged (train() returns it as it is); a failed run trains again."""
    try:
        return json.loads(folder.result_path.read_text()).get("status") in (Status.DONE, Status.DIVERGED)
    except (OSError, ValueError, AttributeError):
        return False


def score(fit: dict, run: PlannedRun, result: dict) -> dict:
    """verification.json's content: the run, the measured loss and every method's prediction of it."""
    level = fit["config"]["interval"]
    n = result["n_params_non_embedding"] if fit["data"]["param_convention"] == "non_embedding" else result["n_params"]
    c = result["flops"] if fit["data"]["flop_convention"] == "exact" else 6.0 * n * result["n_tokens"]
    measured = float(result["final_val_loss"])
    predicted = predict_run(fit, float(n), float(result["n_tokens"]), float(c), measured)
    methods, lead = predicted["methods"], predicted["recommended"]
    return {"flops": float(c), "target_flops": float(run.cfg.meta["verify_flops"]), "run_id": result["run_id"],
            "run_name": result.get("run_name"), "n_params": int(result["n_params"]),
            "n_params_non_embedding": int(result["n_params_non_embedding"]), "n_tokens": int(result["n_tokens"]),
            "measured_loss": measured, "extrapolation": float(c / fit["data"]["flops_range"][1]),
            "method": run.cfg.meta["verify_method"], "interval_level": level,
            "target_n_params": float(run.cfg.meta["target_params"]), "target_n_tokens": float(run.cfg.meta["target_tokens"]),
            "corpus_limited": bool(run.cfg.meta.get("corpus_limited", False)),
            "recommended": lead,
            "interval_kind": "prediction interval for a new run (law spread + run-to-run noise + the law's lack of fit "
                             "at this extrapolation, from the within-data backtest)", "methods": methods}


def verify_command(argv: List[str]) -> int:
    """sweep verify [input=<results folder> | experiment=NAME ...] [flops=<C>] [method=approach3]."""
    overrides, flops, method, folder, max_epochs = _options(argv)
    sc = load_sweep(_sweep_overrides(overrides, folder))
    folder = sweep_dir(sc.results_dir, sc.sweep_name)
    fit = load_fit(folder)
    flops = flops or DEFAULT_MULTIPLE * fit["data"]["flops_range"][1]
    why = "method= on the command line"
    lead = None
    if method is None:  # the answer's run: the default law's optimum, or the stacking's N* (sweep/fit/answer.py)
        method, why = verification_method(fit, flops)
        lead = answer.at(fit, flops)
        print("verify: the answer " + answer.line(lead, fit["config"]["interval"]))
        print(f"verify: why: {(fit.get('recommended') or {}).get('reason', '')}")
    registry.get(method)
    if fit.get(method, {}).get("status") != "ok":
        usable = [m for m in fit["config"]["methods"] if fit.get(m, {}).get("status") == "ok"]
        raise ConfigError(f"method={method}: the fit has no {method} ({fit.get(method, {}).get('reason', 'not run')}); "
                          f"use one of {usable}")
    # Every check before any compute: the corpus must hold D, the memory the model.
    n_train = corpus_tokens(sc)
    stacked = lead is not None and (fit.get("recommended") or {}).get("stacked") and lead.n_params.value > 0
    run = verification_run(sc, fit, method, flops, None if max_epochs is None else max_epochs * n_train,
                           n_star=lead.n_params.value if stacked else None)
    if stacked:
        why = "the stacking's N*, the answer"
    if max_epochs is not None and run.n_tokens > max_epochs * n_train:
        raise ConfigError(f"the verification run needs {run.n_tokens / n_train:.2f} epochs of the corpus even at the "
                          f"largest shape tried, more than max_epochs={max_epochs:g}: give a smaller flops=")
    device = str(pick_device(sc.train))
    problems = check_plan([run], None if run.cfg.data.allow_repeat else n_train, available_memory(device), device)
    if problems:
        raise ConfigError("the verification run cannot be trained here: " + "; ".join(problems)
                          + f" (target {flops:.3g} FLOPs; give a smaller flops= or data.allow_repeat=true)")
    print(f"verify: {method}'s optimum ({why}) at {flops:.3g} FLOPs ({flops / fit['data']['flops_range'][1]:.3g}x "
          f"the fit): {run.run_name}, N = {human(run.n_params)}, D = {human(run.n_tokens)}, {run.steps} steps, "
          f"lr {run.cfg.train.lr:.3g}, {run.cfg.train.tokens_per_step} tokens/step")
    if run.cfg.meta["corpus_limited"]:
        print(f"verify: {method}'s N* = {human(run.cfg.meta['target_params'])} would need more than "
              f"max_epochs={max_epochs:g} of the corpus; the smallest larger shape whose D fits is trained instead")
    result = train(idle_threads(run.cfg, device, run.n_tokens), progress=sc.launch.progress)
    if result.get("status") != "done":
        print(f"verify: the run ended {result.get('status')}; nothing scored", file=sys.stderr)
        return 1
    verification = score(fit, run, result)
    verification["epochs"] = result["n_tokens"] / n_train
    verification["method_reason"] = why
    if verification["epochs"] > 1:
        print(f"verify: the run saw {verification['epochs']:.3f} epochs of the corpus (data.allow_repeat=true)")
    write_json_atomic(folder / "fit" / "verification.json", verification)
    _update_report(folder / "fit", fit, verification)
    print(summary_line(verification))
    print(f"wrote {folder / 'fit' / 'verification.json'}")
    return 0


def _update_report(fit_folder: Path, fit: dict, verification: dict) -> None:
    """fit.json and report.md carry the verification too; the fit's W&B run gets the same numbers."""
    fit["verification"] = verification
    plots = [p.name for p in sorted(fit_folder.glob("*.png"))]
    if plots:  # drawn again with the verification run on them
        from sweep.fit.plots import write_plots

        plots = write_plots(fit, fit_folder)
    write(fit, fit_folder, plots)
    log_verification(fit, fit_folder, verification)
