#!/usr/bin/env python3
"""The walk-forward evaluation's figures: information coefficients with their intervals,
a predictor's results per product over a set of quarters (net with its quarter-spread
interval, compounded, Sharpe, exposure, turnover, worst quarter, without the best three),
buy-and-hold, and the selection rule that decides whether the shipped default may trade.
ml/evaluate.py computes the quarters; everything here is arithmetic on them."""

from __future__ import annotations

import math

import numpy as np

BOOT = 200
BLOCK = 30 * 1440  # 30 days of one-minute samples per bootstrap block: regimes persist for weeks
HOLDOUT_QUARTERS = 8

# The rule that chooses the default, fixed before the last HOLDOUT_QUARTERS quarters were
# looked at. On the quarters before them (out of sample for each candidate), at the
# perpetual's costs (the default venue trades a perpetual): a candidate passes when its net
# result is above zero, the lower end of its quarter-spread 95 % interval is above zero, and
# it beats the calibrated reversal. The best passing candidate then has to make money on the
# last HOLDOUT_QUARTERS quarters too. Otherwise the shipped margin is null: the default
# emits nothing.
SELECTION = {
    "venue": "perp",
    "candidates": ["shipped", "model", "ridge"],
    "bar": "calibrated_reversal",
    "holdout_quarters": HOLDOUT_QUARTERS,
    "pass": "net > 0 and quarter-spread 95 % interval above 0 and net > calibrated reversal's, on the selection quarters",
    "holds": "net > 0 on the holdout quarters",
}


def ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), as scipy.stats.rankdata."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, len(x)])
    avg = starts + (counts + 1) / 2.0
    out = np.empty(len(x))
    out[order] = avg[group]
    return out


def corr(a: np.ndarray, b: np.ndarray):
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return None if den == 0.0 else float(a @ b) / den


