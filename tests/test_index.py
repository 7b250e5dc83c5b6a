"""Indexing and data movement: t[idx] views, setitem, tensor-index gathers, index_select/gather/scatter_/
scatter_add_/index_add_, masked_fill, one_hot, cat/stack/broadcast. References are numpy float64."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np

import clownpiece as cp
from clownpiece._layout import IndexOutOfRange, ShapeError
from clownpiece.backend import DeviceAssertError
from clownpiece.nn import functional as F
from clownpiece.ops.index import broadcast, broadcast_tensors, cat, stack

rng = np.random.default_rng(3)


def ids(values, dtype=np.float32):
    """An index tensor (float ids); numbers and nested lists keep their rank, 0-d included."""
    return cp.Tensor(values.tolist() if isinstance(values, np.ndarray) else values, dtype=dtype)


# ---- basic indexing: views ------------------------------------------------------------------------------
BASIC = [1, -1, slice(1, 3), slice(1, -100), slice(None), slice(-100, 100), slice(3, 1), (0, slice(1, 3)),
         (slice(None), 0), (-1, -2), (2, 3, 4), (None,), (Ellipsis, 1), (1, Ellipsis), (None, slice(1, 3), None),
         (), Ellipsis, (slice(None), slice(2, 5)), (Ellipsis, None), (0, Ellipsis, 0)]


@pytest.mark.parametrize("idx", BASIC, ids=repr)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_basic_index_is_a_view(idx, layout, dtype):
    t, ref = make(rng.normal(size=(3, 4, 5)), dtype, layout)
    with no_launch():
        v = t[idx]
    assert v._storage is t._storage
    assert_close(v, ref[idx], dtype)


def test_course_shapes():
    a = cp.Tensor(np.arange(10.0).reshape(2, 5))
    assert a[1:-100].shape == [0, 5]
    assert a[1:3][2:4].shape == [0, 5]
    assert a[0, 1:3].tolist() == [1.0, 2.0]
    assert a[:, 0].tolist() == [0.0, 5.0]
    assert a[1, 2].shape == [] and a[1, 2].item() == 7.0
    assert cp.Tensor([1.0, 2.0, 3.0])[1:-100].shape == [0]
    assert a[0:2][1:3].is_contiguous()


def test_list_index_gathers_as_in_pytorch():
    """The course read t[[2, 1]] as t[2, 1]; PyTorch (and clownpiece, docs/api.md) gathers rows 2 and 1. A
    list holding a slice, None, ... or a sequence is read as a tuple, as PyTorch reads it."""
    t, ref = make(rng.normal(size=(3, 4)))
    assert_close(t[[2, 1]], ref[[2, 1]])
    assert_close(t[[1]], ref[[1]])
    assert_close(t[2, 1], ref[2, 1])
    assert_close(t[[2, slice(None)]], ref[2, :])
    assert_close(t[[[0, 2], [1, 3]]], ref[[0, 2], [1, 3]])


def test_writes_through_views_are_visible(dtype):
    b = cp.Tensor(np.zeros((2, 3)), dtype=dtype)
    b[0][0] = 100
    f = cp.Tensor(np.zeros((2, 2, 2)), dtype=dtype)
    f[0][0][0] = 1
    row = f[1]
    row[1, 0] = 5
    ref_b = np.zeros((2, 3))
    ref_b[0, 0] = 100
    ref_f = np.zeros((2, 2, 2))
    ref_f[0, 0, 0], ref_f[1, 1, 0] = 1, 5
    assert_close(b, ref_b, dtype)
    assert_close(f, ref_f, dtype)


@pytest.mark.parametrize("shape,idx,exc", [
    ((2, 5), (0, 6), IndexOutOfRange), ((2, 5), (2,), IndexOutOfRange), ((2, 5), (-3,), IndexOutOfRange),
    ((2, 5), (0, 0, 0), IndexOutOfRange), ((), 0, IndexOutOfRange), ((4,), slice(0, 4, 0), ValueError),
    ((4,), slice(None, None, -1), ValueError), ((2, 2), (Ellipsis, Ellipsis), RuntimeError),
    ((4,), 1.0, TypeError), ((4,), True, TypeError), ((4,), "a", TypeError), ((4,), [0.5], IndexError),
    ((2, 3), cp.tensor([True, False, True]), IndexError), ((2, 3), ([0, 1], [0, 1, 2]), IndexError),
])
def test_bad_basic_index_raises_before_launch(shape, idx, exc):
    t = cp.Tensor(np.zeros(shape)) if shape else cp.Tensor(0.0)
    with no_launch():
        with pytest.raises(exc):
            t[idx]
        with pytest.raises(exc):
            t[idx] = 1.0


def test_out_of_range_is_index_error_and_chained_course_cases():
    a = cp.Tensor(np.zeros((2, 5)))
    with pytest.raises(IndexError):
        a[0][6]
    with pytest.raises(RuntimeError):
        a[0][0][0]


# ---- setitem ----------------------------------------------------------------------------------------------
SET_CASES = [  # (index, value shape or None for a number)
    (1, None), (-1, (4,)), ((0, 2), None), (slice(1, 3), (1, 4)), ((slice(None), 1), (3,)),
    ((slice(None), slice(1, 3)), (2,)), ((Ellipsis, 0), ()), (slice(5, 9), None), ((), (3, 1)),
]


@pytest.mark.parametrize("idx,value_shape", SET_CASES, ids=repr)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_setitem_number_and_broadcast_tensor(idx, value_shape, layout, dtype):
    t, ref = make(rng.normal(size=(3, 4)), dtype, layout)
    ref = ref.copy()
    if value_shape is None:
        value, ref_value = 2.5, 2.5
    else:
        ref_value = rng.normal(size=value_shape)
        value = cp.Tensor(ref_value, dtype=dtype)
    t[idx] = value
    ref[idx] = ref_value
    assert_close(t, ref, dtype)


def test_setitem_other_dtype_list_and_overlap(dtype):
    t, ref = make(np.arange(6.0), dtype)
    ref = ref.copy()
    t[1:3] = cp.Tensor([7.0, 8.0], dtype=np.float64 if dtype == np.float32 else np.float32)
    ref[1:3] = [7.0, 8.0]
    t[3:5] = [9.0, 10.0]
    ref[3:5] = [9.0, 10.0]
    t[1:] = t[:-1]  # overlapping source and destination read the old values (numpy semantics)
    ref[1:] = ref[:-1].copy()
    assert_close(t, ref, dtype)


def test_setitem_0d_and_increment_pattern(dtype):
    s = cp.Tensor(1.0, dtype=dtype)
    s[...] = 4.0
    assert s.item() == 4.0
    s[()] = 5.0
    assert s.item() == 5.0
    counts = cp.Tensor(np.zeros(3), dtype=dtype)
    for i in [0, 2, 2]:
        counts[i] += 1  # the notebook's idx_cnt[i] += 1
    assert_close(counts, [1, 0, 2], dtype)


@pytest.mark.parametrize("idx,value", [
    ((0,), cp.Tensor(np.ones(5))), ((slice(None), 0), cp.Tensor(np.ones((3, 1)))), ((9,), 1.0),
    ((0,), "x"), (ids([0, 1]), cp.Tensor(np.ones((3, 4)))), (ids([0, 1]), "x"),
])
def test_failed_setitem_writes_nothing(idx, value):
    t = cp.Tensor(np.arange(12.0).reshape(3, 4))
    with no_launch(), pytest.raises((RuntimeError, TypeError)):
        t[idx] = value
    assert_close(t, np.arange(12.0).reshape(3, 4))


def test_setitem_refused_on_leaf_requiring_grad():
    w = cp.Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="__setitem__"):
        w[0] = 1.0
    assert w.tolist() == [0.0, 0.0, 0.0]


# ---- tensor indices ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("id_values", [[2, 0, 2, -1], [[1, -3], [0, 0]], 1, []])
def test_tensor_index_gathers_rows(layout, id_values, dtype):
    t, ref = make(rng.normal(size=(3, 4)), dtype, layout)
    index = ids(id_values)
    out = t[index]
    assert out._storage is not t._storage
    assert_close(out, ref[np.asarray(id_values, dtype=np.int64)], dtype)


def test_tensor_index_noncontiguous_ids_other_dtype_and_out_of_range(dtype):
    t, ref = make(rng.normal(size=(4, 2, 3)), dtype, "transposed")
    id_tensor, id_np = make([[0, 3], [-1, 1], [2, 2]], np.float64 if dtype == np.float32 else np.float32,
                            "transposed")
    assert_close(t.take_rows(id_tensor), ref[id_np.astype(np.int64)], dtype)
    bad = t[ids([1, 4, -5, 0])]
    with pytest.raises(IndexError, match=r"__getitem__: index (4|-5) is out of bounds for a dimension of size 4"):
        to_np(bad)  # raised by the first read after the launch (the device's error word, backend/checks.py)
    out = to_np(bad)  # the word was cleared: the gather itself gave NaN rows for the bad ids
    assert np.isnan(out[1:3]).all()
    np.testing.assert_allclose(out[[0, 3]], ref[[1, 0]], rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tensor_index_setitem_rows(layout, dtype):
    t, ref = make(rng.normal(size=(5, 3)), dtype, layout)
    ref = ref.copy()
    t[ids([4, 0, -2])] = 7.0
    ref[[4, 0, -2]] = 7.0
    rows = rng.normal(size=(2, 2, 3))
    t[ids([[1, 2], [1, 0]])] = cp.Tensor(rows, dtype=dtype)  # repeated id: the last value wins
    ref[np.array([[1, 2], [1, 0]])] = rows
    t[ids([3])] = cp.Tensor([1.0, 2.0, 3.0], dtype=dtype)
    ref[[3]] = [1.0, 2.0, 3.0]
    t[ids([[2], [0]])] = cp.Tensor([4.0, 5.0, 6.0], dtype=dtype)  # broadcast over 2-d ids
    ref[np.array([[2], [0]])] = [4.0, 5.0, 6.0]
    t[ids(-1)] = -3.0
    ref[-1] = -3.0
    t[ids([9, -9])] = 100.0  # out of range: skipped on the device, raised at the next read
    with pytest.raises(IndexError, match=r"__setitem__: index (9|-9) is out of bounds for a dimension of size 5"):
        t.numpy()
    assert_close(t, ref, dtype)


def test_index_add_source_aliasing_self(dtype):
    t, ref = make(rng.normal(size=(3, 2)), dtype)
    ref = ref.copy()
    t.index_add_(0, ids([1, 1, 0]), t)
    np.add.at(ref, [1, 1, 0], ref.copy())
    assert_close(t, ref, dtype)


# ---- index_select / gather ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_index_select(dim, layout, dtype):
    t, ref = make(rng.normal(size=(3, 4, 5)), dtype, layout)
    id_values = [2, -1, 0, 2]
    assert_close(t.index_select(dim, ids(id_values)), np.take(ref, id_values, axis=dim), dtype)
    assert_close(t.index_select(dim, ids(1)), np.take(ref, [1], axis=dim), dtype)


def _gather_ref(a, dim, index):
    out = np.empty(index.shape)
    for p in np.ndindex(*index.shape):
        q = list(p)
        q[dim] = int(index[p])
        out[p] = a[tuple(q)]
    return out


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gather(dim, layout, dtype):
    t, ref = make(rng.normal(size=(3, 4, 5)), dtype, layout)
    size = ref.shape[dim]
    index_shape = [2, 3, 4]
    index_shape[dim] = 6
    index_np = rng.integers(-size, size, size=index_shape).astype(np.float64)
    index, _ = make(index_np, dtype, layout)
    assert_close(t.gather(dim, index), _gather_ref(ref, dim, index_np % size), dtype)


@pytest.mark.parametrize("call", [
    lambda t: t.gather(0, ids([[0, 1, 0]])), lambda t: t.gather(1, ids([[0], [1], [0], [1]])),
    lambda t: t.index_select(0, ids([[0]])), lambda t: t.index_select(2, ids([0])),
    lambda t: t.gather(0, [0]), lambda t: cp.Tensor(1.0).index_select(0, ids([0])),
])
def test_gather_errors_before_launch(call):
    t = cp.Tensor(np.zeros((3, 2)))
    with no_launch(), pytest.raises((RuntimeError, TypeError)):
        call(t)


# ---- scatter_ / scatter_add_ / index_add_ ---------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_scatter_course_form(dim, layout, dtype):
    t, ref = make(rng.normal(size=(3, 4, 5)), dtype, layout)
    ref = ref.copy()
    reduced = list(ref.shape)
    size = reduced.pop(dim)
    index_np = rng.integers(-size, size, size=reduced).astype(np.float64)
    src_np = rng.normal(size=reduced)
    src, _ = make(src_np, dtype, layout)
    assert t.scatter_(dim, ids(index_np, dtype), src) is t
    for p in np.ndindex(*reduced):
        q = list(p)
        q.insert(dim % 3, int(index_np[p]) % size)
        ref[tuple(q)] = src_np[p]
    assert_close(t, ref, dtype)


def test_scatter_course_form_number_builds_one_hot(dtype):
    labels = [2, 0, 3]
    t = cp.Tensor(np.zeros((3, 4)), dtype=dtype).scatter_(1, ids(labels), 1.0)
    assert_close(t, np.eye(4)[labels], dtype)
    assert_close(ids(labels, dtype).one_hot(4), np.eye(4)[labels], dtype)


@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_pytorch_form(dim, dtype):
    t, ref = make(rng.normal(size=(4, 5)), dtype, "transposed")
    ref = ref.copy()
    index_np = np.array([[3, 1, 0], [0, 2, 4]] if dim == 1 else [[3, 1, 0], [2, 0, 1]], np.float64)
    src_np = rng.normal(size=(3, 4))  # larger than index: only its leading part is read
    t.scatter_(dim, ids(index_np), cp.Tensor(src_np, dtype=dtype))
    for p in np.ndindex(*index_np.shape):
        q = list(p)
        q[dim] = int(index_np[p])
        ref[tuple(q)] = src_np[p]
    assert_close(t, ref, dtype)
    t.scatter_(dim, ids([[0]]), -1.0)
    ref[0, 0] = -1.0
    assert_close(t, ref, dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_index_add_accumulates_repeated_ids(layout, dtype):
    t, ref = make(rng.normal(size=(5, 3)), dtype, layout)
    ref = ref.copy()
    id_values = [1, 3, 1, -1, 1, 0]
    src, src_np = make(rng.normal(size=(6, 3)), dtype, layout)
    assert t.index_add_(0, ids(id_values), src) is t
    np.add.at(ref, id_values, src_np)
    assert_close(t, ref, dtype)
    cols = rng.normal(size=(5, 2))
    t.index_add_(1, ids([2, 2]), cp.Tensor(cols, dtype=dtype), alpha=0.5)
    ref[:, 2] += 0.5 * cols.sum(axis=1)
    assert_close(t, ref, dtype)


def test_index_add_out_of_range_ids_are_skipped(dtype):
    t = cp.Tensor(np.zeros((2, 2)), dtype=dtype)
    t.index_add_(0, ids([0, 2, -3]), cp.Tensor(np.ones((3, 2)), dtype=dtype))
    with pytest.raises(IndexError, match=r"index_add_: index (2|-3) is out of bounds"):
        cp.synchronize()  # synchronize() reads the error word too
    assert_close(t, [[1, 1], [0, 0]], dtype)


@pytest.mark.parametrize("form", ["course", "pytorch"])
def test_scatter_add(form, dtype):
    t, ref = make(rng.normal(size=(3, 4)), dtype)
    ref = ref.copy()
    if form == "course":
        index_np, src_np = np.array([1, 1, 0, 2], np.float64), rng.normal(size=4)
        t.scatter_add_(0, ids(index_np), cp.Tensor(src_np, dtype=dtype))
        np.add.at(ref, (index_np.astype(int), np.arange(4)), src_np)
    else:
        index_np, src_np = np.array([[0, 0, 3], [1, 1, 1]], np.float64), rng.normal(size=(2, 3))
        t.scatter_add_(1, ids(index_np), cp.Tensor(src_np, dtype=dtype))
        np.add.at(ref, (np.array([[0, 0, 0], [1, 1, 1]]), index_np.astype(int)), src_np)
    assert_close(t, ref, dtype)


@pytest.mark.parametrize("call", [
    lambda t: t.scatter_(1, ids([0, 1]), 1.0), lambda t: t.scatter_(1, ids([0, 1, 2]), ids([1, 2])),
    lambda t: t.scatter_(0, ids([[[0]]]), 1.0), lambda t: t.scatter_(1, ids([[0], [1], [0], [1]]), 1.0),
    lambda t: t.scatter_(1, ids([[0, 1]]), ids([[1]])), lambda t: t.scatter_(1, ids([0, 1, 2]), "x"),
    lambda t: t.scatter_add_(1, ids([0, 1, 2]), 1.0), lambda t: t.index_add_(0, ids([0]), ids([[1, 2, 3]])),
    lambda t: t.index_add_(0, ids([[0]]), ids([[1, 2]])), lambda t: t.scatter_(2, ids([0, 1, 2]), 1.0),
])
def test_scatter_errors_before_launch(call):
    t = cp.Tensor(np.zeros((3, 2)))
    with no_launch(), pytest.raises((RuntimeError, TypeError)):
        call(t)
    assert_close(t, np.zeros((3, 2)))


# ---- masked_fill / one_hot ------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_masked_fill_broadcast_mask(layout, dtype):
    t, ref = make(rng.normal(size=(3, 4)), dtype, layout)
    mask_np = (rng.random(size=(1, 4)) > 0.5).astype(np.float64)
    mask = cp.Tensor(mask_np)  # float32 mask on any dtype
    assert_close(t.masked_fill(mask, -1e9), np.where(mask_np != 0, -1e9, ref), dtype, rtol=1e-6)
    assert_close(t.masked_fill(mask, cp.Tensor(3.0, dtype=dtype)), np.where(mask_np != 0, 3.0, ref), dtype)
    t.masked_fill_(mask, 0.0)
    assert_close(t, np.where(mask_np != 0, 0.0, ref), dtype)
    with pytest.raises(ShapeError):
        t.masked_fill(cp.Tensor(np.ones((2, 4))), 0.0)


def test_one_hot_shapes_and_bad_ids(dtype):
    index, index_np = make([[0, 2], [1, 1]], dtype, "transposed")
    assert_close(index.one_hot(3), np.eye(3)[index_np.astype(int)], dtype)
    bad = ids([1, 3, -1], dtype).one_hot(3)
    with pytest.raises(IndexError, match=r"one_hot: class value (3|-1) is not in \[0, num_classes = 3\)"):
        bad.numpy()  # found on the device, raised at the first read
    out = to_np(bad)  # the word is cleared: the rows of the bad ids are NaN
    assert np.isnan(out[1:]).all() and out[0].tolist() == [0, 1, 0]
    with pytest.raises(RuntimeError):
        index.one_hot(0)


@pytest.mark.parametrize("id_dtype", [cp.int32, cp.int64, np.float32])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_one_hot_checks_ids_on_the_device_without_a_read(id_dtype, layout):
    """PyTorch: ids in [0, num_classes); one outside, negative ones included, is reported by the kernel (no
    host read: a training step's one_hot reads nothing) and raises at the next read; num_classes=-1 (the
    default, as F.one_hot's) is the largest id + 1, one read as in PyTorch."""
    values = np.array([[3, 0, 1], [1, 4, 2]])
    t, _ = make(values, id_dtype, layout)
    for num_classes in (5, 7):
        got = t.one_hot(num_classes)
        assert got.dtype is np.dtype(id_dtype)
        np.testing.assert_array_equal(got.numpy(), np.eye(num_classes)[values])
    np.testing.assert_array_equal(t.one_hot().numpy(), np.eye(5)[values])
    np.testing.assert_array_equal(F.one_hot(t).numpy(), np.eye(5)[values])
    for bad_value, num_classes in ((-1, 5), (5, 5), (9, 4), (-7, 8)):
        b, _ = make(np.where(values == 1, bad_value, values), id_dtype, layout)
        before = cp.backend.stats()
        out = b.one_hot(num_classes)
        after = cp.backend.stats()
        assert after["d2h_count"] == before["d2h_count"] and after["launches"] > before["launches"]
        with pytest.raises(DeviceAssertError, match=rf"one_hot: class value {bad_value} is not in "
                                                    rf"\[0, num_classes = {num_classes}\)"):
            cp.synchronize()
        rows = to_np(out)[values == 1]
        assert np.isnan(rows).all() if id_dtype is np.float32 else (rows == 0).all()
    with pytest.raises(RuntimeError, match="empty tensor"):
        cp.tensor([], dtype=cp.int64).one_hot()
    with pytest.raises(RuntimeError, match="non-negative"):
        cp.tensor([-2, -1]).one_hot()
    with no_launch(), pytest.raises(RuntimeError, match="positive int or -1"):
        t.one_hot(-2)


# ---- cat / stack / broadcast ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cat(dim, layout, dtype):
    sizes = [2, 0, 3, 1]
    pieces, refs = [], []
    for s in sizes:
        shape = [2, 3, 4]
        shape[dim] = s
        t, r = make(rng.normal(size=shape), dtype, layout)
        pieces.append(t)
        refs.append(r)
    out = cat(pieces, dim)
    assert out.is_contiguous() and out.dtype == dtype
    assert_close(out, np.concatenate(refs, axis=dim), dtype)
    assert_close(cat(pieces[:1], dim), refs[0], dtype)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_stack(dim, layout, dtype):
    made = [make(rng.normal(size=(2, 3)), dtype, layout) for _ in range(3)]
    out = stack([t for t, _ in made], dim)
    assert_close(out, np.stack([r for _, r in made], axis=dim), dtype)
    empty = [cp.Tensor(np.zeros((0, 2)), dtype=dtype)] * 2
    assert stack(empty, dim).shape == list(np.stack([np.zeros((0, 2))] * 2, axis=dim).shape)


def test_cat_stack_mixed_dtypes_promote_and_keep_class():
    a = cp.Tensor([1.0, 2.0])
    b = cp.Tensor([3.0], dtype=np.float64)
    out = cat([a, b])
    assert out.dtype == np.float64 and isinstance(out, cp.Tensor)
    assert_close(out, [1, 2, 3], np.float64)
    assert stack([a, a.double()]).dtype == np.float64
    assert type(cat([cp.TensorBase([1.0])])) is cp.TensorBase


@pytest.mark.parametrize("call,exc,text", [
    (lambda a, b: cat([], 0), RuntimeError, "non-empty"),
    (lambda a, b: stack([], 0), RuntimeError, "non-empty"),
    (lambda a, b: cat([a, b], 0), ShapeError, "[2, 3]"),
    (lambda a, b: stack([a, a.T], 0), ShapeError, "[3, 2]"),
    (lambda a, b: cat([a, a], 2), IndexOutOfRange, "dim"),
    (lambda a, b: stack([a], 3), IndexOutOfRange, "dim"),
    (lambda a, b: cat([cp.Tensor(1.0)], 0), ShapeError, "0-d"),
    (lambda a, b: cat(a, 0), TypeError, "list"),
    (lambda a, b: cat([a, 1.0], 0), TypeError, "tensor"),
])
def test_cat_stack_errors_before_launch(call, exc, text):
    a, b = cp.Tensor(np.zeros((2, 3))), cp.Tensor(np.zeros((2, 4)))
    with no_launch(), pytest.raises(exc) as info:
        call(a, b)
    assert text in str(info.value)


def test_broadcast_tensors_are_views():
    a, b = cp.Tensor(np.arange(3.0)), cp.Tensor(np.arange(2.0).reshape(2, 1))
    with no_launch():
        x, y = broadcast_tensors(a, b)
        xs = broadcast([a, b])
    assert x.shape == y.shape == [2, 3] and isinstance(xs, list) and xs[1].shape == [2, 3]
    assert x._storage is a._storage and y._storage is b._storage
    assert_close(y, np.broadcast_to(np.arange(2.0).reshape(2, 1), (2, 3)))
    with pytest.raises(ShapeError):
        broadcast_tensors([a, cp.Tensor(np.zeros(4))])
