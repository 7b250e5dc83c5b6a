"""Every kernel the op table of cl_kernels/elementwise.cl generates, launched directly in each of its forms
(contiguous, strided/broadcast, scalar operand), reading inputs and writing outputs at non-zero offsets,
against a numpy float64 reference per op. Ops normally reach these kernels through fusion or the raw ops;
this checks the kernels themselves, including forms few code paths take, and is what the strict (oclgrind)
run relies on to launch each one."""
import math
import re

import numpy as np
import pytest
from conftest import assert_close

import clownpiece as cp
from clownpiece import backend
from clownpiece._layout import broadcast_strides, kernel_meta
from clownpiece.backend import dtypes as D, programs

_erf = np.vectorize(math.erf)


def _erfinv_one(y):
    lo, hi = -6.0, 6.0  # bisection on math.erf: float64-exact after 80 halvings of [-6, 6]
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


_erfinv = np.vectorize(_erfinv_one)
_SQRT1_2 = 1 / math.sqrt(2)
_K = math.sqrt(2 / math.pi)  # GELU's tanh approximation
_ALPHA, _SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946  # SELU
P0, P1 = -0.3, 0.45  # the two by-value parameters (leaky_relu's slope, clamp's bounds, affine's scale/shift)

# name -> (numpy reference of (x, y, p0, p1), input domain of x, of y)
REFERENCE = {
    "neg": (lambda x, y, p0, p1: -x, "any", None),
    "abs": (lambda x, y, p0, p1: np.abs(x), "any", None),
    "sign": (lambda x, y, p0, p1: np.sign(x), "any", None),
    "sin": (lambda x, y, p0, p1: np.sin(x), "any", None),
    "cos": (lambda x, y, p0, p1: np.cos(x), "any", None),
    "tanh": (lambda x, y, p0, p1: np.tanh(x), "any", None),
    "log": (lambda x, y, p0, p1: np.log(x), "positive", None),
    "exp": (lambda x, y, p0, p1: np.exp(x), "any", None),
    "log1p": (lambda x, y, p0, p1: np.log1p(x), "positive", None),
    "expm1": (lambda x, y, p0, p1: np.expm1(x), "any", None),
    "sqrt": (lambda x, y, p0, p1: np.sqrt(x), "positive", None),
    "floor": (lambda x, y, p0, p1: np.floor(x), "any", None),
    "round": (lambda x, y, p0, p1: np.rint(x), "any", None),
    "relu": (lambda x, y, p0, p1: np.maximum(x, 0), "any", None),
    "sigmoid": (lambda x, y, p0, p1: 1 / (1 + np.exp(-x)), "any", None),
    "gelu": (lambda x, y, p0, p1: 0.5 * x * (1 + _erf(x * _SQRT1_2)), "any", None),
    "leaky_relu": (lambda x, y, p0, p1: np.where(x > 0, x, x * p0), "any", None),
    "pow_scalar": (lambda x, y, p0, p1: x ** p0, "positive", None),
    "clamp": (lambda x, y, p0, p1: np.clip(x, p0, p1), "any", None),
    "affine": (lambda x, y, p0, p1: x * p0 + p1, "any", None),
    "log2": (lambda x, y, p0, p1: np.log2(x), "positive", None),
    "log10": (lambda x, y, p0, p1: np.log10(x), "positive", None),
    "erf": (lambda x, y, p0, p1: _erf(x), "any", None),
    "erfinv": (lambda x, y, p0, p1: _erfinv(x), "unit", None),
    "rsqrt": (lambda x, y, p0, p1: 1 / np.sqrt(x), "positive", None),
    "reciprocal": (lambda x, y, p0, p1: 1 / x, "nonzero", None),
    "square": (lambda x, y, p0, p1: x * x, "any", None),
    "nan_to_num_inf": (lambda x, y, p0, p1: np.where(np.isposinf(x), p0, np.where(np.isneginf(x), p1, x)), "any",
                       None),
    "nan_to_num_nan": (lambda x, y, p0, p1: np.where(np.isnan(x), p0, x), "any", None),
    "fmod": (lambda x, y, p0, p1: np.fmod(x, y), "any", "nonzero"),
    "add": (lambda x, y, p0, p1: x + y, "any", "any"),
    "add_scaled": (lambda x, y, p0, p1: x + p0 * y, "any", "any"),
    "sub": (lambda x, y, p0, p1: x - y, "any", "any"),
    "rsub": (lambda x, y, p0, p1: y - x, "any", "any"),
    "mul": (lambda x, y, p0, p1: x * y, "any", "any"),
    "div": (lambda x, y, p0, p1: x / y, "any", "nonzero"),
    "rdiv": (lambda x, y, p0, p1: y / x, "nonzero", "any"),
    "floor_divide": (lambda x, y, p0, p1: np.floor_divide(x, y), "any", "nonzero"),
    "rfloor_divide": (lambda x, y, p0, p1: np.floor_divide(y, x), "nonzero", "any"),
    "remainder": (lambda x, y, p0, p1: np.remainder(x, y), "any", "nonzero"),
    "rremainder": (lambda x, y, p0, p1: np.remainder(y, x), "nonzero", "any"),
    "pow": (lambda x, y, p0, p1: x ** y, "positive", "any"),
    "rpow": (lambda x, y, p0, p1: y ** x, "any", "positive"),
    "maximum": (lambda x, y, p0, p1: np.maximum(x, y), "any", "any"),
    "minimum": (lambda x, y, p0, p1: np.minimum(x, y), "any", "any"),
    "eq": (lambda x, y, p0, p1: (x == y) * 1.0, "small_ints", "small_ints"),
    "ne": (lambda x, y, p0, p1: (x != y) * 1.0, "small_ints", "small_ints"),
    "lt": (lambda x, y, p0, p1: (x < y) * 1.0, "small_ints", "small_ints"),
    "le": (lambda x, y, p0, p1: (x <= y) * 1.0, "small_ints", "small_ints"),
    "gt": (lambda x, y, p0, p1: (x > y) * 1.0, "small_ints", "small_ints"),
    "ge": (lambda x, y, p0, p1: (x >= y) * 1.0, "small_ints", "small_ints"),
    "relu_grad": (lambda x, y, p0, p1: np.where(y > 0, x, 0), "any", "any"),
    "tanh_grad": (lambda x, y, p0, p1: x * (1 - y * y), "any", "any"),
    "sigmoid_grad": (lambda x, y, p0, p1: x * y * (1 - y), "any", "any"),
    "sign_mul": (lambda x, y, p0, p1: x * np.sign(y), "any", "any"),
    "clamp_grad": (lambda x, y, p0, p1: np.where((y > p0) & (y < p1), x, 0), "any", "any"),
    "leaky_relu_grad": (lambda x, y, p0, p1: np.where(y > 0, x, x * p0), "any", "any"),
    "gelu_grad": (lambda x, y, p0, p1: x * (0.5 * (1 + _erf(y * _SQRT1_2)) + y * np.exp(-0.5 * y * y)
                                            / math.sqrt(2 * math.pi)), "any", "any"),
    # the activations of nn (tests/test_nn_activations.py checks them with their default parameters)
    "gelu_tanh": (lambda x, y, p0, p1: 0.5 * x * (1 + np.tanh(_K * (x + 0.044715 * x ** 3))), "any", None),
    "silu": (lambda x, y, p0, p1: x / (1 + np.exp(-x)), "any", None),
    "elu": (lambda x, y, p0, p1: np.where(x > 0, x, p0 * np.expm1(x)), "any", None),
    "selu": (lambda x, y, p0, p1: _SCALE * np.where(x > 0, x, _ALPHA * np.expm1(x)), "any", None),
    "softplus": (lambda x, y, p0, p1: np.where(x * p0 > p1, x, np.log1p(np.exp(x * p0)) / p0), "any", None),
    "mish": (lambda x, y, p0, p1: x * np.tanh(np.log1p(np.exp(x))), "any", None),
    "hardswish": (lambda x, y, p0, p1: x * np.clip(x + 3, 0, 6) / 6, "any", None),
    "hardsigmoid": (lambda x, y, p0, p1: np.clip(x + 3, 0, 6) / 6, "any", None),
    "gelu_tanh_grad": (lambda x, y, p0, p1: x * (0.5 * (1 + np.tanh(_K * (y + 0.044715 * y ** 3)))
                                                 + 0.5 * y * (1 - np.tanh(_K * (y + 0.044715 * y ** 3)) ** 2)
                                                 * _K * (1 + 3 * 0.044715 * y * y)), "any", "any"),
    "silu_grad": (lambda x, y, p0, p1: x * (1 / (1 + np.exp(-y))) * (1 + y * (1 - 1 / (1 + np.exp(-y)))),
                  "any", "any"),
    "elu_grad": (lambda x, y, p0, p1: np.where(y > 0, x, x * p0 * np.exp(y)), "any", "any"),
    "selu_grad": (lambda x, y, p0, p1: _SCALE * np.where(y > 0, x, x * _ALPHA * np.exp(y)), "any", "any"),
    "softplus_grad": (lambda x, y, p0, p1: np.where(y * p0 > p1, x, x / (1 + np.exp(-y * p0))), "any", "any"),
    "mish_grad": (lambda x, y, p0, p1: x * (np.tanh(np.log1p(np.exp(y))) + y * (1 - np.tanh(np.log1p(np.exp(y))) ** 2)
                                            / (1 + np.exp(-y))), "any", "any"),
    "hardswish_grad": (lambda x, y, p0, p1: np.where(y < -3, 0, np.where(y <= 3, x * (y / 3 + 0.5), x)), "any", "any"),
    "hardsigmoid_grad": (lambda x, y, p0, p1: np.where((y > -3) & (y < 3), x / 6, 0), "any", "any"),
}

