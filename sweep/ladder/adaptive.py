"""Adaptive centring of an IsoFLOP ladder: each budget's sizes centred on the optimum the finished budgets predict.

A fixed tokens-per-parameter centre misses where the optimum is at small scale (it moves with vocabulary,
shape family and corpus), and a budget whose minimum lands at an edge of its sizes gives approach 2 no
valley. So `experiment.centre=adaptive` trains the budgets in waves, smallest compute first:

1. the first budget is centred where D/N = experiment.center_tokens_per_param (the prior);
2. after each wave, every finished budget's minimum is located by the parabola through its best size and
   its two neighbours (in log N); a minimum at an edge gets up to experiment.edge_extensions more sizes on
   that side, and the wave goes on until it has a valley or the family or the extensions run out;
3. the next budget is centred on N*(C) extrapolated from those minima: a line in log-log through them, or,
   with one minimum, a line of slope experiment.centre_exponent_prior through it.

Pure functions: the decisions are plain records (`BudgetPlan`) that `sweep run` keeps in the sweep folder
(ladder.json), so `sweep plan` and `sweep status` expand the same grid the waves trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple


@dataclass
class BudgetPlan:
    """Where one budget's sizes are centred and why; extensions added after its wave."""

    centre_params: float
    """N (experiment.param_convention) the budget's middle size is aimed at."""
    reason: str
    """Why this centre: the prior, or the fit of the minima it was extrapolated from."""
    extend_below: int = 0
    """Sizes added below the smallest, because the budget's minimum landed there."""
    extend_above: int = 0
    """Sizes added above the largest, because the budget's minimum landed there."""
    note: str = ""
    """What the wave found: the located minimum, or why the budget still has no valley."""

    def as_dict(self) -> dict:
        return asdict(self)


Plans = Dict[int, BudgetPlan]


def plans_from_json(raw: Optional[dict]) -> Plans:
    """ladder.json's 'budgets' back into plans (keys are budget indices)."""
    return {int(k): BudgetPlan(**v) for k, v in (raw or {}).items()}


def plans_to_json(plans: Plans) -> dict:
    return {str(k): p.as_dict() for k, p in sorted(plans.items())}


def prior_centre(flops: float, tokens_per_param: float, flops_per_param_token: float = 6.0) -> float:
    """N with D/N = tokens_per_param at C = k N D: the first wave's centre."""
    return math.sqrt(flops / (flops_per_param_token * tokens_per_param))


def prior_plan(flops: float, tokens_per_param: float) -> BudgetPlan:
    """A budget centred by the prior alone (the first wave, and budgets not reached yet)."""
    return BudgetPlan(centre_params=prior_centre(flops, tokens_per_param), reason=f"prior: D/N = {tokens_per_param:g}")


def locate_minimum(sizes: Sequence[float], losses: Sequence[float]) -> Tuple[Optional[float], str]:
    """(N* or None, where) of one budget from its sizes' mean final losses.

    N* is the vertex of the parabola in log N through the best size and its two neighbours; where is
    'interior', 'below' (the smallest size is best) or 'above' (the largest is best), or 'flat' when the
    three points do not curve upward."""
    pairs = sorted((math.log(n), l) for n, l in zip(sizes, losses) if math.isfinite(l))
    if len(pairs) < 2:
        return None, "too few sizes"
    best = min(range(len(pairs)), key=lambda i: pairs[i][1])
    if best == 0:
        return None, "below"
    if best == len(pairs) - 1:
        return None, "above"
    (x0, y0), (x1, y1), (x2, y2) = pairs[best - 1:best + 2]
    # Lagrange form of the parabola through three points: vertex where its derivative vanishes.
    d01, d12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curvature = (d12 - d01) / (x2 - x0)
    if curvature <= 0:
        return math.exp(x1), "flat"
    vertex = (x0 + x1) / 2 - d01 / (2 * curvature)
    return math.exp(min(max(vertex, x0), x2)), "interior"


