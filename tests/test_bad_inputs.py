"""Bad input is refused before any training step, with a message naming what is wrong and the fix,
and the results folder is left exactly as it was (file listing and modification times).

Every case goes through the real entry point, `sweep.cli.main(["train" | "fit", ...])`.
"""

import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from sweep.cli import load_run_config, main
from sweep.store.results import run_dir, write_json_atomic
from sweep.run.shape import run_shape

from conftest import SHAKESPEARE  # the checked-in 310 kB of tinyshakespeare


def base(tmp: Path, corpus: Optional[Path] = None, *extra: str) -> List[str]:
    """A tiny byte-level run (as tests/test_train.py's tiny()) on `corpus` (default: 300 kB of Shakespeare)."""
    return [f"results_dir={tmp / 'results'}", f"data.cache_dir={tmp / 'cache'}", "sweep_name=t",
            "data.source=files", f"data.path={corpus or SHAKESPEARE}", "data.max_bytes=300000",
            "data.val_tokens=8192", "tokenizer=byte", "model.n_layer=2", "model.d_model=64", "model.n_head=4",
            "model.seq_len=64", "train.batch_size=16", "train.tokens_per_step=1024", "train.threads=1",
            "budget.n_tokens=20480", "logger.mode=disabled", *extra]


# ----------------------------------------------------------------------------- setups


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / "corpus" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def shakespeare_copy(tmp: Path) -> Path:
    return write(tmp, "shakespeare.txt", SHAKESPEARE.read_bytes()[:300_000])


def bad_result(text: str) -> Callable:
    """Setup: write `text` as the run's own result.json."""
    def setup(tmp: Path, args: List[str]) -> None:
        cfg = load_run_config(args)
        path = run_dir(cfg, run_shape(cfg).n_tokens) / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    return setup


def corpus_changed(tmp: Path, args: List[str]) -> None:
    """Setup: a finished run of the sweep on the corpus as it was; then the corpus file changes."""
    first = [a for a in args if not a.startswith("budget.n_tokens=")] + ["budget.n_tokens=10240"]
    assert main(["train", *first]) == 0
    path = tmp / "corpus" / "shakespeare.txt"
    path.write_bytes(path.read_bytes().replace(b"Citizen", b"Citizan"))


def install_fakepkg(tmp: Path, version: str) -> Path:
    """A site-packages folder holding one package at `version` (its source and its metadata), for
    data.source=python."""
    write(tmp, "site/fakepkg/__init__.py", b"".join(b"def f%d(x):\n    return x + %d\n\n" % (i, i) for i in range(4000))
          + f"__version__ = {version!r}\n".encode())
    for old in (tmp / "corpus" / "site").glob("fakepkg-*.dist-info"):
        shutil.rmtree(old)
    write(tmp, f"site/fakepkg-{version}.dist-info/METADATA", f"Name: fakepkg\nVersion: {version}\n".encode())
    write(tmp, f"site/fakepkg-{version}.dist-info/top_level.txt", b"fakepkg\n")
    return tmp / "corpus" / "site"


def package_upgraded(tmp: Path, args: List[str]) -> None:
    """Setup: a finished run of the sweep on the installed package as it was; then a newer version of it."""
    first = [a for a in args if not a.startswith("budget.n_tokens=")] + ["budget.n_tokens=10240"]
    assert main(["train", *first]) == 0
    install_fakepkg(tmp, "2.0")


# --- fit inputs: synthetic results folders from a Chinchilla-like law

def law(n: float, d: float) -> float:
    return 1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28


