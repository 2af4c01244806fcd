"""Shape rules: how a parameter count becomes a model shape, and the check that a ladder is one family.

A scaling law fitted across shapes of two kinds (say one-layer and two-layer transformers, which
differ in what they can learn at all: induction heads need two layers) describes neither kind, and
its extrapolation inherits the mix. So the default rule is one knob, as in nanochat: depth sets the
whole shape, d_model = aspect_ratio * n_layer rounded to whole heads, at least `min_layers` layers.
Depth and width then never decrease as N grows. The older 'free' rule (closest count among shapes
near the aspect ratio) stays for explicit experiments; `check_one_family` refuses a ladder that mixes
shapes unless asked.

Pure functions of configs and counts: nothing here builds a model.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Literal, Optional

from sweep.config import ConfigError, ModelConfig
from sweep.run.counts import count_params

Family = Literal["depth", "free"]
FAMILIES = ("depth", "free")
MAX_LAYERS = 512
"""Depth search stops here; a target beyond it is a configuration mistake, not a model."""


def with_shape(base: ModelConfig, n_layer: int, d_model: int, n_head: int) -> ModelConfig:
    return dataclasses.replace(base, n_layer=int(n_layer), d_model=int(d_model), n_head=int(n_head))


def depth_shape(n_layer: int, aspect_ratio: float, head_dim: int, base: ModelConfig) -> ModelConfig:
    """The depth family's member with `n_layer` blocks: d_model = aspect_ratio * n_layer, in whole heads."""
    heads = max(1, round(aspect_ratio * n_layer / head_dim))
    return with_shape(base, n_layer, heads * head_dim, heads)


def _check_rule(aspect_ratio: float, head_dim: int) -> None:
    if aspect_ratio <= 0 or head_dim <= 0:
        raise ConfigError(f"experiment.aspect_ratio={aspect_ratio!r}, head_dim={head_dim!r}: must be positive")


def depth_for_count(target: float, count: Callable[[ModelConfig], float], aspect_ratio: float, head_dim: int,
                    base: ModelConfig, min_layers: int = 2) -> ModelConfig:
    """The depth-family shape (n_layer >= min_layers) whose `count` is closest to `target` in log.

    `count` grows with depth (width never shrinks as depth grows), so the search walks up from
    min_layers and stops at the first shape at or above the target."""
    if target <= 0:
        raise ConfigError(f"model size {target!r}: must be positive")
    _check_rule(aspect_ratio, head_dim)
    prev = None
    for n_layer in range(max(1, min_layers), MAX_LAYERS + 1):
        m = depth_shape(n_layer, aspect_ratio, head_dim, base)
        n = count(m)
        if n >= target:
            if prev is not None and abs(math.log(prev[1] / target)) <= abs(math.log(n / target)):
                return prev[0]
            return m
        prev = (m, n)
    raise ConfigError(f"model size {target:.3g}: needs more than {MAX_LAYERS} layers at "
                      f"experiment.aspect_ratio={aspect_ratio}: raise the aspect ratio or lower the size")


