"""Layers, activations, losses and conv/pool modules: forward against numpy float64 references computed
from the modules' own parameters, gradients by gradcheck in float64, reprs and bad-input errors."""
import math

import numpy as np
import pytest
from conftest import assert_close, to_np

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck, no_grad

rng = np.random.default_rng(11)
f64 = np.float64


def leaf(arr):
    return Tensor(np.asarray(arr, f64), requires_grad=True, dtype=f64)


def params_gradcheck(module, x):
    """gradcheck w.r.t. the input and every parameter of a float64 module."""
    params = list(module.parameters())

    def fn(inp, *ps):
        return module(inp)

    return gradcheck(fn, [x] + params)


# ---- Linear -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4,), (2, 4), (2, 3, 4)])
def test_linear(shape, dtype):
    m = nn.Linear(4, 5, dtype=dtype)
    x = rng.standard_normal(shape)
    assert_close(m(Tensor(x, dtype=dtype)), x @ to_np(m.weight).T + to_np(m.bias), rtol=1e-5, atol=1e-5)
    assert m.weight.shape == [5, 4] and m.bias.shape == [5]


def test_linear_grad_and_no_bias():
    m = nn.Linear(3, 2, dtype=f64)
    assert params_gradcheck(m, leaf(rng.standard_normal((4, 3))))
    nb = nn.Linear(3, 2, bias=False)
    assert nb.bias is None and len(list(nb.parameters())) == 1
    assert repr(nb) == "Linear(in_features=3, out_features=2, bias=False)"


def test_linear_wrong_feature_size():
    with pytest.raises(ValueError, match=r"Linear.*\[2, 5\].*3 features"):
        nn.Linear(3, 2)(Tensor(np.zeros((2, 5))))


# ---- Embedding ------------------------------------------------------------------------------------------
def test_embedding():
    m = nn.Embedding(10, 4)
    assert len(list(m.parameters())) == 1 and m.weight.shape == [10, 4]
    assert m(Tensor([3.0])).shape == [1, 4] and m(Tensor([1.0, 2.0, 3.0, 4.0])).shape == [4, 4]
    ids = np.array([[0.0, 9.0, 3.0], [3.0, 3.0, 1.0]])
    assert_close(m(Tensor(ids)), to_np(m.weight)[ids.astype(int)])
    out = m(Tensor(ids))
    out.sum().backward()
    counts = np.bincount(ids.astype(int).ravel(), minlength=10)
    assert_close(m.weight.grad, counts[:, None] * np.ones((10, 4)))
    w = to_np(m.weight)
    assert abs(w.mean()) < 0.5 and 0.5 < w.std() < 1.5  # N(0, 1) init


# ---- LayerNorm / BatchNorm --------------------------------------------------------------------------
def test_layer_norm_module(dtype):
    m = nn.LayerNorm(4, dtype=dtype)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert (to_np(m.weight) == 1).all() and (to_np(m.bias) == 0).all()
    x = rng.standard_normal((2, 3, 4)) * 5 + 3
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    assert_close(m(Tensor(x, dtype=dtype)), ref, rtol=1e-4, atol=1e-4)
    assert list(nn.LayerNorm(4, affine=False).parameters()) == []
    with pytest.raises(ValueError, match="num_features=4"):
        m(Tensor(np.zeros((2, 5))))


def test_layer_norm_module_grad():
    m = nn.LayerNorm(6, dtype=f64)
    with no_grad():
        m.weight.copy_(Tensor(rng.standard_normal(6), dtype=f64))
        m.bias.copy_(Tensor(rng.standard_normal(6), dtype=f64))
    assert params_gradcheck(m, leaf(rng.standard_normal((2, 2, 3))))


def test_batch_norm_training_and_eval(dtype):
    m = nn.BatchNorm(3, momentum=0.2, dtype=dtype)
    x = rng.standard_normal((8, 3)) * 2 + 1
    y = m(Tensor(x, dtype=dtype))
    assert_close(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-4, atol=1e-4)
    assert_close(m.running_mean, 0.2 * x.mean(0), rtol=1e-5, atol=1e-6)
    assert_close(m.running_var, 0.8 + 0.2 * x.var(0), rtol=1e-5, atol=1e-6)  # biased (course)
    assert m.running_mean.grad_fn is None and not m.running_mean.requires_grad
    m.eval()
    x2 = rng.standard_normal((2, 3))
    rm, rv = to_np(m.running_mean), to_np(m.running_var)
    assert_close(m(Tensor(x2, dtype=dtype)), (x2 - rm) / np.sqrt(rv + 1e-5), rtol=1e-4, atol=1e-4)
    assert_close(m.running_mean, rm)  # eval does not update