def fit_results(tmp: Path, points, *, edit: Optional[Callable[[int, dict], dict]] = None) -> Path:
    """results/t with one done run per (n, d); `edit(i, result)` may alter a result before writing."""
    sweep = tmp / "results" / "t"
    for i, (n, d) in enumerate(points):
        res = {"run_id": f"r{i:03d}", "run_name": f"N{n:.3g}-D{d:.3g}", "status": "done",
               "final_val_loss": law(n, d), "n_params": int(n), "n_params_non_embedding": int(n * 0.9),
               "n_tokens": int(d), "flops": 6.0 * n * d, "flops_6nd": 6.0 * n * d,
               "corpus_hash": "c0", "tokenizer_hash": "t0"}
        if edit:
            res = edit(i, res)
        write_json_atomic(sweep / "runs" / res["run_id"] / "result.json", res)
    return sweep


def isoflop(budgets=(1e15, 3e15, 1e16), sizes=5, span=(0.2, 5.0)):
    import numpy as np

    points = []
    for c in budgets:
        n_opt = 0.6 * (c / 6) ** 0.5 * 0.1
        for f in np.geomspace(span[0], span[1], sizes):
            n = n_opt * f
            points.append((n, c / (6 * n)))
    return points


def fit_setup(points=None, edit=None, methods="[approach2,approach3]") -> Callable:
    def setup(tmp: Path, args: List[str]) -> None:
        fit_results(tmp, isoflop() if points is None else points, edit=edit)
        args[:] = [f"input={tmp / 'results' / 't'}", f"fit.methods={methods}", "wandb.mode=disabled",
                   "plots=false", "fit.n_bootstrap=0"]
    return setup


def truncate_all(tmp: Path, args: List[str]) -> None:
    sweep = fit_results(tmp, isoflop(budgets=(1e15,), sizes=2))
    for p in sweep.glob("runs/*/result.json"):
        p.write_text(p.read_text()[:40])
    args[:] = [f"input={sweep}", "wandb.mode=disabled", "plots=false"]


def folder_without_result(tmp: Path, args: List[str]) -> None:
    sweep = tmp / "results" / "t"
    (sweep / "runs" / "abc123").mkdir(parents=True)
    (sweep / "runs" / "abc123" / "metrics.jsonl").write_text('{"step": 1, "train_loss": 5.0}\n')
    args[:] = [f"input={sweep}", "wandb.mode=disabled", "plots=false"]


def user_experiment_named_default(tmp: Path, args: List[str]) -> None:
    """Setup: the user's config folder holds experiment/default.yaml, the name of one of sweep's own."""
    (tmp / "my_conf" / "experiment").mkdir(parents=True)
    (tmp / "my_conf" / "experiment" / "default.yaml").write_text(
        "# @package _global_\nexperiment:\n  name: mine\n  flops_budgets: [1.0e11]\n")


def export_setup(tmp: Path, args: List[str]) -> None:
    """Setup: a sweep folder with a finished run; `sweep export` of it with a format we do not write."""
    fit_results(tmp, [(1e6, 1e7)])
    args[:] = [f"results_dir={tmp / 'results'}", "sweep_name=t", "format=xlsx", "launch.probe=false"]


# ----------------------------------------------------------------------------- the table


@dataclass
class Case:
    name: str
    extra: List[str] = field(default_factory=list)
    """Overrides added to the tiny run (train cases)."""
    words: List[str] = field(default_factory=list)
    """Substrings the error output must contain: what is wrong (the field) and how to fix it."""
    setup: Optional[Callable] = None
    """setup(tmp, args) prepares files (before the snapshot) and may rewrite args."""
    corpus: Optional[Callable] = None
    """corpus(tmp) -> path of the corpus to use instead of Shakespeare."""
    command: str = "train"
    xfail: Optional[str] = None
    """Why the message is not good enough yet, and the change that fixes it (in a file this suite does not own)."""


