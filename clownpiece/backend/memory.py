"""A per-device buffer pool. Sizes are rounded to a few buckets per power of two; a freed buffer waits in
its bucket for the next allocation of that size. Reusing a buffer is safe without waiting: every command
goes to one in-order queue, so work that reads the old contents runs before work that writes the new."""
import pyopencl as cl

from . import stats as _stats

_MIN_BYTES = 256


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


class Pool:
    def __init__(self, context):
        self.context = context
        self.free = {}

    def alloc(self, nbytes):
        size = bucket(nbytes)
        c = _stats.counters
        free = self.free.get(size)
        if free:
            buf = free.pop()
            c["pool_bytes_cached"] -= size
        else:
            try:
                buf = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, size)
            except cl.Error:
                self.empty_cache()
                buf = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, size)
            c["allocations"] += 1
        c["pool_bytes_in_use"] += size
        return buf, size

    def release(self, buf, size):
        self.free.setdefault(size, []).append(buf)
        c = _stats.counters
        c["pool_bytes_in_use"] -= size
        c["pool_bytes_cached"] += size

    def empty_cache(self):
        for bufs in self.free.values():
            for b in bufs:
                _stats.counters["pool_bytes_cached"] -= b.size
                b.release()
        self.free.clear()


class Storage:
    """A pooled device buffer shared by every view of it; returns to the pool when the last view dies.

    With elementwise fusion (backend/fusion.py) a new storage may hold a pending expression instead of
    contents (`_expr`), and `_readers` lists weak references to pending storages whose expressions read this
    one. `buf`, which every launch, upload and download goes through, first runs this storage's own
    expression and every pending reader (the caller may be about to write in place), so a deferred result is
    computed before it is read and from the inputs as they were when it was made."""
    __slots__ = ("_buf", "size", "pool", "_expr", "_readers", "__weakref__")

    def __init__(self, pool, nbytes):
        self.pool = pool
        self._buf, self.size = pool.alloc(nbytes)
        self._expr = self._readers = None

    @property
    def buf(self):
        if self._expr is not None or self._readers:
            fusion.flush(self)
        return self._buf

    def __del__(self):
        try:
            self.pool.release(self._buf, self.size)
        except Exception:  # interpreter shutdown, or a failed allocation
            pass


from . import fusion  # noqa: E402  (fusion reads Storage._buf; imported last to keep the cycle harmless)
