#!/usr/bin/env bash
# The SQL contract as a DBA reads it: each pg_extension/tests/sql/NAME.sql is
# run by psql in a database made fresh for it (roles, the extension and
# its grants exactly as `botai db migrate` makes them, the monitor off so
# nothing changes underneath), and what psql prints — every statement (-a),
# every result, every refusal with its SQLSTATE (VERBOSITY verbose) — is
# compared with pg_extension/tests/expected/NAME.out. LOCATION lines (the
# library's source positions) are left out; everything else must match.
#
#   scripts/sql-golden.sh             compare; fails on any difference
#   scripts/sql-golden.sh --update    write what psql printed as expected
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
update=false
[ "${1:-}" = "--update" ] && update=true
DB=botai_golden
export PGHOST=${PGHOST:-/var/run/postgresql} PGPORT=${PGPORT:-5555} PGUSER=${PGUSER:-$(id -un)} PGDATABASE=$DB
fresh() {
    scripts/cluster.sh reset "$DB" >/dev/null
    target/release/botai db migrate >/dev/null
    psql -X -q -c "ALTER DATABASE $DB SET botai.monitor_enabled = off" >/dev/null
}
out=target/golden
mkdir -p "$out"
failed=()
for sql in pg_extension/tests/sql/*.sql; do
    name=$(basename "$sql" .sql)
    fresh
    psql -X -a -q -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -P pager=off -f "$sql" >"$out/$name.out" 2>&1 || true
    sed -i '/^LOCATION:/d' "$out/$name.out"
    expected=pg_extension/tests/expected/$name.out
    if $update; then
        cp "$out/$name.out" "$expected"
        echo "sql-golden: wrote $expected"
    elif ! diff -u "$expected" "$out/$name.out"; then
        failed+=("$name")
    else
        echo "sql-golden: $name ok"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "sql-golden: output differs from pg_extension/tests/expected for: ${failed[*]}" >&2
    echo "sql-golden: if the change is meant, scripts/sql-golden.sh --update and review the diff" >&2
    exit 1
fi
