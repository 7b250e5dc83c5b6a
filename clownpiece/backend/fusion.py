"""Lazy elementwise fusion: same-shape contiguous elementwise ops are recorded instead of launched, and a
chain of them runs as one generated kernel when its result is first needed.

An elementwise op on contiguous operands of the output's shape (or numbers) calls `defer`: the output's
Storage gets an `Expr` (op, operands) instead of contents. An operand that is itself pending and covers its
whole storage is inlined rather than read. Nothing launches until someone takes the storage's `.buf`
(memory.Storage.buf calls `flush`): a launch that reads it, a download, or an in-place write. `flush` runs
the storage's own expression and also every pending expression that READS the storage, because the caller
may be about to overwrite it. A pending result that is dropped unread never launches.

Kernels are generated from the op bodies in cl_kernels/elementwise.cl (the UNARY/BINARY/BINARY_P/TEST/COMPARE
lines, the single source of truth), one small program per expression structure, built once and then loaded
from the on-disk binary cache (programs.py); numbers are kernel arguments, never source text, so a learning
rate that changes every step reuses the kernel. A lone op runs the eager kernel (nothing new to build).

Every node of an expression has its own dtype: an op computes in the dtype of its operands (the caller
converts them first, with `cast` nodes: dtype conversions fuse like any op) and gives that dtype, bool (TEST
and COMPARE ops) or, for a cast, its target. Each (op, dtype) becomes an inline function with T defined as
that dtype's arithmetic type, whose result is rounded as the eager kernel's store rounds it (to float16 with
half_round, to 0/1 for bool, to T otherwise), and every conversion is common.h's CAST, which cast.cl uses
too: results are bit-identical to eager evaluation.

References: a pending Expr holds its input Storages strongly (their buffers must not return to the pool
before it runs) and nothing holds the output strongly but its tensors; inputs know their pending readers
through weak references only."""
import os
import re
import weakref

import numpy as np

from . import dtypes as _dtypes, memory, programs as _programs, runtime, stats as _stats

enabled = os.environ.get("CLOWNPIECE_FUSE", "1") != "0"

MAX_INPUTS = 16  # buffer reads one generated kernel may take (a tensor used twice counts twice)
MAX_NODES = 32   # ops in one generated kernel (shared subexpressions count each time they are used)
_PRUNE_AT = 16   # readers list length from which dead or finished readers are dropped (at powers of two)


def set_enabled(on):
    """Turn deferral on or off (pending results made before still compute when needed)."""
    global enabled
    enabled = bool(on)


# ---- the op bodies --------------------------------------------------------------------------------
_OP_LINE = re.compile(r"^(UNARY|BINARY_P|BINARY_T|BINARY_R|BINARY|TEST|COMPARE)\((\w+),\s*(\w+),\s*(.*)\)\s*$")


class Op:
    """One op of the table: its parameters, whether it gives bool (TEST/COMPARE) and its body per dtype kind
    ('F', 'I', 'B': the line's kinds)."""
    __slots__ = ("params", "predicate", "bodies")

    def __init__(self, params, predicate, bodies=None):
        self.params, self.predicate, self.bodies = params, predicate, bodies or {}


def _parse_ops():
    """name -> Op from elementwise.cl's UNARY/BINARY*/TEST/COMPARE lines, plus `copy` (what `assign` leaves
    behind; eagerly it is assign_c)."""
    ops = {"copy": Op("T x", False, dict.fromkeys("FIB", "x"))}
    with open(_programs.kernel_path("elementwise")) as f:
        lines = [m.groups() for m in (_OP_LINE.match(line.split("//")[0].rstrip()) for line in f) if m]
    for macro, kinds, name, body in lines:
        if macro in ("BINARY", "BINARY_T", "BINARY_R", "COMPARE"):
            params = "T x, T y"
        elif macro == "BINARY_P":
            params = "T x, T y, T p0, T p1"
        elif any(re.search(r"\bp[01]\b", b) for m, _, n, b in lines if n == name):
            params = "T x, T p0, T p1"  # every kind's kernel of a unary op takes the parameters
        else:
            params = "T x"
        op = ops.setdefault(name, Op(params, macro in ("TEST", "COMPARE")))
        for kind in kinds:
            op.bodies[kind] = body
    return ops


def _typed_helpers():
    """common.h's helpers chosen by T (`#define FLOORDIV(a, b) CAT(floordiv_, T)(a, b)`): name -> prefix."""
    with open(_programs.kernel_path("elementwise").replace("elementwise.cl", "common.h")) as f:
        return dict(re.findall(r"^#define (\w+)\(a, b\) CAT\((\w+), T\)\(a, b\)", f.read(), re.MULTILINE))


