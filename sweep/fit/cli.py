"""`sweep fit`, `sweep predict`, `sweep report`: compose conf/fit.yaml with overrides and run."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from sweep.fit import allocation, answer, registry, slices
from sweep.fit.holdout import predict_run
from sweep.fit.config import FitConfig, FitInputError
from sweep.fit.wandb_log import ALLOCATION_COLUMNS, log_to_wandb, log_verification  # noqa: F401 (imported from here)

log = logging.getLogger("sweep.fit")


def compose(overrides: list[str]) -> dict:
    """conf/fit.yaml with key=value overrides, as a plain dict."""
    from omegaconf import OmegaConf

    from sweep.compose import compose as compose_config

    return OmegaConf.to_container(compose_config("fit", overrides), resolve=True)


def fit_config(raw: dict) -> FitConfig:
    """The FitConfig dataclass from the composed `fit:` section (unknown keys refused)."""
    names = {f.name for f in dataclasses.fields(FitConfig)}
    unknown = set(raw) - names
    if unknown:
        raise FitInputError(f"unknown fit options {sorted(unknown)}; known: {sorted(names)}")
    return FitConfig(**raw).validate()


def _output(raw: dict) -> Path:
    if raw.get("output"):
        return Path(raw["output"])
    src = Path(str(raw["input"]))
    return src / "fit" if src.is_dir() else Path("fit")


def fit_command(overrides: list[str]) -> int:
    """sweep fit input=<source> [output=<folder>] [fit.<option>=...]: write fit.json, report.md and plots."""
    from sweep.fit import fit
    from sweep.fit.inputs import load_runs
    from sweep.fit.plots import write_plots
    from sweep.fit.report import write

    raw = compose(overrides)
    if not raw.get("input"):
        raise FitInputError("no input: sweep fit input=<results folder | table.csv | wandb:entity/project>")
    cfg = fit_config(raw["fit"])
    notes: list = []
    runs = load_runs(str(raw["input"]), raw["columns"], raw["wandb"].get("group"), raw["wandb"].get("tags"), notes)
    result = fit(runs, cfg)
    result["warnings"] = notes + result["warnings"]
    result["input"] = str(raw["input"])
    folder = _output(raw)
    plots = write_plots(result, folder) if raw.get("plots", True) else []
    group = raw["wandb"].get("group") or (Path(str(raw["input"])).name if Path(str(raw["input"])).is_dir() else None)
    log_to_wandb(result, folder, plots, raw["wandb"], group)
    report = write(result, folder, plots)
    print(f"wrote {folder / 'fit.json'} and {report}")
    # the console shows the table's extrapolations (10x, 100x), not a fixed 1e21 a CPU sweep is 1e9x short of
    c_max = result["data"]["flops_range"][1]
    _print_predictions(result, cfg.budgets or [c_max * k for k in cfg.extrapolate_to], None, None)
    return 0


def _load_fit(raw: dict) -> dict:
    src = Path(str(raw["input"]))
    for p in (src, src / "fit.json", src / "fit" / "fit.json"):
        if p.is_file():
            return json.loads(p.read_text())
    raise FitInputError(f"no fit.json at {src} (or {src}/fit.json, {src}/fit/fit.json): run `sweep fit input=...` first")


def _print_predictions(result: dict, budgets, n_params, n_tokens) -> None:
    level = result["config"]["interval"]
    k = result["data"]["flops_per_nd"]

    def fmt(x):
        if not np.isfinite(x["value"]):
            return "n/a"  # e.g. approach 2's L(C) from fewer than 4 budgets
        iv = x.get("interval")
        return f"{x['value']:.4g}" + (f" [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else "")

    noise = allocation.noise_of(result)
    c_max = result["data"]["flops_range"][1]
    def fmt_pi(x):
        iv = x.get("prediction_interval")
        return "n/a" if not iv else f"[{iv[0]:.4g}, {iv[1]:.4g}]"

    rec = result.get("recommended") or {}
    has_law = any(result.get(m, {}).get("status") == "ok" for m in result["config"]["methods"])
    if has_law and rec.get("method"):
        for c in budgets:  # the answer first: what to train, and the loss it will reach
            print("answer: " + answer.line(answer.at(result, float(c)), level))
        if n_params and n_tokens:
            est, source = answer.loss_of_run(result, float(n_params), float(n_tokens))
            print(f"answer: N = {n_params:.4g}, D = {n_tokens:.4g}: loss = {answer.fmt_estimate(est)}"
                  + (f" ({100 * level:.0f}% PI for a new run)" if est.interval else f" ({est.note})")
                  + f", from {source}")
        print(f"why: {rec.get('reason', '')}")
        print("every method:")
    if noise is not None and not noise.ok:
        print(f"no prediction intervals for new runs: {noise.source}")
    for m in result["config"]["methods"]:  # said once, not once per budget
        if result.get(m, {}).get("status") != "ok":
            print(f"  {m:16s} skipped: {result.get(m, {}).get('reason')}")
    if not any(result.get(m, {}).get("status") == "ok" for m in result["config"]["methods"]):
        for name, law in (result.get("single_variable") or {}).items():
            if law["status"] == "ok":
                print(f"  {name}: {slices.describe(law)}")
        budgets = []  # no compute-optimal law to predict budgets with
    for c in budgets:
        print(f"C = {c:.3g} FLOPs, {c / c_max:.3g}x the largest fitted compute ({100 * level:.0f}% intervals: CI of the "
              "law for N*, D*, L*; PI for a new run's loss):")
        for m in result["config"]["methods"]:
            r = result.get(m, {})
            if r.get("status") != "ok":
                continue
            row = allocation.allocation_row(m, r, float(c), k, level, noise, extrapolation=c / c_max)
            print(f"  {m:16s} N* = {fmt(row['n_star'])}  D* = {fmt(row['d_star'])}  "
                  f"tokens/param = {fmt(row['tokens_per_param'])}  L* = {fmt(row['loss'])}  "
                  f"new run PI {fmt_pi(row['loss'])}")
    if n_params and n_tokens:
        c = float(result["data"]["flops_per_nd"]) * n_params * n_tokens
        p = predict_run(result, float(n_params), float(n_tokens), c, None, at_optimum=False)
        print(f"N = {n_params:.4g}, D = {n_tokens:.4g}: {p['extrapolation']:.3g}x the largest fitted compute, "
              f"{p['reach']:.3g}x past the fitted data in N, D or C ({100 * level:.0f}% PI for a new run):")
        lead = p["methods"].get(p["recommended"] or "", {})
        if lead.get("predicted"):
            print(f"  recommended ({p['recommended']}{': ' + lead['basis'] if p['recommended'] == 'stacked' else ''}): "
                  f"loss = {lead['predicted']:.4g}  PI {fmt_pi({'prediction_interval': lead['interval']})}")
        if not any(v.get("predicted") and v["basis"].startswith("L(N, D)") for v in p["methods"].values()):
            print("  no fitted method has a law of N and D (approaches 1 and 2 only know the compute-optimal frontier "
                  "L*(C), not the loss of a run off it): fit one that has, e.g. fit.methods="
                  f"[{','.join(m for m, meth in registry.METHODS.items() if meth.loss_at is not None)}]")
        for m, v in p["methods"].items():
            if m != "stacked" and v.get("predicted") and v["basis"].startswith("L(N, D)"):
                ci = v.get("law_interval")
                print(f"  {m:16s} loss = {v['predicted']:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
                      + f" (CI)  new run PI {fmt_pi({'prediction_interval': v['interval']})}")


def predict_command(overrides: list[str]) -> int:
    """sweep predict input=<fit folder | results folder> flops=1e21: N*, D*, tokens/param, loss with intervals."""
    raw = compose(overrides)
    if not raw.get("input"):
        raise FitInputError("no input: sweep predict input=<fit folder> flops=1e21")
    budgets = raw.get("flops")
    budgets = [budgets] if isinstance(budgets, (int, float)) else list(budgets or [])
    if not budgets and not (raw.get("n_params") and raw.get("n_tokens")):
        raise FitInputError("nothing to predict: give flops=<C> and/or n_params=<N> n_tokens=<D>")
    for key, values in (("flops", budgets), ("n_params", [raw.get("n_params")]), ("n_tokens", [raw.get("n_tokens")])):
        bad = [v for v in values if v is not None and not (isinstance(v, (int, float)) and float(v) > 0)]
        if bad:
            raise FitInputError(f"{key}={bad[0]!r}: must be a positive number, e.g. flops=1e21 (FLOPs), "
                                f"n_params=1e9, n_tokens=2e10")
    _print_predictions(_load_fit(raw), [float(b) for b in budgets], raw.get("n_params"), raw.get("n_tokens"))
    return 0


def report_command(overrides: list[str]) -> int:
    """sweep report input=<fit folder>: rebuild report.md and the plots from fit.json."""
    from sweep.fit.plots import write_plots
    from sweep.fit.report import write

    raw = compose(overrides)
    if not raw.get("input"):
        raise FitInputError("no input: sweep report input=<fit folder>")
    result = _load_fit(raw)
    src = Path(str(raw["input"]))
    folder = Path(raw["output"]) if raw.get("output") else (src.parent if src.is_file() else
                                                            src if (src / "fit.json").is_file() else src / "fit")
    plots = write_plots(result, folder) if raw.get("plots", True) else []
    print(f"wrote {write(result, folder, plots)}")
    return 0


def compare_command(argv: list[str]) -> int:
    """sweep compare <fit folder A> <fit folder B> [method=approach3] [output=<folder>]: exponents side by side and
    the compute multiplier at equal loss; prints it and writes compare.json and compare.md."""
    from sweep.fit.compare import compare_fits, render

    paths = [a for a in argv if "=" not in a]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    unknown = set(opts) - {"method", "output"}
    if len(paths) != 2 or unknown:
        raise FitInputError("usage: sweep compare <fit folder A> <fit folder B> [method=approach3] [output=<folder>]"
                            + (f" (unknown options {sorted(unknown)})" if unknown else ""))
    fits = [_load_fit({"input": p}) for p in paths]
    method = opts.get("method", "approach3")
    if method not in fits[0]["config"]["methods"] + fits[1]["config"]["methods"]:
        raise FitInputError(f"method={method}: neither fit ran it (they ran {fits[0]['config']['methods']})")
    level = fits[0]["config"]["interval"]
    cmp = compare_fits(fits[0], fits[1], method, level)
    cmp["inputs"] = paths
    text = render(cmp, paths[0], paths[1], level)
    print(text, end="")
    folder = Path(opts.get("output", "compare"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compare.json").write_text(json.dumps(cmp, indent=1, default=float))
    (folder / "compare.md").write_text(text)
    print(f"wrote {folder / 'compare.json'} and {folder / 'compare.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """python -m sweep.fit.cli {fit,predict,report} key=value ... (`sweep fit|predict|report|compare` dispatch here)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    commands = {"fit": fit_command, "predict": predict_command, "report": report_command, "compare": compare_command}
    if not argv or argv[0] not in commands:
        print("usage: python -m sweep.fit.cli {fit,predict,report,compare} key=value ...")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return commands[argv[0]](argv[1:])
    except FitInputError as exc:
        print(f"error: {exc}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