def free_shape_for_params(target: float, aspect_ratio: float, head_dim: int, base: ModelConfig,
                          vocab_size: int = 256) -> ModelConfig:
    """The 'free' rule: the shape whose non-embedding count is closest to `target`.

    Non-embedding N is about 12 * n_layer * d_model^2 and we aim for d_model = aspect_ratio *
    n_layer, so n_layer ~ (N / (12 * aspect_ratio^2))^(1/3). Around that depth (n_layer -1 .. +1,
    at least 1) every d_model that is a multiple of `head_dim` near sqrt(N / (12 * n_layer)) is
    scored by its exact count; the closest count wins among shapes whose d_model/n_layer is within
    a factor 2 of the aspect ratio (any shape if none is), ties going to the aspect ratio nearer the
    aim. Counts are close to the target, but neighbouring sizes may differ in depth both ways.
    """
    if target <= 0:
        raise ConfigError(f"experiment.target_params_non_embedding={target!r}: must be positive")
    _check_rule(aspect_ratio, head_dim)
    depth = (target / (12.0 * aspect_ratio**2)) ** (1.0 / 3.0)
    layers = range(max(1, math.floor(depth) - 1), math.ceil(depth) + 2)
    candidates = []
    for n_layer in layers:
        width = math.sqrt(target / (12.0 * n_layer))
        k = max(1, math.floor(width / head_dim))
        for d_model in {k * head_dim, (k + 1) * head_dim}:
            m = with_shape(base, n_layer, d_model, d_model // head_dim)
            n = count_params(m, vocab_size)["n_params_non_embedding"]
            aspect_err = abs(math.log((d_model / n_layer) / aspect_ratio))
            candidates.append((abs(math.log(n / target)), aspect_err, m))
    in_range = [c for c in candidates if c[1] <= math.log(2.0) + 1e-9] or candidates
    return min(in_range, key=lambda c: (round(c[0], 9), c[1]))[2]


def shape_for(target: float, family: str, convention: str, aspect_ratio: float, head_dim: int,
              base: ModelConfig, vocab_size: int, min_layers: int = 2) -> ModelConfig:
    """The family's shape aimed at N = target, counted as `convention` ('total' or 'non_embedding')."""
    key = "n_params" if convention == "total" else "n_params_non_embedding"
    if family == "depth":
        return depth_for_count(target, lambda m: count_params(m, vocab_size)[key], aspect_ratio, head_dim,
                               base, min_layers)
    if convention == "non_embedding":
        return free_shape_for_params(target, aspect_ratio, head_dim, base, vocab_size)
    # Embeddings depend on the width the rule picks, so scan non-embedding targets from 1% to 100%
    # of N and keep the shape whose total count is closest to N.
    best = None
    for k in range(81):
        m = free_shape_for_params(target * 10 ** (-2 + 2 * k / 80), aspect_ratio, head_dim, base, vocab_size)
        err = abs(math.log(count_params(m, vocab_size)["n_params"] / target))
        if best is None or err < best[0] - 1e-12:
            best = (err, m)
    return best[1]


def spread_depths(targets: List[float], pick: Callable[[float], ModelConfig], step: Callable[[ModelConfig], ModelConfig],
                  ) -> List[ModelConfig]:
    """Shapes for ascending `targets`, strictly deeper one after another.

    Near the bottom of a depth family one layer is a large step in N, so two targets a factor 2
    apart can land on one depth; the later one then takes the next depth, keeping k distinct sizes."""
    out: List[ModelConfig] = []
    for t in targets:
        m = pick(t)
        if out and m.n_layer <= out[-1].n_layer:
            m = step(out[-1])
        out.append(m)
    return out


def mixed_shapes(models: List[ModelConfig], vocab_size: int) -> Optional[str]:
    """None when depth and width never decrease as N grows; else the first pair that breaks it."""
    seen = {}
    for m in models:
        seen[(m.n_layer, m.d_model, m.n_head)] = m
    ordered = sorted(seen.values(), key=lambda m: count_params(m, vocab_size)["n_params"])
    for a, b in zip(ordered, ordered[1:]):
        if b.n_layer < a.n_layer or b.d_model < a.d_model:
            return (f"L{a.n_layer}-d{a.d_model} ({count_params(a, vocab_size)['n_params']:,} params) is followed by "
                    f"L{b.n_layer}-d{b.d_model} ({count_params(b, vocab_size)['n_params']:,} params)")
    return None


def describe_family(family: str, aspect_ratio: float, head_dim: int, min_layers: int, explicit: bool) -> str:
    """One line naming the model family a ladder uses (what `sweep plan` prints)."""
    if explicit:
        return "family: explicit shapes (experiment.shapes)"
    if family == "depth":
        return (f"family: depth knob, n_layer >= {min_layers}, d_model = {aspect_ratio:g} x n_layer in whole "
                f"heads of {head_dim}")
    return f"family: free (closest count within 2x of aspect ratio {aspect_ratio:g}, head_dim {head_dim}; may mix depths)"
