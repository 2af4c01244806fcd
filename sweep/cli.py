"""The `sweep` command: `sweep <subcommand> [hydra overrides]`.

Hydra stops here: each subcommand composes its config from conf/, turns it into dataclasses and
calls a library function that knows nothing of Hydra.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from sweep.compose import load_run_config, searchpath_override, user_config_dirs

HYDRA_COMMANDS = ("train", "plan", "run", "status", "export", "main", "verify")
"""Commands that compose conf/ and so take the user's config folders (--config-dir, $SWEEP_CONFIG_PATH)."""

USAGE = """usage: sweep <command> [--config-dir DIR] [key=value ...]

--config-dir DIR (or $SWEEP_CONFIG_PATH) adds a folder of your own config groups, e.g. DIR/experiment/mine.yaml
for `experiment=mine`; sweep's own configs stay available beside them.

commands:
  train     train one run            sweep train model=small budget.n_tokens=2000000 [--retry-diverged]
  plan      print a sweep's runs     sweep plan experiment=default
  run       run a sweep              sweep run experiment=default
  status    show a sweep's runs      sweep status experiment=default
  export    a sweep as a table, a row per run (N, D, C, losses, status, seed, grid coordinates)
                                     sweep export experiment=default [format=csv|parquet] [out=runs.parquet]
  fit       fit scaling laws         sweep fit input=results/default
  predict   compute-optimal N, D, L  sweep predict input=results/default/fit flops=1e21
  report    rebuild report + plots   sweep report input=results/default/fit
  compare   two fits side by side    sweep compare results/a/fit results/b/fit [method=approach3]
  verify    train the run a fit predicts and score it
                                     sweep verify input=results/default [flops=4e12] [method=NAME]
  sync      upload a sweep's offline W&B runs, each resumed run as one
                                     sweep sync input=results/default [dry_run=true]
  tune      fit the LR rule from a tuning sweep
                                     sweep tune input=results/lr_tune
  main      the README's main job: the default adaptive ladder (one run per core), its fit, a verification run at 5x, the report
"""


