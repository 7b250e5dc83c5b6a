import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np
from hypothesis import given, settings, strategies as st

import clownpiece as cp
from clownpiece import backend
from clownpiece._layout import IndexOutOfRange, ShapeError
from clownpiece.ops import reduce as reduce_ops

rng = np.random.default_rng(1)

# numpy float64 references for the value reductions (dims already normalised to a tuple)
VALUE_REFS = {
    "sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min,
    "var": lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims, ddof=1),
    "std": lambda a, axis, keepdims: np.std(a, axis=axis, keepdims=keepdims, ddof=1),
}
DIMS = [None, 0, -1, 1, (-1, -2), (1, -1), (0, 2), [0, 1, 2], [2]]


def np_dims(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    return tuple(d % ndim for d in (dim if isinstance(dim, (list, tuple)) else (dim,)))


@pytest.mark.parametrize("name", sorted(VALUE_REFS))
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_value_reductions(name, dim, keepdims, layout, dtype):
    t, a = make(rng.normal(size=(3, 4, 5)), dtype, layout)
    got = getattr(t, name)(dim, keepdims)
    assert isinstance(got, cp.Tensor)
    assert_close(got, VALUE_REFS[name](a, axis=np_dims(dim, 3), keepdims=keepdims), dtype)


@pytest.mark.parametrize("name", sorted(VALUE_REFS))
def test_expanded_and_permuted_inputs(name, dtype):
    small, s = make(rng.normal(size=(1, 4, 1)), dtype)
    t = small.broadcast_to((3, 4, 5))
    a = np.broadcast_to(s, (3, 4, 5))
    for dim in [None, 0, (0, 2), 1]:
        assert_close(getattr(t, name)(dim), VALUE_REFS[name](a, axis=np_dims(dim, 3), keepdims=False), dtype)
    base, b = make(rng.normal(size=(2, 3, 4, 5)), dtype)
    p = base.permute(2, 0, 3, 1)
    pb = b.transpose(2, 0, 3, 1)
    for dim in [None, (0, 1), (1, 3), -1]:
        assert_close(getattr(p, name)(dim), VALUE_REFS[name](pb, axis=np_dims(dim, 4), keepdims=False), dtype)


def test_keepdim_alias_and_empty_dim_list():
    t, a = make(rng.normal(size=(2, 3)))
    assert t.sum(1, keepdim=True).shape == [2, 1]
    assert t.mean(dim=0, keepdim=True).shape == [1, 3]
    assert t.max(dim=1, keepdim=True)[0].shape == [2, 1]
    assert t.argmax(dim=1, keepdim=True).shape == [2, 1]
    assert t.sum(keepdims=True).shape == [1, 1]
    assert_close(t.sum([]), a.sum())  # an empty dim list means all dims, as in PyTorch


@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1, None, [1]], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_min_values_and_first_index(kind, dim, keepdims, layout, dtype):
    t, a = make(rng.integers(-3, 4, size=(4, 5, 6)).astype(float), dtype, layout)  # many ties
    vals, idx = getattr(t, kind)(dim, keepdims)
    axis = -1 if dim is None else (dim[0] if isinstance(dim, list) else dim)
    ref_vals = (np.max if kind == "max" else np.min)(a, axis=axis, keepdims=keepdims)
    ref_idx = (np.argmax if kind == "max" else np.argmin)(a, axis=axis, keepdims=keepdims)
    assert_close(vals, ref_vals, dtype)
    assert idx.dtype == cp.int64  # PyTorch's index dtype
    assert_close(idx, ref_idx, dtype, rtol=0, atol=0)


