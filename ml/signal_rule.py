#!/usr/bin/env python3
"""The engine's trading rule, simulated on predictions: what ml/evaluate.py judges every
predictor with and what ml/train.py chooses the shipped model's cost margin with.

A predictor emits a signal on a bar only when |predicted return at the trade horizon|
exceeds the round trip cost, 2 * (fee + slippage), plus a margin. The margin is chosen on
a validation slice among MARGINS: the one whose simulated net result there is best; when
none makes money the predictor emits nothing (margin None, threshold inf). The daemon
applies the same rule (daemon/src/ml/manager.rs, SignalRule) with the margin from the
model's manifest.

A signal is known at the close of the bar that produced it, so its order fills one bar
later (FILL_LAG): the simulated position first earns the return of the bar after the next
close. Costs come from one table, ml/costs.json (per venue and product: taker and maker
fees, slippage); the engine's orders are market orders, so a side costs taker + slippage.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

MARGINS = (0.0, 0.0005, 0.001, 0.002, 0.004, 0.008)  # above the round trip cost
DEFAULT_VENUE = "binance_usdm"  # the venue a model's manifest is costed for unless told otherwise
FILL_LAG = 1  # bars between the bar whose close produced a signal and the close its order fills at
COSTS_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "costs.json")


def venue_costs(venue: str) -> dict:
    """The costs of a market order on `venue` (a key of ml/costs.json's venues)."""
    with open(COSTS_TABLE) as f:
        table = json.load(f)
    if venue not in table["venues"]:
        raise KeyError(f"venue {venue!r} is not in {COSTS_TABLE} (known: {sorted(table['venues'])})")
    v = table["venues"][venue]
    return {"venue": venue, **costs_of(v["taker"], v["slippage"])}


def evaluated_venues() -> dict:
    """{"spot": venue, "perp": venue}: the venues the evaluation costs each product at."""
    with open(COSTS_TABLE) as f:
        return json.load(f)["evaluated"]


def costs_of(fee: float, slippage: float) -> dict:
    return {"fee": fee, "slippage": slippage, "per_side": fee + slippage, "round_trip": 2 * (fee + slippage)}


def trade(pred, can_signal, close, threshold, per_side, hold, lag=FILL_LAG):
    """The engine's rule over one contiguous stretch of bars (index 0 .. n-1).

    Signal on bar i: +1 if pred > threshold, -1 if pred < -threshold (only where a feature
    window exists). It fills `lag` bars later: the position over the return from close j
    to close j+1 is the direction of the last signal at or before j - lag if it is less
    than `hold` bars old, else flat; spot cannot be short (a SELL closes). Everything is
    closed at the last bar."""
    sig = np.zeros(len(pred), dtype=np.int8)
    if math.isfinite(threshold):
        sig[can_signal & (pred > threshold)] = 1
        sig[can_signal & (pred < -threshold)] = -1
    n = len(sig)
    signals = int((sig != 0).sum())
    if lag:
        sig = np.r_[np.zeros(min(lag, n), dtype=np.int8), sig[: max(n - lag, 0)]]
    last = np.maximum.accumulate(np.where(sig != 0, np.arange(n), -1))[:-1]
    age = np.arange(n - 1) - last
    perp = np.where((last >= 0) & (age < hold), sig[np.maximum(last, 0)], 0).astype(np.float64)
    r = close[1:] / close[:-1] - 1.0
    out = {"signals": signals}
    for venue, pos in (("spot", np.maximum(perp, 0.0)), ("perp", perp)):
        if len(pos) == 0:
            out[venue] = {"gross": 0.0, "cost": 0.0, "net": 0.0, "round_trips": 0, "exposure": 0.0, "turnover": 0.0}
            continue
        turnover = abs(pos[0]) + np.abs(np.diff(pos)).sum() + abs(pos[-1])
        gross = float(pos @ r)
        cost = float(turnover * per_side)
        out[venue] = {"gross": gross, "cost": cost, "net": gross - cost,
                      "round_trips": int(round(turnover / 2)), "exposure": float((pos != 0).mean()),
                      "turnover": float(turnover)}
    return out


def choose_threshold(pred, can_signal, close, costs, hold, venue):
    """The threshold the validation slice pays best: round trip + margin; inf when none pays."""
    rt = 2 * costs["per_side"]
    best = (0.0, math.inf, None)
    tried = []
    for m in MARGINS:
        res = trade(pred, can_signal, close, rt + m, costs["per_side"], hold)[venue]
        tried.append({"margin": m, "net": round(res["net"], 6), "round_trips": res["round_trips"]})
        if res["net"] > best[0]:
            best = (res["net"], rt + m, m)
    return best[1], best[2], tried