# the kernels each macro of the op table makes (see the comment at the top of elementwise.cl)
FORMS = {"UNARY": ("c", "s"), "BINARY": ("c", "s", "cs", "ss"), "BINARY_T": ("c", "s"),
         "BINARY_R": ("cs", "ss"), "BINARY_P": ("c", "s")}


def _op_table():
    """(macro, name) of the lines built for floating dtypes (kinds with F; test_dtypes.py checks the integer
    and bool lines through the ops)."""
    with open(programs.kernel_path("elementwise")) as f:
        text = f.read()
    return [(macro, name) for macro, kinds, name in
            re.findall(r"^(UNARY|BINARY_[TRP]|BINARY)\((\w+), (\w+),", text, re.M) if "F" in kinds]


TABLE = _op_table()
CASES = [(kind, name, form) for kind, name in TABLE for form in FORMS[kind]]
rng = np.random.default_rng(7)


def test_every_op_of_the_table_has_a_reference():
    assert len(TABLE) > 30
    missing = [name for _, name in TABLE if name not in REFERENCE]
    assert not missing, f"add a numpy reference to REFERENCE for {missing}"


def _values(domain, shape):
    if domain == "positive":
        return rng.uniform(0.3, 2.0, shape)
    if domain == "nonzero":
        return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    if domain == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    if domain == "small_ints":
        return rng.integers(-2, 3, shape).astype(np.float64)
    return rng.normal(size=shape)


