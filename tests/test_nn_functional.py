"""The fused nn kernels (cross-entropy, layer norm, conv2d, pooling) and nn.functional: forward against
numpy float64 references, gradients by finite differences (gradcheck, float64), bad-input errors."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, to_np

from clownpiece import Tensor
from clownpiece._layout import IndexOutOfRange
from clownpiece.autograd import gradcheck, no_grad
from clownpiece.nn import functional as F
from clownpiece.ops.random import manual_seed

rng = np.random.default_rng(7)
f64 = np.float64


def leaf(arr, dtype=f64):
    return Tensor(np.asarray(arr, dtype), requires_grad=True, dtype=dtype)


# ---- numpy references ------------------------------------------------------------------------------
def np_cross_entropy(x, t, reduction="mean"):
    m = x.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]
    loss = lse - np.take_along_axis(x, t[..., None].astype(int), -1)[..., 0]
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def np_layer_norm(x, f, w=None, b=None, eps=1e-5):
    rows = x.reshape(-1, f)
    y = (rows - rows.mean(1, keepdims=True)) / np.sqrt(rows.var(1, keepdims=True) + eps)
    if w is not None:
        y = y * w + b
    return y.reshape(x.shape)


def np_windows(x, kh, kw, s, p, pad_value=0.0):
    """[N, C, OH, OW, kh, kw] windows of the padded input."""
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=pad_value)
    oh, ow = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
    out = np.empty(x.shape[:2] + (oh, ow, kh, kw))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * s:i * s + kh, j * s:j * s + kw]
    return out


def np_conv2d(x, w, b, s, p):
    y = np.einsum("ncijhw,ochw->noij", np_windows(x, w.shape[2], w.shape[3], s, p), w)
    return y if b is None else y + b[None, :, None, None]


# ---- cross-entropy ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4), (1, 1)])
def test_cross_entropy_forward(shape, reduction, dtype):
    x = rng.standard_normal(shape) * 3
    t = rng.integers(0, shape[-1], shape[:-1]).astype(f64)
    got = F.cross_entropy(Tensor(x, dtype=dtype), Tensor(t, dtype=dtype), reduction)
    assert_close(got, np_cross_entropy(x, t, reduction), rtol=1e-5 if dtype == np.float32 else None)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cross_entropy_noncontiguous_logits(layout, dtype):
    x, ref = make(rng.standard_normal((4, 6)), dtype, layout)
    t = rng.integers(0, 6, 4).astype(f64)
    assert_close(F.cross_entropy(x, Tensor(t, dtype=dtype)), np_cross_entropy(ref, t), rtol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_grad(reduction):
    x = leaf(rng.standard_normal((2, 3, 4)))
    t = Tensor(rng.integers(0, 4, (2, 3)).astype(f64), dtype=f64)
    assert gradcheck(lambda a: F.cross_entropy(a, t, reduction), [x])


def test_cross_entropy_grad_formula():
    """(softmax - onehot) / N, in one backward."""
    x = rng.standard_normal((5, 3))
    t = np.array([0, 2, 1, 1, 0.0])
    a = leaf(x)
    F.cross_entropy(a, Tensor(t, dtype=f64)).backward()
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert_close(a.grad, (p - np.eye(3)[t.astype(int)]) / 5)


def test_cross_entropy_finite_for_huge_logits(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e4, 1e4, -1e4]])
    t = np.array([1.0, 2.0, 0.0])
    a = Tensor(x, requires_grad=True, dtype=dtype)
    loss = F.cross_entropy(a, Tensor(t, dtype=dtype))
    assert np.isfinite(loss.item())
    assert abs(loss.item() - np_cross_entropy(x, t)) < 1e-3
    loss.backward()
    assert np.isfinite(to_np(a.grad)).all()


def test_cross_entropy_empty_batch_sum(dtype):
    got = F.cross_entropy(Tensor(np.zeros((0, 3)), dtype=dtype), Tensor(np.zeros((0,)), dtype=dtype), "sum")
    assert got.shape == [] and got.item() == 0.0


def test_cross_entropy_targets_from_host_data_are_checked():
    x = Tensor(rng.standard_normal((3, 4)))
    assert_close(F.cross_entropy(x, [0, 3, 1]), np_cross_entropy(to_np(x), np.array([0, 3, 1.0])), rtol=1e-5)
    assert_close(F.cross_entropy(x, np.array([2, 2, 1])), np_cross_entropy(to_np(x), np.array([2, 2, 1.0])),
                 rtol=1e-5)
    with pytest.raises(IndexOutOfRange, match="4"):
        F.cross_entropy(x, [0, 4, 1])
    with pytest.raises(IndexOutOfRange):
        F.cross_entropy(x, [0, -1, 1])
    with pytest.raises(IndexOutOfRange):
        F.cross_entropy(x, [0, 1.5, 1])


def test_cross_entropy_device_targets_out_of_range_raise_then_give_nan():
    """Device targets are not read back (no sync): an invalid class is reported by the kernel and raised at
    the next read; that row's loss is NaN."""
    from clownpiece.backend.checks import DeviceAssertError
    x = Tensor(rng.standard_normal((3, 4)))
    rows = F.cross_entropy(x, Tensor([0.0, 4.0, 1.5]), "none")
    with pytest.raises(DeviceAssertError, match="4"):
        rows.numpy()
    rows = rows.numpy()
    assert np.isfinite(rows[0]) and np.isnan(rows[1]) and np.isnan(rows[2])
    loss = F.cross_entropy(x, Tensor([0.0, -1.0, 1.0]))
    with pytest.raises(DeviceAssertError, match="-1"):
        loss.item()
    assert np.isnan(loss.item())


