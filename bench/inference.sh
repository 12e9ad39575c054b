#!/usr/bin/env bash
# Signal-model batch inference latency (issue 5): Rust/ort against
# Python/onnxruntime on the same model and the same real windows, one intra-op
# thread each, side by side in one run. Each round runs Rust then Python
# (batch sizes 1, 8, 32 in each), so the machine's drift affects both; the
# table shows the median over rounds of each side's median and p90, and the
# median of the per-round ratios Python/Rust (> 1: Rust is faster).
#
#   bench/inference.sh
#
# Environment: BENCH_ROUNDS (5), BENCH_ITERATIONS (500 timed calls per batch
# size and round), BENCH_WARMUP (50), BENCH_BATCHES (1,8,32).
# Needs `make onnxruntime`. Exits non-zero if either side fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROUNDS=${BENCH_ROUNDS:-5}
ITERATIONS=${BENCH_ITERATIONS:-500}
WARMUP=${BENCH_WARMUP:-50}
BATCHES=${BENCH_BATCHES:-1,8,32}
PYTHON=$ROOT/.cache/venv/bin/python
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$ROOT/.cache/onnxruntime/libonnxruntime.so}

for need in "$PYTHON" "$ORT_DYLIB_PATH"; do
    [ -e "$need" ] || { echo "inference bench: $need not found: run \`make onnxruntime\` first" >&2; exit 1; }
done

echo "inference bench: building the Rust side (release)"
cargo build --release --quiet -p botai-daemon --example inference_bench
RUST_BENCH=$ROOT/target/release/examples/inference_bench

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
args=(--batches "$BATCHES" --iterations "$ITERATIONS" --warmup "$WARMUP")
for round in $(seq 1 "$ROUNDS"); do
    echo "inference bench: round $round/$ROUNDS (Rust, then Python; $ITERATIONS timed calls per batch size)"
    "$RUST_BENCH" "${args[@]}" | sed "s/^{/{\"round\": $round, /" >>"$RESULTS"
    "$PYTHON" bench/inference.py "${args[@]}" | sed "s/^{/{\"round\": $round, /" >>"$RESULTS"
done

"$PYTHON" - "$RESULTS" <<'EOF'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {}
for r in rows:
    by.setdefault((r["batch"], r["impl"]), {})[r["round"]] = r
batches = sorted({r["batch"] for r in rows})
failed = False
print()
print("Signal-model inference latency, microseconds per predict call (1 intra-op thread each)")
print(f"{'batch':>5}  {'Rust median':>11}  {'Python median':>13}  {'Python/Rust':>11}  {'Rust p90':>9}  {'Python p90':>10}")
for b in batches:
    rust, py = by.get((b, "rust-ort"), {}), by.get((b, "python-onnxruntime"), {})
    rounds = sorted(set(rust) & set(py))
    if not rounds:
        print(f"batch {b}: missing results", file=sys.stderr)
        failed = True
        continue
    for rd in rounds:  # same model, same windows: the outputs must agree
        a, p = rust[rd]["checksum_15m"], py[rd]["checksum_15m"]
        if abs(a - p) > 1e-5 * max(1, b):
            print(f"batch {b}, round {rd}: outputs differ (Rust {a} vs Python {p})", file=sys.stderr)
            failed = True
    med = lambda side, key: statistics.median(side[rd][key] for rd in rounds)
    ratio = statistics.median(py[rd]["median_us"] / rust[rd]["median_us"] for rd in rounds)
    print(f"{b:>5}  {med(rust, 'median_us'):>11.1f}  {med(py, 'median_us'):>13.1f}  {ratio:>10.2f}x"
          f"  {med(rust, 'p90_us'):>9.1f}  {med(py, 'p90_us'):>10.1f}")
print(f"({len(rounds)} rounds; medians over rounds; ratio = median of per-round Python/Rust medians)")
sys.exit(1 if failed else 0)
EOF