def test_max_default_dim_is_last():
    t, a = make(rng.normal(size=(3, 4)))
    vals, idx = t.max()
    assert_close(vals, a.max(-1))
    assert_close(idx, a.argmax(-1), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_argmax_argmin(kind, layout, dtype):
    t, a = make(rng.integers(-5, 6, size=(4, 7)).astype(float), dtype, layout)
    ref = getattr(np, kind)
    flat = getattr(t, kind)()
    assert flat.shape == []
    assert_close(flat, ref(a), dtype, rtol=0, atol=0)  # logical (row-major) flat index, even when transposed
    assert_close(getattr(t, kind)(keepdims=True), np.reshape(ref(a), (1, 1)), dtype, rtol=0, atol=0)
    for dim in [0, 1, -2]:
        assert_close(getattr(t, kind)(dim), ref(a, axis=dim), dtype, rtol=0, atol=0)


def test_nan_propagates_in_max_min():
    a = np.array([[1.0, np.nan, 3.0, np.nan], [5.0, 2.0, 9.0, -1.0]])
    t = cp.Tensor(a)
    for kind in ["max", "min"]:
        vals, idx = getattr(t, kind)(1)
        assert np.isnan(to_np(vals)[0]) and to_np(vals)[1] == (9.0 if kind == "max" else -1.0)
        assert to_np(idx)[0] == 1.0  # the first NaN
    assert np.isnan(t.amax().item()) and np.isnan(t.amin().item())
    assert t.argmax().item() == 1.0
    assert_close(t.amax(0), np.max(a, axis=0))


def test_infinities_are_values():
    a = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [np.inf, -np.inf]])
    t = cp.Tensor(a)
    with np.errstate(invalid="ignore"):
        assert_close(t.sum(1), a.sum(1))
        assert_close(t.mean(1), a.mean(1))
    vals, idx = t.max(1)
    assert_close(vals, a.max(1))
    assert_close(idx, a.argmax(1), rtol=0, atol=0)


def test_zero_dim_inputs(dtype):
    t = cp.Tensor(2.5, dtype=dtype)
    for name in ["sum", "mean", "amax", "amin"]:
        for dim in [None, 0, -1]:
            assert_close(getattr(t, name)(dim), 2.5, dtype)
    vals, idx = t.max(0)
    assert vals.shape == [] and vals.item() == 2.5 and idx.item() == 0.0
    assert t.argmax().item() == 0.0 and t.argmin(0).shape == []
    assert_close(t.softmax(0), 1.0, dtype)
    assert_close(t.log_softmax(-1), 0.0, dtype)
    assert_close(t.logsumexp(0), 2.5, dtype)
    assert np.isnan(t.var().item())  # n - 1 == 0, as in PyTorch
    assert t.var(unbiased=False).item() == 0.0
    with pytest.raises(IndexOutOfRange):
        t.sum(1)


def test_size_zero_dims(dtype):
    e = cp.Tensor(np.zeros((0, 3)), dtype=dtype)
    assert_close(e.sum(0), np.zeros(3), dtype)
    assert_close(e.sum(), 0.0, dtype)
    assert e.sum(1).shape == [0]
    assert e.mean(1).shape == [0] and e.max(1)[0].shape == [0] and e.var(1).shape == [0]
    f = cp.Tensor(np.zeros((3, 0)), dtype=dtype)
    assert_close(f.sum(1, keepdims=True), np.zeros((3, 1)), dtype)
    assert_close(f.logsumexp(1), np.full(3, -np.inf), dtype)
    assert f.softmax(1).shape == [3, 0]
    for call in [lambda: f.mean(1), lambda: f.var(), lambda: f.std(1), lambda: f.max(1), lambda: f.min(-1),
                 lambda: f.argmax(), lambda: f.amax(1), lambda: e.max(0), lambda: e.mean()]:
        with pytest.raises(RuntimeError, match="empty"):
            call()


def test_var_single_element_and_biased(dtype):
    t, a = make(rng.normal(size=(4, 1)), dtype)
    assert np.isnan(to_np(t.var(1))).all()
    assert_close(t.var(0, unbiased=False), a.var(0), dtype)
    assert_close(t.std(0, unbiased=False), a.std(0), dtype)


def test_var_is_numerically_sound(dtype):
    # a large offset ruins the naive E[x^2] - E[x]^2 formula, not a two-pass one
    a = 1e4 + rng.normal(size=(3, 5000))
    t = cp.Tensor(a, dtype=dtype)
    assert_close(t.var(1), np.var(a.astype(dtype), axis=1, ddof=1), dtype, rtol=1e-3 if dtype == np.float32 else 1e-9)


def softmax_ref(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_softmax_family(dim, layout, dtype):
    t, a = make(rng.normal(size=(3, 4, 5)) * 3, dtype, layout)
    lse = np.log(np.exp(a).sum(axis=dim))
    assert_close(t.softmax(dim), softmax_ref(a, dim), dtype)
    assert_close(t.log_softmax(dim), a - np.expand_dims(lse, dim), dtype)
    assert_close(t.logsumexp(dim), lse, dtype)
    assert_close(t.logsumexp(dim, keepdims=True), np.expand_dims(lse, dim), dtype)


def test_softmax_expanded_input(dtype):
    small, s = make(rng.normal(size=(1, 5)), dtype)
    t = small.broadcast_to((3, 5))
    assert_close(t.softmax(-1), softmax_ref(np.broadcast_to(s, (3, 5)), -1), dtype)
    assert_close(t.softmax(0), np.full((3, 5), 1 / 3), dtype)


def test_softmax_is_stable_for_large_logits(dtype):
    a = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1.0, -1e4]])
    t = cp.Tensor(a, dtype=dtype)
    assert_close(t.softmax(), softmax_ref(a, -1), dtype)
    lse = a.max(-1) + np.log(np.exp(a - a.max(-1, keepdims=True)).sum(-1))
    assert_close(t.log_softmax(), a - lse[:, None], dtype)
    assert_close(t.logsumexp(), lse, dtype)


