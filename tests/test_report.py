"""report.md's first screen, the figures' legends and the fit's W&B run, as a reader would check them.

Two fits, built once: a main-job-sized IsoFLOP sweep (4 budgets x 5 sizes, every default method, the backtest)
with a verification run beside it, and a 2-budget sweep (no backtest: no PI, exponents not determined).
"""

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from sweep.fit import FitConfig, fit, plots, report
from sweep.fit.answer import at
from sweep.fit.simulate import Law, isoflop_sweep

# a figure whose layout collapsed (legends taller than the figure) is a figure nobody can read: an error here
pytestmark = pytest.mark.filterwarnings("error:constrained_layout not applied:UserWarning")
PUBLISHED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "published"
NUM = r"[-+]?\d[\d.]*(?:e[-+]\d+)?"


def _verified(result: dict, factor: float = 5.0, off: float = 1.01) -> dict:
    """result with a verification run as `sweep verify` records it: trained at the answer's N*, D* at `factor`x
    the largest budget, measured `off` times the prediction. Built here because training one needs a sweep."""
    c = factor * result["data"]["flops_range"][1]
    a = at(result, c)
    measured = a.loss.value * off
    iv = a.loss.interval
    lead = result["answer"]["source"]
    result["verification"] = {
        "flops": c, "run_id": "v1", "run_name": "verify-1", "n_params": a.n_params.value, "n_tokens": a.n_tokens.value,
        "measured_loss": measured, "extrapolation": factor, "method": result["answer"]["law"], "recommended": lead,
        "method_reason": "the law the recommended prediction weighs most", "interval_level": 0.95,
        "interval_kind": "PI for a new run",
        "methods": {lead: {"predicted": a.loss.value, "interval": iv, "rel_error": a.loss.value / measured - 1,
                           "covered": None if not iv else iv[0] <= measured <= iv[1], "basis": "L(N, D)",
                           "pi_terms": None}}}
    return result


def _fit(budgets: int, **cfg) -> dict:
    runs = isoflop_sweep(Law(), np.logspace(18, 19.5, budgets), sizes_per_budget=5, seed=3)
    return json.loads(json.dumps(fit(runs, FitConfig(n_bootstrap=10, compare_conventions=False, **cfg)),
                                 default=float))


@pytest.fixture(scope="module")
def main_fit() -> dict:
    return _verified(_fit(4))


@pytest.fixture(scope="module")
def two_budgets() -> dict:
    return _fit(2)


def screen(text: str) -> list[str]:
    """The first screen: everything before the one-row-per-method table."""
    return text.split("\n## Methods")[0].splitlines()


def parse_screen(lines: list[str]) -> dict:
    """What a reader takes from the first screen: the verification, a and b with their intervals, the table."""
    text = "\n".join(lines)
    out = {}
    v = re.search(rf"\*\*Verification at ({NUM})x .*?: (\w+)(?: \(recommended\))? predicted ({NUM})"
                  rf"(?: \[({NUM}), ({NUM})\] \(95% PI\)| \(no interval\)), measured ({NUM}): error ({NUM})%", text)
    if v:
        out["verification"] = {"factor": float(v[1]), "lead": v[2], "predicted": float(v[3]),
                               "interval": [float(v[4]), float(v[5])] if v[4] else None,
                               "measured": float(v[6]), "error": float(v[7]) / 100}
    ab = re.search(rf"a = ({NUM}) \[({NUM}), ({NUM})\]; D\* ∝ C\^b, b = ({NUM}) \[({NUM}), ({NUM})\] \(95% CI\): "
                   r"the runs (determine them|determine them only loosely|do \*\*not\*\* determine them)", text)
    if ab:
        out["a"] = [float(ab[1]), float(ab[2]), float(ab[3])]
        out["b"] = [float(ab[4]), float(ab[5]), float(ab[6])]
        out["determined"] = ab[7]
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and re.fullmatch(rf"{NUM}x", cells[0]) and len(cells) == 6:
            est = [re.fullmatch(rf"({NUM})(?: \[({NUM}), ({NUM})\])?( \(no PI\))?", c) for c in cells[2:]]
            assert all(est), line
            rows[cells[0]] = {"flops": float(cells[1]), **{k: [float(x) for x in e.groups()[:3] if x] for k, e in
                              zip(("n", "d", "tpp", "loss"), est)}}
    out["rows"] = rows
    out["figures"] = re.findall(r"!\[(\S+\.png)\]\(\1\)", text)
    out["open"] = [line for line in lines if line.startswith("- ")]
    return out


