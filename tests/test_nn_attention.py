"""Fused scaled_dot_product_attention: forward against a numpy float64 softmax(q k^T * scale + mask) v for
batch shapes, broadcasting, causal masking (L < S and L > S), float and bool masks, fully masked rows,
strided (head-split) inputs, large logits and the head sizes beyond the kernels; gradients by finite
differences (float64) for q, k, v and an additive mask; dropout checked by exposing its mask; launch counts;
errors before launch."""
import math

import numpy as np
import pytest
from conftest import assert_close, no_launch, to_np

import clownpiece as cp
from clownpiece import Tensor
from clownpiece.autograd import gradcheck
from clownpiece.nn import functional as F
from clownpiece.ops.random import manual_seed

rng = np.random.default_rng(37)
f64 = np.float64
SDPA = F.scaled_dot_product_attention


def leaf(arr, dtype=f64):
    return Tensor(np.asarray(arr, dtype), requires_grad=True, dtype=dtype)


def np_sdpa(q, k, v, mask=None, causal=False, scale=None):
    """PyTorch's math definition; a row with every score -inf gives 0 (its safe softmax)."""
    s = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0))
    tot = e.sum(-1, keepdims=True)
    p = np.where(tot > 0, e / np.where(tot > 0, tot, 1), 0)
    return p @ v


SHAPES = [((5, 4), (7, 4), (7, 6)), ((2, 5, 4), (2, 7, 4), (2, 7, 4)), ((2, 3, 6, 8), (2, 3, 6, 8), (2, 3, 6, 8)),
          ((2, 3, 5, 4), (1, 3, 9, 4), (2, 1, 9, 3)), ((2, 2, 3, 4, 2), (2, 2, 3, 3, 2), (2, 2, 3, 3, 5))]


@pytest.mark.parametrize("qs,ks,vs", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_forward(qs, ks, vs, causal, dtype):
    q, k, v = rng.standard_normal(qs), rng.standard_normal(ks), rng.standard_normal(vs)
    got = SDPA(Tensor(q, dtype=dtype), Tensor(k, dtype=dtype), Tensor(v, dtype=dtype), is_causal=causal)
    assert_close(got, np_sdpa(q, k, v, causal=causal), rtol=1e-5, atol=1e-6)


def test_scale_float_and_bool_masks(dtype):
    q, k, v = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 6, 4)), rng.standard_normal((2, 3, 6, 4))
    t = [Tensor(a, dtype=dtype) for a in (q, k, v)]
    add = rng.standard_normal((5, 6))
    assert_close(SDPA(*t, attn_mask=Tensor(add, dtype=dtype), scale=0.3), np_sdpa(q, k, v, add, scale=0.3),
                 rtol=1e-5, atol=1e-6)
    per_batch = rng.standard_normal((2, 1, 5, 6))  # broadcast over the heads
    assert_close(SDPA(*t, attn_mask=Tensor(per_batch, dtype=dtype)), np_sdpa(q, k, v, per_batch), rtol=1e-5,
                 atol=1e-6)
    keep = rng.random((2, 3, 5, 6)) > 0.4
    keep[..., 0] = True
    assert_close(SDPA(*t, attn_mask=keep), np_sdpa(q, k, v, keep), rtol=1e-5, atol=1e-6)  # True takes part
    assert_close(SDPA(*t, attn_mask=keep.tolist()), np_sdpa(q, k, v, keep), rtol=1e-5, atol=1e-6)


