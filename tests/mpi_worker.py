"""Run under `mpirun -n 2` by tests/test_distributed.py: each scenario's checks on every rank; rank 0
writes {scenario: ["ok" from rank 0, from rank 1, ...]} as JSON to argv[1]. A failing check prints its
traceback and aborts the job (the other ranks may be waiting for it in a collective).

`python tests/mpi_worker.py abort` instead makes rank 1 raise while the others wait in a collective
(the job must end within seconds with rank 1's message)."""
import faulthandler
import json
import math
import sys
import time
import traceback

import numpy as np

import clownpiece as cp
from clownpiece import distributed as dist, nn
from clownpiece.nn.parallel import DistributedDataParallel as DDP
from clownpiece.utils.optim import SGD

RANK = WORLD = None  # set under mpirun, in __main__
SCENARIOS = {}  # name -> checks (the pytest side lists them by importing this file)


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def raises(exc, match, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc as e:
        assert match in str(e), f"{exc.__name__} raised, but {match!r} is not in its message: {e}"
        return str(e)
    raise AssertionError(f"{getattr(fn, '__name__', fn)} did not raise {exc.__name__} ({match!r})")


def gathered(values):
    """Every rank's numpy array, host-side (for checking only)."""
    return dist._require().comm.allgather(np.asarray(values))


def rank_data(r, shape, salt=0):
    return np.random.default_rng(100 * r + salt).normal(size=shape)


# ---- collectives ------------------------------------------------------------------------------------------

@scenario
def collectives():
    every = [rank_data(r, (3, 4)) for r in range(WORLD)]
    refs = {"sum": np.sum(every, 0), "avg": np.mean(every, 0), "max": np.max(every, 0), "min": np.min(every, 0),
            "product": np.prod(every, 0)}
    for dtype, tol in ((np.float32, 1e-6), (np.float64, 1e-13)):
        for op, ref in refs.items():
            t = cp.Tensor(every[RANK], dtype=dtype)
            assert dist.all_reduce(t, op) is t
            np.testing.assert_allclose(t.numpy(), ref, rtol=tol, atol=tol, err_msg=f"{op} {dtype}")
    # a non-contiguous view is reduced in place, its base's other elements untouched
    base = cp.Tensor(np.stack([every[RANK].T, np.full((4, 3), 7.0 + RANK)]))
    view = base[0].transpose(0, 1)
    dist.all_reduce(view, dist.ReduceOp.SUM)
    np.testing.assert_allclose(base.numpy()[0].T, refs["sum"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(base.numpy()[1], np.full((4, 3), 7.0 + RANK))
    # 0-dim and empty
    s = cp.Tensor(float(RANK + 1))
    dist.all_reduce(s, "max")
    assert s.item() == WORLD
    e = cp.zeros(0, 3)
    dist.all_reduce(e)
    assert e.shape == [0, 3]
    # broadcast from the last rank, all_gather, broadcast_object
    src = WORLD - 1
    b = cp.Tensor(every[RANK])
    dist.broadcast(b, src=src)
    np.testing.assert_allclose(b.numpy(), every[src], rtol=1e-6)
    out = [cp.zeros(3, 4) for _ in range(WORLD)]
    dist.all_gather(out, cp.Tensor(every[RANK]))
    for r in range(WORLD):
        np.testing.assert_allclose(out[r].numpy(), every[r], rtol=1e-6)
    assert dist.broadcast_object({"rank": RANK}, src=src) == {"rank": src}
    dist.barrier()


@scenario
def bad_arguments_raise_on_every_rank():
    t = cp.ones(3)
    raises(ValueError, "unknown op 'median'", dist.all_reduce, t, "median")
    raises(ValueError, "unknown op", dist.all_reduce, t, 3)
    for src in (WORLD, -1, 0.5, True, "0"):
        raises(ValueError, f"src must be a rank in [0, {WORLD})", dist.broadcast, t, src)
    raises(ValueError, f"src must be a rank in [0, {WORLD})", dist.broadcast_object, 1, WORLD)
    raises(TypeError, "expected a clownpiece tensor", dist.all_reduce, np.ones(3))
    raises(ValueError, f"a list of {WORLD} tensors", dist.all_gather, [t], t)
    raises(ValueError, "tensor_list[1] has shape [2]", dist.all_gather, [cp.ones(3), cp.ones(2)], t)
    # shapes that differ between ranks raise on every rank (and nothing is written)
    u = cp.ones(3 + RANK)
    msg = raises(RuntimeError, "differs between ranks", dist.all_reduce, u)
    assert "rank 0 has ((3,), 'float32')" in msg and "rank 1 has ((4,), 'float32')" in msg, msg
    np.testing.assert_array_equal(u.numpy(), np.ones(3 + RANK))
    raises(RuntimeError, "differs between ranks", dist.broadcast, cp.ones(2, dtype=[np.float32, np.float64][RANK]))
    model = nn.Linear(3, 2)
    for cap, exc, match in ((0, ValueError, "bucket_cap_mb must be > 0"), (-1, ValueError, "must be > 0"),
                            (math.nan, ValueError, "must be > 0"), ("25", TypeError, "number of megabytes"),
                            (True, TypeError, "number of megabytes")):
        raises(exc, match, DDP, model, bucket_cap_mb=cap)
    raises(TypeError, "expected an nn.Module", DDP, [model])


@scenario
def parameter_shapes_that_differ_raise_at_construction():
    model = nn.Sequential(nn.Linear(4, 5 + RANK), nn.ReLU(), nn.Linear(5 + RANK, 2))
    msg = raises(RuntimeError, "differs between ranks", DDP, model)
    assert "('0.weight', (5, 4), 'float32')" in msg and "('0.weight', (6, 4), 'float32')" in msg, msg


# ---- DistributedDataParallel: the same numbers as one process on the whole batch ----------------------------

def mlp():
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 4))


def batches(steps, batch):
    rng = np.random.default_rng(7)
    return [(rng.normal(size=(batch, 6)).astype(np.float32), rng.integers(0, 4, size=batch)) for _ in range(steps)]


def train(model, data, forward=None, shard=False):
    """SGD with momentum and weight decay over `data`; each rank takes its contiguous share when shard."""
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    for x, y in data:
        if shard:
            n = len(x) // WORLD
            x, y = x[RANK * n:(RANK + 1) * n], y[RANK * n:(RANK + 1) * n]
        loss = loss_fn((forward or model)(cp.Tensor(x)), cp.Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.numpy() for p in model.parameters()]


@scenario
def ddp_steps_equal_one_process_on_the_whole_batch():
    data = batches(steps=4, batch=8)
    cp.manual_seed(3)
    reference = train(mlp(), data)
    for cap in (25, 1e-4, math.inf):  # one bucket; one per parameter (started during backward); one at the end
        cp.manual_seed(3)
        model = mlp()
        ddp = DDP(model, bucket_cap_mb=cap)
        assert len(ddp._buckets) == (6 if cap == 1e-4 else 1)
        got = train(model, data, forward=ddp, shard=True)
        for g, r in zip(got, reference):
            np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-6, err_msg=f"bucket_cap_mb={cap}")


