"""Pooling: max/avg pooling 1-D and 2-D (padding, dilation, ceil_mode, count_include_pad, divisor_override,
return_indices, unbatched inputs) and adaptive average/max pooling, against numpy float64 loops written from
PyTorch's documented rules; gradients by finite differences (float64); modules; errors before launch."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck
from clownpiece.nn import functional as F

rng = np.random.default_rng(29)
f64 = np.float64


def two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(n, k, s, p, d, ceil):
    span = n + 2 * p - d * (k - 1) - 1
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p:  # the last window must start inside the input or its left padding
        o -= 1
    return o


def np_max_pool(x, k, s=None, p=0, d=1, ceil=False):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = two(k), two(s or k), two(p), two(d)
    n, c, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph, dh, ceil), out_size(w, kw, sw, pw, dw, ceil)
    y, idx = np.full((n, c, oh, ow), -np.inf), np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    r, q = i * sh - ph + a * dh, j * sw - pw + b * dw
                    if 0 <= r < h and 0 <= q < w:
                        better = x[:, :, r, q] > y[:, :, i, j]
                        y[:, :, i, j] = np.where(better, x[:, :, r, q], y[:, :, i, j])
                        idx[:, :, i, j] = np.where(better, r * w + q, idx[:, :, i, j])
    return y, idx


def np_avg_pool(x, k, s=None, p=0, ceil=False, include_pad=True, divisor=None):
    (kh, kw), (sh, sw), (ph, pw) = two(k), two(s or k), two(p)
    n, c, h, w = x.shape
    oh, ow = out_size(h, kh, sh, ph, 1, ceil), out_size(w, kw, sw, pw, 1, ceil)
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)  # the window within the padded input
            padded = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            total = x[:, :, h0:h1, w0:w1].sum((2, 3))
            y[:, :, i, j] = total / (divisor or (padded if include_pad else (h1 - h0) * (w1 - w0)))
    return y


MAX_CASES = [(2, None, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 1, 1, True), ((2, 3), (1, 2), (1, 1), 1, True),
             (2, 1, 0, 2, False), (3, 2, 1, (2, 1), True)]


@pytest.mark.parametrize("k,s,p,d,ceil", MAX_CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_pool2d(k, s, p, d, ceil, layout, dtype):
    t, x = make(rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) * 0.1, dtype, layout)
    y, idx = F.max_pool2d(t, k, s, p, d, ceil, return_indices=True)
    ry, ridx = np_max_pool(x, k, s, p, d, ceil)
    assert_close(y, ry)
    assert_close(idx, ridx)
    assert_close(nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)(t), ry)


@pytest.mark.parametrize("k,s,p,d,ceil", MAX_CASES)
def test_max_pool2d_gradient(k, s, p, d, ceil):
    x = Tensor(rng.permutation(2 * 2 * 6 * 5).reshape(2, 2, 6, 5) * 0.1, requires_grad=True, dtype=f64)  # no ties
    assert gradcheck(lambda a: F.max_pool2d(a, k, s, p, d, ceil), [x])


AVG_CASES = [(2, None, 0, False, True, None), (3, 2, 1, False, True, None), (3, 2, 1, False, False, None),
             (3, 2, 1, True, True, None), (3, 2, 1, True, False, None), ((2, 3), (2, 1), (1, 1), True, True, None),
             (3, 2, 1, False, True, 4)]


@pytest.mark.parametrize("k,s,p,ceil,inc,div", AVG_CASES)
def test_avg_pool2d(k, s, p, ceil, inc, div, dtype):
    x = rng.standard_normal((2, 3, 7, 8))
    ref = np_avg_pool(x, k, s, p, ceil, inc, div)
    assert_close(F.avg_pool2d(Tensor(x, dtype=dtype), k, s, p, ceil, inc, div), ref)
    assert_close(nn.AvgPool2d(k, s, p, ceil, inc, div)(Tensor(x, dtype=dtype)), ref)
    a = Tensor(x[:1, :2, :6, :5], requires_grad=True, dtype=f64)
    assert gradcheck(lambda t: F.avg_pool2d(t, k, s, p, ceil, inc, div), [a])


def test_pool1d_and_unbatched():
    x = rng.permutation(2 * 3 * 11).reshape(2, 3, 11) * 0.1
    ry, ridx = np_max_pool(x[:, :, None], (1, 3), (1, 2), (0, 1), (1, 2), True)
    y, idx = F.max_pool1d(Tensor(x, dtype=f64), 3, 2, 1, 2, True, return_indices=True)
    assert_close(y, ry[:, :, 0])
    assert_close(idx, ridx[:, :, 0])
    assert_close(nn.AvgPool1d(4, 3, 2, count_include_pad=False)(Tensor(x, dtype=f64)),
                 np_avg_pool(x[:, :, None], (1, 4), (1, 3), (0, 2), include_pad=False)[:, :, 0])
    assert_close(nn.MaxPool1d(2)(Tensor(x[0], dtype=f64)), np_max_pool(x[:1, :, None], (1, 2))[0][0, :, 0])
    x2 = rng.standard_normal((3, 6, 6))  # unbatched [C, H, W]
    assert_close(F.max_pool2d(Tensor(x2, dtype=f64), 2), np_max_pool(x2[None], 2)[0][0])
    assert_close(F.avg_pool2d(Tensor(x2, dtype=f64), 3, 2, 1), np_avg_pool(x2[None], 3, 2, 1)[0])
    a = Tensor(x[:1, :2], requires_grad=True, dtype=f64)
    assert gradcheck(lambda t: F.max_pool1d(t, 3, 2, 1), [a])
    assert gradcheck(lambda t: F.avg_pool1d(t, 3, 2, 1, True, False), [a])
    b = Tensor(x2[:2], requires_grad=True, dtype=f64)
    assert gradcheck(lambda t: F.avg_pool2d(t, 2), [b])


def np_adaptive(x, oh, ow, fn):
    n, c, h, w = x.shape
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            y[:, :, i, j] = fn(x[:, :, h0:h1, w0:w1], axis=(2, 3))
    return y


@pytest.mark.parametrize("size", [1, 2, (3, 4), (5, None), (7, 8), (4, 3)])
def test_adaptive_pools(size, dtype):
    x = rng.permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) * 0.1
    oh, ow = two(size)
    oh, ow = oh or 7, ow or 8
    assert_close(F.adaptive_avg_pool2d(Tensor(x, dtype=dtype), size), np_adaptive(x, oh, ow, np.mean))
    assert_close(nn.AdaptiveMaxPool2d(size)(Tensor(x, dtype=dtype)), np_adaptive(x, oh, ow, np.max))
    a = Tensor(x[:1, :2], requires_grad=True, dtype=f64)
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, size), [a])
    assert gradcheck(lambda t: F.adaptive_max_pool2d(t, size), [a])


def test_adaptive_pool_gradients_of_a_small_input():
    """adaptive_pool_bwd of both kinds on a tiny input with overlapping windows (7 -> 3 rows, 5 -> 2
    columns), against the gradients written out in numpy: the strict pass's case (test_adaptive_pools is too
    large there)."""
    x = rng.permutation(7 * 5).reshape(1, 1, 7, 5) * 0.1
    g = rng.standard_normal((1, 1, 3, 2))
    want_avg, want_max = np.zeros_like(x), np.zeros_like(x)
    for i in range(3):
        r0, r1 = i * 7 // 3, -(-(i + 1) * 7 // 3)
        for j in range(2):
            c0, c1 = j * 5 // 2, -(-(j + 1) * 5 // 2)
            want_avg[0, 0, r0:r1, c0:c1] += g[0, 0, i, j] / ((r1 - r0) * (c1 - c0))
            win = x[0, 0, r0:r1, c0:c1]
            r, c = np.unravel_index(np.argmax(win), win.shape)
            want_max[0, 0, r0 + r, c0 + c] += g[0, 0, i, j]
    for pool, want in ((F.adaptive_avg_pool2d, want_avg), (F.adaptive_max_pool2d, want_max)):
        t = Tensor(x, requires_grad=True, dtype=f64)
        pool(t, (3, 2)).backward(Tensor(g, dtype=f64))
        assert_close(t.grad, want)


def test_adaptive_1d_indices_and_global_average():
    x = rng.permutation(2 * 3 * 10).reshape(2, 3, 10) * 0.1
    y, idx = F.adaptive_max_pool1d(Tensor(x, dtype=f64), 4, return_indices=True)
    ref = np_adaptive(x[:, :, None], 1, 4, np.max)[:, :, 0]
    assert_close(y, ref)
    assert_close(Tensor(np.take_along_axis(x, to_np(idx).astype(int), 2)), ref)
    assert_close(nn.AdaptiveAvgPool1d(3)(Tensor(x, dtype=f64)), np_adaptive(x[:, :, None], 1, 3, np.mean)[:, :, 0])
    g = rng.standard_normal((4, 5, 6, 6))
    assert_close(nn.AdaptiveAvgPool2d(1)(Tensor(g)), g.mean((2, 3), keepdims=True), rtol=1e-5)
    assert repr(nn.AdaptiveAvgPool2d((1, 1))) == "AdaptiveAvgPool2d(output_size=(1, 1))"


def test_pool_reprs_and_errors():
    assert repr(nn.MaxPool2d(3, 2, 1, ceil_mode=True)) == \
        "MaxPool2D(kernel_size=3, stride=2, padding=1, ceil_mode=True)"
    assert repr(nn.AvgPool2d(2, count_include_pad=False)) == \
        "AvgPool2D(kernel_size=2, stride=2, padding=0, count_include_pad=False)"
    x = Tensor(np.zeros((1, 1, 4, 4)))
    with no_launch():
        with pytest.raises(ValueError, match="half"):
            F.max_pool2d(x, 2, padding=2)
        with pytest.raises(ValueError, match="divisor_override"):
            F.avg_pool2d(x, 2, divisor_override=0)
        with pytest.raises(ValueError, match="3-d or 4-d"):
            F.max_pool2d(Tensor(np.zeros((4, 4))), 2)
        with pytest.raises(ValueError, match="output_size"):
            F.adaptive_avg_pool2d(x, 0)
        with pytest.raises(ValueError, match="2-d or 3-d"):
            F.max_pool1d(x, 2)
