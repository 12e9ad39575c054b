#!/usr/bin/env bash
# Test-only Python packages in the venv of scripts/onnxruntime.sh: ccxt, the
# real exchange client the exchange tests trade with against botai's double,
# and aiosmtpd, the real SMTP server alert e-mails are delivered to. Never a
# dependency of the daemon. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.cache/venv
CCXT_VERSION=4.5.90
AIOSMTPD_VERSION=1.4.6
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import ccxt, sys; sys.exit(ccxt.__version__ != '$CCXT_VERSION')" 2>/dev/null; then
    echo "test-python: installing ccxt $CCXT_VERSION from PyPI (test-only)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "ccxt==$CCXT_VERSION"
fi
if ! "$VENV/bin/python" -c "import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')" 2>/dev/null; then
    echo "test-python: installing aiosmtpd $AIOSMTPD_VERSION from PyPI (test-only)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi
echo "test-python: ccxt $CCXT_VERSION, aiosmtpd $AIOSMTPD_VERSION"
