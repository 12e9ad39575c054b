#!/usr/bin/env bash
# `make bench`: botai against plain baselines, side by side in one run, same
# clients and duration. Speed is only ever reported as a ratio to a baseline
# measured in the same run on the same machine.
#
#   bench/bench.sh [signals ...]     (default: every section)
#
# Environment: BENCH_CLIENTS (8), BENCH_SECONDS (15), BENCH_ROUNDS (2:
# each pair runs ROUNDS times interleaved; the median tps is reported).
set -euo pipefail
cd "$(dirname "$0")"

CLIENTS=${BENCH_CLIENTS:-8}
SECONDS_PER_RUN=${BENCH_SECONDS:-15}
ROUNDS=${BENCH_ROUNDS:-2}
export PGHOST=${PGHOST:-/var/run/postgresql} PGPORT=${PGPORT:-5555} PGDATABASE=${PGDATABASE:-bot_trading_v3}
export PGUSER=${PGUSER:-$(id -un)}
RESULTS=../target/bench-results.txt
mkdir -p ../target

psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# tps of one pgbench run of a script (prepared statements, 2 threads)
pgbench_tps() {
    local script=$1 clients=${2:-$CLIENTS}
    pgbench -n -M prepared -c "$clients" -j 2 -T "$SECONDS_PER_RUN" -f "$script" 2>&1 |
        awk '/^tps = / {print $3}' | tail -n 1
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# compare NAME GOAL OURS_SCRIPT BASELINE_SCRIPT=LABEL [BASELINE_SCRIPT=LABEL ...]
# Each round runs every baseline and then botai; medians over the rounds.
compare() {
    local name=$1 goal=$2 ours=$3; shift 3
    local -a scripts=() labels=() tps=()
    for spec in "$@"; do scripts+=("${spec%%=*}"); labels+=("${spec#*=}"); done
    echo "== $name: $CLIENTS clients, ${SECONDS_PER_RUN}s per run, $ROUNDS rounds interleaved"
    local -a ours_tps=() base_tps=()
    for r in $(seq 1 "$ROUNDS"); do
        local line="   round $r:"
        for i in "${!scripts[@]}"; do
            local t; t=$(pgbench_tps "${scripts[$i]}")
            base_tps+=("$i $t"); line+=" ${labels[$i]} $t tps |"
        done
        ours_tps+=("$(pgbench_tps "$ours")")
        echo "$line botai ${ours_tps[-1]} tps"
    done
    local om; om=$(printf '%s\n' "${ours_tps[@]}" | median)
    printf '   %-40s %10.0f tps\n' "botai" "$om" | tee -a "$RESULTS"
    for i in "${!scripts[@]}"; do
        local bm ratio
        bm=$(printf '%s\n' "${base_tps[@]}" | awk -v i="$i" '$1 == i {print $2}' | median)
        ratio=$(awk -v a="$om" -v b="$bm" 'BEGIN {printf "%.2f", a / b}')
        printf '   %-40s %10.0f tps   botai/baseline = %s\n' "${labels[$i]}" "$bm" "$ratio" | tee -a "$RESULTS"
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

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(signals)
echo "botai benchmarks, $(date -u +%FT%TZ), $(nproc) cores; PostgreSQL $(psql -XAtc 'SHOW server_version')" | tee -a "$RESULTS"
for s in "${sections[@]}"; do "section_$s"; done
