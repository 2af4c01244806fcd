"""Hyperparameters per size: peak learning rate as a power of N, tokens per step as a power of D.

One learning rate for every size over- or under-trains the ends of a ladder and bends the fitted
law; the rules here make LR and batch functions of the run's own N and D, in closed form, so the
plan can print them and a tuning sweep (`sweep tune`) can fit them. Pure functions.
"""

from __future__ import annotations

import math


def rule_lr(base_lr: float, n_params: float, ref_params: float, exponent: float) -> float:
    """Peak LR = base_lr * (N / ref_params) ** exponent (OLMo's ladder uses exponent -1/3)."""
    if exponent == 0:
        return float(base_lr)
    return float(base_lr * (n_params / ref_params) ** exponent)


def rule_tokens_per_step(base_tokens: int, n_tokens: float, ref_tokens: float, exponent: float,
                         seq_len: int) -> int:
    """Tokens per optimizer step = base * (D / ref_tokens) ** exponent, as a power-of-two number of
    sequences of seq_len ("Power Lines", Bergsma et al. 2025, use exponent ~0.38).

    Powers of two keep micro-batches whole: an odd count of sequences forces micro-batches of one."""
    if exponent == 0:
        return int(base_tokens)
    raw = base_tokens * (n_tokens / ref_tokens) ** exponent / seq_len
    return int(seq_len * 2 ** max(0, round(math.log2(max(raw, 1.0)))))
