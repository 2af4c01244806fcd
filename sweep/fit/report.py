"""report.md from fit.json's content: one screen with the answer (the verification, the recommended law's
exponents, what to train at 1x, 10x and 100x the largest budget and the loss it will reach, what the runs leave
open, the figures), one row per method, then an appendix with every method's section, the allocation table, the
backtest and the conventions. The first screen's sections are in report_screen.py, the appendix's in
report_appendix.py; render and write put them together here, and every name of either is importable from here."""

from __future__ import annotations

import json
from pathlib import Path

from sweep.fit.answer import LOOSE  # noqa: F401
from sweep.fit.report_appendix import (  # noqa: F401  (re-exported: report's names, wherever they live)
    AT_BOUND, EXTRAPOLATION_MARK, SIGNED, _appendix, _backtest_lines, _compute_optimal_lines, _iv,
    _method_section, _noise_line, _recommended_lines, _scored_note, _verification_lines, lack_of_fit_line, pi_terms,
    undetected_line, undetermined)
from sweep.fit.report_screen import (  # noqa: F401
    _budgets, _dominant_term, _est, _valley_edges, answer_of, answer_screen, listed, method_rows, next_runs,
    open_questions, summary_line)
from sweep.store.results import write_bytes_atomic

BODY_PLOTS = ["scaling.png", "loss_vs_compute.png", "residuals.png"]
"""The figures the first screen embeds; every other figure goes to the appendix."""


def render(result: dict, plots: list[str] | None = None) -> str:
    """The markdown report: the first screen (answer_screen), one row per method, then the appendix."""
    plots = list(plots or [])
    lines = answer_screen(result, [p for p in BODY_PLOTS if p in plots]) + method_rows(result)
    lines += ["## Appendix", "", "Everything behind the screen above: the verification against every method, how "
              "the recommended prediction was chosen, each method's parameters, the compute-optimal allocation of "
              "every method, the conventions and the backtest.", ""]
    lines += [("#" + line if line.startswith("#") else line) for line in _appendix(result)]
    rest = [p for p in plots if p not in BODY_PLOTS]
    if rest:
        lines += ["", "### More figures", ""] + [f"![{p}]({p})" for p in rest]
    return "\n".join(lines) + "\n"


def write(result: dict, folder: Path, plots: list[str] | None = None) -> Path:
    """Write fit.json and report.md into folder; returns the report's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(folder / "fit.json", json.dumps(result, indent=1, default=float).encode())
    path = folder / "report.md"
    write_bytes_atomic(path, render(result, plots).encode())
    return path
