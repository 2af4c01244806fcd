"""Validation loss of a model on the run's fixed validation tokens."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def evaluate(model, val: np.ndarray, seq_len: int, batch_size: int, device, ctx, max_tokens=None) -> float:
    """Mean next-token loss (nats) over non-overlapping windows of the fixed validation tokens.

    With `max_tokens` (intermediate evaluations) the windows are every k-th one across the whole set,
    not a prefix: the validation tokens are a few whole documents one after another, and a prefix
    would measure only the first of them, so the curve would not lead to the final loss."""
    model.eval()
    n_all = (len(val) - 1) // seq_len
    stride = 1 if max_tokens is None else max(1, n_all // max(1, (max_tokens - 1) // seq_len))
    starts = list(range(0, n_all, stride))[: n_all if max_tokens is None else max(1, (max_tokens - 1) // seq_len)]
    data = torch.from_numpy(np.asarray(val[: n_all * seq_len + 1]).astype(np.int64))
    n = len(starts)
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        rows = torch.stack([data[k * seq_len: (k + 1) * seq_len + 1] for k in (starts[w] for w in range(i, j))]).to(device)
        with ctx:
            _, loss = model(rows[:, :-1], rows[:, 1:])
        total += loss.double() * (j - i)
        count += j - i
    model.train()
    return float(total / count)
