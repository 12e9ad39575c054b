#!/usr/bin/env bash
# The project's own PostgreSQL 15 cluster on port 5555, managed with Debian's
# pg_createcluster / pg_ctlcluster so the server runs as `postgres`, never
# as root.
#
#   cluster.sh ensure       create the cluster if missing, configure, start
#   cluster.sh install DIR  install a packaged extension (cargo pgrx package
#                           output); stops the server around the copy when
#                           botai.so changes (replacing a preloaded library
#                           under a running server crashes it)
#   cluster.sh start|stop|status
#   cluster.sh credentials  passwords for botai_service (.env) and botai_operator
#                           (operator.env), and the API token (.env)
#   cluster.sh reset [DB]   drop and recreate a database (default bot_trading_v3; all its data)
set -euo pipefail

VERSION=15
NAME=botai
PORT=${BOTAI_PGPORT:-5555}
DB=${BOTAI_DB:-bot_trading_v3}
CONF=/etc/postgresql/$VERSION/$NAME
SOCKET_DIR=/var/run/postgresql
DEV_ROLE=$(id -un)
ROOT=$(cd "$(dirname "$0")/.." && pwd)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "cluster: $*"; }
psql_su() { as_root runuser -u postgres -- env -u PGUSER -u PGDATABASE -u PGPASSWORD psql -X -q -v ON_ERROR_STOP=1 -U postgres -h "$SOCKET_DIR" -p "$PORT" "$@"; }

running() { pg_lsclusters -h 2>/dev/null | awk -v n="$NAME" -v v="$VERSION" '$1==v && $2==n {print $4}' | grep -q online; }
exists() { pg_lsclusters -h 2>/dev/null | awk -v n="$NAME" -v v="$VERSION" '$1==v && $2==n' | grep -q .; }

start() {
    if running; then return; fi
    say "starting $VERSION/$NAME on port $PORT"
    as_root pg_ctlcluster "$VERSION" "$NAME" start
    for _ in $(seq 1 50); do pg_isready -q -h "$SOCKET_DIR" -p "$PORT" && return; sleep 0.2; done
    say "the server did not come up; last log lines:"; as_root tail -n 30 "/var/log/postgresql/postgresql-$VERSION-$NAME.log" >&2; exit 1
}

stop() {
    if running; then say "stopping $VERSION/$NAME"; as_root pg_ctlcluster "$VERSION" "$NAME" stop -m fast; fi
}

configure() {
    as_root tee "$CONF/conf.d/00-botai.conf" >/dev/null <<CONF
# Written by scripts/cluster.sh; local changes belong in 99-local.conf.
listen_addresses = 'localhost'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
shared_preload_libraries = 'botai'
max_connections = 300
max_worker_processes = 16
# Coordination statements run in microseconds: JIT compilation never pays
# off and, once a table's statistics make a plan look expensive, costs
# milliseconds on every execution.
jit = off
# botai's queue-like tables (reservations, orders) are vacuumed after a fixed
# number of dead rows; look for such tables more often than every minute.
autovacuum_naptime = 10s
password_encryption = 'scram-sha-256'
log_line_prefix = '%m [%p] %q%u@%d '
botai.monitor_interval = 5
CONF
    # Loopback only; peer on the socket, scram-sha-256 over TCP. botai's
    # roles are no OS users (peer could never admit them): their password,
    # on the socket too.
    as_root tee "$CONF/pg_hba.conf" >/dev/null <<'HBA'
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       botai_service,botai_operator,botai_ml,botai_engine,botai_alerter,botai_reader  scram-sha-256
local   all       all                  peer
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
HBA
    as_root chown postgres:postgres "$CONF/pg_hba.conf" "$CONF/conf.d/00-botai.conf"
}

ensure() {
    if ! exists; then
        say "creating cluster $VERSION/$NAME (port $PORT)"
        as_root pg_createcluster "$VERSION" "$NAME" --port "$PORT" --start-conf manual \
            -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    fi
    configure
    if running; then as_root pg_ctlcluster "$VERSION" "$NAME" reload; else start; fi
    # A changed setting that only a restart applies (max_worker_processes…).
    sleep 0.5
    if [ "$(psql_su -d postgres -XAtc 'SELECT count(*) FROM pg_settings WHERE pending_restart')" != 0 ]; then
        say "restarting the cluster: a changed setting needs it"
        as_root pg_ctlcluster "$VERSION" "$NAME" restart
    fi
    psql_su -d postgres <<SQL
SELECT format('CREATE ROLE %I SUPERUSER LOGIN', '$DEV_ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DEV_ROLE') \gexec
SELECT format('CREATE DATABASE %I', '$DB')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
SQL
    say "ready: psql -h $SOCKET_DIR -p $PORT -d $DB"
}

# The released SQL of the extension is frozen in pg_extension/sql/: every
# release's install script and every upgrade script between releases. The
# script pgrx generates for the current version must equal the frozen one
# (comment lines aside: they carry source line numbers); a change to a
# released version's SQL is refused here, before anything is installed.
# A script's statements as a sorted list of lines: pgrx's comments carry
# source line numbers and its ordering of independent items is not stable.
sql_lines() { grep -v '^--' "$1" | grep -v '^[[:space:]]*$' | sort; }

