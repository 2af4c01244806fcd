"""Fixtures every test module shares: the test corpus, the tiny-run config and the tiny sweep.

The test corpus is checked in (tests/data/shakespeare/: the first 310 kB of tinyshakespeare, public
domain), so these tests never skip for want of ../shared; tests about the shared data itself read it
there. Fixtures that build overrides return functions taking the folder to work in, because several
tests need two independent runs side by side (a clean run and a killed one).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Callable, List

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHAKESPEARE = DATA / "shakespeare" / "tinyshakespeare.txt"
"""The first 310 kB of ../shared/data/tinyshakespeare.txt, same file name (document names come from it)."""


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    return SHAKESPEARE


@pytest.fixture(scope="session")
def tiny() -> Callable[..., List[str]]:
    """tiny(folder, *overrides): a ~100k-parameter byte-level model on 300 kB of Shakespeare, results and
    caches under `folder`; seconds on 2 cores."""
    def make(folder: Path, *extra: str) -> List[str]:
        return [
            f"results_dir={folder / 'results'}", f"data.cache_dir={folder / 'cache'}", "sweep_name=t",
            "data.source=files", f"data.path={SHAKESPEARE}", "data.max_bytes=300000", "data.val_tokens=8192",
            "tokenizer=byte", "model.n_layer=2", "model.d_model=64", "model.n_head=4", "model.seq_len=64",
            "train.batch_size=16", "train.tokens_per_step=1024", "train.lr=3e-3", "train.threads=1",
            "budget.n_tokens=163840", "logger.mode=disabled", *extra,
        ]
    return make


class Interrupt(Exception):
    """A process killed mid-run, as a test stages it."""


@contextlib.contextmanager
def dies_after_checkpoints(n: int):
    """checkpoint.save raises Interrupt right after its n-th write: a run killed with that checkpoint on disk."""
    from sweep.run import checkpoint

    original, calls = checkpoint.save, {"n": 0}

    def save(path, state):
        original(path, state)
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupt

    checkpoint.save = save
    try:
        yield
    finally:
        checkpoint.save = original


def small_corpus(folder: Path) -> Path:
    """~400 KB of this Python's stdlib sources as one text file (deterministic, always present)."""
    out = folder / "corpus.txt"
    if not out.exists():
        parts, size = [], 0
        for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
            text = p.read_text(errors="replace")
            parts.append(text)
            size += len(text)
            if size > 400_000:
                break
        out.write_text("\n\n".join(parts))
    return out


@pytest.fixture(scope="session")
def sweep_args() -> Callable[..., list]:
    """sweep_args(folder, command, *overrides): the `python -m sweep` command line of a 2-run sweep (two
    tiny byte-level models at 3e9 FLOPs on 400 kB of stdlib source), results under `folder`."""
    def make(folder: Path, *extra: str) -> list:
        corpus = small_corpus(folder)
        return [sys.executable, "-m", "sweep", *extra[:1], "experiment=default", "sweep_name=t",
                f"results_dir={folder / 'results'}", "data=files", f"data.path={corpus}",
                f"data.cache_dir={folder / 'cache'}", "data.val_tokens=4096", "tokenizer=byte",
                "tokenizer.vocab_size=256", "model.seq_len=32", "train.batch_size=16", "train.tokens_per_step=512",
                "train.threads=1", "experiment.flops_budgets=[3e9]",
                "experiment.target_params_non_embedding=[3000,12000]", "experiment.family=free",
                "experiment.sizes_per_budget=0", "experiment.centre=tokens_per_param", "experiment.seeds=[]",
                "experiment.batch_exponent=0", "experiment.min_steps=5",
                "logger=disabled", "launch.progress=false", *extra[1:]]
    return make


@pytest.fixture(scope="session")
def run_sweep(sweep_args) -> Callable[..., subprocess.CompletedProcess]:
    """run_sweep(folder, command, *overrides, check=True, timeout=300): run sweep_args' command in `folder`."""
    def run(folder: Path, *extra: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(sweep_args(folder, *extra), cwd=folder, capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc
    return run


@pytest.fixture(scope="session")
def results() -> Callable[..., dict]:
    """results(folder, name='t'): {run_id: result.json} of the sweep `name` under folder/results."""
    def read(folder: Path, name: str = "t") -> dict:
        out = {}
        for f in sorted((folder / "results" / name / "runs").glob("*/result.json")):
            r = json.loads(f.read_text())
            out[r["run_id"]] = r
        return out
    return read


TRUE_LAW = {"E": 1.8, "A": 400.0, "B": 1800.0, "alpha": 0.34, "beta": 0.28}
"""Chinchilla's published law (Hoffmann et al. 2022), the truth the synthetic sweeps are drawn from."""


@pytest.fixture(scope="session")
def true_law() -> dict:
    return dict(TRUE_LAW)


@pytest.fixture(scope="session")
def small_grid() -> dict:
    """A coarse approach-3 start grid: enough for clean synthetic data, and fast."""
    return dict(grid_alpha=[0.0, 0.5, 1.0], grid_beta=[0.0, 0.5, 1.0], grid_e=[0.0, 0.5], grid_a=[0.0, 5.0, 10.0],
                grid_b=[0.0, 5.0, 10.0])


@pytest.fixture(scope="session")
def isoflop_runs() -> Callable[..., list]:
    """isoflop_runs(seed=0, noise=0.003): an IsoFLOP sweep from TRUE_LAW with multiplicative noise, 6 budgets x 9 sizes."""
    from sweep.fit.laws import chinchilla_loss

    def make(seed: int = 0, noise: float = 0.003) -> list:
        t = TRUE_LAW
        rng = np.random.default_rng(seed)
        rows = []
        for c in np.logspace(17, 20, 6):
            n_opt = (t["alpha"] * t["A"] / (t["beta"] * t["B"])) ** (1 / 0.62) * (c / 6) ** (0.28 / 0.62)
            for n in n_opt * np.logspace(-1, 1, 9):
                d = c / (6 * n)
                loss = chinchilla_loss(n, d, *t.values()) * np.exp(noise * rng.standard_normal())
                rows.append({"n_params": n, "n_tokens": d, "loss": loss, "status": "done"})
        return rows
    return make
