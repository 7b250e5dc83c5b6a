"""The week-1 API (clownpiece.tensor_impl): constructors, element access through views, method quirks,
free functions and the top-level `tensor_impl` shim."""
import copy
import importlib
import os
import pickle
import sys

import numpy as np
import pytest
from conftest import make

from clownpiece import tensor_impl as TI
from clownpiece.tensor_impl import TensorBaseImpl
from clownpiece.utils_ import ceil_div, wrap_tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def values(t):
    assert isinstance(t, TensorBaseImpl), f"expected a TensorBaseImpl, got {type(t).__name__}"
    return np.asarray(t.numpy(), np.float64)


def impl(arr, dtype=np.float32, layout="contiguous"):
    return make(arr, dtype, layout, cls=TensorBaseImpl)


# ---- the module as course code imports it -----------------------------------------------------------------
def test_top_level_shim_is_the_same_module():
    sys.path.append(REPO_ROOT)  # course code appends the repository root
    try:
        mod = importlib.import_module("tensor_impl")
    finally:
        sys.path.remove(REPO_ROOT)
    assert mod is TI and mod.TensorBaseImpl is TensorBaseImpl
    mod.Tensor = mod.TensorBaseImpl  # what the course's grader does
    try:
        assert isinstance(mod.Tensor([1, 2]), TensorBaseImpl)
    finally:
        del mod.Tensor