def ic_with_interval(pred, real, rng, boot=BOOT):
    """Spearman IC and a moving-block bootstrap 95 % interval (blocks of BLOCK samples).

    The resamples correlate the ranks of the full sample (a standard approximation that
    keeps each resample O(n)); undefined (None) when the prediction is constant."""
    rp, rr = ranks(pred), ranks(real)
    ic = corr(rp, rr)
    n = len(rp)
    if ic is None or n < 2 * BLOCK:
        return {"ic": None if ic is None else round(ic, 5), "lo": None, "hi": None}
    nb = max(1, n // BLOCK)
    starts_max = max(1, n - BLOCK + 1)
    vals = []
    for _ in range(boot):
        s = rng.integers(0, starts_max, nb)
        idx = (s[:, None] + np.arange(min(BLOCK, n))[None, :]).ravel()
        c = corr(rp[idx], rr[idx])
        if c is not None:
            vals.append(c)
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return {"ic": round(ic, 5), "lo": round(float(lo), 5), "hi": round(float(hi), 5)}


def hit_rate(pred, real):
    m = real != 0
    hits = (np.sign(pred[m]) == np.sign(real[m])) & (pred[m] != 0)
    return round(float(hits.mean()), 5) if m.any() else None


def quarter_stats(nets):
    """Sum, compounded, annualised Sharpe and the quarter-spread 95 % interval of the sum."""
    x = np.asarray(nets, dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"quarters": 0, "net": 0.0}
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    half = 1.96 * math.sqrt(n) * sd
    order = np.argsort(x)[::-1]
    out = {"quarters": n, "net": float(x.sum()), "net_lo": float(x.sum() - half), "net_hi": float(x.sum() + half),
           # Reinvested quarter by quarter; a quarter that loses the whole stake ends it.
           "compounded": float(np.prod(np.maximum(1.0 + x, 0.0)) - 1.0),
           "sharpe": None if sd == 0.0 else round(float(x.mean() / sd * 2.0), 3),
           "quarters_net_positive": int((x > 0).sum()),
           "net_without_best_3": float(x[order[3:]].sum())}
    return out


def venue_summary(per, venue):
    """A predictor's figures over the quarters in `per` (its entries, in-sample ones removed)."""
    rows = [x[venue] for x in per]
    st = quarter_stats([r["net"] for r in rows])
    if not rows:
        return st
    worst = min(range(len(rows)), key=lambda k: rows[k]["net"])
    bars = sum(r["bars"] for r in rows)
    st.update({
        "gross": float(sum(r["gross"] for r in rows)),
        "cost": float(sum(r["cost"] for r in rows)),
        "round_trips": int(sum(r["round_trips"] for r in rows)),
        "exposure": round(sum(r["exposure"] * r["bars"] for r in rows) / bars, 5) if bars else 0.0,
        "turnover_per_day": round(sum(r["turnover"] for r in rows) / (bars / 1440), 4) if bars else 0.0,
        "quarters_emitting": int(sum(1 for r in rows if r["emits"])),
        "worst_quarter": {"period": per[worst]["period"], "net": rows[worst]["net"]},
    })
    return st


def rounded(x):
    return None if x is None else round(x, 5)


def buy_and_hold(close, costs):
    """Holding the coin over the stretch: the sum of per-bar returns (how the rules' results
    add up) beside the compounded price change, each after one spot round trip."""
    r = close[1:] / close[:-1] - 1.0
    pc = float(close[-1] / close[0] - 1.0)
    return {"gross": float(r.sum()), "cost": costs["round_trip"], "net": float(r.sum()) - costs["round_trip"],
            "price_change": pc, "compounded_net": (1.0 + pc) * (1.0 - costs["per_side"]) ** 2 - 1.0}


def summarise(report_periods, pooled, pooled_real, predictors, horizons):
    """The overall figures per predictor, out of sample only, and over the selection and
    holdout windows."""
    real_all = np.concatenate(pooled_real)
    overall = {"ic_samples": int(len(real_all)), "predictors": {}}
    sel, hold = report_periods[:-HOLDOUT_QUARTERS], report_periods[-HOLDOUT_QUARTERS:]
    for key in predictors:
        oos = [p for p in report_periods if not (key == "shipped" and p["shipped_in_sample"])]
        per = [p["predictors"][key] for p in oos]
        p = np.concatenate(pooled[key])
        real = np.concatenate([r for r, q in zip(pooled_real, report_periods)
                               if not (key == "shipped" and q["shipped_in_sample"])])
        qics = [x["ic_15m"]["ic"] for x in per if x["ic_15m"]["ic"] is not None]
        pooled_ic = rounded(corr(ranks(p[:, 1]), ranks(real[:, 1])))
        half = 1.96 * float(np.std(qics, ddof=1)) / math.sqrt(len(qics)) if len(qics) > 1 else None
        entry = {"quarters": len(oos), "in_sample_quarters": [q["period"] for q in report_periods if q not in oos],
                 "ic_15m": {"ic": pooled_ic, "lo": None if half is None or pooled_ic is None else round(pooled_ic - half, 5),
                            "hi": None if half is None or pooled_ic is None else round(pooled_ic + half, 5)}}
        for j, h in enumerate(horizons):
            if h != 15:
                entry[f"ic_{h}m"] = {"ic": rounded(corr(ranks(p[:, j]), ranks(real[:, j])))}
        entry["hit_rate_15m"] = hit_rate(p[:, 1], real[:, 1])
        entry["quarters_ic15_positive"] = sum(1 for v in qics if v > 0)
        entry["quarters_ic15_interval_above_zero"] = sum(1 for x in per if (x["ic_15m"]["lo"] or 0) > 0)
        entry["mean_quarterly_ic15"] = round(float(np.mean(qics)), 5) if qics else None
        for venue in ("spot", "perp"):
            entry[venue] = venue_summary([{"period": q["period"], **q["predictors"][key]} for q in oos], venue)
            entry[venue]["selection"] = venue_summary(
                [{"period": q["period"], **q["predictors"][key]} for q in sel if q in oos], venue)
            entry[venue]["holdout"] = venue_summary(
                [{"period": q["period"], **q["predictors"][key]} for q in hold if q in oos], venue)
        overall["predictors"][key] = entry
    bh = [p["buy_and_hold"] for p in report_periods]
    overall["buy_and_hold"] = {
        **quarter_stats([x["net"] for x in bh]),
        "compounded": float(np.prod([1.0 + x["price_change"] for x in bh]) - 1.0),
        "sharpe_compounded": quarter_stats([x["compounded_net"] for x in bh])["sharpe"],
        "selection": quarter_stats([x["net"] for x in bh[:-HOLDOUT_QUARTERS]]),
        "holdout": quarter_stats([x["net"] for x in bh[-HOLDOUT_QUARTERS:]]),
    }
    return overall


def select_default(report_periods, overall, rule):
    """The selection rule, written before the last eight quarters were looked at (SELECTION)."""
    sel_names = [p["period"] for p in report_periods[:-HOLDOUT_QUARTERS]]
    hold_names = [p["period"] for p in report_periods[-HOLDOUT_QUARTERS:]]
    o = overall["predictors"]
    bar = o[SELECTION["bar"]][SELECTION["venue"]]
    rows = []
    for key in SELECTION["candidates"]:
        if key not in o:
            continue
        s = o[key][SELECTION["venue"]]["selection"]
        h = o[key][SELECTION["venue"]]["holdout"]
        checks = {
            "net_above_zero": s["net"] > 0,
            "interval_above_zero": s.get("net_lo", -1) > 0,
            "above_calibrated_reversal": s["net"] > bar["selection"]["net"],
        }
        rows.append({"candidate": key, "selection": {k: s.get(k) for k in ("net", "net_lo", "net_hi", "round_trips",
                                                                                "quarters", "sharpe")},
                     "checks": checks, "passes": all(checks.values()),
                     "holdout": {k: h.get(k) for k in ("net", "net_lo", "net_hi", "round_trips", "quarters", "sharpe")}})
    passing = [r for r in rows if r["passes"]]
    chosen = max(passing, key=lambda r: r["selection"]["net"]) if passing else None
    holds = chosen is not None and chosen["holdout"]["net"] > 0
    if chosen is None:
        decision = ("no candidate passes on the selection quarters: the shipped model's margin is null, the "
                    "default emits no signal")
        margin = None
    elif not holds:
        decision = (f"{chosen['candidate']} passes on the selection quarters but loses on the last "
                    f"{HOLDOUT_QUARTERS}: the shipped model's margin is null, the default emits no signal")
        margin = None
    elif chosen["candidate"] == "shipped":
        decision = f"the shipped model passes and holds: its margin {rule['margin']} is the daemon's"
        margin = rule["margin"]
    else:
        decision = (f"{chosen['candidate']} passes and holds, but it is the evaluation's walk-forward procedure, "
                    "not a shipped file: export its latest fold to ship it; the shipped model's margin stays null")
        margin = None
    return {"rule": SELECTION, "selection_quarters": [sel_names[0], sel_names[-1]] if sel_names else [],
            "holdout_quarters": [hold_names[0], hold_names[-1]] if hold_names else [],
            "bar": {"predictor": SELECTION["bar"], "selection_net": bar["selection"]["net"],
                    "holdout_net": bar["holdout"]["net"]},
            "candidates": rows, "chosen": None if chosen is None else chosen["candidate"], "holds": holds,
            "shipped_margin": margin, "decision": decision}