def _at_offset(arr, dtype, layout):
    """A tensor equal to arr whose first element is not at offset 0 (contiguous) or whose strides are
    transposed (strided)."""
    if layout == "contiguous":
        base = cp.Tensor(np.concatenate([[9.0, 9.0, 9.0], arr.ravel()]).astype(dtype), dtype=dtype)
        return base.narrow(0, 3, arr.size).view(arr.shape)
    return cp.Tensor(np.ascontiguousarray(arr.T).astype(dtype), dtype=dtype).T


@pytest.mark.parametrize("kind,name,form", CASES, ids=[f"{n}_{f}" for _, n, f in CASES])
def test_kernel_form(kind, name, form, dtype):
    ref, x_dom, y_dom = REFERENCE[name]
    shape = (3, 5)
    x_np = _values(x_dom, shape)
    x = _at_offset(x_np, dtype, "contiguous" if form.startswith("c") else "strided")
    out_base = cp.empty(shape[0] * shape[1] + 2, dtype=dtype)
    out = out_base.narrow(0, 2, shape[0] * shape[1]).view(shape)  # written at element offset 2
    n = out.numel()
    knl = backend.kernel("elementwise", f"{name}_{form}", np.dtype(dtype))
    params = (P0, P1) if kind in ("UNARY", "BINARY_P") else ()
    if kind == "UNARY":
        meta = kernel_meta(x._shape, x._strides) if form == "s" else ()
        backend.launch(knl, n, out, x, n, *params, *meta)
        expected = ref(x_np, None, P0, P1)
    elif form in ("cs", "ss"):
        y = float(_values(y_dom, ())) if y_dom != "small_ints" else 1.0
        meta = kernel_meta(x._shape, x._strides) if form == "ss" else ()
        backend.launch(knl, n, out, x, y, n, *meta)
        expected = ref(x_np, np.float64(np.asarray(y, dtype)), P0, P1)
    elif form == "c":
        y_np = _values(y_dom, shape)
        backend.launch(knl, n, out, x, _at_offset(y_np, dtype, "contiguous"), n, *params)
        expected = ref(x_np, y_np, P0, P1)
    else:  # strided x, y broadcast along dim 0 (stride 0)
        y_np = _values(y_dom, (1, shape[1]))
        y = _at_offset(y_np, dtype, "contiguous")
        meta = kernel_meta(shape, x._strides, broadcast_strides(y._shape, y._strides, shape))
        backend.launch(knl, n, out, x, y, n, *params, *meta)
        expected = ref(x_np, np.broadcast_to(y_np, shape), P0, P1)
    # inputs are rounded to the dtype first: compare against the reference on those values
    tol = dict(rtol=1e-5, atol=1e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert_close(out, expected, **tol)
    assert out_base.numpy()[:2].tolist() != [] and out_base.narrow(0, 2, n).numpy().shape == (n,)


# the in-place forms the op table makes when built with -DINPLACE (ops/inplace.py)
INPLACE_FORMS = {"UNARY": ("i",), "BINARY": ("i", "is"), "BINARY_T": ("i",), "BINARY_R": ("is",),
                 "BINARY_P": ("i",)}
INPLACE_CASES = [(kind, name, form) for kind, name in TABLE for form in INPLACE_FORMS[kind]]


@pytest.mark.parametrize("kind,name,form", INPLACE_CASES, ids=[f"{n}_{f}" for _, n, f in INPLACE_CASES])
def test_inplace_kernel_form(kind, name, form, dtype):
    """NAME_i / NAME_is write through a transposed view of a bigger buffer; the rest of it stays."""
    ref, x_dom, y_dom = REFERENCE[name]
    shape = (3, 5)
    x_np = _values(x_dom, shape)
    base = cp.Tensor(np.concatenate([[9.0, 9.0], np.ascontiguousarray(x_np.T).ravel()]).astype(dtype),
                     dtype=dtype)
    x = base.narrow(0, 2, x_np.size).view(shape[::-1]).T  # offset 2, transposed strides
    n = x.numel()
    knl = backend.kernel("elementwise", f"{name}_{form}", np.dtype(dtype), ("INPLACE",))
    params = (P0, P1) if kind in ("UNARY", "BINARY_P") else ()
    x_np = x.numpy().astype(np.float64)  # the values rounded to the dtype
    if kind == "UNARY":
        backend.launch(knl, n, x, n, *params, *kernel_meta(x._shape, x._strides))
        expected = ref(x_np, None, P0, P1)
    elif form == "is":
        y = float(_values(y_dom, ())) if y_dom != "small_ints" else 1.0
        backend.launch(knl, n, x, y, n, *kernel_meta(x._shape, x._strides))
        expected = ref(x_np, np.float64(np.asarray(y, dtype)), P0, P1)
    else:  # y broadcast along dim 0 (stride 0)
        y_np = _values(y_dom, (1, shape[1]))
        y = _at_offset(y_np, dtype, "contiguous")
        meta = kernel_meta(shape, x._strides, broadcast_strides(y._shape, y._strides, shape))
        backend.launch(knl, n, x, y, n, *params, *meta)
        expected = ref(x_np, np.broadcast_to(y.numpy().astype(np.float64), shape), P0, P1)
    tol = dict(rtol=1e-5, atol=1e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert_close(x, expected, **tol)
    assert base.numpy()[:2].tolist() == [9.0, 9.0]


# ---- the integer and bool lines of the op table, and the predicates (TEST / COMPARE: bool outputs) --------
def _typed_table():
    """(macro, kinds, name) of every line of the op table."""
    with open(programs.kernel_path("elementwise")) as f:
        return re.findall(r"^(UNARY|BINARY_[TRP]|BINARY|TEST|COMPARE)\((\w+), (\w+),", f.read(), re.M)


def _shift(x, y, left):
    y = np.asarray(y)
    out = (x << np.clip(y, 0, 63)) if left else (x >> np.clip(y, 0, 63))
    return np.where((y < 0) | (y >= 64), 0 if left else np.where(x < 0, -1, 0), out)


# name -> (reference on int64 / bool arrays x, y and the integer parameters p0, p1, domain of x, of y)
INT_REFERENCE = {
    "neg": (lambda x, y, p0, p1: -x, "any", None), "abs": (lambda x, y, p0, p1: np.abs(x), "any", None),
    "sign": (lambda x, y, p0, p1: np.sign(x.astype(np.float64)), "any", None),
    "relu": (lambda x, y, p0, p1: np.maximum(x, 0), "any", None),
    "pow_scalar": (lambda x, y, p0, p1: x ** 3, "any", None),
    "clamp": (lambda x, y, p0, p1: np.clip(x, p0, p1), "any", None),
    "bitwise_not": (lambda x, y, p0, p1: ~x, "any", None),
    "add": (lambda x, y, p0, p1: x + y, "any", "any"), "add_scaled": (lambda x, y, p0, p1: x + p0 * y, "any", "any"),
    "sub": (lambda x, y, p0, p1: x - y, "any", "any"), "rsub": (lambda x, y, p0, p1: y - x, "any", "any"),
    "mul": (lambda x, y, p0, p1: x * y, "any", "any"),
    "floor_divide": (lambda x, y, p0, p1: x // y, "any", "nonzero"),
    "rfloor_divide": (lambda x, y, p0, p1: y // x, "nonzero", "any"),
    "remainder": (lambda x, y, p0, p1: x % y, "any", "nonzero"),
    "fmod": (lambda x, y, p0, p1: np.fmod(x, y), "any", "nonzero"),
    "square": (lambda x, y, p0, p1: x * x, "any", None),
    "rremainder": (lambda x, y, p0, p1: y % x, "nonzero", "any"),
    "pow": (lambda x, y, p0, p1: x ** y, "any", "exponent"), "rpow": (lambda x, y, p0, p1: y ** x, "exponent", "any"),
    "maximum": (lambda x, y, p0, p1: np.maximum(x, y), "any", "any"),
    "minimum": (lambda x, y, p0, p1: np.minimum(x, y), "any", "any"),
    "bitwise_and": (lambda x, y, p0, p1: x & y, "any", "any"), "bitwise_or": (lambda x, y, p0, p1: x | y, "any", "any"),
    "bitwise_xor": (lambda x, y, p0, p1: x ^ y, "any", "any"),
    "lshift": (lambda x, y, p0, p1: _shift(x, y, True), "any", "shift"),
    "rshift": (lambda x, y, p0, p1: _shift(x, y, False), "any", "shift"),
    "rlshift": (lambda x, y, p0, p1: _shift(y, x, True), "shift", "any"),
    "rrshift": (lambda x, y, p0, p1: _shift(y, x, False), "shift", "any"),
    # predicates (any dtype)
    "logical_not": (lambda x, y, p0, p1: x == 0, "any", None), "isnan": (lambda x, y, p0, p1: np.isnan(x), "any", None),
    "isinf": (lambda x, y, p0, p1: np.isinf(x), "any", None),
    "isfinite": (lambda x, y, p0, p1: np.isfinite(x), "any", None),
    "eq": (lambda x, y, p0, p1: x == y, "any", "any"), "ne": (lambda x, y, p0, p1: x != y, "any", "any"),
    "lt": (lambda x, y, p0, p1: x < y, "any", "any"), "le": (lambda x, y, p0, p1: x <= y, "any", "any"),
    "gt": (lambda x, y, p0, p1: x > y, "any", "any"), "ge": (lambda x, y, p0, p1: x >= y, "any", "any"),
    "logical_and": (lambda x, y, p0, p1: (x != 0) & (y != 0), "any", "any"),
    "logical_or": (lambda x, y, p0, p1: (x != 0) | (y != 0), "any", "any"),
    "logical_xor": (lambda x, y, p0, p1: (x != 0) ^ (y != 0), "any", "any"),
}
FORMS.update(TEST=("c", "s"), COMPARE=("c", "s", "cs", "ss"))
_KIND_DTYPES = {"I": np.dtype(np.int64), "B": np.dtype(np.bool_), "F": np.dtype(np.float32)}
TYPED_CASES = [(macro, name, form, kind) for macro, kinds, name in _typed_table() for kind in kinds
               if kind != "F" or macro in ("TEST", "COMPARE") for form in FORMS[macro]]


def _int_values(domain, shape, dtype):
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind == "f":
        v = rng.integers(-3, 4, shape).astype(np.float64)
        v.flat[:3] = [np.nan, np.inf, -np.inf][:v.size]
        return v
    low, high = {"nonzero": (1, 6), "exponent": (0, 5), "shift": (-2, 66)}.get(domain, (-7, 8))
    v = rng.integers(low, high, shape)
    return v * rng.choice([-1, 1], shape) if domain == "nonzero" else v


def _scalar(v, dtype):
    """A number as the kernel's by-value T argument (backend/dtypes.py: uchar for bool)."""
    return D.INFO[D.resolve(dtype)].scalar(v)


def _params(macro, name, dtype, with_params):
    """The two by-value parameters of a line that takes them (clamp's bounds, pow_scalar's exponent)."""
    if macro not in with_params:
        return ()
    values = (3, 0) if name == "pow_scalar" else ((0, 1) if dtype == np.bool_ else (-2, 3))
    return tuple(_scalar(v, dtype) for v in values)


@pytest.mark.parametrize("macro,name,form,kind", TYPED_CASES, ids=[f"{n}_{f}_{k}" for _, n, f, k in TYPED_CASES])
def test_typed_kernel_form(macro, name, form, kind):
    """The integer (int64) and bool kernels of each line, and the predicates of every kind, in each form."""
    dtype = _KIND_DTYPES[kind]
    ref, x_dom, y_dom = INT_REFERENCE[name]
    shape = (3, 5)
    x_np = _int_values(x_dom, shape, dtype)
    x = _at_offset(x_np, dtype, "contiguous" if form.startswith("c") else "strided")
    out_dtype = np.dtype(np.bool_) if macro in ("TEST", "COMPARE") else dtype
    out_base = cp.empty(shape[0] * shape[1] + 2, dtype=out_dtype)
    out = out_base.narrow(0, 2, shape[0] * shape[1]).view(shape)
    n = out.numel()
    knl = backend.kernel("elementwise", f"{name}_{form}", dtype)
    params = _params(macro, name, dtype, ("UNARY", "BINARY_P", "TEST"))
    if macro in ("UNARY", "TEST"):
        meta = kernel_meta(x._shape, x._strides) if form == "s" else ()
        backend.launch(knl, n, out, x, n, *params, *meta)
        expected = ref(x_np, None, *(int(p) for p in params or (0, 0)))
    elif form in ("cs", "ss"):
        y = _scalar(_int_values(y_dom, (), dtype)[()], dtype)
        meta = kernel_meta(x._shape, x._strides) if form == "ss" else ()
        backend.launch(knl, n, out, x, y, n, *meta)
        expected = ref(x_np, y, 0, 0)
    else:
        y_np = _int_values(y_dom, shape if form == "c" else (1, shape[1]), dtype)
        y = _at_offset(y_np, dtype, "contiguous")
        meta = () if form == "c" else kernel_meta(shape, x._strides, broadcast_strides(y._shape, y._strides, shape))
        backend.launch(knl, n, out, x, y, n, *params, *meta)
        expected = ref(x_np, np.broadcast_to(y_np, shape), *(int(p) for p in params or (0, 0)))
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out.numpy(), np.asarray(expected).astype(out_dtype))


TYPED_INPLACE = [(macro, name, form, kind) for macro, kinds, name in _typed_table() for kind in kinds
                 if kind != "F" and macro not in ("TEST", "COMPARE") for form in INPLACE_FORMS[macro]]


@pytest.mark.parametrize("macro,name,form,kind", TYPED_INPLACE, ids=[f"{n}_{f}_{k}" for _, n, f, k in TYPED_INPLACE])
def test_typed_inplace_kernel_form(macro, name, form, kind):
    dtype = _KIND_DTYPES[kind]
    ref, x_dom, y_dom = INT_REFERENCE[name]
    shape = (3, 5)
    x_np = _int_values(x_dom, shape, dtype)
    base = cp.tensor(np.concatenate([np.zeros(2, dtype), np.ascontiguousarray(x_np.T).ravel()]), dtype=dtype)
    x = base.narrow(0, 2, x_np.size).view(shape[::-1]).T
    n = x.numel()
    knl = backend.kernel("elementwise", f"{name}_{form}", dtype, ("INPLACE",))
    params = _params(macro, name, dtype, ("UNARY", "BINARY_P"))
    if macro == "UNARY":
        backend.launch(knl, n, x, n, *params, *kernel_meta(x._shape, x._strides))
        expected = ref(x_np, None, *(int(p) for p in params))
    elif form == "is":
        y = _scalar(_int_values(y_dom, (), dtype)[()], dtype)
        backend.launch(knl, n, x, y, n, *kernel_meta(x._shape, x._strides))
        expected = ref(x_np, y, 0, 0)
    else:
        y_np = _int_values(y_dom, (1, shape[1]), dtype)
        y = _at_offset(y_np, dtype, "contiguous")
        meta = kernel_meta(shape, x._strides, broadcast_strides(y._shape, y._strides, shape))
        backend.launch(knl, n, x, y, n, *params, *meta)
        expected = ref(x_np, np.broadcast_to(y_np, shape), *(int(p) for p in params or (0, 0)))
    np.testing.assert_array_equal(x.numpy(), np.asarray(expected).astype(dtype))
    assert base.numpy()[:2].tolist() == [0, 0]