OPS = _parse_ops()
UNARY_WITH_PARAMS = frozenset(n for n, op in OPS.items() if op.params == "T x, T p0, T p1")
_HELPERS = _typed_helpers()


# ---- pending expressions --------------------------------------------------------------------------
_READ, _NUMBER = 0, None  # leaf markers in a signature


class Expr:
    """A pending computation of `n` contiguous elements of `dtype`. `sig` is its structure, the kernel cache
    key: (op, codes, arg, ...) where codes is two letters, the dtype codes (dtypes.INFO) the op computes in
    and gives, and an arg is a nested signature (an inlined operand), _READ (the next entry of `reads`, a
    (Storage, element offset) pair) or _NUMBER (the next entry of `numbers`, kernel arguments of the op's
    arithmetic type), in the order the kernel's arguments take them. Never mutated: an inlined Expr's parts
    are shared with the storage it was made for."""
    __slots__ = ("sig", "reads", "numbers", "dtype", "n", "nodes")

    def __init__(self, sig, reads, numbers, dtype, n, nodes):
        self.sig, self.reads, self.numbers, self.dtype, self.n, self.nodes = sig, reads, numbers, dtype, n, nodes


def defer(out, op, operands, codes):
    """Make `out` (a fresh contiguous tensor) pending on `op` over `operands`: tensors contiguous with out's
    shape, of the dtype the op computes in, or numbers already converted to that dtype's arithmetic type
    (dtypes.INFO's scalar). `codes` (codes(computed in, out.dtype)) says the two dtypes. Returns out."""
    n = out._numel
    pool = out._storage.pool
    sig = [op, codes]
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


_NUMBER_TYPES = {np.float32, np.float64, np.int32, np.int64, np.uint8}  # plus jit's traced numbers


def trace_numbers(cls):
    """Let numbers of `cls` (clownpiece.jit's traced floats) through ops and deferred expressions unconverted:
    they reach kernel arguments as they are, where the capture sees them."""
    _NUMBER_TYPES.add(cls)
    runtime.TRACED.add(cls)
_CODES = {(a, b): _dtypes.INFO[a].code + _dtypes.INFO[b].code for a in _dtypes.ALL for b in _dtypes.ALL}


def codes(computed_in, gives):
    """The two-letter dtype codes of a node computed in dtype `computed_in` that gives dtype `gives`."""
    return _CODES[computed_in, gives]


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
    s._expr = Expr(("copy", _CODES[e.dtype, e.dtype], _READ), reads, (), e.dtype, e.n, 1)
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
        knl, args = _eager_form(e.sig, args, e.numbers, n)
        runtime.launch_unpacked(knl, n, args)
        return
    key = ("fused", e.sig)
    knl = runtime.program_cache().kernels.get(key)
    if knl is None:
        knl = _kernel(key, len(e.reads), len(e.numbers))
    args += e.numbers
    args.append(n)
    runtime.launch_unpacked(knl, n, args)


def _eager_form(sig, args, numbers, n):
    """elementwise.cl's (or cast.cl's) kernel and arguments for a one-op signature; args = [out, out offset,
    reads...]."""
    op, codes, form = sig[0], sig[1], sig[2:]
    dtype = _dtypes.BY_CODE[codes[0]]
    if op == "copy":
        return runtime.kernel("elementwise", "assign_c", dtype), [*args, n]
    if op == "cast":
        target = _dtypes.BY_CODE[codes[1]]
        return runtime.kernel("cast", "cast_c", target, _dtypes.source_defines(dtype)), [*args, n]
    if form == (_READ,):
        return runtime.kernel("elementwise", op + "_c", dtype), [*args, n, 0, 0]
    if form == (_READ, _NUMBER):
        return runtime.kernel("elementwise", op + "_cs", dtype), [*args, numbers[0], n]
    # two reads, or one read with UNARY's or BINARY_P's parameters
    return runtime.kernel("elementwise", op + "_c", dtype), [*args, n, *numbers]


# ---- code generation ------------------------------------------------------------------------------
def _kernel(key, n_reads, n_numbers):
    name, src, fp64 = source(key[1], n_reads, n_numbers)
    return runtime.program_cache().generated_kernel(key, src, name, _dtypes.float64 if fp64 else _dtypes.float32)


def _typed(text, t):
    """An op body (or parameter list) written in T for the C type t: T, ZERO, ONE and common.h's T-chosen
    helpers spelled out, so generated code never depends on how T is defined where it is built."""
    text = re.sub(r"\b(FLOORDIV|REMAINDER|IPOW|LSHIFT|RSHIFT)\(",
                  lambda m: f"{_HELPERS[m.group(1)]}{t}(", text)
    text = re.sub(r"\bZERO\b", f"(({t})0)", text)
    text = re.sub(r"\bONE\b", f"(({t})1)", text)
    return re.sub(r"\bT\b", t, text)


