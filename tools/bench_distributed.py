#!/usr/bin/env python
"""Data-parallel step times, and the ring-allreduce cost model for bigger jobs.

    mpirun -n 1 python tools/bench_distributed.py          # 1 rank
    mpirun -n 2 python tools/bench_distributed.py          # 2 ranks (add --allow-run-as-root as root)
    python tools/bench_distributed.py --cost-model         # the table for N = 2..64 hosts (no MPI needed)

Per model (train_mnist's seed, mlp and cnn, and a wider MLP, at batch 20 per rank, SGD) it prints rank 0's
median step time over --steps steps, the variants interleaved in --rounds rounds: `local` (every rank trains
alone, no communication: what sharing the host costs), `ddp 1 bucket` (bucket_cap_mb=inf: one allreduce after
backward) and `ddp buckets` (--bucket-kb buckets, started during backward: what overlap buys). Step = forward,
backward, SGD step; timed from a barrier to a read of one parameter."""
import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RING_LINKS_GBPS = (10, 25, 100)
RING_HOSTS = (2, 4, 8, 16, 32, 64)
LATENCY_S = 20e-6  # per ring step, a typical TCP/Ethernet MPI latency


def resnet20_parameters(num_classes=10):
    """Parameters of the CIFAR ResNet-20 (He et al. 2016: 3 stages of 3 basic blocks at 16/32/64 channels,
    3x3 convolutions without bias, BatchNorm after each, identity shortcuts, global pooling, linear)."""
    total = 3 * 16 * 9 + 2 * 16  # stem conv + BN
    cin = 16
    for width in (16, 32, 64):
        for _ in range(3):
            total += cin * width * 9 + 2 * width + width * width * 9 + 2 * width
            cin = width
    return total + 64 * num_classes + num_classes


def ring_allreduce_seconds(nbytes, hosts, gbps, latency=LATENCY_S):
    """2(N-1)/N x bytes / bandwidth + 2(N-1) x latency (reduce-scatter then all-gather around the ring)."""
    return 2 * (hosts - 1) / hosts * nbytes * 8 / (gbps * 1e9) + 2 * (hosts - 1) * latency


def cost_model_table():
    import train_mnist
    models = [(name, sum(p.numel() for p in train_mnist.MODELS[name]().parameters()))
              for name in ("seed", "mlp", "cnn")]
    models.append(("CIFAR ResNet-20", resnet20_parameters()))
    lines = ["| model | parameters | bytes allreduced per step (float32) |", "|---|---|---|"]
    lines += [f"| {name} | {n:,} | {4 * n:,} |" for name, n in models]
    lines += ["", "| model | link | " + " | ".join(f"N={n}" for n in RING_HOSTS) + " |",
              "|---|---|" + "---|" * len(RING_HOSTS)]
    for name, n in models:
        if name == "cnn":
            continue
        for gbps in RING_LINKS_GBPS:
            cells = [f"{ring_allreduce_seconds(4 * n, h, gbps) * 1e3:.3f}" for h in RING_HOSTS]
            lines.append(f"| {name} | {gbps} Gb/s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wide_mlp():
    """784-512-512-512-10 (3.7 MB of gradients): enough to reduce that overlapping could show."""
    from clownpiece.nn import Flatten, Linear, ReLU, Sequential
    return Sequential(Flatten(), Linear(784, 512), ReLU(), Linear(512, 512), ReLU(), Linear(512, 512), ReLU(),
                      Linear(512, 10))


def make_step(forward, opt, loss_fn, x, y):
    """One training step: forward, backward, SGD."""
    def step():
        loss = loss_fn(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def time_steps(dist, model, step_fn, steps):
    times = []
    for _ in range(steps):
        dist.barrier()
        start = time.perf_counter()
        step_fn()
        next(iter(model.parameters())).numpy()[:1]  # wait for the device
        times.append(time.perf_counter() - start)
    return times


def bench(args):
    from clownpiece import distributed as dist
    dist.init()
    import train_mnist

    import clownpiece as cp
    from clownpiece.nn import CrossEntropyLoss
    from clownpiece.nn.parallel import DistributedDataParallel
    from clownpiece.utils.optim import SGD
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(rank)
    x = cp.Tensor(rng.normal(size=(args.batch, 1, 28, 28)).astype(np.float32))
    y = cp.Tensor(rng.integers(0, 10, size=args.batch))
    loss_fn = CrossEntropyLoss()
    if rank == 0:
        print(f"{world} rank(s), device {cp.backend.device()}, POCL_MAX_PTHREAD_COUNT="
              f"{os.environ.get('POCL_MAX_PTHREAD_COUNT', 'unset')}, batch {args.batch} per rank")
        print(f"{'model':6} {'variant (buckets)':17} {'ms/step':>8} {'images/s':>9}")
    models = dict(train_mnist.MODELS, wide=wide_mlp)
    for name in args.models:
        variants = []
        caps = (("local", None), ("ddp 1 bucket", math.inf), (f"ddp {args.bucket_kb:g}kB", args.bucket_kb / 1024))
        for label, cap in caps:
            cp.manual_seed(0)
            model = models[name]()
            ddp = None if cap is None else DistributedDataParallel(model, bucket_cap_mb=cap)
            if ddp is not None:
                label += f" ({len(ddp._buckets)})"
            opt = SGD(model.parameters(), lr=0.01)
            variants.append((label, model, make_step(ddp or model, opt, loss_fn, x, y)))
        times = {label: [] for label, _, _ in variants}
        for _ in range(args.warmup):
            for _, _, step in variants:
                step()
        for _ in range(args.rounds):  # interleaved, so drifts in the shared machine's load hit every variant
            for label, model, step in variants:
                times[label] += time_steps(dist, model, step, args.steps // args.rounds)
        for label, _, _ in variants:
            seconds = statistics.median(times[label])
            if rank == 0:
                print(f"{name:6} {label:17} {seconds * 1e3:8.2f} {world * args.batch / seconds:9.0f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cost-model", action="store_true", help="print the ring-allreduce table and exit")
    parser.add_argument("--models", nargs="+", default=["seed", "mlp", "cnn", "wide"])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--bucket-kb", type=float, default=64.0)
    args = parser.parse_args()
    if args.cost_model:
        print(cost_model_table())
    else:
        bench(args)


if __name__ == "__main__":
    main()
