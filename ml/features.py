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


BINANCE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades")


def load_csv(path: str) -> dict:
    """Load a bar CSV (plain or .gz) with header timestamp,open,high,low,close,volume (volume
    in the quote currency), or Binance's archive layout timestamp,open,high,low,close,volume,
    quote_volume,trades, whose quote_volume becomes the bars' volume (the catalogue's unit;
    Binance's `volume` is in the base coin). The daemon's reader (market/csv.rs) does the same.

    Returns {"timestamp": list[str], "open"/"high"/"low"/"close"/"volume": float64 arrays}.
    Values are parsed with Python float() (correctly rounded decimal -> float64).
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        header = tuple(h.strip() for h in header)
        if header == CSV_COLUMNS:
            volume_col = 5
        elif header == BINANCE_COLUMNS:
            volume_col = 6
        else:
            raise ValueError(f"unexpected CSV header {list(header)}, want {list(CSV_COLUMNS)} or {list(BINANCE_COLUMNS)}")
        ts, cols = [], [[] for _ in range(5)]
        for row in reader:
            if not row:
                continue
            ts.append(row[0])
            for j in range(4):
                cols[j].append(float(row[j + 1]))
            cols[4].append(float(row[volume_col]))
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


# ----------------------------------------------------------------------------- catalogue
# name -> (bars of history before a window row it needs, formula). ml/FEATURES.md is the
# contract; the daemon (daemon/src/ml/features.rs) computes the same numbers.
CATALOGUE = {
    "ret": (1, "ln(close[t] / close[t-1])"),
    "ret_15": (15, "ln(close[t] / close[t-15])"),
    "range": (0, "ln(high[t] / low[t])"),
    "body": (0, "ln(close[t] / open[t])"),
    "clv": (0, "((2*close[t] - high[t]) - low[t]) / (high[t] - low[t]), 0 when high[t] - low[t] <= 0"),
    "vol_z": (0, "clip((lv[t] - mean(lv)) / (std(lv) + 1e-6), -5, 5), lv = ln(1 + quote volume), over the window"),
}


def lookback(names) -> int:
    """Extra raw bars before the first window row that the named features need."""
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise ValueError(f"features not in the catalogue: {unknown}")
    return max(CATALOGUE[n][0] for n in names)


def _per_bar(name, o, h, l, c, lb):
    """Feature `name` for bars lb .. end of the given raw arrays (one value per bar)."""
    if name == "ret":
        return np.log(c[lb:] / c[lb - 1:-1])
    if name == "ret_15":
        return np.log(c[lb:] / c[lb - 15:len(c) - 15])
    if name == "range":
        return np.log(h[lb:] / l[lb:])
    if name == "body":
        return np.log(c[lb:] / o[lb:])
    if name == "clv":
        return _clv(h[lb:], l[lb:], c[lb:])
    raise ValueError(name)


def _vol_z(lv):
    """vol_z over the last axis (the window's bars); population std."""
    n = lv.shape[-1]
    mean = lv.sum(axis=-1, keepdims=True) / n
    std = np.sqrt(((lv - mean) ** 2).sum(axis=-1, keepdims=True) / n)
    return np.clip((lv - mean) / (std + VOL_EPS), -VOL_CLIP, VOL_CLIP)


def window_features(open_, high, low, close, volume, window: int = N_BARS, names=CHANNELS) -> np.ndarray:
    """Features of ONE window from window + lookback(names) raw bars (oldest -> newest).

    Returns float32 [window, len(names)]. Raises ValueError on invalid input."""
    lb = lookback(names)
    raw = window + lb
    arrs = [np.asarray(x, dtype=np.float64) for x in (open_, high, low, close, volume)]
    for x in arrs:
        if x.shape != (raw,):
            raise ValueError(f"need exactly {raw} bars, got shape {x.shape}")
    o, h, l, c, v = arrs
    _check(o, h, l, c, v)
    cols = [(_vol_z(np.log1p(v[lb:])) if n == "vol_z" else _per_bar(n, o, h, l, c, lb)) for n in names]
    return np.stack(cols, axis=1).astype(np.float32)


def windows_from_bars(bars: dict, end_indices, window: int = N_BARS, names=CHANNELS) -> np.ndarray:
    """Feature windows whose last bar is each row in end_indices (vectorised).

    Same numbers as window_features() on the window's raw bars (up to float64 summation
    order). Returns float32 [len(end_indices), window, len(names)]."""
    lb = lookback(names)
    raw = window + lb
    end = np.asarray(end_indices, dtype=np.int64)
    n = len(bars["close"])
    if end.size and (end.min() < raw - 1 or end.max() >= n):
        raise ValueError(
            f"end index out of range: need {raw - 1} <= I < {n} (a window needs {raw} bars)"
        )
    o, h, l, c, v = (np.asarray(bars[k], dtype=np.float64) for k in CSV_COLUMNS[1:])
    # Per-bar quantities depend on one bar (and earlier closes) only: computed once per bar
    # series and kept with it (the walk-forward evaluation asks for millions of windows).
    cache = bars.setdefault("_features_cache", {})
    if "bad" not in cache:
        with np.errstate(invalid="ignore"):
            cache["bad"] = (~np.isfinite(o) | (o <= 0) | ~np.isfinite(h) | (h <= 0) | ~np.isfinite(l) | (l <= 0)
                            | ~np.isfinite(c) | (c <= 0) | ~np.isfinite(v) | (v < 0))
    # validate every raw bar any requested window touches
    first = end - (raw - 1)
    cover = np.zeros(n + 1, dtype=np.int64)
    np.add.at(cover, first, 1)
    np.add.at(cover, end + 1, -1)
    touched = np.cumsum(cover[:n]) > 0
    if (touched & cache["bad"]).any():
        try:
            _check(o[touched], h[touched], l[touched], c[touched], v[touched])
        except ValueError as e:
            raise ValueError(f"invalid bar inside a requested window: {e} (among touched rows)") from None
    idx = end[:, None] + np.arange(-window + 1, 1)[None, :]  # [K, window] rows of the feature bars
    cols = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in names:
            key = "log1p_volume" if name == "vol_z" else name
            if key not in cache:
                if name == "vol_z":
                    cache[key] = np.log1p(v)
                else:
                    per = np.full(n, np.nan)
                    per[CATALOGUE[name][0]:] = _per_bar(name, o, h, l, c, CATALOGUE[name][0])
                    cache[key] = per
            cols.append(_vol_z(cache[key][idx]) if name == "vol_z" else cache[key][idx])
    return np.stack(cols, axis=2).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Print botai signal-model feature windows as JSON.")
    ap.add_argument("--csv", required=True, help="bar CSV (.csv or .csv.gz)")
    ap.add_argument("--end-index", type=int, required=True,
                    help="0-based data row (header excluded) of the last bar of the first window")
    ap.add_argument("--count", type=int, default=1, help="number of consecutive windows (default 1)")
    ap.add_argument("--window", type=int, default=N_BARS, help=f"bars per window (default {N_BARS})")
    ap.add_argument("--features", default=",".join(CHANNELS),
                    help=f"comma-separated names from the catalogue (default {','.join(CHANNELS)})")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be >= 1")
    names = tuple(args.features.split(","))
    try:
        raw = args.window + lookback(names)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    bars = load_csv(args.csv)
    n = len(bars["close"])
    first, last = args.end_index, args.end_index + args.count - 1
    if first < raw - 1 or last >= n:
        print(f"error: windows need {raw - 1} <= end index and end index + count - 1 < {n} rows",
              file=sys.stderr)
        return 2
    wins = []
    for i in range(first, last + 1):
        sl = slice(i - raw + 1, i + 1)
        try:
            w = window_features(bars["open"][sl], bars["high"][sl], bars["low"][sl],
                                bars["close"][sl], bars["volume"][sl], args.window, names)
        except ValueError as e:
            print(f"error: window ending at row {i}: {e}", file=sys.stderr)
            return 1
        wins.append(w.tolist())  # float32 -> exact Python floats
    json.dump({"n_bars": args.window, "channels": len(names), "windows": wins}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
