"""The current device and the one place kernels are launched from.

`launch(kernel, grid, *args)` owns what every launch needs: the grid rounded up to whole work-groups, a local
size the device allows, arguments unpacked (a tensor view passes its buffer and element offset, a Storage its
buffer, numbers pass as they are and pyopencl packs them by the kernel's declared parameter types), the check
that every buffer lives on this device, out-of-memory recovery, and the launch counters. Everything goes to
one in-order queue, and nothing here waits for it except `download` and `synchronize`.

While clownpiece.jit captures a function, a recorder (`start_recording`) sees every launch, upload and
download made here and every buffer the pool hands out (memory.py); `replayable` and `kernel_number` are the
two ways ops tell it which kernel arguments must be recomputed at a replay."""
import collections
import os

import numpy as np
import pyopencl as cl

from . import checks, memory, stats as _stats
from .discovery import Device, DeviceError, describe, list_devices
from .memory import HOST_ONLY_THREADS, OUT_OF_MEMORY, Pool, Storage, refuse_host_only
from .programs import Programs

_SYNC_EACH = os.environ.get("CLOWNPIECE_SYNC", "") not in ("", "0")

_dev = _programs = _pool = _queue = None
_pending = collections.deque()  # uploads in flight: their events keep the host arrays alive
counters = _stats.counters


class DeviceMismatchError(RuntimeError):
    pass


class LaunchError(RuntimeError):
    pass


def device():
    """The current Device (created on first use from $CLOWNPIECE_DEVICE and $CLOWNPIECE_LIMITS)."""
    if _dev is None:
        _select(Device())
    return _dev


_caches = {}  # Device -> (Programs, Pool): each device keeps its kernels and buffers while others are current


def _select(dev):
    global _dev, _programs, _pool, _queue
    if dev not in _caches:
        _caches[dev] = (Programs(dev), Pool(dev))
    _dev, (_programs, _pool), _queue = dev, _caches[dev], dev.queue


def set_device(spec=None, limits=None):
    """Make a device current: new tensors live there and ops run there. `spec` is a Device (e.g. a previous
    `device()`, to switch back) or a CLOWNPIECE_DEVICE-style string (None: the default choice); `limits` a
    CLOWNPIECE_LIMITS-style string. Tensors of another device can still be read (`numpy()`), but an op
    that uses them raises DeviceMismatchError. Returns the new current Device."""
    if _dev is not None:
        _fusion_flush_all()  # deferred results run on the device they were made for
        synchronize()
    _select(spec if isinstance(spec, Device) else Device(spec, limits))
    return _dev


def resolve_device(spec, op="device"):
    """The Device that a `device=` argument names (PyTorch users pass these to to() and the factories):
    None or "opencl": the current device; "opencl:N": the N-th device of list_devices() (the current Device,
    or one made before by set_device or an earlier call, when it is that device; else a new one); a Device:
    itself. Anything else ("cpu", "cuda", an int, ...) raises DeviceError naming the devices that exist."""
    if spec is None:
        return device()
    if isinstance(spec, Device):
        return spec
    if isinstance(spec, str):
        kind, colon, index = spec.strip().lower().partition(":")
        if kind == "opencl" and not colon:
            return device()
        found = list_devices()
        if kind == "opencl" and index.isdigit() and int(index) < len(found):
            n = int(index)
            current = device()
            for dev in [current, *_caches]:
                if dev.index == n:
                    return dev
            pi, di = found[n][:2]
            dev = Device(f"{pi}:{di}")
            _caches[dev] = (Programs(dev), Pool(dev))
            return dev
    raise DeviceError(_not_a_device(spec, op))


def _not_a_device(spec, op):
    listing = "\n  ".join(f"opencl:{i}  {describe(*f)}" for i, f in enumerate(list_devices()))
    hint = ""
    if isinstance(spec, str) and spec.strip().lower().partition(":")[0] in ("cpu", "cuda", "mps", "xpu", "meta"):
        hint = (" clownpiece tensors live on OpenCL devices only: there are no host ('cpu') tensors (read "
                "values with .numpy() or .tolist()), and a GPU or the CPU is used through its OpenCL driver, "
                "listed below when installed.")
    return (f"{op}: {spec!r} is not a clownpiece device.{hint} Pass 'opencl' (the current device, "
            f"{device().name}), 'opencl:N', or a device object (t.device, clownpiece.backend.device()). "
            f"Devices:\n  {listing}")


