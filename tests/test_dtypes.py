"""dtypes (docs/api.md, dtypes): names, promotion (against a table written from PyTorch's type-promotion
documentation, not from the implementation), what each op gives, values against numpy for every dtype and
layout, casts, float16 within half-precision tolerances, fusion's bits against eager launches, host reads,
autograd's rules and the course behaviours that comparison and index results must keep."""
import math

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch
from hypothesis import given, settings, strategies as st

import clownpiece as cp
from clownpiece import backend, nn
from clownpiece.backend import fusion

B, I32, I64, F16, F32, F64 = (np.dtype(t) for t in (np.bool_, np.int32, np.int64, np.float16, np.float32,
                                                    np.float64))
ALL = [B, I32, I64, F16, F32, F64]
NUMERIC = [I32, I64, F16, F32, F64]

# torch.promote_types for every pair, from PyTorch's "Type promotion" rules (tensor_attributes): the higher
# category of bool < integer < floating wins; within a category the wider dtype
PROMOTE = {
    (B, B): B, (B, I32): I32, (B, I64): I64, (B, F16): F16, (B, F32): F32, (B, F64): F64,
    (I32, I32): I32, (I32, I64): I64, (I32, F16): F16, (I32, F32): F32, (I32, F64): F64,
    (I64, I64): I64, (I64, F16): F16, (I64, F32): F32, (I64, F64): F64,
    (F16, F16): F16, (F16, F32): F32, (F16, F64): F64, (F32, F32): F32, (F32, F64): F64, (F64, F64): F64,
}
PROMOTE.update({(b, a): v for (a, b), v in list(PROMOTE.items())})
CATEGORY = {B: 0, I32: 1, I64: 1, F16: 2, F32: 2, F64: 2}


def doc_result(dims, zero_dims, scalars):
    """The three rules of PyTorch's documentation, in its words: a number of a higher category than the
    tensors promotes to a type that holds all numbers of that category (bool, int64, or the default float32);
    else a 0-dim tensor of a higher category than the dimensioned tensors promotes to a type that holds all
    such 0-dim tensors; else the type that holds all dimensioned tensors."""
    def promote(ds):
        out = ds[0]
        for d in ds[1:]:
            out = PROMOTE[out, d]
        return out
    result = promote(dims) if dims else None
    if zero_dims:
        z = promote(zero_dims)
        if result is None or CATEGORY[z] > CATEGORY[result]:
            result = z
    if scalars:
        s = promote([{bool: B, int: I64, float: F32}[type(v)] for v in scalars])
        if result is None or CATEGORY[s] > CATEGORY[result]:
            result = s
    return result


def tensor_of(dtype, shape=(3,)):
    return cp.tensor(np.ones(shape), dtype=dtype)


# ---- names and promotion ----------------------------------------------------------------------------------
def test_names_and_aliases():
    assert (cp.bool, cp.int32, cp.int64, cp.float16, cp.float32, cp.float64) == tuple(ALL)
    assert cp.long is I64 and cp.int is I32 and cp.half is F16 and cp.float is F32 and cp.double is F64
    for name, d in (("long", I64), ("int", I32), ("half", F16), ("float", F32), ("double", F64), ("bool", B),
                    ("int64", I64), ("float16", F16)):
        assert cp.zeros(2, dtype=name).dtype is d
    assert cp.zeros(2, dtype=bool).dtype is B and cp.zeros(2, dtype=int).dtype is I64  # Python types, as torch
    for bad in ("uint8", np.uint8, np.complex64, "opencl", object):
        with no_launch(), pytest.raises(TypeError, match="unsupported dtype"):
            cp.zeros(2, dtype=bad)


@given(st.sampled_from(ALL), st.sampled_from(ALL))
@settings(max_examples=60, deadline=None)
def test_promote_types_table(a, b):
    assert cp.promote_types(a, b) is PROMOTE[a, b]
    assert cp.result_type(tensor_of(a), tensor_of(b)) is PROMOTE[a, b]
    assert (tensor_of(a) * tensor_of(b)).dtype is PROMOTE[a, b]


@given(st.sampled_from(ALL), st.sampled_from(ALL), st.sampled_from([True, 2, 2.5]), st.booleans())
@settings(max_examples=150, deadline=None)
def test_result_type_with_zero_dim_tensors_and_numbers(dim_dtype, zero_dtype, number, with_zero_dim):
    dim, zero = tensor_of(dim_dtype), tensor_of(zero_dtype, ())
    zeros = [zero_dtype] if with_zero_dim else []
    want = doc_result([dim_dtype], zeros, [number])
    operands = (dim, zero, number) if with_zero_dim else (dim, number)
    assert cp.result_type(*operands) is want
    assert cp.result_type(dim, number) is doc_result([dim_dtype], [], [number])
    assert cp.result_type(zero, number) is doc_result([], [zero_dtype], [number])
    if not (dim_dtype is B and zero_dtype is B and number is True):
        assert (dim * zero).dtype is doc_result([dim_dtype], [zero_dtype], [])


