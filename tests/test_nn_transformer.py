"""MultiheadAttention's PyTorch forms (cross-attention with kdim/vdim, batch_first, key_padding_mask and
attn_mask as bool or float, need_weights/average_attn_weights, add_bias_kv/add_zero_attn, unbatched inputs,
the is_causal hint, both parameter layouts and their checkpoints) and TransformerEncoderLayer /
TransformerEncoder (post- and pre-norm, activations, masks, PyTorch's state_dict names), against numpy
float64 references of PyTorch's formulas; gradients by finite differences (float64)."""
import math

import numpy as np
import pytest
from conftest import assert_close, to_np

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck, no_grad

rng = np.random.default_rng(41)
f64 = np.float64


def leaf(arr):
    return Tensor(np.asarray(arr, f64), requires_grad=True, dtype=f64)


def randomize(m):
    with no_grad():
        for p in m.parameters():
            p.copy_(Tensor(rng.standard_normal(p.shape) * 0.5, dtype=p.dtype))
    return m


def projections(m):
    """(wq, wk, wv, bq, bk, bv, wo, bo) of either layout as numpy."""
    e = m.embed_dim
    if m.layout == "course":
        w = [to_np(getattr(m, f"{n}_proj").weight) for n in "qkv"]
        b = [to_np(getattr(m, f"{n}_proj").bias) if getattr(m, f"{n}_proj").bias is not None else np.zeros(e)
             for n in "qkv"]
    else:
        if m.in_proj_weight is not None:
            full = to_np(m.in_proj_weight)
            w = [full[:e], full[e:2 * e], full[2 * e:]]
        else:
            w = [to_np(getattr(m, f"{n}_proj_weight")) for n in "qkv"]
        b = np.split(to_np(m.in_proj_bias), 3) if m.in_proj_bias is not None else [np.zeros(e)] * 3
    bo = to_np(m.out_proj.bias) if m.out_proj.bias is not None else np.zeros(e)
    return w, b, to_np(m.out_proj.weight), bo


def np_mha(m, q, k, v, kpm=None, am=None, average=True):
    """PyTorch's multi_head_attention_forward for batch-first [B, L, E] inputs (dropout off)."""
    (wq, wk, wv), (bq, bk, bv), wo, bo = projections(m)
    h, d = m.num_heads, m.head_dim
    Q, K, V = q @ wq.T + bq, k @ wk.T + bk, v @ wv.T + bv
    b = Q.shape[0]
    if m.bias_k is not None:
        K = np.concatenate([K, np.broadcast_to(to_np(m.bias_k), (b, 1, m.embed_dim))], 1)
        V = np.concatenate([V, np.broadcast_to(to_np(m.bias_v), (b, 1, m.embed_dim))], 1)
        kpm = None if kpm is None else np.pad(kpm, ((0, 0), (0, 1)))
        am = None if am is None else np.pad(am, [(0, 0)] * (am.ndim - 1) + [(0, 1)])
    split = lambda t: t.reshape(b, t.shape[1], h, d).transpose(0, 2, 1, 3)  # noqa: E731
    Q, K, V = split(Q), split(K), split(V)
    if m.add_zero_attn:
        K = np.concatenate([K, np.zeros((b, h, 1, d))], 2)
        V = np.concatenate([V, np.zeros((b, h, 1, d))], 2)
        kpm = None if kpm is None else np.pad(kpm, ((0, 0), (0, 1)))
        am = None if am is None else np.pad(am, [(0, 0)] * (am.ndim - 1) + [(0, 1)])
    s = Q @ K.transpose(0, 1, 3, 2) / math.sqrt(d)
    for mask, shape in ((am, None), (kpm, (b, 1, 1, -1))):
        if mask is None:
            continue
        mask = mask.reshape(shape) if shape else (mask.reshape(b, h, *mask.shape[1:]) if mask.ndim == 3 else mask)
        s = np.where(mask, -np.inf, s) if mask.dtype == bool else s + mask
    mx = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(mx), mx, 0))
    tot = e.sum(-1, keepdims=True)
    p = np.where(tot > 0, e / np.where(tot > 0, tot, 1), 0)
    out = (p @ V).transpose(0, 2, 1, 3).reshape(b, -1, m.embed_dim) @ wo.T + bo
    return out, (p.mean(1) if average else p)


