"""Tensor.norm / clownpiece.norm / linalg.vector_norm / linalg.norm (ops/linalg.py) and einsum
(clownpiece/linalg.py) against numpy float64, finite-difference gradients, the zero-vector gradient, and
errors before any launch."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch

import clownpiece as cp
from clownpiece._layout import ShapeError
from clownpiece.autograd import gradcheck

rng = np.random.default_rng(3)


def np_norm(a, p, dim, keepdim):
    axis = tuple(range(a.ndim)) if dim is None else (dim if isinstance(dim, tuple) else (dim,))
    b = np.abs(a)
    if p == np.inf:
        r = b.max(axis=axis, keepdims=keepdim)
    elif p == -np.inf:
        r = b.min(axis=axis, keepdims=keepdim)
    elif p == 0:
        r = (b != 0).sum(axis=axis, keepdims=keepdim).astype(np.float64)
    else:
        r = (b ** p).sum(axis=axis, keepdims=keepdim) ** (1.0 / p)
    return r


ORDERS = [1, 2, 3, 0.5, np.inf, -np.inf, 0]


@pytest.mark.parametrize("p", ORDERS + ["fro"], ids=str)
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_norm_values(p, dim, keepdim, layout, dtype):
    t, a = make(rng.normal(size=(3, 4, 5)), dtype, layout)
    a = a.astype(dtype).astype(np.float64)
    a_ref = np.where(np.abs(a) < 0.2, 0.0, a)  # some exact zeros for the 0-"norm"
    t = cp.Tensor(a_ref, dtype=dtype) if p == 0 else t
    ref = np_norm(a_ref if p == 0 else a, 2 if p == "fro" else p, dim, keepdim)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    assert_close(t.norm(p, dim, keepdim), ref, dtype, rtol=rtol)
    if p != "fro":
        assert_close(cp.linalg.vector_norm(t, p, dim, keepdim), ref, dtype, rtol=rtol)
    assert_close(cp.norm(t, p, dim=dim, keepdim=keepdim), ref, dtype, rtol=rtol)


def test_defaults_zero_dim_and_empty():
    a = rng.normal(size=(4, 6))
    t = cp.Tensor(a, dtype=np.float64)
    assert_close(t.norm(), np.linalg.norm(a))
    assert_close(cp.linalg.norm(t), np.linalg.norm(a))  # Frobenius
    assert_close(cp.linalg.norm(t, 1, dim=1), np.linalg.norm(a, 1, axis=1))
    assert_close(cp.linalg.vector_norm(t), np.linalg.norm(a.ravel()))
    assert_close(t.norm(dim=[]), np.linalg.norm(a))
    assert cp.Tensor(-3.0).norm().item() == 3.0
    assert cp.zeros(0).norm().item() == 0.0 and cp.zeros(0, 3).norm(1, dim=0).tolist() == [0.0, 0.0, 0.0]
    assert cp.Tensor([1.0, 2.0]).norm(dtype=np.float64).dtype == np.float64


def test_errors_before_launch():
    t = cp.Tensor(rng.normal(size=(3, 4)))
    with no_launch():
        with pytest.raises(ValueError, match="nuc"):
            t.norm("nuc")
        with pytest.raises(TypeError, match="ord must be a number"):
            cp.linalg.vector_norm(t, [2])
        with pytest.raises(NotImplementedError, match="matrix norm"):
            cp.linalg.norm(t, 2)
        with pytest.raises(TypeError, match="expected a tensor"):
            cp.linalg.vector_norm([1.0, 2.0])
        with pytest.raises(cp._layout.IndexOutOfRange):
            t.norm(2, 3)
        with pytest.raises(RuntimeError, match="empty"):
            cp.zeros(0, 3).norm(np.inf, dim=0)


@pytest.mark.parametrize("p", [1, 2, 3, 1.5, np.inf, -np.inf, "fro"], ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_norm_gradients(p, layout):
    x, _ = make(rng.normal(size=(3, 5)), np.float64, layout)
    x.requires_grad_()
    for dim, keepdim in ((None, False), (1, False), (0, True), ((0, 1), False)):
        assert gradcheck(lambda x: x.norm(p, dim, keepdim), [x])


def test_norm_gradient_of_zero_vector_is_zero():
    for p in (2, 3, 1.5):
        x = cp.zeros(4, dtype=np.float64, requires_grad=True)
        x.norm(p).backward()
        assert x.grad.tolist() == [0.0] * 4
    x = cp.Tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True, dtype=np.float64)
    x.norm(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0], [0.6, 0.8]])
    x = cp.Tensor([1.0, -3.0, 3.0], requires_grad=True, dtype=np.float64)
    x.norm(np.inf).backward()  # ties share the gradient
    np.testing.assert_allclose(x.grad.numpy(), [0.0, -0.5, 0.5])


EQUATIONS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 5)]), ("ij->ji", [(3, 4)]), ("ij->", [(3, 4)]),
    ("ii->i", [(4, 4)]), ("ii", [(4, 4)]), ("iij->j", [(3, 3, 2)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bij,jk->bik", [(2, 3, 4), (4, 5)]), ("...j,jk->...k", [(2, 3, 4), (4, 5)]), ("...ii->...i", [(2, 3, 3)]),
    ("ij,ij->", [(3, 4), (3, 4)]), ("ij,ij->ij", [(3, 4), (3, 4)]), ("i,j->ij", [(3,), (4,)]), ("i,i", [(5,), (5,)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("abc,cd,bd->a", [(2, 3, 4), (4, 5), (3, 5)]), ("i,i,i->", [(4,), (4,), (4,)]), ("Ab,bC->AC", [(2, 3), (3, 4)]),
    ("...,...->...", [(2, 3), (3,)]), ("ij,kj->ikj", [(2, 3), (4, 3)]),
    ("b i j , b j k -> b k i", [(2, 3, 4), (2, 4, 5)]),
]


@pytest.mark.parametrize("equation,shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_einsum(equation, shapes, dtype):
    arrays = [rng.normal(size=s) for s in shapes]
    tensors = [cp.Tensor(a, dtype=dtype) for a in arrays]
    arrays = [a.astype(dtype).astype(np.float64) for a in arrays]
    ref = np.einsum(equation.replace(" ", ""), *arrays)
    assert_close(cp.einsum(equation, *tensors), ref, dtype, rtol=1e-4 if dtype == np.float32 else 1e-10,
                 atol=1e-4 if dtype == np.float32 else 1e-10)
    assert_close(cp.einsum(equation, tensors), ref, dtype, rtol=1e-4, atol=1e-4)  # operands as one list
    leaves = [cp.Tensor(a, dtype=np.float64, requires_grad=True) for a in arrays]
    assert gradcheck(lambda *xs: cp.einsum(equation, *xs), leaves)


def test_einsum_non_contiguous_and_broadcast():
    x, a = make(rng.normal(size=(4, 3)), np.float64, "transposed")
    y, b = make(rng.normal(size=(3, 5)), np.float64, "sliced")
    assert_close(cp.einsum("ij,jk->ik", x, y), a @ b)
    ones = cp.Tensor(rng.normal(size=(1, 3)), dtype=np.float64)
    assert_close(cp.einsum("ij,kj->ik", ones, y.T), np.einsum("ij,kj->ik", ones.numpy(), b.T))


def test_einsum_errors():
    a, b = cp.zeros(2, 3), cp.zeros(4, 5)
    with no_launch():
        with pytest.raises(ShapeError, match="sizes 3 and 4"):
            cp.einsum("ij,jk->ik", a, b)
        with pytest.raises(ValueError, match="names 2 operands"):
            cp.einsum("ij,jk->ik", a)
        with pytest.raises(ShapeError, match="name 3 dims"):
            cp.einsum("ijk->i", a)
        with pytest.raises(ValueError, match="does not appear"):
            cp.einsum("ij->iz", a)
        with pytest.raises(ValueError, match="more than once"):
            cp.einsum("ij->ii", a)
        with pytest.raises(ValueError, match="invalid subscripts"):
            cp.einsum("i1->i", a)
        with pytest.raises(TypeError, match="string"):
            cp.einsum(a, b)
        with pytest.raises(ShapeError, match="sizes 2 and 3"):
            cp.einsum("ii->i", a)
