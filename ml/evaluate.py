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
    the shipped models/patchtst.onnx as it is (trained on FTX January 2022), and the naive
    baselines: no trade, buy-and-hold, momentum (last 15-minute return), mean reversion.
  * The trading rule is the engine's (README "Positions, not all-in"): a signal on a bar
    sets the target position (BUY long, SELL short on a perpetual / flat on spot); the
    position is closed HOLD minutes after the last signal in its direction; an opposite
    signal flips or closes it. A signal is emitted only when |predicted 15m return| exceeds
    the round trip cost 2 * (fee + slippage) plus a margin chosen on validation; if no
    margin makes money on validation, the predictor emits nothing for that period.
    Results are sums of per-bar returns of a fixed position size, net of costs, in % of
    that size.
  * Volume: features use the quote-currency volume (USDT on Binance, USD on the FTX file),
    the unit the feature catalogue (ml/FEATURES.md) defines `vol_z` on.

Writes models/evaluation.json, models/EVALUATION.md and models/evaluation.png, then
models/MODEL_CARD.md (ml/model_card.py). It judges the shipped model and never changes it:
the margin the daemon uses is the one ml/train.py chose and wrote into models/patchtst.json.
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
from signal_rule import DEFAULT_COSTS, MARGINS, choose_threshold, costs_of, trade  # noqa: E402

REPO = os.path.dirname(HERE)
DEFAULT_DATA = os.environ.get(
    "BOTAI_BINANCE_DATA", os.path.join(REPO, "..", "shared", "data", "market", "binance-btcusdt-1m")
)
FTX_CSV = os.path.join(REPO, "data", "market", "btc-perp-1m-2022-01.csv.gz")
MODELS = os.path.join(REPO, "models")
CACHE = os.path.join(REPO, ".cache", "evaluate")

HORIZONS = (5, 15, 60)
MAX_H = max(HORIZONS)
N = feat.N_BARS
VAL_DAYS = 28
N_TRAIN = 48_000
FIRST_PERIOD = (2018, 1)
SEED = 20180101
OLD_THRESHOLD = 0.0004  # the daemon's fixed threshold before costs were part of the rule
BOOT = 200
BLOCK = 1440  # one day of one-minute samples per bootstrap block

