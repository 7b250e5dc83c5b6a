"""The losses of nn.functional and nn (nn/loss_functions.py, ops/loss.py, cl_kernels/loss.cl): values against
PyTorch's formulas written out in numpy float64, gradients by finite differences (float64), every
reduction, class weights, ignore_index, label smoothing, the [N, C, d1, d2] layout, empty batches, and the
errors raised before any launch."""
import re
import warnings

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np

from clownpiece import Tensor, backend, nn
from clownpiece._layout import ShapeError
from clownpiece.autograd import gradcheck
from clownpiece.nn import functional as F

rng = np.random.default_rng(11)
f64 = np.float64
REDUCTIONS = ["mean", "sum", "none"]
cross_entropy = F.cross_entropy


def leaf(arr, dtype=f64):
    return Tensor(np.asarray(arr, dtype), requires_grad=True, dtype=dtype)


def T(arr, dtype=f64):
    return Tensor(np.asarray(arr, f64), dtype=dtype)


def reduce_np(loss, reduction, divisor=None):
    if reduction == "none":
        return loss
    return loss.sum() / (loss.size if divisor is None else divisor) if reduction == "mean" else loss.sum()


# ---- cross-entropy and NLL: numpy references ---------------------------------------------------------
def log_softmax_np(x, dim):
    m = x.max(dim, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(dim, keepdims=True))


def nll_np(logp, t, dim, w=None, ignore=-100, eps=0.0, reduction="mean"):
    """PyTorch's cross_entropy (label smoothing included) on log-probabilities logp with class dim `dim`."""
    c = logp.shape[dim]
    w = np.ones(c) if w is None else w
    ti = t.astype(int)
    keep = ti != ignore
    safe = np.where(keep, ti, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, dim), dim).squeeze(dim)
    nll = -picked * w[safe] * keep
    wshape = [1] * logp.ndim
    wshape[dim] = c
    smooth = -(logp * w.reshape(wshape)).sum(dim) * keep
    loss = (1 - eps) * nll + eps / c * smooth
    return reduce_np(loss, reduction, (w[safe] * keep).sum())


