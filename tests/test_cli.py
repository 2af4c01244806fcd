"""The command line: `sweep <command> --help` for every command, Hydra's --cfg job and --info."""

import pytest

from sweep.cli import COMMAND_HELP, _dispatch, main


@pytest.mark.parametrize("command", sorted(COMMAND_HELP))
def test_every_command_has_help_with_usage_and_an_example(command, capsys):
    assert _dispatch(command) is not None
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sweep {command}") and f"example: sweep {command}" in out


def test_help_covers_every_command():
    import sweep.cli as cli

    listed = {line.split()[0] for line in cli.USAGE.split("commands:")[1].splitlines() if line.startswith("  ") and
              not line.startswith("    ")}
    assert listed == set(COMMAND_HELP)


def test_cfg_job_prints_the_composed_config_and_info_its_source(capsys):
    assert main(["plan", "--cfg", "job", "experiment=kaplan_data_size", "train.lr=0.001"]) == 0
    out = capsys.readouterr().out
    assert "name: kaplan_data_size" in out and "lr: 0.001" in out and "source: python" in out
    assert main(["train", "--info"]) == 0
    assert "config: train.yaml" in capsys.readouterr().out
    assert main(["fit", "--cfg", "job", "input=x"]) == 2  # the fitter composes no run config: said, not crashed
    assert "composes no run config" in capsys.readouterr().err