check_frozen_sql() {
    local pkg=$1 generated frozen version control
    control=$(find "$pkg" -name botai.control | head -n 1)
    version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$control")
    generated=$(dirname "$control")/botai--$version.sql
    [ -f "$generated" ] || { say "no $generated (run cargo pgrx package first)"; exit 1; }
    frozen=$ROOT/pg_extension/sql/botai--$version.sql
    if [ ! -f "$frozen" ]; then
        say "botai $version is not released yet (no $frozen; make sql-release freezes it)"
        return
    fi
    if ! diff -q <(sql_lines "$generated") <(sql_lines "$frozen") >/dev/null; then
        say "the SQL of botai $version differs from its frozen release $frozen:"
        diff <(sql_lines "$frozen") <(sql_lines "$generated") | head -n 40 >&2 || true
        say "a released version never changes: raise the version in Cargo.toml and write"
        say "pg_extension/sql/botai--$version--NEW.sql (see pg_extension/sql/README.md)"
        exit 1
    fi
}

install() {
    local pkg=$1 lib new extdir
    lib=$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/$VERSION/lib)
    new=$(find "$pkg" -name botai.so | head -n 1)
    [ -n "$new" ] || { say "no botai.so under $pkg (run cargo pgrx package first)"; exit 1; }
    check_frozen_sql "$pkg"
    # Every frozen release and upgrade script goes with the library.
    extdir=$(dirname "$(find "$pkg" -name botai.control | head -n 1)")
    for f in "$ROOT"/pg_extension/sql/botai--*.sql; do
        if [ -e "$f" ]; then cp "$f" "$extdir/"; fi
    done
    if cmp -s "$new" "/usr/lib/postgresql/$VERSION/lib/botai.so"; then
        say "botai.so unchanged; installing SQL files only"
        as_root cp -r "$pkg/usr/share/." /usr/share/
    else
        local was_running=0
        if exists && running; then was_running=1; fi
        stop
        say "installing botai.so and its SQL files"
        as_root cp -r "$pkg/usr/." /usr/
        if [ "$was_running" = 1 ]; then start; fi
    fi
}

random_secret() { head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

# .env: the daemon's connection (botai_service, which holds the components'
# rights) and its API token. operator.env: the operator's connection
# (botai_operator: halt, resume, alert channels, risk limits), read only by
# `botai halt|resume|alerts apply`, so the daemon never holds it. Both mode
# 0600, never committed; existing values are kept.
credentials() {
    local env_file=$ROOT/.env operator_file=$ROOT/operator.env password operator_password token
    if [ -f "$env_file" ] && grep -q '^PGPASSWORD=' "$env_file"; then
        password=$(grep '^PGPASSWORD=' "$env_file" | tail -n 1 | cut -d= -f2-)
    else
        password=$(random_secret)
        cat >> "$env_file" <<ENV
# Written by scripts/cluster.sh: how the daemon reaches the database (TCP, password).
PGHOST=127.0.0.1
PGPORT=$PORT
PGUSER=botai_service
PGPASSWORD=$password
PGDATABASE=$DB
ENV
        chmod 600 "$env_file"
        say "wrote connection settings for botai_service to .env"
    fi
    if ! grep -q '^API_TOKEN=' "$env_file"; then
        token=$(random_secret)
        cat >> "$env_file" <<ENV
# Written by scripts/cluster.sh: the bearer token of the dashboard and /api/*
# (required when API_LISTEN is not a loopback address).
API_TOKEN=$token
ENV
        chmod 600 "$env_file"
        say "wrote an API token to .env"
    fi
    if [ -f "$operator_file" ] && grep -q '^OPERATOR_PGPASSWORD=' "$operator_file"; then
        operator_password=$(grep '^OPERATOR_PGPASSWORD=' "$operator_file" | tail -n 1 | cut -d= -f2-)
    else
        operator_password=$(random_secret)
        cat > "$operator_file" <<ENV
# Written by scripts/cluster.sh: the operator's connection, for
# botai halt | resume | alerts apply (botai_operator; the daemon's PGHOST,
# PGPORT and PGDATABASE).
OPERATOR_PGUSER=botai_operator
OPERATOR_PGPASSWORD=$operator_password
ENV
        chmod 600 "$operator_file"
        say "wrote the operator's connection (botai_operator) to operator.env"
    fi
    # The passwords travel on stdin, never on a command line.
    psql_su -d "$DB" <<SQL
ALTER ROLE botai_service PASSWORD '$password';
ALTER ROLE botai_operator PASSWORD '$operator_password';
SQL
}

case "${1:-}" in
    ensure) ensure ;;
    install) install "${2:?package directory}" ;;
    start) start ;;
    stop) stop ;;
    status) pg_lsclusters | awk -v n="$NAME" 'NR==1 || $2==n' ;;
    credentials) credentials ;;
    reset) DB=${2:-$DB}; psql_su -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" ;;
    *) echo "usage: $0 ensure|install DIR|start|stop|status|credentials|reset" >&2; exit 2 ;;
esac