def next_centre(minima: Sequence[Tuple[float, float]], flops: float, prior_exponent: float,
                bounds: Tuple[float, float] = (0.25, 1.0)) -> Tuple[float, str]:
    """(N*, reason) at `flops` from the located minima [(C, N*)] of finished budgets: a least-squares line in
    log-log (slope clipped to `bounds`: two noisy minima close together can give any slope), or the prior slope
    through a single minimum."""
    if not minima:
        raise ValueError("next_centre needs at least one located minimum")
    xs = [math.log(c) for c, _ in minima]
    ys = [math.log(n) for _, n in minima]
    if len(minima) == 1 or max(xs) - min(xs) < 1e-9:
        slope, why = prior_exponent, f"prior slope {prior_exponent:g} through 1 minimum"
    else:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        fitted = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        slope = min(max(fitted, bounds[0]), bounds[1])
        why = f"N* ~ C^{slope:.2f} through {len(minima)} minima" + (
            f" (fitted slope {fitted:.2f} clipped)" if slope != fitted else "")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    centre = math.exp(my + slope * (math.log(flops) - mx))
    return centre, why


def budget_minima(results: Dict[int, List[Tuple[float, float]]], flops: Sequence[float]
                  ) -> Tuple[List[Tuple[float, float]], Dict[int, Tuple[Optional[float], str]]]:
    """Located minima [(C, N*)] of the finished budgets, and each budget's (N*, where).

    results: budget index -> [(N, final loss)] of its finished runs (seed replicates averaged here)."""
    found, per_budget = [], {}
    for b, rows in sorted(results.items()):
        by_n: Dict[float, List[float]] = {}
        for n, loss in rows:
            by_n.setdefault(n, []).append(loss)
        sizes = sorted(by_n)
        n_star, where = locate_minimum(sizes, [sum(by_n[n]) / len(by_n[n]) for n in sizes])
        per_budget[b] = (n_star, where)
        if n_star is not None and where == "interior":
            found.append((float(flops[b]), n_star))
    return found, per_budget


def centre_for(budget: int, flops: Sequence[float], minima: List[Tuple[float, float]],
               per_budget: Dict[int, Tuple[Optional[float], str]], results: Dict[int, List[Tuple[float, float]]],
               tokens_per_param: float, prior_exponent: float) -> BudgetPlan:
    """Budget `budget`'s plan from what the finished budgets found."""
    if minima:
        centre, why = next_centre(minima, flops[budget], prior_exponent)
        return BudgetPlan(centre_params=centre, reason=why)
    edged = [(b, w) for b, (_, w) in per_budget.items() if w in ("below", "above") and results.get(b)]
    if edged:
        # No valley yet: the optimum lies beyond that edge of the latest edged budget, by an unknown amount. Move
        # one whole sampled span past its best (edge) size, scaled to this budget by the prior slope, so the new
        # sizes start about where the old ones ended.
        b, where = max(edged)
        sizes = sorted(n for n, _ in results[b])
        best_n = min(results[b], key=lambda r: r[1])[0]
        span = sizes[-1] / sizes[0]
        centre = best_n * (span if where == "above" else 1 / span) * (flops[budget] / flops[b]) ** prior_exponent
        return BudgetPlan(centre_params=centre, reason=f"no valley yet (budget {b + 1}'s minimum is at its "
                                                       f"{'smallest' if where == 'below' else 'largest'} size): one "
                                                       f"sampled span ({span:.3g}x) past it, scaled by C^{prior_exponent:g}")
    return prior_plan(flops[budget], tokens_per_param)


def extension_for(plan: BudgetPlan, where: str, max_extensions: int, can_below: bool, can_above: bool
                  ) -> Optional[str]:
    """The side ('below'/'above') to add a size on after a wave whose minimum is at that edge, or None; sets
    plan.note to what was found either way."""
    if where == "interior":
        plan.note = "valley inside the sampled sizes"
        return None
    if where not in ("below", "above"):
        plan.note = f"no valley: {where}"
        return None
    side = "below" if where == "below" else "above"
    used = plan.extend_below if side == "below" else plan.extend_above
    allowed = can_below if side == "below" else can_above
    if not allowed:
        plan.note = (f"minimum at the {'smallest' if side == 'below' else 'largest'} size, and the family has no "
                     f"{'smaller' if side == 'below' else 'larger'} member")
        return None
    if used >= max_extensions:
        plan.note = (f"minimum still at the {'smallest' if side == 'below' else 'largest'} size after {used} "
                     f"extension(s) (experiment.edge_extensions={max_extensions})")
        return None
    if side == "below":
        plan.extend_below += 1
    else:
        plan.extend_above += 1
    plan.note = f"minimum at the {'smallest' if side == 'below' else 'largest'} size: one more size {side}"
    return side
