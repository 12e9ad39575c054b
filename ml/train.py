#!/usr/bin/env python3
"""Train the botai signal model (PatchTST-style) and export it to ONNX.

    python3 ml/train.py            # = make train; writes models/patchtst.onnx + metrics

Pipeline (all seeded; CPU, one thread):
  1. load data/market/btc-perp-1m-2022-01.csv.gz, build feature windows with ml/features.py
     and targets y_h = ln(close[t+h] / close[t]) for h = 5, 15, 60 (t = last bar of the window);
  2. walk-forward split on the timestamp of bar t:
        train : t+60 < VAL_START   (targets end before the validation slice: no overlap)
        val   : VAL_START <= t and t+60 < EVAL_START  (the END of the training period)
        eval  : EVAL_START <= t and t+60 < n_bars     (never used for any choice)
     with VAL_START = 2022-01-20 00:00, EVAL_START = 2022-01-25 00:00 UTC, so no training or
     validation target reaches past 2022-01-25 00:00;
  3. train each candidate variant on `train`, early-stop on the validation Spearman IC of the
     15-minute output, pick the variant with the best validation IC (15m);
  4. only then: export the chosen model to ONNX (weights inside the file, dynamic batch),
     check ONNX == PyTorch on real windows, and compute the evaluation metrics and baselines
     on `eval` (with the ONNX model, i.e. exactly what ships);
  5. write models/metrics.json, and the model's manifest models/patchtst.json (ml/MODEL_CONTRACT.md)
     with the signal margin chosen on the validation slice by the engine's rule (ml/signal_rule.py).
     `make evaluate` judges the exported file over eight years and regenerates MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import math
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402  (the manifest beside the ONNX file)
import features as feat  # noqa: E402  (numpy-only feature contract)
from signal_rule import DEFAULT_VENUE, choose_threshold, venue_costs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CSV = os.path.join(REPO, "data", "market", "btc-perp-1m-2022-01.csv.gz")
DEFAULT_OUT = os.path.join(REPO, "models")

HORIZONS = (5, 15, 60)
MAX_H = max(HORIZONS)
VAL_START = dt.datetime(2022, 1, 20, 0, 0)
EVAL_START = dt.datetime(2022, 1, 25, 0, 0)
SEED = 20220125
OPSET = 17

# Candidate variants: everything not listed comes from BASE. Chosen on validation IC (15m).
BASE = dict(
    patch_len=12, stride=6, d_model=32, n_heads=4, d_ff=64, n_layers=2, dropout=0.2,
    head="flatten", loss="huber", huber_delta=1.0, lr=1e-3, weight_decay=1e-2,
    batch_size=256, max_epochs=12, patience=4, input_clip=8.0,
)
VARIANTS = {
    "A_huber_flatten": {},
    "B_mse_flatten": {"loss": "mse"},
    "C_huber_meanpool": {"head": "meanpool"},
}


# ----------------------------------------------------------------------------- metrics
def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (like scipy.stats.rankdata)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks_sorted = np.arange(1, len(x) + 1, dtype=np.float64)
    # average ranks over runs of equal values
    boundaries = np.flatnonzero(np.diff(xs) != 0) + 1
    starts = np.r_[0, boundaries]
    ends = np.r_[boundaries, len(x)]
    for s, e in zip(starts, ends):
        if e - s > 1:
            ranks_sorted[s:e] = 0.5 * (s + 1 + e)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def spearman(pred: np.ndarray, real: np.ndarray):
    """Spearman rank correlation; None if either side is constant (undefined)."""
    rp, rr = rankdata(pred), rankdata(real)
    rp -= rp.mean()
    rr -= rr.mean()
    den = math.sqrt(float((rp * rp).sum()) * float((rr * rr).sum()))
    if den == 0.0:
        return None
    return float((rp * rr).sum() / den)


def hit_rate(pred: np.ndarray, real: np.ndarray):
    """Sign agreement over samples with real != 0 (zero realised returns are excluded).
    A prediction of exactly 0 calls no direction and counts as a miss.
    Returns (hit_rate, n_used, n_pred_zero)."""
    m = real != 0
    p, r = pred[m], real[m]
    hits = (np.sign(p) == np.sign(r)) & (p != 0)
    return float(hits.mean()), int(m.sum()), int((p == 0).sum())


def rnd(x, k=6):
    return None if x is None else round(float(x), k)


# ----------------------------------------------------------------------------- model
class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer written with plain ops (clean ONNX export)."""

    def __init__(self, d_model, n_heads, d_ff, dropout):
        super().__init__()
        self.h = n_heads
        self.dh = d_model // n_heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, z):  # z: [S, P, d]
        S, P, d = z.shape[0], z.shape[1], z.shape[2]
        q, k, v = self.qkv(self.ln1(z)).reshape(-1, P, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(self.dh)), dim=-1)
        a = (self.drop(att) @ v).transpose(1, 2).reshape(-1, P, d)
        z = z + self.drop(self.proj(a))
        z = z + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(z))))))
        return z