def test_fully_masked_rows_give_zero_and_zero_gradients():
    q, k, v = rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 5, 3)), rng.standard_normal((1, 5, 2))
    keep = np.ones((4, 5), bool)
    keep[1] = False
    keep[3, :4] = False
    got = SDPA(Tensor(q, dtype=f64), Tensor(k, dtype=f64), Tensor(v, dtype=f64), attn_mask=keep)
    assert (to_np(got)[0, 1] == 0).all()
    assert_close(got, np_sdpa(q, k, v, keep))
    a, b, c = leaf(q), leaf(k), leaf(v)
    SDPA(a, b, c, attn_mask=keep).sum().backward()
    assert (to_np(a.grad)[0, 1] == 0).all() and np.isfinite(to_np(b.grad)).all()
    assert gradcheck(lambda x, y, z: SDPA(x, y, z, attn_mask=keep), [leaf(q), leaf(k), leaf(v)])
    minus_inf = np.where(keep, 0.0, -np.inf)  # the same as an additive -inf mask
    assert_close(SDPA(Tensor(q, dtype=f64), Tensor(k, dtype=f64), Tensor(v, dtype=f64), attn_mask=minus_inf),
                 np_sdpa(q, k, v, keep))


def test_strided_head_views_and_large_logits(dtype):
    """[B, L, H, D] buffers viewed as [B, H, L, D] (what MultiheadAttention passes) need no copy."""
    x = rng.standard_normal((2, 5, 3, 4)) * 40  # scores up to ~1e4
    t = Tensor(x, dtype=dtype).transpose(1, 2)
    assert not t.is_contiguous()
    ref = np_sdpa(*(np.swapaxes(x, 1, 2),) * 3)
    got = SDPA(t, t, t)
    assert np.isfinite(to_np(got)).all()
    # float32 scores near 1e4 carry rounding errors near 1e-3, which the softmax passes on to every output in
    # proportion to the values' size: atol scales with them (1e-4 alone failed an element of -1.986 by 3.8e-4
    # for one draw under oclgrind's unoptimised builds)
    assert_close(got, ref, rtol=1e-4, atol=1e-4 if dtype == np.float64 else 1e-5 * np.abs(x).max())
    out_like_q = got.transpose(1, 2)  # the output is laid out like q: back to [B, L, H, D] for free
    assert out_like_q.is_contiguous()


@pytest.mark.parametrize("qs,ks,vs", SHAPES[:4])
@pytest.mark.parametrize("causal", [False, True])
def test_gradients(qs, ks, vs, causal):
    q, k, v = (leaf(rng.standard_normal(s)) for s in (qs, ks, vs))
    assert gradcheck(lambda a, b, c: SDPA(a, b, c, is_causal=causal), [q, k, v])


def test_gradients_with_masks_and_views():
    q, k, v = rng.standard_normal((2, 2, 4, 3)), rng.standard_normal((2, 2, 5, 3)), rng.standard_normal((2, 2, 5, 2))
    add = rng.standard_normal((1, 2, 4, 5))
    assert gradcheck(lambda a, b, c, m: SDPA(a, b, c, attn_mask=m, scale=0.7), [leaf(q), leaf(k), leaf(v), leaf(add)])
    keep = rng.random((4, 5)) > 0.3
    assert gradcheck(lambda a, b, c: SDPA(a, b, c, attn_mask=keep), [leaf(q), leaf(k), leaf(v)])
    x = leaf(rng.standard_normal((2, 4, 2, 3)))
    assert gradcheck(lambda t: SDPA(t.transpose(1, 2), t.transpose(1, 2), t.transpose(1, 2), is_causal=True), [x])


def test_dropout_masks_probabilities_reproducibly():
    """With v = I (Ev = S) the output is the dropped probability matrix itself: every entry is 0 or P/keep,
    about p of them 0, and the same seed gives the same drops, also for another v."""
    L, S, p = 40, 32, 0.3
    q, k = rng.standard_normal((2, L, 8)), rng.standard_normal((2, S, 8))
    probs = np_sdpa(q, k, np.broadcast_to(np.eye(S), (2, S, S)))
    tq, tk = Tensor(q, dtype=f64), Tensor(k, dtype=f64)
    manual_seed(5)
    dropped = to_np(SDPA(tq, tk, Tensor(np.broadcast_to(np.eye(S), (2, S, S)).copy(), dtype=f64), dropout_p=p))
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], probs[kept] / (1 - p), rtol=1e-12)
    assert abs(1 - kept.mean() - p) < 0.03
    v = rng.standard_normal((2, S, 5))
    manual_seed(5)
    assert_close(SDPA(tq, tk, Tensor(v, dtype=f64), dropout_p=p), dropped @ v)
    manual_seed(5)
    got = SDPA(tq, tk, Tensor(v, dtype=f64), dropout_p=p, is_causal=True)  # causal: the same draws per score
    assert to_np(got).shape == (2, L, 5)


