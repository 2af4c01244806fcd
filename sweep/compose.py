"""Hydra composition: conf/ plus command-line overrides into configs. The only module that knows Hydra's API.

Commands (sweep.cli, sweep.launch.launch, sweep.fit.cli) compose here and hand dataclasses to library code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf, open_dict


CONFIG_PATH_ENV = "SWEEP_CONFIG_PATH"
"""os.pathsep-separated folders of the user's own configs (e.g. conf/experiment/my_sweep.yaml in their repo),
searched before ours; `--config-dir DIR` on the command line adds one too."""


def conf_dir() -> Path:
    """The shipped configs: sweep/conf in an installed wheel, else conf/ at the top of the checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "sweep.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"sweep's configs are missing: neither {here / 'conf'} (an installed wheel) nor "
                            f"{here.parent / 'conf'} (a checkout) holds sweep.yaml; reinstall the package")


def user_config_dirs(argv: list[str]) -> tuple[list[str], list[Path]]:
    """(argv without `--config-dir DIR` / `--config-dir=DIR`, the user's config folders from it and from
    $SWEEP_CONFIG_PATH); a folder that does not exist is refused, naming it."""
    import os

    from sweep.config import ConfigError

    rest, dirs, it = [], [], iter(argv)
    for a in it:
        if a == "--config-dir":
            value = next(it, None)
            if value is None:
                raise ConfigError("--config-dir needs a folder, e.g. --config-dir ./conf")
            dirs.append(value)
        elif a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    dirs += [d for d in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if d]
    out = []
    for d in dirs:
        path = Path(d).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"config folder {d!r} does not exist (resolved to {path}): give a folder holding "
                              f"config groups, e.g. one with experiment/my_sweep.yaml")
        out.append(path)
    for path in out:
        refuse_shadowing(path)
    return rest, out


def refuse_shadowing(user_dir: Path) -> None:
    """Refuse a user config that has the name of one of ours. Hydra searches sweep's own configs first, so
    `experiment=default` would silently take ours and ignore the user's file; a clear error before any
    compute beats a sweep of the wrong experiment."""
    from sweep.config import ConfigError

    ours = conf_dir()
    clashes = sorted(str(p.relative_to(user_dir)) for p in user_dir.rglob("*.yaml")
                     if (ours / p.relative_to(user_dir)).is_file())
    if clashes:
        first = Path(clashes[0])
        raise ConfigError(
            f"{user_dir} has config(s) named like sweep's own: {', '.join(clashes)}. sweep's configs are "
            f"searched first, so {first.parent.as_posix() or 'the top level'}={first.stem} would use sweep's "
            f"{ours / first} and ignore yours: rename yours (e.g. {first.parent / ('my_' + first.name)}) and "
            f"select it by that name")


def searchpath_override(dirs: list[Path]) -> list[str]:
    """The Hydra override that puts the user's folders on the config search path (ours stay the primary)."""
    return [f"hydra.searchpath=[{','.join('file://' + str(d) for d in dirs)}]"] if dirs else []


def compose(config_name: str, overrides: list[str], choices: bool = False):
    """Compose `conf/<config_name>.yaml` with overrides; Hydra's own error names a bad key or type.
    `hydra.searchpath=[file:///...]` among the overrides adds the user's config folders. With `choices`,
    (config, {group: chosen config name}), e.g. {'experiment': 'mine', ...}."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sweep.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        composed = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=choices)
    if not choices:
        return composed
    chosen = OmegaConf.to_container(composed.hydra.runtime.choices)
    with open_dict(composed):
        del composed["hydra"]
    return composed, chosen


def load_run_config(overrides: list[str]):
    """A validated RunConfig from conf/train.yaml and overrides."""
    from sweep.config import ConfigError, RunConfig, validate

    composed = compose("train", overrides)
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = sorted(set(composed.keys()) - known)
    if unknown:  # `+key=value` slips past the schema
        raise ConfigError(f"unknown config key(s) {unknown}: known top-level keys are {sorted(known)}")
    cfg = OmegaConf.to_object(composed)
    validate(cfg)
    return cfg