def ce_prob_np(x, p, dim, w=None, eps=0.0, reduction="mean"):
    c = x.shape[dim]
    q = p * (1 - eps) + eps / c
    if w is not None:
        wshape = [1] * x.ndim
        wshape[dim] = c
        q = q * w.reshape(wshape)
    loss = -(log_softmax_np(x, dim) * q).sum(dim)
    return reduce_np(loss, reduction, x.size // c if x.size else 0)


# (input shape, class dim, target shape): PyTorch's layouts, then the course's [..., C]
CLASS_LAYOUTS = [((6, 5), 1, (6,)), ((5,), 0, ()), ((3, 4, 2, 3), 1, (3, 2, 3)), ((2, 3, 4), 2, (2, 3))]


def class_targets(shape, dim, tshape, ignore=None):
    t = rng.integers(0, shape[dim], tshape).astype(f64)
    if ignore is not None and t.size > 1:
        t.reshape(-1)[::3] = ignore
    return t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", CLASS_LAYOUTS, ids=["NC", "C", "NCdd", "course"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
@pytest.mark.parametrize("eps", [0.0, 0.15], ids=["", "smooth"])
def test_cross_entropy_class_targets(layout, reduction, weighted, eps, dtype):
    shape, dim, tshape = layout
    x = rng.standard_normal(shape) * 3
    t = class_targets(shape, dim, tshape, ignore=-100)
    w = rng.random(shape[dim]) + 0.5 if weighted else None
    got = cross_entropy(T(x, dtype), T(t, dtype), None if w is None else T(w, dtype), reduction=reduction,
                          label_smoothing=eps)
    ref = nll_np(log_softmax_np(x, dim), t, dim, w, -100, eps, reduction)
    assert got.shape == list(np.shape(ref))
    assert_close(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-10)


def test_cross_entropy_ignore_index_inside_the_classes():
    """ignore_index may name a real class: its targets count for nothing, not even in the 'mean' divisor."""
    x = rng.standard_normal((7, 4))
    t = np.array([0, 2, 2, 1, 3, 2, 0.0])
    w = np.array([1.0, 2.0, 3.0, 4.0])
    for eps in (0.0, 0.3):
        got = cross_entropy(T(x), T(t), T(w), ignore_index=2, label_smoothing=eps)
        assert_close(got, nll_np(log_softmax_np(x, 1), t, 1, w, 2, eps))


def test_cross_entropy_all_ignored_mean_is_nan_sum_is_zero():
    x = T(rng.standard_normal((3, 4)))
    t = T([-100.0, -100.0, -100.0])
    assert np.isnan(cross_entropy(x, t).item())
    assert cross_entropy(x, t, reduction="sum").item() == 0.0
    assert (to_np(cross_entropy(x, t, reduction="none")) == 0).all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cross_entropy_noncontiguous_logits_nchw(layout, dtype):
    x, ref = make(rng.standard_normal((4, 3, 5)), dtype, layout)  # [N, C, d1] after the layout
    t = class_targets(ref.shape, 1, (ref.shape[0],) + ref.shape[2:])
    w = rng.random(ref.shape[1]) + 0.5
    got = cross_entropy(x, T(t, dtype), T(w, dtype), label_smoothing=0.1)
    assert_close(got, nll_np(log_softmax_np(ref, 1), t, 1, w, -100, 0.1), rtol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", CLASS_LAYOUTS[:3], ids=["NC", "C", "NCdd"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
@pytest.mark.parametrize("eps", [0.0, 0.2], ids=["", "smooth"])
def test_cross_entropy_probability_targets(layout, reduction, weighted, eps, dtype):
    shape, dim, _ = layout
    x = rng.standard_normal(shape) * 2
    p = np.exp(log_softmax_np(rng.standard_normal(shape), dim))
    w = rng.random(shape[dim]) + 0.5 if weighted else None
    got = cross_entropy(T(x, dtype), T(p, dtype), None if w is None else T(w, dtype), reduction=reduction,
                          label_smoothing=eps)
    assert_close(got, ce_prob_np(x, p, dim, w, eps, reduction), rtol=1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_grad_class_targets(reduction):
    x = leaf(rng.standard_normal((2, 3, 2, 2)))
    t = T(class_targets((2, 3, 2, 2), 1, (2, 2, 2), ignore=-100))
    w = T(rng.random(3) + 0.5)
    assert gradcheck(lambda a: cross_entropy(a, t, w, reduction=reduction, label_smoothing=0.25), [x])
    assert gradcheck(lambda a: cross_entropy(a, t, reduction=reduction, label_smoothing=0.25), [x])
    assert gradcheck(lambda a: cross_entropy(a, t, w, reduction=reduction), [x])


def test_cross_entropy_grad_course_layout_with_ignored_rows():
    x = leaf(rng.standard_normal((2, 3, 4)))
    t = T([[0, -100, 3], [1, 2, -100.0]])
    assert gradcheck(lambda a: cross_entropy(a, t, label_smoothing=0.1), [x])
    cross_entropy(x, t).backward()
    g = to_np(x.grad)
    assert (g[0, 1] == 0).all() and (g[1, 2] == 0).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_grad_probability_targets(reduction):
    """Both the logits and the probabilities get gradients (PyTorch differentiates the target too)."""
    shape = (2, 3, 2)
    x = leaf(rng.standard_normal(shape))
    p = leaf(np.exp(log_softmax_np(rng.standard_normal(shape), 1)))
    w = T(rng.random(3) + 0.5)
    assert gradcheck(lambda a, b: cross_entropy(a, b, w, reduction=reduction, label_smoothing=0.3), [x, p])
    assert gradcheck(lambda a, b: cross_entropy(a, b, reduction=reduction), [x, p])


def test_cross_entropy_module_matches_functional():
    x = rng.standard_normal((5, 3, 2))
    t = class_targets((5, 3, 2), 1, (5, 2), ignore=1)
    w = rng.random(3) + 0.5
    loss = nn.CrossEntropyLoss(T(w), ignore_index=1, reduction="sum", label_smoothing=0.05)
    assert_close(loss(T(x), T(t)), nll_np(log_softmax_np(x, 1), t, 1, w, 1, 0.05, "sum"))
    assert "weight" in dict(loss.named_buffers())
    assert nn.CrossEntropyLoss().ignore_index == -100 and nn.CrossEntropyLoss().label_smoothing == 0.0


def test_cross_entropy_course_call_forms_keep_working():
    x = rng.standard_normal((4, 3))
    t = np.array([0, 2, 1, 2.0])
    ref = nll_np(log_softmax_np(x, 1), t, 1, reduction="sum")
    assert_close(F.cross_entropy(T(x), T(t), "sum"), ref)  # the course's positional reduction
    assert_close(nn.CrossEntropyLoss("sum")(T(x), T(t)), ref)
    assert_close(nn.CrossEntropyLoss(reduction="sum")(T(x), [0, 2, 1, 2]), ref)


def test_cross_entropy_layout_when_both_fit():
    """[N, K, K] logits with [N, K] targets fit both layouts: float targets (the course's labels) read the
    classes from the last dim; [N, C, d1] is taken where only it fits."""
    x = rng.standard_normal((2, 3, 3))
    t = rng.integers(0, 3, (2, 3)).astype(f64)
    assert_close(F.cross_entropy(T(x), T(t), reduction="none"),
                 nll_np(log_softmax_np(x, 2), t, 2, reduction="none"))
    x2 = rng.standard_normal((2, 4, 3))
    t2 = rng.integers(0, 4, (2, 3)).astype(f64)
    assert_close(F.cross_entropy(T(x2), T(t2), reduction="none"),
                 nll_np(log_softmax_np(x2, 1), t2, 1, reduction="none"))


def test_cross_entropy_finite_for_huge_logits_with_smoothing(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    t = np.array([1.0, 2.0])
    a = Tensor(x, requires_grad=True, dtype=dtype)
    loss = cross_entropy(a, T(t, dtype), label_smoothing=0.1)
    assert abs(loss.item() - nll_np(log_softmax_np(x, 1), t, 1, eps=0.1)) < 1e-3 * 1e4
    loss.backward()
    assert np.isfinite(to_np(a.grad)).all()


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_class_losses_on_empty_batches(fn, dtype):
    """PyTorch: 'mean' over no targets is NaN, 'sum' is 0, 'none' is empty."""
    f = getattr(F, fn)
    x, t = T(np.zeros((0, 3)), dtype), T(np.zeros((0,)), dtype)
    assert np.isnan(f(x, t).item())
    assert f(x, t, reduction="sum").item() == 0.0
    assert f(x, t, reduction="none").shape == [0]
    x4, t4 = T(np.zeros((2, 3, 0, 4)), dtype), T(np.zeros((2, 0, 4)), dtype)
    assert f(x4, t4, reduction="none").shape == [2, 0, 4]


def test_cross_entropy_empty_probability_batch_mean_is_nan():
    x = T(np.zeros((0, 3)))
    assert np.isnan(cross_entropy(x, T(np.zeros((0, 3)))).item())
    assert cross_entropy(x, T(np.zeros((0, 3))), reduction="sum").item() == 0.0


def test_cross_entropy_bad_arguments_raise_before_launching():
    x, t = T(rng.standard_normal((3, 4))), T([0.0, 1.0, 2.0])
    with no_launch():
        with pytest.raises(ValueError, match="reduction"):
            cross_entropy(x, t, reduction="avg")
        with pytest.raises(ValueError, match="label_smoothing"):
            cross_entropy(x, t, label_smoothing=1.5)
        with pytest.raises(ValueError, match="label_smoothing"):
            cross_entropy(x, t, label_smoothing=-0.1)
        with pytest.raises(ShapeError, match="weight"):
            cross_entropy(x, t, T([1.0, 2.0]))
        with pytest.raises(ShapeError, match=r"\[3\]"):
            cross_entropy(x, T([0.0, 1.0]))
        with pytest.raises(ShapeError, match=r"\[2, 3\]|\[2, 4\]"):
            cross_entropy(T(np.zeros((2, 3, 4))), T(np.zeros((2, 5))))
        with pytest.raises(ShapeError, match="0-dim"):
            cross_entropy(T(1.0), T(0.0))
        with pytest.raises(ShapeError, match="no classes"):
            cross_entropy(T(np.zeros((2, 0))), T([0.0, 0.0]))
        with pytest.raises(ShapeError, match="no classes"):
            F.nll_loss(T(np.zeros((2, 0, 3))), T(np.zeros((2, 3))))
        with pytest.raises(ValueError, match="ignore_index"):
            cross_entropy(x, T(np.full((3, 4), 0.25)), ignore_index=0)
        with pytest.raises(TypeError, match="ignore_index"):
            cross_entropy(x, t, ignore_index=1.5)
        with pytest.raises(TypeError):
            cross_entropy(x, t, [1.0, 2.0, 3.0, 4.0])
        with pytest.raises(ValueError, match="reduction"):
            nn.CrossEntropyLoss(reduction="avg")


def test_cross_entropy_host_targets_are_checked_against_the_class_dim():
    from clownpiece._layout import IndexOutOfRange
    x = rng.standard_normal((2, 5, 3))  # [N, C, d1]: classes in dim 1
    t = [[4, 0, 2], [1, 3, 4]]
    assert_close(F.cross_entropy(T(x), t), nll_np(log_softmax_np(x, 1), np.array(t, f64), 1))
    with no_launch(), pytest.raises(IndexOutOfRange, match="5"):
        F.cross_entropy(T(x), [[5, 0, 2], [1, 3, 4]])
    p = np.exp(log_softmax_np(rng.standard_normal((2, 5, 3)), 1))
    assert_close(F.cross_entropy(T(x), p.tolist()), ce_prob_np(x, p, 1))  # host probabilities


def test_cross_entropy_legacy_size_average_and_reduce():
    x, t = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2.0])
    with pytest.warns(UserWarning, match="deprecated"):
        got = cross_entropy(T(x), T(t), size_average=False)
    assert_close(got, nll_np(log_softmax_np(x, 1), t, 1, reduction="sum"))
    with pytest.warns(UserWarning):
        assert cross_entropy(T(x), T(t), reduce=False).shape == [4]


# ---- NLL ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", CLASS_LAYOUTS[:3], ids=["NC", "C", "NCdd"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
def test_nll_loss(layout, reduction, weighted, dtype):
    shape, dim, tshape = layout
    logp = log_softmax_np(rng.standard_normal(shape), dim)
    t = class_targets(shape, dim, tshape, ignore=-100)
    w = rng.random(shape[dim]) + 0.5 if weighted else None
    got = F.nll_loss(T(logp, dtype), T(t, dtype), None if w is None else T(w, dtype), reduction=reduction)
    assert_close(got, nll_np(logp, t, dim, w, -100, 0.0, reduction), rtol=1e-5 if dtype == np.float32 else 1e-12)
    mod = nn.NLLLoss(None if w is None else T(w, dtype), reduction=reduction)
    assert_close(mod(T(logp, dtype), T(t, dtype)), nll_np(logp, t, dim, w, -100, 0.0, reduction), rtol=1e-5)


def test_nll_loss_of_log_softmax_is_cross_entropy():
    x = rng.standard_normal((4, 5, 3))
    t = class_targets((4, 5, 3), 1, (4, 3), ignore=-100)
    w = T(rng.random(5) + 0.5)
    assert_close(F.nll_loss(T(log_softmax_np(x, 1)), T(t), w), to_np(cross_entropy(T(x), T(t), w)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_grad(reduction):
    x = leaf(rng.standard_normal((4, 3, 2)))
    t = T(class_targets((4, 3, 2), 1, (4, 2), ignore=-100))
    w = T(rng.random(3) + 0.5)
    assert gradcheck(lambda a: F.nll_loss(a, t, w, reduction=reduction), [x])
    t1 = T(class_targets((4, 3, 2), 1, (4, 2)))
    assert gradcheck(lambda a: F.nll_loss(a, t1, reduction=reduction, ignore_index=1), [x])


def test_nll_loss_bad_arguments():
    x = T(rng.standard_normal((3, 4)))
    with no_launch():
        with pytest.raises(ShapeError):
            F.nll_loss(x, T([0.0, 1.0]))
        with pytest.raises(ShapeError):
            F.nll_loss(x, T(np.zeros((3, 4))))  # no probability targets
        with pytest.raises(ShapeError):
            F.nll_loss(T(np.zeros((2, 3, 4))), T(np.zeros((2, 3))))  # PyTorch's layout only: [2, 4]
        with pytest.raises(ValueError, match="reduction"):
            F.nll_loss(x, T([0.0, 1.0, 2.0]), reduction="batchmean")
        with pytest.raises(ShapeError, match="weight"):
            nn.NLLLoss(T([1.0]))(x, T([0.0, 1.0, 2.0]))


def test_class_targets_out_of_range_raise_at_the_next_read():
    """A device target that is no class (nor ignore_index) is reported by the kernel and raised by the next
    host read (no extra sync); the loss there is NaN."""
    from clownpiece.backend.checks import DeviceAssertError
    x = T(rng.standard_normal((3, 4)))
    for fn in (F.nll_loss, F.cross_entropy):
        rows = fn(x, T([0.0, 4.0, 1.5]), reduction="none")
        with pytest.raises(DeviceAssertError, match=r"class target 4 is not in \[0, 4\)"):
            rows.numpy()
        got = to_np(rows)  # the error was cleared when it was raised
        assert np.isfinite(got[0]) and np.isnan(got[1:]).all()
    loss = F.cross_entropy(x, Tensor(np.array([0, -1, 2]), dtype=np.int64), ignore_index=-100)
    with pytest.raises(DeviceAssertError, match="-1"):
        loss.item()
    assert F.cross_entropy(x, Tensor(np.array([0, -1, 2]), dtype=np.int64), ignore_index=-1).item() > 0


# ---- binary cross-entropy -------------------------------------------------------------------------------
def bce_np(x, t, w=None):
    with np.errstate(divide="ignore"):
        loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))
    return loss if w is None else loss * w


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
def test_binary_cross_entropy(reduction, weighted, dtype):
    x = rng.uniform(0.02, 0.98, (4, 3))
    t = rng.uniform(0, 1, (4, 3))
    w = rng.random(3) + 0.5 if weighted else None
    got = F.binary_cross_entropy(T(x, dtype), T(t, dtype), None if w is None else T(w, dtype), reduction=reduction)
    assert_close(got, reduce_np(bce_np(x, t, w), reduction), rtol=1e-5 if dtype == np.float32 else 1e-12)
    mod = nn.BCELoss(None if w is None else T(w, dtype), reduction=reduction)
    assert_close(mod(T(x, dtype), T(t, dtype)), reduce_np(bce_np(x, t, w), reduction), rtol=1e-5)


def test_binary_cross_entropy_clamps_its_logs_at_minus_100(dtype):
    x, t = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    assert_close(F.binary_cross_entropy(T(x, dtype), T(t, dtype), reduction="none"), [100.0, 100.0, 0.0, 0.0])


@pytest.mark.parametrize("bad,shown", [(1.5, "1.5"), (-0.25, "-0.25"), (np.nan, "nan"), (np.inf, "inf"),
                                       (1.0000001, "1.0000001")])
def test_binary_cross_entropy_input_outside_0_1_raises_at_the_next_read(bad, shown, dtype):
    """PyTorch refuses an input element outside [0, 1] (or NaN); inside a device tensor it is reported by the
    kernel and raised at the next host read (no extra sync), naming the op and the value; its loss is NaN."""
    from clownpiece.backend.checks import DeviceAssertError
    x = np.array([[0.25, 0.5], [bad, 1.0]])
    t = T(np.array([[1.0, 0.0], [1.0, 1.0]]), dtype)
    backend.synchronize()
    backend.reset_stats()
    rows = F.binary_cross_entropy(T(x, dtype), t, reduction="none")
    assert backend.stats()["d2h_count"] == 0
    with pytest.raises(DeviceAssertError, match=rf"binary_cross_entropy: all elements of input should be between "
                                                rf"0 and 1, got {re.escape(shown)} "):
        rows.numpy()
    got = to_np(rows)  # the error was cleared when it was raised
    assert np.isnan(got[1, 0]) and np.isfinite(np.delete(got.ravel(), 2)).all()
    np.testing.assert_allclose(got[0], bce_np(x[0], np.array([1.0, 0.0])), rtol=1e-6)
    loss = nn.BCELoss()(T(x, dtype), t)  # the module and a reduced loss: the same check
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        loss.item()
    assert np.isnan(loss.item())


def test_binary_cross_entropy_checks_float16_inputs_and_not_targets():
    from clownpiece.backend.checks import DeviceAssertError
    x = Tensor(np.array([0.5, 1.25, 0.5], np.float16), dtype=np.float16)
    with pytest.raises(DeviceAssertError, match="got 1.25 "):
        F.binary_cross_entropy(x, Tensor(np.array([0.0, 1.0, 1.0], np.float16), dtype=np.float16)).item()
    # targets outside [0, 1] are used as given (PyTorch does not check them either)
    x, t = np.array([0.25, 0.75]), np.array([2.0, -1.0])
    got = F.binary_cross_entropy(T(x), T(t), reduction="none")
    assert_close(got, bce_np(x, t), rtol=1e-6)
    # the bounds themselves are valid
    assert_close(F.binary_cross_entropy(T([0.0, 1.0]), T([0.0, 1.0]), reduction="sum"), 0.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_grad(reduction):
    x = leaf(rng.uniform(0.05, 0.95, (3, 4)))
    t = leaf(rng.uniform(0, 1, (3, 4)))
    w = T(rng.random(4) + 0.5)
    assert gradcheck(lambda a, b: F.binary_cross_entropy(a, b, w, reduction=reduction), [x, t])


def test_binary_cross_entropy_grad_is_pytorchs_at_the_ends():
    """dx = (x - t) / max(x (1 - x), 1e-12), finite at x = 0 and 1."""
    x = leaf([0.0, 1.0, 0.5])
    F.binary_cross_entropy(x, T([1.0, 0.0, 1.0]), reduction="sum").backward()
    assert_close(x.grad, [-1e12, 1e12, -2.0])


def bce_logits_np(x, t, pw=None, w=None):
    log_sig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
    lw = 1 if pw is None else 1 + (pw - 1) * t
    loss = (1 - t) * x - lw * log_sig
    return loss if w is None else loss * w


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos", [False, True], ids=["", "pos_weight"])
@pytest.mark.parametrize("weighted", [False, True], ids=["", "weight"])
def test_binary_cross_entropy_with_logits(reduction, pos, weighted, dtype):
    x = rng.standard_normal((5, 3)) * 4
    t = rng.uniform(0, 1, (5, 3))
    pw = rng.random(3) * 3 if pos else None
    w = rng.random((5, 1)) + 0.5 if weighted else None
    got = F.binary_cross_entropy_with_logits(T(x, dtype), T(t, dtype), None if w is None else T(w, dtype),
                                             reduction=reduction, pos_weight=None if pw is None else T(pw, dtype))
    ref = reduce_np(bce_logits_np(x, t, pw, w), reduction)
    assert_close(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    mod = nn.BCEWithLogitsLoss(None if w is None else T(w, dtype), reduction=reduction,
                               pos_weight=None if pw is None else T(pw, dtype))
    assert_close(mod(T(x, dtype), T(t, dtype)), ref, rtol=1e-5)


def test_binary_cross_entropy_with_logits_is_stable_for_large_logits(dtype):
    x = np.array([1e4, -1e4, 80.0, -80.0, 0.0])
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5])
    a = Tensor(x, requires_grad=True, dtype=dtype)
    loss = F.binary_cross_entropy_with_logits(a, T(t, dtype), reduction="none")
    assert_close(loss, bce_logits_np(x, t), rtol=1e-6)
    loss.sum().backward()
    assert_close(a.grad, 1 / (1 + np.exp(-np.clip(x, -700, 700))) - t, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_grad(reduction):
    """Gradients for the logits, the targets and pos_weight (broadcast over the batch)."""
    x, t, pw = leaf(rng.standard_normal((4, 3)) * 3), leaf(rng.uniform(0, 1, (4, 3))), leaf(rng.random(3) * 2)
    w = T(rng.random(3) + 0.5)
    assert gradcheck(lambda a, b, p: F.binary_cross_entropy_with_logits(a, b, w, reduction=reduction,
                                                                          pos_weight=p), [x, t, pw])
    assert gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), [x, t])


def test_binary_cross_entropy_bad_arguments():
    x, t = T(rng.uniform(0.1, 0.9, (3, 4))), T(rng.uniform(0, 1, (3, 4)))
    with no_launch():
        with pytest.raises(ShapeError, match="shape"):
            F.binary_cross_entropy(x, T(np.zeros((3, 1))))
        with pytest.raises(ShapeError, match="weight"):
            F.binary_cross_entropy(x, t, T(np.ones(3)))
        with pytest.raises(ShapeError, match="pos_weight"):
            F.binary_cross_entropy_with_logits(x, t, pos_weight=T(np.ones(3)))
        with pytest.raises(ShapeError):
            F.binary_cross_entropy_with_logits(x, T(np.zeros(4)))
        with pytest.raises(ValueError, match="reduction"):
            nn.BCEWithLogitsLoss(reduction="avg")
        with pytest.raises(TypeError):
            F.binary_cross_entropy(x, [[0.0] * 4] * 3)


def test_binary_cross_entropies_of_empty_tensors():
    e = T(np.zeros((0, 3)))
    for f in (F.binary_cross_entropy, F.binary_cross_entropy_with_logits):
        assert np.isnan(f(e, e).item())
        assert f(e, e, reduction="sum").item() == 0.0
        assert f(e, e, reduction="none").shape == [0, 3]


# ---- L1, smooth L1, Huber ----------------------------------------------------------------------------------
def smooth_l1_np(d, beta):
    a = np.abs(d)
    return a if beta == 0 else np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)


