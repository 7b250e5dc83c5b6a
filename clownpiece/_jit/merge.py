"""What capture makes possible: merging independent elementwise launches into one.

Eager execution launches an elementwise kernel per tensor: a clamp per gradient, an update per parameter. A
recording shows all of them at once, so the plan can move such launches next to each other (only past launches
they do not conflict with) and replace each run by one generated kernel whose work-items cover every segment
in turn. Each segment spans whole work-groups (a group's work-items take one branch) and computes exactly what
its launch did, with the same op bodies (fusion.OPS), so results stay bit-identical; the device runs one
launch instead of many (on PoCL, ~10 us of scheduling each).

Mergeable launches: elementwise.cl's contiguous kernels (`<op>_c`, `<op>_cs`, `assign_c`) and fusion's
generated kernels, whose structure (fusion signature) is known; and any hand-written kernel (built without
defines) that begins `int i = get_global_id(0); if (i >= n) return;` and uses no other work-item function
(the optimizer updates): its text becomes an inline function of `i`. Conflicts are by logical buffer (the
roles of recorder.py): a kernel argument declared `__global const` is read, any other buffer is read and
written."""
import re

import pyopencl as cl

from .._layout import ceil_div
from ..backend import dtypes, fusion, programs, runtime

_READ, _NUMBER = fusion._READ, fusion._NUMBER
_MAX_SEGMENTS = 64
_BY_STORAGE = {dtypes.INFO[d].storage: d for d in dtypes.ALL}  # C type of a buffer -> its dtype


def _reverse_kernels():
    """id(Kernel) -> its cache key, for the kernels built so far."""
    return {id(k): key for key, k in runtime.program_cache().kernels.items()}


def _segment(event, keys):
    """A mergeable launch's segment: (signature, out slot index, read slot indices, number slot indices,
    n slot index) for elementwise ones, ("fn", family, name, n slot index) for a per-element kernel; None
    when it cannot merge."""
    _, k, gsize, lsize, slots, _ = event
    key = keys.get(id(k))
    if key is None or len(gsize) != 1:
        return None
    if k.family not in ("generated", "elementwise") and not key[3]:
        fn = _per_element(key[0], key[1])
        return None if fn is None else ("fn", key[0], key[1], fn[2])
    if k.family == "generated":
        if key[0] != "fused":
            return None
        sig = key[1]
        if fusion.expression(sig, str, str)[5] and not _is_double(k):
            return None  # double inside a non-double kernel: the merged build's defines would lack fp64
        n_reads = _count(sig, _READ)
        reads = list(range(2, 2 + 2 * n_reads, 2))
        numbers = list(range(2 + 2 * n_reads, len(slots) - 1))
        return _checked(sig, slots, reads, numbers, len(slots) - 1)
    family, name, dtype, defines = key
    if family != "elementwise" or defines:
        return None
    dtype = dtypes.resolve(dtype)
    if name == "assign_c":
        return _checked(("copy", fusion.codes(dtype, dtype), _READ), slots, [2], [], 4)
    op, _, form = name.rpartition("_")
    spec = fusion.OPS.get(op)
    if spec is None:
        return None
    codes = fusion.codes(dtype, dtypes.bool_ if spec.predicate else dtype)
    params = spec.params
    if form == "cs" and params == "T x, T y":
        return _checked((op, codes, _READ, _NUMBER), slots, [2], [4], 5)
    if form != "c":
        return None
    if params == "T x":
        return _checked((op, codes, _READ), slots, [2], [], 4)
    if params == "T x, T p0, T p1":
        return _checked((op, codes, _READ, _NUMBER, _NUMBER), slots, [2], [5, 6], 4)
    if params == "T x, T y":
        return _checked((op, codes, _READ, _READ), slots, [2, 4], [], 6)
    if params == "T x, T y, T p0, T p1":
        return _checked((op, codes, _READ, _READ, _NUMBER, _NUMBER), slots, [2, 4], [7, 8], 6)
    return None


def _is_double(k):
    return _out_type(k) == "double"


def _out_type(k):
    """The C type of a kernel's first (output) buffer: what a merged group's members share."""
    return k.cl.get_arg_info(0, cl.kernel_arg_info.TYPE_NAME).rstrip("*").strip()


