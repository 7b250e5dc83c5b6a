"""flip / roll / repeat / tile / repeat_interleave / tril / triu (ops/remap.py, cl_kernels/remap.cl) against
numpy: every layout, 0-dim and empty tensors, the function forms, finite-difference gradients, and errors
before any launch."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch

import clownpiece as cp
from clownpiece._layout import IndexOutOfRange, ShapeError
from clownpiece.autograd import gradcheck

rng = np.random.default_rng(5)
EXACT = dict(rtol=0, atol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_values(layout, dtype):
    t, a = make(rng.normal(size=(3, 4, 5)), dtype, layout)
    a = a.astype(dtype)
    cases = [
        (t.flip(0), np.flip(a, 0)), (t.flip(0, 2), np.flip(a, (0, 2))), (t.flip([-1]), np.flip(a, -1)),
        (cp.flip(t, (1,)), np.flip(a, 1)), (t.fliplr(), np.fliplr(a)), (t.flipud(), np.flipud(a)),
        (t.roll(2, 1), np.roll(a, 2, 1)), (t.roll(-7, -1), np.roll(a, -7, -1)), (t.roll(13), np.roll(a, 13)),
        (t.roll((1, -2), (0, 2)), np.roll(a, (1, -2), (0, 2))), (t.roll((1, 2), (1, 1)), np.roll(a, 3, 1)),
        (cp.roll(t, 1, 0), np.roll(a, 1, 0)),
        (t.repeat(2, 1, 3), np.tile(a, (2, 1, 3))), (t.repeat(2, 1, 1, 2), np.tile(a, (2, 1, 1, 2))),
        (t.repeat((1, 0, 1)), np.tile(a, (1, 0, 1))),
        (t.tile((2,)), np.tile(a, 2)), (t.tile(2, 1, 1, 1), np.tile(a, (2, 1, 1, 1))),
        (cp.tile(t, (3, 1)), np.tile(a, (3, 1))),
        (t.repeat_interleave(2), np.repeat(a, 2)), (t.repeat_interleave(3, dim=1), np.repeat(a, 3, 1)),
        (t.repeat_interleave(2, -1), np.repeat(a, 2, -1)),
        (t.repeat_interleave(cp.tensor([2, 0, 1]), 0), np.repeat(a, [2, 0, 1], 0)),
        (t.repeat_interleave(cp.tensor([2]), 1), np.repeat(a, 2, 1)),
        (cp.repeat_interleave(t, cp.tensor([1, 3, 0, 2]), dim=1, output_size=6), np.repeat(a, [1, 3, 0, 2], 1)),
        (t.tril(), np.tril(a)), (t.tril(1), np.tril(a, 1)), (t.tril(-2), np.tril(a, -2)),
        (t.triu(), np.triu(a)), (t.triu(2), np.triu(a, 2)), (cp.triu(t, -1), np.triu(a, -1)),
        (cp.tril(t, diagonal=9), a), (t.triu(9), np.zeros_like(a)),
    ]
    for got, ref in cases:
        assert got.is_contiguous()
        assert_close(got, ref, dtype, **EXACT)


def test_zero_dim_and_empty():
    x = cp.Tensor(2.0)
    assert x.flip().item() == 2.0 and x.roll(3).item() == 2.0 and x.roll(1, 0).item() == 2.0
    assert x.repeat(3).tolist() == [2.0, 2.0, 2.0] and x.repeat(()).item() == 2.0
    assert x.repeat_interleave(2).tolist() == [2.0, 2.0]
    e = cp.zeros(0, 3)
    assert e.flip(0).shape == [0, 3] and e.roll(1, 0).shape == [0, 3] and e.repeat(2, 2).shape == [0, 6]
    assert e.tril().shape == [0, 3] and e.repeat_interleave(2, 1).shape == [0, 6]
    assert e.repeat_interleave(cp.zeros(0, dtype=cp.int64), 0).shape == [0, 3]


def test_errors_before_launch():
    t = cp.Tensor(rng.normal(size=(3, 4)))
    with no_launch():
        with pytest.raises(IndexOutOfRange):
            t.flip(2)
        with pytest.raises(RuntimeError, match="twice"):
            t.flip(0, 0)
        with pytest.raises(RuntimeError, match="same length"):
            t.roll((1, 2), 0)
        with pytest.raises(RuntimeError, match="need dims"):
            t.roll((1, 2))
        with pytest.raises(IndexOutOfRange):
            t.roll(1, 3)
        with pytest.raises(RuntimeError, match="cannot be smaller"):
            t.repeat(2)
        with pytest.raises(RuntimeError, match="non-negative"):
            t.repeat(2, -1)
        with pytest.raises(RuntimeError, match="non-negative"):
            t.repeat_interleave(-1)
        with pytest.raises(IndexOutOfRange):
            t.repeat_interleave(2, dim=2)
        with pytest.raises(ShapeError, match="at least 2 dims"):
            cp.Tensor([1.0, 2.0]).tril()
        with pytest.raises(TypeError, match="diagonal"):
            t.triu(1.5)
        with pytest.raises(RuntimeError, match="1 or 4 elements"):
            t.repeat_interleave(cp.tensor([1, 2]), 1)
        with pytest.raises(RuntimeError, match="output_size"):
            t.repeat_interleave(2, 1, output_size=5)
    with pytest.raises(RuntimeError, match="non-negative"):
        t.repeat_interleave(cp.tensor([1, -1, 1]), 0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradients(layout):
    x, _ = make(rng.normal(size=(3, 4)), np.float64, layout)
    x.requires_grad_()
    counts = cp.tensor([2, 0, 3])
    for f in (lambda x: x.flip(0, 1), lambda x: x.roll((1, -1), (0, 1)), lambda x: x.roll(5),
              lambda x: x.repeat(2, 1, 3), lambda x: x.tile((2,)), lambda x: x.repeat_interleave(2, 1),
              lambda x: x.repeat_interleave(3), lambda x: x.repeat_interleave(counts, 0),
              lambda x: x.tril(1), lambda x: x.triu(-1), lambda x: x.fliplr()):
        assert gradcheck(f, [x])
    z = cp.Tensor(0.5, requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda z: z.repeat(2, 3) * z.flip(), [z])


@pytest.mark.parametrize("name", ["float16", "int32", "int64", "bool"])
def test_other_dtypes(name):
    a = (rng.integers(0, 2, size=(3, 4)).astype(bool) if name == "bool" else
         rng.integers(-50, 50, size=(3, 4)).astype(name))
    t = cp.tensor(a)
    for got, ref in ((t.flip(1), np.flip(a, 1)), (t.roll(1, 0), np.roll(a, 1, 0)),
                     (t.repeat(2, 1), np.tile(a, (2, 1))), (t.repeat_interleave(2, 1), np.repeat(a, 2, 1)),
                     (t.tril(), np.tril(a)), (t.triu(1), np.triu(a, 1)),
                     (t.repeat_interleave(cp.tensor([1, 0, 2]), 0), np.repeat(a, [1, 0, 2], 0))):
        assert got.dtype == a.dtype
        np.testing.assert_array_equal(got.numpy(), ref)
    with pytest.raises(TypeError, match="integer tensor"):
        t.repeat_interleave(cp.tensor([1.0, 0.0, 2.0]), 0)