def huber_np(d, delta):
    a = np.abs(d)
    return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))


REGRESSION = [
    ("l1_loss", nn.L1Loss, {}, lambda d: np.abs(d)),
    ("smooth_l1_loss", nn.SmoothL1Loss, {"beta": 1.0}, lambda d: smooth_l1_np(d, 1.0)),
    ("smooth_l1_loss", nn.SmoothL1Loss, {"beta": 0.4}, lambda d: smooth_l1_np(d, 0.4)),
    ("smooth_l1_loss", nn.SmoothL1Loss, {"beta": 0.0}, lambda d: smooth_l1_np(d, 0.0)),
    ("huber_loss", nn.HuberLoss, {"delta": 1.0}, lambda d: huber_np(d, 1.0)),
    ("huber_loss", nn.HuberLoss, {"delta": 0.3}, lambda d: huber_np(d, 0.3)),
]
REGRESSION_IDS = ["l1", "smooth_l1", "smooth_l1_b0.4", "smooth_l1_b0", "huber", "huber_d0.3"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", REGRESSION, ids=REGRESSION_IDS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_regression_losses(case, reduction, layout, dtype):
    name, module, kw, formula = case
    x, xr = make(rng.standard_normal((4, 5)) * 2, dtype, layout)
    t = rng.standard_normal(xr.shape)
    ref = reduce_np(formula(xr - t), reduction)
    assert_close(getattr(F, name)(x, T(t, dtype), reduction=reduction, **kw), ref)
    assert_close(module(reduction=reduction, **kw)(x, T(t, dtype)), ref)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", REGRESSION, ids=REGRESSION_IDS)
def test_regression_losses_grad(case, reduction):
    name, _, kw, _ = case
    x, t = leaf(rng.standard_normal((3, 4)) * 2), leaf(rng.standard_normal((3, 4)))
    assert gradcheck(lambda a, b: getattr(F, name)(a, b, reduction=reduction, **kw), [x, t])


def test_regression_losses_bad_arguments():
    x = T(np.zeros((2, 3)))
    with no_launch():
        with pytest.raises(ValueError, match="beta"):
            F.smooth_l1_loss(x, x, beta=-1.0)
        with pytest.raises(ValueError, match="delta"):
            F.huber_loss(x, x, delta=0.0)
        with pytest.raises(ShapeError):
            F.l1_loss(x, T(np.zeros(3)))
        with pytest.raises(ValueError, match="reduction"):
            nn.L1Loss(reduction="max")
        with pytest.raises(TypeError):
            F.l1_loss(x, 1.0)


def test_regression_losses_of_empty_and_0_dim_tensors():
    e = T(np.zeros((0,)))
    assert np.isnan(F.l1_loss(e, e).item()) and F.huber_loss(e, e, reduction="sum").item() == 0.0
    assert_close(F.smooth_l1_loss(T(3.0), T(1.0)), 1.5)


# ---- KL divergence -------------------------------------------------------------------------------------------
def kl_np(x, t, log_target):
    if log_target:
        return np.exp(t) * (t - x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t == 0, 0.0, t * np.log(np.where(t == 0, 1.0, t))) - t * x


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target, dtype):
    x = log_softmax_np(rng.standard_normal((4, 5)), 1)
    p = np.exp(log_softmax_np(rng.standard_normal((4, 5)), 1))
    p[0, :2] = 0.0  # xlogy(0, 0) = 0
    t = np.log(p + 1e-3) if log_target else p
    loss = kl_np(x, t, log_target)
    ref = loss.sum() / 4 if reduction == "batchmean" else reduce_np(loss, reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = F.kl_div(T(x, dtype), T(t, dtype), reduction=reduction, log_target=log_target)
        mod = nn.KLDivLoss(reduction=reduction, log_target=log_target)(T(x, dtype), T(t, dtype))
    assert_close(got, ref)
    assert_close(mod, ref)


def test_kl_div_mean_warns():
    x = T(np.zeros((2, 2)))
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(x, x, reduction="mean")


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_grad(log_target):
    x = leaf(log_softmax_np(rng.standard_normal((3, 4)), 1))
    t = leaf(rng.uniform(0.1, 1, (3, 4)))
    assert gradcheck(lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=log_target), [x, t])