@pytest.mark.parametrize("layout", ["course", "pytorch"])
@pytest.mark.parametrize("kdim,vdim", [(None, None), (3, 5)])
def test_cross_attention_and_weights(layout, kdim, vdim, dtype):
    m = randomize(nn.MultiheadAttention(8, 2, kdim=kdim, vdim=vdim, layout=layout, dtype=dtype))
    q, k, v = rng.standard_normal((2, 4, 8)), rng.standard_normal((2, 6, kdim or 8)), \
        rng.standard_normal((2, 6, vdim or 8))
    out, w = m(*(Tensor(a, dtype=dtype) for a in (q, k, v)))  # PyTorch's call: need_weights=True by default
    ref, ref_w = np_mha(m, q, k, v)
    assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert_close(w, ref_w, rtol=1e-4, atol=1e-5)
    out2, none = m(*(Tensor(a, dtype=dtype) for a in (q, k, v)), need_weights=False)  # the fused kernels
    assert none is None
    assert_close(out2, ref, rtol=1e-4, atol=1e-5)
    _, per_head = m(*(Tensor(a, dtype=dtype) for a in (q, k, v)), average_attn_weights=False)
    assert per_head.shape == [2, 2, 4, 6]


@pytest.fixture(params=["composed", "fused"])
def attention_path(request, monkeypatch):
    """MultiheadAttention without weights takes matmul/softmax ops or the fused kernels by device and size
    (nn.functional.composed_attention_pays); each test using this runs both."""
    monkeypatch.setattr(nn.functional, "composed_attention_pays", lambda q, k: request.param == "composed")
    return request.param


@pytest.mark.parametrize("mask_kind", ["bool", "float"])
def test_masks(mask_kind, attention_path):
    m = randomize(nn.MultiheadAttention(6, 3, dtype=f64))
    q, k = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 5, 6))
    kpm = rng.random((2, 5)) > 0.7
    am = np.triu(np.ones((4, 5), bool), 2)
    if mask_kind == "float":
        kpm, am = np.where(kpm, -1e9, 0.0) + rng.standard_normal((2, 5)) * 0.1, np.where(am, -np.inf, 0.0)
    am3 = np.broadcast_to(am, (6, 4, 5)).copy()  # PyTorch's [B*heads, L, S]
    for attn in (am, am3):
        ref, ref_w = np_mha(m, q, k, k, kpm, attn)
        args = [Tensor(q, dtype=f64), Tensor(k, dtype=f64), Tensor(k, dtype=f64)]
        kp = kpm if mask_kind == "bool" else Tensor(kpm, dtype=f64)
        at = attn if mask_kind == "bool" else Tensor(attn, dtype=f64)
        out, w = m(*args, key_padding_mask=kp, attn_mask=at)
        assert_close(out, ref)
        assert_close(w, ref_w)
        fused, _ = m(*args, key_padding_mask=kp, attn_mask=at, need_weights=False)
        assert_close(fused, ref)


def test_is_causal_hint_batch_first_false_and_unbatched(attention_path):
    m = randomize(nn.MultiheadAttention(4, 2, batch_first=False, dtype=f64))
    x = rng.standard_normal((5, 2, 4))  # [L, B, E]
    causal = np.triu(np.ones((5, 5), bool), 1)
    ref, _ = np_mha(m, *(x.transpose(1, 0, 2),) * 3, am=causal)
    t = Tensor(x, dtype=f64)
    out, _ = m(t, t, t, attn_mask=causal, need_weights=False, is_causal=True)
    assert_close(out, ref.transpose(1, 0, 2))
    with pytest.raises(RuntimeError, match="attn_mask"):
        m(t, t, t, is_causal=True)
    u = Tensor(x[:, 0], dtype=f64)  # unbatched [L, E]
    out_u, w_u = m(u, u, u)
    ref_u, ref_w = np_mha(m, *(x[None, :, 0],) * 3)
    assert_close(out_u, ref_u[0])
    assert_close(w_u, ref_w[0])


