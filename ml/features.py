#!/usr/bin/env python3
"""Feature windows for the botai signal model (PatchTST-style, see models/MODEL_CARD.md).

This module is the reference implementation of the contract in ml/FEATURES.md, which the
Rust side reimplements. It depends ONLY on numpy and the Python standard library, computes
in float64 and casts to float32 at the very end.

A feature window whose last bar is row I (0-based data row of the bar CSV) uses the
N_BARS + 1 raw bars I-N_BARS .. I: the extra oldest bar only supplies the previous close
for the first log return. The result is a float32 array of shape [N_BARS, N_CHANNELS],
rows oldest -> newest (row N_BARS-1 is bar I), channels in CHANNELS order:

    ret    = ln(close_t / close_{t-1})
    range  = ln(high_t / low_t)
    clv    = (2 * close_t - high_t - low_t) / (high_t - low_t)   if high_t > low_t, else 0.0
             (close location in the bar's range, in [-1, 1]; +1 = closed at the high)
    vol_z  = clip((lv_t - mean(lv)) / (std(lv) + VOL_EPS), -VOL_CLIP, VOL_CLIP),
             lv_t = ln(1 + volume_t), mean and POPULATION std (ddof=0) over the N_BARS bars
             of the window itself (NOT the extra oldest bar)

Invalid input raises ValueError: any open/high/low/close that is not finite or is <= 0,
or any volume that is not finite or is < 0, among the N_BARS + 1 bars of the window.

CLI:
    python3 ml/features.py --csv data/market/btc-perp-1m-2022-01.csv.gz --end-index 500 --count 3
prints {"n_bars": N, "channels": C, "windows": [[[...] * C] * N] * K} (float32 values).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys

import numpy as np

N_BARS = 120  # bars per window (window needs N_BARS + 1 raw bars)
CHANNELS = ("ret", "range", "clv", "vol_z")
N_CHANNELS = len(CHANNELS)
VOL_EPS = 1e-6
VOL_CLIP = 5.0
RAW_BARS_PER_WINDOW = N_BARS + 1

CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


def load_csv(path: str) -> dict:
    """Load a bar CSV (plain or .gz) with header timestamp,open,high,low,close,volume.

    Returns {"timestamp": list[str], "open"/"high"/"low"/"close"/"volume": float64 arrays}.
    Values are parsed with Python float() (correctly rounded decimal -> float64).
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        header = [h.strip() for h in header]
        if tuple(header) != CSV_COLUMNS:
            raise ValueError(f"unexpected CSV header {header}, want {list(CSV_COLUMNS)}")
        ts, cols = [], [[] for _ in range(5)]
        for row in reader:
            if not row:
                continue
            ts.append(row[0])
            for j in range(5):
                cols[j].append(float(row[j + 1]))
    out = {"timestamp": ts}
    for name, values in zip(CSV_COLUMNS[1:], cols):
        out[name] = np.asarray(values, dtype=np.float64)
    return out


def _check(o, h, l, c, v) -> None:
    for name, x in (("open", o), ("high", h), ("low", l), ("close", c)):
        bad = ~np.isfinite(x) | (x <= 0.0)
        if bad.any():
            raise ValueError(f"non-finite or non-positive {name} at offset {int(np.argmax(bad))}")
    bad = ~np.isfinite(v) | (v < 0.0)
    if bad.any():
        raise ValueError(f"non-finite or negative volume at offset {int(np.argmax(bad))}")


def _clv(h, l, c):
    """Close location value (2c - h - l) / (h - l); 0.0 where h <= l (flat bar)."""
    den = h - l
    pos = den > 0.0
    out = np.zeros_like(c)
    out[pos] = (2.0 * c[pos] - h[pos] - l[pos]) / den[pos]
    return out


