#!/usr/bin/env python3
"""The walk-forward's per-fold predictions, cached in .cache/evaluate: a rerun of
`make evaluate` (a new figure, a new report) retrains nothing unless --retrain. The key
covers what the predictions depend on: the bars, the training code and the protocol; the
shipped model's predictions are keyed by its file's SHA-256."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

import features as feat

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.dirname(HERE), ".cache", "evaluate")

def predictions_key(data, code, protocol) -> str:
    """What the walk-forward's predictions depend on: the bars, the training code (`code`:
    the functions and classes that train and predict) and the protocol's constants."""
    import inspect
    h = hashlib.sha256()
    h.update(data.b["minute"].tobytes())
    h.update(data.c.tobytes())
    for obj in code:
        h.update(inspect.getsource(obj).encode())
    h.update(json.dumps(protocol, default=str).encode())
    return h.hexdigest()[:16]


def fold_path(key, fold, what):
    return os.path.join(CACHE, f"folds-{key}", f"{fold:03d}-{what}")


def save_fold(key, fold, preds_val, preds_ev, model_info, ridge_info, model):
    import torch
    os.makedirs(os.path.dirname(fold_path(key, fold, "")), exist_ok=True)
    np.savez(fold_path(key, fold, "predictions.npz"), **{f"val_{k}": v for k, v in preds_val.items()},
             **{f"ev_{k}": v for k, v in preds_ev.items()})
    with open(fold_path(key, fold, "info.json"), "w") as f:
        json.dump({"model": model_info, "ridge": ridge_info}, f)
    torch.save(model.state_dict(), fold_path(key, fold, "model.pt"))


def load_fold(key, fold):
    p, i = fold_path(key, fold, "predictions.npz"), fold_path(key, fold, "info.json")
    if not (os.path.exists(p) and os.path.exists(i)):
        return None
    z = np.load(p)
    with open(i) as f:
        info = json.load(f)
    val = {k[4:]: z[k] for k in z.files if k.startswith("val_")}
    ev = {k[3:]: z[k] for k in z.files if k.startswith("ev_")}
    return val, ev, info["model"], info["ridge"]


def restore_model(key, fold, n_bars, n_horizons):
    """The previous fold's weights, to warm-start a fold whose predictions are not cached."""
    import torch
    import train as T
    path = fold_path(key, fold, "model.pt")
    state = torch.load(path)
    cfg = dict(T.BASE, stride=12, loss="mse")
    z = np.zeros(feat.N_CHANNELS)
    model = T.PatchTST(n_bars, feat.N_CHANNELS, cfg, z, z + 1, np.ones(n_horizons))
    model.load_state_dict(state)
    return model


def shipped_predictions(sess, sha, data, fold, val_idx, ev_idx, predict_onnx):
    """The shipped model's predictions for a fold (`predict_onnx(sess, data, idx)`), cached by
    the file's SHA-256."""
    path = os.path.join(CACHE, f"shipped-{sha[:16]}-{hashlib.sha256(data.c.tobytes()).hexdigest()[:12]}",
                        f"{fold:03d}.npz")
    if os.path.exists(path):
        z = np.load(path)
        if len(z["val"]) == len(val_idx) and len(z["ev"]) == len(ev_idx):
            return z["val"], z["ev"]
    sv = predict_onnx(sess, data, val_idx)[:, 1]
    se = predict_onnx(sess, data, ev_idx)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, val=sv, ev=se)
    return sv, se
