"""Lazy elementwise fusion: same-shape contiguous elementwise ops are recorded instead of launched, and a
chain of them runs as one generated kernel when its result is first needed.

An elementwise op on contiguous operands of the output's shape (or numbers) calls `defer`: the output's
Storage gets an `Expr` (op, operands) instead of contents. An operand that is itself pending and covers its
whole storage is inlined rather than read. Nothing launches until someone takes the storage's `.buf`
(memory.Storage.buf calls `flush`): a launch that reads it, a download, or an in-place write. `flush` runs
the storage's own expression and also every pending expression that READS the storage, because the caller
may be about to overwrite it. A pending result that is dropped unread never launches.

Kernels are generated from the op bodies in cl_kernels/elementwise.cl (the UNARY/BINARY/BINARY_P lines, the
single source of truth), one small program per expression structure, built once and then loaded from the
on-disk binary cache (programs.py); numbers are kernel arguments, never source text, so a learning rate that
changes every step reuses the kernel. A lone op runs the eager kernel (nothing new to build). Each op body is an inline function
returning T, so every intermediate is rounded to T exactly as the eager kernels round it when they store it:
results are bit-identical to eager evaluation.

References: a pending Expr holds its input Storages strongly (their buffers must not return to the pool
before it runs) and nothing holds the output strongly but its tensors; inputs know their pending readers
through weak references only."""
import os
import re
import weakref

import numpy as np

from . import memory, programs as _programs, runtime, stats as _stats

enabled = os.environ.get("CLOWNPIECE_FUSE", "1") != "0"

MAX_INPUTS = 16  # buffer reads one generated kernel may take (a tensor used twice counts twice)
MAX_NODES = 32   # ops in one generated kernel (shared subexpressions count each time they are used)
_PRUNE_AT = 16   # readers list length from which dead or finished readers are dropped (at powers of two)


def set_enabled(on):
    """Turn deferral on or off (pending results made before still compute when needed)."""
    global enabled
    enabled = bool(on)


# ---- the op bodies --------------------------------------------------------------------------------
_OP_LINE = re.compile(r"^(UNARY|BINARY_P|BINARY_T|BINARY_R|BINARY)\((\w+),\s*(.*)\)\s*$")


def _parse_ops():
    """name -> (parameter list, body) from elementwise.cl's UNARY/BINARY*/BINARY_P lines, plus `copy` (what
    `assign` leaves behind; eagerly it is assign_c)."""
    ops = {"copy": ("T x", "x")}
    with open(_programs.kernel_path("elementwise")) as f:
        for line in f:
            m = _OP_LINE.match(line.split("//")[0].rstrip())
            if not m:
                continue
            kind, name, body = m.groups()
            if kind in ("BINARY", "BINARY_T", "BINARY_R"):
                params = "T x, T y"
            elif kind == "BINARY_P":
                params = "T x, T y, T p0, T p1"
            elif re.search(r"\bp[01]\b", body):
                params = "T x, T p0, T p1"
            else:
                params = "T x"
            ops[name] = (params, body)
    return ops


OPS = _parse_ops()
UNARY_WITH_PARAMS = frozenset(n for n, (p, _) in OPS.items() if p == "T x, T p0, T p1")


# ---- pending expressions --------------------------------------------------------------------------
_READ, _NUMBER = 0, None  # leaf markers in a signature


class Expr:
    """A pending computation of `n` contiguous elements of `dtype`. `sig` is its structure, the kernel cache
    key: (op, arg, ...) where an arg is a nested signature (an inlined operand), _READ (the next entry of
    `reads`, a (Storage, element offset) pair) or _NUMBER (the next entry of `numbers`, kernel arguments of
    the dtype), in the order the kernel's arguments take them. Never mutated: an inlined Expr's parts are
    shared with the storage it was made for."""
    __slots__ = ("sig", "reads", "numbers", "dtype", "n", "nodes")

    def __init__(self, sig, reads, numbers, dtype, n, nodes):
        self.sig, self.reads, self.numbers, self.dtype, self.n, self.nodes = sig, reads, numbers, dtype, n, nodes


