"""A per-device buffer pool. Sizes are rounded to a few buckets per power of two; a freed buffer waits in
its bucket for the next allocation of that size. Reusing a buffer is safe without waiting: every command
goes to one in-order queue, so work that reads the old contents runs before work that writes the new.

The pool respects the device's limits: one buffer at most `max_mem_alloc_size` bytes, and (when
CLOWNPIECE_LIMITS sets `global_mem_size`) no more than that in all. Running out frees the cached buffers and
tries once more before raising DeviceMemoryError."""
import os
import threading

import pyopencl as cl

from . import stats as _stats

# CLOWNPIECE_POOL=0: every allocation is a new buffer of exactly the size asked, and a released buffer is
# kept, unused, until the process ends. The strict pass's uninitialised-value check runs this way: a reused
# buffer's stale contents would hide a kernel that reads memory nobody wrote, and oclgrind 21.10's
# uninitialised-value tracking misreports reused memory (its shadow of a buffer is keyed by a buffer id that
# clReleaseMemObject frees for reuse, and is resized to the last host write into it).
_REUSE = os.environ.get("CLOWNPIECE_POOL", "1") != "0"

_MIN_BYTES = 256


class DeviceMemoryError(MemoryError):
    pass


# ---- host-only threads -----------------------------------------------------------------------------------
# The pool, the counters, fusion's pending expressions and the order of the queue belong to the thread that
# runs the ops: nothing here is locked. Threads that must stay off the device (the data loader's workers,
# utils/data/dataloader.py) register here, and the entry points to device state (allocation here; launch,
# upload and download in runtime.py) refuse them before touching anything.
HOST_ONLY_THREADS = set()  # thread idents


class HostOnlyThreadError(RuntimeError):
    """Device work asked for on a thread registered as host-only."""


def refuse_host_only(what):
    """Raise HostOnlyThreadError when the calling thread is registered host-only (callers check the set first,
    so that the common case, no such threads, costs one test)."""
    if threading.get_ident() in HOST_ONLY_THREADS:
        raise HostOnlyThreadError(f"{what} on a data loader worker thread: worker threads may only build host "
                                  f"data (numpy arrays, numbers); device tensors are made on the main thread")


class host_only_thread:
    """`with host_only_thread():` registers the calling thread as host-only for the block."""

    def __enter__(self):
        HOST_ONLY_THREADS.add(threading.get_ident())
        return self

    def __exit__(self, *exc):
        HOST_ONLY_THREADS.discard(threading.get_ident())
        return False


def _bucket(nbytes):
    if nbytes <= _MIN_BYTES:
        return _MIN_BYTES
    # four buckets per power of two: at most 25% waste
    top = 1 << (nbytes - 1).bit_length()
    step = top >> 3
    return (nbytes + step - 1) // step * step


_buckets = {}


def bucket(nbytes):
    size = _buckets.get(nbytes)
    if size is None:
        size = _buckets[nbytes] = _bucket(nbytes)
    return size


def _mib(n):
    return f"{n / 2**20:.1f} MiB"


# errors an allocation (or the first use of a lazily allocated buffer) raises when the device is full
OUT_OF_MEMORY = (cl.status_code.MEM_OBJECT_ALLOCATION_FAILURE, cl.status_code.OUT_OF_RESOURCES,
                 cl.status_code.OUT_OF_HOST_MEMORY)