def test_kl_div_bad_arguments():
    x = T(np.zeros((2, 3)))
    with no_launch():
        with pytest.raises(ValueError, match="reduction"):
            F.kl_div(x, x, reduction="avg")
        with pytest.raises(ValueError, match="reduction"):
            nn.KLDivLoss(reduction="avg")
        with pytest.raises(ShapeError):
            F.kl_div(x, T(np.zeros((3, 2))))


# ---- margin ranking and cosine embedding ----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_loss(reduction, margin, dtype):
    x1, x2 = rng.standard_normal(6), rng.standard_normal(6)
    y = rng.choice([-1.0, 1.0], 6)
    ref = reduce_np(np.maximum(0, -y * (x1 - x2) + margin), reduction)
    assert_close(F.margin_ranking_loss(T(x1, dtype), T(x2, dtype), T(y, dtype), margin, reduction=reduction), ref)
    assert_close(nn.MarginRankingLoss(margin, reduction=reduction)(T(x1, dtype), T(x2, dtype), T(y, dtype)), ref)


def test_margin_ranking_loss_grad():
    x1, x2 = leaf(rng.standard_normal(5)), leaf(rng.standard_normal(5))
    y = T([1.0, -1.0, 1.0, -1.0, 1.0])
    assert gradcheck(lambda a, b: F.margin_ranking_loss(a, b, y, 0.3), [x1, x2])


