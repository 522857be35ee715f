#!/usr/bin/env bash
# Installs everything torch_tvm needs on a fresh machine (Debian packages,
# pinned Python packages) and builds/installs the C++ extension. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}

DEB_PACKAGES="cmake g++ ccache libgtest-dev libdnnl-dev"
if ! dpkg -s $DEB_PACKAGES >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $DEB_PACKAGES >/dev/null
fi

$PY -m pip install -q -r requirements.txt
# No build isolation: the build needs the installed torch (a 5 GB wheel) and
# tvm-ffi; an isolated build environment would fetch them again.
$PY -m pip install -q --no-build-isolation --no-deps .
# From another directory: here the source tree (without _C) would shadow the install.
(cd / && $PY -c "import torch_tvm; print('torch_tvm ready: TVM target cpu', torch_tvm._C.host_cpu())")
