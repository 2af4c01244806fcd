"""scripts/wsd_check.py: the LR grid it parses and the best-against-best choice it compares."""

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "wsd_check.py"


@pytest.fixture(scope="module")
def wsd_check():
    spec = importlib.util.spec_from_file_location("wsd_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lrs_are_parsed_sorted_and_deduplicated(wsd_check):
    assert wsd_check.parse_lrs("1e-2, 2.5e-3,5e-3,1e-2", 5e-3) == [2.5e-3, 5e-3, 1e-2]
    assert wsd_check.parse_lrs(None, 5e-3) == [5e-3]  # no --lrs: the single --lr, as before
    assert wsd_check.parse_lrs("", 3e-3) == [3e-3]


@pytest.mark.parametrize("text", ["1e-3,fast", "0,1e-3", "-1e-3", "nan", ","])
def test_bad_lrs_fail_naming_the_option(wsd_check, text):
    with pytest.raises(SystemExit, match="--lrs"):
        wsd_check.parse_lrs(text, 5e-3)


def test_a_run_that_did_not_finish_never_wins(wsd_check):
    assert wsd_check.loss_of({"status": "done", "final_val_loss": 2.5}) == 2.5
    assert wsd_check.loss_of({"status": "diverged", "final_val_loss": None}) == math.inf
    assert wsd_check.loss_of({"status": "done", "final_val_loss": float("nan")}) == math.inf
    losses = {(35, 120): {1e-3: 3.0, 2e-3: 2.9, 4e-3: math.inf},
              (35, 240): {1e-3: 2.7, 2e-3: 2.7, 4e-3: 2.8},  # a tie goes to the smaller LR
              (70, 120): {1e-3: math.inf, 2e-3: math.inf}}
    assert wsd_check.best_per_point(losses) == {(35, 120): (2e-3, 2.9), (35, 240): (1e-3, 2.7),
                                                (70, 120): (None, math.inf)}


def test_a_best_lr_at_the_grid_edge_is_marked(wsd_check):
    lrs = [1e-3, 2e-3, 4e-3]
    assert [wsd_check.edge_mark(x, lrs) for x in lrs] == ["<", "", ">"]
    assert wsd_check.edge_mark(None, lrs) == ""
    assert wsd_check.edge_mark(1e-3, [1e-3]) == ""  # one LR: nothing was tuned, nothing to flag


def test_data_picks_the_corpus(wsd_check, tmp_path):
    stdlib = wsd_check.data_config("stdlib", str(tmp_path / "cache"))
    assert (stdlib.source, stdlib.path) == ("stdlib", None)
    assert stdlib.cache_dir == str(tmp_path / "cache") and stdlib.val_tokens == 16384
    text = tmp_path / "corpus.txt"
    text.write_text("to be or not to be\n")
    own = wsd_check.data_config(str(text), "cache")
    assert (own.source, own.path) == ("files", str(text.resolve()))


def test_default_data_is_tinyshakespeare(wsd_check):
    if not wsd_check.SHAKESPEARE.exists():
        pytest.skip(f"{wsd_check.SHAKESPEARE} is missing")
    data = wsd_check.data_config("tinyshakespeare", "cache")
    assert (data.source, data.path) == ("files", str(wsd_check.SHAKESPEARE))  # as before --data: cached runs stay valid


def test_missing_data_fails_naming_the_option(wsd_check, tmp_path):
    with pytest.raises(SystemExit, match=r"--data .*nope\.txt does not exist"):
        wsd_check.data_config(str(tmp_path / "nope.txt"), "cache")
