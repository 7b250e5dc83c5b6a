"""From two recordings of the same call to a replay Program.

`compare` checks that the two recordings did the same thing: the same kernels over the same grids, buffers
in the same roles, constants equal and traced numbers computed the same way, the same host data uploaded.
Anything else means a replay would not repeat what eager execution does, and the capture raises.

`Program` is built from the later recording. Its buffers: the inputs' (swapped in at each replay), the
externals' (parameters, optimizer state: held, used in place), storages the call allocated and that still
live after it (held: Python state such as `p.grad` points at them, so replays write them where that state
looks), and the temporaries, which the plan gives private buffers again by liveness (a buffer is reused by a
later temporary of its size once its last use is launched; the queue is in order). Each launch gets its own
cl.Kernel with its arguments set once; a replay only resets what changes (input buffers and offsets, traced
numbers, replayable host values) and enqueues. Tensor results that live in held storage are copied into
fresh storage, so that results of different calls never share memory."""
import heapq
import os
import struct

import numpy as np
import pyopencl as cl
from pyopencl import _cl

from .. import backend
from ..backend import memory, programs, runtime
from .errors import JitError, source_of
from .merge import merge
from .numbers import Compiled, _has_host

_MERGE = os.environ.get("CLOWNPIECE_JIT_MERGE", "1") != "0"  # merge independent elementwise launches

_PACK = {np.dtype(np.float32): "=f", np.dtype(np.float64): "=d", np.dtype(np.int32): "=i",
         np.dtype(np.uint32): "=I", np.dtype(np.int64): "=q", np.dtype(np.uint64): "=Q"}


def _same_number(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, (np.ndarray, np.generic)):  # vector arguments (cltypes) and numpy scalars: by their bytes
        return np.asarray(a).tobytes() == np.asarray(b).tobytes()
    return a == b or (a != a and b != b)


def compare(a, b):
    """None when recordings a and b did the same, else what differs (for the error message)."""
    if len(a.events) != len(b.events):
        return f"the first call made {len(a.events)} launches and uploads, the second {len(b.events)}"
    for n, (ea, eb) in enumerate(zip(a.events, b.events)):
        where = eb[-1]
        if ea[0] != eb[0]:
            return f"event {n} is a {ea[0]} in one call and a {eb[0]} in the other, at {where}{source_of(where)}"
        if ea[0] == "upload":
            if ea[1] != eb[1] or ea[3] != eb[3] or ea[2].dtype != eb[2].dtype or not np.array_equal(ea[2], eb[2]):
                return (f"it creates a tensor from host data that changes from call to call, at {where}"
                        f"{source_of(where)}; pass such data as a tensor argument")
            continue
        _, ka, ga, la, sa, _ = ea
        _, kb, gb, lb, sb, _ = eb
        if ka is not kb or ga != gb or la != lb or len(sa) != len(sb):
            return (f"launch {n} is {ka.name} over {list(ga)} in one call and {kb.name} over {list(gb)} in the "
                    f"other, at {where}{source_of(where)}")
        for i, (x, y) in enumerate(zip(sa, sb)):
            diff = _slot_difference(x, y, a, b)
            if diff:
                return f"argument {i} of {kb.name} (launch {n}, at {where}{source_of(where)}) {diff}"
    if [s for _, s, _, _ in a.allocs] != [s for _, s, _, _ in b.allocs]:
        return "the calls allocated different buffers"
    if len(a.trace.host_calls) != len(b.trace.host_calls):
        return "the calls made different numbers of replayable host calls"
    return None


def _slot_difference(x, y, a, b):
    if x[0] != y[0]:
        if "traced" in (x[0], y[0]):
            return "comes from a float argument in one call and not in the other"
        return "changes kind between the calls"
    kind = x[0]
    if kind in ("buf", "off"):
        if x[1] != y[1]:
            return f"is {_describe(x[1])} in one call and {_describe(y[1])} in the other"
        if x[1][0] == "ext" and a.externals[x[1][1]]() is not b.externals[y[1][1]]():
            return ("is a different tensor made before each call (state rebound between calls, e.g. by "
                    "`x = f(x)`; update it in place)")
        if kind == "off":
            dx = x[2] - a.input_offsets[x[1][1]] if x[1][0] == "in" else x[2]
            dy = y[2] - b.input_offsets[y[1][1]] if y[1][0] == "in" else y[2]
            if dx != dy:
                return f"is an element offset that changed ({dx} vs {dy})"
        return None
    if kind == "traced":
        return None if x[1] == y[1] else "is computed differently from the float arguments in the two calls"
    if kind == "num":
        if not _same_number(x[1], y[1]):
            return (f"changes from {x[1]!r} to {y[1]!r} between calls but does not come from the function's "
                    f"float arguments, so a replay would reuse a stale value. Pass the number as an argument "
                    f"(and keep it a Python float up to the op: math.*, numpy and float() lose track of it), "
                    f"or compute it on the device")
    return None


