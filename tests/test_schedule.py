"""Learning-rate schedules and data order: pure functions of the step."""

import math

import numpy as np
import pytest

from sweep.config import TrainConfig
from sweep.run.schedule import lr_factor
from sweep.run.batches import Batches


def test_cosine_warms_up_then_ends_at_min_lr_exactly_at_the_budget():
    t = TrainConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    f = [lr_factor(s, 100, t) for s in range(100)]
    assert f[0] == pytest.approx(1 / 11) and f[9] == pytest.approx(10 / 11)
    assert f[10] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(0.1)  # the last step of the run, not of a longer schedule
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    mid = 10 + (99 - 10) / 2
    assert lr_factor(int(mid), 100, t) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * int(mid - 10) / 89)))


def test_cosine_depends_on_the_run_length():
    t = TrainConfig(schedule="cosine", warmup_steps=0, min_lr_ratio=0.0)
    assert lr_factor(50, 101, t) == pytest.approx(0.5)
    assert lr_factor(50, 201, t) > 0.8


@pytest.mark.parametrize("shape,mid_value", [("linear", 0.55), ("1-sqrt", 0.1 + 0.9 * (1 - math.sqrt(0.5)))])
def test_wsd_constant_then_cooldown(shape, mid_value):
    t = TrainConfig(schedule="wsd", warmup_steps=5, cooldown_fraction=0.2, cooldown_shape=shape, min_lr_ratio=0.1)
    f = [lr_factor(s, 100, t) for s in range(100)]
    assert f[5:80] == [1.0] * 75  # stable phase
    assert f[89] == pytest.approx(mid_value)  # halfway through the 20-step cooldown
    assert f[99] == pytest.approx(0.1)


def test_batches_are_a_pure_function_of_seed_and_step():
    tokens = np.arange(10_000, dtype=np.uint16)
    a = Batches(tokens, seq_len=16, batch_size=4, accum=2, seed=3)
    b = Batches(tokens, seq_len=16, batch_size=4, accum=2, seed=3)
    x1, y1 = a.get(7, 1)
    _ = b.get(0, 0)  # a different history must not matter
    x2, y2 = b.get(7, 1)
    assert (x1 == x2).all() and (y1 == y2).all()
    assert (y1[:, :-1] == x1[:, 1:]).all()  # targets are inputs shifted by one
    x3, _ = Batches(tokens, 16, 4, 2, seed=4).get(7, 1)
    assert not (x1 == x3).all()


def test_one_epoch_sees_every_window_once():
    tokens = np.arange(16 * 40 + 1, dtype=np.uint16)
    batches = Batches(tokens, seq_len=16, batch_size=5, accum=2, seed=0)
    starts = [int(x[i, 0]) for step in range(4) for micro in range(2) for x in [batches.get(step, micro)[0]]
              for i in range(5)]
    assert sorted(starts) == [16 * i for i in range(40)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 100, 1000, 4097])
def test_feistel_permutation_is_a_seeded_bijection(n):
    from sweep.run.batches import FeistelPermutation

    p = FeistelPermutation(n, [3, 0])
    values = p[np.arange(n)]
    assert sorted(values.tolist()) == list(range(n))
    assert [p[i] for i in range(min(n, 50))] == values[:50].tolist()  # int and array indexing agree
    if n >= 100:
        assert values.tolist() != list(range(n))
        assert not np.array_equal(values, FeistelPermutation(n, [3, 1])[np.arange(n)])  # another epoch, another order
        # shuffled, not shifted: neighbours land far apart on average
        assert np.abs(np.diff(values)).mean() > n / 10


def test_a_large_corpus_reads_its_windows_in_a_constant_memory_order(monkeypatch, tmp_path):
    import sweep.run.batches as batches

    tokens = np.arange(16 * 300 + 1, dtype=np.uint16)
    path = tmp_path / "train.bin"
    tokens.tofile(path)
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    exact = Batches(mm, seq_len=16, batch_size=5, accum=2, seed=0)
    assert isinstance(exact._permutation(0), np.ndarray) and exact._fd is not None
    x, y = exact.get(3, 1)
    assert (x == Batches(tokens, 16, 5, 2, seed=0).get(3, 1)[0]).all()  # pread gives what slicing the array gives
    monkeypatch.setattr(batches, "EXACT_PERMUTATION_WINDOWS", 100)
    large = Batches(mm, seq_len=16, batch_size=5, accum=2, seed=0)
    starts = [int(x[i, 0]) for step in range(30) for micro in range(2) for x in [large.get(step, micro)[0]]
              for i in range(5)]
    assert sorted(starts) == [16 * i for i in range(300)]  # one epoch still sees every window once
    assert isinstance(large._permutation(0), batches.FeistelPermutation)