@scenario
def ranks_that_start_different_end_identical():
    cp.manual_seed(RANK)  # different weights on every rank
    model = mlp()
    before = gathered(model[0].weight.numpy())
    assert not np.array_equal(before[0], before[1])
    ddp = DDP(model, bucket_cap_mb=1e-3)
    for p in model.parameters():
        every = gathered(p.numpy())
        np.testing.assert_array_equal(every[RANK], every[0])
    np.testing.assert_array_equal(model[0].weight.numpy(), before[0])  # rank 0's weights won
    train(model, batches(3, 8), forward=ddp, shard=True)  # each rank its own data
    for p in model.parameters():
        every = gathered(p.numpy())
        for r in range(WORLD):
            np.testing.assert_array_equal(every[r], every[0])


@scenario
def no_sync_accumulates_locally_then_averages():
    (x1, y1), (x2, y2) = batches(2, 8)
    loss_fn = nn.CrossEntropyLoss()
    cp.manual_seed(5)
    ref = mlp()
    for x, y in ((x1, y1), (x2, y2)):
        loss_fn(ref(cp.Tensor(x)), cp.Tensor(y)).backward()
    cp.manual_seed(5)
    model = mlp()
    ddp = DDP(model, bucket_cap_mb=1e-4)
    n = 8 // WORLD
    part = slice(RANK * n, (RANK + 1) * n)
    with ddp.no_sync():
        loss_fn(ddp(cp.Tensor(x1[part])), cp.Tensor(y1[part])).backward()
    local = gathered(model[0].weight.grad.numpy())
    assert not np.allclose(local[0], local[1])  # not reduced
    loss_fn(ddp(cp.Tensor(x2[part])), cp.Tensor(y2[part])).backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=2e-5, atol=2e-6)


@scenario
def buckets_start_during_backward():
    model = mlp()
    seen = []
    # registered before DDP's hooks: runs as the first layer's weight (the last bucket) gets its gradient
    model[0].weight.register_post_accumulate_grad_hook(
        lambda p: seen.append([b.request is not None for b in ddp._buckets]))
    ddp = DDP(model, bucket_cap_mb=1e-4)
    ddp(cp.randn(4, 6)).sum().backward()
    assert len(seen) == 1 and seen[0][0] and not seen[0][-1], seen
    assert all(b.request is None for b in ddp._buckets)  # all finished when backward returned


@scenario
def buffers_follow_rank_0():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm(4))
    ddp = DDP(model)
    ddp(cp.Tensor(rank_data(RANK, (5, 3))))  # the running statistics now differ between ranks
    assert not np.allclose(*gathered(model[1].running_mean.numpy()))
    ddp.eval()
    ddp(cp.ones(2, 3))  # broadcast_buffers: rank 0's statistics reach every rank first
    every = gathered(model[1].running_mean.numpy())
    np.testing.assert_array_equal(every[RANK], every[0])


@scenario
def an_unused_parameter_is_named_at_the_next_forward():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.spare = mlp(), nn.Linear(2, 2)

        def forward(self, x):
            return self.body(x)

    ddp = DDP(WithSpare())
    ddp(cp.randn(2, 6)).sum().backward()
    raises(RuntimeError, "no gradient for ['spare.weight', 'spare.bias']", ddp, cp.randn(2, 6))


def run_scenarios(out_path):
    results = {}
    for name, fn in SCENARIOS.items():
        print(f"rank {RANK}: {name}", file=sys.stderr, flush=True)
        try:
            fn()
        except Exception:  # the other ranks may be waiting in a collective: end the job, don't hang it
            print(f"rank {RANK}: scenario {name} failed\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            dist._require().comm.Abort(1)
        results[name] = dist._require().comm.gather("ok", root=0)
    if RANK == 0:
        with open(out_path, "w") as f:
            json.dump(results, f)


def abort():
    if RANK == 1:
        time.sleep(0.2)
        raise ValueError("rank 1 gives up")
    dist.barrier()  # never completes: rank 1 is gone


if __name__ == "__main__":
    faulthandler.dump_traceback_later(90, exit=True)  # a hang shows where, before the test's timeout
    dist.init()  # before any tensor is made
    RANK, WORLD = dist.get_rank(), dist.get_world_size()
    if sys.argv[1] == "abort":
        abort()
    else:
        run_scenarios(sys.argv[1])
