"""Stopping a run cleanly when it is asked to: SIGTERM (SLURM preemption, scancel, time limits), SIGUSR2
(submitit's warning before a time limit or a preemption) or Ctrl-C.

Kept free of torch so the command line can catch `Preempted` without importing the trainer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Callable, Mapping, Optional

REQUEUE_ENV = "SWEEP_SLURM_REQUEUE"
"""Set to 0 in a process whose parent requeues the SLURM job for it (the runs of a shared GPU job,
sweep/launch/slurm_pack.py): the parent requeues once, after every run in the job has checkpointed."""


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
    gets the signal it was installed for, so it can requeue once the checkpoint is on disk (only when the
    block stops with Preempted: a run that finished first has nothing to resume). submitit's
    SIGTERM handler only logs, so after a SIGTERM inside a SLURM job this requeues the job itself
    (`requeue_slurm_job`), unless SLURM is already ending it. A second Ctrl-C interrupts at once.
    Signals can only be caught in the main thread; elsewhere this does nothing.
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

    def __exit__(self, exc_type, exc, tb) -> None:
        # Only a run that stopped for the signal is requeued: one that finished its last step before it
        # came must write its result, not be killed by the requeue and trained again from a checkpoint.
        stopped = isinstance(exc, Preempted)
        if stopped and self.signum == signal.SIGTERM and self._previous:
            # before the handlers are restored: requeueing makes SLURM send SIGTERM again, which must not
            # kill this process (the default action) before it has left the training loop cleanly
            requeue_slurm_job()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        previous = self._previous.get(self.signum) if self.signum is not None else None
        if stopped and self.signum != signal.SIGINT and callable(previous):
            previous(self.signum, None)  # e.g. submitit's requeue, now that the checkpoint is written


SLURM_CALL_TIMEOUT = 5
"""Seconds each squeue / scontrol call may take: both run inside SIGTERM's grace period (SLURM's KillWait, 30 s by
default, or the preemption GraceTime), and a slow controller must not hold the job until SIGKILL."""


def slurm_job_state(job_id: str) -> Optional[str]:
    """The job's state as squeue prints it (RUNNING, COMPLETING, ...), or None when squeue cannot say."""
    try:
        proc = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                              timeout=SLURM_CALL_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    states = proc.stdout.split()
    return states[0] if proc.returncode == 0 and states else None


def requeue_slurm_job(environ: Mapping[str, str] = os.environ,
                      state_of: Callable[[str], Optional[str]] = slurm_job_state,
                      run: Callable = subprocess.run) -> Optional[str]:
    """Requeue the SLURM job this process runs in, after a SIGTERM, and say so on stderr; what was done, or
    None outside a job that hydra/launcher=slurm submitted (submitit's SUBMITIT_EXECUTOR=slurm), and where
    the parent process requeues (REQUEUE_ENV=0). A `sweep` started by hand in some other job, or by a
    test suite running inside one, is stopped as before and never requeues that job.

    Only a job SLURM still has RUNNING is requeued: a preemption with a grace time
    (PreemptMode=CANCEL, GraceTime) and `scancel --signal=TERM` signal a running job, while a plain
    `scancel` or the time limit first marks the job CANCELLED or TIMEOUT (squeue: COMPLETING), and
    `scontrol requeue` would bring a cancelled job back. A job SLURM has already requeued itself
    (PreemptMode=REQUEUE) is no longer RUNNING either, and is left to it. Never raises: the checkpoint is already written,
    and the run must still stop as Preempted rather than be recorded as failed."""
    job = environ.get("SLURM_JOB_ID")
    if not job or environ.get("SUBMITIT_EXECUTOR") != "slurm" or environ.get(REQUEUE_ENV) == "0":
        return None
    state = state_of(job)
    if state != "RUNNING":
        said = f"SLURM job {job} is {state or 'not known to squeue'}: not requeued (cancelled, timed out or already requeued)"
    else:
        try:
            proc = run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=SLURM_CALL_TIMEOUT)
            ok, why = proc.returncode == 0, (proc.stderr or proc.stdout or "").strip()
        except (OSError, subprocess.SubprocessError) as exc:
            ok, why = False, str(exc)
        said = (f"requeued SLURM job {job} after SIGTERM; it resumes from its checkpoint" if ok
                else f"could not requeue SLURM job {job} after SIGTERM: {why}")
    print(f"[sweep] {said}", file=sys.stderr, flush=True)
    return said