def test_dropout_gradients():
    q, k, v = (leaf(rng.standard_normal(s)) for s in ((1, 6, 3), (1, 7, 3), (1, 7, 4)))

    def fn(a, b, c):
        manual_seed(11)  # the same drops at every evaluation
        return SDPA(a, b, c, dropout_p=0.4)
    assert gradcheck(fn, [q, k, v])


def test_head_size_beyond_the_kernels_and_gqa():
    q, k, v = rng.standard_normal((1, 3, 300)), rng.standard_normal((1, 4, 300)), rng.standard_normal((1, 4, 2))
    assert_close(SDPA(Tensor(q, dtype=f64), Tensor(k, dtype=f64), Tensor(v, dtype=f64), is_causal=True),
                 np_sdpa(q, k, v, causal=True))
    q, k, v = rng.standard_normal((2, 6, 5, 4)), rng.standard_normal((2, 2, 7, 4)), rng.standard_normal((2, 2, 7, 3))
    ref = np_sdpa(q, np.repeat(k, 3, 1), np.repeat(v, 3, 1))
    got = SDPA(Tensor(q, dtype=f64), Tensor(k, dtype=f64), Tensor(v, dtype=f64), enable_gqa=True)
    assert_close(got, ref)
    assert gradcheck(lambda a, b, c: SDPA(a, b, c, enable_gqa=True), [leaf(q[:1]), leaf(k[:1]), leaf(v[:1])])


def test_empty_and_launch_counts():
    empty = SDPA(Tensor(np.zeros((0, 3, 4))), Tensor(np.zeros((0, 5, 4))), Tensor(np.zeros((0, 5, 2))))
    assert empty.shape == [0, 3, 2]
    q, k, v = (Tensor(rng.standard_normal((2, 2, 8, 4)), requires_grad=True) for _ in range(3))
    SDPA(q, k, v).sum().backward()
    cp.synchronize()
    stats = cp.backend.stats
    before, reads = stats()["launches"], stats()["d2h_count"]
    y = SDPA(q, k, v, is_causal=True)
    assert stats()["launches"] - before == 1  # the whole forward
    g = cp.ones_like(y)
    before = stats()["launches"]
    y.backward(g)
    assert stats()["launches"] - before <= 2 + 3  # the two backward kernels (+ the gradients' accumulation)
    assert stats()["d2h_count"] == reads


def test_errors_before_launch():
    q, k, v = Tensor(np.zeros((2, 3, 4))), Tensor(np.zeros((2, 5, 4))), Tensor(np.zeros((2, 5, 6)))
    with no_launch():
        with pytest.raises(ValueError, match="do not fit"):
            SDPA(q, Tensor(np.zeros((2, 5, 3))), v)
        with pytest.raises(ValueError, match="same S"):
            SDPA(q, k, Tensor(np.zeros((2, 4, 6))))
        with pytest.raises(ValueError, match="broadcast"):
            SDPA(q, k, v, attn_mask=Tensor(np.zeros((3, 4))))
        with pytest.raises(ValueError, match="not both"):
            SDPA(q, k, v, attn_mask=Tensor(np.zeros((3, 5))), is_causal=True)
        with pytest.raises(ValueError, match="probability"):
            SDPA(q, k, v, dropout_p=1.5)
        with pytest.raises(TypeError, match="dtype"):
            SDPA(q, Tensor(np.zeros((2, 5, 4)), dtype=f64), v)
        with pytest.raises(TypeError, match="bool or float"):
            SDPA(q, k, v, attn_mask=np.zeros((3, 5), np.int64))
        with pytest.raises(ValueError, match="batch dims"):
            SDPA(Tensor(np.zeros((3, 3, 4))), k, v)
