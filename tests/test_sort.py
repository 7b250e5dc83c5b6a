"""sort / argsort / topk / msort (ops/sort.py, cl_kernels/sort.cl): values and indices against numpy's stable
sort in float64, ties, NaN placement, every layout, 0-dim and empty tensors, long rows (several merge
passes), gradients against finite differences, and errors before any launch."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np

import clownpiece as cp
from clownpiece._layout import IndexOutOfRange
from clownpiece.autograd import gradcheck

rng = np.random.default_rng(7)


def np_sort(a, dim, descending):
    """numpy's stable sort; descending keeps ties in input order (and NaN first), like PyTorch."""
    if descending:
        # a stable sort of the negation (the data here has no NaN and no inf)
        idx = np.argsort(-a, axis=dim, kind="stable")
    else:
        idx = np.argsort(a, axis=dim, kind="stable")
    return np.take_along_axis(a, idx, dim), idx


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((5, 33), 1), ((5, 33), 0), ((3, 4, 70), -1), ((3, 70, 4), 1),
                                       ((2, 1000), 1), ((1, 1), 0)])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sort_matches_numpy(shape, dim, descending, layout, dtype):
    t, a = make(rng.normal(size=shape), dtype, layout)
    a = a.astype(dtype).astype(np.float64)  # the values the tensor holds
    v, i = t.sort(dim, descending=descending)
    ref_v, ref_i = np_sort(a, dim, descending)
    assert_close(v, ref_v, dtype, rtol=0, atol=0)
    np.testing.assert_array_equal(to_np(i), ref_i)
    assert v.is_contiguous() and i.is_contiguous()


@pytest.mark.parametrize("n", [31, 32, 33, 64, 65, 1000, 4097])
@pytest.mark.parametrize("descending", [False, True])
def test_ties_keep_input_order(n, descending):
    a = rng.integers(0, 5, size=(2, n)).astype(np.float64)  # many equal keys
    v, i = cp.Tensor(a, dtype=np.float64).sort(1, descending=descending, stable=True)
    ref_v, ref_i = np_sort(a, 1, descending)
    np.testing.assert_array_equal(to_np(v), ref_v)
    np.testing.assert_array_equal(to_np(i), ref_i)
    assert cp.Tensor(a).argsort(1, descending=descending).tolist() == ref_i.tolist()


def test_nan_sorts_as_largest():
    a = np.array([3.0, np.nan, -1.0, np.inf, np.nan, 0.0, -np.inf])
    v, i = cp.Tensor(a, dtype=np.float64).sort()
    np.testing.assert_array_equal(to_np(v), [-np.inf, -1, 0, 3, np.inf, np.nan, np.nan])
    assert i.tolist() == [6, 2, 5, 0, 3, 1, 4]
    v, i = cp.Tensor(a, dtype=np.float64).sort(descending=True)
    np.testing.assert_array_equal(to_np(v), [np.nan, np.nan, np.inf, 3, 0, -1, -np.inf])
    assert i.tolist() == [1, 4, 3, 0, 5, 2, 6]
    v, i = cp.Tensor(a).topk(3)
    assert i.tolist() == [1, 4, 3]


@pytest.mark.parametrize("descending", [False, True])
def test_signed_zeros_are_ties(dtype, descending):
    a = np.array([0.0, -0.0, 1.0, -0.0, 0.0, -1.0])
    v, i = cp.Tensor(a, dtype=dtype).sort(descending=descending)
    ref = [2, 0, 1, 3, 4, 5] if descending else [5, 0, 1, 3, 4, 2]
    assert i.tolist() == ref
    np.testing.assert_array_equal(np.signbit(v.numpy()), np.signbit(a[ref]))  # the values themselves


def test_million_elements():
    a = rng.normal(size=1 << 20).astype(np.float32)
    v, i = cp.Tensor(a).sort()
    np.testing.assert_array_equal(v.numpy(), np.sort(a))
    np.testing.assert_array_equal(i.numpy().astype(np.int64), np.argsort(a, kind="stable"))
    for k in (1000, 100, 7, 1):  # k >= 32: radix select; k < 32: long runs that keep k each
        v, i = cp.Tensor(a).topk(k)
        ref = np.argsort(-a, kind="stable")[:k]
        np.testing.assert_array_equal(i.numpy().astype(np.int64), ref)
        np.testing.assert_array_equal(v.numpy(), a[ref])


