"""Every config composes; bad values fail before any data is read, naming the field and the rule."""

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweep.cli import load_run_config, main
from sweep.compose import conf_dir
from sweep.config import ConfigError, RunConfig
from sweep.run.shape import run_shape

GROUPS = ["model", "data", "tokenizer", "train", "budget", "logger"]


@pytest.mark.parametrize("group,option", [
    (g, p.stem) for g in GROUPS for p in sorted((conf_dir() / g).glob("*.yaml"))
])
def test_every_group_option_composes(group, option):
    overrides = [f"{group}={option}"]
    if (group, option) == ("data", "files"):
        overrides.append("data.path=/tmp/corpus.txt")
    cfg = load_run_config(overrides)
    assert isinstance(cfg, RunConfig)
    # every value the option file sets reaches the composed config (a group that composed to its
    # default, or to another option, would differ somewhere)
    values = OmegaConf.to_container(OmegaConf.load(conf_dir() / group / f"{option}.yaml"))
    section = getattr(cfg, group)
    assert values, f"{group}/{option}.yaml sets nothing"
    for key, value in values.items():
        if key == "defaults" or value == "???":
            continue
        assert getattr(section, key) == pytest.approx(value) if isinstance(value, float) else \
            getattr(section, key) == value, f"{group}.{key}"
    if group not in ("data", "budget"):  # budget options may leave the value to the command line
        assert run_shape(cfg).steps >= 1


def test_defaults_are_the_readme_run():
    cfg = load_run_config([])
    shape = run_shape(cfg)
    assert cfg.data.source == "stdlib" and cfg.logger.mode == "offline"
    assert shape.n_tokens == 999_424  # 1e6 tokens rounded to whole 4096-token steps
    assert shape.steps == 244


BAD = [
    (["model.d_model=65"], "model.d_model=65: must be divisible by model.n_head=4"),
    (["model.n_layer=0"], "model.n_layer=0: must be a positive integer"),
    (["model.n_head=-2"], "model.n_head=-2: must be a positive integer"),
    (["budget.n_tokens=0"], "budget.n_tokens=0: must be positive"),
    (["budget.n_tokens=1000"], "less than one optimizer step of train.tokens_per_step=4096"),
    (["budget.flops=1e9"], "set exactly one of budget.n_tokens"),
    (["budget=flops", "budget.flops=-1"], "budget.flops=-1.0: must be positive"),
    (["model.seq_len=100000"], "model.seq_len=100000: must be shorter than the validation split"),
    (["train.tokens_per_step=1000"], "train.tokens_per_step=1000: must be a positive multiple of model.seq_len=128"),
    (["tokenizer=byte", "tokenizer.vocab_size=300"], "must be 256 for the byte tokenizer"),
    (["train.lr=0"], "train.lr=0.0: must be positive"),
    (["train.schedule=linear"], "train.schedule='linear': must be 'cosine', 'wsd' or 'constant'"),
    (["train.compile_mode=graphs"], "train.compile_mode='graphs': must be one of 'default', 'reduce-overhead'"),
    (["data.source=files"], "data.path=None: is required when data.source='files'"),
    (["sweep_name=../escape"], "sweep_name='../escape': must be a non-empty name without path separators"),
    (["logger.mode=sometimes"], "logger.mode='sometimes'"),
]


@pytest.mark.parametrize("overrides,message", BAD)
def test_bad_values_name_field_and_rule(overrides, message):
    with pytest.raises(ConfigError) as err:
        run_shape(load_run_config(overrides))
    assert message in str(err.value)


@pytest.mark.parametrize("overrides,message", [
    (["model.n_layers=3"], "n_layers"),            # unknown key
    (["model.n_layer=three"], "n_layer"),          # wrong type
    (["+unknown_section.x=1"], "unknown_section"),
    (["model=enormous"], "model/enormous"),        # unknown group option
])
def test_unknown_keys_and_wrong_types(overrides, message):
    with pytest.raises((HydraException, OmegaConfBaseException, ConfigError)) as err:
        load_run_config(overrides)
    assert message in str(err.value)


def test_cli_reports_bad_input_without_traceback(capsys, tmp_path):
    code = main(["train", "model.d_model=65", f"results_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "model.d_model=65: must be divisible by model.n_head=4" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("batch_size,tokens_per_step,expected", [
    (16, 4096, (16, 2)),     # 32 sequences per step: 2 micro-batches of 16
    (16, 128 * 24, (12, 2)),  # 24 sequences: largest divisor <= 16 is 12
    (64, 4096, (32, 1)),     # the step fits in one micro-batch
    (5, 128 * 7, (1, 7)),    # 7 is prime: micro-batches of one sequence
])
def test_micro_batch_keeps_tokens_per_step(batch_size, tokens_per_step, expected):
    from sweep.config import micro_batch

    cfg = load_run_config([f"train.batch_size={batch_size}", f"train.tokens_per_step={tokens_per_step}"])
    size, accum = micro_batch(cfg)
    assert (size, accum) == expected
    assert size * accum * cfg.model.seq_len == tokens_per_step