def test_softmax_with_minus_inf_entries():
    a = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    t = cp.Tensor(a)
    sm, lsm, lse = to_np(t.softmax()), to_np(t.log_softmax()), to_np(t.logsumexp())
    np.testing.assert_allclose(sm[0], softmax_ref(a[:1], -1)[0], rtol=1e-6)
    assert sm[0, 1] == 0.0 and lsm[0, 1] == -np.inf
    assert np.isnan(sm[1]).all() and np.isnan(lsm[1]).all()  # as in PyTorch: exp(-inf - -inf)
    assert lse[1] == -np.inf  # PyTorch's logsumexp shifts an infinite max by 0


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_softmax_grads(dim, layout, dtype):
    x = rng.normal(size=(4, 6))
    g, gn = make(rng.normal(size=(4, 6)), dtype, layout)
    y = softmax_ref(x, dim)
    yt = cp.Tensor(y, dtype=dtype).transpose(0, 1).contiguous().transpose(0, 1)  # strided output too
    assert_close(g.softmax_grad(yt, dim), y * (gn - (gn * y).sum(dim, keepdims=True)), dtype)
    ly = np.log(y)
    assert_close(g.log_softmax_grad(cp.Tensor(ly, dtype=dtype), dim),
                 gn - np.exp(ly) * gn.sum(dim, keepdims=True), dtype)
    before = backend.stats()["launches"]
    g.softmax_grad(yt, dim)
    assert backend.stats()["launches"] - before == 1  # one fused kernel


@pytest.mark.parametrize("length", [8, 9, 49, 64, 65, 130])
def test_softmax_family_on_long_contiguous_rows(length, dtype):
    """Rows of 8 elements and more run the contiguous row kernels' 8-wide loops, and past 64 more than one
    summation block; a NaN in a vector lane, a NaN in the last element (a tail, or the last lane), -inf."""
    a = rng.normal(size=(5, length)) * 3
    a[1, 3] = np.nan
    a[2, length - 1] = np.nan
    a[3, 5] = -np.inf
    t = cp.Tensor(a, dtype=dtype)
    with np.errstate(invalid="ignore"):
        m = a.max(-1, keepdims=True)
        e = np.exp(a - m)
        lse = m[:, 0] + np.log(e.sum(-1))
    assert_close(t.softmax(-1), e / e.sum(-1, keepdims=True), dtype)
    assert_close(t.log_softmax(-1), a - lse[:, None], dtype)
    assert_close(t.logsumexp(-1), lse, dtype)
    x = rng.normal(size=(3, length))
    y = softmax_ref(x, -1)
    g, gn = make(rng.normal(size=(3, length)), dtype)
    assert_close(g.softmax_grad(cp.Tensor(y, dtype=dtype), -1), y * (gn - (gn * y).sum(-1, keepdims=True)), dtype)
    ly = np.log(y)
    assert_close(g.log_softmax_grad(cp.Tensor(ly, dtype=dtype), -1), gn - np.exp(ly) * gn.sum(-1, keepdims=True),
                 dtype)


def test_softmax_grad_checks_shapes():
    g = cp.Tensor(np.ones((2, 3)))
    with pytest.raises(ShapeError):
        g.softmax_grad(cp.Tensor(np.ones((3, 2))), -1)
    with pytest.raises(IndexOutOfRange):
        g.log_softmax_grad(g, 2)
    with pytest.raises(TypeError):
        g.softmax_grad(np.ones((2, 3)), -1)
    with pytest.raises(TypeError):
        g.softmax_grad(g.double(), -1)