@pytest.mark.parametrize("k", [1, 5, 31])
def test_small_k_long_rows(k, dtype):
    a = rng.integers(-50, 50, size=(3, 20011)).astype(np.float64)  # many ties across the long runs
    for largest in (True, False):
        v, i = cp.Tensor(a, dtype=dtype).topk(k, dim=1, largest=largest)
        ref_v, ref_i = np_sort(a, 1, largest)
        np.testing.assert_array_equal(to_np(i), ref_i[:, :k])
        np.testing.assert_array_equal(to_np(v), ref_v[:, :k])
        v, i = cp.Tensor(a.T.copy(), dtype=dtype).topk(k, dim=0, largest=largest)
        np.testing.assert_array_equal(to_np(i), ref_i[:, :k].T)


@pytest.mark.parametrize("k", [0, 1, 3, 32, 33, 100, 257])
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_topk_matches_numpy(k, largest, layout, dtype):
    t, a = make(rng.normal(size=(4, 257)), dtype, layout)
    a = a.astype(dtype).astype(np.float64)
    v, i = t.topk(k, dim=1, largest=largest)
    ref_v, ref_i = np_sort(a, 1, largest)
    assert_close(v, ref_v[:, :k], dtype, rtol=0, atol=0)
    np.testing.assert_array_equal(to_np(i), ref_i[:, :k])
    v0, i0 = t.T.topk(k, dim=0, largest=largest)
    assert_close(v0, ref_v[:, :k].T, dtype, rtol=0, atol=0)


def test_named_results_and_functions():
    t = cp.Tensor([[3.0, 1.0, 2.0]])
    r = t.topk(2)
    assert r.values.tolist() == [[3.0, 2.0]] and r.indices.tolist() == [[0.0, 2.0]]
    s = cp.sort(t, dim=1, descending=True)
    assert s.values.tolist() == [[3.0, 2.0, 1.0]] and s.indices.tolist() == [[0.0, 2.0, 1.0]]
    assert cp.argsort(t).tolist() == [[1.0, 2.0, 0.0]]
    assert cp.topk(t, 1, largest=False).indices.tolist() == [[1.0]]
    assert cp.Tensor([[2.0, 1.0], [0.0, 3.0]]).msort().tolist() == [[0.0, 1.0], [2.0, 3.0]]


def test_zero_dim_and_empty():
    v, i = cp.Tensor(2.5).sort()
    assert v.shape == [] and v.item() == 2.5 and i.item() == 0
    v, i = cp.Tensor(2.5).topk(1)
    assert v.item() == 2.5 and i.item() == 0
    v, i = cp.zeros(3, 0).sort(1)
    assert v.shape == [3, 0] and i.shape == [3, 0]
    v, i = cp.zeros(0, 4).topk(2)
    assert v.shape == [0, 2]
    v, i = cp.zeros(3, 4).topk(0)
    assert v.shape == [3, 0]


def test_errors_before_launch():
    t = cp.Tensor(rng.normal(size=(3, 4)))
    with no_launch():
        with pytest.raises(IndexOutOfRange, match="k \\(5\\) is out of range"):
            t.topk(5)
        with pytest.raises(IndexOutOfRange, match="k"):
            t.topk(-1)
        with pytest.raises(TypeError, match="k must be an int"):
            t.topk(2.0)
        with pytest.raises(IndexOutOfRange, match="dim"):
            t.sort(2)
        with pytest.raises(IndexOutOfRange, match="dim"):
            t.topk(1, dim=-3)
        with pytest.raises(IndexOutOfRange):
            cp.Tensor(1.0).topk(2)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradients(layout):
    def leaf(shape):
        t, _ = make(rng.normal(size=shape), np.float64, layout)
        return t.requires_grad_()
    x = leaf((3, 9))  # small: every element is perturbed twice (and the strict pass runs it under oclgrind)
    assert gradcheck(lambda x: x.sort(1)[0], [x])
    assert gradcheck(lambda x: x.sort(0, descending=True).values, [x])
    assert gradcheck(lambda x: x.topk(5, 1).values, [x])
    assert gradcheck(lambda x: x.topk(2, 0, largest=False)[0], [x])
    assert gradcheck(lambda x: x.msort(), [x])
    z = cp.Tensor(1.5, requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda z: z.sort()[0] * 2, [z])