CASES = [
    # --- config values
    Case("zero layers", ["model.n_layer=0"], ["model.n_layer=0", "must be a positive integer"]),
    Case("negative width", ["model.d_model=-64"], ["model.d_model=-64", "must be a positive integer"]),
    Case("heads do not divide width", ["model.n_head=3"], ["model.d_model=64", "divisible by model.n_head=3"]),
    Case("step not a multiple of seq_len", ["train.tokens_per_step=1000"],
         ["train.tokens_per_step=1000", "multiple of model.seq_len=64"]),
    Case("budget zero", ["budget.n_tokens=0"], ["budget.n_tokens=0", "must be positive"]),
    Case("budget negative", ["budget.n_tokens=-5"], ["budget.n_tokens=-5", "must be positive"]),
    Case("budget below one step", ["budget.n_tokens=512"],
         ["budget.n_tokens=512", "less than one optimizer step", "raise the budget or lower train.tokens_per_step"]),
    Case("flops budget below one step", ["budget.n_tokens=null", "budget.flops=1e6"],
         ["budget.flops=1e+06", "less than one optimizer step", "raise the budget"]),
    Case("tokens per param below one step", ["budget.n_tokens=null", "budget.tokens_per_param=0.001"],
         ["budget.tokens_per_param=0.001", "less than one optimizer step"]),
    Case("two budgets at once", ["budget.tokens_per_param=20"], ["set exactly one of budget.n_tokens"]),
    Case("seq_len above the validation tokens", ["model.seq_len=100000"],
         ["model.seq_len=100000", "shorter than the validation split", "data.val_tokens"]),
    Case("byte vocab not 256", ["tokenizer.vocab_size=300"], ["tokenizer.vocab_size=300", "must be 256"]),
    Case("bpe vocab below bytes", ["tokenizer=bpe", "tokenizer.vocab_size=100"],
         ["tokenizer.vocab_size=100", "above 256"]),
    Case("zero learning rate", ["train.lr=0"], ["train.lr=0", "must be positive"]),
    Case("unknown schedule", ["train.schedule=linear"], ["train.schedule='linear'", "'cosine', 'wsd' or 'constant'"]),
    Case("val fraction above one", ["data.val_fraction=1.5"], ["data.val_fraction=1.5", "must be in (0, 1)"]),
    Case("unknown device", ["train.device=tpu"], ["train.device='tpu'", "'auto', 'cpu' or 'cuda[:i]'"]),
    Case("unknown logger mode", ["logger.mode=loud"], ["logger.mode='loud'", "'offline', 'online' or 'disabled'"]),
    Case("sweep name escaping the results folder", ["sweep_name=../evil"],
         ["sweep_name='../evil'", "without path separators"]),
    Case("unknown top-level key", ["+foo=1"], ["unknown config key(s) ['foo']", "known top-level keys"]),
    Case("unknown config group option", ["model=huge"], ["model/huge", "Available options in 'model'", "tiny"]),
    Case("unknown key in a section", ["model.n_layers=2"], ["Key 'n_layers' not in", "known keys"]),
    Case("wrong type (int)", ["model.n_layer=two"], ["model.n_layer", "could not be converted to Integer"]),
    Case("wrong type (float)", ["train.lr=fast"], ["train.lr", "could not be converted to Float"]),
    # --- data
    Case("files source without a path", ["data.path=null"], ["data.path=None", "required when data.source='files'"]),
    Case("missing corpus path", ["data.path=/nonexistent/corpus.txt"],
         ["data.path='/nonexistent/corpus.txt' does not exist", "point it at a text/JSONL file"]),
    Case("empty corpus", words=["the corpus is empty", "point data.path at text"],
         corpus=lambda tmp: write(tmp, "empty.txt", b"")),
    Case("binary file", words=["looks binary", "text files only"],
         corpus=lambda tmp: write(tmp, "model.bin", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 200)),
    Case("non-UTF-8 file", words=["is not UTF-8", "convert it to UTF-8"],
         corpus=lambda tmp: write(tmp, "latin1.txt", "caf\u00e9 na\u00efve r\u00e9sum\u00e9\n\n".encode("latin-1") * 3000)),
    Case("JSONL without the text column", ["data.text_field=body"], ["data.text_field='body'", "set data.text_field"],
         corpus=lambda tmp: write(tmp, "docs.jsonl", b"".join(b'{"text": "line %d of a document"}\n' % i
                                                             for i in range(2000)))),
    Case("sequence/validation longer than the corpus", ["data.max_bytes=20000"],
         ["fewer than data.val_tokens=8192", "lower data.val_tokens"]),
    Case("budget larger than the corpus", ["data.max_bytes=60000", "data.val_tokens=2048", "budget.n_tokens=1024000"],
         ["n_tokens=1024000", "lower the budget, use a bigger corpus", "data.allow_repeat=true"]),
    Case("vocab larger than the corpus allows",
         ["tokenizer=bpe", "tokenizer.vocab_size=60000", "data.max_bytes=20000", "data.val_tokens=512"],
         ["tokenizer.vocab_size=60000 is more than this corpus supports", "set tokenizer.vocab_size <="]),
    Case("corpus changed since the sweep's runs (and its cached tokenizer)", [],
         ["the corpus changed", "corpus_hash=", "Restore the original corpus", "new sweep_name"],
         corpus=shakespeare_copy, setup=corpus_changed),
    Case("installed package upgraded since the sweep's runs (data.source=python)",
         ["data.source=python", "data.packages=[fakepkg]", "data.max_bytes=null"],
         ["the corpus changed", "data.source=python reads", "data.packages=['fakepkg']", "Reinstall the versions",
          "since that run: fakepkg 1.0 -> 2.0", "new sweep_name"],
         corpus=lambda tmp: install_fakepkg(tmp, "1.0"), setup=package_upgraded),
    # --- results
    Case("truncated result.json of the run", words=["unreadable or truncated", "result.json", "delete"],
         setup=bad_result('{"run_id": "x", "status": "do')),
    Case("hand-edited status in result.json", words=["status='finished'", "delete"],
         setup=bad_result('{"run_id": "x", "status": "finished"}')),
    Case("result.json copied from another run", words=["run_id='0123456789ab'", "copied or hand-edited", "delete"],
         setup=bad_result('{"run_id": "0123456789ab", "status": "done", "final_val_loss": 3.1}')),
    Case("done result.json with a hand-edited loss", words=["final_val_loss='low'", "delete"],
         setup=bad_result('{"run_id": "%s", "status": "done", "final_val_loss": "low"}')),
    Case("fit: every result.json truncated", command="fit", words=["skipped", "truncated", "no finished runs"],
         setup=truncate_all),
    Case("fit: a run folder with no result", command="fit", words=["no runs/*/result.json under", "point input="],
         setup=folder_without_result),
    Case("fit: runs from different corpora", command="fit", words=["different corpora", "fit each corpus_hash separately"],
         setup=fit_setup(edit=lambda i, r: {**r, "corpus_hash": f"c{i % 2}"})),
    Case("fit: runs from different tokenizers", command="fit", words=["different tokenizers", "separately"],
         setup=fit_setup(edit=lambda i, r: {**r, "tokenizer_hash": f"t{i % 2}"})),
    Case("fit: a hand-edited loss", command="fit", words=["non-finite or non-positive loss", "drop or fix those rows"],
         setup=fit_setup(edit=lambda i, r: {**r, "final_val_loss": "oops"} if i == 3 else r)),
    # --- fits
    Case("fit: fewer points than parameters", command="fit", words=["5 parameters but only 3 runs", "add runs"],
         setup=fit_setup(points=isoflop(budgets=(1e15,), sizes=3), methods="[approach3]")),
    Case("fit: one model size only", command="fit", words=["only one model size", "several sizes"],
         setup=fit_setup(points=[(1e6, 1e7), (1e6, 2e7), (1e6, 4e7)])),
    Case("fit: non-finite loss", command="fit", words=["non-finite or non-positive loss", "drop or fix"],
         setup=fit_setup(edit=lambda i, r: {**r, "final_val_loss": math.nan} if i == 0 else r)),
    Case("fit: non-positive loss", command="fit", words=["non-finite or non-positive loss", "drop or fix"],
         setup=fit_setup(edit=lambda i, r: {**r, "final_val_loss": -1.0} if i == 0 else r)),
    Case("fit: all sizes on one side of a budget's minimum", command="fit",
         words=["minimum at the edge", "add", "models to this budget"],
         setup=fit_setup(points=isoflop(span=(8.0, 80.0)), methods="[approach2]")),  # all above the optimum (~4.5x n_opt)
    # --- config folders and export
    Case("config folder that does not exist", ["--config-dir", "{tmp}/nope"],
         ["config folder", "/nope' does not exist", "give a folder holding config groups"]),
    Case("user experiment shadowing ours", ["--config-dir", "{tmp}/my_conf", "experiment=default"],
         ["experiment/default.yaml", "searched first", "ignore yours", "rename yours"],
         setup=user_experiment_named_default, command="plan"),
    Case("export format we do not write", command="export", setup=export_setup,
         words=["format='xlsx'", "use format=csv or format=parquet"]),
    # --- W&B
    Case("W&B directory not writable", ["logger.mode=offline", "logger.dir={tmp}/afile/wandb"],
         ["logger.dir=", "W&B cannot write", "Set logger.dir to a writable folder", "logger.mode=disabled"],
         setup=lambda tmp, args: (tmp / "afile").write_text("a file, not a folder")),
]