def _describe(role):
    return {"in": "tensor argument {}", "alloc": "tensor allocation {} of the call",
            "ext": "tensor {} made before the call"}[role[0]].format(role[1])


class Program:
    def __init__(self, rec, leaves, static_floats):
        self.name = rec.name
        self.queue = backend.device().queue
        self.pool = runtime._pool
        self.held = []  # storages kept alive while the program lives
        externals = []
        for ref in rec.externals:
            st = ref()
            if st is None:
                raise JitError(f"clownpiece.jit: {rec.name}: a tensor it used was dropped during the call")
            externals.append(st)
        self.held += externals
        events = merge(rec.events, backend.device()) if _MERGE else rec.events
        alloc_buffers = self._plan_allocations(rec, events)
        self.watch = externals + [st for st in self.held if st not in externals]  # pending readers to settle

        exprs = []  # traced numbers to evaluate at each replay

        def value_index(expr):
            exprs.append(expr)
            return len(exprs) - 1

        def static_buffer(role):
            if role[0] == "ext":
                return externals[role[1]]._buf
            return alloc_buffers[role[1]]

        self.steps = []  # ("launch", knl, gsize, lsize, buffer patches, offset patches, number patches, Kernel)
        arg_dtypes = {}
        for event in events:
            if event[0] == "upload":
                _, role, host, offset, _ = event
                self.steps.append(("upload", None if role[0] == "in" else static_buffer(role),
                                   role[1] if role[0] == "in" else None, host, offset))
                continue
            _, k, gsize, lsize, slots, _ = event
            dtypes = arg_dtypes.get(k)
            if dtypes is None:
                dtypes = arg_dtypes[k] = programs._scalar_arg_dtypes(k.cl)
            knl = cl.Kernel(k.cl.program, k.name)
            knl.set_scalar_arg_dtypes(dtypes)
            values, bufs, offs, nums = [], [], [], []
            for i, slot in enumerate(slots):
                kind = slot[0]
                if kind == "buf":
                    role = slot[1]
                    if role[0] == "in":
                        bufs.append((i, role[1]))
                        values.append(None)
                    else:
                        values.append(static_buffer(role))
                elif kind == "off":
                    role = slot[1]
                    values.append(slot[2])
                    if role[0] == "in":
                        offs.append((i, role[1], slot[2] - rec.input_offsets[role[1]]))
                elif kind == "traced":
                    values.append(slot[2])
                    nums.append((i, _PACK[np.dtype(dtypes[i])], value_index(slot[1])))
                elif kind == "local":
                    values.append(slot[1])
                else:
                    values.append(slot[1])
            knl.set_args(*values)
            self.steps.append(("launch", knl, gsize, lsize, tuple(bufs), tuple(offs), tuple(nums), k))
        self.n_launches = sum(1 for s in self.steps if s[0] == "launch")

        # results: tensors in held or planned storage are copied out; views of inputs and externals are views
        self.rec, self.leaves = rec, leaves  # compared with the next recording if a constant float changes
        self.out_spec = rec.out_spec
        self.outputs = []
        for spec in rec.out_leaves:
            if spec[0] == "tensor":
                _, role, cls, shape, strides, offset, dtype = spec
                if role[0] == "in":
                    self.outputs.append(("input", role[1], cls, shape, strides, offset - rec.input_offsets[role[1]],
                                         dtype))
                elif role[0] == "ext":
                    self.outputs.append(("view", externals[role[1]], cls, shape, strides, offset, dtype))
                else:
                    src = self._alloc_storage[role[1]]
                    self.outputs.append(("copy", src, cls, shape, strides, offset, dtype))
            elif spec[0] == "traced":
                self.outputs.append(("number", value_index(spec[1])))
            else:
                self.outputs.append(("const", spec[1]))

        # replay-time checks and host values
        trace = rec.trace
        self.static_floats = tuple(static_floats)  # (leaf index, value): floats that stayed constant
        self.guards = Compiled([g for g, _ in trace.guards])
        self.guard_results = tuple(r for _, r in trace.guards)
        self.host_calls, host_arg_exprs = [], []
        for fn, args in trace.host_calls:
            spec = []
            for a in args:
                if getattr(a, "trace", None) is trace:
                    if _has_host(a.expr):
                        raise JitError(f"clownpiece.jit: {rec.name}: backend.replayable was passed a value from "
                                       f"another replayable call")
                    host_arg_exprs.append(a.expr)
                    spec.append((True, len(host_arg_exprs) - 1))
                else:
                    spec.append((False, a))
            self.host_calls.append((fn, tuple(spec)))
        self.host_args = Compiled(host_arg_exprs)  # the traced arguments of the host calls (floats only)
        self.scalars = Compiled(exprs)
        self.n_exprs = len(exprs)

    def _plan_allocations(self, rec, events):
        """Buffers for the call's allocations: live ones keep theirs (held), temporaries get private buffers
        reused by liveness (first and last use in `events`, the order the replay runs)."""
        uses = {}
        for n, event in enumerate(events):
            roles = (event[1],) if event[0] == "upload" else (s[1] for s in event[4] if s[0] == "buf")
            for role in roles:
                if role[0] == "alloc":
                    first, _ = uses.get(role[1], (n, n))
                    uses[role[1]] = (first, n)
        buffers = {}
        self._alloc_storage = {}
        temporaries = []
        for k, (ref, size, _, _) in enumerate(rec.allocs):
            st = ref()
            if st is not None:
                self.held.append(st)
                buffers[k] = st._buf
                self._alloc_storage[k] = st
            elif k in uses:
                temporaries.append((*uses[k], size, k))
        temporaries.sort()
        free, busy = {}, []  # size -> [Storage]; heap of (last use, serial, size, Storage)
        for n, (first, last, size, k) in enumerate(temporaries):
            while busy and busy[0][0] < first:
                _, _, s, st = heapq.heappop(busy)
                free.setdefault(s, []).append(st)
            bucket = free.get(size)
            if bucket:
                st = bucket.pop()
            else:
                st = backend.alloc(size)
                self.held.append(st)
            buffers[k] = st._buf
            heapq.heappush(busy, (last, n, size, st))
        return buffers

    # ---- replay ---------------------------------------------------------------------------------------
    def statics_hold(self, leaves):
        """The floats that were the same in both recordings still are."""
        for i, value in self.static_floats:
            v = leaves[i]
            if not (v == value or (v != v and value != value)):
                return False
        return True

    def decisions_hold(self, leaves):
        """Every decision the recording made on a float argument comes out the same."""
        return self.guards(leaves, None) == self.guard_results

    def run(self, leaves):
        host = []
        if self.host_calls:
            traced = self.host_args(leaves, None)
            for fn, spec in self.host_calls:
                host.append(fn(*[traced[a] if is_expr else a for is_expr, a in spec]))
        values = self.scalars(leaves, host) if self.n_exprs else ()
        for st in self.watch:  # pending expressions that read what the replay writes run first
            if st._expr is not None or st._readers:
                st.buf
        in_bufs = {}
        for i, leaf in enumerate(leaves):
            st = getattr(leaf, "_storage", None)
            if st is not None and hasattr(leaf, "_offset"):
                in_bufs[i] = st.buf if st.pool is self.pool else runtime._buffer(st)
        queue, enqueue, pack = self.queue, _cl.enqueue_nd_range_kernel, struct.pack
        observing = runtime._observing
        for step in self.steps:
            if step[0] == "launch":
                _, knl, gsize, lsize, bufs, offs, nums, k = step
                for i, src in bufs:
                    knl.set_arg(i, in_bufs[src])
                for i, src, delta in offs:
                    knl._set_arg_buf(i, pack("=i", leaves[src]._offset + delta))
                for i, fmt, v in nums:
                    knl._set_arg_buf(i, pack(fmt, values[v]))
                try:
                    evt = enqueue(queue, knl, gsize, lsize, None, None)
                except cl.Error as e:
                    evt = self._retry(e, knl, gsize, lsize)
                if observing:
                    runtime._after_launch(k, evt)
            else:
                _, buf, src, host_data, offset = step
                runtime.in_flight(cl.enqueue_copy(queue, in_bufs[src] if buf is None else buf, host_data,
                                                  dst_offset=offset, is_blocking=False))
        backend.counters["launches"] += self.n_launches
        return self._results(leaves, values)

    def _retry(self, error, knl, gsize, lsize):
        if error.code not in memory.OUT_OF_MEMORY:
            raise error
        self.queue.finish()
        self.pool.empty_cache()
        try:
            return _cl.enqueue_nd_range_kernel(self.queue, knl, gsize, lsize, None, None)
        except cl.Error as e:
            if e.code not in memory.OUT_OF_MEMORY:
                raise
            raise self.pool.out_of_memory() from None

    def _results(self, leaves, values):
        out, copies = [], {}
        for o in self.outputs:
            kind = o[0]
            if kind == "copy":
                _, src, cls, shape, strides, offset, dtype = o
                st = copies.get(id(src))
                if st is None:
                    st = copies[id(src)] = backend.alloc(src.size)
                    cl.enqueue_copy(self.queue, st._buf, src._buf, byte_count=src.size)
                out.append(cls._make(st, shape, strides, offset, dtype))
            elif kind == "view":
                _, st, cls, shape, strides, offset, dtype = o
                out.append(cls._make(st, shape, strides, offset, dtype))
            elif kind == "input":
                _, i, cls, shape, strides, delta, dtype = o
                out.append(cls._make(leaves[i]._storage, shape, strides, leaves[i]._offset + delta, dtype))
            elif kind == "number":
                out.append(values[o[1]])
            else:
                out.append(o[1])
        return out
