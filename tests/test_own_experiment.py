"""The README's own-experiment recipe, as a new user follows it: a config folder of theirs, planned with
--config-dir, lands in its own sweep folder; a folder planned for another experiment is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "my_configs"


def plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweep", "plan", *args, f"results_dir={tmp_path / 'results'}",
                           "launch.probe=false", "launch.corpus_tokens=100000000"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_the_readmes_example_experiment_plans_as_its_own_sweep(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert "--config-dir docs/my_configs experiment=mine" in readme
    mine = tmp_path / "my_configs"
    shutil.copytree(EXAMPLE, mine)  # the user's folder, outside our checkout
    text = (mine / "experiment" / "mine.yaml").read_text()
    assert text.startswith("# @package _global_") and "sweep_name: mine" in text and "name: mine" in text
    out = plan(tmp_path, "--config-dir", str(mine), "experiment=mine")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sweep 'mine', experiment 'mine': the default ladder at two larger budgets" in out.stdout
    assert "1.12e+12" in out.stdout and "2e+12" in out.stdout


def test_an_experiment_that_inherits_the_default_is_named_after_its_file(tmp_path):
    from sweep.ladder.sweep_config import load_sweep

    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "bigger.yaml").write_text("# @package _global_\ndefaults:\n  - default\n\n"
                                        "experiment:\n  flops_budgets: [2.0e12]\n")
    from sweep.compose import searchpath_override

    sc = load_sweep([*searchpath_override([tmp_path / "conf"]), "experiment=bigger"])
    assert sc.sweep_name == "bigger" and sc.experiment.name == "bigger" and sc.experiment.flops_budgets == [2.0e12]
    named = load_sweep([*searchpath_override([tmp_path / "conf"]), "experiment=bigger", "sweep_name=default"])
    assert named.sweep_name == "default"  # asked for on the command line: kept
    (folder / "named.yaml").write_text("# @package _global_\ndefaults:\n  - default\n\n"
                                       "experiment:\n  name: my_name\n")
    named_only = load_sweep([*searchpath_override([tmp_path / "conf"]), "experiment=named"])
    assert named_only.experiment.name == "my_name" and named_only.sweep_name == "my_name"
    assert load_sweep(["experiment=default"]).sweep_name == "default"
    assert load_sweep(["experiment=chinchilla_isoflop"]).sweep_name == "chinchilla_isoflop"


def test_a_sweep_folder_planned_for_another_experiment_is_refused(tmp_path):
    from sweep.launch.launch import plan_command, run_command, status_command

    folder = tmp_path / "results" / "shared"
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps({"experiment": "default", "runs": []}))
    args = ["experiment=chinchilla_isoflop", "sweep_name=shared", f"results_dir={tmp_path / 'results'}",
            "launch.probe=false", "launch.corpus_tokens=100000000"]
    for command in (plan_command, run_command, status_command):
        with pytest.raises(ConfigError, match=r"holds experiment 'default'.*sweep_name=chinchilla_isoflop"):
            command(args)
    assert sorted(p.name for p in folder.iterdir()) == ["plan.json"]
