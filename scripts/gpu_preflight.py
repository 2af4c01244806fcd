"""Before scripts/gpu_check.sh spends GPU time: can this Python import everything the check runs?

    python scripts/gpu_preflight.py                # exit 0, or exit 2 naming each missing module and its wheel
    python scripts/gpu_preflight.py --pins         # name==version of each needed distribution installed here
    python scripts/gpu_preflight.py --select DIR   # the wheels in DIR this Python lacks, one path a line

A GPU box lent for minutes often has torch and nothing else of ours, and no network. scripts/gpu_wheels.sh
builds the wheels from `--pins` where the package is installed; gpu_check.sh installs what `--select` picks
(wheels of distributions the box already has are left out, so its own numpy or PyYAML is not shadowed by
ours), then runs this check. A module that will not import is named with the wheel that provides it, so a
missing one costs a line of output rather than a section's worth of GPU time.

Only the standard library is imported at load: it must run where nothing else is installed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import platform
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS_HOWTO = ("build them where the package is installed: `bash scripts/gpu_wheels.sh` (writes dist/gpu_wheels/), "
                "carry that folder to this box and run `WHEELS=dist/gpu_wheels bash scripts/gpu_check.sh`")


@dataclass(frozen=True)
class Need:
    """A module gpu_check imports, the distribution whose wheel provides it, and what needs it."""

    module: str
    distribution: str
    used_by: str
    carried: bool = True
    """False for torch: the box's own build for its CUDA, never one from the wheel set."""