def _close(x, y, digits=3):
    return abs(x - y) <= 10 ** (1 - digits) * abs(y) + 1e-12


def check_screen(result: dict, plots_written: list[str]) -> dict:
    """The first screen holds the items issue 44 asks for, and its numbers are fit.json's answer's."""
    text = report.render(result, plots_written)
    lines = screen(text)
    assert len(lines) <= 40, "\n".join(lines)
    got = parse_screen(lines)
    ans = result["answer"]
    for k in ("a", "b"):
        assert _close(got[k][0], ans[k]["value"]) and _close(got[k][1], ans[k]["interval"][0]), (got[k], ans[k])
    assert set(got["rows"]) == {"1x", "10x", "100x"}
    for row in ans["rows"]:
        mine = got["rows"][f"{row['factor']:.3g}x"]
        assert _close(mine["n"][0], row["n_params"]["value"]) and _close(mine["d"][0], row["n_tokens"]["value"])
        assert _close(mine["loss"][0], row["loss"]["value"], 4)
        assert (len(mine["loss"]) == 3) == bool(row["loss"]["interval"])  # a PI exactly where the answer has one
    assert got["open"], "what is not determined, and the runs that would, is said"
    assert [p for p in report.BODY_PLOTS if p in plots_written] == got["figures"]
    return got


def test_the_first_screen_of_a_main_job_s_fit(main_fit):
    got = check_screen(main_fit, report.BODY_PLOTS)
    v, mine = main_fit["verification"], got["verification"]
    lead = v["methods"][v["recommended"]]
    assert mine["factor"] == 5 and _close(mine["predicted"], lead["predicted"], 4)
    assert _close(mine["measured"], v["measured_loss"], 4) and mine["error"] == pytest.approx(lead["rel_error"],
                                                                                             abs=6e-5)
    assert mine["interval"] and _close(mine["interval"][0], lead["interval"][0], 4)
    # the next budgets are named beyond the largest, with sizes around the N* the answer gives there
    budgets = [float(c) for c in re.findall(rf"({NUM}) FLOPs: N\* ≈", "\n".join(got["open"]))]
    assert budgets and min(budgets) > main_fit["data"]["flops_range"][1]
    text = report.render(main_fit, report.BODY_PLOTS)
    # every method has one row in the body; their sections and the 40-row table are in the appendix
    body, appendix = text.split("\n## Appendix")
    for m in main_fit["config"]["methods"]:
        assert len(re.findall(rf"^\| {m}[ |(]", body.split("## Methods")[1], re.M)) == 1
    assert "### Compute-optimal allocation" in appendix and "Compute-optimal allocation" not in body
    assert "### Verification, every method" in appendix and "### Backtest" in appendix


def test_the_first_screen_of_a_two_budget_fit_says_what_is_not_determined(two_budgets):
    got = check_screen(two_budgets, [])
    assert "verification" not in got and got["figures"] == []
    assert got["determined"] == "do **not** determine them"
    assert all(len(r["loss"]) == 1 for r in got["rows"].values())  # no PI: the misfit was never measured
    said = "\n".join(got["open"])
    assert "a and b: no:" in said and "the new-run loss has no PI" in said
    budgets = [float(c) for c in re.findall(rf"({NUM}) FLOPs: N\* ≈", said)]
    c_max = two_budgets["data"]["flops_range"][1]
    assert budgets == pytest.approx([c_max * 10 ** 0.5, c_max * 10], rel=1e-3)  # a half-decade step, not 31x


def test_an_old_fit_json_without_an_answer_gets_one(two_budgets):
    old = {k: v for k, v in two_budgets.items() if k != "answer"}
    assert screen(report.render(old)) == screen(report.render(two_budgets))


