"""nn.parallel.DistributedDataParallel: data-parallel training over clownpiece.distributed (MPI).

Each rank runs the same model on its share of a batch; after `backward()` every parameter's `.grad` holds
the mean of the ranks' gradients, so the optimizer steps identically everywhere. Gradients travel in flat
buckets (Horovod's fusion buffer, PyTorch's gradient buckets): parameters are grouped in reverse order
(roughly the order backward produces their gradients) into buckets of up to `bucket_cap_mb`. As each
parameter's gradient is accumulated, a post-accumulate-grad hook copies it into its bucket's device
buffer; when a bucket is full, it is read to the host in one transfer and its non-blocking MPI allreduce
starts while backward goes on. When the last bucket has started, the hook waits for all of them, writes
each summed bucket back in one transfer, scales it by 1/world_size on the device and makes the
parameters' grads views of the result. Buckets start in bucket order on every rank, whatever order the
hooks fire in, because MPI needs every rank to issue collectives in the same order."""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Iterator

import numpy as np

from .. import distributed as dist
from ..autograd.no_grad import no_grad
from ..factories import zeros
from .module import Module


class _Bucket:
    """A flat device buffer for some parameters' gradients, its host twin and its allreduce in flight."""

    def __init__(self, params, dtype):
        self.params = params
        self.slices = []  # (start, stop, shape) of each parameter in the flat buffer
        start = 0
        for p in params:
            self.slices.append((start, start + p.numel(), p.shape))
            start += p.numel()
        self.flat = zeros(start, dtype=dtype)
        self.views = [self.flat[a:b].view(shape) for a, b, shape in self.slices]  # where each grad is copied
        self.host = np.empty(start, dtype)
        self.pending = len(params)
        self.request = None

    @property
    def nbytes(self):
        return self.host.nbytes


def _check_bucket_cap(bucket_cap_mb):
    if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, numbers.Real):
        raise TypeError(f"DistributedDataParallel: bucket_cap_mb must be a number of megabytes, got "
                        f"{type(bucket_cap_mb).__name__}")
    if not bucket_cap_mb > 0:  # also refuses NaN
        raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0 (math.inf: one bucket), got "
                         f"{bucket_cap_mb!r}")
    return float(bucket_cap_mb)


