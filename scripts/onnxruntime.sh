#!/usr/bin/env bash
# ONNX Runtime 1.31.1 from the onnxruntime wheel on PyPI, in a venv under
# .cache: the daemon loads its libonnxruntime.so (ORT_DYLIB_PATH), the tests
# and benchmarks use its Python package as the reference. Idempotent.
#   ML_DEVICE=cuda scripts/onnxruntime.sh   uses onnxruntime-gpu instead
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/.cache/venv
LIB=$ROOT/.cache/onnxruntime
PACKAGE=onnxruntime
[ "${ML_DEVICE:-cpu}" = cuda ] && PACKAGE=onnxruntime-gpu

if [ ! -x "$VENV/bin/python" ]; then
    echo "onnxruntime: creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '1.31.1')" 2>/dev/null; then
    echo "onnxruntime: installing $PACKAGE 1.31.1 and numpy from PyPI"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE==1.31.1" "numpy==2.4.6"
fi
capi=$("$VENV/bin/python" -c "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))")
so=$(ls "$capi"/libonnxruntime.so.* 2>/dev/null | head -n 1)
[ -n "$so" ] || { echo "onnxruntime: no libonnxruntime.so in $capi" >&2; exit 1; }
mkdir -p "$LIB"
ln -sf "$so" "$LIB/libonnxruntime.so"
echo "onnxruntime: ORT_DYLIB_PATH=$LIB/libonnxruntime.so -> $(basename "$so")"