@pytest.mark.slow
def test_the_first_screen_and_the_figures_of_a_fit_on_epoch_s_chinchilla_table(tmp_path, monkeypatch):
    import pandas as pd

    path = PUBLISHED / "epoch-chinchilla" / "svg_extracted_data.csv"
    if not path.exists():
        pytest.skip(f"{path} missing (public test data)")
    df = pd.read_csv(path)
    runs = pd.DataFrame({"n_params": df["Model Size"], "flops": df["Training FLOP"], "loss": df["loss"]})
    runs["n_tokens"] = runs.flops / (6 * runs.n_params)
    result = json.loads(json.dumps(fit(runs, FitConfig(n_bootstrap=4, compare_conventions=False)), default=float))
    got = check_screen(result, report.BODY_PLOTS)
    assert got["figures"] == report.BODY_PLOTS and got["rows"]["10x"]["flops"] == pytest.approx(
        10 * result["data"]["flops_range"][1], rel=5e-3)
    assert any("IsoFLOP valley(s) open at an edge" in line for line in got["open"])  # Epoch's dropped budgets
    # dozens of budgets: the legends name the colour scale's ends, not each budget, and still cover nothing
    found = draw_and_check(result, tmp_path, monkeypatch)
    assert {name: bad for name, bad in found.items() if bad and name not in ("xlims", "on_axes")} == {}
    assert {name: bad for name, bad in found["on_axes"].items() if bad} == {}


# --- the figures: no legend hides a run or a curve ------------------------------------------------------------


def _drawn_points(ax, renderer) -> np.ndarray:
    """Display coordinates of every run and curve the axes show: markers, and points every few pixels along
    each line (bands and shading are not data)."""
    from matplotlib.collections import PathCollection

    out = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if not xy.size:
            continue
        out.append(xy)
        if line.get_linestyle() not in ("None", "none", "", " ") and len(xy) > 1:
            t = np.linspace(0, 1, 30)[:, None, None]
            out.append((xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2))
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and coll.get_visible() and len(coll.get_offsets()):
            out.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float)))
    if not out:
        return np.zeros((0, 2))
    pts = np.concatenate(out)
    box = ax.get_window_extent(renderer)  # what the axes clip away is not drawn
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    return pts[inside]


def legend_overlaps(fig) -> list[str]:
    """Each legend of the figure that covers a data point or a curve of any of its axes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    bad = []
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for i, ax in enumerate(fig.axes):
            pts = _drawn_points(ax, renderer)
            hit = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
            if hit.any():
                bad.append(f"legend '{leg.get_texts()[0].get_text()}...' covers {hit.sum()} drawn point(s) of axes {i}")
    return bad


def legends_on_axes(fig) -> list[str]:
    """Each legend that sits on a panel's data area at all (issue 44: beside or below the axes, never on them)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [f"legend '{leg.get_texts()[0].get_text()}...' on axes {i}" for leg in legends
            for i, ax in enumerate(fig.axes) if ax.axison
            and leg.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))]


def draw_and_check(result: dict, folder: Path, monkeypatch) -> dict:
    """Every figure write_plots draws: {name: the legend overlaps found in it}; the compute axes' limits go into
    found["xlims"][name]."""
    found = {"xlims": {}, "on_axes": {}}
    save = plots._Fit.save

    def checked(self, fig, name):
        found[name] = legend_overlaps(fig)
        found["on_axes"][name] = legends_on_axes(fig)
        found["xlims"][name] = [ax.get_xlim() for ax in fig.axes if ax.get_xlabel().startswith("compute")]
        save(self, fig, name)

    monkeypatch.setattr(plots._Fit, "save", checked)
    written = plots.write_plots(result, folder)
    assert set(written) == set(found) - {"xlims", "on_axes"}
    return found


@pytest.fixture(scope="module")
def main_figures(main_fit, tmp_path_factory):
    folder = tmp_path_factory.mktemp("figures")
    with pytest.MonkeyPatch.context() as mp:
        return folder, draw_and_check(main_fit, folder, mp)


def test_no_legend_covers_a_run_or_a_curve_in_a_main_job_s_figures(main_figures):
    folder, found = main_figures
    assert {"scaling.png", "loss_vs_compute.png", "residuals.png", "optimal_allocation.png"} <= set(found)
    assert {name: bad for name, bad in found.items() if bad and name not in ("xlims", "on_axes")} == {}
    assert {name: bad for name, bad in found["on_axes"].items() if bad} == {}


def test_no_legend_covers_a_run_or_a_curve_in_a_two_budget_fit_s_figures(two_budgets, tmp_path, monkeypatch):
    found = draw_and_check(_verified(dict(two_budgets)), tmp_path, monkeypatch)
    assert {"scaling.png", "loss_vs_compute.png", "residuals.png"} <= set(found)
    assert {name: bad for name, bad in found.items() if bad and name not in ("xlims", "on_axes")} == {}
    assert {name: bad for name, bad in found["on_axes"].items() if bad} == {}


