"""Did a test run launch every kernel? `CLOWNPIECE_KERNEL_LOG=FILE` makes each clownpiece process append the
(family, kernel name) pairs it launched to FILE when it exits; this script builds every kernel file under the
configurations below, lists the kernels they define, and exits 1 naming each one the log never shows (and
if no generated fusion kernel ran). .ci/run uses it after the oclgrind pass, so every kernel has been
checked by the strict implementation.

    CLOWNPIECE_KERNEL_LOG=/tmp/k.txt pytest ...; python tools/kernel_coverage.py /tmp/k.txt

A kernel file needs an entry in BUILDS (a new file without one is reported), listing the (dtype, defines)
builds whose kernels together are all the file defines."""
import argparse
import os
import sys

import numpy as np

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
I64, BOOL = np.dtype(np.int64), np.dtype(np.bool_)
_IDS = ("IDX_T=long", "IDX_T_MEM=long", "IDX_IS_INT=1")  # backend/dtypes.index_defines(int64)
_SRC = ("SRC_T=double", "SRC_T_MEM=double", "SRC_IS_FLOAT=1", "SRC_IS_DOUBLE=1", "USE_FP64=1")
BUILDS = {
    "attention": [(F32, ("HE=8", "HV=8", "BK=16"))],
    "cast": [(F32, _SRC)],
    "conv": [(F32, ())],
    # the op table's lines are built per dtype kind (F, I, B): one build of each kind, and their in-place forms
    "elementwise": [(d, defines) for d in (F32, I64, BOOL) for defines in ((), ("INPLACE",))],
    "foreach": [(F32, ("NBUF=8",))],
    "index": [(F32, _IDS)],
    "matmul": [(F32, ("MR=4", "NR=16"))],
    "nn": [(F32, ())],
    "norm": [(F32, ())],
    "optim": [(F32, ())],
    "pool": [(F32, ())],
    "random": [(F32, ())],
    "augment": [(F32, ())],
    "reduce": [(F32, ())],
    "loss": [(F32, ()), (F32, ("NLL",))],
    "remap": [(F32, ())],
    "scan": [(F32, ())],
    "sort": [(F32, ("PACK",)), (F64, ())],
    "upsample": [(F32, ())],
}


def defined_kernels():
    """{(family, name)} of every kernel the kernel files define, and the files BUILDS does not cover."""
    from clownpiece import backend
    from clownpiece.backend import programs

    folder = os.path.dirname(programs.kernel_path("elementwise"))
    families = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".cl"))
    cache = backend.program_cache()
    found = set()
    for family in families:
        for dtype, defines in BUILDS.get(family, ()):
            prg = cache.program(family, dtype, defines)
            found.update((family, k.function_name) for k in prg.all_kernels())
    return found, [f for f in families if f not in BUILDS]


def read_log(path):
    with open(path) as f:
        return {tuple(line.split()) for line in f if line.strip()}


def report(defined, uncovered_files, launched):
    """The problems, one line each (none: every kernel ran)."""
    problems = [f"cl_kernels/{f}.cl: no entry in tools/kernel_coverage.py BUILDS" for f in uncovered_files]
    problems += [f"never launched: {family} {name}" for family, name in sorted(defined - launched)]
    if not any(family == "generated" for family, _ in launched):
        problems.append("never launched: any generated fusion kernel (family 'generated')")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log", help="the file CLOWNPIECE_KERNEL_LOG named")
    args = ap.parse_args(argv)
    defined, uncovered = defined_kernels()
    launched = read_log(args.log)
    problems = report(defined, uncovered, launched)
    print(f"kernel coverage: {len(defined & launched)} of {len(defined)} kernels launched, "
          f"{sum(1 for f, _ in launched if f == 'generated')} generated kernels")
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
