"""clownpiece benchmarks: ratios against numpy (and PyTorch when installed) measured in the same run.

    python tools/bench.py                 # everything, a table on stdout
    python tools/bench.py --only gemm,train --json out.json
    python tools/bench.py --profile       # where a seed training step spends its time

This machine is shared and noisy: every figure is the median of several repeats, and only ratios measured
in the same run are meaningful."""
import argparse
import collections
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

# Some machines pin OpenBLAS to an old core type (OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE) to dodge bugs in old
# builds; that slows a current numpy several-fold and would flatter every ratio below. Benchmark against the
# numpy people actually get: drop both (together) for this process only, before numpy loads OpenBLAS.
_PINNED_BLAS = {k: os.environ.pop(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import clownpiece as cp  # noqa: E402
from clownpiece import backend  # noqa: E402
from clownpiece.backend import fusion  # noqa: E402

try:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:
    torch = None

RESULTS = collections.OrderedDict()


def median_time(fn, repeat=7, number=1, sync=True):
    """Median seconds per call of fn() over `repeat` batches of `number` calls (device work included)."""
    return statistics.median(times_of(fn, repeat, number, sync))


def times_of(fn, repeat=7, number=1, sync=True):
    """Seconds per call of fn() in each of `repeat` batches of `number` calls, after one warm-up call."""
    fn()
    if sync:
        backend.synchronize()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        if sync:
            backend.synchronize()
        times.append((time.perf_counter() - t) / number)
    return times


def _idle_then(measure):
    """Run a measurement on quiet cores: the OpenCL queue drained, and a pause so that the worker threads of
    the library measured before (OpenBLAS, PyTorch's OpenMP pool) stop spin-waiting first: they keep the
    cores busy for a while after their last call, which slows whatever runs next on a 2-core machine."""
    backend.synchronize()
    time.sleep(0.3)
    return measure()


def record(section, name, **values):
    RESULTS.setdefault(section, collections.OrderedDict())[name] = values
    cells = "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    print(f"  {name:<28} {cells}", flush=True)


def bench_gemm(args):
    print("SGEMM (float32, C = A @ B, square)")
    rng = np.random.default_rng(0)
    for n in (256, 512, 1024):
        a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
        ta, tb = cp.Tensor(a), cp.Tensor(b)
        flop = 2.0 * n ** 3
        (ta @ tb)._storage.buf  # the first product builds its kernels
        backend.synchronize()
        cpu = time.process_time()
        ts_cp = _idle_then(lambda: times_of(lambda: (ta @ tb)._storage.buf, repeat=7))
        cpu = (time.process_time() - cpu) / 8  # CPU seconds per product (all threads; the pause uses none)
        ts_np = _idle_then(lambda: times_of(lambda: a @ b, repeat=7, sync=False))
        t_cp, t_np = statistics.median(ts_cp), statistics.median(ts_np)
        # best-of figures beside the medians: on a shared machine other processes only ever slow a run
        row = dict(clownpiece_gflops=flop / t_cp / 1e9, numpy_gflops=flop / t_np / 1e9, ratio_vs_numpy=t_np / t_cp,
                   clownpiece_best=flop / min(ts_cp) / 1e9, numpy_best=flop / min(ts_np) / 1e9,
                   ratio_best=min(ts_np) / min(ts_cp), ratio_min=min(ts_np) / max(ts_cp),
                   ratio_max=max(ts_np) / min(ts_cp), clownpiece_gflops_per_cpu_s=flop / cpu / 1e9)
        if torch is not None:
            xa, xb = torch.from_numpy(a), torch.from_numpy(b)
            t_t = _idle_then(lambda: median_time(lambda: xa @ xb, repeat=5, sync=False))
            row.update(torch_gflops=flop / t_t / 1e9, ratio_vs_torch=t_t / t_cp)
        record("gemm", f"{n}^3", **row)


@contextlib.contextmanager
def eager():
    """Elementwise ops launch at once (fusion off): a deferred result that nobody reads never runs, so
    timing `a + b` on its own would time nothing."""
    was = fusion.enabled
    fusion.set_enabled(False)
    try:
        yield
    finally:
        fusion.set_enabled(was)


def bench_elementwise(args):
    with eager():
        _bench_elementwise()


def _bench_elementwise():
    n = 1 << 24
    print(f"elementwise on {n // 2**20}M float32 (GB/s counts bytes read + written)")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n, np.float32), rng.standard_normal(n, np.float32)
    ta, tb = cp.Tensor(a), cp.Tensor(b)
    for name, f_cp, f_np, f_t, nbytes in (
            ("add", lambda: ta + tb, lambda: a + b, "add", 12 * n),
            ("exp", lambda: ta.exp(), lambda: np.exp(a), "exp", 8 * n)):
        t_cp = _idle_then(lambda: median_time(f_cp, repeat=5))
        t_np = _idle_then(lambda: median_time(f_np, repeat=5, sync=False))
        row = dict(clownpiece_gbs=nbytes / t_cp / 1e9, numpy_gbs=nbytes / t_np / 1e9, ratio_vs_numpy=t_np / t_cp)
        if torch is not None:
            xa, xb = torch.from_numpy(a), torch.from_numpy(b)
            f = (lambda: xa + xb) if f_t == "add" else (lambda: torch.exp(xa))
            row["ratio_vs_torch"] = _idle_then(lambda: median_time(f, repeat=5, sync=False)) / t_cp
        record("elementwise", name, **row)


def bench_small_ops(args):
    print("time per small op on 1,000 floats, launched at once (host = until enqueued, total = until the "
          "queue drains); deferred = host time of an op that fusion records instead of launching")
    x = cp.Tensor(np.random.default_rng(0).standard_normal(1000, np.float32))
    xn = x.numpy()
    acc, accn = cp.zeros(1000), np.zeros(1000, np.float32)  # in place: one launch, never deferred

    def accumulate():
        accn[...] += xn
    for name, f, g in (("add", lambda: x + x, lambda: xn + xn), ("mul scalar", lambda: x * 2.0, lambda: xn * 2.0),
                       ("exp", lambda: x.exp(), lambda: np.exp(xn)), ("sum", lambda: x.sum(), lambda: xn.sum()),
                       ("add_ (in place)", lambda: acc.add_(x), accumulate)):
        with eager():
            host = median_time(lambda: [f() for _ in range(200)], repeat=5, sync=False) / 200
            total = median_time(lambda: [f() for _ in range(200)], repeat=5) / 200
        deferred = median_time(lambda: [f() for _ in range(200)], repeat=5, sync=False) / 200
        t_np = median_time(lambda: [g() for _ in range(200)], repeat=5, sync=False) / 200
        record("small_ops", name, host_us=host * 1e6, total_us=total * 1e6, deferred_us=deferred * 1e6,
               numpy_us=t_np * 1e6)


def bench_launch(args):
    """Host cost of one launch: backend.launch of elementwise add_c on 1,000 floats (3 tensors: 6 buffer and
    offset arguments, then n), against pyopencl's own call of the same kernel (`knl(queue, g, l, *args)`, whose
    generated invoker sets every argument) and the bare enqueue of a kernel whose arguments are set (the floor
    under both). cpu = this thread's CPU time (the PoCL threads that run the kernels are not in it), wall =
    until enqueued; 'alternating' launches write two outputs in turn, so a buffer argument changes every time."""
    import pyopencl as cl
    from pyopencl import _cl

    from clownpiece.backend import programs
    print("host time per kernel launch (add_c, 1,000 floats, launched 2,000 times in a row)")
    f32 = np.dtype(np.float32)
    k = backend.kernel("elementwise", "add_c", f32)
    x, outs = cp.zeros(1000), [cp.zeros(1000), cp.zeros(1000)]
    queue = backend.device().queue
    own = cl.Kernel(k.cl.program, k.name)  # a separate kernel object: pyopencl's invoker, as launches used to
    own.set_scalar_arg_dtypes(programs._scalar_arg_dtypes(own))
    bx, bo = x._storage.buf, [o._storage.buf for o in outs]
    bare = cl.Kernel(k.cl.program, k.name)
    z = np.int32(0)
    bare.set_args(bo[0], z, bx, z, bx, z, np.int32(1000))
    g, lsz = (1024,), (k.local,)
    cases = (("backend.launch", lambda i: backend.launch(k, 1000, outs[0], x, x, 1000)),
             ("backend.launch alternating", lambda i: backend.launch(k, 1000, outs[i & 1], x, x, 1000)),
             ("pyopencl kernel call", lambda i: own(queue, g, lsz, bo[i & 1], 0, bx, 0, bx, 0, 1000)),
             ("bare enqueue", lambda i: _cl.enqueue_nd_range_kernel(queue, bare, g, lsz, None, None)))
    times = {name: ([], []) for name, _ in cases}
    for _ in range(7):  # the cases in turn, so that the machine's load drifts over all of them alike
        for name, f in cases:
            backend.synchronize()
            t, c = time.perf_counter(), time.thread_time()
            for i in range(2000):
                f(i)
            times[name][1].append((time.thread_time() - c) / 2000)
            times[name][0].append((time.perf_counter() - t) / 2000)
    backend.synchronize()
    ref = statistics.median(times["pyopencl kernel call"][1])
    for name, (wall, cpu) in times.items():
        c = statistics.median(cpu)
        record("launch", name, cpu_us=c * 1e6, wall_us=statistics.median(wall) * 1e6,
               cpu_vs_pyopencl_call=c / ref)


def bench_build(args):
    print("cold start: a fresh process's first op and first seed training step (cold = empty PoCL and "
          "clownpiece caches, warm = cached; cpu = the process's CPU seconds, which contention for the cores "
          "does not inflate)")
    first_op = ("import time; t = time.perf_counter(); import clownpiece as cp; x = cp.Tensor([1.0, 2.0]); "
                "(x + x).exp().tolist(); print(time.perf_counter() - t, time.process_time())")
    # the step of _cp_step, written out: importing this file would import torch and time that too
    first_step = ("import sys, time; t = time.perf_counter(); sys.path.insert(0, %r); import numpy as np, "
                  "clownpiece as cp, train_mnist; m, f = train_mnist.seed_model(), cp.nn.CrossEntropyLoss(); "
                  "x = cp.Tensor(np.zeros((20, 784), np.float32)); y = cp.Tensor(np.zeros(20, np.float32)); "
                  "loss = f(m(x), y); loss.backward(); ctx = cp.no_grad(); ctx.__enter__(); "
                  "[p.copy_(p - p.grad.clamp(-1.0, 1.0) * 0.05) for p in m.parameters()]; "
                  "ctx.__exit__(None, None, None); "
                  "loss.item(); print(time.perf_counter() - t, time.process_time())") % os.path.join(ROOT, "tools")
    # Python's bytecode cache is allowed, as in any ordinary install (some sandboxes set PYTHONDONTWRITEBYTECODE,
    # which makes every process compile clownpiece's modules again: ~0.6 s of CPU)
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def seconds(code, env=base_env):
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        wall, cpu = proc.stdout.strip().splitlines()[-1].split()
        return float(wall), float(cpu), proc.stderr

    for name, code in (("first elementwise op", first_op), ("first seed training step", first_step)):
        # cold: a real first run, both the driver's cache (PoCL) and clownpiece's empty
        with tempfile.TemporaryDirectory() as pocl, tempfile.TemporaryDirectory() as ours:
            cold, cold_cpu, said = seconds(code, dict(base_env, POCL_CACHE_DIR=pocl, CLOWNPIECE_CACHE_DIR=ours))
        seconds(code)
        warm = [seconds(code) for _ in range(5)]
        record("build", name, cold_s=cold, cold_cpu_s=cold_cpu, warm_s=statistics.median(w[0] for w in warm),
               warm_min_s=min(w[0] for w in warm), warm_max_s=max(w[0] for w in warm),
               warm_cpu_s=statistics.median(w[1] for w in warm),
               cold_message=next((line for line in said.splitlines() if "building" in line), "none"))


# ---- the seed model ---------------------------------------------------------------------------------
def _torch_seed_model():
    nn = torch.nn

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.kernel = nn.Linear(16, 4)

        def forward(self, x):
            b = x.shape[0]
            p = x.reshape(b, 7, 4, 7, 4).transpose(2, 3).reshape(b, 49, 16)
            return self.kernel(p)

    class Attn(nn.Module):
        def __init__(self, h):
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(h, h) for _ in range(4))

        def forward(self, x):
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
            s = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
            return self.out_proj(s @ v)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = Attn(4)
            self.mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4))

        def forward(self, x):
            x = x + self.attention(x)
            return x + self.mlp(x)

    class Reduce(nn.Module):
        def forward(self, x):
            return x.clamp(-2, 2).mean(dim=-1)

    return nn.Sequential(Embed(), nn.ReLU(), Block(), nn.ReLU(), Reduce(), nn.Linear(49, 10))


