#!/usr/bin/env bash
# The Python package (clients/python) as a user gets it: `pip install` into a
# fresh virtualenv (psycopg and psycopg-pool from PyPI; pytest and mypy for the tests),
# then its pytest suite against the real server (each test in a database of
# its own, beside the Rust daemon). Run by `make test`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.cache/client-venv
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$ROOT/clients/python" "pytest>=7" "mypy>=1.8"
echo "test-python-client: botai $("$VENV/bin/python" -c 'import botai; print(botai.__version__)') installed in a fresh virtualenv"
cd "$ROOT/clients/python"
# Typed (py.typed): the package passes mypy --strict.
"$VENV/bin/python" -m mypy --strict src/botai
exec "$VENV/bin/python" -m pytest -q -rA tests
