"""scripts/gpu_check.sh on a bare GPU box, as far as a CPU can show it: the preflight in a Python that has torch
and nothing else of ours, the carried wheel set, the time limits, and bench_gpu's figures (rows printed as they
finish, packed and sequential compared on the same runs by steady tokens/s).

The "bare box" is a real venv (no pip, no system site-packages) whose only packages are this environment's
installed torch and torch's own dependencies, linked in: the same interpreter and torch a GPU image would have,
without hydra-core, omegaconf, antlr4, submitit or the rest. Nothing is mocked; the CUDA sections themselves
cannot run here (no GPU), and the script is asserted to stop at its CUDA probe after the preflight passes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))
import bench_gpu  # noqa: E402
import gpu_preflight  # noqa: E402

sys.path.remove(str(SCRIPTS))


def closure(name: str) -> set:
    """The installed distributions `name` needs at run time (its requirements' markers evaluated here)."""
    seen, todo = set(), [name]
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        key = gpu_preflight.normalize(dist.metadata["Name"])
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def torch_only_python(folder: Path) -> Path:
    """A venv with no pip and no system site-packages whose only packages are torch and its dependencies,
    linked from this environment's site-packages (a .pth file adds the folder of links)."""
    site = folder / "site"
    site.mkdir(parents=True)
    for name in sorted(closure("torch")):
        dist = importlib.metadata.distribution(name)
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            if (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    venv = folder / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "torch_only.pth").write_text(f"{site}\n")
    return python


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    python = torch_only_python(tmp_path_factory.mktemp("bare"))
    probe = "import importlib.util as u, torch; print(u.find_spec('hydra'), u.find_spec('omegaconf'), torch.__file__)"
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120, env=clean_env())
    assert out.returncode == 0 and out.stdout.startswith("None None "), out.stderr[-2000:]
    return python


def clean_env(**extra) -> dict:
    """This environment minus what would leak its packages into another Python."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, **extra}


def absent_modules(stderr: str) -> list:
    return re.findall(r"^  (\S+)\s+absent:", stderr, flags=re.M)


# ----------------------------------------------------------------------------- preflight


def test_preflight_in_a_torch_only_python_names_each_missing_module_and_its_wheel(bare_python):
    out = subprocess.run([str(bare_python), str(SCRIPTS / "gpu_preflight.py")], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env=clean_env())
    assert out.returncode == 2, out.stdout + out.stderr
    carried = [n.module for n in gpu_preflight.needs() if n.carried]
    assert absent_modules(out.stderr) == carried  # every one, in order; torch is there
    for wheel in ("hydra_core-*.whl", "omegaconf-*.whl", "antlr4_python3_runtime-*.whl", "submitit-*.whl",
                  "hydra_submitit_launcher-*.whl"):
        assert f"wheel {wheel}" in out.stderr
    assert "an sdist on PyPI: gpu_wheels.sh builds its wheel" in out.stderr
    assert "bash scripts/gpu_wheels.sh" in out.stderr and "WHEELS=dist/gpu_wheels" in out.stderr


def test_preflight_passes_here_and_checks_the_checkout_composes():
    out = subprocess.run([sys.executable, str(SCRIPTS / "gpu_preflight.py")], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "gpu_preflight: ok" in out.stdout
    assert "hydra-core=" in out.stdout and "antlr4-python3-runtime=4.9" in out.stdout


def test_gpu_check_in_a_torch_only_python_stops_at_the_preflight(bare_python):
    out = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh")], capture_output=True, text=True, timeout=300,
                         env=clean_env(PYTHON=str(bare_python)))
    assert out.returncode == 2
    assert "hydra" in absent_modules(out.stderr) and "omegaconf" in absent_modules(out.stderr)
    assert "no CUDA device" not in out.stderr  # it stopped before spending anything on the device


def test_select_installs_only_what_this_python_lacks_and_can_install(tmp_path, capsys):
    """Wheel file names only (the selection never opens them): a distribution installed here is left out so
    the box's own copy stays in use, this package is left out (the checkout is what is tested), and a wheel
    built for another Python is refused, saying how to rebuild it."""
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    names = [f"numpy-1.0-{here}-{here}-manylinux_2_17_x86_64.whl", "sweep-0.1.0-py3-none-any.whl",
             "not_here_pkg-1.0-py3-none-any.whl", "also_absent-2.0-cp39-cp39-manylinux_2_17_x86_64.whl",
             "abi3_absent-1.0-cp39-abi3-manylinux_2_17_x86_64.whl"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    chosen = [p.name for p in gpu_preflight.select(tmp_path)]
    if os.uname().machine == "x86_64":
        assert chosen == ["abi3_absent-1.0-cp39-abi3-manylinux_2_17_x86_64.whl", "not_here_pkg-1.0-py3-none-any.whl"]
    err = capsys.readouterr().err
    assert "also_absent" in err and "gpu_wheels.sh --python" in err and "numpy" not in err


# ----------------------------------------------------------------------------- time limits


def source_and_run(body: str, budget: int, min_section: int = 15) -> subprocess.CompletedProcess:
    script = (f'. "{SCRIPTS / "gpu_check.sh"}"\nBUDGET={budget}\nMIN_SECTION={min_section}\n{body}\n'
              f'echo "passed=$passed run=$run"\n')
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)


def test_a_section_past_its_limit_keeps_what_it_printed_and_the_check_goes_on():
    out = source_and_run('section "slow" 2 bash -c "echo figure-1; sleep 30; echo never"\n'
                         'section "quick" 20 echo figure-2', budget=540)
    assert "figure-1" in out.stdout and "never" not in out.stdout
    assert "== slow: TIMEOUT after 2s" in out.stdout and "figure-2" in out.stdout and "== quick: ok" in out.stdout
    assert "passed=1 run=2" in out.stdout


def test_no_section_runs_past_the_whole_budget():
    """A section's own limit is cut to what is left of the budget, and one with too little left is skipped."""
    out = source_and_run('sleep 2\nsection "long" 500 bash -c "sleep 60"\nsection "late" 500 echo never',
                         budget=12, min_section=3)
    assert re.search(r"== long: limit cut from 500s to the [45]s left of the 12s budget", out.stdout), out.stdout
    assert "== long: TIMEOUT" in out.stdout and "== late: SKIPPED" in out.stdout and "never" not in out.stdout


