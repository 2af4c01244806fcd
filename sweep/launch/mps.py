"""CUDA MPS for packed runs: whether a daemon is running, and a private one for one sweep.

Runs packed several to a GPU (sweep/launch/packing.py) are separate processes. Without MPS the GPU
time-slices between their contexts; with an MPS control daemon their kernels run side by side.
`mps_status` only looks. `private_mps` starts a daemon of the sweep's own: its pipe and log
folders are fresh temporary ones, handed to the sweep's jobs through CUDA_MPS_PIPE_DIRECTORY and
CUDA_MPS_LOG_DIRECTORY, so only this sweep's processes connect to it and nobody else's GPU work
changes; it is told to quit when the sweep ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional

from sweep.config import ConfigError

CONTROL = "nvidia-cuda-mps-control"
DAEMON_DEVICES = "SWEEP_MPS_DAEMON_DEVICES"
"""Set by private_mps for the jobs: the CUDA_VISIBLE_DEVICES its daemon was started with ('' for every GPU)."""


@dataclass(frozen=True)
class MpsStatus:
    """Whether packed runs can share a GPU through CUDA MPS."""

    running: bool
    """A control daemon's pipe exists: CUDA clients of this environment connect to it."""
    installed: bool
    """nvidia-cuda-mps-control is on PATH (the daemon can be started)."""
    pipe_dir: str
    """Where clients look for the daemon (CUDA_MPS_PIPE_DIRECTORY, else /tmp/nvidia-mps)."""

    def describe(self) -> str:
        if self.running:
            return f"MPS: yes (daemon pipe {self.pipe_dir}/control): packed runs' kernels run side by side"
        if self.installed:
            return ("MPS: no (installed, not running): packed runs time-slice the GPU; launch.mps=true "
                    "starts a private daemon for the sweep")
        return "MPS: no (nvidia-cuda-mps-control not found): packed runs time-slice the GPU"


def mps_status(env: Optional[Mapping[str, str]] = None) -> MpsStatus:
    """Look for a CUDA MPS control daemon (never starts one): its control pipe in the pipe directory."""
    env = os.environ if env is None else env
    pipe_dir = env.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps"
    running = os.path.exists(os.path.join(pipe_dir, "control"))
    installed = shutil.which(CONTROL, path=env.get("PATH")) is not None
    return MpsStatus(running, installed, pipe_dir)


@contextlib.contextmanager
def private_mps(start_timeout: float = 30.0) -> Iterator[MpsStatus]:
    """Start an MPS control daemon for this process and its children; quit it on exit.

    A daemon already reachable from this environment is used as it is (and left running). Raises
    ConfigError, before any run starts, when nvidia-cuda-mps-control is missing or the daemon does
    not come up."""
    status = mps_status()
    if status.running:
        yield status
        return
    if not status.installed:
        raise ConfigError(f"launch.mps=true: {CONTROL} is not on PATH; install the NVIDIA driver utilities, "
                          "or set launch.mps=false (packed runs then time-slice the GPU)")
    # Unix socket paths are limited to ~100 bytes, so a short folder under /tmp, not the results folder.
    root = tempfile.mkdtemp(prefix="sweep-mps-")
    dirs = {"CUDA_MPS_PIPE_DIRECTORY": os.path.join(root, "pipe"), "CUDA_MPS_LOG_DIRECTORY": os.path.join(root, "log")}
    for d in dirs.values():
        os.makedirs(d)
    saved = {k: os.environ.get(k) for k in (*dirs, DAEMON_DEVICES)}
    env = {**os.environ, **dirs}
    started = False
    try:
        proc = subprocess.run([CONTROL, "-d"], env=env, capture_output=True, text=True, timeout=start_timeout)
        started = proc.returncode == 0
        deadline = time.monotonic() + start_timeout
        while started and not mps_status(env).running and time.monotonic() < deadline:
            time.sleep(0.1)
        if not started or not mps_status(env).running:
            raise ConfigError(f"launch.mps=true: `{CONTROL} -d` did not start a daemon "
                              f"(exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}); "
                              f"its log is in {dirs['CUDA_MPS_LOG_DIRECTORY']}; or set launch.mps=false")
        # The daemon sees the GPUs of this process's CUDA_VISIBLE_DEVICES, numbered from 0: clients name theirs
        # by that numbering (client_device), so the jobs are told which GPUs it was started with.
        os.environ.update(dirs)
        os.environ[DAEMON_DEVICES] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        yield mps_status()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if started:
            try:
                subprocess.run([CONTROL], input="quit\n", env=env, capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.SubprocessError):
                pass  # a daemon that will not quit must not hide the sweep's own outcome
        shutil.rmtree(root, ignore_errors=True)


def client_device(physical: str, env: Optional[Mapping[str, str]] = None) -> str:
    """What a client of this sweep's MPS daemon puts in CUDA_VISIBLE_DEVICES to reach GPU `physical`.

    An MPS server enumerates only the GPUs its control daemon was started with, from 0, and a client's
    CUDA_VISIBLE_DEVICES indexes that list: with the daemon started under CUDA_VISIBLE_DEVICES=4,5,6,7, GPU 4
    is "0" to a client, and a client given "4" sees no GPU at all. Without a daemon of this sweep (none,
    or one started by someone else, assumed to see every GPU) the physical index is used as it is."""
    env = os.environ if env is None else env
    started_with = env.get(DAEMON_DEVICES)
    if started_with is None or not mps_status(env).running:
        return physical
    listed = [d.strip() for d in started_with.split(",") if d.strip()]
    if not listed:
        return physical
    if physical not in listed:
        raise ConfigError(f"GPU {physical} is not among those the MPS daemon was started with "
                          f"(CUDA_VISIBLE_DEVICES={started_with}); set launch.devices within them")
    return str(listed.index(physical))