def cosine_np(x1, x2, y, margin):
    cos = (x1 * x2).sum(-1) / np.sqrt(((x1 * x1).sum(-1) + 1e-12) * ((x2 * x2).sum(-1) + 1e-12))
    return np.where(y == 1, 1 - cos, 0.0) + np.where(y == -1, np.maximum(0, cos - margin), 0.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, -0.3, 0.2])
def test_cosine_embedding_loss(reduction, margin, dtype):
    x1, x2 = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    y = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 0.0])  # 0: neither, loss 0 (as PyTorch)
    ref = reduce_np(cosine_np(x1, x2, y, margin), reduction)
    assert_close(F.cosine_embedding_loss(T(x1, dtype), T(x2, dtype), T(y, dtype), margin, reduction=reduction), ref)
    got = nn.CosineEmbeddingLoss(margin, reduction=reduction)(T(x1, dtype), T(x2, dtype), T(y, dtype))
    assert_close(got, ref)
    assert_close(F.cosine_embedding_loss(T(x1[0], dtype), T(x2[0], dtype), T(-1.0, dtype), margin),
                 cosine_np(x1[0], x2[0], np.array(-1.0), margin))


def test_cosine_embedding_loss_grad():
    x1, x2 = leaf(rng.standard_normal((2, 3))), leaf(rng.standard_normal((2, 3)))
    y = T([1.0, -1.0])
    assert gradcheck(lambda a, b: F.cosine_embedding_loss(a, b, y, -0.5), [x1, x2])