def window_features(open_, high, low, close, volume) -> np.ndarray:
    """Features of ONE window from N_BARS + 1 raw bars (oldest -> newest).

    Returns float32 [N_BARS, N_CHANNELS]. Raises ValueError on invalid input.
    """
    arrs = [np.asarray(x, dtype=np.float64) for x in (open_, high, low, close, volume)]
    for x in arrs:
        if x.shape != (RAW_BARS_PER_WINDOW,):
            raise ValueError(f"need exactly {RAW_BARS_PER_WINDOW} bars, got shape {x.shape}")
    o, h, l, c, v = arrs
    _check(o, h, l, c, v)
    ret = np.log(c[1:] / c[:-1])
    rng = np.log(h[1:] / l[1:])
    clv = _clv(h[1:], l[1:], c[1:])
    lv = np.log1p(v[1:])
    mean = lv.sum() / N_BARS
    std = np.sqrt(((lv - mean) ** 2).sum() / N_BARS)
    vz = np.clip((lv - mean) / (std + VOL_EPS), -VOL_CLIP, VOL_CLIP)
    return np.stack([ret, rng, clv, vz], axis=1).astype(np.float32)


def windows_from_bars(bars: dict, end_indices) -> np.ndarray:
    """Feature windows whose last bar is each row in end_indices (vectorised).

    Same numbers as window_features() on bars[I-N_BARS : I+1] (up to float64 summation
    order). Returns float32 [len(end_indices), N_BARS, N_CHANNELS].
    """
    end = np.asarray(end_indices, dtype=np.int64)
    n = len(bars["close"])
    if end.size and (end.min() < N_BARS or end.max() >= n):
        raise ValueError(
            f"end index out of range: need {N_BARS} <= I < {n} (a window needs {RAW_BARS_PER_WINDOW} bars)"
        )
    o, h, l, c, v = (np.asarray(bars[k], dtype=np.float64) for k in CSV_COLUMNS[1:])
    # validate every raw bar any requested window touches
    touched = np.zeros(n, dtype=bool)
    for i in end:
        touched[i - N_BARS : i + 1] = True
    try:
        _check(o[touched], h[touched], l[touched], c[touched], v[touched])
    except ValueError as e:
        raise ValueError(f"invalid bar inside a requested window: {e} (among touched rows)") from None
    # per-bar quantities (bar t uses only bar t, and close_{t-1})
    ret = np.full(n, np.nan)
    ret[1:] = np.log(c[1:] / c[:-1])
    rng = np.log(h / l)
    clv = _clv(h, l, c)
    lv = np.log1p(v)
    idx = end[:, None] + np.arange(-N_BARS + 1, 1)[None, :]  # [K, N] rows of the N feature bars
    lvw = lv[idx]
    mean = lvw.sum(axis=1, keepdims=True) / N_BARS
    std = np.sqrt(((lvw - mean) ** 2).sum(axis=1, keepdims=True) / N_BARS)
    vz = np.clip((lvw - mean) / (std + VOL_EPS), -VOL_CLIP, VOL_CLIP)
    out = np.stack([ret[idx], rng[idx], clv[idx], vz], axis=2)
    return out.astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Print botai signal-model feature windows as JSON.")
    ap.add_argument("--csv", required=True, help="bar CSV (.csv or .csv.gz)")
    ap.add_argument("--end-index", type=int, required=True,
                    help="0-based data row (header excluded) of the last bar of the first window")
    ap.add_argument("--count", type=int, default=1, help="number of consecutive windows (default 1)")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be >= 1")
    bars = load_csv(args.csv)
    n = len(bars["close"])
    first, last = args.end_index, args.end_index + args.count - 1
    if first < N_BARS or last >= n:
        print(f"error: windows need {N_BARS} <= end index and end index + count - 1 < {n} rows",
              file=sys.stderr)
        return 2
    wins = []
    for i in range(first, last + 1):
        sl = slice(i - N_BARS, i + 1)
        try:
            w = window_features(bars["open"][sl], bars["high"][sl], bars["low"][sl],
                                bars["close"][sl], bars["volume"][sl])
        except ValueError as e:
            print(f"error: window ending at row {i}: {e}", file=sys.stderr)
            return 1
        wins.append(w.tolist())  # float32 -> exact Python floats
    json.dump({"n_bars": N_BARS, "channels": N_CHANNELS, "windows": wins}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
