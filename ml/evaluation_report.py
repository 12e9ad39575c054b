#!/usr/bin/env python3
"""The walk-forward evaluation's human-readable report: models/EVALUATION.md and the
cumulative-result plot models/evaluation.png, both written from the report ml/evaluate.py
builds (every figure is one of models/evaluation.json)."""

from __future__ import annotations

import numpy as np

import model_card
from model_card import LABELS, fmt_ic, pct


def protocol_lines(rep) -> list[str]:
    pr = rep["protocol"]
    c = pr["costs"]
    rule = pr["shipped_rule"]
    t = pr.get("shipped_training") or {}
    return [
        f"Protocol: {len(rep['periods'])} quarters, each predicted by models trained only on the bars before it; "
        f"validation = the last {pr['validation_days']} days before the quarter (purged); {pr['retraining']}.",
        "",
        f"- **Costs** (`{pr['costs_table']}`, market orders: taker fee + slippage per side): spot at "
        f"`{c['spot']['venue']}` {c['spot']['fee']} + {c['spot']['slippage']} (round trip {c['spot']['round_trip']:.4f}), "
        f"perp at `{c['perp']['venue']}` {c['perp']['fee']} + {c['perp']['slippage']} (round trip "
        f"{c['perp']['round_trip']:.4f}).",
        f"- **Fills**: a signal fills {pr['fill_lag_bars']} bar after the bar that produced it; positions are held "
        f"{pr['hold_minutes']} minutes after the last signal in their direction.",
        "- **Margins**: every predictor but the shipped file trades only when |predicted 15m return| > round trip + "
        f"a margin chosen on validation ({', '.join(str(m) for m in pr['margins'])}), and emits nothing in a quarter "
        "when none paid there.",
        f"- **The shipped file** is judged with exactly the daemon's rule: threshold {rule['threshold']:.4f} = its "
        f"manifest's round trip {rule['round_trip']:.4f} (`{rule['costs'].get('venue', '?')}`) + its "
        f"`{rule['margin_from']}` {rule['margin']}, never re-chosen. It was trained on {t.get('data', '?')} "
        f"({t.get('from', '?')} → {t.get('to', '?')}): quarters overlapping that period are in-sample for it, "
        "marked (*) and left out of its overall figures.",
        f"- **Intervals**: per quarter, the IC's {pr['intervals']['ic_per_quarter']}; overall, {pr['intervals']['overall']}.",
        "- Net results are sums of per-bar returns of one fixed position size, after costs, in % of that size; "
        "*compounded* reinvests quarter by quarter. Sharpe is annualised from the quarterly results (× 2).",
    ]