class PatchTST(nn.Module):
    """Channel-independent PatchTST-style regressor.

    x [B, N, C] (raw features from ml/features.py) -> returns [B, 3] raw log returns.
    In-graph: per-channel standardisation with training statistics, clip, patching of each
    channel separately, shared linear patch embedding + learned positional embedding, shared
    transformer encoder over the patches of each channel, linear head over all channels'
    encodings, multiplication by the training target scale (undoes target scaling).
    """

    def __init__(self, n_bars, n_ch, cfg, x_mean, x_std, y_scale):
        super().__init__()
        L, s = cfg["patch_len"], cfg["stride"]
        self.n_ch, self.d = n_ch, cfg["d_model"]
        self.n_patches = (n_bars - L) // s + 1
        # the last patch ends exactly at the newest bar (drop the oldest bars if needed)
        first = n_bars - (s * (self.n_patches - 1) + L)
        idx = first + s * torch.arange(self.n_patches)[:, None] + torch.arange(L)[None, :]
        self.register_buffer("patch_idx", idx.long())
        self.register_buffer("x_mean", torch.as_tensor(x_mean, dtype=torch.float32))
        self.register_buffer("x_std", torch.as_tensor(x_std, dtype=torch.float32))
        self.register_buffer("y_scale", torch.as_tensor(y_scale, dtype=torch.float32))
        self.clip = float(cfg["input_clip"])
        self.embed = nn.Linear(L, self.d)
        self.pos = nn.Parameter(torch.randn(self.n_patches, self.d) * 0.02)
        self.layers = nn.ModuleList(
            EncoderLayer(self.d, cfg["n_heads"], cfg["d_ff"], cfg["dropout"]) for _ in range(cfg["n_layers"])
        )
        self.ln = nn.LayerNorm(self.d)
        self.head_kind = cfg["head"]
        h_in = n_ch * self.d * (self.n_patches if self.head_kind == "flatten" else 1)
        self.drop = nn.Dropout(cfg["dropout"])
        self.head = nn.Linear(h_in, len(HORIZONS))

    def forward_scaled(self, x):
        x = torch.clamp((x - self.x_mean) / self.x_std, -self.clip, self.clip)
        x = x.transpose(1, 2)                      # [B, C, N]
        p = x[:, :, self.patch_idx]                # [B, C, P, L]
        z = self.embed(p) + self.pos               # [B, C, P, d]
        z = z.reshape(-1, self.n_patches, self.d)  # [B*C, P, d]  channel-independent
        for layer in self.layers:
            z = layer(z)
        z = self.ln(z)
        if self.head_kind == "flatten":
            z = z.reshape(-1, self.n_ch * self.n_patches * self.d)
        else:
            z = z.mean(dim=1).reshape(-1, self.n_ch * self.d)
        return self.head(self.drop(z))             # [B, 3] in target-scale units

    def forward(self, features):
        return self.forward_scaled(features) * self.y_scale


