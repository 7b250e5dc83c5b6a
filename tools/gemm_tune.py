"""Scratch tuner: float32 GEMM GFLOP/s of clownpiece vs numpy at a few sizes and CPU register blocks.
Usage: python tools/gemm_tune.py [f64] [MRxNR ...] [block|packed] [n=SIZE ...] (default: float32, the shipped
block, the size-chosen path, 256, 512 and 1024).

Besides wall-clock GFLOP/s it prints GFLOP per CPU second of this process (all its threads): on a shared
machine other processes stretch the wall clock, not the CPU time a kernel needs, so that is the figure to
compare kernel variants by."""
import sys
import time

import numpy as np

import clownpiece as cp
from clownpiece import backend
from clownpiece.ops import matmul


def timings(fn, reps=7):
    """(median, best) wall seconds and (median, best) CPU seconds of fn()."""
    fn()
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return (float(np.median(wall)), min(wall)), (float(np.median(cpu)), min(cpu))


def run(sizes, dtype=np.float32):
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
        ((med, best), (cmed, cbest)), ((np_med, np_best), _) = ours[n], timings(lambda: a_np @ b_np)
        gf = 2 * n ** 3 / 1e9
        print(f"  {np.dtype(dtype).name} {n:5d}: clownpiece {gf / med:6.1f} GFLOP/s (best {gf / best:6.1f}, per CPU "
              f"second {gf / cmed:6.1f}, best {gf / cbest:6.1f})  numpy {gf / np_med:6.1f} (best {gf / np_best:6.1f})"
              f"  ratio {np_med / med:.2f} (best/best {np_best / best:.2f})", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    dtype = np.dtype(np.float64 if "f64" in args else np.float32)
    blocks = [tuple(int(x) for x in s.split("x")) for s in args if "x" in s] or [matmul._BLOCKS[dtype]]
    sizes = tuple(int(s[2:]) for s in args if s.startswith("n=")) or (256, 512, 1024)
    path = next((s for s in args if s in ("block", "packed")), None)
    if path:
        matmul._choose_path = lambda *a: path
    for mr, nr in blocks:
        matmul._BLOCKS[dtype] = (mr, nr)
        matmul._plans.clear()
        print(f"MR={mr} NR={nr}" + (f", {path} path" if path else ""))
        run(sizes, dtype=dtype)