def test_documented_promotion_examples():
    # the examples of PyTorch's type promotion documentation and of torch.result_type's
    int_t, long_t, float_t, double_t, bool_t = (tensor_of(d) for d in (I32, I64, F32, F64, B))
    assert (int_t + 5).dtype is I32
    assert (int_t + cp.tensor(1)).dtype is I32  # a 0-dim int64 does not widen an int32 tensor
    assert (long_t + int_t).dtype is I64 and (bool_t + long_t).dtype is I64 and (bool_t + int_t).dtype is I32
    assert (float_t + double_t).dtype is F64 and (long_t + float_t).dtype is F32
    assert cp.result_type(cp.tensor([1, 2], dtype=cp.int), 1.0) is F32
    assert (tensor_of(F16) * 2.5).dtype is F16 and (float_t * cp.tensor(2.0, dtype=F64)).dtype is F32
    assert (int_t * cp.tensor(2.0, dtype=F64)).dtype is F64  # a 0-dim tensor of a higher category counts


# Binary ops over every dtype pair and operand form: the result dtype from doc_result (the documentation's
# rules) plus each op's own rule, and the values from numpy float64. Operands hold small integers and halves,
# exact in every dtype, so only the op's own rounding is left (true division); zero divisors give inf/NaN.
BINARY = {"add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
          "mul": (lambda a, b: a * b, np.multiply), "truediv": (lambda a, b: a / b, np.true_divide),
          "lt": (lambda a, b: a < b, np.less), "eq": (lambda a, b: a == b, np.equal),
          "ge": (lambda a, b: a >= b, np.greater_equal)}
SCALARS = [True, False, 0, 3, -2, 2.5, -0.5, 0.0]
FORMS = ["tensor-tensor", "tensor-scalar", "scalar-tensor", "tensor-0dim", "0dim-tensor", "0dim-0dim",
         "0dim-scalar"]


def op_result(op, promoted):
    """PyTorch's result dtype of `op` for operands that promote to `promoted` (docs/api.md, what returns what):
    comparisons give bool; true division of bools and integers the default float32; the documented
    difference: a subtraction of bools gives int64 (PyTorch refuses it; course code does `1 - mask`)."""
    if op in ("lt", "eq", "ge"):
        return B
    if op == "truediv" and CATEGORY[promoted] < 2:
        return F32
    if op == "sub" and promoted is B:
        return I64
    return promoted


def exact_in(dtype, values):
    """Float64 values of small integers and halves as `dtype` holds them exactly: bools are != 0, integers
    truncated."""
    values = np.asarray(values)
    return np.asarray(values != 0 if dtype is B else values if CATEGORY[dtype] == 2 else np.trunc(values), dtype)


@st.composite
def binary_case(draw):
    a_dtype, b_dtype = draw(st.sampled_from(ALL)), draw(st.sampled_from(ALL))
    form = draw(st.sampled_from(FORMS))
    shapes = {"tensor": draw(st.sampled_from([(2, 3), (3,), (1, 3)])), "0dim": ()}
    kinds = form.split("-")
    a_shape = shapes[kinds[0]] if kinds[0] != "scalar" else None
    b_shape = (draw(st.sampled_from([(2, 3), (3,), (2, 1)])) if kinds == ["tensor", "tensor"] else
               shapes[kinds[1]] if kinds[1] != "scalar" else None)

    def operand(dtype, shape):
        if shape is None:
            return draw(st.sampled_from(SCALARS))
        n = int(np.prod(shape))
        halves = np.array(draw(st.lists(st.integers(-12, 12), min_size=n, max_size=n)), np.float64) / 2
        return exact_in(dtype, halves.reshape(shape))
    return draw(st.sampled_from(sorted(BINARY))), operand(a_dtype, a_shape), operand(b_dtype, b_shape)


def dtype_groups(*operands):
    """(dimensioned dtypes, 0-dim dtypes, numbers) of numpy arrays and Python numbers."""
    arrays = [x for x in operands if isinstance(x, np.ndarray)]
    return ([x.dtype for x in arrays if x.ndim], [x.dtype for x in arrays if not x.ndim],
            [x for x in operands if not isinstance(x, np.ndarray)])


def check_binary(name, a, b):
    """op(a, b) on clownpiece operands made from a and b (numpy arrays, or numbers) has the reference dtype and
    numpy's float64 values, within the result dtype's tolerance."""
    op, ref_op = BINARY[name]
    want = op_result(name, doc_result(*dtype_groups(a, b)))

    def as_cp(x):
        return cp.tensor(x) if isinstance(x, np.ndarray) else x
    got = op(as_cp(a), as_cp(b))
    assert got.dtype is want, (name, a, b, got.dtype, want)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = ref_op(np.asarray(a, np.float64), np.asarray(b, np.float64))
    assert_close(got, ref.astype(want) if want is B else ref, want)


@given(binary_case())
@settings(max_examples=100, deadline=None, derandomize=True)
def test_binary_ops_promote_and_compute_like_pytorch(case):
    check_binary(*case)


def test_binary_ops_promote_like_pytorch_for_every_dtype_pair_and_form():
    """The hypothesis test above samples the 1,764 (op, dtypes, form) combinations; this one visits every
    dtype pair and form once with fixed operands (a zero divisor included) for one op of each rule of
    op_result (mul, eq and ge share add's and lt's), so no pair is left to chance. Each combination is a
    fused kernel of its own: ~175 programs to build on a cold binary cache (15-45 s on this machine), ~4 s
    warm."""
    a_values, b_values = np.array([[1.5, -2.0, 0.0], [3.0, -0.5, 2.0]]), np.array([2.0, 0.0, -1.5])

    def operand(values, dtype, zero_dim):
        return exact_in(dtype, values.flat[0] if zero_dim else values)
    for name in ("add", "sub", "truediv", "lt"):
        for a_dtype in ALL:
            for b_dtype in ALL:
                for a_zero, b_zero in ((False, False), (False, True), (True, False), (True, True)):
                    check_binary(name, operand(a_values, a_dtype, a_zero), operand(b_values, b_dtype, b_zero))
            for number in (True, 3, -0.5, 0):
                for zero_dim in (False, True):
                    check_binary(name, operand(a_values, a_dtype, zero_dim), number)
                check_binary(name, number, operand(b_values, a_dtype, False))