def test_gradient_with_ties_goes_to_the_returned_index():
    x = cp.Tensor([1.0, 1.0, 0.0], requires_grad=True)
    x.topk(1).values.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 0.0]


# ---- topk with k >= 32 in long rows: radix select of the k, then a sort of those (sort.cl select_*) -------

def stable_order(a, descending):
    """Each row's indices in the order of a stable sort with NaN the largest value (-0 == 0), descending
    keeping ties in input order: what sort and topk return."""
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.int64)
    nan = np.isnan(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
    value = np.where(nan, 0, a)
    if descending:
        nan, value = ~nan, (-value if a.dtype.kind == "f" else ~value)  # ~ flips ints without overflow
    return np.array([np.lexsort((value[r], nan[r])) for r in range(a.shape[0])]).reshape(a.shape)


def check_topk(a, k, largest, dtype=None):
    t = cp.tensor(a) if dtype is None else cp.Tensor(a, dtype=dtype)
    v, i = t.topk(k, dim=1, largest=largest)
    held = t.numpy()
    ref = stable_order(held, largest)[:, :k]
    np.testing.assert_array_equal(i.numpy(), ref)
    want = np.take_along_axis(held, ref, 1)
    np.testing.assert_array_equal(v.numpy(), want)
    if want.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(v.numpy()), np.signbit(want))


@pytest.mark.parametrize("k", [32, 33, 100, 1000, 2500, 4999])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_large_k_matches_numpy(k, largest, dtype):
    """Distinct values (rows settle before the last pass) and many ties at the k-th value (every pass runs,
    and the first of the tied elements in input order are taken); k up to half the row is selected first
    (put in order by select_rank up to 1024, then by the merge sort), beyond it merge-sorted."""
    distinct = rng.normal(size=(3, 5000)).astype(dtype)
    check_topk(distinct, k, largest)
    tied = rng.integers(-30, 30, size=(2, 5000)).astype(dtype)
    check_topk(tied, k, largest)


@pytest.mark.parametrize("name", ["float16", "float32", "float64", "int32", "int64", "bool"])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_large_k_every_dtype(name, largest):
    n = 4500
    if name == "bool":
        a = rng.integers(0, 2, size=(3, n)).astype(bool)
    elif name.startswith("int"):
        info = np.iinfo(name)
        a = rng.integers(info.min, info.max, size=(3, n), dtype=name, endpoint=True)
        a[0, :6] = [info.min, info.max, -1, 0, info.max, info.min]
        a[1] = rng.integers(-3, 3, size=n)  # ties everywhere
    else:
        a = rng.normal(size=(3, n)).astype(name)
        a[0, ::97] = np.nan  # 47 NaNs: more than k=40 of the largest are NaN (ties among them by position)
        a[1, ::5] = -0.0
        a[1, 1::5] = 0.0  # zeros of both signs tie
        a[2, 10], a[2, 20], a[2, 30] = np.inf, -np.inf, np.nan
    for k in (40, 64, 1500):
        check_topk(a, k, largest)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_topk_large_k_layouts_dims_and_gradient(layout):
    t, a = make(rng.normal(size=(4100, 3)), np.float32, layout)
    a = a.astype(np.float32)
    v, i = t.topk(50, dim=0)
    ref = stable_order(a.T, True)[:, :50].T
    np.testing.assert_array_equal(i.numpy(), ref)
    np.testing.assert_array_equal(v.numpy(), np.take_along_axis(a, ref, 0))
    x = cp.Tensor(a.T.copy(), requires_grad=True)
    x.topk(40, dim=1).values.sum().backward()
    want = np.zeros(a.T.shape)
    np.put_along_axis(want, stable_order(a.T, True)[:, :40], 1.0, 1)
    np.testing.assert_array_equal(x.grad.numpy(), want)