COMMAND_HELP = {
    "train": ("sweep train [key=value ...] [--retry-diverged]",
              "Train one run (conf/train.yaml): model/, data/, tokenizer/, train/, budget/, logger/ groups.",
              ["model=small|tiny|medium|gpt2_124m", "budget=tokens|chinchilla|flops  budget.n_tokens=2000000",
               "data=stdlib|python|tinyshakespeare|files data.path=DIR", "tokenizer=bpe|byte", "train.device=cpu|cuda"],
              "sweep train model=small budget=chinchilla"),
    "plan": ("sweep plan experiment=NAME [key=value ...]",
             "Print a sweep's runs (N, D, C, LR, batch, steps), totals and estimated time; refuse a plan that cannot run.",
             ["experiment=default|chinchilla_isoflop|kaplan_model_size|...", "launch.probe=false (no timing probe)",
              "launch.corpus_tokens=N (say the corpus size instead of building it)"],
             "sweep plan experiment=chinchilla_isoflop launch.probe=false"),
    "run": ("sweep run experiment=NAME [key=value ...] [--retry-failed]",
            "Run a sweep: skips finished runs, resumes interrupted ones; an adaptive ladder trains in waves.",
            ["hydra/launcher=basic|parallel|slurm", "launch.slots=2 (parallel, no GPU)", "run_index=0,2 (part of the grid)",
             "--retry-failed (train failed runs again)"],
            "sweep run experiment=default hydra/launcher=parallel launch.slots=2"),
    "status": ("sweep status experiment=NAME", "Each run's state (pending, running, done, diverged, failed) and totals.",
               [], "sweep status experiment=default"),
    "export": ("sweep export experiment=NAME [format=csv|parquet] [out=PATH]", "The sweep as a table, a row per run.",
               [], "sweep export experiment=default format=parquet out=runs.parquet"),
    "fit": ("sweep fit input=FOLDER_OR_TABLE [output=FOLDER] [fit.key=value ...]",
            "Fit Chinchilla approaches 1-3 and Kaplan's laws; writes fit.json, report.md and plots.",
            ["fit.n_bootstrap=200", "fit.methods=[approach2,approach3]", "fit.extrapolate_to=[10,100]",
             "wandb.mode=offline|online|disabled", "columns.loss=val_loss (tables)"],
            "sweep fit input=results/default"),
    "predict": ("sweep predict input=FIT_OR_RESULTS flops=C [n_params=N n_tokens=D]",
                "Compute-optimal N*, D*, tokens/param and loss at a budget, with intervals.", [],
                "sweep predict input=results/default/fit flops=1e13"),
    "report": ("sweep report input=FIT_FOLDER", "Rebuild report.md and the plots from fit.json.", [],
               "sweep report input=results/default/fit"),
    "compare": ("sweep compare FIT_A FIT_B [method=approach3] [output=compare]",
                "Two sweeps side by side: exponents, compute multiplier at equal loss.", [],
                "sweep compare results/a/fit results/b/fit"),
    "verify": ("sweep verify input=RESULTS [flops=C] [method=NAME] [max_epochs=K]",
               "Train the run the fit calls compute-optimal at C (default 10x the sweep's largest) and score every "
               "method's prediction of it; method= defaults to the one the fit recommends (its backtest's best).", [], "sweep verify input=results/default flops=5e12"),
    "sync": ("sweep sync input=RESULTS [dry_run=true]", "Upload a sweep's offline W&B runs, each resumed run as one.",
             [], "sweep sync input=results/default"),
    "tune": ("sweep tune input=RESULTS", "Fit the LR rule from a tuning sweep (experiment=lr_tune).", [],
             "sweep tune input=results/lr_tune"),
    "main": ("sweep main [key=value ...] [--retry-failed]",
             "The README's main job: the default adaptive ladder (one run per core), its fit, a verification run at "
             "5x its largest compute, and the report (results/default/fit/report.md).",
             ["train.seed=1 (another whole-job seed)", "hydra/launcher=basic (one run at a time)",
              "--retry-failed (train failed runs again)"],
             "sweep main"),
}
"""Per command: usage, what it does, main options, an example (`sweep <command> --help`)."""


def command_help(command: str) -> str:
    usage, what, options, example = COMMAND_HELP[command]
    lines = [f"usage: {usage}", "", what]
    if options:
        lines += ["", "main options:"] + [f"  {o}" for o in options]
    if command in HYDRA_COMMANDS:
        lines += ["", "any config key works as key=value; --cfg job prints the composed config, --info where it "
                      "comes from; --config-dir DIR adds your own config groups"]
    return "\n".join(lines + ["", f"example: {example}"])


def print_config(command: str, args: list[str], what: str) -> int:
    """Hydra's `--cfg job` / `--info`: the composed config of this command, or where it comes from."""
    from omegaconf import OmegaConf

    from sweep.compose import compose, conf_dir

    name = "train" if command == "train" else "sweep"
    if command in ("plan", "run", "status", "export", "main", "verify"):
        from sweep.ladder.sweep_config import register_sweep_configs

        register_sweep_configs()
        if not any(a.startswith("experiment=") for a in args):
            args = ["experiment=default", *args]
    else:
        from sweep.config import register_configs

        register_configs()
    args = [a for a in args if "=" in a and not a.startswith(("flops=", "method=", "input=", "max_epochs="))]
    cfg = compose(name, args)
    if what == "info":
        print(f"config: {name}.yaml from {conf_dir()}")
        print("groups: " + ", ".join(sorted(p.name for p in conf_dir().iterdir() if p.is_dir())))
        print(f"overrides: {args}")
        return 0
    print(OmegaConf.to_yaml(cfg))
    return 0