def test_cross_entropy_bad_arguments():
    x = Tensor(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=r"\[3\]"):
        F.cross_entropy(x, Tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, Tensor([0.0, 1.0, 2.0]), "avg")
    with pytest.raises(TypeError):
        F.cross_entropy([[1.0, 2.0]], Tensor([0.0]))


# ---- mse ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, dtype):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    ref = {"mean": ((a - b) ** 2).mean(), "sum": ((a - b) ** 2).sum(), "none": (a - b) ** 2}[reduction]
    assert_close(F.mse_loss(Tensor(a, dtype=dtype), Tensor(b, dtype=dtype), reduction), ref)
    assert gradcheck(lambda x, y: F.mse_loss(x, y, reduction), [leaf(a), leaf(b)])


def test_mse_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"\[3, 4\].*\[4, 3\]"):
        F.mse_loss(Tensor(np.zeros((3, 4))), Tensor(np.zeros((4, 3))))


# ---- layer norm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layer_norm_forward(layout, dtype):
    x, ref = make(rng.standard_normal((3, 5)) * 4 + 10, dtype, layout)
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    assert_close(F.layer_norm(x, 5), np_layer_norm(ref, 5), rtol=1e-4, atol=1e-4)
    got = F.layer_norm(x, 5, Tensor(w, dtype=dtype), Tensor(b, dtype=dtype))
    assert_close(got, np_layer_norm(ref, 5, w, b), rtol=1e-4, atol=1e-4)


def test_layer_norm_course_num_features_spans_trailing_dims():
    x = rng.standard_normal((2, 3, 4))
    assert_close(F.layer_norm(Tensor(x, dtype=f64), 12), np_layer_norm(x, 12))
    assert_close(F.layer_norm(Tensor(x, dtype=f64), [3, 4]), np_layer_norm(x, 12))


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_grad(affine):
    x = leaf(rng.standard_normal((2, 3, 4)))
    if affine:
        w, b = leaf(rng.standard_normal(4)), leaf(rng.standard_normal(4))
        assert gradcheck(lambda a, c, d: F.layer_norm(a, 4, c, d), [x, w, b])
    else:
        assert gradcheck(lambda a: F.layer_norm(a, 12), [x])


def test_layer_norm_bad_feature_size():
    x = Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="num_features=5"):
        F.layer_norm(x, 5)
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, [4, 3])
    with pytest.raises(ValueError, match="weight"):
        F.layer_norm(x, 4, Tensor(np.ones(3)), Tensor(np.ones(3)))