# ---- constructors ------------------------------------------------------------------------------------------
def test_constructor_data_forms(dtype):
    assert TensorBaseImpl().shape == [0] and TensorBaseImpl().numel() == 0
    s = TensorBaseImpl(42, dtype=dtype)
    assert s.shape == [] and s.item() == 42.0 and s.dtype == dtype
    nested = [[[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]]
    np.testing.assert_array_equal(values(TensorBaseImpl(nested, dtype=dtype)), np.array(nested))
    assert TensorBaseImpl([2, 3]).shape == [2]  # a list alone is data, not a shape


def test_constructor_shape_forms(dtype):
    np.testing.assert_array_equal(values(TensorBaseImpl((3,), 0.5, dtype=dtype)), [0.5] * 3)
    np.testing.assert_array_equal(values(TensorBaseImpl([2, 2], -1)), np.full((2, 2), -1.0))
    counter = iter(range(100))
    gen = TensorBaseImpl((2, 3), lambda: next(counter), dtype=dtype)
    np.testing.assert_array_equal(values(gen), np.arange(6).reshape(2, 3))
    flat = TensorBaseImpl((3, 2), [1, 2, 3, 4, 5, 6], dtype=dtype)
    np.testing.assert_array_equal(values(flat), np.arange(1, 7).reshape(3, 2))
    assert TensorBaseImpl((), 7.0).shape == [] and TensorBaseImpl((0, 4), 1.0).shape == [0, 4]


def test_constructor_raw_view_shares_storage(dtype):
    base = TensorBaseImpl(list(range(12)), dtype=dtype)
    view = TensorBaseImpl((3, 2), (1, 4), 1, base)  # column-major 3x2 window starting at element 1
    np.testing.assert_array_equal(values(view), np.arange(12)[1:].reshape(-1)[np.array([[0, 4], [1, 5], [2, 6]])])
    assert view.dtype == dtype and not view.is_contiguous()
    view.change_data_at(0, 100)
    assert base.data_at(1) == 100.0
    from_list = TensorBaseImpl((2, 2), (2, 1), 2, [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(values(from_list), [[2, 3], [4, 5]])


def test_constructor_copy_is_shallow(dtype):
    a = TensorBaseImpl([[1, 2, 3], [4, 5, 6]], dtype=dtype)
    b = TensorBaseImpl(a)
    b.change_data_at(0, -1)
    assert a.data_at(0) == -1.0 and type(b) is TensorBaseImpl


@pytest.mark.parametrize("args, exc", [
    (((2, 3), [1, 2, 3]), RuntimeError), (((2, 3), "x"), TypeError), (((-1, 2), 0.0), ValueError),
    (((2, 2), (2, 1), 4, [0, 1, 2, 3]), IndexError), (((2,), (1, 1), 0, [0, 1]), RuntimeError),
    ((1, 2, 3), TypeError), (((2.5,), 1.0), TypeError),
])
def test_constructor_errors(args, exc):
    with pytest.raises(exc):
        TensorBaseImpl(*args)


# ---- element access ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_data_at_and_change_data_at_through_views(layout, dtype):
    ref = np.arange(12.0).reshape(3, 4)
    t, _ = impl(ref, dtype, layout)
    flat = ref.reshape(-1)
    assert [t.data_at(i) for i in range(12)] == list(flat)
    assert t.data_at(-1) == flat[-1]
    t.change_data_at(5, 99.5)
    t.change_data_at(-1, -3)
    expected = ref.copy()
    expected[1, 1], expected[2, 3] = 99.5, -3
    np.testing.assert_array_equal(values(t), expected)
    with pytest.raises(IndexError):
        t.data_at(12)
    with pytest.raises(IndexError):
        t.change_data_at(-13, 0)


def test_change_data_at_is_visible_in_the_base(dtype):
    base = TensorBaseImpl(np.zeros((3, 4)), dtype=dtype)
    view = base.transpose(0, 1).narrow(0, 1, 2)  # [2, 3] view of columns 1..2
    view.change_data_at(4, 7)  # row 1 of the view = column 2, element 1 -> base[1, 2]
    expected = np.zeros((3, 4))
    expected[1, 2] = 7
    np.testing.assert_array_equal(values(base), expected)


# ---- methods -----------------------------------------------------------------------------------------------
def test_raw_ops_stay_tensor_base_impl(dtype):
    a, ref = impl(np.arange(6.0).reshape(2, 3) + 1, dtype)
    for r in (a + 1, 2 - a, a * a, -a, abs(a), a.exp(), a == a, a.reshape(3, 2), a.transpose(0, 1),
              a[0], a.clone(), a.contiguous(), a.sum(1), a.max(1)[1], a.softmax(0), a @ a.T, a.unsqueeze(0)):
        assert type(r) is TensorBaseImpl
    np.testing.assert_allclose(values(np.exp(a)), np.exp(ref), rtol=1e-6)


def test_numpy_ufuncs_on_impl_tensors(dtype):
    # the course's planar_utils.sigmoid: 1 / (1 + np.exp(-x)) on a TensorBaseImpl
    x, ref = impl(np.linspace(-3, 3, 7), dtype)
    s = 1 / (1 + np.exp(-x))
    assert type(s) is TensorBaseImpl
    np.testing.assert_allclose(values(s), 1 / (1 + np.exp(-ref)), rtol=1e-6)


def test_T_swaps_dims_zero_and_one(dtype):
    ref = np.arange(24.0).reshape(2, 3, 4)
    t, _ = impl(ref, dtype)
    np.testing.assert_array_equal(values(t.T), np.swapaxes(ref, 0, 1))
    np.testing.assert_array_equal(values(t[0].T), ref[0].T)
    np.testing.assert_array_equal(values(t[0, 0].T), ref[0, 0])


def test_split_method_takes_dim_first(dtype):
    ref = np.arange(14.0).reshape(2, 7)
    t, _ = impl(ref, dtype, "transposed")
    parts = t.split(1, 3)
    assert [p.shape for p in parts] == [[2, 3], [2, 3], [2, 1]]
    for p, r in zip(parts, np.split(ref, [3, 6], axis=1)):
        np.testing.assert_array_equal(values(p), r)
    assert [p.shape for p in t.split(1, [2, 5])] == [[2, 2], [2, 5]]
    assert [p.shape for p in t.chunk(3, 1)] == [[2, 3], [2, 3], [2, 1]]  # chunk keeps torch's order


def test_reshape_view_varargs_and_copy(dtype):
    t, ref = impl(np.arange(8.0).reshape(2, 4), dtype)
    assert t.reshape(4, 2).shape == [4, 2] and t.reshape((4, 2)).shape == [4, 2] and t.reshape(-1,).shape == [8]
    assert t.view(2, -1).shape == [2, 4] and t.view([8]).shape == [8]
    shared = t.reshape(8)
    copied = t.reshape(8, copy=True)
    t.change_data_at(0, 50)
    assert shared.data_at(0) == 50.0 and copied.data_at(0) == 0.0


def test_copy_deepcopy_and_pickle(dtype):
    t = TensorBaseImpl([[1, 2], [3, 4]], dtype=dtype)
    for c in (copy.copy(t), copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert type(c) is TensorBaseImpl and c.dtype == dtype
        np.testing.assert_array_equal(values(c), [[1, 2], [3, 4]])
        c.change_data_at(0, 9)
        assert t.data_at(0) == 1.0


# ---- free functions ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, ref", [
    (lambda: TI.arange(2, 6), [2, 3, 4, 5]), (lambda: TI.arange(2, 10, 3), [2, 5, 8]),
    (lambda: TI.range(2, 6), [2, 3, 4, 5, 6]), (lambda: TI.range(2, 10, 3), [2, 5, 8]),
    (lambda: TI.linspace(1, 3, 3), [1, 2, 3]), (lambda: TI.linspace(-1, 1, 5), [-1, -0.5, 0, 0.5, 1]),
    (lambda: TI.arange(4), [0, 1, 2, 3]), (lambda: TI.arange(1, 0, -0.25), [1, 0.75, 0.5, 0.25]),
])
def test_graded_sequences(call, ref):
    t = call()
    assert t.shape == [len(ref)]
    np.testing.assert_allclose(values(t), ref, atol=1e-7)


def test_factory_functions(dtype):
    assert values(TI.ones([2, 3], dtype=dtype)).tolist() == np.ones((2, 3)).tolist()
    assert values(TI.zeros((1, 2, 3, 4, 5))).shape == (1, 2, 3, 4, 5)
    assert TI.randn([4]).shape == [4] and TI.empty([2, 3]).shape == [2, 3]
    ref = TI.zeros([2, 2], dtype=dtype)
    np.testing.assert_array_equal(values(TI.ones_like(ref)), np.ones((2, 2)))
    np.testing.assert_array_equal(values(TI.zeros_like(TI.ones([2, 1]))), np.zeros((2, 1)))
    for t in (TI.randn_like(ref), TI.empty_like(ref)):
        assert type(t) is TensorBaseImpl and t.shape == [2, 2] and t.dtype == dtype
    assert type(TensorBaseImpl.zeros(2, 2)) is TensorBaseImpl and type(TensorBaseImpl.randn_like(ref)) is TensorBaseImpl
    single = TI.to_singleton_tensor(2.5, 3)
    assert single.shape == [1, 1, 1] and single.item() == 2.5 and TI.to_singleton_tensor(1.0, 0).shape == []
    with pytest.raises(ValueError):
        TI.to_singleton_tensor(1.0, -1)


def test_unary_and_scalar_free_functions(dtype):
    a, ref = impl(np.array([[-1.5, 0.0], [0.5, 2.0]]), dtype)
    with np.errstate(all="ignore"):
        for name in ("sign", "sin", "cos", "tanh", "exp", "log", "sqrt"):
            np.testing.assert_allclose(values(getattr(TI, name)(a)), getattr(np, name)(ref), rtol=1e-6, atol=1e-7)
    assert TI.numel(a) == 4 and TI.numel(TensorBaseImpl(42)) == 1
    np.testing.assert_array_equal(values(TI.clamp(a, -1, 1)), np.clip(ref, -1, 1))
    np.testing.assert_allclose(values(TI.pow(a, 2)), ref ** 2, rtol=1e-6)


def test_dot_and_reductions(dtype):
    a, ra = impl(np.arange(6.0).reshape(2, 3), dtype)
    b, rb = impl(np.arange(12.0).reshape(3, 4) - 5, dtype, "transposed")
    np.testing.assert_allclose(values(TI.dot(a, b)), ra @ rb, rtol=1e-6)
    np.testing.assert_allclose(values(TI.dot(a[0], a[1])), ra[0] @ ra[1], rtol=1e-6)
    np.testing.assert_array_equal(values(TI.sum(a, dim=1, keepdims=True)), ra.sum(1, keepdims=True))
    np.testing.assert_array_equal(values(TI.sum(a, 0)), ra.sum(0))
    vals, idx = TI.max(b, 0)
    np.testing.assert_array_equal(values(vals), rb.max(0))
    np.testing.assert_array_equal(values(idx), rb.argmax(0))
    sm = np.exp(ra) / np.exp(ra).sum(1, keepdims=True)
    np.testing.assert_allclose(values(TI.softmax(a, 1)), sm, rtol=1e-5)


def test_shape_free_functions(dtype):
    ref = np.arange(24.0).reshape(2, 3, 4)
    a, _ = impl(ref, dtype)
    np.testing.assert_array_equal(values(TI.permute(a, (2, 0, 1))), ref.transpose(2, 0, 1))
    np.testing.assert_array_equal(values(TI.transpose(a, dim0=0, dim1=2)), np.swapaxes(ref, 0, 2))
    n = TI.narrow(a, 1, 1, 2)
    c = TI.narrow(a, 1, 1, 2, copy=True)
    np.testing.assert_array_equal(values(c), ref[:, 1:3])
    a.change_data_at(4, -1)  # element [0, 1, 0]: inside both narrows
    assert n.data_at(0) == -1.0 and c.data_at(0) == 4.0
    ref[0, 1, 0] = -1
    assert [p.shape for p in TI.chunk(a, 2, 2)] == [[2, 3, 2], [2, 3, 2]]
    pieces = TI.split(a, [1, 2], 1)
    np.testing.assert_array_equal(values(pieces[1]), ref[:, 1:])
    assert [p.shape for p in TI.split(a, 3, dim=2)] == [[2, 3, 3], [2, 3, 1]]
    assert TI.squeeze(TI.unsqueeze(a, 1), 1).shape == [2, 3, 4] and TI.unsqueeze(a, -1).shape == [2, 3, 4, 1]
    np.testing.assert_array_equal(values(TI.broadcast_to(a[:, :1], (2, 3, 4))), np.broadcast_to(ref[:, :1], (2, 3, 4)))


def test_stack_cat_broadcast_tensors(dtype):
    a, b = TensorBaseImpl([1, 2, 3], dtype=dtype), TensorBaseImpl([4, 5, 6], dtype=dtype)
    np.testing.assert_array_equal(values(TI.stack([a, b], 1)), [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(values(TI.cat([a, b], 0)), [1, 2, 3, 4, 5, 6])
    x, y = TI.broadcast_tensors(TensorBaseImpl([[1], [2]]), TensorBaseImpl([[10, 20, 30]]))
    np.testing.assert_array_equal(values(x), [[1, 1, 1], [2, 2, 2]])
    np.testing.assert_array_equal(values(y), [[10, 20, 30]] * 2)
    assert [t.shape for t in TI.broadcast_tensors([a, TensorBaseImpl(7)])] == [[3], [3]]
    with pytest.raises(RuntimeError):
        TI.broadcast_tensors(TensorBaseImpl(np.zeros((2, 3))), TensorBaseImpl(np.zeros((2, 4))))


def test_utils():
    assert wrap_tuple([1, 2]) == (1, 2) and wrap_tuple((3,)) == (3,) and wrap_tuple(5) == (5,)
    assert ceil_div(7, 2) == 4 and ceil_div(6, 3) == 2 and ceil_div(0, 4) == 0 and ceil_div(5, 0) == 0