@pytest.mark.parametrize("src,dst", [((3, 4), (4,)), ((3, 4), (1, 4)), ((3, 4), (3, 1)), ((2, 3, 4), (3, 1)),
                                     ((2, 3, 4), ()), ((2, 1, 4), (1, 4)), ((0, 4), (4,)), ((5,), (1,))])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sum_to(src, dst, layout, dtype):
    t, a = make(rng.normal(size=src), dtype, layout)
    lead = len(src) - len(dst)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(dst) if s == 1)
    assert_close(t.sum_to(dst), a.sum(axis=axes).reshape(dst), dtype)
    assert_close(t.sum_to(*dst), a.sum(axis=axes).reshape(dst), dtype)


def test_sum_to_same_shape_is_free():
    t = cp.Tensor(np.ones((3, 4)))
    with no_launch():
        assert t.sum_to([3, 4]) is t
    with pytest.raises(ShapeError):
        t.sum_to((2, 4))
    with pytest.raises(ShapeError):
        t.sum_to((1, 3, 4))


def test_errors_raise_before_launch():
    t = cp.Tensor(np.ones((2, 3)))
    bad = [(IndexOutOfRange, lambda: t.sum(2)), (IndexOutOfRange, lambda: t.mean((0, -3))),
           (RuntimeError, lambda: t.sum((1, -1))), (RuntimeError, lambda: t.amax([0, 0])),
           (RuntimeError, lambda: t.max([0, 1])), (IndexOutOfRange, lambda: t.max(5)),
           (IndexOutOfRange, lambda: t.argmax(-3)), (IndexOutOfRange, lambda: t.softmax(2)),
           (IndexOutOfRange, lambda: t.logsumexp(3)), (TypeError, lambda: t.sum(1.5)),
           (TypeError, lambda: t.max("a"))]
    for exc, call in bad:
        with no_launch(), pytest.raises(exc):
            call()


def test_large_reductions_use_two_stages():
    n = 1 << 20
    a = rng.normal(size=n) + 0.5
    t = cp.Tensor(a)  # float32
    scale = np.abs(a).sum()
    before = backend.stats()["launches"]
    s = t.sum()
    assert backend.stats()["launches"] - before == 2  # partials, then the combine
    assert abs(s.item() - a.astype(np.float32).astype(np.float64).sum()) <= 1e-6 * scale
    assert abs(t.mean().item() - a.mean()) <= 1e-6 * scale / n + 1e-7
    assert abs(t.var().item() - a.var(ddof=1)) <= 1e-5 * a.var()
    assert abs(t.std(unbiased=False).item() - a.std()) <= 1e-5 * a.std()
    a32 = a.astype(np.float32)
    assert t.argmax().item() == float(np.argmax(a32)) and t.argmin().item() == float(np.argmin(a32))
    assert t.amax().item() == float(a32.max())
    vals, idx = t.max(0)
    assert vals.item() == float(a32.max()) and idx.item() == float(np.argmax(a32))


def test_large_reduction_with_two_outputs(dtype):
    cols = rng.normal(size=(1 << 19, 2))
    cols[123456, 1] = 50.0  # a unique max far into the column
    t = cp.Tensor(cols, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else {}
    assert_close(t.sum(0), cols.sum(0), dtype, **tol)
    assert_close(t.mean(0), cols.mean(0), dtype, **tol)
    assert_close(t.var(0), cols.var(0, ddof=1), dtype, **tol)
    assert_close(t.T.sum(-1), cols.sum(0), dtype, **tol)
    vals, idx = t.max(0)
    assert_close(vals, cols.max(0), dtype)
    assert to_np(idx)[1] == 123456.0
    rows = cp.Tensor(rng.normal(size=(3, 1 << 18)), dtype=dtype)
    assert_close(rows.logsumexp(-1), np.log(np.exp(to_np(rows)).sum(-1)), dtype, **tol)


def test_chain_of_reductions_reads_nothing_back():
    t = cp.Tensor(rng.normal(size=(64, 300)))
    backend.synchronize()
    before = backend.stats()["d2h_count"]
    x = t.softmax(-1).sum(0).amax() + t.var(1).mean() + t.max(0)[1].sum() + t.argmax() + t.logsumexp(0).sum()
    y = t.sum_to((1, 300)).std(keepdims=True) + t.log_softmax(0).amin()
    assert backend.stats()["d2h_count"] == before
    x.numpy(), y.numpy()
    assert backend.stats()["d2h_count"] > before


def test_tensorbase_results_stay_tensorbase():
    t = cp.TensorBase(np.ones((2, 3)))
    assert type(t.sum(0)) is cp.TensorBase
    assert type(t.max(0)[1]) is cp.TensorBase


@st.composite
def shape_and_dims(draw):
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    ndim = len(shape)
    if ndim and draw(st.booleans()):
        dims = draw(st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                             unique_by=lambda d: d % ndim))
    else:
        dims = None
    return shape, dims, draw(st.booleans()), draw(st.sampled_from(LAYOUTS))


