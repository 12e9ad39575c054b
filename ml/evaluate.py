#!/usr/bin/env python3
"""Walk-forward evaluation of the signal model over eight years of Binance BTC/USDT bars.

    make evaluate        # = .cache/train-venv/bin/python ml/evaluate.py, then ml/model_card.py

Protocol (nothing here ever downloads; the bars are read from the shared data directory):

  * Evaluation periods are calendar quarters, 2018Q1 .. 2025Q4 (the data ends 2025-11-30).
  * For the period starting at E0, everything before it is the past:
      - validation = the last VAL_DAYS days before E0; a validation sample's targets end
        before E0 (purged), and its trading simulation sees only returns before E0;
      - train      = samples whose 60-minute target ends before the validation slice,
        N_TRAIN of them drawn from the whole past (half from its last year).
    Every knob is chosen on validation: the training epoch (early stopping on the 15-minute
    IC), the ridge penalty, and the cost margin of the trading rule. Evaluation bars reach
    no choice; each period is predicted by a model that never saw it.
  * The model is retrained every period: the first from scratch, the next ones starting
    from the previous period's weights (and fresh standardisation statistics).
  * Predictors: the walk-forward PatchTST (same architecture as the shipped model, patches
    of 12 with stride 12 to fit the time budget), a ridge regression on the same inputs,
    the shipped models/patchtst.onnx as it is (trained on FTX January 2022) with exactly
    the daemon's rule (its manifest's costs and margin: no margin re-chosen), and the
    baselines: no trade, buy-and-hold (summed and compounded), momentum (last 15-minute
    return) and a calibrated reversal (each horizon's target regressed on the last
    15-minute return over the fold's training samples, like any model).
  * In-sample: a quarter that overlaps the period a model was trained on (the manifest's
    `training`) is marked and left out of that model's overall figures.
  * The trading rule is the engine's (README "Positions, not all-in"): a signal on a bar
    sets the target position (BUY long, SELL short on a perpetual / flat on spot); the
    position is closed HOLD minutes after the last signal in its direction; an opposite
    signal flips or closes it. A signal is emitted only when |predicted 15m return| exceeds
    the round trip cost 2 * (fee + slippage) plus a margin chosen on validation; if no
    margin makes money on validation, the predictor emits nothing for that period. A
    signal fills one bar after the bar that produced it (signal_rule.FILL_LAG).
  * Costs per venue and product from ml/costs.json: spot at Binance spot's taker fee,
    perp at Binance USDⓈ-M's, plus slippage. Results are sums of per-bar returns of a
    fixed position size, net of costs, in % of that size (compounded quarter by quarter
    beside them).
  * Intervals: per quarter, the IC's moving-block bootstrap with 30-day blocks; overall,
    the spread across quarters (see the report's protocol.intervals).
  * The default's selection rule (SELECTION) was written before the last eight quarters
    were looked at; they are the holdout that says whether the choice holds. When no
    candidate passes, the shipped manifest's margin is null and the default emits nothing.
  * The walk-forward's per-fold predictions are cached in .cache/evaluate (keyed by the
    bars, the training code and the protocol): a rerun retrains nothing unless --retrain.
  * Volume: features use the quote-currency volume (USDT on Binance, USD on the FTX file),
    the unit the feature catalogue (ml/FEATURES.md) defines `vol_z` on.

Writes models/evaluation.json, models/EVALUATION.md and models/evaluation.png, then
models/MODEL_CARD.md (ml/model_card.py). It judges the shipped model and never changes its
ONNX file; the margin the daemon applies (models/patchtst.json signal.margin) is what the
selection rule allows: the one ml/train.py chose on validation, or null.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import hashlib
import json
import math
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import contract  # noqa: E402
import features as feat  # noqa: E402
import model_card  # noqa: E402
from evaluation_report import plot, write_markdown  # noqa: E402
from evaluation_cache import CACHE, load_fold, predictions_key, restore_model, save_fold, shipped_predictions  # noqa: E402
from evaluation_figures import (BLOCK, BOOT, buy_and_hold, corr, hit_rate, ranks,  # noqa: E402
                                ic_with_interval, rounded, select_default, summarise)
from signal_rule import FILL_LAG, MARGINS, choose_threshold, evaluated_venues, trade, venue_costs  # noqa: E402

REPO = os.path.dirname(HERE)
DEFAULT_DATA = os.environ.get(
    "BOTAI_BINANCE_DATA", os.path.join(REPO, "..", "shared", "data", "market", "binance-btcusdt-1m")
)
FTX_CSV = os.path.join(REPO, "data", "market", "btc-perp-1m-2022-01.csv.gz")
MODELS = os.path.join(REPO, "models")

HORIZONS = (5, 15, 60)
MAX_H = max(HORIZONS)
N = feat.N_BARS
VAL_DAYS = 28
N_TRAIN = 48_000
FIRST_PERIOD = (2018, 1)
SEED = 20180101
REPLAY_MONTH = tuple(int(np.datetime64(d, "m").astype(np.int64)) for d in ("2025-11-01", "2025-12-01"))  # make run's default

PREDICTORS = ("model", "ridge", "shipped", "momentum", "calibrated_reversal")


def log(msg: str) -> None:
    print(f"{time.time() - T0:7.0f}s  {msg}", flush=True)


T0 = time.time()


# ----------------------------------------------------------------------------- data
def load_binance(data_dir: str) -> dict:
    """All yearly files, as arrays; cached in .cache/evaluate keyed by the files' sizes."""
    if not os.path.isdir(data_dir):
        sys.exit(f"error: {data_dir} not found: the Binance bars are read from the shared data "
                 f"directory (set BOTAI_BINANCE_DATA or --data-dir); this never downloads")
    files = sorted(f for f in os.listdir(data_dir) if f.endswith(".csv.gz"))
    if not files:
        sys.exit(f"error: no binance-btcusdt-1m-YYYY.csv.gz in {data_dir}")
    key = hashlib.sha256(json.dumps([(f, os.path.getsize(os.path.join(data_dir, f))) for f in files]).encode()).hexdigest()[:16]
    cached = os.path.join(CACHE, f"binance-{key}.npz")
    if os.path.exists(cached):
        z = np.load(cached)
        return {k: z[k] for k in z.files}
    cols = {k: [] for k in ("minute", "open", "high", "low", "close", "volume", "quote_volume")}
    for f in files:
        log(f"reading {f}")
        with gzip.open(os.path.join(data_dir, f), "rt", newline="") as fh:
            r = csv.reader(fh)
            header = next(r)
            want = ["timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades"]
            if header != want:
                sys.exit(f"error: {f}: header {header}, want {want}")
            ts, rows = [], []
            for row in r:
                ts.append(row[0])
                rows.append(row[1:7])
        m = np.array(ts, dtype="datetime64[m]").astype(np.int64)
        a = np.array(rows, dtype=np.float64)
        cols["minute"].append(m)
        for j, k in enumerate(("open", "high", "low", "close", "volume", "quote_volume")):
            cols[k].append(a[:, j])
    out = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.argsort(out["minute"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    if (np.diff(out["minute"]) <= 0).any():
        sys.exit("error: duplicate or unordered bars in the Binance files")
    os.makedirs(CACHE, exist_ok=True)
    np.savez(cached, **out)
    return out


def minute_of(d: dt.datetime) -> int:
    return int(np.datetime64(d, "m").astype(np.int64))


def quarters(first_minute: int, last_minute: int):
    y, q = FIRST_PERIOD
    while True:
        start = dt.datetime(y, 3 * q - 2, 1)
        ny, nq = (y, q + 1) if q < 4 else (y + 1, 1)
        end = dt.datetime(ny, 3 * nq - 2, 1)
        if minute_of(start) > last_minute:
            return
        yield f"{y}Q{q}", minute_of(start), min(minute_of(end), last_minute + 1)
        y, q = ny, nq


# ----------------------------------------------------------------------------- metrics


# ----------------------------------------------------------------------------- predictors
class Data:
    def __init__(self, bars):
        self.b = bars
        m = bars["minute"]
        n = len(m)
        self.n = n
        self.c = bars["close"]
        self.win_ok = np.zeros(n, dtype=bool)
        self.win_ok[N:] = (m[N:] - m[:-N]) == N
        self.y = np.full((n, len(HORIZONS)), np.nan)
        self.tgt_ok = np.zeros(n, dtype=bool)
        ok_all = np.ones(n - MAX_H, dtype=bool)
        for j, h in enumerate(HORIZONS):
            self.y[:-h, j] = np.log(self.c[h:] / self.c[:-h])
            ok_all &= (m[h:n - MAX_H + h] - m[:n - MAX_H]) == h
        self.tgt_ok[: n - MAX_H] = ok_all
        self.mom = np.full(n, np.nan)
        self.mom[15:] = np.log(self.c[15:] / self.c[:-15])
        self.feat_bars = {"open": bars["open"], "high": bars["high"], "low": bars["low"],
                          "close": bars["close"], "volume": bars["quote_volume"]}

    def index(self, minute):
        return int(np.searchsorted(self.b["minute"], minute))

    def windows(self, idx):
        return feat.windows_from_bars(self.feat_bars, idx)


def predict_torch(model, data, idx, batch=8192):
    import torch
    out = np.zeros((len(idx), len(HORIZONS)))
    model.eval()
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            x = torch.from_numpy(data.windows(idx[s:s + batch]))
            out[s:s + batch] = model(x).numpy()
    return out


def predict_onnx(sess, data, idx, batch=8192):
    out = np.zeros((len(idx), len(HORIZONS)))
    for s in range(0, len(idx), batch):
        out[s:s + batch] = sess.run(["returns"], {"features": data.windows(idx[s:s + batch])})[0]
    return out


def train_fold(prev, data, train_idx, val_idx, fold, log_fold):
    import torch
    import torch.nn.functional as F
    import train as T

    cfg = dict(T.BASE, stride=12, loss="mse")
    X = data.windows(train_idx)
    Y = data.y[train_idx]
    stats = {"x_mean": X.astype(np.float64).mean(axis=(0, 1)), "x_std": X.astype(np.float64).std(axis=(0, 1)),
             "y_scale": np.sqrt((Y ** 2).mean(axis=0))}
    torch.manual_seed(SEED + fold)
    model = T.PatchTST(N, feat.N_CHANNELS, cfg, stats["x_mean"], stats["x_std"], stats["y_scale"])
    if prev is not None:
        state = {k: v for k, v in prev.state_dict().items() if k not in ("x_mean", "x_std", "y_scale")}
        model.load_state_dict(state, strict=False)
    epochs, lr = (6, 1e-3) if prev is None else (2, 3e-4)
    Xt = torch.from_numpy(X)
    Yt = torch.from_numpy((Y / stats["y_scale"]).astype(np.float32))
    Xv = data.windows(val_idx)
    yv = data.y[val_idx, 1]

    def val_ic():
        model.eval()
        with torch.no_grad():
            p = np.concatenate([model(torch.from_numpy(Xv[s:s + 8192])).numpy()[:, 1] for s in range(0, len(Xv), 8192)])
        return corr(ranks(p.astype(np.float64)), ranks(yv)) or -1.0

    import copy
    best_ic, best_epoch, best_state = (val_ic(), 0, copy.deepcopy(model.state_dict())) if prev is not None else (-math.inf, 0, None)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg["weight_decay"])
    gen = torch.Generator().manual_seed(SEED + fold)
    history = [round(best_ic, 5)] if prev is not None else []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(len(Xt), generator=gen)
        for s in range(0, len(perm), cfg["batch_size"]):
            b = perm[s:s + cfg["batch_size"]]
            loss = F.mse_loss(model.forward_scaled(Xt[b]), Yt[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        ic = val_ic()
        history.append(round(ic, 5))
        if ic > best_ic:
            best_ic, best_epoch, best_state = ic, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    log_fold(f"model: val IC15 by epoch {history} -> epoch {best_epoch}")
    return model, {"val_ic15_by_epoch": history, "chosen_epoch": best_epoch}


def fit_ridge(data, train_idx, val_idx):
    X = data.windows(train_idx).astype(np.float64)
    mean, std = X.mean(axis=(0, 1)), X.std(axis=(0, 1))

    def prep(x):
        return np.clip((x.astype(np.float64) - mean) / std, -8, 8).reshape(len(x), -1)

    A = prep(X)
    mu = A.mean(0)
    A -= mu
    Y = data.y[train_idx]
    G, b = A.T @ A, A.T @ Y
    Av = prep(data.windows(val_idx)) - mu
    best = None
    for lam in (1e1, 1e2, 1e3, 1e4, 1e5):
        W = np.linalg.solve(G + lam * np.eye(len(G)), b)
        ic = corr(ranks(Av @ W[:, 1]), ranks(data.y[val_idx, 1])) or -1.0
        if best is None or ic > best[0]:
            best = (ic, lam, W)

    def predict(idx):
        out = np.zeros((len(idx), len(HORIZONS)))
        for s in range(0, len(idx), 16384):
            out[s:s + 16384] = (prep(data.windows(idx[s:s + 16384])) - mu) @ best[2]
        return out

    return predict, {"lambda": best[1], "val_ic15": round(best[0], 5)}


# ----------------------------------------------------------------------------- trading
def full(pred_sig, lo, hi, sig_idx):
    """Per-bar predictions over [lo, hi) (0 where no window) and the can-signal mask."""
    p = np.full(hi - lo, np.nan)
    p[sig_idx - lo] = pred_sig
    return np.nan_to_num(p), ~np.isnan(p)


def shipped_rule(manifest) -> dict:
    """The rule the daemon applies to the shipped model: threshold = the manifest's round trip
    + its margin; while the margin is null (silent), the margin its own validation chose is
    the one under test (the selection rule decides whether the daemon may use it)."""
    sig = manifest["signal"]
    margin, source = sig.get("margin"), "margin"
    if margin is None:
        margin, source = sig.get("validation_margin"), "validation_margin"
    rt = 2 * (sig["costs"]["fee"] + sig["costs"]["slippage"])
    return {"margin": margin, "margin_from": source, "round_trip": rt,
            "threshold": math.inf if margin is None else rt + margin,
            "costs": sig["costs"]}


def training_period(manifest):
    """(first minute, end minute) of the data the model was trained on, from its manifest."""
    t = manifest.get("training")
    if not t:
        return None
    return (minute_of(dt.datetime.fromisoformat(t["from"].replace("Z", ""))),
            minute_of(dt.datetime.fromisoformat(t["to"].replace("Z", ""))))


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=DEFAULT_DATA)
    ap.add_argument("--out-dir", default=MODELS)
    ap.add_argument("--hold", type=int, default=15, help="minutes a position is held after its last signal")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--periods", type=int, default=0, help="evaluate only the first K periods (smoke runs)")
    ap.add_argument("--no-shipped", action="store_true", help="skip the shipped model (faster)")
    ap.add_argument("--retrain", action="store_true",
                    help="train every fold again even when .cache/evaluate holds its predictions")
    ap.add_argument("--report-only", action="store_true",
                    help="write EVALUATION.md, evaluation.png, the manifest's margin and MODEL_CARD.md again from "
                         "the out-dir's evaluation.json, computing nothing")
    args = ap.parse_args()
    if args.report_only:
        with open(os.path.join(args.out_dir, "evaluation.json")) as f:
            report = json.load(f)
        return write_outputs(report, args.out_dir, full_run=True)

    import torch
    import onnxruntime as ort
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    venues = evaluated_venues()
    costs = {product: venue_costs(v) for product, v in venues.items()}
    sample_rng = np.random.default_rng(SEED)      # the training samples, fold after fold
    boot_rng = np.random.default_rng(SEED + 1)    # the bootstrap resamples

    bars = load_binance(args.data_dir)
    data = Data(bars)
    log(f"{data.n:,} bars {np.datetime64(int(bars['minute'][0]), 'm')} .. {np.datetime64(int(bars['minute'][-1]), 'm')}, "
        f"{int((np.diff(bars['minute']) > 1).sum())} gaps; costs {costs}")

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    shipped_path = os.path.join(MODELS, "patchtst.onnx")
    with open(os.path.join(MODELS, "patchtst.json")) as f:
        manifest = json.load(f)
    rule = shipped_rule(manifest)
    trained = training_period(manifest)
    shipped = None if args.no_shipped else ort.InferenceSession(shipped_path, so, providers=["CPUExecutionProvider"])
    shipped_sha = None if args.no_shipped else contract.sha256(shipped_path)
    predictors = [k for k in PREDICTORS if not (k == "shipped" and shipped is None)]
    log(f"shipped model judged with the daemon's rule: threshold {rule['threshold']:.4f} "
        f"(round trip {rule['round_trip']:.4f} at {rule['costs']} + {rule['margin_from']} {rule['margin']}); "
        f"trained on {manifest.get('training')}")

    periods = list(quarters(int(bars["minute"][0]), int(bars["minute"][-1])))
    if args.periods:
        periods = periods[: args.periods]
    report_periods = []
    pooled = {k: [] for k in predictors}
    pooled_real = []
    prev_model = None
    replay = None
    cached_folds = 0
    import train as T
    cache_key = predictions_key(data, (train_fold, fit_ridge, T.PatchTST, feat.windows_from_bars),
                                [VAL_DAYS, N_TRAIN, SEED, FIRST_PERIOD, HORIZONS, N, T.BASE])
    for fold, (name, e0, e1) in enumerate(periods):
        t_fold = time.time()
        a, b = data.index(e0), data.index(e1)
        va = data.index(e0 - VAL_DAYS * 1440)

        def flog(msg, name=name):
            log(f"[{name}] {msg}")

        all_idx = np.arange(data.n)
        usable = data.win_ok & data.tgt_ok
        # train: target ends before the validation slice
        cand = all_idx[usable & (all_idx + MAX_H < va)]
        cand = cand[data.b["minute"][cand] + MAX_H < data.b["minute"][va]]
        recent = cand[data.b["minute"][cand] >= data.b["minute"][va] - 365 * 1440]
        k = min(N_TRAIN // 2, len(recent))
        train_idx = np.sort(np.unique(np.r_[sample_rng.choice(recent, k, replace=False),
                                            sample_rng.choice(cand, min(N_TRAIN - k, len(cand)), replace=False)]))
        # validation IC samples: targets end before the period
        vi = np.arange(va, a)
        val_ic_idx = vi[usable[vi] & (data.b["minute"][np.minimum(vi + MAX_H, data.n - 1)] < e0) & (vi + MAX_H < a)]
        val_sig_idx = vi[data.win_ok[vi]]
        ev = np.arange(a, b)
        ev_sig_idx = ev[data.win_ok[ev]]
        flog(f"train {len(train_idx):,} (of {len(cand):,}), val {len(val_ic_idx):,}, eval bars {b - a:,}")

        cached = None if args.retrain else load_fold(cache_key, fold)
        if cached is not None:
            cached_folds += 1
            preds_val, preds_ev, model_info, ridge_info = cached
            flog("model and ridge predictions from .cache/evaluate (--retrain trains them again)")
        else:
            if prev_model is None and fold > 0:
                prev_model = restore_model(cache_key, fold - 1, N, len(HORIZONS))
            model, model_info = train_fold(prev_model, data, train_idx, val_ic_idx[::3], fold, flog)
            prev_model = model
            ridge_fn, ridge_info = fit_ridge(data, train_idx, val_ic_idx[::3])
            preds_val = {"model": predict_torch(model, data, val_sig_idx)[:, 1], "ridge": ridge_fn(val_sig_idx)[:, 1]}
            preds_ev = {"model": predict_torch(model, data, ev_sig_idx), "ridge": ridge_fn(ev_sig_idx)}
            save_fold(cache_key, fold, preds_val, preds_ev, model_info, ridge_info, model)
        if shipped is not None:
            sv, se = shipped_predictions(shipped, shipped_sha, data, fold, val_sig_idx, ev_sig_idx, predict_onnx)
            preds_val["shipped"], preds_ev["shipped"] = sv, se
        preds_val["momentum"] = data.mom[val_sig_idx]
        preds_ev["momentum"] = np.repeat(data.mom[ev_sig_idx][:, None], 3, axis=1)
        beta = reversal_beta(data, train_idx)
        preds_val["calibrated_reversal"] = beta[1] * data.mom[val_sig_idx]
        preds_ev["calibrated_reversal"] = data.mom[ev_sig_idx][:, None] * beta[None, :]

        # eval rows with all targets, for IC and hit rate
        ic_mask = data.tgt_ok[ev_sig_idx] & (data.b["minute"][np.minimum(ev_sig_idx + MAX_H, data.n - 1)] < e1 + MAX_H)
        real = data.y[ev_sig_idx][ic_mask]
        pooled_real.append(real)
        in_sample = trained is not None and e0 < trained[1] and trained[0] < e1
        period = {"period": name, "start": str(np.datetime64(e0, "m")), "end": str(np.datetime64(e1, "m")),
                  "bars": int(b - a), "ic_samples": int(ic_mask.sum()), "train_samples": int(len(train_idx)),
                  "val_from": str(np.datetime64(int(data.b["minute"][va]), "m")),
                  "model_training": model_info, "ridge": ridge_info,
                  "calibrated_reversal_beta": [round(float(x), 6) for x in beta],
                  "shipped_in_sample": bool(in_sample), "predictors": {}}

        close_val, close_ev = data.c[va:a], data.c[a:b]
        in_replay = REPLAY_MONTH[0] < e1 and e0 < REPLAY_MONTH[1]
        if in_replay:
            ra, rb = data.index(max(e0, REPLAY_MONTH[0])) - a, data.index(min(e1, REPLAY_MONTH[1])) - a
            replay = {"from": str(np.datetime64(REPLAY_MONTH[0], "m")), "to": str(np.datetime64(REPLAY_MONTH[1], "m")),
                      "period": name, "predictors": {}}
        for key in predictors:
            pv, pe = preds_val[key], preds_ev[key]
            entry = {"ic_15m": ic_with_interval(pe[ic_mask, 1], real[:, 1], boot_rng)}
            for j, h in enumerate(HORIZONS):
                if h != 15:
                    entry[f"ic_{h}m"] = {"ic": rounded(corr(ranks(pe[ic_mask, j]), ranks(real[:, j])))}
            entry["hit_rate_15m"] = hit_rate(pe[ic_mask, 1], real[:, 1])
            if not (key == "shipped" and in_sample):
                pooled[key].append(pe[ic_mask])
            vp, vok = full(pv, va, a, val_sig_idx)
            ep, eok = full(pe[:, 1], a, b, ev_sig_idx)
            for venue in ("spot", "perp"):
                if key == "shipped":
                    thr, margin, tried = rule["threshold"], rule["margin"], None
                else:
                    thr, margin, tried = choose_threshold(vp, vok, close_val, costs[venue], args.hold, venue)
                res = trade(ep, eok, close_ev, thr, costs[venue]["per_side"], args.hold)
                entry[venue] = {"threshold": None if not math.isfinite(thr) else thr, "margin": margin,
                                "emits": math.isfinite(thr), "validation": tried, **res[venue],
                                "signals": res["signals"], "bars": int(b - a)}
                if in_replay:
                    rr = trade(ep[ra:rb], eok[ra:rb], close_ev[ra:rb], thr, costs[venue]["per_side"], args.hold)
                    replay["predictors"].setdefault(key, {})[venue] = {**rr[venue], "signals": rr["signals"],
                                                                       "threshold": entry[venue]["threshold"]}
            period["predictors"][key] = entry
        period["buy_and_hold"] = buy_and_hold(close_ev, costs["spot"])
        if in_replay:
            replay["buy_and_hold"] = buy_and_hold(close_ev[ra:rb], costs["spot"])
        report_periods.append(period)
        m = period["predictors"]["model"]
        flog(f"model IC15 {m['ic_15m']['ic']} [{m['ic_15m']['lo']}, {m['ic_15m']['hi']}]  perp net "
             f"{100 * m['perp']['net']:+.2f}% ({m['perp']['round_trips']} trades)  spot net "
             f"{100 * m['spot']['net']:+.2f}%  | calibrated reversal perp "
             f"{100 * period['predictors']['calibrated_reversal']['perp']['net']:+.2f}%"
             + (f"  | shipped perp {100 * period['predictors']['shipped']['perp']['net']:+.2f}%"
                + (" (in-sample)" if in_sample else "") if "shipped" in period["predictors"] else "")
             + f"  | buy&hold {100 * period['buy_and_hold']['net']:+.2f}%  ({time.time() - t_fold:.0f}s)")

    overall = summarise(report_periods, pooled, pooled_real, predictors, HORIZONS)
    selection = select_default(report_periods, overall, rule)
    log(f"selection: {selection['decision']}")
    own_week = shipped_own_week(rule, costs["perp"], args.hold, boot_rng, so) if not args.no_shipped else None

    report = {
        "generated_by": "ml/evaluate.py (make evaluate)",
        "data": {"source": os.path.relpath(args.data_dir, REPO), "bars": int(data.n),
                 "first": str(np.datetime64(int(bars["minute"][0]), "m")),
                 "last": str(np.datetime64(int(bars["minute"][-1]), "m")),
                 "gaps": int((np.diff(bars["minute"]) > 1).sum()),
                 "volume": "quote_volume (USDT), the unit of the feature catalogue's vol_z"},
        "protocol": {"periods": "calendar quarters", "validation_days": VAL_DAYS, "train_samples": N_TRAIN,
                     "retraining": "every period; first from scratch (6 epochs), then warm-started (2 epochs), "
                                   "epoch chosen on validation IC 15m (epoch 0 = keep the previous weights)",
                     "model_config": "PatchTST as shipped (d_model 32, 2 layers, MSE, flatten head) with patches of 12, stride 12",
                     "horizons": list(HORIZONS), "hold_minutes": args.hold, "fill_lag_bars": FILL_LAG,
                     "costs": costs, "costs_table": "ml/costs.json", "margins": list(MARGINS),
                     "shipped_rule": rule,
                     "shipped_training": manifest.get("training"),
                     "intervals": {"ic_per_quarter": f"moving-block bootstrap, {BOOT} resamples, blocks of {BLOCK} "
                                                     "one-minute samples (30 days)",
                                   "overall": "the spread across quarters: sum ± 1.96 × √quarters × the standard "
                                              "deviation of the quarterly figures (IC: mean ± 1.96 × sd / √quarters)"}},
        "periods": report_periods,
        "overall": overall,
        "selection": selection,
        "default_replay": replay,
        "shipped_own_week": own_week,
        "shipped_model": None if args.no_shipped else {"onnx": "models/patchtst.onnx", "sha256": shipped_sha},
        "seconds": round(time.time() - T0),
        "cached_folds": cached_folds,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "onnxruntime": ort.__version__},
        "machine": {"cpus": os.cpu_count(), "threads": args.threads},
    }
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "evaluation.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    log(f"wrote evaluation.json in {args.out_dir} ({report['seconds']} s)")
    return write_outputs(report, args.out_dir, full_run=not args.periods and not args.no_shipped)


def write_outputs(report, out_dir, full_run):
    """What follows from evaluation.json: the manifest's margin (a full run into models/),
    EVALUATION.md, evaluation.png and MODEL_CARD.md."""
    if out_dir == MODELS and full_run:
        path = os.path.join(MODELS, "patchtst.json")
        with open(path) as f:
            apply_selection(path, json.load(f), report["selection"])
    write_markdown(report, os.path.join(out_dir, "EVALUATION.md"))
    plot(report, os.path.join(out_dir, "evaluation.png"))
    log(f"wrote EVALUATION.md, evaluation.png in {out_dir}")
    if out_dir == MODELS:
        log("models/MODEL_CARD.md, from this report:")
        sys.argv = [sys.argv[0]]
        return model_card.main()
    return 0


def reversal_beta(data, train_idx):
    """The calibrated reversal: each horizon's target regressed (through the origin) on the
    last 15-minute return, over the fold's training samples, like any model."""
    x = data.mom[train_idx]
    ok = np.isfinite(x)
    x = x[ok]
    y = data.y[train_idx][ok]
    return (x @ y) / (x @ x)


def apply_selection(path, manifest, selection):
    """The shipped manifest's `margin` becomes what the selection rule allows (null: silent)."""
    sig = manifest["signal"]
    if sig.get("margin") == selection["shipped_margin"]:
        return
    log(f"{path}: signal.margin {sig.get('margin')} -> {selection['shipped_margin']} ({selection['decision']})")
    sig["margin"] = selection["shipped_margin"]
    contract.write(path, manifest)


# ----------------------------------------------------------------------------- the shipped model's own week
def shipped_own_week(rule, costs, hold, rng, so):
    """The shipped model on its own data (FTX BTC-PERP, January 2022) with the daemon's rule:
    the evaluation week (Jan 25 - Feb 1) that ml/train.py held out, perp costs."""
    import onnxruntime as ort
    bars = feat.load_csv(FTX_CSV)
    m = np.array([t[:16] for t in bars["timestamp"]], dtype="datetime64[m]").astype(np.int64)
    sess = ort.InferenceSession(os.path.join(MODELS, "patchtst.onnx"), so, providers=["CPUExecutionProvider"])
    n = len(m)
    c = bars["close"]
    eval_i = int(np.searchsorted(m, minute_of(dt.datetime(2022, 1, 25))))
    idx = np.arange(N, n)
    pred = np.zeros(n)
    pred[idx] = np.concatenate([sess.run(["returns"], {"features": feat.windows_from_bars(bars, idx[s:s + 4096])})[0][:, 1]
                                for s in range(0, len(idx), 4096)])
    ok = np.zeros(n, dtype=bool)
    ok[idx] = True
    res = trade(pred[eval_i:], ok[eval_i:], c[eval_i:], rule["threshold"], costs["per_side"], hold)
    ev = np.arange(eval_i, n - 60)
    y15 = np.log(c[ev + 15] / c[ev])
    return {"threshold": rule["threshold"], "perp": res["perp"], "signals": res["signals"],
            "ic_15m": ic_with_interval(pred[ev], y15, rng), "venue": costs["venue"],
            "buy_and_hold": float(c[-1] / c[eval_i] - 1.0)}


if __name__ == "__main__":
    sys.exit(main())
