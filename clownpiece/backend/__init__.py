"""The OpenCL backend: device choice, program/kernel cache, buffer pool, launches and transfers.

Knows nothing about autograd. Everything goes to one in-order queue and nothing here waits for it except
`download` and `synchronize`."""
import collections
import os

import numpy as np
import pyopencl as cl

from .discovery import Device, DeviceError, list_devices, describe
from .memory import Pool, Storage
from .programs import Programs, KernelBuildError
from .stats import stats, reset_stats, counters

_SYNC_EACH = os.environ.get("CLOWNPIECE_SYNC", "") not in ("", "0")

_dev = None
_programs = None
_pool = None
_queue = None
_pending = collections.deque()  # uploads in flight: their events keep the host arrays alive


def device():
    """The selected Device (created on first use)."""
    global _dev, _programs, _pool, _queue
    if _dev is None:
        _dev = Device()
        _programs = Programs(_dev)
        _pool = Pool(_dev.context)
        _queue = _dev.queue
    return _dev


def set_device(spec):
    """Switch to another device; tensors made on the old one must not be used afterwards."""
    global _dev
    synchronize()
    _dev = None
    _kernels.clear()
    os.environ["CLOWNPIECE_DEVICE"] = spec
    return device()


_kernels = {}  # (family, name, dtype, defines) -> cl.Kernel: one dict lookup per launch


def kernel(family, name, dtype, defines=()):
    key = (family, name, dtype, defines)
    k = _kernels.get(key)
    if k is None:
        if _programs is None:
            device()
        k = _kernels[key] = _programs.kernel(family, name, dtype, defines)
    return k


def alloc(nbytes):
    if _pool is None:
        device()
    return Storage(_pool, nbytes)


_per_kernel = None  # kernel name -> launches, while count_kernels(True) is on


def launch(knl, gsize, lsize, *args):
    """Enqueue `knl` over 1-D `gsize` work-items in groups of `lsize` (gsize is a multiple of lsize)."""
    evt = knl(_queue, (gsize,), (lsize,), *args)
    counters["launches"] += 1
    if _SYNC_EACH or _per_kernel is not None:
        _after_launch(knl, evt)


def launch_nd(knl, gsize, lsize, *args):
    evt = knl(_queue, gsize, lsize, *args)
    counters["launches"] += 1
    if _SYNC_EACH or _per_kernel is not None:
        _after_launch(knl, evt)


def _after_launch(knl, evt):
    if _per_kernel is not None:
        _per_kernel.append((knl.function_name, evt))
    if _SYNC_EACH:
        _queue.finish()


def count_kernels(on=True):
    """Start (on=True) or stop recording launches per kernel; stopping returns {name: (launches, device
    seconds)}, device seconds from event timestamps when the queue profiles (CLOWNPIECE_PROFILE=1), else 0."""
    global _per_kernel
    events, _per_kernel = _per_kernel, ([] if on else None)
    out = {}
    if events:
        synchronize()
        profiled = bool(_queue.properties & cl.command_queue_properties.PROFILING_ENABLE)
        for name, evt in events:
            n, t = out.get(name, (0, 0.0))
            out[name] = (n + 1, t + ((evt.profile.end - evt.profile.start) * 1e-9 if profiled else 0.0))
    return out


def upload(storage, host, byte_offset=0):
    """Copy a contiguous numpy array into `storage` without waiting."""
    if host.nbytes == 0:
        return
    host = np.ascontiguousarray(host)
    evt = cl.enqueue_copy(_queue, storage.buf, host, dst_offset=byte_offset, is_blocking=False)
    _pending.append(evt)
    while len(_pending) > 16 and _pending[0].command_execution_status == cl.command_execution_status.COMPLETE:
        _pending.popleft()
    counters["h2d_count"] += 1
    counters["h2d_bytes"] += host.nbytes
    if _SYNC_EACH:
        _queue.finish()


def download(storage, host, byte_offset=0):
    """Read device memory into the contiguous numpy array `host`; waits for the queue."""
    if host.nbytes:
        cl.enqueue_copy(_queue, host, storage.buf, src_offset=byte_offset, is_blocking=True)
        counters["d2h_count"] += 1
        counters["d2h_bytes"] += host.nbytes
    return host


def synchronize():
    if _queue is not None:
        _queue.finish()
    _pending.clear()


def empty_cache():
    if _pool is not None:
        synchronize()
        _pool.empty_cache()


__all__ = ["device", "set_device", "kernel", "alloc", "launch", "launch_nd", "upload", "download",
           "synchronize", "stats", "reset_stats", "empty_cache", "list_devices", "describe", "DeviceError",
           "KernelBuildError"]
