"""sweep: empirical scaling-law sweeps (plan, train, record, fit, verify).

The Python API, for notebooks and scripts (the `sweep` command is a thin layer over it). Names are
imported on first use, so `import sweep` stays light and has no side effects:

    from sweep import fit, load_results, plan, train
    runs = plan(["experiment=default"], n_train_tokens=4_000_000).runs  # the ladder: N, D, C, LR, batch per run
    result = train(runs[0].cfg)                                  # one run -> its result.json content
    table = load_results("results/default")                      # every run of a sweep, a row each (pandas)
    fitted = fit(table)                                          # every method -> fit.json's content

    import sweep
    sc = sweep.load_sweep(["experiment=default"])                # conf/ + Hydra overrides -> SweepConfig
    cfg = sweep.load_run_config(["model=small", "budget.n_tokens=2000000"])

`sweep.fit` is also the fitter's subpackage; calling it calls the function.

Configs are dataclasses (`RunConfig`, `ExperimentConfig`, `FitConfig`); library functions never take Hydra
objects.
"""

from __future__ import annotations

from importlib import import_module

_API = {
    "RunConfig": "sweep.config",
    "load_run_config": "sweep.compose",
    "ExperimentConfig": "sweep.ladder.experiment",
    "load_sweep": "sweep.ladder.sweep_config",
    "expand_sweep": "sweep.ladder.sweep_config",
    "plan": "sweep.ladder.sweep_config",
    "train": "sweep.run.train",
    "RunFolder": "sweep.store.runs",
    "Status": "sweep.store.runs",
    "read_runs": "sweep.fit.inputs",
    "load_results": "sweep.fit.inputs",
    "FitConfig": "sweep.fit.config",
    "fit": "sweep.fit.pipeline",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}; the API is {', '.join(__all__)}")
    return getattr(import_module(_API[name]), name)


def __dir__():
    return __all__
