"""Convolutions (conv1d/conv2d with groups, dilation, 'same'/'valid' and asymmetric padding, padding modes;
the transposed convolutions) and F.pad: forward against numpy float64 loops written from the definitions,
gradients by finite differences (float64), modules' parameter layouts and reprs, errors before launch."""
import math

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np

import clownpiece as cp
import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck
from clownpiece.nn import functional as F

rng = np.random.default_rng(23)
f64 = np.float64


def leaf(arr):
    return Tensor(np.asarray(arr, f64), requires_grad=True, dtype=f64)


def two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def np_conv2d(x, w, b=None, stride=1, pads=(0, 0, 0, 0), dilation=1, groups=1):
    """Cross-correlation from the definition; pads = (top, bottom, left, right)."""
    (sh, sw), (dh, dw) = two(stride), two(dilation)
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c, hp, wp = xp.shape
    oc, cg, kh, kw = w.shape
    oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, oc, oh, ow))
    ocg = oc // groups
    for o in range(oc):
        g = o // ocg
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                y[:, o, i, j] = np.einsum("nchw,chw->n", patch, w[o])
    return y if b is None else y + b[None, :, None, None]


def np_conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The scatter definition: every input pixel adds its weighted kernel into the output."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = two(stride), two(padding), two(output_padding), two(dilation)
    n, c, h, wd = x.shape
    _, ocg, kh, kw = w.shape
    cg = c // groups
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((n, ocg * groups, oh, ow))
    for ci in range(c):
        g = ci // cg
        for i in range(h):
            for j in range(wd):
                for a in range(kh):
                    for bb in range(kw):
                        r, s = i * sh - ph + a * dh, j * sw - pw + bb * dw
                        if 0 <= r < oh and 0 <= s < ow:
                            y[:, g * ocg:(g + 1) * ocg, r, s] += x[:, ci, i, j, None] * w[ci, :, a, bb]
    return y if b is None else y + b[None, :, None, None]


CONV_CASES = [  # (in channels, out channels, kernel, stride, padding, dilation, groups)
    (3, 4, 3, 1, 1, 1, 1), (4, 6, (3, 2), (2, 1), (1, 0), 1, 2), (4, 4, 3, 1, 2, 2, 4),
    (2, 4, (2, 3), 2, 0, (1, 2), 1), (6, 3, 1, 1, 0, 1, 3),
]


