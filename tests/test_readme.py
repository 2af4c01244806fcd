"""The README names only what exists: every repository path it shows is there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TOP = ("sweep", "conf", "scripts", "tests", "docs", ".ci")
PATH = re.compile(r"(?<![\w./-])((?:%s)/[A-Za-z0-9_.*/-]*[A-Za-z0-9_*])" % "|".join(map(re.escape, TOP)))


def readme_paths():
    return sorted(set(PATH.findall(README)))


def test_the_readme_names_repository_paths():
    # the pattern must keep finding them; a regex that matches nothing would pass the next test vacuously
    assert {"sweep/config.py", "sweep/run/model.py", "scripts/bench_fit.py"} <= set(readme_paths())


def test_every_path_the_readme_names_exists():
    missing = [p for p in readme_paths() if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists())]
    assert not missing, f"README.md names paths that do not exist: {missing}"