def _cp_seed_model():
    from train_mnist import seed_model
    return seed_model()


def _cp_step(model, loss_fn, x, y, lr=0.05):
    loss = loss_fn(model(x), y)
    loss.backward()
    with cp.autograd.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.copy_(p - p.grad.clamp(-1.0, 1.0) * lr)
    for p in model.parameters():
        p.grad = None
    return loss


def _torch_step(model, loss_fn, x, y, lr=0.05):
    loss = loss_fn(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p - p.grad.clamp(-1.0, 1.0) * lr)
    for p in model.parameters():
        p.grad = None
    return loss


def _step_times(step, item, torch_sync=False):
    """Median seconds per training step over 7 batches of 20 steps; `item`: read the loss every step, as the
    notebook does (each step then waits for the device)."""
    if item:
        return median_time(lambda: step().item(), repeat=7, number=20, sync=not torch_sync)
    return median_time(step, repeat=7, number=20, sync=not torch_sync)


def bench_train(args):
    print("seed model (notebook): training step at batch 20 (eager, and replayed by clownpiece.jit; 'item' = "
          "loss.item() every step), evaluation of 10,000 images in batches of 1,000")
    rng = np.random.default_rng(0)
    xb, yb = rng.standard_normal((20, 784), np.float32), rng.integers(0, 10, 20).astype(np.float32)
    xe = rng.standard_normal((1000, 784), np.float32)
    model, loss_fn = _cp_seed_model(), cp.nn.CrossEntropyLoss()
    x, y = cp.Tensor(xb), cp.Tensor(yb)
    jitted = cp.jit(_cp_step)
    rows = collections.OrderedDict()
    for name, step in (("eager", lambda: _cp_step(model, loss_fn, x, y, 0.05)),
                       ("jit", lambda: jitted(model, loss_fn, x, y, 0.05))):
        for item in (False, True):
            rows[f"{name}{' item' if item else ''}"] = _idle_then(lambda: _step_times(step, item))
    model.eval()
    with cp.autograd.no_grad():
        t_eval = median_time(lambda: [model(cp.Tensor(xe)).numpy() for _ in range(10)], repeat=3)
    torch_rows = {}
    if torch is not None:
        tm, tl = _torch_seed_model(), torch.nn.CrossEntropyLoss()
        tx, ty = torch.from_numpy(xb), torch.from_numpy(yb).long()
        for item in (False, True):
            torch_rows[item] = _idle_then(lambda: _step_times(lambda: _torch_step(tm, tl, tx, ty), item, True))
        with torch.no_grad():
            t_te = median_time(lambda: [tm(torch.from_numpy(xe)).numpy() for _ in range(10)], repeat=3, sync=False)
    counts = {}
    for name, step in (("eager", lambda: _cp_step(model, loss_fn, x, y, 0.05)),
                       ("jit", lambda: jitted(model, loss_fn, x, y, 0.05))):
        backend.synchronize()
        backend.reset_stats()
        step()
        backend.synchronize()
        counts[name] = backend.stats()
    for name, t in rows.items():
        row = dict(clownpiece_ms=t * 1e3)
        if torch is not None:
            t_t = torch_rows[name.endswith("item")]
            row.update(torch_ms=t_t * 1e3, ratio_to_torch=t / t_t)
        s = counts[name.split()[0]]
        row.update(launches=s["launches"], d2h=s["d2h_count"], h2d=s["h2d_count"])
        record("train", f"seed step {name}", **row)
    row_e = dict(clownpiece_s=t_eval)
    if torch is not None:
        row_e.update(torch_s=t_te, ratio_to_torch=t_eval / t_te)
    record("train", "seed eval (10k images)", **row_e)


