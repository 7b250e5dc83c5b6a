"""Embedding's PyTorch arguments (padding_idx, from_pretrained), Identity, Unflatten and the channel
dropouts Dropout1d/Dropout2d: values against numpy, gradients, train/eval, reprs, errors."""
import numpy as np
import pytest
from conftest import assert_close, to_np

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck
from clownpiece.nn import functional as F
from clownpiece.ops.random import manual_seed

rng = np.random.default_rng(17)
f64 = np.float64


# ---- Embedding ------------------------------------------------------------------------------------
def test_embedding_padding_idx_row_starts_at_zero_and_gets_no_gradient():
    m = nn.Embedding(5, 3, padding_idx=1)
    assert (to_np(m.weight)[1] == 0).all() and np.abs(to_np(m.weight)[[0, 2, 3, 4]]).sum() > 0
    ids = np.array([[1.0, 2.0, 1.0], [0.0, 2.0, 4.0]])
    out = m(Tensor(ids))
    assert_close(out, to_np(m.weight)[ids.astype(int)])
    (out * Tensor(rng.standard_normal((2, 3, 3)))).sum().backward()
    g = to_np(m.weight.grad)
    assert (g[1] == 0).all() and (g[3] == 0).all() and np.abs(g[[0, 2, 4]]).sum() > 0
    assert repr(m) == "Embedding(5, 3, padding_idx=1)"
    assert nn.Embedding(5, 3, padding_idx=-1).padding_idx == 4  # negative counts from the end, as in PyTorch


def test_embedding_gradient_matches_scatter_of_the_incoming_gradient():
    w = rng.standard_normal((6, 2))
    ids = np.array([3.0, 0.0, 3.0, 5.0])
    g = rng.standard_normal((4, 2))
    a = Tensor(w, requires_grad=True, dtype=f64)
    (F.embedding(Tensor(ids, dtype=f64), a, padding_idx=0) * Tensor(g, dtype=f64)).sum().backward()
    ref = np.zeros_like(w)
    for i, k in enumerate(ids.astype(int)):
        if k != 0:
            ref[k] += g[i]
    assert_close(a.grad, ref)


def test_embedding_pytorch_names_and_from_pretrained():
    m = nn.Embedding(num_embeddings=4, embedding_dim=2)
    assert m.weight.shape == [4, 2] and m.num_embeddings == 4 and m.embedding_dim == 2
    table = Tensor(np.arange(6.0).reshape(3, 2))
    e = nn.Embedding.from_pretrained(table)
    assert not e.weight.requires_grad and e.weight.data_ptr() == table.data_ptr()
    assert_close(e(Tensor([2.0, 0.0])), [[4, 5], [0, 1]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    h = nn.Embedding(3, 2)
    assert_close(h([0, 2]), to_np(h.weight)[[0, 2]])  # host ids work


def test_embedding_errors():
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(3, 2, padding_idx=3)
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.Embedding(3, 2, max_norm=1.0)
    with pytest.raises(TypeError, match="required"):
        nn.Embedding(3)


# ---- Identity / Unflatten ---------------------------------------------------------------------------
def test_identity_and_unflatten():
    x = Tensor(rng.standard_normal((2, 12)))
    assert nn.Identity(54, unused="x")(x) is x and repr(nn.Identity()) == "Identity()"
    u = nn.Unflatten(1, (3, 4))
    assert u(x).shape == [2, 3, 4] and repr(u) == "Unflatten(dim=1, unflattened_size=(3, 4))"
    assert_close(u(x), to_np(x).reshape(2, 3, 4))
    assert nn.Unflatten(-1, [2, -1])(x).shape == [2, 2, 6]
    assert nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, 4)))(Tensor(np.zeros((2, 3, 4)))).shape == [2, 3, 4]
    a = Tensor(rng.standard_normal((2, 6)), requires_grad=True, dtype=f64)
    assert gradcheck(lambda t: F.unflatten(t, 1, (2, 3)), [a])
    with pytest.raises(ValueError, match="do not split"):
        nn.Unflatten(1, (5, 2))(x)
    with pytest.raises(TypeError):
        nn.Unflatten(1, 12)


# ---- channel dropout ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,shape,spatial", [(nn.Dropout1d, (40, 30, 7), 1), (nn.Dropout1d, (50, 9), 1),
                                               (nn.Dropout2d, (20, 30, 3, 4), 2), (nn.Dropout2d, (40, 30, 5), 1)])
def test_channel_dropout_zeroes_whole_channels(cls, shape, spatial):
    manual_seed(1)
    m = cls(0.4)
    with pytest.warns(UserWarning, match="3-D") if cls is nn.Dropout2d and len(shape) == 3 else _nothing():
        y = to_np(m(Tensor(np.ones(shape))))
    per_channel = y.reshape(shape[:-spatial] + (-1,))
    # every channel is all zeros or all 1/(1-p)
    assert np.all((per_channel == 0).all(-1) | np.isclose(per_channel, 1 / 0.6).all(-1))
    assert abs((per_channel[..., 0] == 0).mean() - 0.4) < 0.06
    assert m.eval()(Tensor(np.ones(shape))).shape == list(shape)
    assert (to_np(m(Tensor(np.ones(shape)))) == 1).all()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_channel_dropout_gradient_is_the_mask_and_errors():
    manual_seed(2)
    a = Tensor(np.ones((4, 6, 3, 3)), requires_grad=True)
    y = F.dropout2d(a, 0.5)
    y.sum().backward()
    np.testing.assert_allclose(to_np(a.grad), to_np(y))
    with pytest.raises(ValueError, match="3-D"):
        F.dropout1d(Tensor(np.zeros((2, 3, 4, 5))))
    with pytest.raises(ValueError, match="probability"):
        nn.Dropout2d(1.5)
    assert repr(nn.Dropout1d(0.2)) == "Dropout1d(p=0.2)"
