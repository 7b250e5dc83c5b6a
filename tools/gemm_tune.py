"""Scratch tuner: float32 GEMM GFLOP/s of clownpiece vs numpy at a few sizes and CPU register blocks.
Usage: python tools/gemm_tune.py [f64] [MRxNR ...] (default: float32 and the shipped block)."""
import sys
import time

import numpy as np

import clownpiece as cp
from clownpiece import backend
from clownpiece.ops import matmul


def timings(fn, reps=7):
    """(median, best) seconds; the machine is shared, so the best run shows what the code can do."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], min(times)


def run(sizes=(256, 512, 1024), dtype=np.float32):
    rng = np.random.default_rng(0)
    mats = {n: (rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype))
            for n in sizes}
    ours = {}
    for n, (a_np, b_np) in mats.items():
        a, b = cp.TensorBase(a_np, dtype=dtype), cp.TensorBase(b_np, dtype=dtype)

        def step():
            a @ b
            backend.synchronize()
        ours[n] = timings(step)
    # numpy afterwards, not interleaved: OpenBLAS and PoCL worker threads spin-wait after their work and
    # would steal each other's cores
    time.sleep(0.5)
    for n, (a_np, b_np) in mats.items():
        (med, best), (np_med, np_best) = ours[n], timings(lambda: a_np @ b_np)
        gf = 2 * n ** 3 / 1e9
        print(f"  {np.dtype(dtype).name} {n:5d}: clownpiece {gf / med:6.1f} GFLOP/s (best {gf / best:6.1f})  "
              f"numpy {gf / np_med:6.1f} (best {gf / np_best:6.1f})  ratio {np_med / med:.2f} "
              f"(best/best {np_best / best:.2f})", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    dtype = np.dtype(np.float64 if "f64" in args else np.float32)
    blocks = [tuple(int(x) for x in s.split("x")) for s in args if "x" in s] or [matmul._BLOCKS[dtype]]
    for mr, nr in blocks:
        matmul._BLOCKS[dtype] = (mr, nr)
        matmul._plans.clear()
        print(f"MR={mr} NR={nr}")
        run(dtype=dtype)
