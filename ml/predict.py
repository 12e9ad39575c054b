#!/usr/bin/env python3
"""Run the exported signal model with onnxruntime (numpy + onnxruntime only).

    python3 ml/predict.py --model models/patchtst.onnx --input FILE.json

FILE.json: {"features": [[[...C floats...] * N] * B]}  (shape [B, N, C], e.g. from ml/features.py,
whose "windows" list can be passed as "features"). Use --input - to read standard input.
Prints {"returns": [[r5, r15, r60] * B]}: predicted log returns at 5, 15 and 60 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort


def load_session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim == 2:  # a single window [N, C]
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"features must have shape [batch, N, C], got {x.shape}")
    inp = sess.get_inputs()[0]
    n, c = inp.shape[1], inp.shape[2]
    if x.shape[1:] != (n, c):
        raise ValueError(f"features must have shape [batch, {n}, {c}], got {list(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError("features contain non-finite values")
    return sess.run(["returns"], {"features": x})[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Predict 5/15/60-minute log returns with the ONNX signal model.")
    ap.add_argument("--model", required=True, help="path to patchtst.onnx")
    ap.add_argument("--input", required=True, help='JSON file {"features": [[[...]]]} or - for stdin')
    args = ap.parse_args(argv)
    if args.input == "-":
        doc = json.load(sys.stdin)
    else:
        with open(args.input) as f:
            doc = json.load(f)
    if "features" not in doc:
        print('error: input JSON needs a "features" key', file=sys.stderr)
        return 2
    try:
        out = predict(load_session(args.model), doc["features"])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    json.dump({"returns": out.astype(np.float32).tolist()}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
