"""Every dtype clownpiece has and everything known about each, in one place: how a buffer element is stored
and what C type arithmetic on it happens in (the kernels' -D defines), its category, PyTorch's promotion
rules (`promote_types`, `result_type`), and the mapping from numpy dtypes and Python data.

A dtype is a numpy dtype object (`clownpiece.int64 is numpy.dtype("int64")`): numpy moves the data in and
out, so the host side needs no second type system. Kernels see each dtype as

    T_MEM  the storage type of a buffer element     (bool: uchar 0/1, float16: half)
    T   the type arithmetic happens in           (float16: float; everything else: T_MEM)

float16 is storage on every device: kernels load it with vload_half and store it with vstore_half_rte
(core OpenCL C 1.2, no cl_khr_fp16 needed) and compute in float32, so a float16 op gives the float32 result
rounded once to float16 (what PyTorch computes on CPUs). Bool is stored as 0/1 bytes; every store to a bool
buffer writes `value != 0`.

Promotion (docs/api.md, dtypes) follows PyTorch: categories bool < integer < floating; within a category
the wider dtype; a Python number (and a 0-dim tensor) only moves the result to a higher category, never
widens it: int32 tensor + 5 is int32, int32 tensor + 2.5 is float32 (the default float), float16 tensor +
2.5 is float16, float32 tensor + float64 0-dim tensor is float32."""
import collections
import numbers

import numpy as np

bool_ = np.dtype(np.bool_)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
DEFAULT_FLOAT = float32  # what Python floats, Tensor(data) and the factories give
DEFAULT_INT = int64      # what Python ints give (PyTorch)

# name: the PyTorch name; storage, compute: C types T_MEM and T above; kind: 'b' bool, 'i' integer, 'f' floating;
# code: one letter for generated kernel names and cache keys; scalar: the numpy type a number is converted
# to before it becomes a by-value kernel argument of type T
Info = collections.namedtuple("Info", "name storage compute kind code scalar")
INFO = {
    bool_: Info("bool", "uchar", "uchar", "b", "b", np.uint8),
    int32: Info("int32", "int", "int", "i", "i", np.int32),
    int64: Info("int64", "long", "long", "i", "l", np.int64),
    float16: Info("float16", "half", "float", "f", "h", np.float32),
    float32: Info("float32", "float", "float", "f", "f", np.float32),
    float64: Info("float64", "double", "double", "f", "d", np.float64),
}
ALL = tuple(INFO)
FLOATING = frozenset(d for d, i in INFO.items() if i.kind == "f")
INTEGRAL = frozenset(d for d, i in INFO.items() if i.kind == "i")
BY_CODE = {i.code: d for d, i in INFO.items()}
_CATEGORY = {"b": 0, "i": 1, "f": 2}

# names accepted wherever a dtype is (PyTorch's, including its aliases)
NAMES = {"bool": bool_, "int32": int32, "int": int32, "int64": int64, "long": int64, "float16": float16,
         "half": float16, "float32": float32, "float": float32, "float64": float64, "double": float64}
_SUPPORTED = "bool, int32 (int), int64 (long), float16 (half), float32 (float) or float64 (double)"
_PYTHON_TYPES = {bool: bool_, int: int64, float: float64}  # dtype=float is float64, as in PyTorch


def resolve(dtype):
    """The dtype object for `dtype`: a dtype, one of NAMES, a numpy dtype or scalar type, or Python's
    bool/int/float. Raises TypeError for anything else (uint8, complex, ...). Returns the objects of ALL, so
    dtypes compare with `is`."""
    try:
        d = _RESOLVED.get(dtype)
    except TypeError:  # unhashable
        d = None
    if d is None:
        d = _resolve(dtype)
        if len(_RESOLVED) < 256:
            _RESOLVED[dtype] = d
    return d


def _resolve(dtype):
    if dtype is None:
        raise TypeError(f"expected a dtype ({_SUPPORTED}), got None")
    if isinstance(dtype, str):
        d = NAMES.get(dtype.removeprefix("torch.").removeprefix("clownpiece."))
        if d is not None:
            return d
    if isinstance(dtype, type) and dtype in _PYTHON_TYPES:
        return _PYTHON_TYPES[dtype]
    try:
        nd = np.dtype(dtype)
    except TypeError:
        nd = None
    if nd is not None:
        native = nd.newbyteorder("=")
        for d in ALL:
            if native == d:
                return d
    raise TypeError(f"unsupported dtype {dtype!r}; clownpiece tensors are {_SUPPORTED}")


_RESOLVED = {d: d for d in ALL}


def is_floating(dtype):
    return dtype in FLOATING


def category(dtype):
    return _CATEGORY[INFO[dtype].kind]


def compute_dtype(dtype):
    """The dtype arithmetic on `dtype` happens in (float16: float32)."""
    return float32 if dtype is float16 else dtype


def sum_dtype(dtype):
    """What sum() gives: floats keep their dtype, bool and integers sum in int64 (PyTorch)."""
    return dtype if dtype in FLOATING else int64


def require_float(t, op):
    """Raise TypeError, naming `op`, unless tensor t is floating."""
    dtype = t.dtype
    if dtype not in FLOATING:
        raise TypeError(f"{op}: not supported for {dtype.name} tensors; it takes floating tensors (convert with "
                        f".float())")


class DTypeMismatchError(RuntimeError, TypeError):
    """Operands whose dtypes must agree do not: PyTorch's RuntimeError, and a TypeError as clownpiece's other
    dtype errors."""


# Kernel files written for float32/float64 buffers only (`__global T*`): programs.py refuses to build them
# for another dtype, so an op that forgot its dtype check raises instead of reading half or integer storage
# as floats. The ops check first, with their own names (require_float); their float16 inputs are computed in
# float32 (ops/half.py).
FLOAT_ONLY_FAMILIES = frozenset({"attention", "augment", "conv", "foreach", "loss", "matmul", "nn", "norm", "pool",
                                 "upsample"})