@settings(max_examples=30, deadline=None)
@given(shape_and_dims())
def test_random_sum_mean_max(case):
    shape, dims, keepdims, layout = case
    t, a = make(rng.normal(size=shape), np.float32, layout if shape else "contiguous")
    axes = np_dims(dims, len(shape)) if shape else None
    assert_close(t.sum(dims, keepdims), np.sum(a, axis=axes, keepdims=keepdims))
    reduced = int(np.prod([shape[d] for d in axes])) if shape else 1
    if reduced:
        assert_close(t.mean(dims, keepdims), np.mean(a, axis=axes, keepdims=keepdims))
    else:
        with pytest.raises(RuntimeError):
            t.mean(dims, keepdims)
    if shape:
        d = dims[0] if dims else -1
        if shape[d]:
            vals, idx = t.max(d, keepdims)
            assert_close(vals, np.max(a, axis=d, keepdims=keepdims))
            assert_close(idx, np.argmax(a, axis=d, keepdims=keepdims), rtol=0, atol=0)


def test_two_stage_over_strided_layouts(dtype):
    # chunks that start mid-row of a multi-dim (transposed, sliced) reduction, in logical order for argmax
    base, b = make(rng.normal(size=(700, 600)), dtype, "sliced")
    t, a = base.transpose(0, 1), b.T
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else {}
    a_t = to_np(t)  # the values as stored (float32-rounded for f32)
    assert t.argmax().item() == float(np.argmax(a_t)) and t.argmin().item() == float(np.argmin(a_t))
    assert_close(t.sum(), a.sum(), dtype, **tol)
    assert_close(t.var(), a.var(ddof=1), dtype, **tol)
    assert_close(t.amin(), a.min(), dtype)
    assert_close(t.sum((0, 1), keepdims=True), a.sum(keepdims=True), dtype, **tol)


def test_column_reductions_far_apart(dtype):
    # rows longer than a page: read in short chunks of rows, then combined
    t, a = make(rng.normal(size=(600, 1100)), dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else {}
    assert_close(t.sum(0), a.sum(0), dtype, **tol)
    assert_close(t.var(0, keepdims=True), a.var(0, ddof=1, keepdims=True), dtype, **tol)
    vals, idx = t.min(0)
    assert_close(vals, a.min(0), dtype)
    assert_close(idx, a.argmin(0), dtype, rtol=0, atol=0)
    assert_close(t.sum_to((1, 1100)), a.sum(0, keepdims=True), dtype, **tol)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_stage_reductions_at_small_sizes(layout, dtype, monkeypatch):
    """The two-stage kernels (partials, then a combine) with the split thresholds lowered, so that small
    tensors take them: rows, columns (far apart), strided layouts, every two-stage reduction."""
    monkeypatch.setattr(reduce_ops, "_ONE_STAGE_MAX", 16)
    monkeypatch.setattr(reduce_ops, "_MIN_CHUNK", 4)
    monkeypatch.setattr(reduce_ops, "_FAR_STRIDE", 8)
    monkeypatch.setattr(reduce_ops, "_plans", {})
    t, a = make(rng.normal(size=(9, 40)), dtype, layout)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else {}
    for dims in (None, 0, 1):
        assert reduce_ops._plan(t, t._reduced_dims(dims, "sum"), False).nchunk > 1 or dims == 0
        assert_close(t.sum(dims), a.sum(dims), dtype, **tol)
        assert_close(t.mean(dims), a.mean(dims), dtype, **tol)
        assert_close(t.var(dims), a.var(dims, ddof=1), dtype, **tol)
        assert_close(t.std(dims, unbiased=False), a.std(dims), dtype, **tol)
        assert_close(t.amax(dims), a.max(dims), dtype)
        assert_close(t.amin(dims), a.min(dims), dtype)
    vals, idx = t.max(1)
    assert_close(vals, a.max(1), dtype)
    assert to_np(idx).tolist() == np.argmax(a.astype(dtype), 1).tolist()
    vals, idx = t.min(0)
    assert_close(vals, a.min(0), dtype)
    assert to_np(idx).tolist() == np.argmin(a.astype(dtype), 0).tolist()