def train_command(argv: list[str]) -> int:
    from sweep.run.train import train
    from sweep.store.runs import RunFolder, Status

    retry = "--retry-diverged" in argv
    result = train(load_run_config([a for a in argv if a != "--retry-diverged"]), retry_diverged=retry)
    rdir = RunFolder(Path(result["config"]["results_dir"]) / result["sweep_name"] / "runs" / result["run_id"])
    loss = result.get("final_val_loss")
    print(f"run {result['run_name']} ({result['run_id']}): status={result['status']} "
          f"val_loss={loss if loss is None else f'{loss:.4f}'} nats/token "
          f"N={result['n_params']:,} D={result['n_tokens']:,} C={result['flops']:.3g}")
    print(f"results: {rdir.result_path}")
    return 0 if result["status"] == Status.DONE else 1


def _dispatch(command: str):
    if command == "train":
        return train_command
    if command == "verify":
        from sweep.jobs.verify import verify_command

        return verify_command
    if command == "sync":
        from sweep.store.sync import sync_command

        return sync_command
    if command == "tune":
        from sweep.ladder.tune import tune_command

        return tune_command
    if command == "main":
        from sweep.jobs.main_job import main_command

        return main_command
    if command == "export":
        from sweep.ladder.export import export_command

        return export_command
    if command in ("plan", "run", "status"):
        from sweep.launch import launch

        return getattr(launch, f"{command}_command")
    if command in ("fit", "predict", "report", "compare"):
        from sweep.fit import cli as fit_cli

        return getattr(fit_cli, f"{command}_command")
    return None


def describe_error(exc: BaseException) -> str:
    """One line naming what is wrong: Hydra's top line plus the cause that names the key and the rule."""
    cause = exc.__cause__
    if cause is None or not str(cause):
        return str(exc) or type(exc).__name__  # e.g. a missing group option lists the available ones
    message = str(exc).splitlines()[0]
    detail = str(cause).splitlines()[0]
    schema = getattr(cause, "object_type", None)
    if "not in" in detail and dataclasses.is_dataclass(schema):
        # An unknown key: Hydra suggests `+key=...`, which a typed schema refuses anyway.
        known = ", ".join(f.name for f in dataclasses.fields(schema))
        return f"{detail} (known keys: {known})"
    return f"{message}: {detail}"


def _cfg_flag(args: list[str]) -> str | None:
    """'job'/'all' for `--cfg job`, 'info' for `--info`, else None."""
    for i, a in enumerate(args):
        if a == "--info":
            return "info"
        if a == "--cfg" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--cfg="):
            return a.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sweep.config import ConfigError
    from sweep.store.locks import RunLocked
    from sweep.run.preempt import Preempted

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    handler = _dispatch(argv[0])
    if handler is None:
        print(f"sweep: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in argv[1:]):
        print(command_help(argv[0]))
        return 0
    try:
        args, dirs = user_config_dirs(argv[1:])
        if dirs and argv[0] in HYDRA_COMMANDS:
            args = searchpath_override(dirs) + args
        elif dirs:
            raise ConfigError(f"--config-dir: `sweep {argv[0]}` composes no config")
        shown = _cfg_flag(args)
        if shown is not None:
            if argv[0] not in HYDRA_COMMANDS:
                raise ConfigError(f"--cfg/--info: `sweep {argv[0]}` composes no run config")
            return print_config(argv[0], [a for a in args if not a.startswith(("--cfg", "--info")) and a != shown],
                                shown)
        return int(handler(args) or 0)
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"sweep {argv[0]}: error: {describe_error(exc)}", file=sys.stderr)
        return 2
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        # Bad input: one clear message, no traceback (it names the field and the rule).
        print(f"sweep {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    except RunLocked as exc:
        print(f"sweep {argv[0]}: {exc}", file=sys.stderr)
        return 3
    except Preempted as exc:
        print(f"[sweep] {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
