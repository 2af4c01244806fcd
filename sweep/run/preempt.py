"""Stopping a run cleanly when it is asked to: SIGTERM (SLURM preemption, scancel, time limits), SIGUSR2
(submitit's warning before a time limit or a preemption) or Ctrl-C.

Kept free of torch so the command line can catch `Preempted` without importing the trainer.
"""

from __future__ import annotations

import signal
import threading


class Preempted(BaseException):
    """The run was asked to stop (SIGTERM, or Ctrl-C) and left a checkpoint at `step` to resume from.

    A BaseException, like KeyboardInterrupt, so that a sweep runner's `except Exception` does not
    record the run as failed and go on with the next one: the whole process is being stopped.
    """

    def __init__(self, signum: int, step: int, steps: int):
        self.signum, self.step, self.steps = signum, step, steps
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}/{steps}; "
                         f"its checkpoint is saved, so launching it again resumes there")


class StopRequest:
    """Turns SIGTERM, SIGUSR2 and SIGINT into a request the loop honours at the next step boundary.

    SLURM preemption, `scancel` and job time limits send SIGTERM and wait a grace period before
    SIGKILL; submitit asks SLURM for SIGUSR2 before the time limit and requeues the job from its own
    handler. Stopping at a step boundary with a fresh checkpoint loses no work, where dying mid-step
    would lose up to one checkpoint interval. On leaving, the handler that was there before (submitit's)
    gets the signal it was installed for, so it can requeue once the checkpoint is on disk. A second
    Ctrl-C interrupts at once. Signals can only be caught in the main thread; elsewhere this does nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        previous = self._previous.get(self.signum) if self.signum is not None else None
        if self.signum != signal.SIGINT and callable(previous):
            previous(self.signum, None)  # e.g. submitit's requeue, now that the checkpoint is written
