"""The wave loop of an adaptive ladder: plan a budget, train it, extend it where its minimum is at an edge,
then plan the next from what was found. Training is a callback, so the loop is the same in `sweep run`
(Hydra jobs on real runs) and in a test (a synthetic law)."""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Set, Tuple

from sweep.config import RunConfig
from sweep.ladder.adaptive import Plans, budget_minima, centre_for, extension_for
from sweep.ladder.experiment import ExperimentConfig
from sweep.ladder.grid import Grid, can_extend, grid
from sweep.store.results import human

TrainWave = Callable[[Grid, Set[int]], List[Tuple[float, float]]]
"""(grid, indices of the wave's runs) -> [(N, final loss)] of the wave's finished runs."""


def run_waves(exp: ExperimentConfig, base: RunConfig, vocab_size: int, n_train_tokens: Optional[int], plans: Plans,
              train_wave: TrainWave, save: Callable[[Plans], None] = lambda plans: None,
              say: Callable[[str], None] = print) -> Tuple[Grid, Plans]:
    """Every budget of an adaptive ladder, smallest first; `plans` (recorded by an earlier, interrupted call) are
    kept, so a resumed sweep trains the same runs. Returns the final grid and plans."""
    flops = list(exp.flops_budgets)
    results: Dict[int, List[Tuple[float, float]]] = {}
    g = grid(exp, base, vocab_size, n_train_tokens, plans)
    for b in range(len(flops)):
        while True:
            if b not in plans:
                earlier = {k: v for k, v in results.items() if k < b}
                minima, per_budget = budget_minima(earlier, flops)
                plans[b] = centre_for(b, flops, minima, per_budget, earlier, exp.center_tokens_per_param,
                                      exp.centre_exponent_prior)
                save(plans)
            g = grid(exp, base, vocab_size, n_train_tokens, plans)
            wave = {r.index for r in g.runs if r.cfg.meta.get("budget_index") == b}
            say(f"wave {b + 1}/{len(flops)}: C = {flops[b]:.3g}, centred at N = {human(plans[b].centre_params)} "
                f"({plans[b].reason}): " + ", ".join(g.runs[i].run_name for i in sorted(wave)))
            results[b] = train_wave(g, wave)
            _, per_budget = budget_minima({b: results[b]}, flops)
            where = per_budget.get(b, (None, "no finished runs"))[1]
            side = extension_for(plans[b], where, exp.edge_extensions,
                                 *can_extend(exp, base.model, vocab_size, plans[b]))
            save(plans)
            say(f"wave {b + 1}: {plans[b].note}")
            if side is None:
                break
    return g, plans
