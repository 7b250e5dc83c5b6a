"""Resampling (F.interpolate, nn.Upsample): nearest, nearest-exact, linear and bilinear with and without
align_corners, from size or scale_factor (recompute_scale_factor too), against numpy float64 loops of
PyTorch's documented index rules; gradients by finite differences (float64); errors before launch."""
import math

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck
from clownpiece.nn import functional as F

rng = np.random.default_rng(31)
f64 = np.float64


def np_axis(n_in, n_out, mode, align, scale=None):
    """For each output position: (i0, i1, weight of i1), by PyTorch's rules."""
    ratio = (1.0 / scale) if scale else n_in / n_out
    out = []
    for d in range(n_out):
        if mode in ("nearest", "nearest-exact"):
            fs = np.float32(ratio)  # PyTorch computes the nearest index with a float scale
            i = int(np.floor(np.float32(d + (0.5 if mode == "nearest-exact" else 0.0)) * fs))
            i = min(i, n_in - 1)
            out.append((i, i, 0.0))
            continue
        s = ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0) if align else ratio
        src = s * d if align else max(s * (d + 0.5) - 0.5, 0.0)
        i0 = int(src)
        out.append((i0, i0 + (1 if i0 < n_in - 1 else 0), src - i0))
    return out


def np_interp(x, size, mode, align=False, scales=(None, None)):
    n, c, h, w = x.shape
    ys, xs = np_axis(h, size[0], mode, align, scales[0]), np_axis(w, size[1], mode, align, scales[1])
    y = np.zeros((n, c) + tuple(size))
    for i, (h0, h1, lh) in enumerate(ys):
        for j, (w0, w1, lw) in enumerate(xs):
            y[:, :, i, j] = ((1 - lh) * ((1 - lw) * x[:, :, h0, w0] + lw * x[:, :, h0, w1])
                             + lh * ((1 - lw) * x[:, :, h1, w0] + lw * x[:, :, h1, w1]))
    return y


CASES = [("nearest", None, (8, 10), None), ("nearest", None, (5, 7), None), ("nearest", None, None, 2),
         ("nearest", None, None, (1.5, 2.5)), ("nearest-exact", None, (7, 3), None),
         ("bilinear", False, (8, 10), None), ("bilinear", True, (8, 10), None), ("bilinear", False, (3, 2), None),
         ("bilinear", True, (1, 7), None), ("bilinear", False, None, (1.7, 2))]


@pytest.mark.parametrize("mode,align,size,sf", CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_interpolate_2d(mode, align, size, sf, layout, dtype):
    t, x = make(rng.standard_normal((2, 3, 4, 5)), dtype, layout)
    if size is None:
        f = (sf, sf) if not isinstance(sf, tuple) else sf
        out = tuple(int(math.floor(i * s)) for i, s in zip((4, 5), f))
        ref = np_interp(x, out, mode, align, f)
    else:
        ref = np_interp(x, size, mode, align)
    assert_close(F.interpolate(t, size, sf, mode, align), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode,align,size,sf", CASES)
def test_interpolate_gradients(mode, align, size, sf):
    x = Tensor(rng.standard_normal((1, 2, 4, 3)), requires_grad=True, dtype=f64)
    assert gradcheck(lambda a: F.interpolate(a, size, sf, mode, align), [x])


def test_recompute_scale_factor_and_linear_1d():
    x = rng.standard_normal((2, 3, 4, 5))
    y = F.interpolate(Tensor(x, dtype=f64), scale_factor=1.7, mode="bilinear", recompute_scale_factor=True)
    assert_close(y, np_interp(x, (6, 8), "bilinear"))  # the scale recomputed as in/out
    x1 = rng.standard_normal((2, 3, 6))
    got = F.interpolate(Tensor(x1, dtype=f64), size=9, mode="linear", align_corners=True)
    assert_close(got, np_interp(x1[:, :, None], (1, 9), "bilinear", True)[:, :, 0])
    a = Tensor(x1[:1], requires_grad=True, dtype=f64)
    assert gradcheck(lambda t: F.interpolate(t, scale_factor=2, mode="linear"), [a])


def test_upsample_modules():
    x = rng.standard_normal((1, 2, 3, 3))
    m = nn.Upsample(scale_factor=2)
    assert repr(m) == "Upsample(scale_factor=2.0, mode='nearest')"
    assert_close(m(Tensor(x)), x.repeat(2, 2).repeat(2, 3), rtol=1e-6)
    assert_close(nn.UpsamplingBilinear2d(size=(5, 4))(Tensor(x, dtype=f64)), np_interp(x, (5, 4), "bilinear", True))
    assert_close(nn.Upsample(size=(6, 6), mode="bilinear")(Tensor(x, dtype=f64)), np_interp(x, (6, 6), "bilinear"))


def test_interpolate_errors():
    x = Tensor(np.zeros((1, 1, 4, 4)))
    with no_launch():
        with pytest.raises(ValueError, match="exactly one"):
            F.interpolate(x)
        with pytest.raises(ValueError, match="mode"):
            F.interpolate(x, scale_factor=2, mode="bicubic")
        with pytest.raises(ValueError, match="4-d input"):
            F.interpolate(Tensor(np.zeros((1, 1, 4))), size=3, mode="bilinear")
        with pytest.raises(ValueError, match="align_corners"):
            F.interpolate(x, size=3, align_corners=True)
        with pytest.raises(TypeError, match="size"):
            F.interpolate(x, size=(3, 3, 3))
        with pytest.raises(ValueError, match="positive"):
            F.interpolate(x, scale_factor=-1.0)
