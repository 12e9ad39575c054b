#!/usr/bin/env bash
# Test-only Python packages in the venv of scripts/onnxruntime.sh: ccxt, the
# real exchange client the exchange tests trade with against botai's double.
# Never a dependency of the daemon. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.cache/venv
CCXT_VERSION=4.5.90
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import ccxt, sys; sys.exit(ccxt.__version__ != '$CCXT_VERSION')" 2>/dev/null; then
    echo "test-python: installing ccxt $CCXT_VERSION from PyPI (test-only)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "ccxt==$CCXT_VERSION"
fi
echo "test-python: ccxt $CCXT_VERSION"
