"""cumsum / cumprod / prod (ops/scan.py, cl_kernels/scan.cl) against numpy float64: every dim and layout,
long lines (the blocked path), 0-dim and empty tensors, zeros in products (the gradients do not divide),
finite-difference gradients, and errors before any launch."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch

import clownpiece as cp
from clownpiece._layout import IndexOutOfRange
from clownpiece.autograd import gradcheck
from clownpiece.ops import scan as scan_ops

rng = np.random.default_rng(11)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cumsum_cumprod(dim, layout, dtype):
    t, a = make(rng.uniform(0.5, 1.5, size=(3, 4, 5)), dtype, layout)
    assert_close(t.cumsum(dim), np.cumsum(a, dim), dtype)
    assert_close(t.cumprod(dim), np.cumprod(a, dim), dtype)
    assert_close(cp.cumsum(t, dim=dim), np.cumsum(a, dim), dtype)


@pytest.mark.parametrize("shape,dim", [((1 << 20,), 0), ((3, 5000), 1), ((5000, 3), 0), ((2, 3001, 2), 1)])
def test_long_lines(shape, dim):
    a = rng.normal(size=shape)
    t = cp.Tensor(a, dtype=np.float64)
    assert_close(t.cumsum(dim), np.cumsum(a, dim), rtol=1e-9, atol=1e-9)
    b = rng.uniform(0.999, 1.001, size=shape)
    tb = cp.Tensor(b, dtype=np.float64)
    assert_close(tb.cumprod(dim), np.cumprod(b, dim), rtol=1e-9)
    assert_close(tb.prod(dim), np.prod(b, dim), rtol=1e-9)
    assert_close(tb.prod(), np.prod(b), rtol=1e-9)


def test_one_line_split_in_blocks():
    """The blocked path (block_totals, then scan_blocks) at the smallest length that takes it: one line, so
    the strict pass covers it (test_long_lines is too large there)."""
    n = 4 * scan_ops._MIN_BLOCK + 37
    a = rng.normal(size=(n,))
    assert scan_ops._blocks(1, n) is not None
    assert_close(cp.Tensor(a, dtype=np.float64).cumsum(0), np.cumsum(a), rtol=1e-9, atol=1e-9)
    b = rng.uniform(0.999, 1.001, size=(n,))
    assert_close(cp.Tensor(b, dtype=np.float64).cumprod(0), np.cumprod(b), rtol=1e-9)
    x = leaf(rng.uniform(0.9, 1.1, size=(n,)))
    g = rng.normal(size=(n,))
    x.cumsum(0).backward(cp.Tensor(g, dtype=np.float64))
    np.testing.assert_allclose(x.grad.numpy(), np.cumsum(g[::-1])[::-1], rtol=1e-9)


def test_float32_cumsum_accuracy():
    a = rng.normal(size=1 << 20).astype(np.float32)
    got = cp.Tensor(a).cumsum(0).numpy().astype(np.float64)
    ref = np.cumsum(a.astype(np.float64))
    err = np.abs(got - ref).max()
    assert err <= 2 * np.abs(np.cumsum(a) - ref).max() + 1e-3  # no worse than numpy's float32 running sum


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_prod(dim, keepdim, layout, dtype):
    t, a = make(rng.uniform(0.5, 1.5, size=(4, 6)), dtype, layout)
    if dim is None:
        assert_close(t.prod(), np.prod(a), dtype)
        assert t.prod().shape == []
    else:
        assert_close(t.prod(dim, keepdim), np.prod(a, dim, keepdims=keepdim), dtype)
        assert_close(cp.prod(t, dim, keepdim=keepdim), np.prod(a, dim, keepdims=keepdim), dtype)


def test_zero_dim_empty_and_dtype():
    x = cp.Tensor(3.0)
    assert x.cumsum(0).item() == 3.0 and x.cumprod(-1).item() == 3.0 and x.prod().item() == 3.0
    assert x.prod(0).shape == []
    e = cp.zeros(0, 3)
    assert e.cumsum(0).shape == [0, 3] and e.cumprod(1).shape == [0, 3]
    assert e.prod(0).tolist() == [1.0, 1.0, 1.0] and e.prod(1).shape == [0]
    assert e.prod().item() == 1.0
    t = cp.Tensor([1.0, 2.0, 3.0])
    assert t.cumsum(0, dtype=np.float64).dtype == np.float64
    assert t.prod(dtype=np.float64).dtype == np.float64


def test_errors_before_launch():
    t = cp.Tensor(rng.normal(size=(3, 4)))
    with no_launch():
        with pytest.raises(IndexOutOfRange):
            t.cumsum(2)
        with pytest.raises(IndexOutOfRange):
            t.cumprod(-3)
        with pytest.raises(IndexOutOfRange):
            t.prod(5)
        with pytest.raises(TypeError):
            t.cumsum(None)


def leaf(a, layout="contiguous"):
    t, _ = make(a, np.float64, layout)
    return t.requires_grad_()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradients(layout):
    x = leaf(rng.normal(size=(4, 5)), layout)
    for f in (lambda x: x.cumsum(1), lambda x: x.cumsum(0), lambda x: x.cumprod(1), lambda x: x.cumprod(0),
              lambda x: x.prod(), lambda x: x.prod(0), lambda x: x.prod(1, keepdim=True)):
        assert gradcheck(f, [x])
    z = cp.Tensor(0.7, requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda z: z.cumprod(0) * z.prod(), [z])


def test_product_gradients_with_zeros():
    a = np.array([[2.0, 0.0, 3.0, 0.5], [0.0, 0.0, 2.0, 1.0], [1.5, 2.0, -1.0, 0.0]])
    x = leaf(a)
    assert gradcheck(lambda x: x.cumprod(1), [x])
    assert gradcheck(lambda x: x.prod(1), [x])
    x = cp.Tensor(a[0], requires_grad=True, dtype=np.float64)
    x.prod().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 3.0, 0.0, 0.0])  # only the zero's neighbours' product
    x = cp.Tensor(a[1], requires_grad=True, dtype=np.float64)
    x.prod().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 0.0, 0.0])


def test_long_line_gradients():
    x = leaf(rng.uniform(0.9, 1.1, size=(2, 3000)))
    g = rng.normal(size=(2, 3000))
    y = x.cumsum(1)
    y.backward(cp.Tensor(g, dtype=np.float64))
    np.testing.assert_allclose(x.grad.numpy(), np.cumsum(g[:, ::-1], 1)[:, ::-1], rtol=1e-9)


@pytest.mark.parametrize("name", ["float16", "int32", "int64", "bool"])
def test_other_dtypes(name):
    a = (rng.integers(0, 2, size=(3, 6)).astype(bool) if name == "bool" else
         rng.integers(-3, 4, size=(3, 6)).astype(name))
    t = cp.tensor(a)
    want = np.float16 if name == "float16" else np.int64  # PyTorch: integers and bool accumulate in int64
    f = a.astype(np.float64)
    for got, ref in ((t.cumsum(1), np.cumsum(f, 1)), (t.cumprod(0), np.cumprod(f, 0)), (t.prod(1), np.prod(f, 1)),
                     (t.prod(), np.prod(f))):
        assert got.dtype == want
        np.testing.assert_array_equal(got.numpy().astype(np.float64), ref.astype(want).astype(np.float64))
    assert t.cumsum(0, dtype=cp.float64).dtype == np.float64


def test_int32_accumulates_in_int64_and_dtype_overrides():
    """PyTorch: without dtype= integer and bool inputs accumulate and return int64, so int32 running sums and
    products pass 2^31 exactly; dtype= converts the input first and returns that dtype (int32 wraps as an
    int32 accumulation would; the reference wraps the exact result modulo 2^32)."""
    a = np.array([[2 ** 31 - 1, 3, -2], [2, -5, 2 ** 10], [1, 7, 3]], np.int32)  # products < 2^53: exact refs
    t, f = cp.tensor(a), a.astype(np.float64)
    exact = ((t.cumsum(0), np.cumsum(f, 0)), (t.cumprod(0), np.cumprod(f, 0)), (t.prod(0), np.prod(f, 0)),
             (t.prod(), np.prod(f)), (t.sum(0), f.sum(0)))
    for got, ref in exact:
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got.numpy().astype(np.float64), ref)

    def wrapped(ref):
        w = np.mod(ref, 2.0 ** 32)
        return np.where(w >= 2.0 ** 31, w - 2.0 ** 32, w)
    for got, ref in ((t.cumsum(0, dtype=cp.int32), np.cumsum(f, 0)), (t.cumprod(0, dtype=cp.int32), np.cumprod(f, 0)),
                     (t.prod(0, dtype=cp.int32), np.prod(f, 0)), (t.sum(0, dtype=cp.int32), f.sum(0))):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got.numpy().astype(np.float64), wrapped(ref))
    b = cp.tensor([[True, False], [True, True]])
    assert b.cumsum(1).dtype == np.int64 and b.cumsum(1).tolist() == [[1, 1], [1, 2]]
    assert b.cumsum(0, dtype=cp.bool).tolist() == [[True, False], [True, True]]  # bool sums saturate, as torch
    assert b.prod(1, dtype=cp.float16).dtype == np.float16 and b.prod(1, dtype=cp.float16).tolist() == [0.0, 1.0]
    wide = t.cumsum(1, dtype=cp.float64)
    assert wide.dtype == np.float64
    np.testing.assert_array_equal(wide.numpy(), np.cumsum(f, 1))
