"""The whole sweep's progress bar, polled from the results folder."""

from __future__ import annotations

import threading
from typing import List

from sweep.ladder.branching import is_branch
from sweep.ladder.planned import PlannedRun
from sweep.ladder.status import run_state
from sweep.store.results import run_dir
from sweep.store.runs import FINISHED


class SweepProgress:
    """A bar for the whole sweep (FLOPs done / total, runs done / total), polled from the results
    folder so it works whichever process or machine trains the runs."""

    def __init__(self, runs: List[PlannedRun], interval: float = 2.0, enabled: bool = True):
        self.runs, self.interval, self.enabled = runs, interval, enabled
        self._stop = threading.Event()
        self._thread = None
        self.bar = None

    @staticmethod
    def own_flops(r: PlannedRun) -> tuple:
        """(FLOPs the run trains itself, its first step): a WSD branch starts at its trunk's branch
        point, so the shared prefix is counted once, in the trunk."""
        start = int(r.cfg.meta.get("branch_step", 0)) if is_branch(r) else 0
        return r.flops - start * r.cfg.train.tokens_per_step * r.flops_per_token, start

    def poll(self) -> tuple:
        finished, flops = 0, 0.0
        for r in self.runs:
            own, start = self.own_flops(r)
            s = run_state(run_dir(r.cfg, r.n_tokens))
            if s.status in FINISHED:
                finished += 1
                flops += own
            elif s.step is not None and s.steps and s.steps > start:
                flops += own * min(max(s.step - start, 0) / (s.steps - start), 1.0)
        return finished, flops

    def _update(self) -> None:
        finished, flops = self.poll()
        self.bar.set_description(f"sweep {finished}/{len(self.runs)} runs", refresh=False)
        self.bar.n = flops
        self.bar.refresh()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def __enter__(self):
        if self.enabled and self.runs:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=sum(self.own_flops(r)[0] for r in self.runs), unit="FLOP", unit_scale=True,
                            desc=f"sweep 0/{len(self.runs)} runs", mininterval=1.0, dynamic_ncols=True)
            self._update()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._update()
            self.bar.close()
