#!/usr/bin/env bash
# Everything `make` needs on a fresh Debian 12 machine that has only the Rust
# toolchain: Debian packages, cargo-pgrx 0.18.0 and its initialisation.
# Idempotent: installs only what is missing.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGRX_VERSION=0.18.0
# chromium: the dashboard test loads the page in a real (headless) browser.
PACKAGES=(postgresql-15 postgresql-client-15 postgresql-server-dev-15 libclang-dev clang pkg-config
          python3 python3-venv ca-certificates curl chromium)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    # Debian would create and start a default cluster on 5432; botai runs its own.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        as_root mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
fi

# prometheus and promtool (Prometheus's server and reference checker, for
# the monitoring tests), unpacked from Debian's prometheus package without
# installing it: no service is created or started.
CACHE=$(cd "$(dirname "$0")/.." && pwd)/.cache
if [ ! -x "$CACHE/bin/promtool" ] || [ ! -x "$CACHE/bin/prometheus" ]; then
    echo "deps: fetching prometheus and promtool from Debian's prometheus package"
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download -qq prometheus 2>/dev/null || { as_root apt-get update -qq && apt-get download -qq prometheus; }; })
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    mkdir -p "$CACHE/bin"
    cp "$tmp/x/usr/bin/promtool" "$tmp/x/usr/bin/prometheus" "$CACHE/bin/"
    rm -rf "$tmp"
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    echo "deps: installing cargo-pgrx $PGRX_VERSION (a few minutes, once)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi
if ! grep -qs '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    cargo pgrx init --pg15 "$PG_CONFIG"
fi