def test_topk_large_k_rows_settling_at_different_passes():
    """Rows of one launch: distinct values, all equal (never settles early), a constant top byte, NaN-heavy."""
    n = 4096
    a = np.stack([rng.normal(size=n), np.full(n, 2.5), 1 + rng.random(n), np.where(rng.random(n) < 0.5, np.nan,
                                                                                    rng.normal(size=n))])
    for dtype in (np.float32, np.float64):
        for k in (32, 1000, 2048):
            for largest in (True, False):
                check_topk(a.astype(dtype), k, largest)


@pytest.fixture(params=[True, False], ids=["private", "atomic"])
def small_select(monkeypatch, request):
    """The select path on small rows (for the strict pass), with several work-groups per row of a few
    work-items, each with parts of 8 elements and a tail; select_hist counting in private memory (CPUs) and
    with atomics (other devices); the k selected put in order by select_rank and by the merge sort."""
    from clownpiece.ops import sort as sort_ops
    monkeypatch.setattr(sort_ops, "_SELECT_MIN_LEN", 0)
    monkeypatch.setattr(sort_ops, "_SELECT_MAX_SHARE", 1.0)
    monkeypatch.setattr(sort_ops, "_PRIVATE_HIST", request.param)
    monkeypatch.setattr(sort_ops, "_SELECT_CPU", (4, 9))
    monkeypatch.setattr(sort_ops, "_SELECT_OTHER", (4, 9))
    monkeypatch.setattr(sort_ops, "_RANK_MAX_K", 40)


@pytest.mark.parametrize("name", ["float32", "float64", "int64", "float16", "bool"])
def test_topk_select_kernels_on_small_rows(small_select, name):
    if name == "bool":
        a = rng.integers(0, 2, size=(2, 70)).astype(bool)
    elif name == "int64":
        a = rng.integers(-4, 4, size=(2, 70)).astype(np.int64)
    else:
        a = rng.normal(size=(2, 70)).astype(name)
        a[0, 3], a[0, 50], a[1, 9], a[1, 10] = np.nan, np.nan, -0.0, 0.0
        a[1, 20:40] = 1.5  # ties at the k-th value
    for k, largest in ((33, True), (45, False), (69, True)):
        check_topk(a, k, largest)


@pytest.mark.parametrize("name", ["float16", "float32", "float64", "int32", "int64", "bool"])
@pytest.mark.parametrize("descending", [False, True])
def test_every_dtype(name, descending):
    if name == "bool":
        a = rng.integers(0, 2, size=(3, 77)).astype(bool)
    else:
        a = rng.integers(-100, 100, size=(3, 77)).astype(name)
    if name in ("int32", "int64"):
        a[0, :3] = [np.iinfo(name).min, np.iinfo(name).max, -1]  # the extremes keep their order
    if name.startswith("float"):
        a[0, 3], a[1, 5], a[2, 7], a[2, 8] = np.nan, -0.0, np.inf, np.nan

    def rank(r, j):  # NaN above everything; equal values (and -0 == 0) in input order
        v = a[r, j].item()
        nan = v != v
        big = (nan, 0 if nan else v)
        return ((-big[0], -big[1]) if descending else big), j
    order = np.array([sorted(range(77), key=lambda j: rank(r, j)) for r in range(3)])
    v, i = cp.tensor(a).sort(1, descending=descending)
    assert v.dtype == a.dtype and i.dtype == np.int64
    np.testing.assert_array_equal(i.numpy(), order)
    got = v.numpy()
    np.testing.assert_array_equal(got, np.take_along_axis(a, order, 1))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(np.take_along_axis(a, order, 1)))
    assert cp.tensor(a).topk(5, largest=descending).indices.tolist() == order[:, :5].tolist()