def _assign_buckets(params, cap_bytes):
    """Parameters in reverse order, cut into buckets of at most cap_bytes (a bigger parameter gets a bucket
    of its own) and never mixing dtypes."""
    buckets, current, size = [], [], 0
    for p in reversed(params):
        nbytes = p.numel() * p.dtype.itemsize
        if current and (size + nbytes > cap_bytes or p.dtype != current[0].dtype):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += nbytes
    if current:
        buckets.append(current)
    return [_Bucket(group, group[0].dtype) for group in buckets]


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training across the ranks of clownpiece.distributed (call
    `clownpiece.distributed.init()` first). At construction every rank gets rank 0's parameters and buffers
    (ranks may start from different weights) and a model whose parameter names, shapes or dtypes differ
    between ranks raises on every rank. `bucket_cap_mb`: gradient bucket size in megabytes (25 as in
    PyTorch; math.inf: one bucket, reduced after backward). `broadcast_buffers`: copy rank 0's buffers
    (running statistics) to every rank at each forward.

    Every parameter that requires grad must get a gradient in every synchronised backward; one that does
    not leaves its bucket unreduced, and the next forward raises naming it."""

    def __init__(self, module: Module, bucket_cap_mb: float = 25, broadcast_buffers: bool = True) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        cap = _check_bucket_cap(bucket_cap_mb)
        world = dist._require()
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.bucket_cap_mb = cap
        self.require_backward_grad_sync = True
        self._world = world
        named = _unique(module.named_parameters())
        self._buffers_to_sync = [b for _, b in _unique(module.named_buffers())]
        dist.check_same_across_ranks(
            "DistributedDataParallel: the model's parameters and buffers (name, shape, dtype)",
            [(n, tuple(t.shape), t.dtype.name) for n, t in named + _unique(module.named_buffers())])
        _broadcast_flat([p for _, p in named] + self._buffers_to_sync, world)
        self._params = [p for _, p in named if p.requires_grad]
        self._names = {id(p): n for n, p in named}
        self._buckets = _assign_buckets(self._params, cap * 2 ** 20 if math.isfinite(cap) else math.inf)
        self._where = {}  # id(param) -> (bucket, index in it)
        for bucket in self._buckets:
            for i, p in enumerate(bucket.params):
                self._where[id(p)] = (bucket, i)
        self._ready = set()  # ids of the parameters whose gradient is in its bucket this iteration
        self._next_bucket = 0  # the next bucket to start: buckets start in order on every rank
        self._sync = True  # whether this iteration's backward reduces (no_sync() at forward time: no)
        self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in self._params]

    # ---- the training-loop side ----------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._ready:
            missing = [self._names[id(p)] for p in self._params if id(p) not in self._ready]
            raise RuntimeError(
                f"DistributedDataParallel: the previous backward produced no gradient for {missing}, so their "
                f"buckets were never reduced and the other gradients were not averaged. Every parameter that "
                f"requires grad must be used in the loss (set requires_grad=False on the others)")
        self._sync = self.require_backward_grad_sync
        if self.broadcast_buffers and self._buffers_to_sync:
            _broadcast_flat(self._buffers_to_sync, self._world)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes of forwards run inside this block only accumulate local gradients (gradient
        accumulation); the first synchronised backward after it averages the accumulated sums."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ---- backward: buckets fill, start, finish ----------------------------------------------------------
    def _grad_ready(self, param):
        if not self._sync:
            return
        key = id(param)
        if key in self._ready:
            raise RuntimeError(f"DistributedDataParallel: parameter {self._names[key]!r} got a second gradient "
                               f"before every parameter got its first; some parameters are unused in the loss")
        self._ready.add(key)
        bucket, i = self._where[key]
        bucket.views[i].copy_(param.grad)  # backward runs with grad mode off: nothing records
        bucket.pending -= 1
        for b in self._buckets[:self._next_bucket]:  # Open MPI progresses collectives only inside MPI calls
            if b.request is not None:
                b.request.Test()
        while self._next_bucket < len(self._buckets) and self._buckets[self._next_bucket].pending == 0:
            b = self._buckets[self._next_bucket]
            dist._read(b.flat, b.host)
            b.request = self._world.comm.Iallreduce(self._world.MPI.IN_PLACE, b.host, op=self._world.MPI.SUM)
            self._next_bucket += 1
        if self._next_bucket == len(self._buckets):
            self._finish()

    def _finish(self):
        scale = 1.0 / self._world.size
        with no_grad():
            for b in self._buckets:
                b.request.Wait()
                b.request = None
                dist._write(b.flat, b.host)
                mean = b.flat * scale  # a new buffer: grads from earlier steps stay valid
                for p, (start, stop, shape) in zip(b.params, b.slices):
                    p.grad = mean[start:stop].view(shape)
                b.pending = len(b.params)
        self._ready.clear()
        self._next_bucket = 0


def _unique(named):
    seen, out = set(), []
    for name, t in named:
        if id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


def _broadcast_flat(tensors, world):
    """Rank 0's values of `tensors` to every rank with one MPI broadcast per dtype."""
    by_dtype = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for dtype, group in by_dtype.items():
        sizes = [t.numel() for t in group]
        if world.rank == 0:
            host = np.concatenate([dist._read(t).reshape(-1) for t in group]) if group else np.empty(0, dtype)
        else:
            host = np.empty(sum(sizes), dtype)
        world.comm.Bcast(host, root=0)
        if world.rank != 0:
            offset = 0
            for t, n in zip(group, sizes):
                dist._write(t, host[offset:offset + n])
                offset += n


__all__ = ["DistributedDataParallel"]
