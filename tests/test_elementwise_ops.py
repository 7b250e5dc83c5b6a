"""The elementwise and truth ops of issue 12: log2 log10 erf erfinv rsqrt reciprocal square fmod remainder
nan_to_num lerp, clamp with tensor bounds, isclose allclose equal, any all count_nonzero nonzero, against
numpy (math.erf for erfinv) in float64, their gradients against finite differences, and errors before
any launch."""
import math

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch

import clownpiece as cp
from clownpiece.autograd import gradcheck

rng = np.random.default_rng(17)

UNARY = {
    "log2": (np.log2, (0.1, 5.0)), "log10": (np.log10, (0.1, 5.0)), "rsqrt": (lambda a: 1 / np.sqrt(a), (0.1, 5.0)),
    "reciprocal": (lambda a: 1 / a, (0.2, 5.0)), "square": (np.square, (-3.0, 3.0)),
    "erf": (np.vectorize(math.erf), (-3.0, 3.0)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_unary_values(name, layout, dtype):
    ref, (lo, hi) = UNARY[name]
    t, a = make(rng.uniform(lo, hi, size=(3, 4)), dtype, layout)
    a = a.astype(dtype).astype(np.float64)
    assert_close(getattr(t, name)(), ref(a), dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert_close(getattr(cp, name)(t), ref(a), dtype, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert getattr(cp.tensor(2.0), name)().shape == [] and getattr(cp.zeros(0, 2), name)().shape == [0, 2]


def test_unary_edges_and_integer_inputs():
    assert cp.tensor([0.0, -1.0]).log2().tolist()[0] == -math.inf and math.isnan(cp.tensor([-1.0]).log10().item())
    assert cp.tensor([0.0]).rsqrt().item() == math.inf and cp.tensor([0.0]).reciprocal().item() == math.inf
    assert cp.tensor([4, 16]).log2().dtype == np.float32 and cp.tensor([4, 16]).log2().tolist() == [2.0, 4.0]
    assert cp.tensor([3, -4]).square().dtype == np.int64 and cp.tensor([3, -4]).square().tolist() == [9, 16]
    assert np.asarray(np.square(cp.tensor([1.5]))).tolist() == [2.25]  # numpy's ufuncs call the op


@pytest.mark.parametrize("dtype_", [np.float32, np.float64])
def test_erfinv_inverts_erf(dtype_):
    y = np.concatenate([np.linspace(-0.999999, 0.999999, 401), [0.0, 1e-30, -1e-7, 0.5]]).astype(dtype_)
    x = cp.tensor(y).erfinv().numpy().astype(np.float64)
    back = np.array([math.erf(v) for v in x])
    tol = 4e-7 if dtype_ == np.float32 else 4e-16
    np.testing.assert_allclose(back, y.astype(np.float64), rtol=0, atol=tol)
    xs = np.linspace(-4, 4, 81)
    np.testing.assert_allclose(cp.tensor(np.array([math.erf(v) for v in xs])).erfinv().numpy()[10:-10], xs[10:-10],
                               rtol=1e-9)
    edge = cp.tensor(np.array([1.0, -1.0, 1.5, np.nan], dtype_)).erfinv().numpy()
    assert edge[0] == np.inf and edge[1] == -np.inf and np.isnan(edge[2]) and np.isnan(edge[3])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fmod_remainder(layout, dtype):
    t, a = make(rng.uniform(-9, 9, size=(3, 4)), dtype, layout)
    u, b = make(rng.choice([-2.5, -1.0, 1.5, 4.0], size=(3, 4)), dtype, layout)
    a, b = a.astype(dtype).astype(np.float64), b.astype(dtype).astype(np.float64)
    assert_close(t.fmod(u), np.fmod(a, b), dtype, rtol=1e-5)
    assert_close(cp.fmod(t, 2.5), np.fmod(a, 2.5), dtype, rtol=1e-5)
    assert_close(t.remainder(u), np.remainder(a, b), dtype, rtol=1e-5, atol=1e-5)
    assert_close(7.5 % u, np.remainder(7.5, b), dtype, rtol=1e-5)
    i = cp.tensor([7, -7, 7, -7, 5])
    assert i.fmod(cp.tensor([3, 3, -3, -3, 0])).tolist() == [1, -1, 1, -1, 0]
    assert i.fmod(3).dtype == np.int64


def test_nan_to_num(dtype):
    a = np.array([np.nan, np.inf, -np.inf, 1.5, -0.0])
    t = cp.tensor(a, dtype=dtype)
    assert_close(t.nan_to_num(), np.nan_to_num(a.astype(dtype)), dtype, rtol=0, atol=0)
    assert_close(cp.nan_to_num(t, nan=1.0, posinf=2.0, neginf=-3.0), [1.0, 2.0, -3.0, 1.5, 0.0], dtype)
    assert_close(t.nan_to_num(posinf=7.0), np.nan_to_num(a.astype(dtype), posinf=7.0), dtype, rtol=0, atol=0)
    assert cp.tensor([np.inf], dtype=cp.float16).nan_to_num().item() == float(np.finfo(np.float16).max)
    assert cp.tensor([1, 2]).nan_to_num().tolist() == [1, 2]
    with pytest.raises(TypeError, match="nan must be a number"):
        t.nan_to_num(nan="zero")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_lerp(layout, dtype):
    s, a = make(rng.normal(size=(3, 4)), dtype, layout)
    e, b = make(rng.normal(size=(3, 4)), dtype, layout)
    w, c = make(rng.uniform(-0.5, 1.5, size=(4,)), dtype)
    assert_close(s.lerp(e, w), a + c * (b - a), dtype, rtol=1e-5, atol=1e-5)
    for weight in (0.25, 0.75, 1.0, 0.0):
        assert_close(cp.lerp(s, e, weight), a + weight * (b - a), dtype, rtol=1e-5, atol=1e-5)
    assert cp.tensor([1.0, 2.0]).lerp(cp.tensor([3.0, 7.0]), 1.0).tolist() == [3.0, 7.0]  # exactly end
    with pytest.raises(TypeError, match="end must be a tensor"):
        s.lerp(1.0, 0.5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_clamp_tensor_bounds(layout, dtype):
    t, a = make(rng.normal(size=(3, 4)), dtype, layout)
    lo, b = make(rng.normal(size=(4,)) - 0.5, dtype)
    hi, c = make(rng.normal(size=(3, 1)) + 0.5, dtype)
    assert_close(t.clamp(lo, hi), np.minimum(np.maximum(a, b), c), dtype)
    assert_close(cp.clamp(t, min=lo), np.maximum(a, b), dtype)
    assert_close(t.clip(max=hi), np.minimum(a, c), dtype)
    assert_close(t.clamp(lo, 0.25), np.minimum(np.maximum(a, b), 0.25), dtype)
    got = cp.tensor([np.nan, 1.0, 1.0]).clamp(cp.tensor([0.0, np.nan, 0.0]), cp.tensor([1.0, 2.0, np.nan]))
    assert all(math.isnan(v) for v in got.tolist())  # NaN in the input or a bound gives NaN (PyTorch)


def test_isclose_allclose_equal():
    a = cp.tensor([1.0, np.nan, np.inf, 1.0, -np.inf, 0.0, 100.0])
    b = cp.tensor([1.0 + 1e-9, np.nan, np.inf, 2.0, np.inf, 1e-9, 100.001])
    na, nb = a.numpy(), b.numpy()
    for kw in ({}, {"equal_nan": True}, {"rtol": 1e-3}, {"atol": 0.5}, {"rtol": 0.0, "atol": 0.0}):
        got = cp.isclose(a, b, **kw)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), np.isclose(na, nb, **kw))
        assert a.allclose(b, **kw) == np.allclose(na, nb, **kw)
    assert cp.allclose(a[:1], b[:1]) and not a.allclose(a) and a.allclose(a, equal_nan=True)
    assert cp.tensor([1, 2]).isclose(cp.tensor([1, 3])).tolist() == [True, False]
    assert cp.equal(cp.tensor([1.0, 2.0]), cp.tensor([1.0, 2.0])) is True
    assert not cp.tensor([1.0, 2.0]).equal(cp.tensor([[1.0, 2.0]])) and not a.equal(a)  # shape; NaN != NaN
    with no_launch():
        with pytest.raises(ValueError, match="rtol"):
            a.isclose(b, rtol=-1.0)
        with pytest.raises(TypeError, match="other must be a tensor"):
            a.isclose(1.0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_all_count_nonzero(layout):
    t, a = make(rng.choice([0.0, 0.0, 1.5, np.nan], size=(3, 4, 5)), np.float64, layout)
    for dim in (None, 0, -1, (0, 2)):
        axis = dim
        assert t.any(dim).dtype == np.bool_ and t.all(dim).dtype == np.bool_
        np.testing.assert_array_equal(t.any(dim).numpy(), np.any(a != 0, axis=axis))
        np.testing.assert_array_equal(cp.all(t, dim).numpy(), np.all(a != 0, axis=axis))
        np.testing.assert_array_equal(t.count_nonzero(dim).numpy(), np.count_nonzero(a, axis=axis))
        assert t.count_nonzero(dim).dtype == np.int64
    assert t.any(1, keepdim=True).shape == [3, 1, 5]
    assert cp.zeros(0).any().item() is False and cp.zeros(0).all().item() is True
    assert cp.zeros(2, 0).all(1).tolist() == [True, True] and cp.zeros(2, 0).any(1).tolist() == [False, False]
    assert cp.tensor(2.0).all().item() is True and cp.tensor([True, False]).any().item() is True
    assert cp.tensor([3, 0, 1]).count_nonzero().item() == 2


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nonzero(layout):
    t, a = make(rng.choice([0.0, 1.0, -2.0], size=(3, 4, 5)), np.float64, layout)
    got = t.nonzero()
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.numpy(), np.argwhere(a))
    for g, r in zip(cp.nonzero(t, as_tuple=True), np.nonzero(a)):
        np.testing.assert_array_equal(g.numpy(), r)
    assert cp.tensor(0.0).nonzero().shape == [0, 0] and cp.tensor(3.0).nonzero().shape == [1, 0]
    assert cp.zeros(0, 3).nonzero().shape == [0, 2] and cp.zeros(2, 3).nonzero().shape == [0, 2]
    assert cp.tensor([True, False, True]).nonzero().tolist() == [[0], [2]]


def test_nonzero_of_a_long_tensor():
    big = rng.choice([0, 1], size=300000, p=[0.9, 0.1])  # 1172 blocks of counts
    np.testing.assert_array_equal(cp.tensor(big).nonzero().numpy()[:, 0], np.flatnonzero(big))


@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64, np.float16, np.float32])
def test_nonzero_coordinates_across_blocks_of_every_dtype(dtype):
    """1,050 elements: the coordinates of a 3-d mask written from several blocks' prefixes; NaN is nonzero.
    Indexing's masks take the same path (t[mask] against numpy)."""
    a = rng.choice([0, 1, 2], size=(7, 50, 3), p=[0.6, 0.3, 0.1]).astype(dtype)
    t = cp.tensor(a)
    np.testing.assert_array_equal(t.nonzero().numpy(), np.argwhere(a))
    np.testing.assert_array_equal(t.transpose(0, 2).nonzero().numpy(), np.argwhere(a.transpose(2, 1, 0)))
    values, v = make(rng.normal(size=a.shape), np.float32)
    np.testing.assert_array_equal(values[t.bool()].numpy(), v.astype(np.float32)[a.astype(bool)])
    if dtype is not np.bool_ and np.issubdtype(dtype, np.floating):
        assert cp.tensor(np.array([0.0, np.nan, 1.0], dtype)).nonzero().tolist() == [[1], [2]]


def leaf(shape, lo=-2.0, hi=2.0, layout="contiguous"):
    t, _ = make(rng.uniform(lo, hi, size=shape), np.float64, layout)
    return t.requires_grad_()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradients(layout):
    pos = leaf((3, 4), 0.3, 2.0, layout)
    for f in (lambda x: x.log2(), lambda x: x.log10(), lambda x: x.rsqrt(), lambda x: x.reciprocal(),
              lambda x: x.square(), lambda x: x.erf(), lambda x: (x * 0.4).erfinv(), lambda x: x.nan_to_num()):
        assert gradcheck(f, [pos])
    x, e = leaf((3, 4), layout=layout), leaf((3, 4), layout=layout)
    w = leaf((4,), 0.0, 1.0)
    assert gradcheck(lambda x, e, w: x.lerp(e, w), [x, e, w])
    assert gradcheck(lambda x, e: x.lerp(e, 0.8), [x, e])
    lo, hi = leaf((4,), -1.5, -0.2), leaf((3, 1), 0.2, 1.5)
    assert gradcheck(lambda x, lo, hi: x.clamp(lo, hi), [x, lo, hi])
    assert gradcheck(lambda x, lo: x.clamp(min=lo), [x, lo])
    # away from the jumps: |a| / b between 1 and 2
    a = cp.tensor(rng.uniform(2.2, 2.8, size=(3, 4)) * np.array([1, -1, 1, -1]), requires_grad=True)
    b = cp.tensor(rng.uniform(1.5, 2.0, size=(4,)), requires_grad=True)
    assert gradcheck(lambda a, b: a.fmod(b), [a, b])
    assert gradcheck(lambda a, b: a % b, [a, b])
    assert gradcheck(lambda b: 3.7 % b, [b])  # a number on the left: recorded with its operands swapped


def test_nan_to_num_gradient_is_zero_where_replaced():
    x = cp.tensor([np.nan, np.inf, 2.0], requires_grad=True)
    x.nan_to_num().sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


def test_clamp_tensor_gradient_at_ties_follows_pytorch():
    x = cp.tensor([0.0, 1.0, 2.0], requires_grad=True)
    lo = cp.tensor([0.0, 1.5, 2.5], requires_grad=True)
    hi = cp.tensor([1.0, 1.0, 1.0], requires_grad=True)  # the last two: min > max gives max
    x.clamp(lo, hi).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0] and lo.grad.tolist() == [0.0, 0.0, 0.0]
    assert hi.grad.tolist() == [0.0, 1.0, 1.0]