def test_batch_norm_channel_last_leading_dims_and_grad():
    m = nn.BatchNorm(2, dtype=f64)
    x = rng.standard_normal((3, 4, 2))
    rows = x.reshape(-1, 2)
    assert_close(m(Tensor(x, dtype=f64)), ((rows - rows.mean(0)) / np.sqrt(rows.var(0) + 1e-5)).reshape(x.shape))
    assert params_gradcheck(m, leaf(rng.standard_normal((5, 2))))
    with pytest.raises(ValueError, match="BatchNorm"):
        m(Tensor(np.zeros((4, 3))))
    assert repr(m) == "BatchNorm(2, eps=1e-05, momentum=0.1, affine=True)"


# ---- MultiheadAttention ---------------------------------------------------------------------------------
def np_attention(m, x, mask=None):
    def proj(lin, v):
        return v @ to_np(lin.weight).T + (to_np(lin.bias) if lin.bias is not None else 0)

    b, s, h = x.shape
    nh, hd = m.num_heads, h // m.num_heads
    q, k, v = (proj(lin, x).reshape(b, s, nh, hd).transpose(0, 2, 1, 3) for lin in (m.q_proj, m.k_proj, m.v_proj))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    if mask is not None:
        scores = scores + mask
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return proj(m.out_proj, (p @ v).transpose(0, 2, 1, 3).reshape(b, s, h))


@pytest.mark.parametrize("heads,bias", [(1, True), (2, True), (4, False)])
def test_multihead_attention(heads, bias, dtype):
    m = nn.MultiheadAttention(8, heads, bias, dtype=dtype)
    assert [n for n, _ in m.named_children()] == ["q_proj", "k_proj", "v_proj", "out_proj"]
    x = rng.standard_normal((2, 5, 8))
    assert_close(m(Tensor(x, dtype=dtype)), np_attention(m, x), rtol=1e-4, atol=1e-5)


def test_multihead_attention_additive_mask():
    m = nn.MultiheadAttention(4, 2, dtype=f64)
    x = rng.standard_normal((2, 3, 4))
    causal = np.triu(np.full((3, 3), -1e9), 1)
    assert_close(m(Tensor(x, dtype=f64), attn_mask=Tensor(causal, dtype=f64)), np_attention(m, x, causal))
    # the first position only sees itself: changing later positions leaves it unchanged
    x2 = x.copy()
    x2[:, 1:] += 5
    out1 = to_np(m(Tensor(x, dtype=f64), Tensor(causal, dtype=f64)))
    out2 = to_np(m(Tensor(x2, dtype=f64), Tensor(causal, dtype=f64)))
    np.testing.assert_allclose(out1[:, 0], out2[:, 0], rtol=1e-12)


def test_multihead_attention_grad_and_errors():
    m = nn.MultiheadAttention(4, 2, dtype=f64)
    assert params_gradcheck(m, leaf(rng.standard_normal((1, 3, 4))))
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(ValueError, match="4 features"):
        m(Tensor(np.zeros((1, 3, 5))))
    with pytest.raises(ValueError, match="batch, seq"):
        m(Tensor(np.zeros((3, 4))))


# ---- Flatten / Dropout / activations ------------------------------------------------------------------
def test_flatten_and_dropout_modules():
    x = Tensor(rng.standard_normal((2, 3, 4)))
    assert nn.Flatten()(x).shape == [2, 12] and nn.Flatten(0, 1)(x).shape == [6, 4]
    d = nn.Dropout(0.5)
    assert repr(d) == "Dropout(p=0.5)"
    out = to_np(d(Tensor(np.ones((100, 100)))))
    assert set(np.unique(out)) <= {0.0, 2.0} and 0.45 < (out == 0).mean() < 0.55
    assert d.eval()(x) is x
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)


ACTS = [
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x)), "Sigmoid()"),
    (nn.Tanh(), np.tanh, "Tanh()"),
    (nn.ReLU(), lambda x: np.maximum(x, 0), "ReLU()"),
    (nn.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x), "LeakyReLU(negative_slope=0.01)"),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))), "GELU()"),
    (nn.Softmax(), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True), "Softmax(dim=-1)"),
    (nn.LogSoftmax(0), lambda x: x - np.log(np.exp(x).sum(0, keepdims=True)), "LogSoftmax(dim=0)"),
]


