import operator

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch
from hypothesis import given, settings, strategies as st

import clownpiece as cp

rng = np.random.default_rng(0)

UNARY = {
    "neg": np.negative, "abs": np.abs, "sign": np.sign, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "exp": np.exp, "relu": lambda x: np.maximum(x, 0), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "floor": np.floor,
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_unary(name, layout, dtype):
    t, ref = make(rng.normal(size=(3, 4)), dtype, layout)
    assert_close(getattr(t, name)(), UNARY[name](ref), dtype, rtol=1e-5 if dtype == np.float32 else 1e-11)


LOG1P_EXPM1 = {"log1p": np.log1p, "expm1": np.expm1}


@pytest.mark.parametrize("name", sorted(LOG1P_EXPM1))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_log1p_expm1_keep_every_digit_of_small_inputs(name, layout, dtype):
    # log1p's domain is x > -1. Near 0, log(1 + x) and exp(x) - 1 lose every digit: the relative check
    # (atol 0) fails unless the kernels use the log1p/expm1 builtins.
    data = np.concatenate([rng.uniform(-0.9, 3.0, 8), [1e-9, -3e-8, 2.5e-6, 0.0]]).reshape(3, 4)
    t, ref = make(data, dtype, layout)
    got = getattr(t, name)()
    assert got.shape == [3, 4] and got.dtype == dtype
    assert_close(got, LOG1P_EXPM1[name](ref), dtype, rtol=2e-6 if dtype == np.float32 else 1e-14, atol=0)
    assert_close(getattr(np, name)(t), LOG1P_EXPM1[name](ref), dtype, rtol=2e-6 if dtype == np.float32 else 1e-14,
                 atol=0)  # the numpy ufunc runs the tensor's op
    assert_close(getattr(cp.nn.functional, name)(t), LOG1P_EXPM1[name](ref), dtype,
                 rtol=2e-6 if dtype == np.float32 else 1e-14, atol=0)


def test_log1p_expm1_edges_0dim_and_empty(dtype):
    edges = np.array([-1.0, -2.0, 800.0, -800.0, np.inf, -np.inf, np.nan])
    t = cp.Tensor(edges, dtype=dtype)
    with np.errstate(all="ignore"):
        assert_close(t.log1p(), np.log1p(edges), dtype)  # -inf, nan, ...: values, not errors
        assert_close(t.expm1(), np.expm1(edges), dtype)
    assert_close(cp.Tensor(0.25, dtype=dtype).log1p(), np.log1p(0.25), dtype)
    assert cp.Tensor(0.25, dtype=dtype).expm1().shape == []
    empty = cp.Tensor(np.zeros((0, 3)), dtype=dtype)
    assert empty.log1p().shape == [0, 3] and empty.expm1().shape == [0, 3]


def test_log_sqrt_nan_are_values(dtype):
    t = cp.Tensor([-1.0, 0.0, 4.0], dtype=dtype)
    with np.errstate(all="ignore"):
        assert_close(t.log(), np.log([-1.0, 0.0, 4.0]), dtype)
        assert_close(t.sqrt(), np.sqrt([-1.0, 0.0, 4.0]), dtype)
    assert_close(t / 0.0, np.array([-np.inf, np.nan, np.inf]), dtype)


@pytest.mark.parametrize("op", ["__add__", "__sub__", "__mul__", "__truediv__", "maximum", "minimum",
                                "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)),
                                    ((0, 3), (3,)), ((5,), ())])
def test_binary_broadcast(op, shapes, dtype):
    a_np = rng.normal(size=shapes[0]).round(1)
    b_np = rng.normal(size=shapes[1]).round(1) + 0.05
    a, b = cp.Tensor(a_np, dtype=dtype), cp.Tensor(b_np, dtype=dtype)
    npop = {"maximum": np.maximum, "minimum": np.minimum}.get(op) or getattr(operator, op.strip("_"))
    assert_close(getattr(a, op)(b), np.asarray(npop(a_np, b_np), dtype=np.float64), dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_binary_noncontiguous_and_expanded(layout, dtype):
    a, a_np = make(rng.normal(size=(4, 5)), dtype, layout)
    b, b_np = make(rng.normal(size=(4, 1)), dtype, layout)
    assert_close(a * b.broadcast_to((4, 5)) - b, a_np * b_np - b_np, dtype)


def test_scalar_operands_both_sides(dtype):
    a_np = rng.normal(size=(2, 3)) + 3
    a = cp.Tensor(a_np, dtype=dtype)
    assert_close(2 - a, 2 - a_np, dtype)
    assert_close(2 / a, 2 / a_np, dtype)
    assert_close(0 + a, a_np, dtype)
    assert_close(a ** 2, a_np ** 2, dtype)
    assert_close(a.pow(0.5), a_np ** 0.5, dtype)
    assert_close(2 ** a, 2 ** a_np, dtype, rtol=1e-5 if dtype == np.float32 else 1e-11)
    assert sum([a, a, a]).shape == [2, 3]


def test_pow_negative_base_integer_exponent(dtype):
    a = cp.Tensor([-2.0, -0.5, 3.0], dtype=dtype)
    assert_close(a.pow(3), np.array([-8.0, -0.125, 27.0]), dtype)


def test_clamp_and_where(dtype):
    a_np = rng.normal(size=(3, 4)) * 3
    a = cp.Tensor(a_np, dtype=dtype)
    assert_close(a.clamp(-1, 2), np.clip(a_np, -1, 2), dtype)
    assert_close(a.clamp(min=0), np.maximum(a_np, 0), dtype)
    assert_close(a.clamp(None, 0.5), np.minimum(a_np, 0.5), dtype)
    assert_close(cp.where(a > 0, a, 0.0), np.where(a_np > 0, a_np, 0.0), dtype)


def test_mixed_dtypes_promote_to_float64():
    a = cp.Tensor([1.0, 2.0])
    b = cp.Tensor([0.5, 0.25], dtype=np.float64)
    c = a + b
    assert c.dtype == np.float64
    assert_close(c, [1.5, 2.25])


def test_bad_operands_raise_before_launch():
    a = cp.Tensor([[1.0, 2.0, 3.0]])
    with no_launch():
        with pytest.raises(RuntimeError, match="broadcast"):
            a + cp.Tensor([1.0, 2.0])
        with pytest.raises(TypeError):
            a + "x"
        with pytest.raises(TypeError):
            a.pow("2")


def test_zero_dim(dtype):
    a = cp.Tensor(3.0, dtype=dtype)
    assert a.shape == [] and a.dim() == 0
    assert (a * 2).item() == 6.0
    assert (a + cp.Tensor([1.0, 2.0], dtype=dtype)).tolist() == [4.0, 5.0]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradient_helpers_with_parameters(layout, dtype):
    g, g_np = make(rng.normal(size=(3, 4)), dtype, layout)
    x_np = np.array([[-2.0, -1.0, -0.5, 0.0], [0.5, 1.0, 2.0, 3.0], [1.5, -1.5, 0.999, -0.999]])
    x, _ = make(x_np, dtype, layout)
    # the course's Clamp rule: gradient only strictly inside (lo, hi); None leaves a side open
    assert_close(g.clamp_grad(x, -1.0, 1.0), np.where((x_np > -1) & (x_np < 1), g_np, 0.0), dtype)
    assert_close(g.clamp_grad(x, None, 1.0), np.where(x_np < 1, g_np, 0.0), dtype)
    assert_close(g.clamp_grad(x, 0.0, None), np.where(x_np > 0, g_np, 0.0), dtype)
    assert_close(g.leaky_relu_grad(x, 0.1), np.where(x_np > 0, g_np, 0.1 * g_np), dtype)
    # broadcast saved input
    row = cp.Tensor(x_np[0], dtype=dtype)
    assert_close(g.clamp_grad(row, -1.0, 1.0), np.where((x_np[0] > -1) & (x_np[0] < 1), g_np, 0.0), dtype)


def test_copy_into_contiguous_window(dtype):
    base = cp.zeros(4, 5, dtype=dtype)
    src_np = rng.normal(size=(2, 5))
    base[1:3].copy_(cp.Tensor(src_np, dtype=dtype))
    ref = np.zeros((4, 5))
    ref[1:3] = src_np
    assert_close(base, ref, dtype)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together (some dims 1 or missing), and a layout for each operand."""
    ndim = draw(st.integers(0, 4))
    shape = [draw(st.integers(0, 4)) for _ in range(ndim)]
    a = [s if draw(st.booleans()) else 1 for s in shape]
    b = [s if draw(st.booleans()) else 1 for s in shape][draw(st.integers(0, ndim)):]
    return tuple(a), tuple(b), draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(LAYOUTS))


@settings(max_examples=40, deadline=None)
@given(broadcast_pair(), st.sampled_from(["__add__", "__sub__", "__mul__", "maximum", "__lt__"]),
       st.sampled_from([np.float32, np.float64]))
def test_binary_random_shapes_and_layouts(pair, op, dtype):
    a_shape, b_shape, la, lb = pair
    a, a_np = make(rng.normal(size=a_shape), dtype, la)
    b, b_np = make(rng.normal(size=b_shape), dtype, lb)
    npop = {"maximum": np.maximum}.get(op) or getattr(operator, op.strip("_"))
    assert_close(getattr(a, op)(b), np.asarray(npop(a_np, b_np), dtype=np.float64), dtype)
    # and through an expanded (stride-0) view of the first operand
    target = np.broadcast_shapes(a_shape, b_shape)
    assert_close(a.broadcast_to(target).exp(), np.exp(np.broadcast_to(a_np, target)), dtype,
                 rtol=1e-5 if dtype == np.float32 else 1e-11)


def test_strided_copy_of_permuted_and_narrowed_views(dtype):
    """contiguous()/copy_ walk runs of elements per work-item: cover runs that wrap several dims."""
    r = np.random.default_rng(7)
    for _ in range(40):
        ndim = r.integers(1, 6)
        shape = tuple(int(s) for s in r.integers(1, 7, ndim))
        base_np = r.normal(size=shape)
        t = cp.Tensor(base_np, dtype=dtype)
        perm = tuple(int(p) for p in r.permutation(ndim))
        view, ref = t.permute(perm), np.transpose(base_np, perm)
        d = int(r.integers(0, ndim))
        if view.shape[d] > 1:
            view, ref = view.narrow(d, 1, view.shape[d] - 1), np.take(ref, range(1, ref.shape[d]), axis=d)
        assert_close(view.contiguous(), ref, dtype)
        dst = cp.zeros(*ref.shape[::-1], dtype=dtype).permute(tuple(reversed(range(ndim))))
        dst.copy_(view)  # strided destination too
        assert_close(dst, ref, dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relu_keeps_nan(layout, dtype):
    """PyTorch's relu passes NaN through (max(NaN, 0) is NaN), eager, fused and strided."""
    t, ref = make(np.array([[np.nan, -1.0, 2.0], [0.0, np.nan, -np.inf]]), dtype, layout)
    assert_close(t.relu(), np.maximum(ref, 0), dtype)
    assert_close(t.relu() * 2.0 + 1.0, np.maximum(ref, 0) * 2.0 + 1.0, dtype)