# Kernel files written with `__global T*`: right for every dtype whose storage is its arithmetic type, so for
# all but float16 (scan: ops/scan.py computes float16 in float32)
NO_HALF_FAMILIES = frozenset({"scan"})


def check_family(family, name, dtype):
    if family in FLOAT_ONLY_FAMILIES and dtype is not float32 and dtype is not float64:
        raise TypeError(f"cl_kernels/{family}.cl ({name}) is built for float32 and float64 only, not "
                        f"{INFO[dtype].name}: convert the tensor with .float()")
    if dtype is float16 and family in NO_HALF_FAMILIES:
        raise TypeError(f"cl_kernels/{family}.cl ({name}) is not built for float16 yet: convert the tensor with "
                        f".float()")


# ---- promotion ------------------------------------------------------------------------------------------
def promote_types(a, b):
    """The smallest dtype of the higher category that holds both (PyTorch's torch.promote_types)."""
    a, b = resolve(a), resolve(b)
    if a is b:
        return a
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    return a if a.itemsize >= b.itemsize else b


def scalar_dtype(value):
    """The dtype a Python/numpy number stands for in promotion: bool, int64 or the default float."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, numbers.Integral):
        return int64
    if isinstance(value, numbers.Real):
        return DEFAULT_FLOAT
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _combine(higher, lower):
    """PyTorch's combine_categories: `lower` (operands of less priority) only counts when its category is
    higher than `higher`'s (None: no operand of that priority)."""
    if higher is None:
        return lower
    if lower is None or higher in FLOATING:
        return higher
    if higher is bool_ or lower in FLOATING:
        return promote_types(higher, lower)
    return higher


def combine(dimensioned, zero_dim=None, scalar=None):
    """The result dtype from the promoted dtypes of the three priorities of operands: dimensioned tensors,
    0-dim tensors, numbers (each None when there is none)."""
    return _combine(dimensioned, _combine(zero_dim, scalar))


def result_type(operands):
    """PyTorch's result_type over (dtype, priority) pairs, priority 2 for a tensor with dims, 1 for a 0-dim
    tensor, 0 for a number (whose dtype is scalar_dtype's)."""
    best = [None, None, None]
    for dtype, priority in operands:
        have = best[priority]
        best[priority] = dtype if have is None else promote_types(have, dtype)
    return combine(best[2], best[1], best[0])


# ---- kernels --------------------------------------------------------------------------------------------
_FLAGS = {"b": ("IS_BOOL=1",), "i": ("IS_INT=1",), "f": ("IS_FLOAT=1",)}


def _defines(dtype, prefix):
    i = INFO[dtype]
    flags = [f"{prefix}T={i.compute}", f"{prefix}T_MEM={i.storage}"]
    flags += [f"{prefix}{f}" for f in _FLAGS[i.kind]]
    if dtype is float16:
        flags.append(f"{prefix}IS_HALF=1")
    if dtype is float64:
        flags += [f"{prefix}IS_DOUBLE=1", "USE_FP64=1"]
    return tuple(flags)


_TYPE_DEFINES = {d: tuple("-D" + f for f in _defines(d, "")) for d in ALL}
_SOURCE_DEFINES = {d: _defines(d, "SRC_") for d in ALL}
_INDEX_DEFINES = {d: _defines(d, "IDX_") for d in ALL}


def type_defines(dtype):
    """The build options that make a kernel file's T, T_MEM and kind flags (IS_BOOL, IS_INT, IS_FLOAT, IS_HALF,
    IS_DOUBLE) those of `dtype`."""
    d = _TYPE_DEFINES.get(dtype)
    return d if d is not None else _TYPE_DEFINES[resolve(dtype)]


def source_defines(dtype):
    """`defines` for kernels with a second element type (SRC_T, SRC_T_MEM, SRC_IS_HALF, ...: the casts)."""
    return _SOURCE_DEFINES[dtype]


def index_defines(dtype):
    """`defines` for the index type of gathers and scatters (IDX_T, IDX_IS_FLOAT, ...)."""
    return _INDEX_DEFINES[dtype]


# ---- host data ------------------------------------------------------------------------------------------
_WIDENED = {np.dtype(t): int32 for t in (np.int8, np.uint8, np.int16, np.uint16)}
_WIDENED[np.dtype(np.uint32)] = int64


def from_numpy_dtype(np_dtype):
    """The dtype a numpy array of `np_dtype` becomes: its own where clownpiece has it; narrower integers
    widen to int32 (uint8 images) and uint32 to int64, which hold every value; other floats become float64;
    anything else (uint64, complex, objects) raises TypeError."""
    native = np.dtype(np_dtype).newbyteorder("=")
    for d in ALL:
        if native == d:
            return d
    if native in _WIDENED:
        return _WIDENED[native]
    if native.kind == "f":
        return float64
    raise TypeError(f"numpy dtype {native} has no clownpiece dtype ({_SUPPORTED}); convert it first "
                    f"(e.g. arr.astype(np.int64))")


def infer(data):
    """The dtype clownpiece.tensor(data) gives (PyTorch's inference): numpy data keeps its dtype
    (from_numpy_dtype), Python bools give bool, ints int64, floats (or a mix with floats) float32."""
    if isinstance(data, (np.ndarray, np.generic)):
        return from_numpy_dtype(data.dtype)
    if isinstance(data, (bool, numbers.Number)) and not isinstance(data, complex):
        return scalar_dtype(data)
    kind = np.asarray(data).dtype.kind
    return {"b": bool_, "i": int64, "u": int64}.get(kind, DEFAULT_FLOAT)