class Pool:
    def __init__(self, device):
        self.device = device
        self.context = device.context
        self.free = {}
        self.retired = []  # CLOWNPIECE_POOL=0: released buffers, never reused nor freed
        self.in_use = self.cached = 0  # bytes, this pool's own (stats' counters add up every pool)
        # a simulated memory size is enforced here; a real one by the driver's allocation errors
        self.capacity = device.global_mem_size if "global_mem_size" in device.limited else None

    def alloc(self, nbytes):
        if HOST_ONLY_THREADS:
            refuse_host_only("a device allocation")
        size = bucket(nbytes) if _REUSE else max(nbytes, _MIN_BYTES)
        free = self.free.get(size)
        if free:
            buf = free.pop()
            self.cached -= size
            _stats.counters["pool_bytes_cached"] -= size
        else:
            if size > self.device.max_mem_alloc_size:
                if nbytes > self.device.max_mem_alloc_size:
                    raise DeviceMemoryError(
                        f"cannot allocate {nbytes} bytes ({_mib(nbytes)}) in one buffer: device "
                        f"{self.device.name} allows at most {self.device.max_mem_alloc_size} bytes "
                        f"({_mib(self.device.max_mem_alloc_size)}) per allocation (max_mem_alloc_size)")
                size = nbytes  # the bucket's rounding would cross the limit: take the exact size
            buf = self._new_buffer(size, nbytes)
        self.in_use += size
        _stats.counters["pool_bytes_in_use"] += size
        return buf, size

    def _new_buffer(self, size, nbytes):
        for attempt in (0, 1):
            if self.capacity is not None and self.in_use + self.cached + size > self.capacity:
                if attempt == 0:
                    self.empty_cache()
                    continue
                break
            try:
                buf = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, size)
                _stats.counters["allocations"] += 1
                return buf
            except cl.Error as e:
                if e.code not in OUT_OF_MEMORY:
                    raise
                if attempt == 0:
                    self.empty_cache()
        raise self.out_of_memory(nbytes)

    def out_of_memory(self, nbytes=None):
        """The error for a full device: `nbytes` asked for, or None when a launch (with lazily allocated
        buffers) failed."""
        limit = self.capacity if self.capacity is not None else self.device.global_mem_size
        what = f"allocating {nbytes} bytes ({_mib(nbytes)})" if nbytes is not None else "launching a kernel"
        return DeviceMemoryError(
            f"out of device memory on {self.device.name}: {what} with "
            f"{self.in_use} bytes ({_mib(self.in_use)}) in use by live tensors, device memory "
            f"{limit} bytes ({_mib(limit)}); cached buffers were freed and the allocation retried. Free "
            f"tensors (del, smaller batches) or use a device with more memory")

    def release(self, buf, size):
        if not _REUSE:
            self.retired.append(buf)
            self.in_use -= size
            _stats.counters["pool_bytes_in_use"] -= size
            return
        self.free.setdefault(size, []).append(buf)
        self.in_use -= size
        self.cached += size
        c = _stats.counters
        c["pool_bytes_in_use"] -= size
        c["pool_bytes_cached"] += size

    def empty_cache(self):
        for bufs in self.free.values():
            for b in bufs:
                _stats.counters["pool_bytes_cached"] -= b.size
                self.cached -= b.size
                b.release()
        self.free.clear()


# Set while clownpiece.jit records (runtime.start_recording): told of every Storage made and freed.
_watcher = None


def set_watcher(watcher):
    global _watcher
    _watcher = watcher


# Set by backend/fusion.py: runs a storage's pending expression and its pending readers (see Storage.buf).
# A hook rather than an import keeps this module below fusion.
_flush_pending = None


def set_flush_hook(fn):
    global _flush_pending
    _flush_pending = fn


class Storage:
    """A pooled device buffer shared by every view of it; returns to the pool when the last view dies.

    With elementwise fusion (backend/fusion.py) a new storage may hold a pending expression instead of
    contents (`_expr`), and `_readers` lists weak references to pending storages whose expressions read this
    one. `buf`, which every launch, upload and download goes through, first runs this storage's own
    expression and every pending reader (the caller may be about to write in place), so a deferred result is
    computed before it is read and from the inputs as they were when it was made.

    `_version` counts the in-place writes into the storage through any of its views (PyTorch's version
    counter): autograd remembers it for every tensor it saves and refuses to backward through a tensor that
    was overwritten since. The tensor ops that write in place bump it; backend code never does."""
    __slots__ = ("_buf", "size", "pool", "_expr", "_readers", "_version", "__weakref__")

    def __init__(self, pool, nbytes):
        self.pool = pool
        self._buf, self.size = pool.alloc(nbytes)
        self._expr = self._readers = None
        self._version = 0
        if _watcher is not None:
            _watcher.allocated(self)

    @property
    def buf(self):
        if self._expr is not None or self._readers:
            _flush_pending(self)
        return self._buf

    def __del__(self):
        try:
            if _watcher is not None:
                _watcher.released(self)
            self.pool.release(self._buf, self.size)
        except Exception:  # interpreter shutdown, or a failed allocation
            pass
