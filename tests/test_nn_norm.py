"""Normalisation layers: BatchNorm1d/2d, GroupNorm, RMSNorm, LayerNorm's PyTorch forms and the course's
channel-last BatchNorm on the norm kernels. Forward against numpy float64 formulas, running statistics
against PyTorch's update rule, gradients by finite differences (float64) in train and eval modes, state_dict
keys/shapes as PyTorch names them, launch counts, and errors raised before any launch."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np

import clownpiece as cp
import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck, no_grad
from clownpiece.nn import functional as F

rng = np.random.default_rng(13)
f64 = np.float64


def leaf(arr):
    return Tensor(np.asarray(arr, f64), requires_grad=True, dtype=f64)


def randomize(module):
    """Non-trivial affine parameters (weight 1, bias 0 would hide mistakes in their use)."""
    with no_grad():
        for p in module.parameters():
            p.copy_(Tensor(rng.standard_normal(p.shape), dtype=p.dtype))
    return module


def params_gradcheck(module, x):
    return gradcheck(lambda inp, *ps: module(inp), [x] + list(module.parameters()))


def np_bn(x, mean, var, w=None, b=None, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if w is not None:
        y = y * w.reshape(shape) + b.reshape(shape)
    return y


def batch_axes(x):
    return (0,) + tuple(range(2, x.ndim))


# ---- BatchNorm1d / BatchNorm2d ----------------------------------------------------------------------
@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (4, 3, 5)),
                                       (nn.BatchNorm2d, (4, 3, 5, 6))])
def test_batch_norm_train_then_eval(cls, shape, dtype):
    m = randomize(cls(3, momentum=0.3, dtype=dtype))
    w, b = to_np(m.weight), to_np(m.bias)
    xs = [rng.standard_normal(shape) * 2 + 1.5 for _ in range(2)]
    rm, rv = np.zeros(3), np.ones(3)
    for x in xs:
        y = m(Tensor(x, dtype=dtype))
        ax = batch_axes(x)
        assert_close(y, np_bn(x, x.mean(ax), x.var(ax), w, b), rtol=1e-4, atol=1e-4)
        rm = 0.7 * rm + 0.3 * x.mean(ax)
        rv = 0.7 * rv + 0.3 * x.var(ax, ddof=1)  # PyTorch: the unbiased variance for the running estimate
    assert_close(m.running_mean, rm, rtol=1e-5, atol=1e-6)
    assert_close(m.running_var, rv, rtol=1e-5, atol=1e-6)
    assert m.num_batches_tracked.item() == 2 and m.num_batches_tracked.shape == []
    m.eval()
    x = rng.standard_normal(shape)
    assert_close(m(Tensor(x, dtype=dtype)), np_bn(x, rm, rv, w, b), rtol=1e-4, atol=1e-4)
    assert m.num_batches_tracked.item() == 2  # eval does not count or update
    assert_close(m.running_mean, rm, rtol=1e-5, atol=1e-6)


def test_batch_norm_cumulative_momentum_none():
    m = nn.BatchNorm2d(2, momentum=None, dtype=f64)
    xs = [rng.standard_normal((3, 2, 4, 4)) + i for i in range(3)]
    for x in xs:
        m(Tensor(x, dtype=f64))
    # momentum None: the running stats are the plain average of the batch statistics seen
    assert_close(m.running_mean, np.mean([x.mean((0, 2, 3)) for x in xs], 0))
    assert_close(m.running_var, np.mean([x.var((0, 2, 3), ddof=1) for x in xs], 0))
    assert m.num_batches_tracked.item() == 3


def test_batch_norm_without_running_stats_or_affine():
    m = nn.BatchNorm2d(3, affine=False, track_running_stats=False, dtype=f64)
    assert list(m.parameters()) == [] and m.running_mean is None and m.num_batches_tracked is None
    x = rng.standard_normal((2, 3, 4, 5))
    ref = np_bn(x, x.mean((0, 2, 3)), x.var((0, 2, 3)))
    assert_close(m(Tensor(x, dtype=f64)), ref)
    assert_close(m.eval()(Tensor(x, dtype=f64)), ref)  # no running stats: batch statistics in eval too


def test_batch_norm_state_dict_matches_pytorch_names():
    m = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4))
    sd = m.state_dict()
    assert list(sd) == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked"] or list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                                                   "1.running_mean", "1.running_var",
                                                                   "1.num_batches_tracked"]
    assert [sd[k].shape for k in ("1.weight", "1.bias", "1.running_mean", "1.running_var")] == [[4]] * 4
    assert sd["1.num_batches_tracked"].shape == []
    assert [n for n, _ in nn.BatchNorm1d(2).named_buffers()] == ["running_mean", "running_var",
                                                                 "num_batches_tracked"]
    # a PyTorch checkpoint's arrays (num_batches_tracked is int64 there) load one to one
    bn = nn.BatchNorm2d(4)
    arrays = {"weight": np.full(4, 2.0, np.float32), "bias": np.zeros(4, np.float32),
              "running_mean": np.arange(4, dtype=np.float32), "running_var": np.full(4, 3.0, np.float32),
              "num_batches_tracked": np.array(7, np.int64)}
    assert bn.load_state_dict(arrays) == ([], [])
    assert bn.num_batches_tracked.item() == 7 and to_np(bn.running_mean).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2), (3, 3, 2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(shape, training):
    cls = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    m = randomize(cls(3, dtype=f64))
    with no_grad():
        m.running_mean.copy_(Tensor(rng.standard_normal(3), dtype=f64))
        m.running_var.copy_(Tensor(rng.uniform(0.5, 2, 3), dtype=f64))
    m.train(training)
    assert params_gradcheck(m, leaf(rng.standard_normal(shape)))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_batch_norm_non_contiguous_input(layout, dtype):
    t, x = make(rng.standard_normal((4, 3, 5)), dtype, layout)
    m = nn.BatchNorm1d(3, dtype=dtype)
    assert_close(m(t), np_bn(x, x.mean((0, 2)), x.var((0, 2))), rtol=1e-4, atol=1e-4)


def test_batch_norm_launches():
    """Training forward: statistics (with the running update and count folded in) + normalise; backward:
    per-channel sums + dx. Eval forward: the running rstd (one fused op) + normalise."""
    m = nn.BatchNorm2d(4)
    x = Tensor(rng.standard_normal((2, 4, 3, 3)), requires_grad=True)
    m(x)
    cp.synchronize()
    before, reads = cp.backend.stats()["launches"], cp.backend.stats()["d2h_count"]
    y = m(x)
    assert cp.backend.stats()["launches"] - before == 2
    y.backward(cp.ones_like(y))
    assert cp.backend.stats()["launches"] - before <= 2 + 1 + 2  # + the ones seed
    assert cp.backend.stats()["d2h_count"] == reads  # nothing read back
    m.eval()
    before = cp.backend.stats()["launches"]
    m(x)
    assert cp.backend.stats()["launches"] - before == 2


def test_batch_norm_errors_before_launch():
    m, m1 = nn.BatchNorm2d(3), nn.BatchNorm1d(3)
    with no_launch():
        with pytest.raises(ValueError, match="4D"):
            m(Tensor(np.zeros((2, 3, 4))))
        with pytest.raises(ValueError, match="channels"):
            m(Tensor(np.zeros((2, 4, 2, 2))))
        with pytest.raises(ValueError, match="more than one value"):
            m1(Tensor(np.zeros((1, 3))))
        with pytest.raises(ValueError, match="2D or 3D"):
            m1(Tensor(np.zeros((1, 3, 2, 2))))
        with pytest.raises(ValueError, match="running_mean"):
            F.batch_norm(Tensor(np.zeros((2, 3))), None, None, training=False)
        with pytest.raises(ValueError, match=r"weight.*\[3\]"):
            F.batch_norm(Tensor(np.zeros((2, 3))), None, None, Tensor(np.ones(2)), None, training=True)
    assert repr(m) == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"


@pytest.mark.parametrize("dtype", [np.float32, f64])
def test_num_batches_tracked_is_an_int64_count_like_pytorch(dtype, tmp_path):
    """PyTorch's buffer is a 0-dim int64 whatever the layer's dtype, and stays one through Module.to. A count
    loaded from a checkpoint (int64, or an older float32 one) is where momentum=None's average resumes: the
    kernel reads the int64 count, so the running mean after one more batch is (7 * old + batch) / 8."""
    m = nn.BatchNorm2d(2, momentum=None, dtype=dtype)
    assert m.num_batches_tracked.dtype is cp.int64 and m.num_batches_tracked.shape == []
    m.double().half().float()
    assert m.num_batches_tracked.dtype is cp.int64 and m.running_mean.dtype is cp.float32
    m.to(dtype)
    old_mean, old_var = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    for count in (np.array(7, np.int64), np.array(7.0, np.float32)):
        m.load_state_dict({"weight": np.ones(2), "bias": np.zeros(2), "running_mean": old_mean,
                           "running_var": old_var, "num_batches_tracked": count})
        assert m.num_batches_tracked.dtype is cp.int64 and m.num_batches_tracked.item() == 7
        assert type(m.num_batches_tracked.item()) is int
        x = rng.standard_normal((3, 2, 2, 2)) * 3 + 1
        m(Tensor(x, dtype=dtype))
        assert_close(m.running_mean, (7 * old_mean + x.mean((0, 2, 3))) / 8, rtol=1e-5, atol=1e-6)
        assert_close(m.running_var, (7 * old_var + x.var((0, 2, 3), ddof=1)) / 8, rtol=1e-5, atol=1e-6)
        assert m.num_batches_tracked.item() == 8
    m.momentum = 0.1
    for _ in range(3):  # a momentum: the count still advances, in int64
        m(Tensor(rng.standard_normal((4, 2, 2, 1)), dtype=dtype))
    sd = m.state_dict()
    assert sd["num_batches_tracked"].dtype is cp.int64 and sd["num_batches_tracked"].item() == 11
    cp.save(sd, tmp_path / "bn.cpt")
    back = cp.load(tmp_path / "bn.cpt")
    assert back["num_batches_tracked"].dtype is cp.int64 and back["num_batches_tracked"].item() == 11
    m.reset_running_stats()
    assert m.num_batches_tracked.item() == 0 and m.num_batches_tracked.dtype is cp.int64


def test_functional_batch_norm_wants_an_int64_count():
    x, rm, rv = Tensor(np.ones((2, 3))), Tensor(np.zeros(3)), Tensor(np.ones(3))
    with no_launch():
        with pytest.raises(TypeError, match="num_batches_tracked must be an int64 tensor.*float32"):
            F.batch_norm(x, rm, rv, training=True, momentum=None, num_batches_tracked=Tensor(0.0))
        with pytest.raises(ValueError, match=r"num_batches_tracked must have shape \[\]"):
            F.batch_norm(x, rm, rv, training=True, momentum=None, num_batches_tracked=cp.tensor([0]))
    count = cp.tensor(0)
    for step in range(1, 4):
        x = rng.standard_normal((5, 3))
        F.batch_norm(Tensor(x), rm, rv, training=True, momentum=None, num_batches_tracked=count)
        assert count.item() == step


def test_functional_batch_norm_updates_buffers_in_place():
    x = rng.standard_normal((6, 2, 3))
    rm, rv = Tensor(np.zeros(2)), Tensor(np.ones(2))
    F.batch_norm(Tensor(x), rm, rv, training=True, momentum=0.5)
    assert_close(rm, 0.5 * x.mean((0, 2)), rtol=1e-5, atol=1e-6)
    assert_close(rv, 0.5 + 0.5 * x.var((0, 2), ddof=1), rtol=1e-5, atol=1e-6)


# ---- the course's channel-last BatchNorm on the same kernels ------------------------------------------
def test_course_batch_norm_keeps_biased_running_variance_and_no_counter():
    m = nn.BatchNorm(3, momentum=0.5, dtype=f64)
    x = rng.standard_normal((2, 5, 3))
    rows = x.reshape(-1, 3)
    assert_close(m(Tensor(x, dtype=f64)), ((rows - rows.mean(0)) / np.sqrt(rows.var(0) + 1e-5)).reshape(x.shape))
    assert_close(m.running_var, 0.5 + 0.5 * rows.var(0))
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    assert nn.BatchNorm(3, track_running_stats=False).running_mean is None


# ---- GroupNorm --------------------------------------------------------------------------------------
def np_gn(x, g, w=None, b=None, eps=1e-5):
    n, c = x.shape[:2]
    r = x.reshape(n, g, -1)
    y = ((r - r.mean(-1, keepdims=True)) / np.sqrt(r.var(-1, keepdims=True) + eps)).reshape(x.shape)
    if w is not None:
        shape = (1, c) + (1,) * (x.ndim - 2)
        y = y * w.reshape(shape) + b.reshape(shape)
    return y


@pytest.mark.parametrize("groups,shape", [(1, (2, 4, 3)), (2, (2, 4, 3, 3)), (4, (3, 4, 5)), (3, (2, 6))])
def test_group_norm(groups, shape, dtype):
    m = randomize(nn.GroupNorm(groups, shape[1], dtype=dtype))
    x = rng.standard_normal(shape) * 3 + 2
    assert_close(m(Tensor(x, dtype=dtype)), np_gn(x, groups, to_np(m.weight), to_np(m.bias)), rtol=1e-4,
                 atol=1e-4)
    assert_close(m.eval()(Tensor(x, dtype=dtype)), np_gn(x, groups, to_np(m.weight), to_np(m.bias)), rtol=1e-4,
                 atol=1e-4)  # no running statistics: the same in eval mode


@pytest.mark.parametrize("groups,shape,affine", [(2, (2, 4, 3), True), (1, (2, 3, 2, 2), True),
                                                 (3, (2, 6, 2), False), (2, (1, 4), True)])
def test_group_norm_gradients(groups, shape, affine):
    m = randomize(nn.GroupNorm(groups, shape[1], affine=affine, dtype=f64))
    assert params_gradcheck(m, leaf(rng.standard_normal(shape)))


def test_group_norm_state_and_errors():
    m = nn.GroupNorm(2, 4)
    assert list(m.state_dict()) == ["weight", "bias"] and m.weight.shape == [4]
    assert repr(m) == "GroupNorm(2, 4, eps=1e-05, affine=True)"
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with no_launch():
        with pytest.raises(ValueError, match=r"\[N, 4, \*\]"):
            m(Tensor(np.zeros((2, 3, 2))))
        with pytest.raises(ValueError, match="num_groups"):
            F.group_norm(Tensor(np.zeros((2, 4, 2))), 3)


# ---- RMSNorm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,norm", [((3, 4), [4]), ((2, 3, 4), (3, 4)), ((5,), 5)])
def test_rms_norm(shape, norm, dtype):
    m = randomize(nn.RMSNorm(norm, dtype=dtype))
    x = rng.standard_normal(shape)
    k = len(m.normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    eps = np.finfo(dtype).eps  # eps=None: the dtype's machine epsilon
    ref = x / np.sqrt((x * x).mean(axes, keepdims=True) + eps) * to_np(m.weight)
    assert_close(m(Tensor(x, dtype=dtype)), ref, rtol=1e-5, atol=1e-5)
    assert m.weight.shape == list(m.normalized_shape)
    assert params_gradcheck(randomize(nn.RMSNorm(norm, eps=1e-3, dtype=f64)), leaf(x))


def test_rms_norm_without_weight_and_errors():
    m = nn.RMSNorm([3], eps=0.5, elementwise_affine=False)
    assert list(m.parameters()) == [] and repr(m) == "RMSNorm((3,), eps=0.5, elementwise_affine=False)"
    x = rng.standard_normal((2, 3))
    assert_close(m(Tensor(x)), x / np.sqrt((x * x).mean(-1, keepdims=True) + 0.5), rtol=1e-5)
    assert gradcheck(lambda a: F.rms_norm(a, [3], eps=0.5), [leaf(x)])
    with no_launch():
        with pytest.raises(ValueError, match="normalized_shape"):
            m(Tensor(np.zeros((3, 2))))


# ---- LayerNorm's PyTorch forms ------------------------------------------------------------------------
def test_layer_norm_shape_list_and_elementwise_affine(dtype):
    m = randomize(nn.LayerNorm([4, 5], dtype=dtype))
    assert m.weight.shape == [4, 5] and m.bias.shape == [4, 5] and m.normalized_shape == (4, 5)
    assert repr(m) == "LayerNorm((4, 5), eps=1e-05, elementwise_affine=True)"
    x = rng.standard_normal((2, 3, 4, 5))
    r = x.reshape(6, 20)
    ref = ((r - r.mean(1, keepdims=True)) / np.sqrt(r.var(1, keepdims=True) + 1e-5)).reshape(x.shape)
    assert_close(m(Tensor(x, dtype=dtype)), ref * to_np(m.weight) + to_np(m.bias), rtol=1e-4, atol=1e-4)
    assert list(nn.LayerNorm([4], elementwise_affine=False).parameters()) == []
    with pytest.raises(ValueError, match="normalized_shape"):
        m(Tensor(np.zeros((2, 5, 4))))


def test_layer_norm_weight_without_bias():
    m = randomize(nn.LayerNorm(4, bias=False, dtype=f64))
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    x = rng.standard_normal((3, 4))
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * to_np(m.weight)
    assert_close(m(Tensor(x, dtype=f64)), ref)
    assert params_gradcheck(m, leaf(x))
    w = leaf(rng.standard_normal(4))
    b = leaf(rng.standard_normal(4))
    assert gradcheck(lambda a, c: F.layer_norm(a, [4], None, c), [leaf(x), b])
    assert gradcheck(lambda a, c: F.layer_norm(a, [4], c), [leaf(x), w])