def _checked(sig, slots, reads, numbers, n_at):
    """The segment, when the slots have the layout it expects (buffer + offset pairs, numbers, n)."""
    pairs = [0] + reads
    if any(slots[i][0] != "buf" or slots[i + 1][0] != "off" for i in pairs):
        return None
    if any(slots[i][0] not in ("num", "traced") for i in numbers) or slots[n_at][0] != "num":
        return None
    return sig, 0, reads, numbers, n_at


def _count(sig, leaf):
    return sum(_count(a, leaf) if type(a) is tuple else a is leaf for a in sig[1:])


_KERNEL = re.compile(r"__kernel\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{")
_START = re.compile(r"\s*int\s+i\s*=\s*get_global_id\(0\);\s*if\s*\(i\s*>=\s*n\)\s*return;")
_OTHER_IDS = re.compile(r"get_(global|local|group)_(id|size)|get_num_groups|barrier|__local|#")
_FUNCTION = re.compile(r"^[ \t]*(?:inline[ \t]+)?\w+[ \t]+(\w+)\s*\([^;{)]*\)\s*\{", re.MULTILINE)
_functions = {}  # (family, name) -> (parameters, body, index of the `n` parameter), or None


def _common_functions():
    with open(programs.kernel_path("elementwise").replace("elementwise.cl", "common.h")) as f:
        return set(_FUNCTION.findall(f.read()))


def _per_element(family, name):
    """A hand-written one-element-per-work-item kernel of cl_kernels/<family>.cl as (parameter declarations,
    body after its two opening statements, index of `n`), or None."""
    key = (family, name)
    if key not in _functions:
        _functions[key] = None
        text = programs._source(family)
        for m in _KERNEL.finditer(text):
            if m.group(1) != name:
                continue
            depth, end = 1, m.end()
            while depth and end < len(text):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            body = text[m.end():end - 1]
            start = _START.match(body)
            if "\\\n" in text[m.start():end] or start is None or _OTHER_IDS.search(body[start.end():]):
                break
            # the merged source has common.h only: a body that calls a function of its file or of another
            # header it includes (philox.h's philox_at in augment.cl) cannot move there
            own = set(_FUNCTION.findall(text)) - _common_functions()
            if any(re.search(rf"\b{f}\s*\(", body) for f in own):
                break
            params = [p.strip() for p in m.group(2).split(",")]
            names = [p.split()[-1].lstrip("*") for p in params]
            if "n" in names:
                _functions[key] = (params, body[start.end():], names.index("n"))
            break
    return _functions[key]


# ---- conflicts --------------------------------------------------------------------------------------------
_const_args = {}  # Kernel -> tuple of booleans: argument i is a `const` pointer


def _access(event, segment):
    """(reads, writes): sets of buffer roles."""
    if event[0] == "upload":
        return frozenset(), frozenset([event[1]])
    slots = event[4]
    if segment is not None and segment[0] != "fn":
        out = slots[segment[1]][1]
        return frozenset(slots[i][1] for i in segment[2]), frozenset([out])
    k = event[1]
    const = _const_args.get(k)
    if const is None:
        const = _const_args[k] = tuple(
            bool(k.cl.get_arg_info(i, cl.kernel_arg_info.TYPE_QUALIFIER) & cl.kernel_arg_type_qualifier.CONST)
            for i in range(k.cl.num_args))
    reads, writes = set(), set()
    for i, slot in enumerate(slots):
        if slot[0] == "buf":
            reads.add(slot[1])
            if not const[i]:
                writes.add(slot[1])
    return frozenset(reads), frozenset(writes)


def _conflict(a, b):
    (ra, wa), (rb, wb) = a, b
    return not wa.isdisjoint(rb) or not wa.isdisjoint(wb) or not wb.isdisjoint(ra)


# ---- the pass ---------------------------------------------------------------------------------------------
def merge(events, device):
    """events with runs of independent mergeable launches replaced by merged launches (same event format)."""
    keys = _reverse_kernels()
    out = []       # events, or groups (lists of (event, segment, access)) standing where their first was
    accesses = []  # access of each entry of out (a group's: the union of its members')
    limit = device.device.max_parameter_size - 64
    for event in events:
        segment = _segment(event, keys) if event[0] == "launch" else None
        access = _access(event, segment)
        if segment is not None:
            dtype = _out_type(event[1])
            target = _find_group(out, accesses, access, dtype, limit, event, segment)
            if target is not None:
                out[target].append((event, segment, access))
                r, w = accesses[target]
                accesses[target] = (r | access[0], w | access[1])
                continue
            group = _Group([(event, segment, access)])
            group.dtype = dtype
            out.append(group)
        else:
            out.append(event)
        accesses.append(access)
    return [(_merged(e) if len(e) > 1 else e[0][0]) if type(e) is _Group else e for e in out]


