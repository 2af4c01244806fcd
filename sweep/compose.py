"""Hydra composition: conf/ plus command-line overrides into configs. The only module that knows Hydra's API.

Commands (sweep.cli, sweep.ladder.launch, sweep.fit.cli) compose here and hand dataclasses to library code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf


def conf_dir() -> Path:
    """conf/ beside the package (the repository's top level)."""
    return Path(__file__).resolve().parents[1] / "conf"


def compose(config_name: str, overrides: list[str]):
    """Compose `conf/<config_name>.yaml` with overrides; Hydra's own error names a bad key or type."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from sweep.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


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