def _function(op, codes):
    """(name, text) of the inline function computing `op` in dtype codes[0] and giving codes[1], its result
    rounded as an eager store rounds it."""
    info, out = _dtypes.INFO[_dtypes.BY_CODE[codes[0]]], _dtypes.INFO[_dtypes.BY_CODE[codes[1]]]
    t = info.compute
    name = f"f_{op}_{codes}"
    if op == "cast":
        return name, f"inline {out.compute} {name}({t} x) {{ return CAST({t}, {out.storage}, x); }}"
    spec = OPS[op]
    body = _typed(spec.bodies[info.kind.upper()], t)
    if spec.predicate:
        result, value = "uchar", f"(uchar)({body})"
    elif out.storage == "half":
        result, value = "float", f"half_round({body})"
    elif out.storage == "uchar":
        result, value = "uchar", f"(uchar)(({body}) != 0)"
    else:
        result, value = t, f"({t})({body})"
    return name, f"inline {result} {name}({_typed(spec.params, t)}) {{ return {value}; }}"


def expression(sig, read, number):
    """The C expression of signature `sig`, reads named read(k) and numbers number(k) in argument order, as
    (text, {function name: definition}, dtypes of the reads, dtypes of the numbers, ops in order of use,
    whether double appears). fusion's kernels and clownpiece.jit's merged launches are made of these."""
    functions, ops, reads, numbers = {}, [], [], []

    def expr(node):
        op, codes = node[0], node[1]
        if (op, codes) not in functions:
            functions[op, codes] = _function(op, codes)
        if op not in ops:
            ops.append(op)
        dtype = _dtypes.BY_CODE[codes[0]]
        parts = []
        for a in node[2:]:
            if type(a) is tuple:
                parts.append(expr(a))
            elif a is _NUMBER:
                parts.append(number(len(numbers)))
                numbers.append(dtype)
            else:
                parts.append(read(len(reads)))
                reads.append(dtype)
        return f"{functions[op, codes][0]}({', '.join(parts)})"

    text = expr(sig)
    fp64 = any(_dtypes.INFO[_dtypes.float64].code in codes for _, codes in functions)
    return text, dict(functions.values()), reads, numbers, ops, fp64


def declarations(sig, reads, numbers, suffix=""):
    """Kernel parameters (out, reads, numbers) of an expression and the loads of its reads into v<k>."""
    info = _dtypes.INFO
    out = info[_dtypes.BY_CODE[sig[1][1]]]
    params = [f"__global {out.storage}* out{suffix}", f"int oo{suffix}"]
    params += [f"__global const {info[d].storage}* in{suffix}_{k}, int o{suffix}_{k}" for k, d in enumerate(reads)]
    params += [f"{info[d].compute} s{suffix}_{k}" for k, d in enumerate(numbers)]
    def load(k, d):
        if info[d].storage == "half":
            return f" float v{suffix}_{k} = vload_half(o{suffix}_{k} + i, in{suffix}_{k});"
        return f" {info[d].compute} v{suffix}_{k} = in{suffix}_{k}[o{suffix}_{k} + i];"
    loads = "".join(load(k, d) for k, d in enumerate(reads))
    return params, loads


def store(sig, value, suffix=""):
    """The statement storing `value` as element i of the expression's output."""
    if _dtypes.INFO[_dtypes.BY_CODE[sig[1][1]]].storage == "half":
        return f"vstore_half_rte({value}, oo{suffix} + i, out{suffix});"
    return f"out{suffix}[oo{suffix} + i] = {value};"


def source(sig, n_reads, n_numbers):
    """(kernel name, OpenCL C, whether it needs fp64) for one expression structure: an inline function per
    (op, dtype) used and one kernel named after the ops (fused_sub_mul_clamp...: what profiles show)."""
    body, functions, reads, numbers, ops, fp64 = expression(sig, lambda k: f"v_{k}", lambda k: f"s_{k}")
    assert len(reads) == n_reads and len(numbers) == n_numbers
    params, loads = declarations(sig, reads, numbers)
    name = "fused_" + "_".join(ops)[:48].rstrip("_")
    lines = ['#include "common.h"', *functions.values()]
    lines.append(f"__kernel void {name}({', '.join(params + ['int n'])}) {{")
    lines.append(f"    int i = get_global_id(0); if (i >= n) return;{loads}")
    lines.append(f"    {store(sig, body)} }}")
    return name, "\n".join(lines) + "\n", fp64
