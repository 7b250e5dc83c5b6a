"""One recorded call of a captured function: every launch and upload in order, with each argument classified.

A buffer argument has a role: ("in", i) the storage of tensor argument i, ("alloc", k) the k-th storage
allocated during the call, or ("ext", j) a storage that existed before it (a parameter, optimizer state).
An element offset following a buffer is kept with its buffer's role (an input's offset changes with the
input). A number is a constant, or, when it is traced (numbers.py), its expression.

The recorder also watches storages: allocations (whose lifetimes the replay plans again), and externals
that the call used and then dropped (the call replaced state it read: a replay would read the stale one)."""
import weakref

import numpy as np
import pyopencl as cl

from ..backend import runtime
from .errors import JitError, source_of, user_line
from .numbers import HostInt, Traced, host_values
from .tree import flatten


class Recording:
    def __init__(self, name, leaves, trace):
        self.name = name
        self.trace = trace
        self.events = []      # ("launch", kernel, gsize, lsize, slots, where) | ("upload", role, bytes, offset, where)
        self.allocs = []      # [weakref to Storage, size, first event, last event]
        self.alloc_of = {}    # cl.Buffer -> index into allocs, while that storage lives
        self.input_of = {}    # cl.Buffer -> index of the first tensor leaf with that storage
        self.input_offsets = {}
        self.externals = []   # weakrefs to pre-existing storages that the call used
        self.ext_of = {}      # cl.Buffer -> index into externals
        self.problem = None   # the first thing found that a replay could not repeat (raised at the end)
        for i, leaf in enumerate(leaves):
            st = getattr(leaf, "_storage", None)
            if st is not None and hasattr(leaf, "_offset"):
                self.input_of.setdefault(st._buf, i)
                self.input_offsets[i] = leaf._offset

    # ---- hooks (backend.runtime and backend.memory call these while recording) ---------------------------
    def allocated(self, storage):
        self.alloc_of[storage._buf] = len(self.allocs)
        self.allocs.append([weakref.ref(storage), storage.size, None, None])

    def released(self, storage):
        buf = storage._buf
        if self.alloc_of.pop(buf, None) is not None:  # a buffer has one holder: this storage
            return
        j = self.ext_of.get(buf)
        if j is not None and self.problem is None:
            where = user_line()
            self.problem = (f"{self.name} used a tensor made before the call and then dropped it, at {where}"
                            f"{source_of(where)}: it replaced state that it read (gradients accumulated across "
                            f"calls, or a state tensor rebound with `x = f(x)`). A replay would read the old "
                            f"tensor again. Update such state in place (`x.copy_(f(x))`), zero gradients inside "
                            f"the function, or pass the tensor as an argument")
            del self.ext_of[buf]

    def note_storage(self, storage):
        self._role(storage._buf, storage)

    def _role(self, buf, storage):
        k = self.alloc_of.get(buf)
        if k is not None:
            return ("alloc", k)
        i = self.input_of.get(buf)
        if i is not None:
            return ("in", i)
        j = self.ext_of.get(buf)
        if j is None:
            if storage is None:
                raise AssertionError("a launch named a buffer whose storage the recorder has not seen")
            j = self.ext_of[buf] = len(self.externals)
            self.externals.append(weakref.ref(storage))
        return ("ext", j)

    def _use(self, role):
        if role[0] == "alloc":
            a = self.allocs[role[1]]
            if a[2] is None:
                a[2] = len(self.events)
            a[3] = len(self.events)

    def launch(self, k, gsize, lsize, args):
        slots = []
        kinds = runtime._kinds
        trace = self.trace
        role = None  # the role of the buffer an offset may follow
        for a in args:
            cls = type(a)
            kind = kinds.get(cls)
            if kind is None:
                kind = runtime._kind(cls)
            if kind == 1:
                st = a._storage
                role = self._role(st._buf, st)
                self._use(role)
                slots.append(("buf", role))
                slots.append(("off", role, a._offset))
                role = None
            elif kind == 2:
                r = self._role(a._buf, a)
                self._use(r)
                slots.append(("buf", r))
                role = None
            elif isinstance(a, cl.Buffer):  # fusion's raw buffers, each followed by its element offset
                role = self._role(a, None)
                self._use(role)
                slots.append(("buf", role))
            elif (cls is Traced or cls is HostInt) and a.trace is trace:
                slots.append(("traced", a.expr, a))
                role = None
            elif role is not None and cls is int:
                slots.append(("off", role, a))
                role = None
            elif isinstance(a, cl.LocalMemory):
                slots.append(("local", a))
            else:
                slots.append(("num", float(a) if cls is Traced or cls is HostInt else a))
                role = None
        self.events.append(("launch", k, gsize, lsize, slots, _where()))

    def finish(self, result, tensor_type):
        """Classify the call's result (after it returned and every pending expression ran); raise what was
        found that a replay could not repeat."""
        if self.problem:
            raise JitError(f"clownpiece.jit: {self.problem}")
        leaves = []
        self.out_spec = flatten(result, leaves)
        self.out_leaves = []
        trace = self.trace
        for leaf in leaves:
            if isinstance(leaf, tensor_type):
                st = leaf._storage
                self.out_leaves.append(("tensor", self._role(st._buf, st), type(leaf), leaf._shape, leaf._strides,
                                        leaf._offset, leaf.dtype))
            elif (type(leaf) is Traced or type(leaf) is HostInt) and leaf.trace is trace:
                self.out_leaves.append(("traced", leaf.expr))
            else:
                self.out_leaves.append(("const", leaf))
        return leaves

    def upload(self, storage, host, byte_offset):
        r = self._role(storage._buf, storage)
        self._use(r)
        self.events.append(("upload", r, np.array(host, copy=True), byte_offset, _where()))

    def host_read(self):
        where = user_line()
        raise JitError(f"clownpiece.jit: {self.name} reads a tensor's value on the host at {where}"
                       f"{source_of(where)} (item(), tolist(), numpy(), print, or a branch on a tensor). A "
                       f"captured call never waits for the device: return the tensor and read it after the call, "
                       f"or call the function without jit")

    def replayable(self, fn, args, values):
        trace = self.trace
        call = len(trace.host_calls)
        trace.host_calls.append((fn, args))
        return host_values(trace, call, values)


def _where():
    return user_line()
