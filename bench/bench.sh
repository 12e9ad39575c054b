#!/usr/bin/env bash
# `make bench`: botai against plain baselines, side by side in one run, same
# clients and duration. Speed is only ever reported as a ratio to a baseline
# measured in the same run on the same machine.
#
#   bench/bench.sh [signals|ratelimit|balances|pipeline|inference ...]
#                                    (default: every section)
#
# Environment: BENCH_CLIENTS (8), BENCH_SECONDS (6), BENCH_ROUNDS (5: each
# comparison runs ROUNDS times interleaved; medians are reported).
set -euo pipefail
cd "$(dirname "$0")"

CLIENTS=${BENCH_CLIENTS:-8}
SECONDS_PER_RUN=${BENCH_SECONDS:-6}
ROUNDS=${BENCH_ROUNDS:-5}
export PGHOST=${PGHOST:-/var/run/postgresql} PGPORT=${PGPORT:-5555} PGDATABASE=${PGDATABASE:-botai_bench}
export PGUSER=${PGUSER:-$(id -un)}
RESULTS=../target/bench-results.txt
mkdir -p ../target

psql_q() { psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" "$@"; }

# tps of one pgbench run of a script (prepared statements, 2 threads)
pgbench_tps() {
    local script=$1 clients=${2:-$CLIENTS}
    pgbench -n -M prepared -c "$clients" -j 2 -T "$SECONDS_PER_RUN" -f "$script" 2>&1 |
        awk '/^tps = / {print $3}' | tail -n 1
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# compare NAME GOAL OURS_SCRIPT BASELINE_SCRIPT=LABEL [BASELINE_SCRIPT=LABEL ...]
# Each round runs every baseline and then botai back to back; the ratio of a
# round pairs runs made seconds apart, so the reported figure is the median
# of the per-round ratios (robust to the machine's drift), beside the median
# tps of each side.
compare() {
    local name=$1 goal=$2 ours=$3; shift 3
    local -a scripts=() labels=()
    for spec in "$@"; do scripts+=("${spec%%=*}"); labels+=("${spec#*=}"); done
    echo "== $name: $CLIENTS clients, ${SECONDS_PER_RUN}s per run, $ROUNDS rounds interleaved"
    local -a ours_tps=() base_tps=() ratios=()
    for r in $(seq 1 "$ROUNDS"); do
        local line="   round $r:"; local -a round_base=()
        for i in "${!scripts[@]}"; do
            local t; t=$(pgbench_tps "${scripts[$i]}")
            round_base+=("$t"); base_tps+=("$i $t"); line+=" ${labels[$i]} $t tps |"
        done
        local o; o=$(pgbench_tps "$ours")
        ours_tps+=("$o")
        for i in "${!scripts[@]}"; do
            ratios+=("$i $(awk -v a="$o" -v b="${round_base[$i]}" 'BEGIN {printf "%.3f", a / b}')")
        done
        echo "$line botai $o tps"
    done
    local om; om=$(printf '%s\n' "${ours_tps[@]}" | median)
    printf '   %-40s %10.0f tps (median)\n' "botai" "$om" | tee -a "$RESULTS"
    for i in "${!scripts[@]}"; do
        local bm rm
        bm=$(printf '%s\n' "${base_tps[@]}" | awk -v i="$i" '$1 == i {print $2}' | median)
        rm=$(printf '%s\n' "${ratios[@]}" | awk -v i="$i" '$1 == i {print $2}' | median)
        printf '   %-40s %10.0f tps (median)   botai/baseline = %.2f (median of per-round ratios)\n' \
            "${labels[$i]}" "$bm" "$rm" | tee -a "$RESULTS"
    done
    echo "   goal: $goal" | tee -a "$RESULTS"
}

section_signals() {
    psql_q -f sql/setup.sql
    echo "== signals: botai_register_signal with fresh signals vs a plain upsert into a table with a unique key" | tee -a "$RESULTS"
    compare "signals" "none set (issue 2 asks for the figures)" sql/signal_register.sql \
        "sql/signal_baseline.sql=INSERT ON CONFLICT DO NOTHING" \
        "sql/signal_baseline_notify.sql=same + pg_notify in the txn"
    psql_q -c "DELETE FROM botai.signals WHERE strategy = 'bench'" -c "TRUNCATE botai_bench.signals"
}

section_ratelimit() {
    psql_q -f sql/setup.sql >/dev/null
    # Every window is lengthened by botai.rate_limit_send_jitter (200 ms): at
    # ~80,000 bookings a second one key's window would then hold more than
    # its 8,192 entries. The cost of a booking is measured without it (a
    # server setting: set for the run, reset after).
    psql_q -c "ALTER SYSTEM SET botai.rate_limit_send_jitter = 0" -c "SELECT pg_reload_conf()" >/dev/null
    trap 'psql_q -c "ALTER SYSTEM RESET botai.rate_limit_send_jitter" -c "SELECT pg_reload_conf()" >/dev/null' EXIT
    sleep 1
    echo "== rate limits: botai_rate_acquire on a key that never delays vs SELECT 1 (send jitter 0)" | tee -a "$RESULTS"
    compare "rate_acquire" ">= 0.70" sql/rate_acquire.sql "sql/select1.sql=SELECT 1"
    redis_compare
    psql_q -c "ALTER SYSTEM RESET botai.rate_limit_send_jitter" -c "SELECT pg_reload_conf()" >/dev/null
    trap - EXIT
}

# The original design's limiter (Redis sorted set + Lua) at the same client
# count, printed beside botai_rate_acquire.
redis_compare() {
    local port=6390 dir sha ops
    command -v redis-server >/dev/null || ../scripts/deps.sh redis-server redis-tools
    dir=$(mktemp -d)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --dir "$dir" --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat redis_sliding_window.lua)")
    local requests=$(( SECONDS_PER_RUN * 20000 ))
    ops=$(redis-benchmark -p "$port" -c "$CLIENTS" -n "$requests" -q \
            EVALSHA "$sha" 1 bench:default 100000 1000000000 2>/dev/null |
          grep -oE '[0-9]+(\.[0-9]+)? requests per second' | awk '{print $1}' | tail -n 1)
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$dir"
    printf '   %-40s %10.0f ops/s (redis-benchmark, %s clients, ZREMRANGEBYSCORE+ZCARD+ZADD in Lua)\n' \
        "Redis sorted-set limiter" "$ops" "$CLIENTS" | tee -a "$RESULTS"
}

section_balances() {
    psql_q -f sql/setup.sql >/dev/null
    echo "== balances: reserve + release on one hot balance vs two UPDATEs of one hot row in one transaction" | tee -a "$RESULTS"
    compare "reserve_release" ">= 0.80" sql/reserve_release.sql "sql/two_updates.sql=2 x UPDATE hot row"
    psql_q -c "DELETE FROM botai.reservations WHERE exchange = 'bench'"
}

# Signals through the whole trading pipeline (issue 6) beside a plain-SQL
# pipeline; the in-process engine and paper exchange of the daemon.
section_pipeline() {
    cargo build --release --quiet -p botai-daemon --example pipeline_bench
    # The daemon's defaults name files relative to the repository root.
    (cd .. && target/release/examples/pipeline_bench) | tee -a "$RESULTS"
}

# The signal model's inference, Rust/ort against Python/onnxruntime (issue 5).
section_inference() {
    ./inference.sh | tee -a "$RESULTS"
}

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(signals ratelimit balances pipeline inference)
echo "botai benchmarks, $(date -u +%FT%TZ), $(nproc) cores; PostgreSQL $(psql -XAtc 'SHOW server_version')" | tee -a "$RESULTS"
for s in "${sections[@]}"; do "section_$s"; done