def test_add_bias_kv_and_zero_attn():
    m = randomize(nn.MultiheadAttention(4, 2, add_bias_kv=True, add_zero_attn=True, layout="pytorch", dtype=f64))
    assert m.bias_k.shape == [1, 1, 4] and "bias_k" in m.state_dict()
    q, k = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    kpm = np.zeros((2, 5), bool)
    kpm[0, -2:] = True
    ref, ref_w = np_mha(m, q, k, k, kpm)
    out, w = m(Tensor(q, dtype=f64), Tensor(k, dtype=f64), Tensor(k, dtype=f64), key_padding_mask=kpm)
    assert_close(out, ref)
    assert_close(w, ref_w)


def test_gradients_of_both_call_forms(attention_path):
    m = randomize(nn.MultiheadAttention(4, 2, kdim=3, dtype=f64))
    q, k, v = leaf(rng.standard_normal((2, 3, 4))), leaf(rng.standard_normal((2, 5, 3))), \
        leaf(rng.standard_normal((2, 5, 4)))
    kpm = np.array([[False] * 4 + [True], [False] * 5])
    for need in (True, False):
        assert gradcheck(lambda a, b, c, *ps: m(a, b, c, key_padding_mask=kpm, need_weights=need)[0],
                         [q, k, v] + list(m.parameters()))
    p = randomize(nn.MultiheadAttention(4, 2, layout="pytorch", dtype=f64))
    assert gradcheck(lambda a, *ps: p(a, a, a, need_weights=False)[0], [q] + list(p.parameters()))