PREDICTORS = ("model", "ridge", "shipped", "momentum", "mean_reversion")


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
    if ic is None:
        return {"ic": None, "lo": None, "hi": None}
    n = len(rp)
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


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=DEFAULT_DATA)
    ap.add_argument("--out-dir", default=MODELS)
    ap.add_argument("--fee", type=float, default=DEFAULT_COSTS["fee"], help="taker fee per side (default %(default)s)")
    ap.add_argument("--slippage", type=float, default=DEFAULT_COSTS["slippage"], help="slippage per side (default %(default)s)")
    ap.add_argument("--hold", type=int, default=15, help="minutes a position is held after its last signal")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--periods", type=int, default=0, help="evaluate only the first K periods (smoke runs)")
    ap.add_argument("--no-shipped", action="store_true", help="skip the shipped model (faster)")
    args = ap.parse_args()

    import torch
    import onnxruntime as ort
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    costs = costs_of(args.fee, args.slippage)
    rng = np.random.default_rng(SEED)

    bars = load_binance(args.data_dir)
    data = Data(bars)
    log(f"{data.n:,} bars {np.datetime64(int(bars['minute'][0]), 'm')} .. {np.datetime64(int(bars['minute'][-1]), 'm')}, "
        f"{int((np.diff(bars['minute']) > 1).sum())} gaps; costs {costs}")

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    shipped_path = os.path.join(MODELS, "patchtst.onnx")
    shipped = None if args.no_shipped else ort.InferenceSession(shipped_path, so, providers=["CPUExecutionProvider"])

    periods = list(quarters(int(bars["minute"][0]), int(bars["minute"][-1])))
    if args.periods:
        periods = periods[: args.periods]
    report_periods = []
    pooled = {k: [] for k in PREDICTORS}
    pooled_real = []
    prev_model = None
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
        train_idx = np.sort(np.unique(np.r_[rng.choice(recent, k, replace=False),
                                            rng.choice(cand, min(N_TRAIN - k, len(cand)), replace=False)]))
        # validation IC samples: targets end before the period
        vi = np.arange(va, a)
        val_ic_idx = vi[usable[vi] & (data.b["minute"][np.minimum(vi + MAX_H, data.n - 1)] < e0) & (vi + MAX_H < a)]
        val_sig_idx = vi[data.win_ok[vi]]
        ev = np.arange(a, b)
        ev_sig_idx = ev[data.win_ok[ev]]
        flog(f"train {len(train_idx):,} (of {len(cand):,}), val {len(val_ic_idx):,}, eval bars {b - a:,}")

        model, model_info = train_fold(prev_model, data, train_idx, val_ic_idx[::3], fold, flog)
        prev_model = model
        ridge_fn, ridge_info = fit_ridge(data, train_idx, val_ic_idx[::3])

        preds_val, preds_ev = {}, {}
        preds_val["model"] = predict_torch(model, data, val_sig_idx)[:, 1]
        preds_ev["model"] = predict_torch(model, data, ev_sig_idx)
        preds_val["ridge"] = ridge_fn(val_sig_idx)[:, 1]
        preds_ev["ridge"] = ridge_fn(ev_sig_idx)
        if shipped is not None:
            preds_val["shipped"] = predict_onnx(shipped, data, val_sig_idx)[:, 1]
            preds_ev["shipped"] = predict_onnx(shipped, data, ev_sig_idx)
        preds_val["momentum"] = data.mom[val_sig_idx]
        preds_ev["momentum"] = np.repeat(data.mom[ev_sig_idx][:, None], 3, axis=1)
        preds_val["mean_reversion"] = -data.mom[val_sig_idx]
        preds_ev["mean_reversion"] = -preds_ev["momentum"]

        # eval rows with all targets, for IC and hit rate
        ic_mask = data.tgt_ok[ev_sig_idx] & (data.b["minute"][np.minimum(ev_sig_idx + MAX_H, data.n - 1)] < e1 + MAX_H)
        real = data.y[ev_sig_idx][ic_mask]
        pooled_real.append(real)
        period = {"period": name, "start": str(np.datetime64(e0, "m")), "end": str(np.datetime64(e1, "m")),
                  "bars": int(b - a), "ic_samples": int(ic_mask.sum()), "train_samples": int(len(train_idx)),
                  "val_from": str(np.datetime64(int(data.b["minute"][va]), "m")),
                  "model_training": model_info, "ridge": ridge_info, "predictors": {}}

        def full(pred_sig, lo, hi, sig_idx):
            """Per-bar predictions over [lo, hi) (NaN where no window) and the can-signal mask."""
            p = np.full(hi - lo, np.nan)
            p[sig_idx - lo] = pred_sig
            return np.nan_to_num(p), ~np.isnan(p)

        close_val, close_ev = data.c[va:a], data.c[a:b]
        for key, pv in preds_val.items():
            pe = preds_ev[key]
            entry = {}
            for j, h in enumerate(HORIZONS):
                entry[f"ic_{h}m"] = ic_with_interval(pe[ic_mask, j], real[:, j], rng)
            entry["hit_rate_15m"] = hit_rate(pe[ic_mask, 1], real[:, 1])
            pooled[key].append(pe[ic_mask])
            vp, vok = full(pv, va, a, val_sig_idx)
            ep, eok = full(pe[:, 1], a, b, ev_sig_idx)
            for venue in ("spot", "perp"):
                thr, margin, tried = choose_threshold(vp, vok, close_val, costs, args.hold, venue)
                res = trade(ep, eok, close_ev, thr, costs["per_side"], args.hold)
                entry[venue] = {"threshold": None if not math.isfinite(thr) else thr, "margin": margin,
                                "emits": math.isfinite(thr), "validation": tried, **res[venue],
                                "signals": res["signals"]}
            if key in ("model", "shipped"):
                res = trade(ep, eok, close_ev, OLD_THRESHOLD, costs["per_side"], args.hold)
                entry["fixed_threshold_0.0004"] = {"spot": res["spot"], "perp": res["perp"], "signals": res["signals"]}
            period["predictors"][key] = entry
        r = close_ev[1:] / close_ev[:-1] - 1.0
        period["buy_and_hold"] = {"gross": float(r.sum()), "cost": 2 * costs["per_side"],
                                  "net": float(r.sum()) - 2 * costs["per_side"],
                                  "price_change": float(close_ev[-1] / close_ev[0] - 1.0)}
        report_periods.append(period)
        m = period["predictors"]["model"]
        flog(f"model IC15 {m['ic_15m']['ic']} [{m['ic_15m']['lo']}, {m['ic_15m']['hi']}]  spot net "
             f"{100 * m['spot']['net']:+.2f}% ({m['spot']['round_trips']} trades, emits {m['spot']['emits']})  "
             f"perp net {100 * m['perp']['net']:+.2f}%  | buy&hold {100 * period['buy_and_hold']['net']:+.2f}%  "
             f"({time.time() - t_fold:.0f}s)")

    # ---- overall
    real_all = np.concatenate(pooled_real)
    overall = {"ic_samples": int(len(real_all)), "predictors": {}}
    for key in PREDICTORS:
        if not pooled[key]:
            continue
        p = np.concatenate(pooled[key])
        entry = {}
        for j, h in enumerate(HORIZONS):
            if h == 15:
                entry[f"ic_{h}m"] = ic_with_interval(p[:, j], real_all[:, j], rng, boot=100)
            else:
                rp = corr(ranks(p[:, j]), ranks(real_all[:, j]))
                entry[f"ic_{h}m"] = {"ic": None if rp is None else round(rp, 5)}
        entry["hit_rate_15m"] = hit_rate(p[:, 1], real_all[:, 1])
        per = [x["predictors"][key] for x in report_periods]
        qics = [x["ic_15m"]["ic"] for x in per if x["ic_15m"]["ic"] is not None]
        entry["quarters_ic15_positive"] = sum(1 for v in qics if v > 0)
        entry["quarters_ic15_interval_above_zero"] = sum(1 for x in per if (x["ic_15m"]["lo"] or 0) > 0)
        entry["mean_quarterly_ic15"] = round(float(np.mean(qics)), 5) if qics else None
        for venue in ("spot", "perp"):
            entry[venue] = {
                "net": float(sum(x[venue]["net"] for x in per)),
                "gross": float(sum(x[venue]["gross"] for x in per)),
                "cost": float(sum(x[venue]["cost"] for x in per)),
                "round_trips": int(sum(x[venue]["round_trips"] for x in per)),
                "quarters_emitting": int(sum(1 for x in per if x[venue]["emits"])),
                "quarters_net_positive": int(sum(1 for x in per if x[venue]["net"] > 0)),
            }
        if "fixed_threshold_0.0004" in per[0]:
            entry["fixed_threshold_0.0004"] = {
                v: {"net": float(sum(x["fixed_threshold_0.0004"][v]["net"] for x in per)),
                    "round_trips": int(sum(x["fixed_threshold_0.0004"][v]["round_trips"] for x in per))}
                for v in ("spot", "perp")}
        overall["predictors"][key] = entry
    overall["buy_and_hold"] = {"net": float(sum(x["buy_and_hold"]["net"] for x in report_periods)),
                               "quarters_net_positive": int(sum(1 for x in report_periods if x["buy_and_hold"]["net"] > 0))}

    own_week = shipped_own_week(costs, args.hold, rng, so) if not args.no_shipped else None

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
                     "horizons": list(HORIZONS), "hold_minutes": args.hold, "costs": costs,
                     "margins": list(MARGINS), "bootstrap": {"resamples": BOOT, "block": BLOCK,
                                                             "overall_resamples_15m": 100}},
        "periods": report_periods,
        "overall": overall,
        "shipped_own_week": own_week,
        "shipped_model": None if args.no_shipped else {"onnx": "models/patchtst.onnx",
                                                        "sha256": contract.sha256(shipped_path)},
        "seconds": round(time.time() - T0),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "onnxruntime": ort.__version__},
        "machine": {"cpus": os.cpu_count(), "threads": args.threads},
    }
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "evaluation.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    write_markdown(report, os.path.join(args.out_dir, "EVALUATION.md"))
    plot(report, os.path.join(args.out_dir, "evaluation.png"))
    log(f"wrote evaluation.json, EVALUATION.md, evaluation.png in {args.out_dir} ({report['seconds']} s)")
    if args.out_dir == MODELS:
        log("models/MODEL_CARD.md, from this report:")
        sys.argv = [sys.argv[0]]
        model_card.main()


