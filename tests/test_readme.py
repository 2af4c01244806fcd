"""The README and its docs pages name only what exists, and the commands they show run.

Every repository path and relative link in README.md and docs/*.md must exist. Every `sweep ...` command in the
README's code blocks is run from a fresh folder with no network: the cheap ones (plan, status, --help) as they
are, with the corpus estimated rather than read; the ones that train for minutes (run, main, train, fit, verify)
through `--cfg job`, which composes exactly the config they would train with and stops there."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = {p.relative_to(ROOT).as_posix(): p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
TOP = ("sweep", "conf", "scripts", "tests", "docs", ".ci")
PATH = re.compile(r"(?<![\w./-])((?:%s)/[A-Za-z0-9_.*/-]*[A-Za-z0-9_*])" % "|".join(map(re.escape, TOP)))
LINK = re.compile(r"\]\(([^)#\s]+)\)")


def paths(text: str):
    return sorted(set(PATH.findall(text)))


def test_the_readme_names_repository_paths():
    # the pattern must keep finding them; a regex that matches nothing would pass the next test vacuously
    assert {"docs/my_configs/experiment/mine.yaml", "docs/data.md"} <= set(paths(README))
    assert {"sweep/config.py", "sweep/run/model.py"} <= set(paths(PAGES["docs/runs.md"]))


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_path_and_link_a_page_names_exists(page):
    text = PAGES[page]
    missing = [p for p in paths(text) if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists())]
    here = (ROOT / page).parent
    missing += [link for link in LINK.findall(text) if "://" not in link and not (here / link).exists()]
    assert not missing, f"{page} names paths that do not exist: {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= set(LINK.findall(README))


def test_the_readmes_user_path_stays_short():
    """Install to reading a report, within about 200 lines; the rest lives in docs/."""
    assert len(README.splitlines()) <= 220


# ----------------------------------------------------------------------------- the commands it shows


def readme_commands():
    """`sweep ...` lines of the README's code blocks, comments stripped."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    out = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("sweep "):
                    out.append(part)
    return out


CHEAP = ("plan", "status", "export")
"""Commands that train nothing: run as shown (a plan with the corpus estimated, so nothing is read or fetched)."""
COMPOSED = ("train", "run", "main")
"""Commands that train for minutes: their config is composed (`--cfg job`), as they would compose it."""


def test_the_readme_shows_the_commands_a_user_needs():
    shown = {shlex.split(c)[1] for c in readme_commands()}
    assert {"main", "plan", "run", "status", "fit", "verify"} <= shown


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_runs_from_a_fresh_folder_offline(command, tmp_path):
    args = shlex.split(command)[1:]
    verb = args[0]
    if verb in CHEAP:
        extra = ["launch.estimate_corpus=true", "launch.probe=false"] if verb == "plan" else []
    elif verb in COMPOSED:
        extra = ["--cfg", "job"]  # composes what it would train, trains nothing
    else:  # reads a finished sweep, which a fresh folder has not: its usage must print
        args, extra = [verb], ["--help"]
    block = ("import socket, runpy, sys\n"
             "def no_network(*a, **k): raise OSError('network access from a README command')\n"
             "socket.create_connection = no_network\n"
             "sys.argv = ['sweep'] + sys.argv[1:]\n"
             "runpy.run_module('sweep', run_name='__main__')\n")
    # the user's folder: the README's relative paths (docs/my_configs) resolve against the checkout
    results = [f"results_dir={tmp_path / 'results'}"] if verb in CHEAP + COMPOSED else []
    proc = subprocess.run([sys.executable, "-c", block, *args, *extra, *results], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def test_data_tinyshakespeare_runs_from_a_fresh_clone(tmp_path):
    """The README's `data=tinyshakespeare` reads the copy shipped in the package, not ../shared."""
    proc = subprocess.run([sys.executable, "-m", "sweep", "train", "data=tinyshakespeare", "tokenizer=byte",
                           "budget.n_tokens=8192", "train.tokens_per_step=4096", "logger.mode=disabled",
                           f"results_dir={tmp_path / 'results'}", f"data.cache_dir={tmp_path / 'cache'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "results").glob("default/runs/*/result.json"))
    assert "data=tinyshakespeare" in PAGES["docs/runs.md"]