def selection_lines(rep) -> list[str]:
    s = rep["selection"]
    r = s["rule"]
    lines = ["## The default: the selection rule", "",
             f"Written before the last {r['holdout_quarters']} quarters were looked at (`ml/evaluation_figures.py`, SELECTION). "
             f"On the selection quarters ({' → '.join(s['selection_quarters'])}), at the {r['venue']} costs, a "
             f"candidate passes when {r['pass']}; the best passing candidate must then hold on the last "
             f"{r['holdout_quarters']} ({' → '.join(s['holdout_quarters'])}): {r['holds']}. The bar, "
             f"{LABELS[s['bar']['predictor']]}: {pct(s['bar']['selection_net'])} on the selection quarters, "
             f"{pct(s['bar']['holdout_net'])} on the last {r['holdout_quarters']}.", "",
             "| candidate | selection net [95 %] | trades | Sharpe | > 0 | interval > 0 | > calibrated reversal | passes "
             "| last 8 quarters net [95 %] |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in s["candidates"]:
        se, ho, ch = c["selection"], c["holdout"], c["checks"]
        lines.append(f"| {LABELS[c['candidate']]} | {model_card.net_interval(se)} | {se.get('round_trips') or 0:,} | "
                     f"{model_card.num(se.get('sharpe'))} | {model_card.yes(ch['net_above_zero'])} | "
                     f"{model_card.yes(ch['interval_above_zero'])} | {model_card.yes(ch['above_calibrated_reversal'])} | "
                     f"**{model_card.yes(c['passes'])}** | {model_card.net_interval(ho)} |")
    lines += ["", f"**Decision**: {s['decision']}."]
    return lines


def per_quarter_lines(rep) -> list[str]:
    keys = [k for k in ("model", "ridge", "shipped", "momentum", "calibrated_reversal") if k in rep["periods"][0]["predictors"]]
    lines = ["## Per quarter", "",
             "IC 15m of the walk-forward model with its 95 % block-bootstrap interval (30-day blocks); net perp result "
             "after costs (trades) of each predictor, `silent` when it emitted nothing; buy-and-hold as the sum of "
             "per-minute returns / the price change. (*) in-sample for the shipped file.", "",
             "| quarter | model IC 15m | " + " | ".join(LABELS[k] for k in keys) + " | buy-and-hold |",
             "| --- | --- | " + " | ".join("---" for _ in keys) + " | --- |"]
    for p in rep["periods"]:
        pr = p["predictors"]

        def cell(k):
            s = pr[k]["perp"]
            txt = f"{pct(s['net'])} ({s['round_trips']})" if s["emits"] else "silent"
            return txt + (" *" if k == "shipped" and p.get("shipped_in_sample") else "")
        bh = p["buy_and_hold"]
        lines.append(f"| {p['period']} | {fmt_ic(pr['model']['ic_15m'])} | " + " | ".join(cell(k) for k in keys)
                     + f" | {pct(bh['net'])} / {pct(bh['price_change'])} |")
    return lines


def replay_lines(rep) -> list[str]:
    r = rep.get("default_replay")
    if not r:
        return []
    bh = r["buy_and_hold"]
    lines = [f"## `make run`'s default month ({r['from'][:10]} → {r['to'][:10]}, out of sample for every predictor)", "",
             f"The predictors of quarter {r['period']} over the month `make run` replays "
             "(`data/market/binance-btcusdt-1m-2025-11.csv.gz`), with the same rules and costs.", "",
             "| predictor | net perp (trades) | net spot (trades) |", "| --- | --- | --- |"]
    for k, e in r["predictors"].items():
        lines.append(f"| {LABELS[k]} | {pct(e['perp']['net'])} ({e['perp']['round_trips']}) | "
                     f"{pct(e['spot']['net'])} ({e['spot']['round_trips']}) |")
    lines.append(f"| buy-and-hold | | {pct(bh['compounded_net'])} (price {pct(bh['price_change'])}) |")
    lines.append("| no trade | +0.0 % | +0.0 % |")
    return lines


def write_markdown(rep, path):
    lines = [
        "# Walk-forward evaluation of the signal model",
        "",
        f"Written by `{rep['generated_by']}` in {rep['seconds']} s on {rep['machine']['cpus']} CPUs"
        + (f" ({rep['cached_folds']} of {len(rep['periods'])} quarters' walk-forward predictions read from the cache "
           "of an earlier run that trained them)" if rep.get("cached_folds") else "") + "; "
        f"every figure here is in `models/evaluation.json`. Data: {rep['data']['bars']:,} Binance BTC/USDT "
        f"one-minute bars, {rep['data']['first']} → {rep['data']['last']} UTC ({rep['data']['gaps']} gaps).",
        "",
        *protocol_lines(rep),
        "",
        *selection_lines(rep),
        "",
        "## Overall, out of sample: perpetual (the default venue's product)",
        "",
        *model_card.overall_table(rep, "perp"),
        "",
        "## Overall, out of sample: spot",
        "",
        *model_card.overall_table(rep, "spot"),
        "",
        *per_quarter_lines(rep),
        "",
        *replay_lines(rep),
    ]
    w = rep.get("shipped_own_week")
    if w:
        lines += ["", "## The shipped model on its own evaluation week (FTX BTC-PERP, 2022-01-25 → 02-01)", "",
                  f"The week `ml/train.py` held out of its training month, with the daemon's rule (threshold "
                  f"{w['threshold']:.4f}, `{w['venue']}` costs): IC 15m {fmt_ic(w['ic_15m'])}, net perp "
                  f"{pct(w['perp']['net'])} over {w['perp']['round_trips']} trades; buy-and-hold {pct(w['buy_and_hold'])}."]
    lines += ["", "![cumulative net result per quarter](evaluation.png)", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def plot(rep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [p["period"] for p in rep["periods"]]
    fig, ax = plt.subplots(figsize=(12, 5.5), dpi=110)
    series = {}
    for k in rep["periods"][0]["predictors"]:
        series[k] = [0.0 if (k == "shipped" and p.get("shipped_in_sample")) else p["predictors"][k]["perp"]["net"]
                     for p in rep["periods"]]
    series["buy_and_hold"] = [p["buy_and_hold"]["net"] for p in rep["periods"]]
    series["no_trade"] = [0.0] * len(names)
    styles = {"model": ("C3", 2.4), "ridge": ("C0", 1.4), "shipped": ("C1", 1.4), "momentum": ("C2", 1.0),
              "calibrated_reversal": ("C4", 1.4), "buy_and_hold": ("0.4", 1.2), "no_trade": ("0.7", 1.0)}
    for k, v in series.items():
        color, width = styles[k]
        ax.plot(range(len(names)), 100 * np.cumsum(v), label=LABELS[k], color=color, linewidth=width)
    hold = rep["selection"]["rule"]["holdout_quarters"]
    ax.axvspan(len(names) - hold - 0.5, len(names) - 0.5, color="0.9", zorder=0)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("cumulative net result, % of position size")
    c = rep["protocol"]["costs"]["perp"]
    ax.set_title(f"Walk-forward, BTC/USDT 1m, perpetual rule after costs ({c['venue']}, round trip "
                 f"{c['round_trip']:.4f}); shaded: the last {hold} quarters (holdout)")
    ax.axhline(0, color="0.2", linewidth=0.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