def test_pair_losses_bad_arguments():
    a = T(np.zeros((3, 4)))
    with no_launch():
        with pytest.raises(ShapeError):
            F.margin_ranking_loss(a, a, T(np.zeros(3)))
        with pytest.raises(ShapeError):
            F.cosine_embedding_loss(a, a, T(np.zeros((3, 4))))
        with pytest.raises(ShapeError):
            F.cosine_embedding_loss(a, a, T(np.zeros(4)))
        with pytest.raises(ShapeError):
            F.cosine_embedding_loss(a, T(np.zeros((3, 5))), T(np.zeros(3)))
        with pytest.raises(ValueError, match="reduction"):
            nn.CosineEmbeddingLoss(reduction="avg")


def test_module_reprs_and_buffers():
    assert repr(nn.L1Loss()) == "L1Loss()"
    assert repr(nn.HuberLoss(reduction="sum")) == "HuberLoss(reduction='sum')"
    m = nn.BCEWithLogitsLoss(pos_weight=T([2.0, 3.0]))
    assert set(dict(m.named_buffers())) == {"pos_weight"}
    assert nn.NLLLoss().ignore_index == -100 and nn.SmoothL1Loss().beta == 1.0


# ---- layouts of the operands, and replay ------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_class_losses_take_noncontiguous_targets_and_weights(layout):
    x = rng.standard_normal((3, 5, 4))
    t, tr = make(rng.integers(0, 5, (3, 4)).astype(f64), f64, layout)
    w_full = rng.random((5, 2)) + 0.5
    w, wr = Tensor(w_full, dtype=f64)[:, 1], w_full[:, 1]  # a strided column
    ref = nll_np(log_softmax_np(x, 1), tr, 1, wr, -100, 0.2)
    assert_close(F.cross_entropy(T(x), t, w, label_smoothing=0.2), ref)
    assert_close(F.nll_loss(T(log_softmax_np(x, 1)), t, w), nll_np(log_softmax_np(x, 1), tr, 1, wr))