class using_device:
    """`with using_device(dev):` makes dev current for the block and then restores the previous device (a
    no-op when dev is already current; otherwise set_device's flush and wait, twice)."""

    def __init__(self, dev):
        self.dev, self.prev = dev, None

    def __enter__(self):
        current = device()
        if self.dev is not current:
            self.prev = current
            set_device(self.dev)
        return self.dev

    def __exit__(self, *exc):
        if self.prev is not None:
            set_device(self.prev)
        return False


def alloc_on(dev, nbytes):
    """A Storage in `dev`'s pool, whether or not dev is current (for copies between devices)."""
    if dev is device():
        return Storage(_pool, nbytes)
    if dev not in _caches:
        _caches[dev] = (Programs(dev), Pool(dev))
    return Storage(_caches[dev][1], nbytes)


_fusion_flush_all = None  # set by backend/fusion.py (which imports this module)


def set_flush_all_hook(fn):
    global _fusion_flush_all
    _fusion_flush_all = fn


def program_cache():
    """The current device's Programs (its one program and kernel cache)."""
    if _programs is None:
        device()
    return _programs


def kernel(family, name, dtype, defines=()):
    """Kernel `name` of cl_kernels/<family>.cl built for `dtype` with `-D` `defines` (built once, then cached)."""
    k = (_programs or program_cache()).kernels.get((family, name, dtype, defines))
    return k if k is not None else _programs.kernel(family, name, dtype, defines)


def alloc(nbytes):
    if _pool is None:
        device()
    return Storage(_pool, nbytes)


# ---- launches -------------------------------------------------------------------------------------------
_kinds = {}  # argument type -> 1 tensor view, 2 Storage, 0 anything else (a number or a cl.LocalMemory)


def _kind(cls):
    kind = 2 if issubclass(cls, Storage) else 1 if hasattr(cls, "_storage") and hasattr(cls, "_offset") else 0
    _kinds[cls] = kind
    return kind


def _buffer(st):
    if st.pool is not _pool:
        raise DeviceMismatchError(f"a tensor on device {st.pool.device.name} was used on device {_dev.name}, "
                                  f"the current one (after backend.set_device); copy it over with "
                                  f"t.to(clownpiece.backend.device())")
    return st.buf


def raw_buffer(st):
    """st's buffer as it is, without running pending expressions (backend/fusion.py settles those itself)."""
    if st.pool is not _pool:
        _buffer(st)  # raises
    if _recorder is not None:
        _recorder.note_storage(st)  # a launch will name this buffer without its Storage
    return st._buf


def _unpack(args):
    """The launch's OpenCL arguments: a tensor view gives its buffer and element offset, a Storage its buffer,
    anything else itself. A buffer with a pending expression runs it first (launches of its own), so every
    value is known before any argument of this launch is set."""
    packed = []
    append = packed.append
    for a in args:
        cls = type(a)
        if cls is int or cls is float or cls is np.ndarray:  # the usual scalars and layout vectors
            append(a)
            continue
        kind = _kinds.get(cls)
        if kind is None:
            kind = _kind(cls)
        if kind == 1:
            st = a._storage
            if st.pool is not _pool:
                _buffer(st)  # raises
            append(st._buf if st._expr is None and not st._readers else st.buf)  # Storage.buf, inlined
            append(a._offset)
        elif kind == 2:
            if a.pool is not _pool:
                _buffer(a)
            append(a._buf if a._expr is None and not a._readers else a.buf)
        else:
            append(a)
    return packed