def test_the_sections_limits_fit_in_nine_minutes_and_match_the_header():
    text = (SCRIPTS / "gpu_check.sh").read_text()
    limits = {m[0]: int(m[1]) for m in re.findall(r'section "(\d)\.[^"]*" (\d+)', text)}
    assert sorted(limits) == ["0", "1", "2", "3"]
    grace = int(re.search(r"^GRACE=(\d+)", text, flags=re.M)[1])
    budget = int(re.search(r"GPU_CHECK_BUDGET:-(\d+)", text)[1])
    assert budget == 540 and sum(limits.values()) + grace * len(limits) <= budget - 30  # room for the preflight
    docs = (REPO / "docs" / "benchmarks.md").read_text()
    for key, limit in limits.items():
        assert re.search(rf"^#   {key}\. \w+ +{limit} ", text, flags=re.M), (key, limit)
        assert re.search(rf"^\| {key}\. \w+ \| {limit} s \|", docs, flags=re.M), (key, limit)
    sweep = re.search(r"--sections sweep (.*)", text)[1]
    assert int(re.search(r"--sweep-runs (\d+)", sweep)[1]) >= 2
    assert bench_gpu.parse_count(re.search(r"--sweep-tokens (\S+)", sweep)[1]) >= 20_000_000


# ----------------------------------------------------------------------------- bench_gpu's figures


def test_sizes_rows_are_printed_as_each_finishes_and_a_failed_size_does_not_stop_the_rest(tmp_path):
    """On CPU (the same code path as on a GPU): a size that cannot be built prints why, the next size's row
    appears while the process is still training a third, and SIGTERM (what `timeout` sends) unwinds it, leaving
    no temp folder."""
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "bench_gpu.py"), "--cpu-smoke", "--sections", "sizes",
                             "--sizes", "bogus,20k,20M", "--steps", "3", "--cache-dir", str(tmp_path / "cache")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    lines, deadline = [], time.monotonic() + 300
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.lstrip().startswith("20k "):
                break
            assert time.monotonic() < deadline, "".join(lines)
        assert proc.poll() is None, "the 20k row came only at the end: " + "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert any(line.startswith("bogus failed: ValueError") for line in lines), "".join(lines)
    assert "size=20k" not in rest  # cut off before the key=value summary: the row above is all there is
    assert proc.returncode == 128 + signal.SIGTERM
    assert not list(tmp_path.glob("bench_gpu-*"))


