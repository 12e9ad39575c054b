#!/usr/bin/env python3
"""models/MODEL_CARD.md, generated from the walk-forward report and the model's manifest.

    python3 ml/model_card.py            # write models/MODEL_CARD.md and print it
    python3 ml/model_card.py --check    # exit 1 when the committed card is not the report's

`make evaluate` runs it after ml/evaluate.py, so every figure of the card is one that run
printed: the measurements come from models/evaluation.json, the model's description from
its manifest models/patchtst.json (window, features, horizons, costs, the margin the
daemon uses) and the file itself (size, SHA-256). Sentences that judge a figure are chosen
by the figure, so a new report cannot leave an old verdict standing. Standard library
only: `make test` runs the check with the system's python3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODELS = os.path.join(REPO, "models")

LABELS = {
    "model": "walk-forward PatchTST",
    "ridge": "ridge (same inputs)",
    "shipped": "shipped patchtst.onnx (daemon's rule)",
    "momentum": "momentum (last 15m)",
    "calibrated_reversal": "calibrated reversal",
    "buy_and_hold": "buy-and-hold",
    "no_trade": "no trade",
}


def pct(x):
    return "—" if x is None else f"{100 * x:+.1f} %"


def num(x):
    return "—" if x is None else f"{x:+.2f}"


def yes(b):
    return "yes" if b else "no"


def fmt_ic(d):
    if d is None or d.get("ic") is None:
        return "undefined"
    if d.get("lo") is not None:
        return f"{d['ic']:+.4f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
    return f"{d['ic']:+.4f}"


def net_interval(s):
    if not s or not s.get("quarters"):
        return "—"
    if s.get("net_lo") is None:
        return pct(s["net"])
    return f"{pct(s['net'])} [{pct(s['net_lo'])}, {pct(s['net_hi'])}]"


def overall_table(rep, venue) -> list[str]:
    """One product's overall table, out of sample (EVALUATION.md and the card share it)."""
    o = rep["overall"]
    lines = [
        "| predictor | quarters | IC 15m [95 %, quarter spread] | hit rate 15m | net [95 %] | compounded | Sharpe "
        "| exposure | turnover / day | trades | worst quarter | without best 3 | quarters net > 0 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, e in o["predictors"].items():
        s = e[venue]
        w = s["worst_quarter"]
        lines.append(
            f"| {LABELS[key]} | {e['quarters']} | {fmt_ic(e['ic_15m'])} | {e['hit_rate_15m']} | {net_interval(s)} | "
            f"{pct(s['compounded'])} | {num(s['sharpe'])} | {100 * s['exposure']:.1f} % | {s['turnover_per_day']:.2f} | "
            f"{s['round_trips']:,} | {w['period']} {pct(w['net'])} | {pct(s['net_without_best_3'])} | "
            f"{s['quarters_net_positive']} |")
    bh = o["buy_and_hold"]
    n = bh["quarters"]
    lines.append(f"| buy-and-hold (sum of minute returns) | {n} | | | {net_interval(bh)} | price "
                 f"{pct(bh['compounded'])} | {num(bh['sharpe'])} | 100 % | | {n} | | {pct(bh['net_without_best_3'])} | "
                 f"{bh['quarters_net_positive']} |")
    lines.append(f"| no trade | {n} | | | +0.0 % | +0.0 % | | 0 % | 0 | 0 | | +0.0 % | 0 |")
    return lines


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def verdict_of(s, bar) -> str:
    """What a predictor's out-of-sample result on one product means, from its figures."""
    if s["quarters_emitting"] == 0:
        return "it never cleared its costs on a validation slice, so it emitted nothing"
    if s["net"] <= 0:
        return "it loses money after costs"
    if s.get("net_lo") is not None and s["net_lo"] <= 0:
        verdict = "it made money after costs, but its interval includes zero: no edge shown"
    else:
        verdict = "it made money after costs, with an interval above zero"
    if s["net"] <= bar["net"]:
        verdict += f", and no more than the calibrated reversal ({pct(bar['net'])})"
    return verdict


def concentration(rep, key, venue, top=3) -> str:
    """How much of a predictor's net result its best quarters carry ('' when it lost)."""
    nets = sorted(((p["predictors"][key][venue]["net"], p["period"]) for p in rep["periods"]
                   if not (key == "shipped" and p.get("shipped_in_sample"))), reverse=True)
    total = sum(v for v, _ in nets)
    if total <= 0:
        return ""
    best = nets[:top]
    return (f"; its {top} best quarters ({', '.join(q for _, q in best)}) carry {pct(sum(v for v, _ in best))} of "
            f"its {pct(total)}, without them {pct(total - sum(v for v, _ in best))}")


def render(rep, manifest, onnx_path) -> str:
    o = rep["overall"]
    P = o["predictors"]
    n = len(rep["periods"])
    sel = rep["selection"]
    hold = sel["rule"]["holdout_quarters"]
    costs = rep["protocol"]["costs"]
    sh, wf, cr = P["shipped"], P["model"], P["calibrated_reversal"]
    bh = o["buy_and_hold"]
    sig = manifest["signal"]
    margin = sig["margin"]
    training = manifest.get("training") or {}
    replay = rep.get("default_replay")
    size = os.path.getsize(onnx_path)
    file_sha = sha256(onnx_path)
    d = rep["data"]

    def trades(e, venue):
        s = e[venue]
        return (f"{venue} {net_interval(s)} over {s['round_trips']:,} trades (Sharpe {num(s['sharpe'])}, worst quarter "
                f"{s['worst_quarter']['period']} {pct(s['worst_quarter']['net'])}, net positive in "
                f"{s['quarters_net_positive']} of {s['quarters']} quarters)")

    def split(e, venue="perp"):
        return (f"{pct(e[venue]['selection']['net'])} on the selection quarters, {pct(e[venue]['holdout']['net'])} on "
                f"the last {hold}")

    lines = [
        f"# Model card: `{manifest['onnx']}` (botai signal model)",
        "",
        f"Generated by `ml/model_card.py` from `models/evaluation.json` (written by `{rep['generated_by']}` in "
        f"{rep['seconds']} s on {rep['machine']['cpus']} CPUs"
        + (f", {rep['cached_folds']} quarters' walk-forward predictions from the cache of an earlier run"
           if rep.get("cached_folds") else "")
        + f") and the manifest `models/{manifest['name']}.json`. "
        "Do not edit it by hand: `make evaluate` rewrites it, and `make test` fails when it differs from what "
        "the report says. The full report, per quarter, is `models/EVALUATION.md`.",
        "",
        "## Bottom line",
        "",
    ]
    if margin is None:
        lines.append(
            "- **What a user running the default gets: no signals.** The selection rule (below) allows no margin, "
            "so the manifest's margin is `null`: the daemon loads the model, predicts every bar and emits nothing, "
            "and says so at start in one line. `make run` shows the whole system trading with "
            "`STRATEGY=reversal-demo`, a rule that claims no edge.")
    else:
        lines.append(
            f"- **What a user running the default gets**: signals when |predicted 15-minute return| > "
            f"{2 * (sig['costs']['fee'] + sig['costs']['slippage']) + margin:.4f} (the manifest's round trip + margin "
            f"{margin}), a rule that passed the selection below and held on the last {hold} quarters.")
    if replay:
        r = replay["predictors"]
        lines.append(
            f"- **`make run`'s default month** ({replay['from'][:10]} → {replay['to'][:10]}, Binance BTC/USDT, out of "
            f"sample for every predictor here), perp after `{costs['perp']['venue']}` costs: shipped file with the "
            f"daemon's rule {pct(r['shipped']['perp']['net'])} ({r['shipped']['perp']['round_trips']} trades), "
            f"calibrated reversal {pct(r['calibrated_reversal']['perp']['net'])} "
            f"({r['calibrated_reversal']['perp']['round_trips']} trades), walk-forward PatchTST "
            f"{pct(r['model']['perp']['net'])} ({r['model']['perp']['round_trips']} trades); buy-and-hold "
            f"{pct(replay['buy_and_hold']['compounded_net'])}.")
    lines += [
        f"- **The shipped file with the daemon's rule** (threshold {rep['protocol']['shipped_rule']['threshold']:.4f}), "
        f"on {sh['quarters']} quarters of Binance BTC/USDT it never saw ({rep['periods'][0]['period']} → "
        f"{rep['periods'][-1]['period']}"
        + (f"; in-sample {', '.join(sh['in_sample_quarters'])} left out" if sh["in_sample_quarters"] else "")
        + f"): IC 15m {fmt_ic(sh['ic_15m'])}; {trades(sh, 'perp')}; {trades(sh, 'spot')}. "
        f"Verdict: {verdict_of(sh['perp'], cr['perp'])}.",
        f"- **The same architecture retrained walk-forward** (every quarter, on the past only; the evaluation's "
        f"own models, none of them the shipped file): IC 15m {fmt_ic(wf['ic_15m'])}, mean quarterly IC "
        f"{wf['mean_quarterly_ic15']:+.4f}; {trades(wf, 'perp')}; {trades(wf, 'spot')}. Verdict: "
        f"{verdict_of(wf['perp'], cr['perp'])}{concentration(rep, 'model', 'perp')}. Perp {split(wf)}.",
        f"- **Baselines over the same quarters**: calibrated reversal (the last 15-minute return regressed on "
        f"the target in training) IC 15m {fmt_ic(cr['ic_15m'])}, {trades(cr, 'perp')}; momentum perp "
        f"{net_interval(P['momentum']['perp'])}; ridge on the model's inputs perp {net_interval(P['ridge']['perp'])}; "
        f"buy-and-hold {pct(bh['net'])} as a sum of minute returns, {pct(bh['compounded'])} compounded (the price "
        f"change), annualised Sharpe {num(bh['sharpe'])}.",
        f"- **Selection** (written before the last {hold} quarters were looked at): {sel['decision']}.",
        "",
        "Do not treat the shipped model as an edge. It is the platform's reference model: a fixed artefact for "
        "the feature and prediction parity tests and a worked example of the model contract.",
        "",
        "## What it is",
        "",
        "| item | value |",
        "| --- | --- |",
        f"| file | `models/{manifest['onnx']}`, {size:,} bytes, SHA-256 `{file_sha}` |",
        f"| manifest | `models/{manifest['name']}.json`, contract `{manifest['contract']}` (`ml/MODEL_CONTRACT.md`) |",
        f"| input | `{manifest['input']}`: float32 `[batch, {manifest['window']}, {len(manifest['features'])}]`, "
        f"{manifest['bar_interval']} bars oldest → newest, features `{', '.join(manifest['features'])}` "
        f"(`ml/FEATURES.md`), volume in the {manifest['volume_unit']} currency |",
        f"| output | `{manifest['output']}`: float32 `[batch, {len(manifest['horizons_minutes'])}]`, log returns "
        f"`ln(close[t+h]/close[t])` for h = {', '.join(str(h) for h in manifest['horizons_minutes'])} minutes; "
        f"the trading rule uses h = {manifest['trade_horizon_minutes']} |",
        f"| trained on | `{training.get('data', '?')}`, {training.get('from', '?')} → {training.get('to', '?')} "
        "(`training`; a replay or quarter overlapping it is in-sample), by `make train` (`ml/train.py`) |",
        f"| signal rule | costed for `{sig['costs'].get('venue', '?')}`: fee {sig['costs']['fee']} + slippage "
        f"{sig['costs']['slippage']} per side; margin chosen on its own validation {sig.get('validation_margin')}; "
        f"margin the daemon applies {margin if margin is not None else '`null` (silent)'} |",
        "",
        "Architecture (PatchTST-style, channel-independent; `ml/train.py`): per-channel standardisation with "
        "training statistics inside the graph, each channel cut into patches, a shared linear patch embedding "
        "with learned positions, a shared pre-norm transformer encoder run on every channel's patch tokens, a "
        "linear head on all tokens, outputs multiplied back to raw log returns. The variant and epoch were chosen "
        "on a validation slice at the end of the training month; `make train` writes that selection and its "
        "figures on its own split to `models/metrics.json`.",
        "",
        "## Walk-forward evaluation, out of sample",
        "",
        f"{d['bars']:,} Binance BTC/USDT one-minute bars, {d['first']} → {d['last']} UTC ({d['gaps']} gaps); volume: "
        f"{d['volume']}. {n} quarters, each predicted by models trained only on the bars before it. Perp costed at "
        f"`{costs['perp']['venue']}` (round trip {costs['perp']['round_trip']:.4f}), spot at `{costs['spot']['venue']}` "
        f"(round trip {costs['spot']['round_trip']:.4f}), from `ml/costs.json`; signals fill one bar late; intervals "
        "from the spread across quarters. Perpetual:",
        "",
        *overall_table(rep, "perp"),
        "",
        "Spot:",
        "",
        *overall_table(rep, "spot"),
        "",
        "![cumulative net result per quarter](evaluation.png)",
        "",
        "## Intended use and limits",
        "",
        "- A reference signal and a test artefact, not a validated trading model. Deploy a team's own model through "
        "the contract (`ml/MODEL_CONTRACT.md`) and judge it with `make evaluate` first: the same selection rule, "
        "on a venue's own costs (`ml/costs.json`).",
        "- One instrument (BTC), one-minute bars, no order book, funding or time of day. Windows with a gap are "
        "skipped, not predicted.",
        "- Costs are the base fee tier plus 1 bp of slippage per side (taker orders); a venue with other costs needs "
        "SIGNAL_FEE / SIGNAL_SLIPPAGE, and the rule judged again at them.",
        "",
        "## Reproduce",
        "",
        "```",
        "make train      # models/patchtst.onnx, models/patchtst.json, models/metrics.json",
        "make evaluate   # models/evaluation.json, EVALUATION.md, evaluation.png, this card",
        "```",
        "",
        "Versions of the evaluation run: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--model", default="patchtst", help="the manifest's name (default %(default)s)")
    ap.add_argument("--check", action="store_true", help="compare with the committed card instead of writing it")
    args = ap.parse_args()
    with open(os.path.join(args.models, "evaluation.json")) as f:
        rep = json.load(f)
    with open(os.path.join(args.models, f"{args.model}.json")) as f:
        manifest = json.load(f)
    onnx_path = os.path.join(args.models, manifest["onnx"])
    problems = []
    if sha256(onnx_path) != manifest["sha256"]:
        problems.append(f"{onnx_path} does not match the SHA-256 of its manifest")
    evaluated = rep.get("shipped_model", {}).get("sha256")
    if evaluated is not None and evaluated != manifest["sha256"]:
        problems.append(f"evaluation.json judged another {manifest['onnx']} (SHA-256 {evaluated}): run make evaluate")
    allowed = rep["selection"]["shipped_margin"]
    if manifest["signal"]["margin"] != allowed:
        problems.append(f"{args.model}.json applies margin {manifest['signal']['margin']}, but the selection rule of "
                        f"evaluation.json allows {allowed} ({rep['selection']['decision']})")
    card = render(rep, manifest, onnx_path)
    path = os.path.join(args.models, "MODEL_CARD.md")
    if args.check:
        with open(path) as f:
            if f.read() != card:
                problems.append(f"{path} is not the card of evaluation.json: run python3 ml/model_card.py")
        for p in problems:
            print(f"model_card: {p}", file=sys.stderr)
        if not problems:
            print(f"model_card: {path} is the card of evaluation.json and {manifest['name']}.json")
        return 1 if problems else 0
    for p in problems:
        print(f"model_card: {p}", file=sys.stderr)
    with open(path, "w") as f:
        f.write(card)
    print(card)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
