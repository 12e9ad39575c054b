#!/usr/bin/env python3
"""The walk-forward evaluation's human-readable report: models/EVALUATION.md and the
cumulative-result plot models/evaluation.png, both written from the report ml/evaluate.py
builds (every figure is one of models/evaluation.json)."""

from __future__ import annotations

import numpy as np

import model_card
from model_card import LABELS, fmt_ic, pct

def write_markdown(rep, path):
    o = rep["overall"]
    lines = [
        "# Walk-forward evaluation of the signal model",
        "",
        f"Written by `{rep['generated_by']}` in {rep['seconds']} s on {rep['machine']['cpus']} CPUs; "
        f"every figure here is in `models/evaluation.json`. Data: {rep['data']['bars']:,} Binance BTC/USDT "
        f"one-minute bars, {rep['data']['first']} → {rep['data']['last']} UTC ({rep['data']['gaps']} gaps).",
        "",
        f"Protocol: {len(rep['periods'])} quarters, each predicted by a model trained only on the bars before it; "
        f"validation = the last {rep['protocol']['validation_days']} days before the quarter (purged); "
        f"{rep['protocol']['retraining']}. Costs: fee {rep['protocol']['costs']['fee']} + slippage "
        f"{rep['protocol']['costs']['slippage']} per side = round trip {rep['protocol']['costs']['round_trip']:.4f}. "
        f"A predictor trades only when |predicted 15m return| > round trip + a margin chosen on validation "
        f"({', '.join(str(m) for m in rep['protocol']['margins'])}); when no margin paid on validation it emits nothing. "
        f"Positions are held {rep['protocol']['hold_minutes']} minutes after the last signal in their direction. "
        "Net results are sums of per-bar returns of one fixed position size, after costs, in % of that size.",
        "",
        "## Overall",
        "",
        *model_card.overall_table(rep),
    ]
    for key in ("model", "shipped"):
        e = o["predictors"].get(key, {}).get("fixed_threshold_0.0004")
        if e:
            lines.append("")
            lines.append(f"Without costs in the decision ({LABELS[key]}, the old fixed threshold 0.0004): net spot "
                         f"{pct(e['spot']['net'])} over {e['spot']['round_trips']:,} trades, net perp {pct(e['perp']['net'])} "
                         f"over {e['perp']['round_trips']:,} trades.")
    lines += ["", "## Per quarter", "",
              "IC 15m with its 95 % block-bootstrap interval; net spot result after costs (trades); buy-and-hold net.", "",
              "| quarter | model IC 15m | model net (trades) | ridge IC 15m | ridge net | shipped IC 15m | shipped net | "
              "mean rev. net | momentum net | buy-and-hold |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in rep["periods"]:
        pr = p["predictors"]

        def cell(k, field):
            if k not in pr:
                return "—"
            if field == "ic":
                return fmt_ic(pr[k]["ic_15m"])
            s = pr[k]["spot"]
            return f"{pct(s['net'])} ({s['round_trips']})" if s["emits"] else "silent"
        lines.append(f"| {p['period']} | {cell('model', 'ic')} | {cell('model', 'net')} | {cell('ridge', 'ic')} | "
                     f"{cell('ridge', 'net')} | {cell('shipped', 'ic')} | {cell('shipped', 'net')} | "
                     f"{cell('mean_reversion', 'net')} | {cell('momentum', 'net')} | {pct(p['buy_and_hold']['net'])} |")
    w = rep.get("shipped_own_week")
    if w:
        lines += ["", "## The shipped model on its own evaluation week (FTX BTC-PERP, 2022-01-25 → 02-01)", "",
                  f"IC 15m {fmt_ic(w['ic_15m'])}. Margin chosen on its validation slice (2022-01-20 → 01-25): "
                  f"spot {w['spot']['margin'] if w['spot']['margin'] is not None else 'none pays (emits nothing)'}, "
                  f"perp {w['perp']['margin'] if w['perp']['margin'] is not None else 'none pays (emits nothing)'}. "
                  f"Evaluation week net: spot {pct(w['spot']['eval']['net'])} ({w['spot']['eval']['round_trips']} trades), "
                  f"perp {pct(w['perp']['eval']['net'])} ({w['perp']['eval']['round_trips']} trades); with the old fixed "
                  f"threshold 0.0004: spot {pct(w['spot']['fixed_threshold_0.0004']['net'])} "
                  f"({w['spot']['fixed_threshold_0.0004']['round_trips']} trades), perp "
                  f"{pct(w['perp']['fixed_threshold_0.0004']['net'])} ({w['perp']['fixed_threshold_0.0004']['round_trips']} trades); "
                  f"buy-and-hold {pct(w['buy_and_hold'])}."]
    lines += ["", "![cumulative net result per quarter](evaluation.png)", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plot(rep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [p["period"] for p in rep["periods"]]
    fig, ax = plt.subplots(figsize=(12, 5.5), dpi=110)
    # The predictors in the order the report lists them (evaluate.PREDICTORS).
    series = {k: [p["predictors"][k]["spot"]["net"] for p in rep["periods"]] for k in rep["periods"][0]["predictors"]}
    series["buy_and_hold"] = [p["buy_and_hold"]["net"] for p in rep["periods"]]
    series["no_trade"] = [0.0] * len(names)
    styles = {"model": ("C3", 2.4), "ridge": ("C0", 1.4), "shipped": ("C1", 1.4), "momentum": ("C2", 1.0),
              "mean_reversion": ("C4", 1.0), "buy_and_hold": ("0.4", 1.2), "no_trade": ("0.7", 1.0)}
    for k, v in series.items():
        color, width = styles[k]
        ax.plot(range(len(names)), 100 * np.cumsum(v), label=LABELS[k], color=color, linewidth=width)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("cumulative net result, % of position size")
    ax.set_title(f"Walk-forward, BTC/USDT 1m, spot rule after costs (round trip {rep['protocol']['costs']['round_trip']:.4f})")
    ax.axhline(0, color="0.2", linewidth=0.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
