#!/usr/bin/env bash
# make fuzz: sqlsmith (Debian's package) sends random queries built from the
# catalog — botai's functions, views and tables among them — to a database
# with the extension, as botai_service over TCP, for a bounded number of
# queries. Fails if any backend crashed: the postmaster's start time changes
# on a crash-restart, and the server log says "terminated by signal".
#
#   scripts/sqlsmith.sh DATABASE QUERIES      (SQLSMITH_SEED, default 1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DB=${1:?database}
QUERIES=${2:?number of queries}
SEED=${SQLSMITH_SEED:-1}
PORT=${BOTAI_PGPORT:-5555}
LOG=/var/log/postgresql/postgresql-15-botai.log

"$ROOT/scripts/deps.sh" sqlsmith
password=$(grep '^PGPASSWORD=' "$ROOT/.env" | tail -n 1 | cut -d= -f2-)
[ -n "$password" ] || { echo "sqlsmith: no password for botai_service in .env (make migrate writes it)" >&2; exit 1; }
admin() { psql -X -q -At -h /var/run/postgresql -p "$PORT" -d "$DB" -c "$1"; }

before=$(admin "SELECT pg_postmaster_start_time()")
log_lines=$(wc -l < "$LOG")
echo "sqlsmith: $QUERIES queries against $DB as botai_service (seed $SEED)"
out=$(mktemp)
# sqlsmith exits non-zero when it stops on a lost connection.
set +e
sqlsmith --target="host=127.0.0.1 port=$PORT dbname=$DB user=botai_service password=$password" \
    --max-queries="$QUERIES" --seed="$SEED" --verbose >"$out" 2>&1
status=$?
set -e
tail -n 40 "$out"
after=$(admin "SELECT pg_postmaster_start_time()")
crashes=$(tail -n +"$((log_lines + 1))" "$LOG" | grep -c "terminated by signal" || true)
echo "sqlsmith: exit $status; postmaster started $before before, $after after; crash lines in the server log: $crashes"
if [ "$before" != "$after" ] || [ "$crashes" != 0 ]; then
    echo "sqlsmith: a backend crashed; the log lines:" >&2
    tail -n +"$((log_lines + 1))" "$LOG" | grep -B2 -A5 "terminated by signal" | head -n 60 >&2
    exit 1
fi
echo "sqlsmith: no backend crashed"
