"""A run's counts, known before any data is read: parameters, FLOPs per token, tokens and whole optimizer steps.

Pure: `sweep plan` and the ladder call it for every planned run, the trainer once per run.
"""

from __future__ import annotations

from dataclasses import dataclass

from sweep.config import ConfigError, RunConfig, validate
from sweep.run.model import count_params, flops_per_token


@dataclass(frozen=True)
class RunShape:
    """Counts of a run, known before any data is read."""

    vocab_size: int
    n_params: int
    n_params_non_embedding: int
    n_params_embedding: int
    n_params_by_group: dict
    flops_per_token: float
    n_tokens: int
    steps: int

    @property
    def flops(self) -> float:
        return self.flops_per_token * self.n_tokens

    @property
    def flops_6nd(self) -> float:
        return 6.0 * self.n_params * self.n_tokens


def run_shape(cfg: RunConfig) -> RunShape:
    """Resolve the budget into whole optimizer steps; raises ConfigError if below one step."""
    validate(cfg)
    vocab = cfg.tokenizer.vocab_size
    counts = count_params(cfg.model, vocab)
    fpt = flops_per_token(cfg.model, vocab)["flops_per_token"]
    b = cfg.budget
    if b.n_tokens is not None:
        requested, source = float(b.n_tokens), f"budget.n_tokens={b.n_tokens}"
    elif b.tokens_per_param is not None:
        n = counts["n_params" if b.param_convention == "total" else "n_params_non_embedding"]
        requested, source = b.tokens_per_param * n, f"budget.tokens_per_param={b.tokens_per_param} (N={n})"
    else:
        requested, source = b.flops / fpt, f"budget.flops={b.flops:g}"
    per_step = cfg.train.tokens_per_step
    steps = int(round(requested / per_step))
    if requested < per_step:
        raise ConfigError(
            f"{source} gives {requested:.0f} tokens, less than one optimizer step of "
            f"train.tokens_per_step={per_step}: raise the budget or lower train.tokens_per_step"
        )
    return RunShape(vocab, counts["n_params"], counts["n_params_non_embedding"], counts["n_params_embedding"],
                    counts["n_params_by_group"], fpt, steps * per_step, steps)
