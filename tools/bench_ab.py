"""Paired before/after timing of two clownpiece trees (two checkouts, e.g. `git worktree add ../old <commit>`).

    python tools/bench_ab.py ../old . --rounds 100
    python tools/bench_ab.py ../old . --only gemm512,step

On a shared machine the CPU time a process gets swings by 2x over tens of seconds, so two benchmark runs one
after the other compare the machine's moods, not the trees. Here one worker process per tree stays up and
they take turns: each measurement runs once in A and once in B (in random order), and the figure is the
median of the per-pair ratios B/A. Measurements: SGEMM at 256^3 (20 products), 512^3 (4) and 1024^3 (1) on
the default path; 20 seed training steps (eager), the same with loss.item() every step; evaluation of 10
batches of 1,000 images."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

NAMES = ("gemm256", "gemm512", "gemm1024", "step", "step_item", "eval")


def worker(tree):
    """Read a measurement name per line, run it once, print its seconds."""
    sys.path[:0] = [tree, os.path.join(tree, "tools")]
    import numpy as np
    from train_mnist import seed_model

    import clownpiece as cp
    from clownpiece import backend

    rng = np.random.default_rng(0)
    mats = {n: [cp.Tensor(rng.standard_normal((n, n), np.float32)) for _ in range(2)] for n in (256, 512, 1024)}
    products = {256: 20, 512: 4, 1024: 1}
    x = cp.Tensor(rng.standard_normal((20, 784), np.float32))
    y = cp.Tensor(rng.integers(0, 10, 20).astype(np.float32))
    images = rng.standard_normal((1000, 784), np.float32)
    model, loss_fn = seed_model(), cp.nn.CrossEntropyLoss()

    def step():  # tools/bench.py's seed step, written out: importing bench.py would load this checkout's clownpiece
        loss = loss_fn(model(x), y)
        loss.backward()
        with cp.autograd.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.copy_(p - p.grad.clamp(-1.0, 1.0) * 0.05)
        for p in model.parameters():
            p.grad = None
        return loss

    def gemm(n):
        a, b = mats[n]
        for _ in range(products[n]):
            (a @ b)._storage.buf

    def evaluate():
        model.eval()
        with cp.autograd.no_grad():
            for _ in range(10):
                model(cp.Tensor(images)).numpy()
        model.train()

    jobs = {"gemm256": lambda: gemm(256), "gemm512": lambda: gemm(512), "gemm1024": lambda: gemm(1024),
            "step": lambda: [step() for _ in range(20)], "step_item": lambda: [step().item() for _ in range(20)],
            "eval": evaluate}
    for job in jobs.values():  # builds, the pool and the plans warm
        job()
        job()
    backend.synchronize()
    print("ready", flush=True)
    for line in sys.stdin:
        job = jobs[line.strip()]
        start = time.perf_counter()
        job()
        backend.synchronize()
        print(time.perf_counter() - start, flush=True)


def compare(a, b, rounds, names):
    procs = {t: subprocess.Popen([sys.executable, __file__, "--worker", t], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True) for t in (a, b)}
    for t, p in procs.items():
        if p.stdout.readline().strip() != "ready":
            raise SystemExit(f"bench_ab: the worker for {t} did not start (its error is above)")

    def run(t, name):
        p = procs[t]
        p.stdin.write(name + "\n")
        p.stdin.flush()
        return float(p.stdout.readline())

    times = {(t, n): [] for t in (a, b) for n in names}
    order = random.Random(0)
    for _ in range(rounds):
        for n in names:
            for t in ((a, b) if order.random() < 0.5 else (b, a)):
                times[t, n].append(run(t, n))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    out = {}
    print(f"B/A per pair over {rounds} pairs (A = {a}, B = {b}); < 1: B is faster")
    for n in names:
        ta, tb = times[a, n], times[b, n]
        ratios = [y / x for x, y in zip(ta, tb)]
        q1, med, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        out[n] = dict(a_ms=statistics.median(ta) * 1e3, b_ms=statistics.median(tb) * 1e3, ratio=med, q1=q1, q3=q3,
                      b_faster=sum(y < x for x, y in zip(ta, tb)), pairs=len(ratios))
        print(f"  {n:<10} A {out[n]['a_ms']:8.2f} ms  B {out[n]['b_ms']:8.2f} ms  B/A {med:.3f} "
              f"[quartiles {q1:.3f}-{q3:.3f}]  B faster in {out[n]['b_faster']}/{len(ratios)}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", nargs="?", help="the 'before' tree")
    ap.add_argument("b", nargs="?", help="the 'after' tree")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--only", default=",".join(NAMES), help=f"comma-separated, of {', '.join(NAMES)}")
    ap.add_argument("--json", help="also write the table here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    names = args.only.split(",")
    bad = [n for n in names if n not in NAMES]
    if bad or not args.a or not args.b or args.rounds < 1:
        ap.error(f"two trees, --rounds >= 1 and measurements of {', '.join(NAMES)} (got {', '.join(bad) or '-'})")
    for t in (args.a, args.b):
        if not os.path.isdir(os.path.join(t, "clownpiece")):
            ap.error(f"{t} is not a clownpiece tree (no clownpiece/ in it)")
    out = compare(os.path.abspath(args.a), os.path.abspath(args.b), args.rounds, names)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
