"""A private CUDA MPS daemon for a sweep.

This machine has no GPU and no NVIDIA driver, so `nvidia-cuda-mps-control` here is a stand-in
shell script on PATH (a mock of what cannot run here): it records how it was called, makes the
control pipe on `-d` and removes it on `quit`, as the real daemon does.
"""

import os
from pathlib import Path

import pytest

from sweep.config import ConfigError
from sweep.launch.mps import mps_status, private_mps

FAKE = """#!/bin/sh
echo "args=$* pipe=$CUDA_MPS_PIPE_DIRECTORY log=$CUDA_MPS_LOG_DIRECTORY" >> "$FAKE_MPS_CALLS"
if [ "$1" = "-d" ]; then
  [ -n "$FAKE_MPS_FAIL" ] && { echo "cannot start: $FAKE_MPS_FAIL" >&2; exit 1; }
  mkfifo "$CUDA_MPS_PIPE_DIRECTORY/control"; exit 0
fi
read command; echo "stdin=$command" >> "$FAKE_MPS_CALLS"
[ "$command" = quit ] && rm -f "$CUDA_MPS_PIPE_DIRECTORY/control"
exit 0
"""


@pytest.fixture
def fake_control(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-cuda-mps-control"
    tool.write_text(FAKE)
    tool.chmod(0o755)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MPS_CALLS", str(calls))
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    monkeypatch.delenv("CUDA_MPS_LOG_DIRECTORY", raising=False)
    return calls


def test_private_daemon_serves_the_sweep_and_quits_after(fake_control, monkeypatch):
    if mps_status().running:
        pytest.skip("a system MPS daemon is running here; private_mps would use it")
    with private_mps() as status:
        pipe = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
        assert status.running and status.pipe_dir == pipe and Path(pipe, "control").exists()
        assert pipe.startswith("/tmp/sweep-mps-") and len(pipe) < 60  # a Unix socket path must stay short
        assert os.environ["CUDA_MPS_LOG_DIRECTORY"] == str(Path(pipe).parent / "log")
    calls = fake_control.read_text().splitlines()
    assert calls == [f"args=-d pipe={pipe} log={Path(pipe).parent / 'log'}",
                     f"args= pipe={pipe} log={Path(pipe).parent / 'log'}", "stdin=quit"]
    assert "CUDA_MPS_PIPE_DIRECTORY" not in os.environ and not Path(pipe).parent.exists()


def test_daemon_quits_when_the_sweep_fails(fake_control):
    if mps_status().running:
        pytest.skip("a system MPS daemon is running here")
    with pytest.raises(RuntimeError, match="a run broke"):
        with private_mps():
            pipe = os.environ["CUDA_MPS_PIPE_DIRECTORY"]
            raise RuntimeError("a run broke")
    assert fake_control.read_text().splitlines()[-1] == "stdin=quit"
    assert not Path(pipe).parent.exists() and "CUDA_MPS_PIPE_DIRECTORY" not in os.environ


def test_a_running_daemon_is_used_and_left_alone(fake_control, tmp_path, monkeypatch):
    pipe = tmp_path / "system-mps"
    pipe.mkdir()
    os.mkfifo(pipe / "control")
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(pipe))
    with private_mps() as status:
        assert status.running and status.pipe_dir == str(pipe)
    assert not fake_control.exists()  # never started, never told to quit
    assert (pipe / "control").exists()


def test_missing_or_failing_control_is_a_clear_error(fake_control, tmp_path, monkeypatch):
    if mps_status().running:
        pytest.skip("a system MPS daemon is running here")
    monkeypatch.setenv("FAKE_MPS_FAIL", "no GPU")
    with pytest.raises(ConfigError, match=r"did not start a daemon \(exit 1: cannot start: no GPU\).*launch.mps=false"):
        with private_mps():
            pytest.fail("ran the sweep without the daemon it asked for")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="nvidia-cuda-mps-control is not on PATH"):
        with private_mps():
            pass


@pytest.mark.parametrize("runs_per_gpu, mps, started", [(4, "true", True), (1, "true", False), (4, "false", False)])
def test_sweep_run_starts_the_daemon_only_for_shared_gpus_when_asked(tmp_path, monkeypatch, capsys,
                                                                       runs_per_gpu, mps, started):
    """`sweep run` on a (stand-in) GPU box: the multirun is launched inside the private daemon when
    runs share a GPU and launch.mps=true, and never otherwise."""
    import contextlib

    import sweep.launch.launch as launch
    from sweep.launch.mps import MpsStatus
    from sweep.launch.packing import GpuInfo

    monkeypatch.setattr(launch, "_device_name", lambda sc: "cuda")
    monkeypatch.setattr(launch, "remote_device", lambda sc: False)  # CUDA is here (pretended)
    monkeypatch.setattr(launch, "available_memory", lambda device: 80 * 2**30)
    monkeypatch.setattr(launch, "detect_gpus", lambda: GpuInfo(1, 80 * 2**30, "NVIDIA H100 80GB HBM3"))
    monkeypatch.setattr(launch, "mps_status", lambda: MpsStatus(False, True, "/tmp/nvidia-mps"))
    events = []

    @contextlib.contextmanager
    def recording_mps():
        events.append("start")
        yield MpsStatus(True, True, "/tmp/sweep-mps-x/pipe")
        events.append("quit")

    monkeypatch.setattr(launch, "private_mps", recording_mps)
    monkeypatch.setattr(launch, "hydra_multirun", lambda overrides: events.append("multirun") or 0)
    rc = launch.run_command(["experiment=kaplan_model_size_h100", f"results_dir={tmp_path}",
                             "launch.corpus_tokens=10000000000", "experiment.target_params_non_embedding=[1000000]",
                             "launch.gpus=1", f"launch.runs_per_gpu={runs_per_gpu}", f"launch.mps={mps}"])
    assert rc == 1  # the stand-in multirun trained nothing: the run is still pending
    assert events == (["start", "multirun", "quit"] if started else ["multirun"])
    assert ("MPS: yes (daemon pipe /tmp/sweep-mps-x/pipe/control)" in capsys.readouterr().out) == started