# ---- what each op gives ---------------------------------------------------------------------------------------
def test_result_dtypes_of_ops():
    i, b, f, h = cp.tensor([3, -4]), cp.tensor([True, False]), cp.tensor([1.5, -2.0]), cp.tensor([1.0], dtype=F16)
    cases = [
        (i > 0, B), (f == f, B), (b != b, B), (i < 2.5, B), (i.eq(f), B),     # comparisons: bool
        (i / 2, F32), (i / i, F32), (b / b, F32), (h / 2, F16),                # true division: default float
        (i // 2, I64), (i % 3, I64), (f // 2, F32), (i ** 2, I64), (i ** 0.5, F32),
        (b + b, B), (b * b, B), (b + 1, I64), (b * 1.5, F32), (b + i, I64),    # PyTorch's bool arithmetic
        (1 - b, I64), (-b, I64), (b - b, I64),                                 # course: bool as int64
        (i.exp(), F32), (b.sqrt(), F32), (i.sin(), F32),                       # int-to-float promotion
        (i.abs(), I64), (-i, I64), (i.relu(), I64), (i.sign(), I64), (i.floor(), I64),
        (i.clamp(0, 1), I64), (i.clamp(0.5, 1), F32),
        (cp.maximum(i, f) if hasattr(cp, "maximum") else i.maximum(f), F32),
        (i & 1, I64), (b | b, B), (~b, B), (~i, I64), (i << 1, I64), (b ^ True, B),
        (i.logical_and(f), B), (f.logical_not(), B), (f.isnan(), B), (i.isnan(), B),
        (i.sum(), I64), (b.sum(), I64), (cp.tensor([1], dtype=I32).sum(), I64), (f.sum(), F32), (h.sum(), F16),
        (i.mean(), F32), (b.mean(), F32),                                      # course/numpy: float32 mean
        (i.argmax(), I64), (f.argmin(), I64), (f.max(0)[1], I64), (i.max(0)[0], I64), (b.amax(), B),
        (cp.where(b, i, 2.5), F32), (cp.where(b, i, 2), I64), (cp.cat([i, f]), F32), (cp.stack([b, i]), I64),
    ]
    for t, want in cases:
        assert t.dtype is want, (t, want)


@pytest.mark.parametrize("op, dtype", [
    (lambda t: t @ t, I64), (lambda t: t.matmul(t), B), (lambda t: t.softmax(0), I64),
    (lambda t: t.log_softmax(0), I32), (lambda t: t.logsumexp(0), I64), (lambda t: t.var(0), I64),
    (lambda t: t.std(0), B), (lambda t: t.gelu(), I64), (lambda t: t.leaky_relu(), I32),
    (lambda t: t & t, F32), (lambda t: ~t, F64), (lambda t: t << 1, F32), (lambda t: t >> t, B),
    (lambda t: t.abs(), B), (lambda t: t.relu(), B), (lambda t: t.uniform_(), I64), (lambda t: t.normal_(), B),
    (lambda t: t.linear(t.reshape(1, 3)), I64), (lambda t: t.clamp(max=True), B), (lambda t: t.sigmoid_grad(t), I64),
])
def test_ops_that_need_other_dtypes_raise_before_launch(op, dtype):
    t = cp.tensor([1, 0, 1], dtype=dtype)
    with no_launch(), pytest.raises(TypeError, match=dtype.name):
        op(t)


def test_negative_integer_powers_and_overflowing_numbers_raise():
    with no_launch(), pytest.raises(RuntimeError, match="negative integer powers"):
        cp.tensor([2]) ** -1
    with no_launch(), pytest.raises(RuntimeError, match="overflow"):
        cp.tensor([2], dtype=I32) + 2 ** 40


# ---- values against numpy -------------------------------------------------------------------------------
INT_OPERANDS = np.array([[7, -7, 0, 5], [-3, 3, 11, -12], [1, -1, 2, 100]])
DIVISORS = np.array([[2, 2, 3, -3], [-4, 4, 5, 5], [1, -1, 0, -7]])  # a zero divisor included
INT_BINARY = {
    "add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply), "floordiv": (lambda a, b: a // b, np.floor_divide),
    "mod": (lambda a, b: a % b, np.remainder), "max": (lambda a, b: a.maximum(b), np.maximum),
    "min": (lambda a, b: a.minimum(b), np.minimum), "and": (lambda a, b: a & b, np.bitwise_and),
    "or": (lambda a, b: a | b, np.bitwise_or), "xor": (lambda a, b: a ^ b, np.bitwise_xor),
    "lt": (lambda a, b: a < b, np.less), "eq": (lambda a, b: a == b, np.equal),
    "true_div": (lambda a, b: a / b, None),
}


@pytest.mark.parametrize("dtype", [I32, I64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(INT_BINARY))
def test_integer_binary_ops_match_numpy(name, layout, dtype):
    op, ref = INT_BINARY[name]
    a, _ = make(INT_OPERANDS, dtype, layout)
    b, _ = make(DIVISORS, dtype, "sliced" if layout == "contiguous" else "contiguous")
    x, y = INT_OPERANDS.astype(dtype), DIVISORS.astype(dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = (x.astype(np.float32) / y.astype(np.float32)) if ref is None else ref(x, y)
    got = op(a, b)
    assert got.dtype == want.dtype if ref is not None else got.dtype is F32
    np.testing.assert_array_equal(got.numpy(), want)  # exact, division by zero as numpy: 0 (inf for /)
    expected = ref(x, dtype.type(3)) if ref is not None else x.astype(np.float32) / np.float32(3)
    np.testing.assert_array_equal(op(a, 3).numpy(), expected)


def test_integer_edge_cases():
    lo = np.iinfo(np.int32).min
    t = cp.tensor([lo, 5, -5], dtype=I32)
    np.testing.assert_array_equal((t // -1).numpy(), np.array([lo, -5, 5], np.int32))  # wraps, never traps
    np.testing.assert_array_equal((t % -1).numpy(), [0, 0, 0])
    np.testing.assert_array_equal((-t).numpy(), np.array([lo, -5, 5], np.int32))
    np.testing.assert_array_equal((t.abs()).numpy(), np.abs(np.array([lo, 5, -5], np.int32)))
    big = cp.tensor([2 ** 40, -(2 ** 40)])
    assert (big * 4).tolist() == [2 ** 42, -(2 ** 42)] and (big // 3).tolist() == [2 ** 40 // 3, -(2 ** 40) // 3]


@pytest.mark.parametrize("dtype", [I32, I64])
def test_shifts_and_integer_powers_match_numpy(dtype):
    bits = dtype.itemsize * 8
    a = np.array([1, -8, 12345, -1, 7, 3], dtype)
    s = np.array([0, 1, 3, bits - 1, bits, bits + 5], dtype)  # counts past the width: numpy's (and torch's) rule
    ta, ts = cp.tensor(a), cp.tensor(s)
    np.testing.assert_array_equal((ta << ts).numpy(), np.left_shift(a, s))
    np.testing.assert_array_equal((ta >> ts).numpy(), np.right_shift(a, s))
    np.testing.assert_array_equal((ta >> -1).numpy(), np.right_shift(a, np.array(bits + 1, dtype)))  # negative
    np.testing.assert_array_equal((1 << cp.tensor([0, 3], dtype=dtype)).numpy(), [1, 8])
    e = np.array([0, 1, 2, 3, 5, 9], dtype)
    b = np.array([3, -2, 5, -7, 2, 3], dtype)
    np.testing.assert_array_equal((cp.tensor(b) ** cp.tensor(e)).numpy(), b ** e)
    np.testing.assert_array_equal((cp.tensor(b) ** 3).numpy(), b ** 3)
    # negative tensor exponents: PyTorch's powi (0 unless the base is 1 or -1)
    powers = cp.tensor([2, 1, -1, -1], dtype=dtype) ** cp.tensor([-1, -3, -3, -2], dtype=dtype)
    assert powers.tolist() == [0, 1, -1, 1]


@pytest.mark.parametrize("dtype", [F32, F64])
def test_floating_floor_division_and_remainder_follow_python(dtype):
    a = np.array([7.5, -7.5, 7.5, -7.5, 0.0, -0.0, 1e10, 3.0, np.inf, 5.0, np.nan, 1.0], dtype)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 3.0, 3.0, 0.0, 2.0, np.inf, 1.0, -np.inf], dtype)
    ta, tb = cp.tensor(a), cp.tensor(b)
    with np.errstate(all="ignore"):
        fd, rm = np.floor_divide(a, b), np.remainder(a, b)
    np.testing.assert_array_equal((ta // tb).numpy(), fd)  # NaNs compare equal; -0.0 == 0.0
    np.testing.assert_array_equal((ta % tb).numpy(), rm)
    numbers = ~np.isnan(rm)
    assert np.array_equal(np.signbit((ta % tb).numpy())[numbers], np.signbit(rm)[numbers])  # Python's zero sign
    for x, y in ((7.5, 2.0), (-7.5, 2.0), (7.5, -2.0), (-1.0, 3.0)):  # against Python itself
        assert (cp.tensor([x], dtype=dtype) // y).item() == x // y and (cp.tensor([x], dtype=dtype) % y).item() == x % y


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bool_ops_match_numpy(layout):
    a_np = np.array([[True, False, True], [False, False, True]])
    b_np = np.array([[True, True, False], [False, True, True]])
    a, _ = make(a_np, B, layout)
    b, _ = make(b_np, B, layout)
    for got, want in ((a & b, a_np & b_np), (a | b, a_np | b_np), (a ^ b, a_np ^ b_np), (~a, ~a_np),
                      (a + b, a_np | b_np), (a * b, a_np & b_np), (a.maximum(b), a_np | b_np),
                      (a.logical_xor(b), a_np ^ b_np), (a == b, a_np == b_np), (a > b, a_np > b_np),
                      (a.sign(), a_np), (-a, -a_np.astype(np.int64)), (1 - a, 1 - a_np.astype(np.int64)),
                      (a - b, a_np.astype(np.int64) - b_np)):
        np.testing.assert_array_equal(got.numpy(), want)
        assert got.numpy().dtype == want.dtype


def test_logical_ops_on_any_dtype():
    x = cp.tensor([0.0, -1.5, np.nan, 2.0])
    i = cp.tensor([0, 3, 0, -1])
    np.testing.assert_array_equal(x.logical_and(i).numpy(), [False, True, False, True])
    np.testing.assert_array_equal(x.logical_or(i).numpy(), [False, True, True, True])
    np.testing.assert_array_equal(x.logical_not().numpy(), [True, False, False, False])  # NaN is true
    np.testing.assert_array_equal(x.isnan().numpy(), [False, False, True, False])
    np.testing.assert_array_equal(cp.tensor([1.0, np.inf, -np.inf]).isinf().numpy(), [False, True, True])
    np.testing.assert_array_equal(i.isfinite().numpy(), [True] * 4)


# ---- casts ----------------------------------------------------------------------------------------------------
CAST_VALUES = np.array([0.0, 1.0, -1.0, 2.75, -2.75, 100.0, 0.5, -0.0, 65504.0, 1e-3])


@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("dst", ALL)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_casts_match_numpy(src, dst, layout):
    values = CAST_VALUES.astype(src).reshape(2, 5)
    t, _ = make(values.astype(np.float64), src, layout) if src is not B else (cp.tensor(values), None)
    if layout == "transposed" and src is B:
        t = cp.tensor(np.ascontiguousarray(values.T)).transpose(0, 1)
    got = t.to(dst)
    assert got.dtype is dst and got.shape == [2, 5]
    np.testing.assert_array_equal(got.numpy(), values.astype(dst))


def test_cast_rules_beyond_numpy():
    x = cp.tensor([np.nan, 1e20, -1e20, np.inf, 0.0, -0.3])
    assert x.bool().tolist() == [True, True, True, True, False, True]  # != 0, NaN true (numpy and torch too)
    # floating to integer out of range saturates and NaN gives 0 (C leaves it undefined; so does PyTorch)
    assert x.int().tolist() == [0, 2 ** 31 - 1, -2 ** 31, 2 ** 31 - 1, 0, 0]
    assert x.long().tolist()[:3] == [0, 2 ** 63 - 1, -2 ** 63]
    assert cp.tensor([2 ** 40 + 3]).int().tolist() == [3]  # integers wrap (numpy, torch)
    # float64 to float16 rounds once: via float32 this tie-breaking value would round down to 1.0
    v = 1 + 2 ** -11 + 2 ** -30
    assert cp.tensor([v], dtype=F64).half().item() == float(np.float16(v)) == 1 + 2 ** -10
    assert cp.tensor([65520.0]).half().item() == math.inf and cp.tensor([1e-8]).half().item() == float(np.float16(1e-8))


# ---- float16 ------------------------------------------------------------------------------------------------
def test_float16_rounding_fused_and_eager_matches_numpy():
    # fused chains round float16 intermediates arithmetically (common.h's half_round), eager ones by storing
    # (vstore_half_rte): both must be numpy's round-to-nearest-even, subnormals and overflow included
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.standard_normal(4000) * 10.0 ** rng.integers(-9, 6, 4000),
                           [65504, 65519.99, 65520, 1e-8, 2.9802322e-08, 5.9604645e-08, 8.940697e-08,
                            6.1035156e-05, 6.1e-05, -0.0, np.inf, -np.inf, np.nan, 2049, 2051, 1 + 2 ** -11]])
    for dtype in (F32, F64):
        t = cp.tensor(vals, dtype=dtype)
        with np.errstate(over="ignore"):
            ref = vals.astype(dtype).astype(np.float16)
        fused = (t * 1.0).half() * 1.0
        fusion.set_enabled(False)
        try:
            eager = (t * 1.0).half() * 1.0
            direct = t.half()
        finally:
            fusion.set_enabled(True)
        for got in (fused, eager, direct):
            np.testing.assert_array_equal(got.numpy(), ref)


def test_float16_rounding_of_every_midpoint_matches_numpy():
    """half_round (fused chains) against numpy at every float16 value, every midpoint between two neighbours
    (ties go to even) and the float32 values either side of each midpoint, of both signs, and random float32
    bit patterns: the boundaries where a rounding rule can go wrong."""
    finite = np.arange(2 ** 16, dtype=np.uint16).view(np.float16).astype(np.float64)
    finite = np.unique(finite[np.isfinite(finite)])
    mids = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)  # exact in float32
    bits = np.random.default_rng(1).integers(0, 2 ** 32, 1 << 16, dtype=np.uint64).astype(np.uint32)
    vals = np.concatenate([finite.astype(np.float32), mids, np.nextafter(mids, np.float32(np.inf)),
                           np.nextafter(mids, np.float32(-np.inf)), np.float32([65520, -65520]), bits.view(np.float32)])
    with np.errstate(over="ignore", invalid="ignore"):
        ref = vals.astype(np.float16)
    got = ((cp.tensor(vals) * 1.0).half() * 1.0).numpy()  # one fused kernel: half_round in registers
    same = (got.view(np.uint16) == ref.view(np.uint16)) | (np.isnan(got) & np.isnan(ref))
    assert same.all(), f"{(~same).sum()} differ, e.g. {vals[~same][:4]} -> {got[~same][:4]}, numpy {ref[~same][:4]}"


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "sin", "abs", "neg", "relu", "gelu"])
def test_float16_unary_ops_are_computed_in_float32_and_rounded(name):
    rng = np.random.default_rng(1)
    x = (rng.random(200) * 4 + 0.05).astype(np.float16)
    ref32 = getattr(cp.tensor(x.astype(np.float32)), name)().numpy()
    got = getattr(cp.tensor(x), name)()
    assert got.dtype is F16
    # one rounding of the float32 result: equal, or one float16 step away where float32 results differ in
    # their last bit across a rounding boundary
    np.testing.assert_allclose(got.numpy().astype(np.float64), ref32.astype(np.float16).astype(np.float64),
                               rtol=2 ** -10, atol=0)


def test_float16_arithmetic_reductions_and_layers():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((6, 8)), rng.standard_normal((6, 8))
    ha, hb = cp.tensor(a, dtype=F16), cp.tensor(b, dtype=F16)
    a16, b16 = a.astype(np.float16).astype(np.float64), b.astype(np.float16).astype(np.float64)
    assert_close(ha * hb + 1.5, a16 * b16 + 1.5)
    assert_close(ha.sum(1), a16.sum(1)) and assert_close(ha.mean(), a16.mean())
    assert_close(ha.var(0), a16.var(0, ddof=1)) and assert_close(ha.max(1)[0], a16.max(1))
    assert_close(ha.softmax(1), np.exp(a16) / np.exp(a16).sum(1, keepdims=True))
    assert_close(ha @ hb.T, a16 @ b16.T, rtol=5e-3, atol=5e-3)
    assert (ha @ hb.T).dtype is F16 and ha.linear(hb).dtype is F16
    logits, target = cp.tensor(a, dtype=F16, requires_grad=True), cp.tensor([0, 3, 7, 1, 2, 5])
    loss = nn.functional.cross_entropy(logits, target)
    lse = np.log(np.exp(a16).sum(1))
    assert loss.dtype is F16 and abs(loss.item() - np.mean(lse - a16[np.arange(6), [0, 3, 7, 1, 2, 5]])) < 2e-3
    loss.backward()
    assert logits.grad.dtype is F16 and logits.grad.shape == [6, 8]
    big = cp.tensor(np.full(4096, 1.0), dtype=F16)
    assert big.sum().item() == 4096.0  # accumulated in float32: a float16 running sum would stop at 2048


def test_float16_training_step():
    cp.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to(cp.half)
    opt = cp.utils.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = cp.randn(16, 4, dtype=cp.half), cp.randint(0, 3, (16,))
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype is F16 and p.grad.dtype is F16 for p in model.parameters())
    assert losses[-1] < 0.7 * losses[0]


# ---- reductions, indexing, joining ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [B, I32, I64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_integer_and_bool_reductions_match_numpy(dtype, layout):
    rng = np.random.default_rng(3)
    ref = rng.integers(-5, 6, (4, 7)) if dtype is not B else rng.integers(0, 2, (4, 7))
    t, _ = make(ref, dtype, layout)
    x = ref.astype(dtype)
    for got, want in ((t.sum(), x.sum(dtype=np.int64)), (t.sum(1), x.sum(1, dtype=np.int64)),
                      (t.max(1)[0], x.max(1)), (t.max(1)[1], x.argmax(1)), (t.min(0)[1], x.argmin(0)),
                      (t.argmax(), x.argmax()), (t.amin(1), x.min(1))):
        np.testing.assert_array_equal(got.numpy(), want)
        assert got.numpy().dtype == want.dtype
    assert_close(t.mean(1), x.astype(np.float64).mean(1), F32)


def test_sum_and_mean_take_dtype_like_pytorch():
    """dtype= converts the input first and the result is in that dtype; mean wants a floating one. The
    gradient comes back in the input's dtype."""
    ref = np.array([[2 ** 31 - 1, 5, -3], [4, -1, 2 ** 31 - 1]], np.int64)
    t = cp.tensor(ref.astype(np.int32))
    f = ref.astype(np.float64)
    for got, want, dtype in ((t.sum(dtype=cp.float64), f.sum(), F64), (t.sum(1, dtype=cp.int64), f.sum(1), I64),
                             (t.mean(0, dtype=cp.float64), f.mean(0), F64), (t.sum(0), f.sum(0), I64),
                             (cp.tensor([True, True, False]).sum(dtype=cp.float16), 2.0, F16)):
        assert got.dtype is dtype
        assert_close(got, want, dtype)
    wrapped = t.sum(1, dtype=cp.int32)  # accumulated in int32: wraps modulo 2^32
    assert wrapped.dtype is I32
    want = np.mod(f.sum(1) + 2.0 ** 31, 2.0 ** 32) - 2.0 ** 31
    np.testing.assert_array_equal(wrapped.numpy().astype(np.float64), want)
    with no_launch(), pytest.raises(TypeError, match="mean: dtype must be a floating dtype, got int64"):
        t.mean(dtype=cp.int64)
    x = cp.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x.sum(dtype=cp.float64).backward()
    (x.mean(1, keepdim=True, dtype=cp.float64) * cp.tensor([[1.0], [2.0]], dtype=F64)).sum().backward()
    assert x.grad.dtype is F32
    assert_close(x.grad, 1.0 + np.array([[0.5, 0.5], [1.0, 1.0]]))


def test_long_integer_sums_are_exact():
    n = 300_000  # two stages
    x = (np.arange(n, dtype=np.int64) % 1000) * 7919
    assert cp.tensor(x).sum().item() == int(x.sum())
    big = cp.tensor(np.full(3, 2 ** 31 - 1, np.int32))
    assert big.sum().item() == 3 * (2 ** 31 - 1)  # int32 sums in int64
    assert (cp.tensor(np.arange(n)) % 3 == 0).sum().item() == (np.arange(n) % 3 == 0).sum()


@pytest.mark.parametrize("data_dtype", [B, I64, F16, F32])
@pytest.mark.parametrize("id_dtype", [I32, I64, F32, F64])
def test_gathers_and_scatters_on_every_dtype(data_dtype, id_dtype):
    ref = (np.arange(12).reshape(4, 3) % 5 > 1) if data_dtype is B else np.arange(12.0).reshape(4, 3) - 4
    t = cp.tensor(ref.astype(data_dtype))
    ids = cp.tensor([2, -1, 0], dtype=id_dtype)
    np.testing.assert_array_equal(t[ids].numpy(), ref.astype(data_dtype)[[2, -1, 0]])
    np.testing.assert_array_equal(t.index_select(1, ids).numpy(), ref.astype(data_dtype)[:, [2, -1, 0]])
    g = cp.tensor([[0, 2], [1, 1], [2, 0], [0, 0]], dtype=id_dtype)
    np.testing.assert_array_equal(t.gather(1, g).numpy(),
                                  np.take_along_axis(ref.astype(data_dtype), g.numpy().astype(int), 1))
    z = cp.zeros(4, 3, dtype=data_dtype)
    z.scatter_(1, cp.tensor([0, 2, 1, 0], dtype=id_dtype), t[:, 0])
    want = np.zeros((4, 3), data_dtype)
    want[np.arange(4), [0, 2, 1, 0]] = ref.astype(data_dtype)[:, 0]
    np.testing.assert_array_equal(z.numpy(), want)
    out = t.masked_fill(t.to(F32) > 2, 1)
    np.testing.assert_array_equal(out.numpy(), np.where(ref.astype(np.float32) > 2, 1, ref).astype(data_dtype))
    assert out.dtype is data_dtype


def test_out_of_range_ids_raise_at_the_next_read_and_give_nan_or_zero():
    ids = cp.tensor([1, 5])
    for data, missing in ((cp.tensor([[1.0], [2.0]]), np.nan), (cp.tensor([[1], [2]]), 0)):
        got = data[ids]
        with pytest.raises(IndexError, match="index 5 is out of bounds for a dimension of size 2"):
            got.tolist()
        np.testing.assert_array_equal(got.numpy(), [[2], [missing]])
    rows = cp.tensor([1, 5, -1]).one_hot(3)
    with pytest.raises(IndexError, match=r"one_hot: class value (5|-1) is not in \[0, num_classes = 3\)"):
        rows.tolist()
    assert rows.tolist() == [[0, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_cat_stack_where_promote():
    assert cp.cat([cp.tensor([1, 2]), cp.tensor([True]), cp.tensor([0.5], dtype=F16)]).tolist() == [1.0, 2.0, 1.0, 0.5]
    assert cp.stack([cp.tensor([1], dtype=I32), cp.tensor([True])]).dtype is I32
    w = cp.where(cp.tensor([True, False, True]), cp.tensor([1, 2, 3]), -1.5)
    assert w.dtype is F32 and w.tolist() == [1.0, -1.5, 3.0]
    assert cp.where(cp.tensor([1.0, 0.0]), 1, 0).tolist() == [1, 0]  # the course's float condition


# ---- fusion: every dtype, mixed expressions, the same bits as eager launches ---------------------------------
def _chains():
    i = cp.tensor(np.array([7, -3, 12, 0, 5, -11, 2, 9], np.int64))
    j = cp.tensor(np.array([3, -3, 5, 0, 2, 7, -5, 4], np.int32))
    f = cp.tensor(np.linspace(-2, 3, 8))
    d = cp.tensor(np.linspace(-2, 3, 8) / 3, dtype=F64)
    h = cp.tensor(np.linspace(-2, 3, 8), dtype=F16)
    b = f > 0.3
    return [
        lambda: (i * 3 + 1) // 2 % 5,
        lambda: (i + j) * (j - 1) - (j << 2),
        lambda: ((f > 0) & (i < 3)).long() + i,
        lambda: (b * f - 1.0).exp() / (i + 1),
        lambda: ((h * 1.1 + 0.3).exp() - h) * 0.25,
        lambda: (h.float() * 2.5 + h).half() - 1,
        lambda: d.half() + d.float().half(),
        lambda: ((d * 7).long() % 3).bool() | b,
        lambda: (1 - b) * f + (-b) * 2,
        lambda: (j.float() / 3).floor().int() + j,
        lambda: (f // 0.7) + (f % 0.7) + (h // 0.7).float(),
        lambda: ~(b ^ (f < 1)) & (j.abs() > 2),
    ]


@pytest.mark.parametrize("k", range(12))
def test_fused_mixed_dtype_chains_match_eager_bits(k):
    fusion.set_enabled(False)
    try:
        eager = _chains()[k]().numpy()
    finally:
        fusion.set_enabled(True)
    before = backend.stats()["launches"]
    got = _chains()[k]()
    fused = got.numpy()
    assert fused.dtype == eager.dtype
    assert fused.tobytes() == eager.tobytes()  # the same bits
    assert backend.stats()["launches"] - before == 1  # one generated kernel (uploads are not launches)


# ---- the host boundary, serialization -----------------------------------------------------------------------
def test_item_tolist_and_python_protocols():
    assert type(cp.tensor(3).item()) is int and type(cp.tensor(True).item()) is bool
    assert type(cp.tensor(2.5, dtype=F16).item()) is float and type(cp.tensor([1, 2]).tolist()[0]) is int
    assert cp.tensor([[True, False]]).tolist() == [[True, False]]
    big = 2 ** 62 + 1
    assert cp.tensor([big]).item() == big  # exact: never through a float
    assert [1, 2, 3][cp.tensor(1)] == 2 and int(cp.tensor(-7)) == -7 and bool(cp.tensor([True]))
    assert repr(cp.tensor([1, 2])) == "Tensor([1, 2])" and repr(cp.tensor([1], dtype=I32)) == "Tensor([1], dtype=int32)"
    assert cp.tensor([True]).numpy().dtype == np.bool_ and cp.tensor([1.0], dtype=F16).numpy().dtype == np.float16


def test_save_load_keeps_every_dtype(tmp_path):
    tensors = {d.name: cp.tensor(np.array([1, 0, 3]).astype(d)) for d in ALL}
    cp.save(tensors, tmp_path / "t.cpt")
    back = cp.load(tmp_path / "t.cpt")
    for name, t in tensors.items():
        assert back[name].dtype is t.dtype and back[name].tolist() == t.tolist()


def test_tensor_infers_like_pytorch_and_Tensor_stays_float32():
    assert cp.tensor([1, 2]).dtype is I64 and cp.tensor([1.0, 2]).dtype is F32 and cp.tensor([True]).dtype is B
    assert cp.tensor(np.zeros(2, np.int32)).dtype is I32 and cp.tensor(np.zeros(2)).dtype is F64
    assert cp.Tensor([1, 2]).dtype is F32 and cp.Tensor([True]).dtype is F32 and cp.Tensor(np.arange(3)).dtype is F32
    assert cp.tensor(np.zeros(2, np.uint8)).dtype is I32  # no uint8: the narrowest dtype holding every value
    with pytest.raises(TypeError, match="uint64"):
        cp.tensor(np.zeros(2, np.uint64))


# ---- autograd -------------------------------------------------------------------------------------------------
def test_only_floating_tensors_require_grad():
    for make_it in (lambda: cp.Tensor([1], dtype=I64, requires_grad=True), lambda: cp.tensor([1]).requires_grad_(),
                    lambda: nn.Parameter(cp.tensor([True]))):
        with pytest.raises(RuntimeError, match="floating point"):
            make_it()
    assert cp.tensor([1.0], dtype=F16, requires_grad=True).requires_grad


def test_gradients_flow_to_the_floating_inputs_of_mixed_ops():
    x = cp.tensor([1.0, -2.0, 3.0], dtype=F64, requires_grad=True)
    mask, k = cp.tensor([True, False, True]), cp.tensor([2, 3, 4])
    y = (x * mask + x / k - (1 - mask) * x + cp.where(mask, x, 0.0)).sum()
    y.backward()
    assert_close(x.grad, [1 + 1 / 2 + 1, 1 / 3 - 1, 1 + 1 / 4 + 1])
    for out in (x > 0, x.argmax(), x.long(), x.max(0)[1], (x * 2).int(), x.isnan()):
        assert not out.requires_grad and out.grad_fn is None
    h = cp.tensor([0.5, 1.5], dtype=F16, requires_grad=True)
    (h.float() * 3).sum().backward()
    assert h.grad.dtype is F16 and h.grad.tolist() == [3.0, 3.0]


# ---- course behaviours (docs/api.md, dtypes: they give the numbers they gave with float results) -----------
def test_course_code_with_comparison_and_index_results():
    logits = cp.Tensor([[0.1, 2.0, 0.3], [1.5, 0.2, 0.1], [0.0, 0.1, 0.9], [3.0, 0.0, 0.0]])
    labels = cp.Tensor([1.0, 0.0, 1.0, 0.0])  # the course's float labels
    pred = logits.argmax(-1)
    correct = (pred == labels).sum().item()
    assert correct == 3 and correct / 4 == 0.75
    assert (logits.max(-1)[1] == labels).tolist() == [True, True, False, True]
    assert ((logits > 1.0) == 1.0).tolist() == [[False, True, False], [True, False, False], [False] * 3,
                                                [True, False, False]]
    mask = logits > 0.5
    assert (mask * logits).tolist() == [[0.0, 2.0, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 0.8999999761581421],
                                        [3.0, 0.0, 0.0]]
    assert (1 - mask).sum().item() == 8 and (-mask).sum().item() == -4
    assert mask.float().mean().item() == np.float32(1 / 3)
    assert mask.mean().item() == pytest.approx(1 / 3)
    # CrossEntropyLoss: float labels (course) and int64 labels (PyTorch) give the same loss
    loss_f = nn.CrossEntropyLoss()(logits, labels).item()
    assert loss_f == nn.CrossEntropyLoss()(logits, labels.long()).item()
    assert loss_f == nn.CrossEntropyLoss()(logits, [1, 0, 1, 0]).item()
    # a float index tensor gathers rows (course), as an int64 one does
    assert logits[cp.Tensor([3.0, 0.0])].tolist() == logits[cp.tensor([3, 0])].tolist()
    emb = nn.Embedding(5, 2)
    assert emb(cp.Tensor([4.0, 1.0])).tolist() == emb(cp.tensor([4, 1])).tolist() == emb([4, 1]).tolist()