def bench_clip(args):
    """nn.utils.clip_grad_norm_ over the seed model's parameters (after a backward), against the same
    arithmetic in numpy on arrays of the same shapes (norm over all, then every gradient scaled)."""
    from clownpiece.nn.utils import clip_grad_norm_
    print("clip_grad_norm_ (2-norm) over the seed model's 16 parameters: launches per call, and the same done "
          "with per-parameter ops")
    model = _cp_seed_model()
    model(cp.Tensor(np.random.default_rng(0).standard_normal((20, 1, 28, 28), np.float32))).sum().backward()
    params = list(model.parameters())
    grads = [p.grad.numpy() for p in params]

    def numpy_clip():
        total = np.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
        coef = min(1e9 / (total + 1e-6), 1.0)  # max_norm so large that the gradients keep their values
        for g in grads:
            g *= coef
        return total

    def per_parameter_ops():  # the same with one reduction and one multiply per gradient (~5 launches each)
        total = cp.stack([(p.grad * p.grad).sum() for p in params]).sum().sqrt()
        coef = (1e9 / (total + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad.copy_(p.grad * coef)

    t_cp = _idle_then(lambda: median_time(lambda: clip_grad_norm_(params, 1e9), repeat=7, number=50))
    t_np = _idle_then(lambda: median_time(numpy_clip, repeat=7, number=50, sync=False))
    with cp.no_grad():
        t_ops = _idle_then(lambda: median_time(per_parameter_ops, repeat=5, number=10))
    backend.reset_stats()
    clip_grad_norm_(params, 1e9)
    row = dict(clownpiece_us=t_cp * 1e6, numpy_us=t_np * 1e6, ratio_vs_numpy=t_np / t_cp,
               launches=backend.stats()["launches"], per_parameter_ops_us=t_ops * 1e6,
               ratio_vs_per_parameter_ops=t_ops / t_cp)
    if torch is not None:
        tp = [torch.nn.Parameter(torch.from_numpy(g.copy())) for g in grads]
        for p in tp:
            p.grad = p.detach().clone()
        row["ratio_vs_torch"] = _idle_then(lambda: median_time(lambda: torch.nn.utils.clip_grad_norm_(tp, 1e9),
                                                               repeat=7, number=50, sync=False)) / t_cp
    record("clip", "clip_grad_norm_ seed params", **row)


def bench_schedule(args):
    """The seed notebook's whole run at full MNIST size: 2 epochs of 60,000 images in batches of 20 (3,000
    steps each, the learning rate decaying every step) with the 10,000-image test set evaluated every 100
    steps (60 evaluations), data loading included, the step replayed by clownpiece.jit as
    tools/train_mnist.py does (eagerly with --no-jit). Synthetic images: the time does not depend on the
    pixel values."""
    from train_mnist import device_batches, evaluate

    from clownpiece.utils.data import Dataloader, TensorDataset
    mode = "eager" if args.no_jit else "jit"
    print(f"seed notebook's full schedule on MNIST-shaped data (2 x 60,000 images, 60 evaluations of 10,000), "
          f"{mode}")
    rng = np.random.default_rng(0)
    train = TensorDataset(rng.standard_normal((60000, 784), np.float32), rng.integers(0, 10, 60000).astype(np.float32))
    test = TensorDataset(rng.standard_normal((10000, 784), np.float32), rng.integers(0, 10, 10000).astype(np.float32))
    train_loader = Dataloader(train, batch_size=20, shuffle=True, seed=0)
    test_loader = device_batches(Dataloader(test, batch_size=1000))  # as train_mnist.py: uploaded once
    model, loss_fn = _cp_seed_model(), cp.nn.CrossEntropyLoss()
    step_fn = _cp_step if args.no_jit else cp.jit(_cp_step)
    steps = 0
    t, cpu = time.perf_counter(), time.process_time()
    t_eval = 0.0
    for _ in range(2):
        for i, (x, y) in enumerate(train_loader):
            step_fn(model, loss_fn, x, y, 0.05 * math.exp(-3e-4 * steps))
            steps += 1
            if i % 100 == 0:
                t0 = time.perf_counter()
                evaluate(model, test_loader)
                t_eval += time.perf_counter() - t0
    backend.synchronize()
    record("schedule", f"seed, 2 epochs of 60k, {mode}", seconds=time.perf_counter() - t, evaluations_s=t_eval,
           cpu_s=time.process_time() - cpu, steps=steps)


def profile_train(args):
    print("profile of 200 seed training steps (batch 20)")
    rng = np.random.default_rng(0)
    model, loss_fn = _cp_seed_model(), cp.nn.CrossEntropyLoss()
    x = cp.Tensor(rng.standard_normal((20, 784), np.float32))
    y = cp.Tensor(rng.integers(0, 10, 20).astype(np.float32))
    for _ in range(5):
        _cp_step(model, loss_fn, x, y)
    backend.synchronize()
    backend.reset_stats()
    backend.count_kernels(True)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(200):
        _cp_step(model, loss_fn, x, y)
    backend.synchronize()
    prof.disable()
    wall = (time.perf_counter() - t) / 200
    per_kernel = backend.count_kernels(False)
    launches = backend.stats()["launches"] / 200
    device_ms = sum(t for n, t in per_kernel.values()) / 200 * 1e3
    print(f"  {wall * 1e3:.2f} ms/step (under cProfile), {launches:.0f} launches/step, "
          f"d2h {backend.stats()['d2h_count'] / 200:.0f}/step, device busy {device_ms:.2f} ms/step")
    print("  per step by kernel:            launches   device us")
    for name, (n, t) in sorted(per_kernel.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"    {name:<28} {n / 200:6.1f}  {t / 200 * 1e6:9.1f}")
    stats = pstats.Stats(prof)
    print("  host time per call of the op entry points (cumulative, under cProfile, which inflates it):")
    print(f"    {'op':<34} {'calls/step':>10} {'us/call':>9} {'ms/step':>8}")
    rows = []
    for (path, _, func), (_, ncalls, _, cumtime, _) in stats.stats.items():
        where = path.replace(os.sep, "/")
        if "/clownpiece/" in where and func in _OP_ENTRY_POINTS:
            rows.append((f"{where.split('/clownpiece/')[1]}:{func}", ncalls / 200, cumtime / ncalls * 1e6,
                         cumtime / 200 * 1e3))
    for name, calls, us, ms in sorted(rows, key=lambda r: -r[3]):
        print(f"    {name:<34} {calls:10.1f} {us:9.1f} {ms:8.2f}")
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(15)
    print("  Python time by function (tottime):")
    print("\n".join("    " + line for line in out.getvalue().splitlines()[6:30]))
    RESULTS["profile"] = dict(ms_per_step_profiled=wall * 1e3, launches_per_step=launches,
                              device_ms_per_step=device_ms,
                              kernels={k: dict(launches=n / 200, device_us=t / 200 * 1e6)
                                       for k, (n, t) in per_kernel.items()})


# where a step's host time goes, by layer: autograd recording and backward, raw ops by family, launching
_OP_ENTRY_POINTS = {"_record", "run", "backward", "_binary", "_unary", "_gemm", "linear", "_softmax", "_sum",
                    "_assign_from", "defer", "flush", "launch", "_empty", "reshape", "transpose", "cross_entropy",
                    "clamp", "forward"}

class _ResNetBlock(cp.nn.Module):
    """A ResNet-20 basic block: conv3x3-BN-ReLU-conv3x3-BN + identity, ReLU."""

    def __init__(self, c, nn):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.b2(self.c2(self.relu(self.b1(self.c1(x))))) + x)


class _GPTBlock(cp.nn.Module):
    """A pre-norm GPT block: x + attn(ln(x)) with causal self-attention, then x + mlp(ln(x)) (GELU, 4x)."""

    def __init__(self, d, heads, nn):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.heads, self.gelu = heads, nn.GELU()

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = cp.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.out(self.gelu(self.fc(self.ln2(x))))


def _block_step(model, x):
    model(x).sum().backward()


def bench_layers(args):
    print("layer blocks, forward + backward (float32): a ResNet-20 block at batch 32 (CIFAR, 16 channels 32x32 and "
          "64 channels 8x8), a GPT block (batch 8, 128 tokens, d 128, 4 heads); fused attention and batch norm "
          "against the same math composed from tensor ops")
    rng = np.random.default_rng(0)
    nn = cp.nn
    cases = [("resnet block c16 32x32", lambda: _ResNetBlock(16, nn), (32, 16, 32, 32), 32),
             ("resnet block c64 8x8", lambda: _ResNetBlock(64, nn), (32, 64, 8, 8), 32),
             ("gpt block T128 d128", lambda: _GPTBlock(128, 4, nn), (8, 128, 128), 8 * 128)]
    for name, make, shape, units in cases:
        model = make()
        xa = rng.standard_normal(shape).astype(np.float32)
        x = cp.Tensor(xa, requires_grad=True)
        t = _idle_then(lambda: median_time(lambda: _block_step(model, x), repeat=5))
        backend.synchronize()
        backend.reset_stats()
        _block_step(model, x)
        backend.synchronize()
        s = backend.stats()
        row = dict(clownpiece_ms=t * 1e3, per_s=units / t, launches=s["launches"], d2h=s["d2h_count"])
        if torch is not None:
            tm = _torch_block(name)
            tx = torch.from_numpy(xa).requires_grad_()
            t_t = _idle_then(lambda: median_time(lambda: _block_step(tm, tx), repeat=5, sync=False))
            row.update(torch_ms=t_t * 1e3, ratio_to_torch=t / t_t)
        record("layers", name, **row)
    # fused kernels against the same math composed from ops (both clownpiece, same run)
    q, k, v = (cp.Tensor(rng.standard_normal((8, 4, 128, 32)).astype(np.float32), requires_grad=True)
               for _ in range(3))

    def fused():
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        y.backward(cp.ones_like(y))

    def composed():
        y = nn.functional.math_attention(q, k, v, None, 0, is_causal=True)[0]
        y.backward(cp.ones_like(y))
    t_f, t_c = _idle_then(lambda: median_time(fused, repeat=5)), _idle_then(lambda: median_time(composed, repeat=5))
    record("layers", "sdpa causal B8 H4 T128 D32", fused_ms=t_f * 1e3, composed_ms=t_c * 1e3, ratio=t_f / t_c)
    x = cp.Tensor(rng.standard_normal((32, 16, 32, 32)).astype(np.float32), requires_grad=True)
    bn = nn.BatchNorm2d(16)
    w, b = (cp.Tensor(np.ones((1, 16, 1, 1), np.float32), requires_grad=True) for _ in range(2))

    def bn_fused():
        y = bn(x)
        y.backward(cp.ones_like(y))

    def bn_composed():  # the formula from reductions and elementwise ops
        mean = x.mean([0, 2, 3], keepdims=True)
        var = ((x - mean) * (x - mean)).mean([0, 2, 3], keepdims=True)
        y = (x - mean) / (var + 1e-5).sqrt() * w + b
        y.backward(cp.ones_like(y))
    t_f, t_c = _idle_then(lambda: median_time(bn_fused, repeat=5)), _idle_then(lambda: median_time(bn_composed,
                                                                                                   repeat=5))
    record("layers", "batchnorm2d train 32x16x32x32", fused_ms=t_f * 1e3, composed_ms=t_c * 1e3, ratio=t_f / t_c)


def _torch_block(name):
    return _TorchResNetBlock(16 if "c16" in name else 64) if name.startswith("resnet") else _TorchGPTBlock(128, 4)


if torch is not None:
    class _TorchResNetBlock(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c1, self.b1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)
            self.c2, self.b2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c)

        def forward(self, x):
            r = torch.relu
            return r(self.b2(self.c2(r(self.b1(self.c1(x))))) + x)

    class _TorchGPTBlock(torch.nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
            self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
            self.fc, self.out = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
            self.heads = heads

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))