# ----------------------------------------------------------------------------- data
def build_dataset(csv_path):
    bars = feat.load_csv(csv_path)
    ts = [dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f") for t in bars["timestamp"]]
    n = len(ts)
    c = bars["close"]
    t_all = np.arange(feat.N_BARS, n - MAX_H)          # last bar of window, all targets exist
    val_i = next(i for i, t in enumerate(ts) if t >= VAL_START)
    eval_i = next(i for i, t in enumerate(ts) if t >= EVAL_START)
    split = {
        "train": t_all[t_all + MAX_H < val_i],
        "val": t_all[(t_all >= val_i) & (t_all + MAX_H < eval_i)],
        "eval": t_all[t_all >= eval_i],
    }
    assert split["train"].max() + MAX_H < eval_i and split["val"].max() + MAX_H < eval_i
    X = feat.windows_from_bars(bars, t_all)            # float32 [M, N, C]
    Y = np.stack([np.log(c[t_all + h] / c[t_all]) for h in HORIZONS], axis=1)  # float64
    pos = {int(t): k for k, t in enumerate(t_all)}
    data = {}
    for name, ts_idx in split.items():
        rows = np.array([pos[int(t)] for t in ts_idx])
        data[name] = {"t": ts_idx, "X": X[rows], "Y": Y[rows]}
    # baseline input: last 15-minute return ln(close[t] / close[t-15])
    for name in data:
        t = data[name]["t"]
        data[name]["mom15"] = np.log(c[t] / c[t - 15])
    meta = {"csv": csv_path, "n_rows": n, "val_index": val_i, "eval_index": eval_i, "timestamps": bars["timestamp"], "bars": bars}
    return data, meta


# ----------------------------------------------------------------------------- training
def set_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def predict(model, X, batch=2048):
    model.eval()
    out = [model(torch.from_numpy(X[i : i + batch])).numpy() for i in range(0, len(X), batch)]
    return np.concatenate(out).astype(np.float64)


def train_variant(name, cfg, data, stats, log):
    set_seed(SEED)
    Xtr = torch.from_numpy(data["train"]["X"])
    Ytr = torch.from_numpy((data["train"]["Y"] / stats["y_scale"]).astype(np.float32))
    model = PatchTST(feat.N_BARS, feat.N_CHANNELS, cfg, stats["x_mean"], stats["x_std"], stats["y_scale"])
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = math.ceil(len(Xtr) / cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg["lr"], total_steps=steps_per_epoch * cfg["max_epochs"], pct_start=0.1
    )
    gen = torch.Generator().manual_seed(SEED)
    best = {"ic15": -math.inf, "epoch": 0, "state": None, "ics": None}
    history = []
    log(f"[{name}] params={n_params} train={len(Xtr)} val={len(data['val']['X'])} cfg={cfg}")
    bad = 0
    for epoch in range(1, cfg["max_epochs"] + 1):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(Xtr), generator=gen)
        tot, cnt = 0.0, 0
        for i in range(0, len(perm), cfg["batch_size"]):
            b = perm[i : i + cfg["batch_size"]]
            pred = model.forward_scaled(Xtr[b])
            if cfg["loss"] == "huber":
                loss = F.huber_loss(pred, Ytr[b], delta=cfg["huber_delta"])
            else:
                loss = F.mse_loss(pred, Ytr[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += loss.item() * len(b)
            cnt += len(b)
        pv = predict(model, data["val"]["X"])
        ics = [spearman(pv[:, j], data["val"]["Y"][:, j]) for j in range(3)]
        history.append({"epoch": epoch, "train_loss": rnd(tot / cnt), "val_ic": [rnd(v) for v in ics]})
        log(f"[{name}] epoch {epoch:2d}  train_loss {tot / cnt:.5f}  val IC 5m {ics[0]:+.4f}  "
            f"15m {ics[1]:+.4f}  60m {ics[2]:+.4f}  ({time.time() - t0:.0f}s)")
        if ics[1] > best["ic15"]:
            best = {"ic15": ics[1], "epoch": epoch, "state": copy.deepcopy(model.state_dict()), "ics": ics}
            bad = 0
        else:
            bad += 1
            if bad >= cfg["patience"]:
                log(f"[{name}] early stop (no val IC15 gain for {bad} epochs)")
                break
    model.load_state_dict(best["state"])
    model.eval()
    log(f"[{name}] best epoch {best['epoch']}  val IC15 {best['ic15']:+.4f}")
    return model, {"best_epoch": best["epoch"], "val_ic": [rnd(v) for v in best["ics"]],
                   "params": n_params, "history": history}


def ridge_reference(data, stats, log):
    """Linear reference: ridge on the standardised, clipped, flattened window (lambda on val)."""
    def prep(X):
        Z = np.clip((X.astype(np.float64) - stats["x_mean"]) / stats["x_std"], -8, 8)
        return Z.reshape(len(Z), -1)
    A, Y = prep(data["train"]["X"]), data["train"]["Y"] / stats["y_scale"]
    mu = A.mean(0)
    A = A - mu
    Av = prep(data["val"]["X"]) - mu
    G, b = A.T @ A, A.T @ Y
    best = None
    for lam in (1e1, 1e2, 1e3, 1e4, 1e5, 1e6):
        W = np.linalg.solve(G + lam * np.eye(len(G)), b)
        ic = spearman((Av @ W)[:, 1], data["val"]["Y"][:, 1])
        log(f"[ridge] lambda {lam:g}  val IC15 {ic:+.4f}")
        if best is None or ic > best[0]:
            best = (ic, lam, W)
    log(f"[ridge] chosen lambda {best[1]:g}")
    return lambda X: (prep(X) - mu) @ best[2] * stats["y_scale"], {"lambda": best[1], "val_ic15": rnd(best[0])}


# ----------------------------------------------------------------------------- export
def export_onnx(model, path, example):
    model.eval()
    x = torch.from_numpy(example)
    try:
        prog = torch.onnx.export(
            model, (x,), dynamo=True, opset_version=OPSET, input_names=["features"],
            output_names=["returns"], dynamic_shapes={"features": {0: torch.export.Dim("batch", max=1 << 20)}},
            optimize=True, verify=False, external_data=False,
        )
        prog.save(path, external_data=False)
        exporter = "torch.onnx.export(dynamo=True)"
    except Exception as e:  # fall back to the TorchScript exporter
        print(f"dynamo export failed ({type(e).__name__}: {e}); using the TorchScript exporter")
        torch.onnx.export(
            model, (x,), path, dynamo=False, opset_version=OPSET, input_names=["features"],
            output_names=["returns"], dynamic_axes={"features": {0: "batch"}, "returns": {0: "batch"}},
        )
        exporter = "torch.onnx.export(dynamo=False)"
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    # deterministic-ish, documentation-friendly metadata
    del m.metadata_props[:]
    for k, v in {"outputs": "returns_5m,returns_15m,returns_60m (log returns)",
                 "features": f"ml/FEATURES.md: N={feat.N_BARS} C={feat.N_CHANNELS} {','.join(feat.CHANNELS)}"}.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save_model(m, path, save_as_external_data=False)
    return exporter


def verify_onnx(path, model, X):
    import onnx
    import onnxruntime as ort
    m = onnx.load(path)
    assert m.graph.input[0].name == "features" and m.graph.output[0].name == "returns"
    opset = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 17, opset
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    res = {"opset": opset, "input_shape": [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim],
           "output_shape": [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]}
    worst = 0.0
    for bs in (1, 8, 32, 256):
        xb = X[:bs]
        o = sess.run(["returns"], {"features": xb})[0]
        with torch.no_grad():
            t = model(torch.from_numpy(xb)).numpy()
        assert o.shape == (bs, 3) and o.dtype == np.float32, (o.shape, o.dtype)
        worst = max(worst, float(np.abs(o - t).max()))
    assert worst <= 1e-5, worst
    res["max_abs_diff_vs_torch"] = worst
    res["batch_sizes_checked"] = [1, 8, 32, 256]
    return sess, res


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=DEFAULT_CSV)
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    ap.add_argument("--max-epochs", type=int, default=None, help="override (quick smoke runs only)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.use_deterministic_algorithms(True)
    set_seed(SEED)
    t_start = time.time()
    log = lambda s: print(f"{time.time() - t_start:7.1f}s  {s}", flush=True)  # noqa: E731

    data, meta = build_dataset(args.csv)
    for k in ("train", "val", "eval"):
        t = data[k]["t"]
        log(f"{k:5s}: {len(t):6d} samples, last bar t from {meta['timestamps'][t[0]]} to {meta['timestamps'][t[-1]]}")
    Xtr = data["train"]["X"].astype(np.float64)
    stats = {
        "x_mean": Xtr.mean(axis=(0, 1)),
        "x_std": Xtr.std(axis=(0, 1)),
        "y_scale": np.sqrt((data["train"]["Y"] ** 2).mean(axis=0)),  # RMS; targets are not centred
    }
    log(f"x_mean {stats['x_mean']}  x_std {stats['x_std']}  y_scale(RMS) {stats['y_scale']}")

    # ---- selection on validation only
    results, models = {}, {}
    for name in args.variants.split(","):
        cfg = dict(BASE, **VARIANTS[name])
        if args.max_epochs:
            cfg["max_epochs"] = args.max_epochs
        models[name], results[name] = train_variant(name, cfg, data, stats, log)
        results[name]["config"] = cfg
    chosen = max(results, key=lambda k: results[k]["val_ic"][1])
    model = models[chosen]
    log(f"chosen variant: {chosen} (val IC15 {results[chosen]['val_ic'][1]:+.4f})")
    ridge_fn, ridge_info = ridge_reference(data, stats, log)

    # ---- export + verify (the evaluation part is touched only from here on)
    os.makedirs(args.out_dir, exist_ok=True)
    onnx_path = os.path.join(args.out_dir, "patchtst.onnx")
    exporter = export_onnx(model, onnx_path, data["val"]["X"][:4])
    sess, onnx_check = verify_onnx(onnx_path, model, data["eval"]["X"])
    log(f"ONNX ok: {onnx_check}")

    # ---- evaluation
    ev = data["eval"]
    pred = np.concatenate([sess.run(["returns"], {"features": ev["X"][i : i + 4096]})[0]
                           for i in range(0, len(ev["X"]), 4096)]).astype(np.float64)
    real = ev["Y"]
    mom = ev["mom15"]
    nonover = np.arange(0, len(real), 15)  # every 15th sample: non-overlapping 15m targets

    def block(p_by_h, zero=False):
        if zero:
            return {"ic_5m": None, "ic_15m": None, "ic_60m": None, "hit_rate_15m": None,
                    "ic_15m_nonoverlapping": None}
        out = {}
        for j, h in enumerate(HORIZONS):
            p = p_by_h(j)
            out[f"ic_{h}m"] = rnd(spearman(p, real[:, j]))
        hr, n_used, n_p0 = hit_rate(p_by_h(1), real[:, 1])
        out["hit_rate_15m"] = rnd(hr)
        out["pred_zero_15m"] = n_p0
        out["ic_15m_nonoverlapping"] = rnd(spearman(p_by_h(1)[nonover], real[nonover, 1]))
        return out

    n_nonzero15 = int((real[:, 1] != 0).sum())
    up15 = float((real[real[:, 1] != 0, 1] > 0).mean())
    metrics_model = block(lambda j: pred[:, j])
    # per-day IC (15m) for the model, days by the timestamp of t
    days = {}
    for k, t in enumerate(ev["t"]):
        days.setdefault(meta["timestamps"][t][:10], []).append(k)
    metrics_model["ic_15m_by_day"] = {d: rnd(spearman(pred[ix, 1], real[ix, 1])) for d, ix in days.items() if len(ix) > 100}
    ridge_pred = ridge_fn(ev["X"])
    baselines = {
        "zero": dict(block(None, zero=True), note="predicts 0: IC undefined (constant prediction), "
                     "no direction; always-up hit rate reported separately"),
        "always_up": {"ic_5m": None, "ic_15m": None, "ic_60m": None, "hit_rate_15m": rnd(up15),
                      "note": "hit rate of calling 'up' every time (fraction of non-zero 15m returns that are > 0); IC undefined"},
        "momentum_15m": dict(block(lambda j: mom), note="predicts ln(close[t]/close[t-15]) for every horizon"),
        "mean_reversion_15m": dict(block(lambda j: -mom), note="predicts -ln(close[t]/close[t-15]) for every horizon"),
    }
    reference = {"ridge_linear": dict(block(lambda j: ridge_pred[:, j]), **ridge_info,
                                      note="ridge regression on the same standardised flattened window, lambda chosen on val (not a naive baseline)")}
    size = os.path.getsize(onnx_path)
    sha = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    import onnx
    import onnxruntime
    metrics = {
        "model": {"file": "models/patchtst.onnx", "bytes": size, "sha256": sha, "exporter": exporter, **onnx_check,
                  "variant": chosen, "config": results[chosen]["config"], "params": results[chosen]["params"],
                  "input": {"name": "features", "shape": ["batch", feat.N_BARS, feat.N_CHANNELS], "dtype": "float32",
                            "channels": list(feat.CHANNELS)},
                  "output": {"name": "returns", "shape": ["batch", 3], "dtype": "float32",
                             "columns": ["returns_5m", "returns_15m", "returns_60m"], "units": "log return"}},
        "target": "ln(close[t+h]/close[t]), t = last bar of the input window, h in minutes",
        "split": {
            "train": f"t+60 < {VAL_START:%Y-%m-%d %H:%M} UTC (t >= row {feat.N_BARS})",
            "val": f"{VAL_START:%Y-%m-%d %H:%M} <= t and t+60 < {EVAL_START:%Y-%m-%d %H:%M} UTC",
            "eval": f"t >= {EVAL_START:%Y-%m-%d %H:%M} UTC and t+60 <= last bar",
            "n_train": len(data["train"]["t"]), "n_val": len(data["val"]["t"]), "n_eval": len(ev["t"]),
            "eval_first_t": meta["timestamps"][ev["t"][0]], "eval_last_t": meta["timestamps"][ev["t"][-1]],
        },
        "eval": {
            "n_samples": len(real), "n_nonzero_15m": n_nonzero15, "n_zero_15m": len(real) - n_nonzero15,
            "n_nonoverlapping_15m": len(nonover),
            "hit_rate_rule": "sign(pred) == sign(real) over samples with real 15m return != 0 (zeros excluded); "
                             "a prediction of exactly 0 counts as a miss",
            "ic": "Spearman rank correlation over all evaluation samples (one per minute, overlapping targets)",
            "model": metrics_model,
            "baselines": baselines,
            "reference": reference,
        },
        "selection": {name: {k: r[k] for k in ("best_epoch", "val_ic", "params", "history")} for name, r in results.items()},
        "chosen_by": "highest validation Spearman IC of returns_15m (validation = end of the training period)",
        "goal": {"ic_15m_gt": 0.03, "beats_every_baseline": None, "reached": None},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__},
        "seed": SEED,
    }
    ic15 = metrics_model["ic_15m"]
    base_ic = [v["ic_15m"] for v in baselines.values() if v["ic_15m"] is not None]
    base_hr = [v["hit_rate_15m"] for v in baselines.values() if v["hit_rate_15m"] is not None]
    beats = ic15 > max(base_ic) and metrics_model["hit_rate_15m"] > max(base_hr)
    metrics["goal"]["beats_every_baseline"] = {"ic_15m": ic15 > max(base_ic),
                                               "hit_rate_15m": metrics_model["hit_rate_15m"] > max(base_hr)}
    metrics["goal"]["reached"] = bool(ic15 > 0.03 and beats)
    with open(os.path.join(args.out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    log("EVAL model: " + json.dumps(metrics_model))
    for k, v in {**baselines, **reference}.items():
        log(f"EVAL {k}: " + json.dumps(v))
    log(f"goal reached: {metrics['goal']}")
    manifest = write_manifest(onnx_path, sess, meta, log)
    log(f"wrote {onnx_path} ({size} bytes), metrics.json and {manifest}")


def write_manifest(onnx_path, sess, meta, log, hold=15):
    """models/patchtst.json: the contract of the exported file, with the signal margin the
    engine's rule pays best on the validation slice (every bar from VAL_START to EVAL_START,
    the same slice ml/evaluate.py chooses it on) as its `validation_margin`; None when no
    margin pays. The margin the daemon applies (`margin`) stays null, so the model emits
    nothing, until ml/evaluate.py's selection rule finds an edge out of sample."""
    costs = venue_costs(DEFAULT_VENUE)
    bars = meta["bars"]
    t = np.arange(max(meta["val_index"], feat.N_BARS), meta["eval_index"])
    pred = np.concatenate([sess.run(["returns"], {"features": feat.windows_from_bars(bars, t[i : i + 4096])})[0][:, 1]
                           for i in range(0, len(t), 4096)]).astype(np.float64)
    _, margin, tried = choose_threshold(pred, np.ones(len(t), dtype=bool), bars["close"][t], costs, hold, "perp")
    log(f"signal margin on validation (perp rule, {costs['venue']}, round trip {costs['round_trip']:.4f}): "
        f"{margin} from {tried}")
    ts = meta["timestamps"]
    doc = contract.manifest(
        onnx_path, "patchtst", window=feat.N_BARS, features=list(feat.CHANNELS), horizons=list(HORIZONS),
        trade_horizon=15, costs={"venue": costs["venue"], "fee": costs["fee"], "slippage": costs["slippage"]},
        validation_margin=margin,
        training={"data": os.path.relpath(meta["csv"], REPO), "from": ts[0][:16].replace(" ", "T") + ":00Z",
                  "to": f"{EVAL_START:%Y-%m-%dT%H:%M:00Z}"},
        description="PatchTST-style signal model trained on FTX BTC-PERP, January 2022 (ml/train.py); "
                    "see models/MODEL_CARD.md")
    doc["signal"]["chosen_by"] = (f"validation_margin: ml/train.py, on its validation slice "
                                  f"({VAL_START:%Y-%m-%d} .. {EVAL_START:%Y-%m-%d}, FTX); margin: the selection "
                                  "rule of ml/evaluate.py (models/EVALUATION.md)")
    path = os.path.splitext(onnx_path)[0] + ".json"
    contract.write(path, doc)
    return path


if __name__ == "__main__":
    main()