def test_the_overlap_check_sees_a_legend_on_the_runs(tmp_path):
    """The check itself: a legend placed over the runs (as main 30d20f6's loss_vs_compute.png had it) is caught."""
    plt = plots._plt()
    fig, ax = plt.subplots()
    ax.scatter([1, 2, 3], [1, 2, 3], label="runs")
    ax.plot([1, 3], [3, 1], label="a law")
    ax.legend(loc="center")
    assert len(legend_overlaps(fig)) == 1
    assert len(legends_on_axes(fig)) == 1
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1))
    assert legend_overlaps(fig) == [] == legends_on_axes(fig)
    plt.close(fig)


def test_compute_axes_end_at_the_allocation_table_s_last_budget(main_fit, main_figures):
    last = max(r["flops"] for m in main_fit["config"]["methods"] for r in main_fit.get(m, {}).get("allocation", []))
    xlims = main_figures[1]["xlims"]
    spans = [lim for name in ("scaling.png", "loss_vs_compute.png", "optimal_allocation.png") for lim in xlims[name]]
    assert len(spans) == 5 and all(hi == pytest.approx(last, rel=2e-3) for _, hi in spans)
    assert all(lo < min(main_fit["data"]["points"]["c"]) for lo, _ in spans)


def test_approach_1_s_envelope_is_drawn_only_where_the_runs_are(main_fit):
    x = plots._Fit(main_fit, Path("."))
    env = plots._envelope_where_runs_are(x)
    assert env is not None and env["c"].min() >= x.c.min() * (1 - 1e-9) and env["c"].max() <= x.c.max() * (1 + 1e-9)


# --- W&B: the fit's run, read back from its offline files -------------------------------------------------------


def test_the_fit_s_wandb_run_carries_the_answer_the_figures_and_the_allocation(main_fit, main_figures):
    from sweep.fit.cli import ALLOCATION_COLUMNS, log_to_wandb
    from sweep.store.wandb_offline import find_offline_runs, last_record_type, read_offline_run, run_log_path

    folder, found = main_figures
    written = sorted(set(found) - {"xlims", "on_axes"})
    result = dict(main_fit)
    log_to_wandb(result, folder, written, {"mode": "offline", "project": "t"}, "g")
    run_dir = find_offline_runs(folder, result["wandb_run"]["id"])[0]
    deadline = time.monotonic() + 60  # wandb-core may still be flushing the log when finish() returns
    while last_record_type(run_log_path(run_dir)) != "exit" and time.monotonic() < deadline:
        time.sleep(0.2)
    run = read_offline_run(run_dir)
    assert run["exit_code"] == 0
    s, ans = run["summary"], main_fit["answer"]
    assert s["answer/a"] == pytest.approx(ans["a"]["value"]) and s["answer/b_hi"] == pytest.approx(ans["b"]["interval"][1])
    for row in ans["rows"]:
        at_ = f"answer/{row['factor']:.3g}x"
        assert s[f"{at_}/n_params"] == pytest.approx(row["n_params"]["value"])
        assert s[f"{at_}/n_tokens_lo"] == pytest.approx(row["n_tokens"]["interval"][0])
        assert s[f"{at_}/loss_hi"] == pytest.approx(row["loss"]["interval"][1])
    assert {"answer/10x/loss", "answer/100x/n_params_hi", "answer/100x/n_tokens"} <= set(s)
    lead = main_fit["verification"]["methods"][main_fit["verification"]["recommended"]]
    assert s["verification/rel_error"] == pytest.approx(lead["rel_error"])
    logged = {k: v for row in run["history"] for k, v in row.items()}
    for p in written:
        image = logged[f"figures/{Path(p).stem}"]
        assert image["_type"] == "image-file" and image["caption"] == p
        assert (Path(run["run_dir"]) / "files" / image["path"]).stat().st_size > 1000
    table = logged["allocation/answer"]
    assert table["_type"] == "table-file" and table["ncols"] == len(ALLOCATION_COLUMNS) and table["nrows"] == 3
    cells = json.loads((Path(run["run_dir"]) / "files" / table["path"]).read_text())
    assert cells["columns"] == ALLOCATION_COLUMNS
    assert cells["data"][1][2] == pytest.approx(ans["rows"][1]["n_params"]["value"])
    assert logged["allocation/every_method"]["nrows"] == sum(
        len(main_fit[m].get("allocation", [])) for m in main_fit["config"]["methods"])