def launch(k, grid, *args, local=None):
    """Enqueue Kernel `k` over `grid` work-items (an int, or a tuple for a 2-D/3-D range), each dim rounded up
    to a whole number of work-groups of `local` (default: the kernel's 1-D size, with 1 in the other dims).
    Kernels check `get_global_id(d) < extent` themselves. An empty grid launches nothing."""
    if HOST_ONLY_THREADS:
        refuse_host_only(f"launching kernel {k.name}")
    _enqueue(k, grid, local, _unpack(args), args)


def launch_unpacked(k, n, args):
    """launch over n work-items (1-D, default groups) with `args` already in OpenCL form: buffers from
    raw_buffer, with their element offsets, and numbers. Fusion's launches, which settle pending operands
    themselves, skip _unpack's second look at every argument."""
    if HOST_ONLY_THREADS:
        refuse_host_only(f"launching kernel {k.name}")
    _enqueue(k, n, None, args, args)


def _enqueue(k, grid, local, packed, args):
    if type(grid) is int:
        if grid <= 0:
            return
        if local is None:
            size = k.local
        else:
            size = local
            _check_local(k, (size,))
        gsize, lsize = (-(-grid // size) * size,), (size,)
    else:
        if 0 in grid:
            return
        if local is None:
            lsize = (k.local,) + (1,) * (len(grid) - 1)
        else:
            lsize = local
            _check_local(k, lsize)
        if len(grid) == 2:  # most 2-D launches (matmul's): no generator
            gsize = (-(-grid[0] // lsize[0]) * lsize[0], -(-grid[1] // lsize[1]) * lsize[1])
        else:
            gsize = tuple(-(-g // size) * size for g, size in zip(grid, lsize))
    try:
        evt = k.cl(_queue, gsize, lsize, *packed)
    except cl.Error as e:
        if e.code not in OUT_OF_MEMORY:
            raise
        evt = _retry_out_of_memory(k, gsize, lsize, packed)
    counters["launches"] += 1
    if _observing:
        _after_launch(k, evt)
    if _recorder is not None:
        _recorder.launch(k, gsize, lsize, args)


_checked_locals = set()


def _check_local(k, lsize):
    key = (k, lsize)
    if key in _checked_locals:
        return
    n = 1
    for size in lsize:
        n *= size
    if n > k.max_local:
        raise LaunchError(f"kernel {k.name}: work-group of {n} work-items {list(lsize)} exceeds the "
                          f"{k.max_local} that device {_dev.name} allows for it (max_work_group_size); the "
                          f"caller must choose a smaller strategy")
    _checked_locals.add(key)


def _retry_out_of_memory(k, gsize, lsize, packed):
    """Drivers that allocate lazily report a full device at the first launch that touches a new buffer."""
    _queue.finish()
    _pool.empty_cache()
    try:
        return k.cl(_queue, gsize, lsize, *packed)
    except cl.Error as e:
        if e.code not in OUT_OF_MEMORY:
            raise
        raise _pool.out_of_memory() from None


# ---- watching launches: CLOWNPIECE_SYNC, count_kernels, the kernel log --------------------------------
_per_kernel = None  # [(kernel name, event)] while count_kernels(True) is on
_kernel_log = os.environ.get("CLOWNPIECE_KERNEL_LOG")  # file that collects the names of kernels launched
_launched = set()
_observing = _SYNC_EACH or bool(_kernel_log)


def _after_launch(k, evt):
    if _per_kernel is not None:
        _per_kernel.append((k.name, evt))
    if _kernel_log and (k.family, k.name) not in _launched:
        _log_kernel(k.family, k.name)
    if _SYNC_EACH:
        _queue.finish()


def _log_kernel(family, name):
    """Appends a kernel's first launch to the log at once, so a run that is killed (a CI timeout) still
    tells what it reached."""
    _launched.add((family, name))
    with open(_kernel_log, "a") as f:
        f.write(f"{family} {name}\n")


def count_kernels(on=True):
    """Start (on=True) or stop recording launches per kernel; stopping returns {name: (launches, device
    seconds)}, device seconds from event timestamps when the queue profiles (CLOWNPIECE_PROFILE=1), else 0."""
    global _per_kernel, _observing
    events, _per_kernel = _per_kernel, ([] if on else None)
    _observing = _SYNC_EACH or bool(_kernel_log) or on
    out = {}
    if events:
        synchronize()
        profiled = bool(_queue.properties & cl.command_queue_properties.PROFILING_ENABLE)
        for name, evt in events:
            n, t = out.get(name, (0, 0.0))
            out[name] = (n + 1, t + ((evt.profile.end - evt.profile.start) * 1e-9 if profiled else 0.0))
    return out


# ---- transfers ------------------------------------------------------------------------------------------
def in_flight(evt):
    """Keep a non-blocking upload's event (and through it the host array it reads) until it completed; the
    oldest completed ones are dropped, so a long run without a synchronize holds a few, not one per copy."""
    _pending.append(evt)
    while len(_pending) > 16 and _pending[0].command_execution_status == cl.command_execution_status.COMPLETE:
        _pending.popleft()


def upload(storage, host, byte_offset=0, private=False):
    """Copy the numpy array `host` into `storage` without waiting. The transfer runs later, so unless the
    caller made `host` for it and will not touch it again (`private=True`), it is copied first: the caller
    may change its array meanwhile (torch.tensor(a) copies a when called, and so must we)."""
    if HOST_ONLY_THREADS:
        refuse_host_only("an upload to the device")
    if host.nbytes == 0:
        return
    host = np.ascontiguousarray(host) if private else np.array(host, order="C", copy=True)
    if _recorder is not None:
        _recorder.upload(storage, host, byte_offset)
    in_flight(cl.enqueue_copy(storage.pool.device.queue, storage.buf, host, dst_offset=byte_offset,
                              is_blocking=False))
    counters["h2d_count"] += 1
    counters["h2d_bytes"] += host.nbytes
    if _SYNC_EACH:
        _queue.finish()


def download(storage, host, byte_offset=0):
    """Read device memory (of any device) into the contiguous numpy array `host`; waits for its queue."""
    if HOST_ONLY_THREADS:
        refuse_host_only("a read of device memory")
    if _recorder is not None:
        _recorder.host_read()  # raises: a captured function cannot wait for the device
    if host.nbytes:
        device = storage.pool.device
        word = checks.read_with(device)  # the device's error word rides along: no extra wait
        cl.enqueue_copy(device.queue, host, storage.buf, src_offset=byte_offset, is_blocking=True)
        counters["d2h_count"] += 1
        counters["d2h_bytes"] += host.nbytes
        checks.check(word, device)
    return host


def synchronize() -> None:
    """Wait for the current device's queue; raises checks.DeviceAssertError for a failed device-side check."""
    if _queue is not None:
        word = checks.read_with(_dev)
        _queue.finish()
        checks.check(word, _dev)
    _pending.clear()


def empty_cache():
    if _pool is not None:
        synchronize()
        _pool.empty_cache()


# ---- capture (clownpiece.jit) ---------------------------------------------------------------------------
_recorder = None  # the clownpiece.jit recording in progress, if any
TRACED = set()    # number classes that jit traces (kernel_number passes them through unconverted)


def start_recording(recorder):
    """Route launches, uploads, downloads and pool allocations to `recorder` until stop_recording()."""
    global _recorder
    if _recorder is not None:
        raise RuntimeError("a capture is already recording")
    _recorder = recorder
    memory.set_watcher(recorder)


def stop_recording():
    global _recorder
    _recorder = None
    memory.set_watcher(None)


def recording():
    return _recorder is not None


def kernel_number(dtype, value):
    """A Python number as a kernel argument of `dtype`: `dtype.type(value)`, except that a number jit traces
    (a float argument of a captured function) passes as it is, so that the capture sees where it goes."""
    return value if type(value) in TRACED else dtype.type(value)


def replayable(fn, *args):
    """`fn(*args)`: a tuple of kernel arguments computed from host state that changes from call to call (the
    random generator's counter, an optimizer's step count). Under clownpiece.jit, each replay calls `fn` again,
    in the same order as the captured call did, instead of reusing these values; they must go straight to
    kernel arguments (no branching on them)."""
    values = fn(*args)
    if _recorder is not None:
        values = _recorder.replayable(fn, args, values)
    return values
