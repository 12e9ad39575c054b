#!/usr/bin/env python3
"""Batch inference latency of the signal model through onnxruntime in Python (issue 5).

The Python side of bench/inference.sh; the Rust side is daemon/examples/inference_bench.rs,
which takes the same windows and prints the same JSON lines:

    .cache/venv/bin/python bench/inference.py --iterations 500

The session is ml/predict.py's (1 intra-op and 1 inter-op thread, CPU provider). Windows come
from ml/features.py: a pool of POOL windows whose newest bars are the rows
120 + k * (n - 121) // (POOL - 1), k = 0..POOL; a batch of b takes windows 0..b-1 (cycling).
Timed: sess.run() on a float32 array built beforehand, i.e. the runtime call alone; the Rust
timing also includes its input checks and output conversion, so the ratio does not flatter Rust.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "ml"))

import features  # noqa: E402  (ml/features.py)
import predict  # noqa: E402  (ml/predict.py)

POOL = 32


def nearest_rank(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (same definition as the Rust side)."""
    rank = math.ceil(p * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,8,32", help="batch sizes, comma-separated")
    ap.add_argument("--warmup", type=int, default=50, help="untimed calls before timing each batch size")
    ap.add_argument("--iterations", type=int, default=500, help="timed calls per batch size")
    ap.add_argument("--model", default=os.path.join(ROOT, "models/patchtst.onnx"))
    ap.add_argument("--bars", default=os.path.join(ROOT, "data/market/btc-perp-1m-2022-01.csv.gz"))
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.iterations <= 0 or any(b <= 0 for b in batches):
        ap.error("iterations and batch sizes must be > 0")

    sess = predict.load_session(args.model)
    bars = features.load_csv(args.bars)
    n = len(bars["close"])
    raw = features.RAW_BARS_PER_WINDOW
    pool = []
    for k in range(POOL):
        end = raw - 1 + k * (n - raw) // (POOL - 1)
        sl = slice(end - features.N_BARS, end + 1)
        pool.append(features.window_features(*(bars[c][sl] for c in ("open", "high", "low", "close", "volume"))))

    for batch in batches:
        x = np.ascontiguousarray(np.stack([pool[k % POOL] for k in range(batch)]), dtype=np.float32)
        feed = {"features": x}
        for _ in range(args.warmup):
            sess.run(["returns"], feed)
        micros = []
        checksum = 0.0
        for _ in range(args.iterations):
            start = time.perf_counter_ns()
            out = sess.run(["returns"], feed)[0]
            micros.append((time.perf_counter_ns() - start) / 1e3)
            checksum = float(sum(float(v) for v in out[:, 1]))
        if not np.isfinite(out).all():
            print("error: non-finite model output", file=sys.stderr)
            return 1
        micros.sort()
        print(json.dumps({
            "impl": "python-onnxruntime",
            "batch": batch,
            "iterations": args.iterations,
            "median_us": nearest_rank(micros, 0.5),
            "p90_us": nearest_rank(micros, 0.9),
            "checksum_15m": checksum,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
