"""The fit's W&B run: its summary (the answer), figures, allocation tables and fitted runs; the verification added
to the same run later."""

from __future__ import annotations

from pathlib import Path


def log_to_wandb(result: dict, folder: Path, plots: list[str], wb: dict, group: str | None) -> None:
    """One W&B run, job_type=fit; always finished. Its summary leads with the answer (wandb_summary: a, b, N*, D*,
    tokens/param and a new run's loss at 1x, 10x and 100x the largest budget, with intervals; the verification's
    error when there is one); it logs the answer's allocation and every method's as tables, each method's
    parameters, the runs, and each figure as an image. Its identity goes into result["wandb_run"], so that
    `sweep verify` can add its numbers to the same run."""
    if wb.get("mode", "offline") == "disabled":
        return
    import wandb

    from sweep.fit.report import answer_of

    run = wandb.init(project=wb.get("project") or "sweep", entity=wb.get("entity"), group=group, job_type="fit",
                     mode=wb.get("mode", "offline"), dir=str(folder), config=result["config"],
                     reinit="finish_previous")  # the old reinit=True; wandb 0.31 warns on booleans
    try:
        for m in result["config"]["methods"]:
            r = result.get(m, {})
            if r.get("status") != "ok":
                continue
            table = wandb.Table(columns=["parameter", "value", "lo", "hi", "se"])
            for k, v in {**r["params"], **r["exponents"]}.items():
                iv = r.get("intervals", {}).get(k) or r.get("exponent_intervals", {}).get(k) or [None, None]
                table.add_data(k, v, iv[0], iv[1], r.get("se", {}).get(k))
            run.log({f"{m}/parameters": table})
            run.summary[f"{m}/a"] = r["exponents"]["a"]
            run.summary[f"{m}/b"] = r["exponents"]["b"]
        ans = answer_of(result)
        run.summary.update(wandb_summary(ans, result.get("verification")))
        tables = {"allocation/every_method": _every_allocation(result)}
        if ans:
            tables["allocation/answer"] = wandb.Table(columns=ALLOCATION_COLUMNS,
                                                      data=[allocation_cells(row) for row in ans["rows"]])
        run.log(tables)
        _log_runs(run, result["data"]["points"])
        run.log({f"figures/{Path(p).stem}": wandb.Image(str(folder / p), caption=p) for p in plots})
        result["wandb_run"] = {"id": run.id, "project": wb.get("project") or "sweep", "entity": wb.get("entity"),
                               "mode": wb.get("mode", "offline"), "group": group}
    finally:
        run.finish()


ALLOCATION_COLUMNS = ["factor", "flops", "n_params", "n_params_lo", "n_params_hi", "n_tokens", "n_tokens_lo",
                      "n_tokens_hi", "tokens_per_param", "tokens_per_param_lo", "tokens_per_param_hi", "loss",
                      "loss_lo", "loss_hi"]
"""The allocation table's columns in W&B: the answer at each budget, each estimate with its interval."""


def allocation_cells(row: dict) -> list:
    """One answer row (fit.json's answer["rows"][i]) as ALLOCATION_COLUMNS' cells; None where there is no interval."""
    cells = [row["factor"], row["flops"]]
    for key in ("n_params", "n_tokens", "tokens_per_param", "loss"):
        iv = row[key].get("interval") or [None, None]
        cells += [row[key]["value"], iv[0], iv[1]]
    return cells