def bench_sort(args):
    """sort / topk / cumsum over 2^20 float32 in one row, against numpy's sort (and stable argsort, what a
    stable sort with indices costs there), argpartition + sort of the k picked (topk), and cumsum."""
    n = 1 << 20
    print(f"sort, topk and cumsum over one row of {n // 2**20}M float32")
    a = np.random.default_rng(0).standard_normal(n, np.float32)
    t = cp.Tensor(a)

    def np_topk(k):
        part = np.argpartition(a, -k)[-k:]
        return part[np.argsort(-a[part], kind="stable")]

    for name, f_cp, f_np, f_t in (
            ("sort (values, indices)", lambda: t.sort(), lambda: np.argsort(a, kind="stable"),
             lambda x: torch.sort(x, stable=True)),
            ("topk k=10", lambda: t.topk(10), lambda: np_topk(10), lambda x: torch.topk(x, 10)),
            ("topk k=1000", lambda: t.topk(1000), lambda: np_topk(1000), lambda x: torch.topk(x, 1000)),
            ("cumsum", lambda: t.cumsum(0), lambda: np.cumsum(a), lambda x: torch.cumsum(x, 0))):
        t_cp = _idle_then(lambda: median_time(f_cp, repeat=5))
        t_np = _idle_then(lambda: median_time(f_np, repeat=5, sync=False))
        row = dict(clownpiece_ms=t_cp * 1e3, numpy_ms=t_np * 1e3, ratio_vs_numpy=t_np / t_cp)
        if name.startswith("sort"):
            row["numpy_unstable_sort_ms"] = _idle_then(lambda: median_time(lambda: np.sort(a), repeat=5,
                                                                           sync=False)) * 1e3
        if torch is not None:
            x = torch.from_numpy(a)
            row["ratio_vs_torch"] = _idle_then(lambda: median_time(lambda: f_t(x), repeat=5, sync=False)) / t_cp
        record("sort", name, **row)


