#!/usr/bin/env python3
"""The botai model contract: an ONNX file and its manifest `models/<name>.json`.

    python3 ml/contract.py write --onnx models/patchtst.onnx --window 120 \
        --features ret,range,clv,vol_z --horizons 5,15,60 --trade-horizon 15
    python3 ml/contract.py check models/patchtst.json

The manifest (see ml/MODEL_CONTRACT.md) names the ONNX file and its SHA-256, the bar
interval, the window length, the features (from the catalogue of ml/FEATURES.md, computed
by ml/features.py and, identically, by the daemon), the volume unit they assume, the
outputs and their horizons, the horizon the trading rule uses, the period of the data it
was trained on (`training`: a replay or an evaluation overlapping it is in-sample), the
venue and costs its signal rule was tuned for, the margin its own validation chose
(`validation_margin`) and the margin the daemon applies (`margin`: null, so the model emits
nothing, unless ml/evaluate.py's selection rule found an edge out of sample). The daemon
refuses a model whose manifest and ONNX signature disagree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import features as feat  # noqa: E402
from signal_rule import DEFAULT_VENUE, venue_costs  # noqa: E402

CONTRACT = "botai-model/1"


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest(onnx_file: str, name: str, window: int, features: list[str], horizons: list[int],
             trade_horizon: int, costs: dict | None = None, validation_margin: float | None = None,
             training: dict | None = None, description: str = "", input_name: str = "features",
             output_name: str = "returns") -> dict:
    unknown = [f for f in features if f not in feat.CATALOGUE]
    if unknown:
        raise ValueError(f"features not in the catalogue: {unknown} (known: {sorted(feat.CATALOGUE)})")
    if trade_horizon not in horizons:
        raise ValueError(f"trade horizon {trade_horizon} is not one of the outputs {horizons}")
    return {
        "contract": CONTRACT,
        "name": name,
        "description": description,
        "onnx": os.path.basename(onnx_file),
        "sha256": sha256(onnx_file),
        "bar_interval": "1m",
        "window": window,
        "features": list(features),
        "volume_unit": "quote",
        "input": input_name,
        "output": output_name,
        "horizons_minutes": list(horizons),
        "trade_horizon_minutes": trade_horizon,
        "training": training,
        "signal": {
            "costs": costs or default_costs(),
            "validation_margin": validation_margin,
            "margin": None,
            "chosen_by": None,
        },
    }


def default_costs() -> dict:
    c = venue_costs(DEFAULT_VENUE)
    return {"venue": c["venue"], "fee": c["fee"], "slippage": c["slippage"]}


def write(path: str, doc: dict) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write or check a botai model manifest.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--onnx", required=True)
    w.add_argument("--name")
    w.add_argument("--window", type=int, required=True)
    w.add_argument("--features", required=True)
    w.add_argument("--horizons", required=True)
    w.add_argument("--trade-horizon", type=int, required=True)
    w.add_argument("--venue", default=DEFAULT_VENUE, help="a venue of ml/costs.json (default %(default)s)")
    w.add_argument("--validation-margin", type=float, default=None)
    w.add_argument("--trained-on", help="DATA,FROM,TO: the training data and its period (RFC 3339, end exclusive)")
    w.add_argument("--description", default="")
    c = sub.add_parser("check")
    c.add_argument("manifest")
    args = ap.parse_args(argv)
    if args.cmd == "write":
        name = args.name or os.path.splitext(os.path.basename(args.onnx))[0]
        c = venue_costs(args.venue)
        training = None
        if args.trained_on:
            data, start, end = args.trained_on.split(",")
            training = {"data": data, "from": start, "to": end}
        doc = manifest(args.onnx, name, args.window, args.features.split(","),
                       [int(h) for h in args.horizons.split(",")], args.trade_horizon,
                       {"venue": c["venue"], "fee": c["fee"], "slippage": c["slippage"]},
                       args.validation_margin, training, args.description)
        out = os.path.join(os.path.dirname(args.onnx), f"{name}.json")
        write(out, doc)
        print(out)
        return 0
    with open(args.manifest) as f:
        doc = json.load(f)
    onnx_path = os.path.join(os.path.dirname(args.manifest), doc["onnx"])
    if sha256(onnx_path) != doc["sha256"]:
        print(f"error: {onnx_path} does not match the manifest's sha256", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
