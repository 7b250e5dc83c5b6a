"""Factories: values against numpy, shape argument forms, dtype, requires_grad, class-method forms, errors."""
import numpy as np
import pytest
from conftest import no_launch

import clownpiece as cp
from clownpiece import backend, factories as F
from clownpiece.tensor import Tensor, TensorBase


def values(t):
    return np.asarray(t.numpy(), np.float64)


@pytest.mark.parametrize("args, shape", [((2, 3), (2, 3)), (((2, 3),), (2, 3)), (([2, 3],), (2, 3)),
                                         (([],), ()), (((),), ()), ((4,), (4,)), ((0, 3), (0, 3)),
                                         ((np.int64(2), 1), (2, 1))])
@pytest.mark.parametrize("name, fill", [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_ones_shape_forms(name, fill, args, shape, dtype):
    t = getattr(F, name)(*args, dtype=dtype)
    assert type(t) is Tensor and t.shape == list(shape) and t.dtype == dtype and not t.requires_grad
    np.testing.assert_array_equal(values(t), np.full(shape, fill))


def test_full_and_empty(dtype):
    t = F.full((2, 3), -1.5, dtype=dtype)
    np.testing.assert_array_equal(values(t), np.full((2, 3), -1.5))
    assert F.full(4, 2).shape == [4] and F.full([], 3.0).item() == 3.0
    with no_launch():
        e = F.empty(3, 5, dtype=dtype)
    assert e.shape == [3, 5] and e.dtype == dtype


def test_default_dtype_is_float32():
    for t in (F.zeros(2), F.ones(2), F.empty(2), F.rand(2), F.randn(2), F.arange(3.0), F.arange(0, 1, 0.5),
              F.linspace(0, 1, 3), F.eye(2), F.full([2], 1.0), F.tensor([1.0, 2]), F.range(1, 3), Tensor([1, 2])):
        assert t.dtype == np.float32


def test_integer_and_bool_data_infer_as_pytorch():
    # docs/api.md, dtypes: ints give int64 and bools bool where the data decides (tensor, arange, full)
    for t in (F.arange(3), F.full([2], 1), F.tensor([1, 2]), F.tensor(3), F.randint(0, 5, (2,))):
        assert t.dtype == np.int64
    assert F.tensor([True, False]).dtype == np.bool_ and F.full([2], True).dtype == np.bool_
    assert F.tensor([True, 2]).dtype == np.int64  # a mix promotes
    assert F.arange(3).tolist() == [0, 1, 2] and F.full([2], 7).tolist() == [7, 7]


def test_fills_are_single_launches(dtype):
    for make in (lambda: F.zeros(100, dtype=dtype), lambda: F.full([100], 2.0, dtype=dtype),
                 lambda: F.randn(100, dtype=dtype), lambda: F.arange(100, dtype=dtype),
                 lambda: F.linspace(0, 1, 100, dtype=dtype), lambda: F.eye(10, dtype=dtype)):
        before = backend.stats()["launches"]
        make()
        assert backend.stats()["launches"] - before == 1


def test_rand_randn(dtype):
    F.manual_seed(0)
    u = values(F.rand(200, 50, dtype=dtype))
    assert u.shape == (200, 50) and u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    n = values(F.randn([200, 50], dtype=dtype))
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05
    F.manual_seed(0)
    np.testing.assert_array_equal(values(F.rand(200, 50, dtype=dtype)), u)


def test_like_factories(dtype):
    src = cp.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, dtype=dtype).transpose(0, 1)
    for name, fill in (("zeros_like", 0.0), ("ones_like", 1.0)):
        t = getattr(F, name)(src)
        assert t.shape == [3, 2] and t.dtype == dtype and not t.requires_grad and t.is_contiguous()
        np.testing.assert_array_equal(values(t), np.full((3, 2), fill))
    for name in ("empty_like", "rand_like", "randn_like"):
        t = getattr(F, name)(src)
        assert t.shape == [3, 2] and t.dtype == dtype and not t.requires_grad
    np.testing.assert_array_equal(values(F.full_like(src, 4.0)), np.full((3, 2), 4.0))
    assert F.zeros_like(src, dtype=np.float64).dtype == np.float64
    assert F.ones_like(src, requires_grad=True).requires_grad


@pytest.mark.parametrize("args, ref", [
    ((2, 6), np.arange(2, 6)), ((2, 10, 3), np.arange(2, 10, 3)), ((5,), np.arange(5)),
    ((0, 1, 0.1), np.arange(0, 1, 0.1)), ((5, 0, -1.5), np.arange(5, 0, -1.5)), ((0,), np.arange(0)),
    ((3, 3), np.arange(3, 3)), ((5, 2), np.arange(5, 2)), ((-1.5, 2.5), np.arange(-1.5, 2.5)),
])
def test_arange(args, ref, dtype):
    t = F.arange(*args, dtype=dtype)
    assert t.shape == [len(ref)]
    np.testing.assert_allclose(values(t), ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args, ref", [
    ((2, 6), [2, 3, 4, 5, 6]), ((2, 10, 3), [2, 5, 8]), ((0, 1, 0.25), [0, 0.25, 0.5, 0.75, 1]),
    ((3, 0, -1), [3, 2, 1, 0]), ((2, 1), []),
])
def test_range_is_inclusive(args, ref, dtype):
    t = F.range(*args, dtype=dtype)
    assert t.shape == [len(ref)]
    np.testing.assert_allclose(values(t), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("args", [(1, 3, 3), (-1, 1, 5), (0, 1, 1), (2, -3, 7), (0, 1, 100), (-5, 5, 2)])
def test_linspace(args, dtype):
    t = F.linspace(*args, dtype=dtype)
    ref = np.linspace(*args)
    assert t.shape == [args[2]]
    np.testing.assert_allclose(values(t), ref, rtol=1e-6, atol=1e-6)
    assert values(t)[0] == np.float64(dtype.type(args[0]))
    if args[2] > 1:
        assert values(t)[-1] == np.float64(dtype.type(args[1]))  # both ends exact


@pytest.mark.parametrize("n, m", [(3, None), (2, 4), (4, 2), (1, 1), (0, 3)])
def test_eye(n, m, dtype):
    np.testing.assert_array_equal(values(F.eye(n, m, dtype=dtype)), np.eye(n, m))


def test_tensor_and_from_numpy(dtype):
    t = F.tensor([[1, 2], [3, 4]], dtype=dtype, requires_grad=True)
    assert type(t) is Tensor and t.requires_grad and t.dtype == dtype
    np.testing.assert_array_equal(values(t), [[1, 2], [3, 4]])
    assert F.tensor(3).shape == [] and F.tensor(3).item() == 3.0
    copy = F.tensor(t.transpose(0, 1))  # a copy, not a view, and not tracked
    assert not copy.requires_grad and copy.dtype == dtype
    np.testing.assert_array_equal(values(copy), [[1, 3], [2, 4]])
    t.detach().fill_(0.0)
    np.testing.assert_array_equal(values(copy), [[1, 3], [2, 4]])
    arr = np.arange(6, dtype=dtype).reshape(3, 2)
    a = F.from_numpy(arr)
    assert a.dtype == dtype and a.shape == [3, 2]
    np.testing.assert_array_equal(values(a), arr)
    for np_type in (np.int64, np.int32, np.bool_, np.float16):  # numpy data keeps its dtype (PyTorch)
        assert F.from_numpy(np.zeros(3, np_type)).dtype == np_type and F.tensor(np.zeros(3, np_type)).dtype == np_type
    assert F.from_numpy(np.arange(3, dtype=np.uint8)).dtype == np.int32  # no uint8: widened to hold every value


def test_requires_grad_keyword():
    for make in (lambda **k: F.zeros(2, **k), lambda **k: F.randn(2, **k), lambda **k: F.arange(3.0, **k),
                 lambda **k: F.linspace(0, 1, 2, **k), lambda **k: F.eye(2, **k), lambda **k: F.full([2], 1.0, **k)):
        assert make(requires_grad=True).requires_grad
        assert not make().requires_grad
    # only floating tensors can require grad (PyTorch's error), checked before anything launches
    for make in (lambda: F.arange(3, requires_grad=True), lambda: F.full([2], 1, requires_grad=True),
                 lambda: F.zeros(2, dtype=np.int64, requires_grad=True), lambda: F.tensor([True], requires_grad=True),
                 lambda: Tensor([1], dtype=np.int32, requires_grad=True)):
        with no_launch(), pytest.raises(RuntimeError, match="floating point"):
            make()


def test_class_method_forms(dtype):
    t = Tensor.zeros((3, 4), dtype=dtype)
    assert type(t) is Tensor and t.shape == [3, 4]
    assert type(Tensor.empty(5, 2)) is Tensor and Tensor.empty(5, 2).shape == [5, 2]
    b = TensorBase.ones(2, 2)
    assert type(b) is TensorBase
    np.testing.assert_array_equal(values(b), np.ones((2, 2)))
    assert type(TensorBase.randn_like(t)) is TensorBase and type(Tensor.randn_like(b)) is Tensor
    assert Tensor.full([2], 3.0).tolist() == [3.0, 3.0]
    with pytest.raises(TypeError, match="requires_grad"):
        TensorBase.zeros(2, requires_grad=True)


def test_class_method_stack_cat_broadcast():
    a, b = Tensor([1.0, 2.0]), Tensor([3.0, 4.0])
    np.testing.assert_array_equal(values(Tensor.stack([a, b], dim=1)), [[1, 3], [2, 4]])
    np.testing.assert_array_equal(values(Tensor.cat([a, b], dim=0)), [1, 2, 3, 4])
    x, y = Tensor.broadcast(Tensor([[1.0], [2.0]]), a)
    assert x.shape == y.shape == [2, 2]
    assert [t.shape for t in Tensor.broadcast([a, Tensor(5.0)])] == [[2], [2]]


@pytest.mark.parametrize("call, exc", [
    (lambda: F.zeros(-1, 2), ValueError), (lambda: F.ones([2, -3]), RuntimeError),
    (lambda: F.zeros(2.5), TypeError), (lambda: F.empty("3"), TypeError), (lambda: F.randn(2, None), TypeError),
    (lambda: F.full([2], "x"), TypeError), (lambda: F.arange(0, 5, 0), ValueError),
    (lambda: F.range(0, 5, 0), ValueError), (lambda: F.linspace(0, 1, 0), ValueError),
    (lambda: F.linspace(0, 1, 2.5), ValueError), (lambda: F.eye(-2), ValueError),
    (lambda: F.zeros(2, dtype=np.uint8), TypeError), (lambda: F.zeros(2, dtype=np.complex64), TypeError),
    (lambda: F.zeros_like([1, 2]), TypeError),
    (lambda: F.from_numpy([1, 2]), TypeError),
])
def test_errors_before_launch(call, exc):
    with no_launch(), pytest.raises(exc):
        call()
