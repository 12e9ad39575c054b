#!/usr/bin/env bash
# Freezes the SQL that pgrx generated for the current version as a release:
# pg_extension/sql/botai--VERSION.sql. A released file is never rewritten;
# the next change to the extension's SQL raises the version and ships an
# upgrade script pg_extension/sql/botai--VERSION--NEXT.sql.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
pkg=${1:?package directory (target/release/botai-pg15)}
control=$(find "$pkg" -name botai.control | head -n 1)
version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$control")
generated=$(dirname "$control")/botai--$version.sql
[ -f "$generated" ] || { echo "sql-release: no $generated (run make extension)" >&2; exit 1; }
name=$(basename "$generated")
dest=$ROOT/pg_extension/sql/$name
if [ -e "$dest" ]; then
    echo "sql-release: $dest is already released; it never changes" >&2
    exit 1
fi
mkdir -p "$ROOT/pg_extension/sql"
cp "$generated" "$dest"
echo "sql-release: froze $dest"