def defer(out, op, operands):
    """Make `out` (a fresh contiguous tensor) pending on `op` over `operands`: tensors contiguous with
    out's shape and dtype, or numbers already converted to out's dtype. Returns out."""
    n = out._numel
    pool = out._storage.pool
    sig = [op]
    reads = numbers = ()
    nodes = 1
    later = len(operands)  # operands not yet placed: each may still need a read
    for t in operands:
        later -= 1
        if type(t) in _NUMBER_TYPES:
            sig.append(_NUMBER)
            numbers += (t,)
            continue
        st = t._storage
        if st.pool is not pool:
            runtime.raw_buffer(st)  # raises DeviceMismatchError
        e = st._expr
        if (e is not None and not t._offset and e.n == n and nodes + e.nodes <= MAX_NODES
                and len(reads) + len(e.reads) + later <= MAX_INPUTS):
            sig.append(e.sig)  # inline the operand's whole expression
            reads += e.reads
            numbers += e.numbers
            nodes += e.nodes
        else:  # a buffer read (if still pending, the operand runs first)
            sig.append(_READ)
            reads += ((st, t._offset),)
    storage = out._storage
    storage._expr = Expr(tuple(sig), reads, numbers, out.dtype, n, nodes)
    _add_reader(storage, reads)
    _stats.counters["fused_ops"] += 1
    return out


_NUMBER_TYPES = {np.float32, np.float64}  # plus the numbers clownpiece.jit traces (trace_numbers)


def trace_numbers(cls):
    """Let numbers of `cls` (clownpiece.jit's traced floats) through ops and deferred expressions unconverted:
    they reach kernel arguments as they are, where the capture sees them."""
    _NUMBER_TYPES.add(cls)
    runtime.TRACED.add(cls)


_all_pending = []  # weak references to every storage made pending, for flush_all; pruned when it doubles
_prune_all_at = [_PRUNE_AT]


def _add_reader(storage, reads):
    ref = weakref.ref(storage)
    if len(_all_pending) >= _prune_all_at[0]:
        _all_pending[:] = [r for r in _all_pending if _pending(r())]
        _prune_all_at[0] = max(_PRUNE_AT, 2 * len(_all_pending))
    _all_pending.append(ref)
    for st, _ in reads:
        readers = st._readers
        if readers is None:
            st._readers = [ref]
            continue
        k = len(readers)
        if k >= _PRUNE_AT and not k & (k - 1):  # at powers of two: amortised O(1) with many live readers
            readers[:] = [r for r in readers if _pending(r())]
        readers.append(ref)


def _pending(storage):
    return storage is not None and storage._expr is not None


def flush_all():
    """Run every pending expression (before the current device changes)."""
    refs = _all_pending[:]
    _all_pending.clear()
    for ref in refs:
        storage = ref()
        if storage is not None and storage._expr is not None:
            _run(storage)


def flush(storage):
    """Run `storage`'s own pending expression, then every pending expression that reads it."""
    if storage._expr is not None:
        _run(storage)
    readers = storage._readers
    if readers:
        storage._readers = None
        for ref in readers:
            reader = ref()
            if reader is not None and reader._expr is not None:
                _run(reader)


memory.set_flush_hook(flush)
runtime.set_flush_all_hook(flush_all)


def assign(dst, src):
    """dst.copy_(src) for contiguous same-shape dst and src where src is pending over its whole storage:
    evaluate src's expression straight into dst (one launch, no temporary). Afterwards src stays pending as a
    copy of dst, so it costs nothing unless it is used. False when this does not apply."""
    s = src._storage
    if s._expr is None or src._offset or s._expr.n != src._numel:
        return False
    d = dst._storage
    if d._expr is not None:
        _run(d)  # dst may be only part of its storage; this also settles dst is src
        if s._expr is None:
            return False
    e = s._expr
    if any(st is d and off != dst._offset for st, off in e.reads):
        return False  # work-items would read elements that others write
    readers = d._readers
    if readers:  # everything else that reads dst's old contents runs first
        d._readers = None
        for ref in readers:
            reader = ref()
            if reader is not None and reader is not s and reader._expr is not None:
                _run(reader)
    _launch(e, d, dst._offset)
    reads = ((d, dst._offset),)
    s._expr = Expr(("copy", _READ), reads, (), e.dtype, e.n, 1)
    _add_reader(s, reads)
    _stats.counters["fused_ops"] += 1
    return True