# ---- convolution --------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (0, 1))])
def test_conv2d_forward(stride, padding, dtype):
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    got = F.conv2d(Tensor(x, dtype=dtype), Tensor(w, dtype=dtype), Tensor(b, dtype=dtype), stride, padding)
    s, p = np.broadcast_to(stride, 2), np.broadcast_to(padding, 2)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh, ow = (xp.shape[2] - 3) // s[0] + 1, (xp.shape[3] - 2) // s[1] + 1
    ref = np.empty((2, 4, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * s[0]:i * s[0] + 3, j * s[1]:j * s[1] + 2]
            ref[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert got.is_contiguous()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_noncontiguous_input(layout, dtype):
    x, ref = make(rng.standard_normal((1, 2, 5, 5)), dtype, layout)
    w = rng.standard_normal((3, 2, 2, 2))
    assert_close(F.conv2d(x, Tensor(w, dtype=dtype)), np_conv2d(ref, w, None, 1, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_grad(bias):
    x, w = leaf(rng.standard_normal((2, 2, 5, 4))), leaf(rng.standard_normal((3, 2, 3, 2)))
    if bias:
        b = leaf(rng.standard_normal(3))
        assert gradcheck(lambda a, c, d: F.conv2d(a, c, d, stride=2, padding=1), [x, w, b])
    else:
        assert gradcheck(lambda a, c: F.conv2d(a, c, None, 1, (1, 0)), [x, w])


def test_conv2d_bad_inputs():
    x, w = Tensor(np.zeros((1, 3, 5, 5))), Tensor(np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="3 channels"):
        F.conv2d(x, w)
    with pytest.raises(ValueError, match="4-d"):
        F.conv2d(Tensor(np.zeros((3, 5, 5))), Tensor(np.zeros((4, 3, 3, 3))))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(Tensor(np.zeros((1, 2, 2, 2))), w)
    with pytest.raises(ValueError, match="bias"):
        F.conv2d(Tensor(np.zeros((1, 2, 5, 5))), w, Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(Tensor(np.zeros((1, 2, 5, 5))), w, stride=0)


# ---- pooling --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_pool_forward(kernel, stride, padding, layout, dtype):
    x, ref = make(rng.standard_normal((2, 3, 7, 6)), dtype, layout)
    k = np.broadcast_to(kernel, 2)
    s = k if stride is None else np.broadcast_to(stride, 2)
    p = np.broadcast_to(padding, 2)
    xp_max = np.pad(ref, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
    xp_avg = np.pad(ref, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh, ow = (xp_max.shape[2] - k[0]) // s[0] + 1, (xp_max.shape[3] - k[1]) // s[1] + 1
    mx, av = np.empty((2, 3, oh, ow)), np.empty((2, 3, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = (slice(None), slice(None), slice(i * s[0], i * s[0] + k[0]), slice(j * s[1], j * s[1] + k[1]))
            mx[:, :, i, j] = xp_max[win].max(axis=(2, 3))
            av[:, :, i, j] = xp_avg[win].mean(axis=(2, 3))
    assert_close(F.max_pool2d(x, kernel, stride, padding), mx)
    assert_close(F.avg_pool2d(x, kernel, stride, padding), av)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), (2, 1, 0)])
def test_pool_grad(pool, kernel, stride, padding):
    x = leaf(rng.permutation(2 * 2 * 5 * 4).reshape(2, 2, 5, 4) * 0.1)  # distinct values: no max ties
    assert gradcheck(lambda a: pool(a, kernel, stride, padding), [x])


def test_max_pool_propagates_nan():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    got = to_np(F.max_pool2d(Tensor(x), 2))
    assert np.isnan(got[0, 0, 0, 0]) and got[0, 0, 1, 1] == 15.0


def test_pool_bad_arguments():
    x = Tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="does not fit"):
        F.avg_pool2d(x, 5)
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool2d(x, 2.5)


# ---- activations and small functional ops --------------------------------------------------------
ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x)),
    "softmax": (F.softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    "log_softmax": (F.log_softmax, lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    "exp": (F.exp, np.exp),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation(name, dtype):
    fn, ref = ACTIVATIONS[name]
    x = rng.standard_normal((3, 4)) + 0.1
    assert_close(fn(Tensor(x, dtype=dtype)), ref(x), rtol=1e-5, atol=1e-6)
    assert gradcheck(fn, [leaf(x)])


def test_gelu_is_exact_erf_form():
    from math import erf, sqrt
    x = np.linspace(-3, 3, 13)
    assert_close(F.gelu(Tensor(x, dtype=f64)), [v * 0.5 * (1 + erf(v / sqrt(2))) for v in x])


def test_linear_matches_numpy(dtype):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    assert_close(F.linear(Tensor(x, dtype=dtype), Tensor(w, dtype=dtype), Tensor(b, dtype=dtype)), x @ w.T + b,
                 rtol=1e-5, atol=1e-5)


def test_dropout():
    manual_seed(3)
    x = Tensor(np.ones((200, 50)))
    y = to_np(F.dropout(x, 0.3))
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert (to_np(F.dropout(x, 1.0)) == 0).all()
    with pytest.raises(ValueError):
        F.dropout(x, 1.5)
    a = leaf(np.ones((4, 5)))
    out = F.dropout(a, 0.5)
    out.sum().backward()
    np.testing.assert_allclose(to_np(a.grad), to_np(out))  # the grad is the (scaled) mask


def test_embedding_function():
    w = rng.standard_normal((6, 3))
    ids = np.array([[1.0, 5.0], [1.0, 0.0]])
    a = leaf(w)
    out = F.embedding(Tensor(ids, dtype=f64), a)
    assert_close(out, w[ids.astype(int)])
    out.sum().backward()
    assert_close(a.grad, np.array([1, 2, 0, 0, 0, 1])[:, None] * np.ones((6, 3)))  # repeated ids accumulate


def test_functional_rejects_non_tensors():
    with pytest.raises(TypeError, match="relu"):
        F.relu([1.0, -1.0])


def test_fused_tensor_methods_record():
    """The fused ops are Tensor methods too, and record through their Functions."""
    x = leaf(rng.standard_normal((1, 1, 4, 4)))
    x.max_pool2d(2).sum().backward()
    assert to_np(x.grad).sum() == 4
    with no_grad():
        assert x.avg_pool2d(2).grad_fn is None
