#!/usr/bin/env bash
# Runs every test: the C++ GoogleTest suite through ctest, then pytest.
# Slow model tests run too, in their bounded form (small inputs, few calls).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}

# scripts/setup.sh built the GoogleTest binary alongside the extension.
BUILD_DIR=$(ls -d build/cp311-* | head -n 1)
(cd "$BUILD_DIR" && ctest --output-on-failure)

$PY -m pytest tests -q -p no:cacheprovider --timeout=900 "$@"