def test_layouts_and_checkpoints_of_each_other():
    torch_like = randomize(nn.MultiheadAttention(6, 2, layout="pytorch", dtype=f64))
    assert [k for k, v in torch_like.state_dict().items() if v is not None] == [
        "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert torch_like.in_proj_weight.shape == [18, 6] and torch_like.in_proj_bias.shape == [18]
    course = nn.MultiheadAttention(6, 2, dtype=f64)
    arrays = {k: v.numpy() for k, v in torch_like.state_dict().items() if v is not None}
    assert course.load_state_dict(arrays) == ([], [])  # PyTorch's arrays into the course's layout
    x = Tensor(rng.standard_normal((2, 3, 6)), dtype=f64)
    assert_close(course(x), to_np(torch_like(x, x, x)[0]))
    back = nn.MultiheadAttention(6, 2, layout="pytorch", dtype=f64)
    assert back.load_state_dict(course.state_dict()) == ([], [])  # and the course's tensors back
    assert_close(back(x, x, x, need_weights=False)[0], to_np(course(x)))
    cross = nn.MultiheadAttention(6, 2, kdim=4, vdim=5, layout="pytorch")
    assert [k for k, v in cross.state_dict().items() if v is not None] == [
        "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert cross.k_proj_weight.shape == [6, 4]


def test_course_forms_still_work():
    m = nn.MultiheadAttention(4, 2, True)
    x = Tensor(rng.standard_normal((2, 3, 4)))
    assert m(x).shape == [2, 3, 4] and m(hidden_states=x).shape == [2, 3, 4]
    assert isinstance(m(x, Tensor(np.zeros((3, 3)))), Tensor)  # m(x, mask): the course's additive mask
    out, w = m(x, need_weights=True)
    assert w.shape == [2, 3, 3]
    with pytest.raises(TypeError, match="bias"):
        nn.MultiheadAttention(4, 2, 0.1)  # PyTorch's third positional is dropout: refused, not misread
    assert nn.MultiheadAttention(embed_dim=4, num_heads=2).embed_dim == 4


def test_dropout_in_train_and_eval():
    m = nn.MultiheadAttention(8, 2, dropout=0.5)
    x = Tensor(rng.standard_normal((2, 6, 8)))
    a, b = to_np(m(x)), to_np(m(x))
    assert not np.allclose(a, b)
    m.eval()
    np.testing.assert_array_equal(to_np(m(x)), to_np(m(x)))


# ---- TransformerEncoderLayer / TransformerEncoder --------------------------------------------------------
def np_layer_norm(x, w, b, eps=1e-5):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b


def np_encoder_layer(layer, x, kpm=None, am=None, gelu=False):
    sa = lambda t: np_mha(layer.self_attn, t, t, t, kpm, am)[0]  # noqa: E731
    act = (lambda t: 0.5 * t * (1 + np.vectorize(math.erf)(t / math.sqrt(2)))) if gelu else \
        (lambda t: np.maximum(t, 0))
    ff = lambda t: act(t @ to_np(layer.linear1.weight).T + to_np(layer.linear1.bias)) @ \
        to_np(layer.linear2.weight).T + to_np(layer.linear2.bias)  # noqa: E731
    n1 = lambda t: np_layer_norm(t, to_np(layer.norm1.weight), to_np(layer.norm1.bias))  # noqa: E731
    n2 = lambda t: np_layer_norm(t, to_np(layer.norm2.weight), to_np(layer.norm2.bias))  # noqa: E731
    if layer.norm_first:
        x = x + sa(n1(x))
        return x + ff(n2(x))
    x = n1(x + sa(x))
    return n2(x + ff(x))


PYTORCH_KEYS = ["self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer(norm_first, activation, dtype):
    layer = randomize(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, activation=activation, batch_first=True,
                                                 norm_first=norm_first, dtype=dtype)).eval()
    assert [k for k, v in layer.state_dict().items() if v is not None] == PYTORCH_KEYS
    x = rng.standard_normal((2, 5, 8))
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    causal = np.triu(np.ones((5, 5), bool), 1)
    ref = np_encoder_layer(layer, x, kpm, causal, activation == "gelu")
    got = layer(Tensor(x, dtype=dtype), src_mask=causal, src_key_padding_mask=kpm)
    assert_close(got, ref, rtol=1e-4, atol=1e-4)
    float_causal = nn.generate_square_subsequent_mask(5, dtype=dtype)
    assert_close(layer(Tensor(x, dtype=dtype), src_mask=float_causal, src_key_padding_mask=kpm, is_causal=True),
                 ref, rtol=1e-4, atol=1e-4)


def test_encoder_layer_seq_first_gradients_and_dropout():
    layer = randomize(nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, dtype=f64))  # batch_first=False
    x = rng.standard_normal((3, 2, 4))  # [L, B, E]
    ref = np_encoder_layer(layer, x.transpose(1, 0, 2)).transpose(1, 0, 2)
    assert_close(layer(Tensor(x, dtype=f64)), ref)
    assert gradcheck(lambda a, *ps: layer(a), [leaf(x)] + list(layer.parameters()))
    noisy = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, batch_first=True)
    t = Tensor(rng.standard_normal((2, 4, 8)))
    assert not np.allclose(to_np(noisy(t)), to_np(noisy(t)))
    noisy.eval()
    np.testing.assert_array_equal(to_np(noisy(t)), to_np(noisy(t)))


def test_encoder_stacks_independent_copies():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, norm_first=True)
    enc = nn.TransformerEncoder(layer, 3, norm=nn.LayerNorm(8)).eval()
    keys = [k for k, v in enc.state_dict().items() if v is not None]
    assert keys == [f"layers.{i}.{k}" for i in range(3) for k in PYTORCH_KEYS] + ["norm.weight", "norm.bias"]
    assert enc.layers[0].linear1.weight.data_ptr() != enc.layers[1].linear1.weight.data_ptr()
    with no_grad():
        for layer in enc.layers:
            randomize(layer)
    x = rng.standard_normal((2, 4, 8))
    ref = x
    for layer in enc.layers:
        ref = np_encoder_layer(layer, ref)
    ref = np_layer_norm(ref, 1.0, 0.0)
    assert_close(enc(Tensor(x)), ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