def snapshot(folder: Path) -> dict:
    """Every path under `folder` with its kind, size and mtime (ns); {} when it does not exist."""
    if not folder.exists():
        return {}
    out = {".": ("dir", 0, folder.stat().st_mtime_ns)}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(folder))] = ("dir" if p.is_dir() else "file", 0 if p.is_dir() else st.st_size,
                                           st.st_mtime_ns)
    return out


def test_the_table_is_large_enough():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(reason=c.xfail, strict=True)]
                                               if c.xfail else []) for c in CASES])
def test_bad_input_is_refused_early_and_changes_nothing(case, tmp_path, capsys, caplog):
    corpus = case.corpus(tmp_path) if case.corpus else None
    args = [a.replace("{tmp}", str(tmp_path)) for a in base(tmp_path, corpus, *case.extra)]
    if case.setup:
        case.setup(tmp_path, args)
    # A result.json template with %s gets the run's real id (a 'done' file that is only hand-edited).
    for p in (tmp_path / "results").rglob("result.json"):
        if "%s" in p.read_text():
            p.write_text(p.read_text() % p.parent.name)
    results = tmp_path / "results"
    before = snapshot(results)
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        rc = main([case.command, *args])
    out = capsys.readouterr()
    message = out.err + out.out + caplog.text
    assert rc != 0, message[-2000:]
    for word in case.words:
        assert word in message, (word, message[-2000:])
    assert snapshot(results) == before
    assert not any(p.name == "metrics.jsonl" for p in results.rglob("*")) or case.setup in (
        corpus_changed, package_upgraded, folder_without_result)  # these start from a folder holding a curve already
    if case.setup in (corpus_changed, package_upgraded):
        assert len(list(results.glob("t/runs/*/metrics.jsonl"))) == 1  # only the earlier, finished run's


def test_online_mode_without_network_falls_back_to_offline_and_keeps_the_result(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.warns(UserWarning, match="online mode unavailable.*offline"):
        rc = main(["train", *base(tmp_path, None, "logger.mode=online")])
    assert rc == 0
    (path,) = (tmp_path / "results" / "t" / "runs").glob("*/result.json")
    result = json.loads(path.read_text())
    assert result["status"] == "done" and math.isfinite(result["final_val_loss"])
    assert list((tmp_path / "results" / "t" / "wandb").glob("offline-run-*"))