def bench_loader(args):
    from bench_loader import bench_loader as run  # tools/bench_loader.py: DataLoader prefetching
    run(args, record)


def bench_examples(args):
    from bench_examples import bench_examples as run  # tools/bench_examples.py: the example scripts' steps
    run(args, record)


SECTIONS = collections.OrderedDict(gemm=bench_gemm, elementwise=bench_elementwise, small=bench_small_ops,
                                   launch=bench_launch,
                                   build=bench_build, train=bench_train, clip=bench_clip,
                                   schedule=bench_schedule, layers=bench_layers, sort=bench_sort,
                                   loader=bench_loader, examples=bench_examples)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--profile", action="store_true", help="profile the seed training step instead")
    ap.add_argument("--no-jit", action="store_true", help="schedule: run every step eagerly")
    args = ap.parse_args()
    if args.profile:
        os.environ.setdefault("CLOWNPIECE_PROFILE", "1")  # device timestamps per kernel
    print(f"device: {backend.device()}")
    if _PINNED_BLAS:
        print(f"(unset for this run: {', '.join(f'{k}={v}' for k, v in _PINNED_BLAS.items())})")
    print(f"numpy {np.__version__}" + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
                                        if torch is not None else ", torch not installed"))
    if args.profile:
        profile_train(args)
    else:
        for name in (args.only.split(",") if args.only else SECTIONS):
            SECTIONS[name](args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=str(backend.device()), results=RESULTS), f, indent=2)


if __name__ == "__main__":
    main()
