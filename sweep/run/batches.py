"""The order a run reads its training tokens in: a pure function of (seed, step), in memory that does not grow
with the corpus.

A corpus of up to EXACT_PERMUTATION_WINDOWS windows is shuffled with numpy's permutation (8 bytes a window,
8 MB at the limit). Beyond it, a keyed Feistel network gives a pseudo-random permutation of the windows in a
few integers, so a run on a 10 GB token file holds no 1 GB index; and windows are read with pread, so a long
run's resident memory does not fill up with the token file's pages either (they stay in the page cache).
"""

from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
import torch

EXACT_PERMUTATION_WINDOWS = 1 << 20
"""Up to this many windows the order is numpy's exact permutation (every result so far was trained with it)."""

_M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)


class FeistelPermutation:
    """A seeded permutation of range(n) in O(1) memory: a 4-round Feistel network over the smallest even number
    of bits that holds n, with cycle-walking (re-encrypt until the value falls below n) to stay in range.
    Indexing takes an int or an integer array."""

    def __init__(self, n: int, seed: Sequence[int], rounds: int = 4):
        bits = max(2, (n - 1).bit_length())
        bits += bits % 2
        self.n, self.half = n, np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        self.keys = np.random.default_rng(list(seed)).integers(0, 2**63, size=rounds, dtype=np.uint64)

    def _mix(self, x: np.ndarray, key: np.uint64) -> np.ndarray:
        z = (x + key) * _M1  # splitmix64's finalizer: every input bit reaches every output bit
        z ^= z >> np.uint64(31)
        z *= _M2
        z ^= z >> np.uint64(29)
        return z & self.mask

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ self._mix(right, key)
        return (left << self.half) | right

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: Union[int, np.ndarray]):
        x = np.atleast_1d(np.asarray(index, dtype=np.uint64))
        if x.size and int(x.max()) >= self.n:
            raise IndexError(f"index {int(x.max())} out of range for a permutation of {self.n}")
        out = self._encrypt(x)
        outside = out >= self.n
        while outside.any():  # at most 4x the range, so a few walks at most
            out[outside] = self._encrypt(out[outside])
            outside = out >= self.n
        out = out.astype(np.int64)
        return int(out[0]) if np.ndim(index) == 0 else out


class Batches:
    """Micro-batches of (B, T) windows in a seeded permutation; a pure function of the step.

    The train tokens are cut into non-overlapping windows of seq_len + 1 tokens (the last token
    of one window starts the next), shuffled once per epoch; runs up to one epoch see every token
    at most once, and resuming at step s needs nothing but s.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, accum: int, seed: int):
        self.tokens, self.T, self.B, self.accum, self.seed = tokens, seq_len, batch_size, accum, seed
        self.n_windows = (len(tokens) - 1) // seq_len
        self._perm_epoch, self._perm = -1, None
        # A memmapped token file is read with pread: slicing the map would leave its pages in this process's RSS.
        self._fd = os.open(tokens.filename, os.O_RDONLY) if isinstance(tokens, np.memmap) and tokens.filename else None
        self._base = int(getattr(tokens, "offset", 0) or 0)

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def _permutation(self, epoch: int):
        if epoch != self._perm_epoch:
            if self.n_windows <= EXACT_PERMUTATION_WINDOWS:
                self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            else:
                self._perm = FeistelPermutation(self.n_windows, [self.seed, epoch])
            self._perm_epoch = epoch
        return self._perm

    def _window(self, start: int) -> np.ndarray:
        if self._fd is None:
            return self.tokens[start: start + self.T + 1]
        size = self.tokens.dtype.itemsize
        raw = os.pread(self._fd, (self.T + 1) * size, self._base + start * size)
        return np.frombuffer(raw, dtype=self.tokens.dtype)

    def get(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = (step * self.accum + micro) * self.B
        idx = np.arange(first, first + self.B, dtype=np.int64)
        epochs, within = idx // self.n_windows, idx % self.n_windows
        windows = np.empty(self.B, dtype=np.int64)
        for epoch in np.unique(epochs):  # one epoch, or two when the micro-batch spans a boundary
            here = epochs == epoch
            windows[here] = self._permutation(int(epoch))[within[here]]
        rows = np.stack([self._window(int(w) * self.T) for w in windows]).astype(np.int64)
        # Two contiguous tensors, not views of one: pin_memory() and a non-blocking copy of a strided
        # view each make a contiguous copy first, so a view would be copied twice on its way to a GPU.
        return torch.from_numpy(np.ascontiguousarray(rows[:, :-1])), torch.from_numpy(np.ascontiguousarray(rows[:, 1:]))