def _run(storage):
    e = storage._expr
    storage._expr = None
    try:
        _launch(e, storage, 0)
    except BaseException:
        storage._expr = e  # still pending: a failed launch must not leave stale contents looking computed
        raise


def _launch(e, out, out_offset):
    # raw buffers, not Storage.buf: that would run out's pending readers before out is computed
    args = [runtime.raw_buffer(out), out_offset]
    for st, off in e.reads:
        if st._expr is not None:  # a partial view of a pending storage is read from its buffer
            _run(st)
        args.append(runtime.raw_buffer(st))
        args.append(off)
    n = e.n
    if e.nodes == 1:  # a lone op: the eager kernel, no new build
        name, args = _eager_form(e.sig, args, e.numbers, n)
        runtime.launch(runtime.kernel("elementwise", name, e.dtype), n, *args)
        return
    key = (e.sig, e.dtype.char)
    knl = runtime.program_cache().kernels.get(key)
    if knl is None:
        knl = _kernel(key, len(e.reads), len(e.numbers))
    runtime.launch(knl, n, *args, *e.numbers, n)


def _eager_form(sig, args, numbers, n):
    """elementwise.cl's kernel and arguments for a one-op signature; args = [out, out offset, reads...]."""
    op, form = sig[0], sig[1:]
    if op == "copy":
        return "assign_c", [*args, n]
    if form == (_READ,):
        return op + "_c", [*args, n, 0, 0]
    if form == (_READ, _NUMBER):
        return op + "_cs", [*args, numbers[0], n]
    return op + "_c", [*args, n, *numbers]  # two reads, or one read with UNARY's or BINARY_P's parameters


# ---- code generation ------------------------------------------------------------------------------
def _kernel(key, n_reads, n_numbers):
    sig, dtype_char = key
    name, src = source(sig, n_reads, n_numbers)
    return runtime.program_cache().generated_kernel(key, src, name, dtype_char)


def source(sig, n_reads, n_numbers):
    """(kernel name, OpenCL C) for one expression structure: an inline function per op used and one kernel
    named after them (fused_sub_mul_clamp...: what profiles show)."""
    used = []
    next_read, next_number = iter(range(n_reads)), iter(range(n_numbers))

    def expr(sig):
        op = sig[0]
        if op not in used:
            used.append(op)
        parts = []
        for a in sig[1:]:
            if type(a) is tuple:
                parts.append(expr(a))
            elif a is _NUMBER:
                parts.append(f"s{next(next_number)}")
            else:
                parts.append(f"v{next(next_read)}")
        return f"f_{op}({', '.join(parts)})"

    body = expr(sig)
    params = ["__global T* out", "int oo"]
    params += [f"__global const T* in{k}, int o{k}" for k in range(n_reads)]
    params += [f"T s{k}" for k in range(n_numbers)] + ["int n"]
    loads = "".join(f" T v{k} = in{k}[o{k} + i];" for k in range(n_reads))
    lines = ['#include "common.h"']
    lines += [f"inline T f_{op}({OPS[op][0]}) {{ return ({OPS[op][1]}); }}" for op in used]
    name = "fused_" + "_".join(used)[:48].rstrip("_")
    lines.append(f"__kernel void {name}({', '.join(params)}) {{")
    lines.append(f"    int i = get_global_id(0); if (i >= n) return;{loads}")
    lines.append(f"    out[oo + i] = {body}; }}")
    return name, "\n".join(lines) + "\n"