@pytest.mark.parametrize("cin,cout,k,s,p,d,g", CONV_CASES)
def test_conv2d_forward(cin, cout, k, s, p, d, g, dtype):
    kh, kw = two(k)
    x, w, b = rng.standard_normal((2, cin, 7, 8)), rng.standard_normal((cout, cin // g, kh, kw)), \
        rng.standard_normal(cout)
    ph, pw = two(p)
    got = F.conv2d(Tensor(x, dtype=dtype), Tensor(w, dtype=dtype), Tensor(b, dtype=dtype), s, p, d, g)
    assert_close(got, np_conv2d(x, w, b, s, (ph, ph, pw, pw), d, g), rtol=1e-4, atol=1e-4)
    assert got.is_contiguous()


@pytest.mark.parametrize("cin,cout,k,s,p,d,g", CONV_CASES)
def test_conv2d_gradients(cin, cout, k, s, p, d, g):
    kh, kw = two(k)
    x, w, b = leaf(rng.standard_normal((2, cin, 6, 5))), leaf(rng.standard_normal((cout, cin // g, kh, kw))), \
        leaf(rng.standard_normal(cout))
    assert gradcheck(lambda a, c, e: F.conv2d(a, c, e, s, p, d, g), [x, w, b])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_strided_input(layout, dtype):
    t, x = make(rng.standard_normal((2, 4, 5, 6)), dtype, layout)
    w = rng.standard_normal((2, 2, 3, 3))
    assert_close(F.conv2d(t, Tensor(w, dtype=dtype), None, 1, 1, 1, 2), np_conv2d(x, w, None, 1, (1, 1, 1, 1), 1, 2),
                 rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,d", [(3, 1), (4, 1), ((2, 5), (1, 2)), (4, 2)])
def test_conv2d_same_and_valid_padding(k, d):
    kh, kw = two(k)
    dh, dw = two(d)
    x, w = rng.standard_normal((1, 2, 7, 9)), rng.standard_normal((3, 2, kh, kw))
    th, tw = dh * (kh - 1), dw * (kw - 1)
    ref = np_conv2d(x, w, None, 1, (th // 2, th - th // 2, tw // 2, tw - tw // 2), d)  # PyTorch's split
    got = F.conv2d(Tensor(x, dtype=f64), Tensor(w, dtype=f64), padding="same", dilation=d)
    assert got.shape == [1, 3, 7, 9]
    assert_close(got, ref)
    assert_close(F.conv2d(Tensor(x, dtype=f64), Tensor(w, dtype=f64), padding="valid", dilation=d),
                 np_conv2d(x, w, None, 1, (0, 0, 0, 0), d))
    assert gradcheck(lambda a, c: F.conv2d(a, c, padding="same", dilation=d), [leaf(x[:, :, :5, :6]), leaf(w)])


def test_conv1d(dtype):
    x, w, b = rng.standard_normal((2, 4, 11)), rng.standard_normal((6, 2, 3)), rng.standard_normal(6)
    got = F.conv1d(Tensor(x, dtype=dtype), Tensor(w, dtype=dtype), Tensor(b, dtype=dtype), 2, 1, 2, 2)
    ref = np_conv2d(x[:, :, None], w[:, :, None], b, (1, 2), (0, 0, 1, 1), (1, 2), 2)[:, :, 0]
    assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert gradcheck(lambda a, c, e: F.conv1d(a, c, e, 1, "same"), [leaf(x[:1, :2, :6]), leaf(w[:, :, :2]), leaf(b)])


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")])
def test_conv_padding_modes(mode, np_mode):
    m = nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode=mode, dtype=f64)
    x = rng.standard_normal((2, 2, 5, 6))
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (1, 1)), mode=np_mode)
    assert_close(m(Tensor(x, dtype=f64)), np_conv2d(xp, to_np(m.weight), to_np(m.bias)))
    assert gradcheck(lambda a, *ps: m(a), [leaf(x)] + list(m.parameters()))
    m1 = nn.Conv1d(2, 2, 4, padding="same", padding_mode=mode, dtype=f64)
    x1 = rng.standard_normal((1, 2, 7))
    ref = np_conv2d(np.pad(x1, ((0, 0), (0, 0), (1, 2)), mode=np_mode)[:, :, None], to_np(m1.weight)[:, :, None],
                    to_np(m1.bias))[:, :, 0]
    assert_close(m1(Tensor(x1, dtype=f64)), ref)


TRANSPOSE_CASES = [  # (in, out, kernel, stride, padding, output_padding, groups, dilation)
    (3, 2, 3, 1, 0, 0, 1, 1), (2, 4, 3, 2, 1, 1, 1, 1), (4, 4, (2, 3), (2, 1), (0, 1), 0, 2, 1),
    (2, 2, 3, 2, 1, 0, 1, 2), (2, 3, 2, 3, 0, (2, 1), 1, 1),
]


@pytest.mark.parametrize("cin,cout,k,s,p,op,g,d", TRANSPOSE_CASES)
def test_conv_transpose2d(cin, cout, k, s, p, op, g, d, dtype):
    kh, kw = two(k)
    x, w, b = rng.standard_normal((2, cin, 4, 3)), rng.standard_normal((cin, cout // g, kh, kw)), \
        rng.standard_normal(cout)
    got = F.conv_transpose2d(Tensor(x, dtype=dtype), Tensor(w, dtype=dtype), Tensor(b, dtype=dtype), s, p, op, g, d)
    assert_close(got, np_conv_transpose2d(x, w, b, s, p, op, g, d), rtol=1e-4, atol=1e-4)
    if dtype == f64:
        xs, ws, bs = leaf(x[:1]), leaf(w), leaf(b)
        assert gradcheck(lambda a, c, e: F.conv_transpose2d(a, c, e, s, p, op, g, d), [xs, ws, bs])


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> for the same weight: the definition of the transpose."""
    x, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3))
    y = rng.standard_normal(np_conv2d(x, w, None, 2, (1, 1, 1, 1), 1, 2).shape)
    cx = to_np(F.conv2d(Tensor(x, dtype=f64), Tensor(w, dtype=f64), None, 2, 1, 1, 2))
    ty = to_np(F.conv_transpose2d(Tensor(y, dtype=f64), Tensor(w, dtype=f64), None, 2, 1, (0, 1), 2))
    assert ty.shape == x.shape and abs((cx * y).sum() - (x * ty).sum()) < 1e-9


def test_conv_transpose_modules_and_output_size():
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=f64)
    assert m.weight.shape == [4, 3, 3, 3] and m.bias.shape == [6]
    x = rng.standard_normal((1, 4, 5, 5))
    assert m(Tensor(x, dtype=f64)).shape == [1, 6, 9, 9]
    y = m(Tensor(x, dtype=f64), output_size=[10, 10])
    assert_close(y, np_conv_transpose2d(x, to_np(m.weight), to_np(m.bias), 2, 1, 1, 2))
    with pytest.raises(ValueError, match="output size 12"):
        m(Tensor(x, dtype=f64), output_size=[12, 12])
    m1 = nn.ConvTranspose1d(2, 3, 4, stride=2, dtype=f64)
    x1 = rng.standard_normal((2, 2, 5))
    ref = np_conv_transpose2d(x1[:, :, None], to_np(m1.weight)[:, :, None], to_np(m1.bias), (1, 2))[:, :, 0]
    assert_close(m1(Tensor(x1, dtype=f64)), ref)
    assert repr(m) == ("ConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=2, "
                       "bias=True)")


def test_conv_modules_parameters_like_pytorch():
    m = nn.Conv2d(4, 8, (3, 5), stride=2, padding="same" if False else 1, dilation=2, groups=2, bias=False)
    assert m.weight.shape == [8, 2, 3, 5] and m.bias is None and list(m.state_dict()) == ["weight", "bias"]
    bound = 1 / math.sqrt(2 * 15)  # kaiming_uniform_(a=sqrt(5)): 1/sqrt(fan_in), fan_in = in/groups * k
    assert np.abs(to_np(m.weight)).max() <= bound and to_np(m.weight).std() > bound / 4
    assert repr(m) == ("Conv2D(4, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=2, "
                       "bias=False)")
    c1 = nn.Conv1d(3, 6, 5, padding="same", groups=3)
    assert c1.weight.shape == [6, 1, 5] and c1.bias.shape == [6]
    assert repr(c1) == "Conv1d(3, 6, kernel_size=(5,), stride=(1,), padding='same', groups=3, bias=True)"
    assert c1(Tensor(np.zeros((2, 3, 10)))).shape == [2, 6, 10]


def test_conv_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding"):
        nn.Conv2d(3, 4, 3, padding="full")
    x, w = Tensor(np.zeros((1, 4, 5, 5))), Tensor(np.zeros((6, 2, 3, 3)))
    c1 = nn.Conv1d(3, 3, 1)
    with no_launch():
        with pytest.raises(ValueError, match="groups=1"):
            F.conv2d(x, w)
        with pytest.raises(ValueError, match=r"\[6\]"):
            F.conv2d(x, w, Tensor(np.zeros(4)), groups=2)
        with pytest.raises(TypeError, match="dtype"):
            F.conv2d(x, Tensor(np.zeros((6, 2, 3, 3)), dtype=f64), groups=2)
        with pytest.raises(ValueError, match="does not fit"):
            F.conv2d(x, w, groups=2, dilation=3)
        with pytest.raises(ValueError, match="3-d"):
            F.conv1d(x, w)
        with pytest.raises(ValueError, match="output_padding"):
            F.conv_transpose2d(x, Tensor(np.zeros((4, 2, 3, 3))), stride=2, output_padding=2)
        with pytest.raises(ValueError, match=r"C = 3"):
            c1(Tensor(np.zeros((1, 2, 4))))


# ---- F.pad --------------------------------------------------------------------------------------------
PADS = [((1, 2), "constant"), ((2, 0, 1, 3), "constant"), ((-1, 2, 1, -2), "constant"), ((2, 1, 1, 2), "reflect"),
        ((3, 3), "replicate"), ((1, 2, 3, 0), "replicate"), ((2, 3, 1, 1), "circular"), ((4, 0), "circular")]


def np_pad(x, pad, mode, value=0.0):
    left, right, top, bottom = (list(pad) + [0, 0])[:4]
    widths = [(0, 0)] * (x.ndim - 2) + [(max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))]
    kw = {"constant_values": value} if mode == "constant" else {}
    y = np.pad(x, widths, mode={"constant": "constant", "reflect": "reflect", "replicate": "edge",
                                "circular": "wrap"}[mode], **kw)
    h, w = y.shape[-2:]
    return y[..., -min(top, 0):h + min(bottom, 0), -min(left, 0):w + min(right, 0)]


@pytest.mark.parametrize("pad,mode", PADS)
def test_pad(pad, mode, dtype):
    x = rng.standard_normal((2, 3, 4, 5))
    value = 0.5 if mode == "constant" else None
    assert_close(F.pad(Tensor(x, dtype=dtype), pad, mode, value), np_pad(x, pad, mode, value or 0.0))
    assert gradcheck(lambda a: F.pad(a, pad, mode, value), [leaf(x[:1, :2])])


def test_pad_shapes_and_errors():
    assert F.pad(Tensor(np.zeros(4)), (1, 2)).shape == [7]
    assert F.pad(Tensor(np.zeros((2, 4))), (1, 1, 2, 0)).shape == [4, 6]
    x = Tensor(np.zeros((1, 3, 3)))
    with no_launch():
        with pytest.raises(ValueError, match="smaller than the input size"):
            F.pad(x, (3, 0), "reflect")
        with pytest.raises(ValueError, match="mode"):
            F.pad(x, (1, 1), "mirror")
        with pytest.raises(ValueError, match="2 or 4"):
            F.pad(x, (1, 1, 1))
        with pytest.raises(ValueError, match="negative"):
            F.pad(x, (-1, 1), "replicate")
        with pytest.raises(ValueError, match="at most"):
            F.pad(x, (4, 0), "circular")


PADS_ND = [((1, 2, 0, 1, 2, 1), "constant"), ((0, 0, 0, 0, 1, 1, 2, 0), "constant"),
           ((1, -1, 0, 0, -1, 2), "constant"), ((1, 2, 1, 0, 2, 1), "reflect"), ((2, 0, 0, 1, 3, 1), "replicate"),
           ((1, 1, 2, 0, 1, 2), "circular")]


@pytest.mark.parametrize("pad,mode", PADS_ND, ids=str)
def test_pad_more_dims(pad, mode, dtype):
    x = rng.standard_normal((2, 3, 4, 5))
    pairs = [(pad[2 * j], pad[2 * j + 1]) for j in reversed(range(len(pad) // 2))]
    widths = [(0, 0)] * (4 - len(pairs)) + pairs
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    pos = [(max(a, 0), max(b, 0)) for a, b in widths]
    ref = np.pad(x, pos, mode=np_mode, **({"constant_values": 0.25} if mode == "constant" else {}))
    crop = tuple(slice(-min(a, 0), ref.shape[i] + min(b, 0)) for i, (a, b) in enumerate(widths))
    value = 0.25 if mode == "constant" else None
    assert_close(F.pad(Tensor(x, dtype=dtype), pad, mode, value), ref[crop])
    t, _ = make(x, np.float64, "transposed")
    assert gradcheck(lambda a: F.pad(a, pad, mode, value), [t.requires_grad_()])


def test_pad_more_dims_errors():
    x = Tensor(np.zeros((2, 3, 3, 3)))
    with no_launch():
        with pytest.raises(ValueError, match="at most 6"):
            F.pad(x, (1, 1, 1, 1, 1, 1, 1, 1), "reflect")
        with pytest.raises(ValueError, match="smaller than the input size 3 of dim -3"):
            F.pad(x, (1, 1, 1, 1, 3, 0), "reflect")
        with pytest.raises(ValueError, match="even number"):
            F.pad(x, (1, 1, 1, 1, 1, 1, 1, 1, 1, 1))
        with pytest.raises(cp._layout.ShapeError, match="negative size"):
            F.pad(x, (0, 0, 0, 0, 0, 0, -2, -1))