@pytest.mark.parametrize("module,ref,text", ACTS, ids=[a[2] for a in ACTS])
def test_activation_modules(module, ref, text, dtype):
    x = rng.standard_normal((3, 4)) + 0.05
    assert_close(module(Tensor(x, dtype=dtype)), ref(x), rtol=1e-5, atol=1e-6)
    assert repr(module) == text
    assert gradcheck(module, [leaf(x)])


def test_leaky_relu_course_values():
    assert_close(nn.LeakyReLU()(Tensor([-2.0, -1.0, 0.0, 1.0, 2.0])), [-0.02, -0.01, 0, 1, 2])


# ---- losses ----------------------------------------------------------------------------------------------
def test_loss_modules(dtype):
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert_close(nn.MSELoss()(Tensor(a, dtype=dtype), Tensor(b, dtype=dtype)), ((a - b) ** 2).mean())
    assert nn.MSELoss(reduction="none")(Tensor(a), Tensor(b)).shape == [4, 3]
    with pytest.raises(ValueError):
        nn.MSELoss()(Tensor(a), Tensor(b[:2]))
    t = np.array([0.0, 2.0, 1.0, 2.0])
    lse = np.log(np.exp(a).sum(1))
    ce = nn.CrossEntropyLoss()(Tensor(a, dtype=dtype), Tensor(t, dtype=dtype))
    assert ce.shape == [] and abs(ce.item() - (lse - a[np.arange(4), t.astype(int)]).mean()) < 1e-5
    assert abs(nn.CrossEntropyLoss(reduction="sum")(Tensor(a), [0, 2, 1, 2]).item()
               - (lse - a[np.arange(4), t.astype(int)]).sum()) < 1e-4
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError):
        nn.CrossEntropyLoss()(Tensor(a), Tensor(t[:3]))
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"


def test_cross_entropy_no_grad_to_target():
    logits, target = leaf(rng.standard_normal((3, 4))), Tensor([1.0, 0.0, 3.0], requires_grad=True, dtype=f64)
    nn.CrossEntropyLoss()(logits, target).backward()
    assert logits.grad is not None and target.grad is None


# ---- conv / pool modules ---------------------------------------------------------------------------------
def test_conv2d_module(dtype):
    m = nn.Conv2d(2, 3, 3, padding=1, dtype=dtype)
    assert nn.Conv2D is nn.Conv2d and m.weight.shape == [3, 2, 3, 3] and m.bias.shape == [3]
    bound = 1 / math.sqrt(18)
    assert np.abs(to_np(m.weight)).max() <= bound and to_np(m.weight).std() > bound / 4
    x = rng.standard_normal((2, 2, 5, 5))
    w, b = to_np(m.weight), to_np(m.bias)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 3, 5, 5))
    for i in range(5):
        for j in range(5):
            ref[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i:i + 3, j:j + 3], w) + b
    assert_close(m(Tensor(x, dtype=dtype)), ref, rtol=1e-4, atol=1e-4)
    assert repr(m) == "Conv2D(2, 3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=True)"


def test_conv2d_module_grad():
    m = nn.Conv2d(2, 2, (2, 3), stride=(2, 1), dtype=f64)
    assert params_gradcheck(m, leaf(rng.standard_normal((1, 2, 4, 5))))
    assert nn.Conv2d(1, 1, 2, bias=False).bias is None


@pytest.mark.parametrize("kwargs", [dict(kernel_size="3"), dict(kernel_size=(3, 3, 3)), dict(kernel_size=3, stride=1.5),
                                    dict(kernel_size=3, padding=True)])
def test_conv2d_module_refuses_bad_sizes_at_construction(kwargs):
    with pytest.raises(TypeError, match="Conv2D: .* must be an int or a pair of ints"):
        nn.Conv2d(1, 2, **kwargs)


def test_pool_modules():
    x = rng.standard_normal((1, 2, 4, 6))
    assert nn.MaxPool2d is nn.MaxPool2D and nn.AvgPool2d is nn.AvgPool2D
    assert_close(nn.MaxPool2d(2)(Tensor(x)), x.reshape(1, 2, 2, 2, 3, 2).max(axis=(3, 5)))
    assert_close(nn.AvgPool2d(2)(Tensor(x)), x.reshape(1, 2, 2, 2, 3, 2).mean(axis=(3, 5)))
    assert repr(nn.MaxPool2d(2)) == "MaxPool2D(kernel_size=2, stride=2, padding=0)"