def needs() -> list:
    """Every third-party module gpu_check's sections import (found by tracing them on CPU), in install order.

    Left out on purpose: wandb, scipy, pandas, datasets, matplotlib and huggingface_hub, which the sections
    never import (runs log with logger=disabled on the offline stdlib corpus; fitting and plots are not run)."""
    out = [
        Need("torch", "torch", "training", carried=False),
        Need("numpy", "numpy", "token files, batches"),
        Need("yaml", "PyYAML", "omegaconf"),
        Need("antlr4", "antlr4-python3-runtime", "omegaconf's interpolation grammar"),
        Need("omegaconf", "omegaconf", "sweep.compose"),
        Need("packaging", "packaging", "hydra-core, pytest"),
        Need("hydra", "hydra-core", "sweep.compose"),
        Need("cloudpickle", "cloudpickle", "submitit"),
        Need("submitit", "submitit", "the parallel launcher (2-GPU test)"),
        Need("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "the parallel launcher"),
        Need("tqdm", "tqdm", "sweep.run.loop"),
        Need("tokenizers", "tokenizers", "bench_gpu's BPE-16384 tokenizer"),
        Need("pluggy", "pluggy", "pytest"),
        Need("iniconfig", "iniconfig", "pytest"),
        Need("pygments", "Pygments", "pytest"),
        Need("pytest", "pytest", "the CUDA tests"),
    ]
    if sys.version_info < (3, 11):
        out += [Need("exceptiongroup", "exceptiongroup", "pytest"), Need("tomli", "tomli", "pytest")]
    return out


SWEEP_MODULES = ("sweep.compose", "sweep.cli", "sweep.run.train", "sweep.run.data", "sweep.launch.launch",
                 "sweep.launch.packing", "sweep.launch.mps")
"""The checkout's modules the sections drive (importing them also loads what they import at the top)."""


def normalize(name: str) -> str:
    """A distribution's name as wheel files and metadata compare it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_distribution(path: Path) -> str:
    return normalize(path.name.split("-")[0])


def wheel_mismatch(path: Path) -> str:
    """Why this Python cannot install the wheel (an interpreter or machine it was not built for), or ''."""
    parts = path.name[:-len(".whl")].split("-")
    if len(parts) < 5:
        return f"{path.name} is not a wheel file name"
    python_tags, abi_tags, platform_tags = (p.split(".") for p in parts[-3:])
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if not any(t in ("abi3", "none", here) for t in abi_tags):
        return f"built for {'/'.join(python_tags)}, this is {here}: rebuild with `gpu_wheels.sh --python " \
               f"{sys.version_info.major}.{sys.version_info.minor}`"
    if "any" not in platform_tags and not any(t.endswith(platform.machine()) for t in platform_tags):
        return f"built for {'/'.join(platform_tags)}, this machine is {platform.machine()}"
    return ""


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def select(folder: Path) -> list:
    """Wheels in `folder` to install here: those of distributions this Python lacks and can install. The
    checkout's own `sweep` is never one: gpu_check runs the checkout it sits in, not a wheel built earlier."""
    chosen = []
    for path in sorted(folder.glob("*.whl")):
        dist = wheel_distribution(path)
        if dist == "sweep" or installed(dist):
            continue
        why = wheel_mismatch(path)
        if why:
            print(f"gpu_preflight: not installing {path.name}: {why}", file=sys.stderr)
            continue
        chosen.append(path)
    return chosen


def pins() -> list:
    """name==version of each carried distribution as installed in this Python; raises naming any that is not."""
    out, absent = [], []
    for need in needs():
        if not need.carried:
            continue
        try:
            out.append(f"{need.distribution}=={importlib.metadata.version(need.distribution)}")
        except importlib.metadata.PackageNotFoundError:
            absent.append(need.distribution)
    if absent:
        raise LookupError(f"not installed in {sys.executable}, so no wheel can be built from it: {', '.join(absent)}")
    return out


def missing_modules() -> list:
    """(need, error) for each module that is absent (error '') or does not import, in `needs()` order. A module
    that is there but fails to load (a dependency absent, a broken build) is kept apart from an absent one, so
    hydra absent does not read as hydra-submitit-launcher absent too."""
    out = []
    for need in needs():
        try:
            present = importlib.util.find_spec(need.module) is not None
        except ImportError:  # a dotted name whose parent package is absent
            present = False
        if not present:
            out.append((need, ""))
            continue
        try:
            importlib.import_module(need.module)
        except Exception as e:  # an ImportError, or a broken install that fails while loading
            out.append((need, f"{type(e).__name__}: {e}".splitlines()[0]))
    return out


def describe_missing(missing: list, wheels: Path | None) -> str:
    absent = [n for n, error in missing if not error]
    lines = [f"gpu_preflight: {sys.executable} (Python {platform.python_version()}) cannot import what gpu_check "
             f"needs: {len(absent)} module(s) absent, {len(missing) - len(absent)} failing to load"]
    width = max(len(n.module) for n, _ in missing)
    for need, error in missing:
        state = f"fails to load ({error})" if error else "absent"
        if not need.carried:
            lines.append(f"  {need.module:<{width}}  {state}: install torch built for this box's CUDA; it is not "
                         f"in the wheel set")
            continue
        wheel = f"{normalize(need.distribution).replace('-', '_')}-*.whl"
        where = ""
        if wheels is not None:
            found = [p for p in sorted(wheels.glob("*.whl")) if wheel_distribution(p) == normalize(need.distribution)]
            if not found:
                where = f"; not in {wheels}"
            else:
                mismatch = wheel_mismatch(found[0])
                where = f"; {wheels} has {found[0].name}" + (f", but {mismatch}" if mismatch else "")
        sdist = " (an sdist on PyPI: gpu_wheels.sh builds its wheel)" if need.distribution.startswith("antlr4") else ""
        lines.append(f"  {need.module:<{width}}  {state}: wheel {wheel} (distribution {need.distribution}, "
                     f"for {need.used_by}){sdist}{where}")
    lines.append(WHEELS_HOWTO)
    return "\n".join(lines)


def check_checkout() -> str:
    """'' when the checkout's modules import and compose a run config (which loads omegaconf's antlr grammar,
    where a mismatched antlr4 version fails); else what failed."""
    try:
        for name in SWEEP_MODULES:
            importlib.import_module(name)
        import sweep

        if ROOT not in Path(sweep.__file__).resolve().parents:
            return f"`sweep` imports from {Path(sweep.__file__).parent}, not this checkout ({ROOT}): put {ROOT} " \
                   f"first on PYTHONPATH"
        from sweep.compose import load_run_config

        load_run_config(["tokenizer=byte", "logger=disabled"])
    except Exception:
        return "gpu_preflight: the checkout's modules fail to load:\n" + "".join(traceback.format_exc(limit=-3))
    return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pins", action="store_true", help="print name==version of each distribution to build")
    parser.add_argument("--select", type=Path, metavar="DIR", help="print the wheels in DIR this Python lacks")
    parser.add_argument("--wheels", type=Path, metavar="DIR", help="the carried wheel folder, named in the report")
    args = parser.parse_args(argv)
    if args.pins:
        try:
            print("\n".join(pins()))
        except LookupError as e:
            print(f"gpu_preflight: {e}", file=sys.stderr)
            return 2
        return 0
    if args.select is not None:
        if not args.select.is_dir():
            print(f"gpu_preflight: no wheel folder {args.select}; {WHEELS_HOWTO}", file=sys.stderr)
            return 2
        print("\n".join(str(p) for p in select(args.select)))
        return 0
    missing = missing_modules()
    if missing:
        print(describe_missing(missing, args.wheels), file=sys.stderr)
        return 2
    problem = check_checkout()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    versions = " ".join(f"{n.distribution}={importlib.metadata.version(n.distribution)}" for n in needs()
                        if installed(n.distribution))
    print(f"gpu_preflight: ok, Python {platform.python_version()} ({sys.executable}); {versions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