def shipped_own_week(costs, hold, rng, so):
    """The shipped model on its own data: margin chosen on its validation slice (Jan 20-25),
    result on its evaluation week (Jan 25 - Feb 1), exactly the split of ml/train.py."""
    import onnxruntime as ort
    bars = feat.load_csv(FTX_CSV)
    m = np.array([t[:16] for t in bars["timestamp"]], dtype="datetime64[m]").astype(np.int64)
    sess = ort.InferenceSession(os.path.join(MODELS, "patchtst.onnx"), so, providers=["CPUExecutionProvider"])
    n = len(m)
    c = bars["close"]
    val_i = int(np.searchsorted(m, minute_of(dt.datetime(2022, 1, 20))))
    eval_i = int(np.searchsorted(m, minute_of(dt.datetime(2022, 1, 25))))
    idx = np.arange(N, n)
    pred = np.zeros(n)
    pred[idx] = np.concatenate([sess.run(["returns"], {"features": feat.windows_from_bars(bars, idx[s:s + 4096])})[0][:, 1]
                                for s in range(0, len(idx), 4096)])
    ok = np.zeros(n, dtype=bool)
    ok[idx] = True
    out = {}
    for venue in ("spot", "perp"):
        thr, margin, tried = choose_threshold(pred[val_i:eval_i], ok[val_i:eval_i], c[val_i:eval_i], costs, hold, venue)
        res = trade(pred[eval_i:], ok[eval_i:], c[eval_i:], thr, costs["per_side"], hold)
        old = trade(pred[eval_i:], ok[eval_i:], c[eval_i:], OLD_THRESHOLD, costs["per_side"], hold)
        out[venue] = {"threshold": None if not math.isfinite(thr) else thr, "margin": margin, "validation": tried,
                      "eval": res[venue], "eval_signals": res["signals"],
                      "fixed_threshold_0.0004": old[venue], "fixed_signals": old["signals"]}
    ev = np.arange(eval_i, n - 60)
    y15 = np.log(c[ev + 15] / c[ev])
    out["ic_15m"] = ic_with_interval(pred[ev], y15, rng)
    out["buy_and_hold"] = float((c[eval_i + 1:] / c[eval_i:-1] - 1).sum())
    out["margin_chosen"] = out["spot"]["margin"]
    return out


if __name__ == "__main__":
    main()