class _Group(list):
    """Mergeable launches that will run as one, standing where the first of them was."""
    dtype = None


def _find_group(out, accesses, access, dtype, limit, event, segment):
    """The index of the earliest open group this launch can join: same dtype, independent of its members,
    room left, and no conflict with anything between that group and here (the launch moves up to it)."""
    found = None
    for idx in range(len(out) - 1, -1, -1):
        entry = out[idx]
        if _conflict(accesses[idx], access):
            break
        if type(entry) is _Group and entry.dtype == dtype and len(entry) < _MAX_SEGMENTS \
                and _param_bytes(entry, event, segment) <= limit:
            found = idx
    return found


def _param_bytes(group, event, segment):
    total = 0
    for e, _, _ in list(group) + [(event, None, None)]:
        total += sum(8 if slot[0] == "buf" else 8 if slot[0] == "traced" else 4 for slot in e[4])
    return total


def _merged(group):
    """One launch event for a group: a generated kernel with the segments' arguments in order."""
    ctype = _out_type(group[0][0][1])
    dtype = _BY_STORAGE[ctype]  # per-element bodies are written in T / T_MEM: the group's output type
    parts = [_part(e[4], seg, n) for n, (e, seg, _) in enumerate(group)]
    key = ("merged", tuple(p[0] for p in parts), ctype)
    helpers = {}
    for p in parts:
        helpers.update(p[3])
    name = f"merged{len(parts)}_" + "_".join(dict.fromkeys(h for p in parts for h in p[4]))[:40].rstrip("_")
    lines = ['#include "common.h"'] + list(helpers.values())
    lines.append(f"__kernel void {name}({', '.join(d for p in parts for d in p[1])}) {{")
    # g, the group's first work-item, picks the segment: a condition PoCL sees as uniform over the group
    lines.append("    int i = get_global_id(0), g = get_group_id(0) * get_local_size(0);")
    lines += [p[2] for p in parts]
    lines.append("}")
    knl = runtime.program_cache().generated_kernel(key, "\n".join(lines) + "\n", name, dtype)
    size = knl.local
    slots, total = [], 0
    for e, seg, _ in group:
        order, n_at = _slot_order(e[4], seg)
        span = ceil_div(e[4][n_at][1], size) * size  # whole work-groups: each group works on one segment
        slots += [e[4][i] for i in order] + [("num", span)]
        total += span
    return ("launch", knl, (total,), (size,), slots, group[0][0][5])


def _slot_order(slots, seg):
    """Which of a launch's slots the merged kernel takes for its segment, in order; and where n is."""
    if seg[0] == "fn":
        return range(len(slots)), seg[3]
    _, out_at, reads, numbers, n_at = seg
    order = []
    for i in [out_at] + reads:
        order += [i, i + 1]
    return order + list(numbers) + [n_at], n_at


def _part(slots, seg, s):
    """(cache key, parameter declarations, code, helper definitions, names) of segment number s."""
    if seg[0] == "fn":
        _, family, kname, n_at = seg
        params, body, _ = _per_element(family, kname)
        names = [p.split()[-1].lstrip("*") for p in params]
        decls = [f"{p[:len(p) - len(nm)]}{nm}_{s}" for p, nm in zip(params, names)] + [f"int w{s}"]
        helper = f"inline void seg_{kname}(int i, {', '.join(params)}) {{\n    if (i >= n) return;{body}}}"
        call = f"seg_{kname}(i, {', '.join(f'{nm}_{s}' for nm in names)});"
        code = f"    if (g < w{s}) {{ {call} return; }} g -= w{s}; i -= w{s};"
        return ("fn", family, kname), decls, code, {f"seg_{kname}": helper}, [kname]
    sig = seg[0]
    e, functions, reads, numbers, used, _ = fusion.expression(sig, lambda k: f"v{s}_{k}", lambda k: f"s{s}_{k}")
    decls, loads = fusion.declarations(sig, reads, numbers, str(s))
    decls += [f"int n_{s}", f"int w{s}"]
    store = fusion.store(sig, e, str(s))
    code = f"    if (g < w{s}) {{ if (i < n_{s}) {{{loads} {store} }} return; }} g -= w{s}; i -= w{s};"
    return sig, decls, code, functions, [op for op in used if op != "copy"] or ["copy"]