def samples_at(rate_steps_per_s: float, start: float, first: int, last: int, every: int = 5) -> dict:
    """{step: clock} of a run logging every `every` steps at a constant rate from `start`."""
    return {step: start + (step - first) / rate_steps_per_s for step in range(first, last + 1, every)}


def test_packed_runs_are_measured_only_while_all_train_together():
    """Two runs packed: A past warm-up from t=10 to 40 at 4 steps/s, B from t=20 to 50 at 2 steps/s. Each is
    measured over t=20..40 only, when both trained (the stretches alone would credit A with the GPU to itself)."""
    a = {0: 0.0, **samples_at(4, 10.0, 10, 130)}
    b = {0: 5.0, **samples_at(2, 20.0, 10, 70)}
    got = bench_gpu.steady_rates({"a": a, "b": b}, warm_steps=10, tokens_per_step=1000, together=True)
    assert got["window"] == pytest.approx((20.0, 40.0))
    assert got["runs"]["a"] == pytest.approx(4000) and got["runs"]["b"] == pytest.approx(2000)


def test_sequential_runs_are_measured_after_their_own_warm_up():
    slow_start = {1: 0.0, 5: 30.0, **samples_at(10, 31.0, 10, 100)}  # 30 s compiling, then 10 steps/s
    got = bench_gpu.steady_rates({"r": slow_start}, warm_steps=10, tokens_per_step=2**17, together=False)
    assert got["runs"]["r"] == pytest.approx(10 * 2**17)


def test_no_steady_figure_without_a_shared_window_or_enough_steps():
    apart = bench_gpu.steady_rates({"a": samples_at(1, 0, 10, 20), "b": samples_at(1, 100, 10, 20)}, 10, 1, True)
    assert apart["runs"] == {} and "none finished" in apart["note"]
    short = bench_gpu.steady_rates({"a": {5: 1.0, 10: 2.0}}, 10, 1, False)
    assert short["runs"] == {} and "more tokens" in short["note"]


def test_the_sweep_trains_the_same_runs_packed_and_one_at_a_time():
    """--sweep-runs 4 where 6 fit: 4 runs, all 4 packed (before, 4 ran under a '6 per GPU' label); 8 asked
    where 4 fit: 4, with a note, never waves."""
    s = bench_gpu.cpu_setup(argparse.Namespace(sizes=None, batch_size=None, steps=None))
    assert bench_gpu.sweep_size(argparse.Namespace(pack=6, sweep_runs=4), s, None) == (4, "")
    runs, note = bench_gpu.sweep_size(argparse.Namespace(pack=4, sweep_runs=8), s, None)
    assert runs == 4 and "8 runs asked, 4 fit" in note
    assert bench_gpu.sweep_size(argparse.Namespace(pack=None, sweep_runs=None), s, None) == (2, "")


# ----------------------------------------------------------------------------- the carried wheels


@pytest.mark.slow
def test_carried_wheels_make_a_torch_only_python_pass_the_preflight(bare_python, tmp_path):
    """gpu_wheels.sh for real (antlr4 from its sdist: needs the package index, or pip's cache), then gpu_check
    on the torch-only Python with WHEELS: the wheels it lacks are installed, the preflight passes, and the
    script stops only at the CUDA probe."""
    wheels = tmp_path / "wheels"
    built = subprocess.run(["bash", str(SCRIPTS / "gpu_wheels.sh"), str(wheels)], cwd=REPO, capture_output=True,
                           text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert built.returncode == 0, built.stderr[-3000:]
    names = sorted(p.name for p in wheels.glob("*.whl"))
    dists = {gpu_preflight.wheel_distribution(Path(n)) for n in names}
    assert dists == {gpu_preflight.normalize(n.distribution) for n in gpu_preflight.needs() if n.carried} | {"sweep"}
    assert not any(n.startswith(("torch", "nvidia", "triton")) for n in names)
    assert sum(p.stat().st_size for p in wheels.glob("*.whl")) < 48 * 2**20  # small enough to carry
    assert "gpu_wheels: total" in built.stdout and "antlr4_python3_runtime-4.9" in built.stdout

    out = subprocess.run(["bash", str(SCRIPTS / "gpu_check.sh")], capture_output=True, text=True, timeout=600,
                         env=clean_env(PYTHON=str(bare_python), WHEELS=str(wheels), TMPDIR=str(tmp_path)))
    assert out.returncode == 2 and "gpu_preflight: ok" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
    assert "no CUDA device here" in out.stderr
    assert "sweep-0.1.0" not in out.stdout.split("installing", 1)[1].splitlines()[0]