def test_jitted_step_with_smoothed_weighted_cross_entropy_replays_like_eager():
    import clownpiece as cp
    w = Tensor(rng.random(4) + 0.5)
    loss_fn = nn.CrossEntropyLoss(w, label_smoothing=0.1)
    data = [(rng.standard_normal((6, 4, 3)).astype(np.float32),
             np.where(rng.random((6, 3)) < 0.2, -100, rng.integers(0, 4, (6, 3))).astype(np.float32))
            for _ in range(4)]

    def step(x, y):
        x.requires_grad = True
        loss = loss_fn(x, y)
        loss.backward()
        return loss, x.grad

    eager = [step(Tensor(x), Tensor(y)) for x, y in data]
    jitted = cp.jit(step)
    for (x, y), (loss, grad) in zip(data, eager):
        got_loss, got_grad = jitted(Tensor(x), Tensor(y))
        assert got_loss.item() == loss.item()
        np.testing.assert_array_equal(got_grad.numpy(), grad.numpy())


# ---- integer targets (PyTorch's int64; int32 widens) and float16 inputs -------------------------------------
@pytest.mark.parametrize("tdtype", [np.int64, np.int32])
@pytest.mark.parametrize("layout", CLASS_LAYOUTS, ids=["NC", "C", "NCdd", "course"])
def test_class_losses_take_integer_targets(layout, tdtype):
    shape, dim, tshape = layout
    x = rng.standard_normal(shape)
    t = class_targets(shape, dim, tshape, ignore=-100)
    w = rng.random(shape[dim]) + 0.5
    ti = Tensor(t.astype(tdtype), dtype=tdtype)
    if layout[0] == (2, 3, 4):  # an integer target of the course's shape: only the course's layout fits
        assert_close(F.cross_entropy(T(x), ti, T(w), label_smoothing=0.1),
                     nll_np(log_softmax_np(x, dim), t, dim, w, -100, 0.1))
        return
    assert_close(F.cross_entropy(T(x), ti, T(w), label_smoothing=0.1), nll_np(log_softmax_np(x, dim), t, dim, w,
                                                                             -100, 0.1))
    logp = log_softmax_np(x, dim)
    assert_close(F.nll_loss(T(logp), ti, T(w), reduction="sum"), nll_np(logp, t, dim, w, reduction="sum"))
    xl = leaf(x)
    assert gradcheck(lambda a: F.cross_entropy(a, ti, T(w), label_smoothing=0.2), [xl])


