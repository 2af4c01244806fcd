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
                                     sweep verify input=results/default [flops=4e12] [method=approach3]
  sync      upload a sweep's offline W&B runs, each resumed run as one
                                     sweep sync input=results/default [dry_run=true]
  tune      fit the LR rule from a tuning sweep
                                     sweep tune input=results/lr_tune
  main      the README's main job: run the default sweep, then fit and report
"""


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
        from sweep.ladder import launch

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
    try:
        args, dirs = user_config_dirs(argv[1:])
        if dirs and argv[0] in HYDRA_COMMANDS:
            args = searchpath_override(dirs) + args
        elif dirs:
            raise ConfigError(f"--config-dir: `sweep {argv[0]}` composes no config")
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