def wandb_summary(ans: dict | None, verification: dict | None) -> dict:
    """The fit's W&B summary fields: answer/a, answer/a_lo, answer/a_hi (and b), answer/<k>x/<quantity>[_lo|_hi]
    for N*, D*, tokens/param and the new run's loss at each of the answer's budgets, and the verification's error,
    coverage and measured loss when the fit has been verified."""
    out: dict = {}
    if ans:
        out.update({"answer/source": ans["source"], "answer/law": ans["law"], "answer/determined": ans["determined"]})
        for key in ("a", "b"):
            iv = ans[key].get("interval") or [None, None]
            out.update({f"answer/{key}": ans[key]["value"], f"answer/{key}_lo": iv[0], f"answer/{key}_hi": iv[1]})
        for row in ans["rows"]:
            at = f"answer/{row['factor']:.3g}x"
            out[f"{at}/flops"] = row["flops"]
            for key in ("n_params", "n_tokens", "tokens_per_param", "loss"):
                iv = row[key].get("interval") or [None, None]
                out.update({f"{at}/{key}": row[key]["value"], f"{at}/{key}_lo": iv[0], f"{at}/{key}_hi": iv[1]})
    if verification:
        lead = verification.get("recommended") or verification["method"]
        m = verification["methods"].get(lead) or verification["methods"].get(verification["method"], {})
        out.update({"verification/rel_error": m.get("rel_error"), "verification/covered": m.get("covered"),
                    "verification/predicted": m.get("predicted"),
                    "verification/measured_loss": verification["measured_loss"],
                    "verification/extrapolation": verification["extrapolation"]})
    return out


def _every_allocation(result: dict):
    """Every method's compute-optimal allocation rows (the appendix's table) as one W&B table."""
    import wandb

    cols = ["method", "flops", "factor", "n_star", "n_star_lo", "n_star_hi", "d_star", "d_star_lo", "d_star_hi",
            "loss", "loss_pi_lo", "loss_pi_hi"]
    table = wandb.Table(columns=cols)
    for m in result["config"]["methods"]:
        for row in (result.get(m) or {}).get("allocation") or []:
            n_iv, d_iv = (row[k].get("interval") or [None, None] for k in ("n_star", "d_star"))
            pi = row["loss"].get("prediction_interval") or [None, None]
            table.add_data(m, row["flops"], row.get("extrapolation"), row["n_star"]["value"], *n_iv,
                           row["d_star"]["value"], *d_iv, row["loss"]["value"], *pi)
    return table


def _log_runs(run, points: dict) -> None:
    """The fitted runs as a W&B table, with interactive charts built from it: loss against compute (every
    run) and the IsoFLOP curves (loss against N, one line per budget)."""
    import wandb

    table = wandb.Table(columns=["run", "n_params", "n_tokens", "flops", "loss", "budget"])
    rows = list(zip(points["name"], points["n"], points["d"], points["c"], points["loss"], points["budget"]))
    for row in rows:
        table.add_data(*row)
    budgets = sorted({b for *_, b in rows if b is not None})
    curves = [sorted((n, loss) for _, n, _, _, loss, b in rows if b == budget) for budget in budgets]
    charts = {"runs/table": table,
              "runs/loss_vs_compute": wandb.plot.scatter(table, "flops", "loss", title="final loss vs compute")}
    if curves:
        charts["runs/isoflop_curves"] = wandb.plot.line_series(
            xs=[[n for n, _ in c] for c in curves], ys=[[loss for _, loss in c] for c in curves],
            keys=[f"C={b:.3g}" for b in budgets], title="IsoFLOP curves: loss vs N", xname="N (parameters)")
    run.log(charts)


def log_verification(fit: dict, folder: Path, verification: dict) -> None:
    """The verification's numbers in the fit's own W&B run (resumed by id), as summary keys and a table."""
    wr = fit.get("wandb_run")
    if not wr or wr.get("mode") == "disabled":
        return
    import wandb

    run = wandb.init(id=wr["id"], resume="allow", project=wr["project"], entity=wr.get("entity"), group=wr.get("group"),
                     job_type="fit", mode=wr["mode"], dir=str(folder), reinit="finish_previous")
    try:
        table = wandb.Table(columns=["method", "predicted", "lo", "hi", "measured", "rel_error", "covered"])
        for m, r in verification["methods"].items():
            iv = r.get("interval") or [None, None]
            table.add_data(m, r.get("predicted"), iv[0], iv[1], verification["measured_loss"], r.get("rel_error"),
                           r.get("covered"))
        run.log({"verification/methods": table})
        run.summary.update({f"verification/{k}": verification[k] for k in
                            ("flops", "run_id", "n_params", "n_tokens", "measured_loss", "extrapolation")})
        main = verification["methods"].get(verification["method"], {})
        run.summary.update({"verification/rel_error": main.get("rel_error"), "verification/covered": main.get("covered")})
    finally:
        run.finish()