def test_integer_targets_take_pytorchs_layout_when_both_fit():
    """[N, K, K] logits with [N, K] targets: int64 targets read the classes from dim 1 (PyTorch), the course's
    float labels from the last dim."""
    x = rng.standard_normal((2, 3, 3))
    t = rng.integers(0, 3, (2, 3))
    assert_close(F.cross_entropy(T(x), Tensor(t, dtype=np.int64), reduction="none"),
                 nll_np(log_softmax_np(x, 1), t, 1, reduction="none"))
    assert_close(F.cross_entropy(T(x), T(t.astype(f64)), reduction="none"),
                 nll_np(log_softmax_np(x, 2), t, 2, reduction="none"))


def test_class_target_dtypes_that_are_refused():
    x = T(rng.standard_normal((3, 4)))
    with no_launch():
        with pytest.raises(TypeError, match="bool"):
            F.cross_entropy(x, Tensor(np.array([True, False, True]), dtype=np.bool_))
        with pytest.raises(TypeError, match="float"):
            F.cross_entropy(x, Tensor(np.zeros((3, 4)), dtype=np.int64))  # probabilities must be floats
        with pytest.raises(TypeError):
            F.cross_entropy(Tensor(np.zeros((3, 4)), dtype=np.int64), Tensor(np.zeros(3), dtype=np.int64))
        with pytest.raises(TypeError):
            F.binary_cross_entropy_with_logits(x, Tensor(np.zeros((3, 4)), dtype=np.int64))
        with pytest.raises(TypeError):
            F.l1_loss(x, Tensor(np.zeros((3, 4)), dtype=np.int32))


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss", "binary_cross_entropy",
                                "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss", "huber_loss",
                                "kl_div"])
def test_float16_inputs_compute_through_float32(fn):
    """float16 in, float16 out: the float32 result of the float16 values, rounded once."""
    x = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float16).astype(f64)
    classes = fn in ("cross_entropy", "nll_loss")
    t = rng.integers(0, 3, 4) if classes else rng.uniform(0, 1, (4, 3)).astype(np.float16).astype(f64)
    f = getattr(F, fn)
    target = Tensor(t, dtype=np.int64) if classes else Tensor(t, dtype=np.float16)
    got = f(Tensor(x, dtype=np.float16), target, reduction="sum")
    ref = f(Tensor(x, dtype=f64), Tensor(t, dtype=np.int64) if classes else Tensor(t, dtype=f64), reduction="sum")
    assert got.dtype == np.float16
    assert_close(got, to_np(ref), rtol=2e-3, atol=1e-3)
