"""nn.utils: clip_grad_norm_ and clip_grad_value_ against numpy float64 (PyTorch's rules written out), their
launch counts (a fixed number of multi-tensor launches, not a few per parameter), parameters_to_vector and
vector_to_parameters."""
import math

import numpy as np
import pytest
from conftest import assert_close, make, no_launch, to_np

import clownpiece as cp
from clownpiece import backend, nn
from clownpiece.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters
from clownpiece.ops import foreach

SHAPES = [(3, 4), (5,), (), (7, 2, 3), (0,), (1,)]


def params_with_grads(shapes, dtype, rng, scale=1.0, layout="contiguous"):
    ps, grads = [], []
    for shape in shapes:
        g = rng.normal(size=shape) * scale
        p = nn.Parameter(cp.Tensor(np.zeros(shape, dtype), dtype=dtype))
        p.grad, g = make(g, dtype, layout if len(shape) >= 1 else "contiguous")
        ps.append(p)
        grads.append(g)
    return ps, grads


def vector_norm(v, p):
    """PyTorch's linalg.vector_norm of a 1-D float64 array: ord 0 counts the nonzeros (NaN is one), +-inf
    the max / min |x|, any other p (sum |x|^p)^(1/p) (for p < 0 a zero makes the sum inf and the norm 0)."""
    a = np.abs(v)
    if p == math.inf:
        return a.max()
    if p == -math.inf:
        return a.min()
    if p == 0:
        return float(np.count_nonzero(v))
    with np.errstate(divide="ignore"):
        return (a ** p).sum() ** (1.0 / p)


def reference_norm(grads, norm_type):
    """PyTorch: the norm of the per-gradient norms (for p != 0 the norm of all elements taken together)."""
    return vector_norm(np.array([vector_norm(np.ravel(g), norm_type) for g in grads]), norm_type)


def reference_clip(grads, max_norm, norm_type):
    total = reference_norm(grads, norm_type)
    coef = min(max_norm / (total + 1e-6), 1.0)
    return total, [g * coef for g in grads]


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.0, 0.5, -math.inf, -1.0, -0.5, 0])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_clip_grad_norm_matches_numpy(norm_type, layout, dtype):
    rng = np.random.default_rng(0)
    no_empty = norm_type < 0 or norm_type == math.inf  # norms without a value for an empty gradient
    shapes = [s for s in SHAPES if s != (0,)] if no_empty else SHAPES
    ps, grads = params_with_grads(shapes, dtype, rng, layout=layout)
    total = clip_grad_norm_(ps, max_norm=0.5, norm_type=norm_type)
    ref_total, ref_grads = reference_clip(grads, 0.5, norm_type)
    assert isinstance(total, cp.Tensor) and total.shape == [] and total.dtype == dtype
    assert not total.requires_grad
    assert_close(total, ref_total, dtype)
    for p, g in zip(ps, ref_grads):
        assert_close(p.grad, g, dtype)


def test_clip_grad_norm_below_max_norm_leaves_grads_alone(dtype):
    ps, grads = params_with_grads([(4, 4), (3,)], dtype, np.random.default_rng(1))
    total = clip_grad_norm_(ps, 1e6)
    assert_close(total, reference_norm(grads, 2.0), dtype)
    for p, g in zip(ps, grads):  # multiplied by exactly 1.0
        np.testing.assert_array_equal(to_np(p.grad), np.asarray(g).astype(dtype))


def test_clip_grad_norm_single_tensor_generator_and_missing_grads(dtype):
    rng = np.random.default_rng(2)
    ps, grads = params_with_grads([(6,), (2, 2)], dtype, rng)
    frozen = nn.Parameter(cp.Tensor(np.ones(3, dtype), dtype=dtype))  # grad None: skipped
    total = clip_grad_norm_((p for p in [ps[0], frozen, ps[1]]), 0.1)
    assert_close(total, reference_norm(grads, 2.0), dtype)
    assert frozen.grad is None
    one, g = params_with_grads([(5,)], dtype, rng)
    total = clip_grad_norm_(one[0], 0.1, norm_type=1)
    assert_close(total, np.abs(g[0]).sum(), dtype)
    assert_close(one[0].grad, g[0] * 0.1 / (np.abs(g[0]).sum() + 1e-6), dtype)


def test_clip_grad_norm_without_grads_returns_zero():
    p = nn.Parameter(cp.Tensor([1.0, 2.0]))
    total = clip_grad_norm_([p], 1.0)
    assert total.shape == [] and total.item() == 0.0
    assert clip_grad_norm_([], 1.0).item() == 0.0


def test_clip_grad_norm_over_many_launches_equals_numpy(dtype):
    # more parameters than one launch takes: partial norms accumulate across launches (sum and max)
    slots = foreach.slots_per_launch()
    rng = np.random.default_rng(3)
    shapes = [(int(rng.integers(1, 9)),) for _ in range(2 * slots + 3)]
    for norm_type in (2.0, math.inf):
        ps, grads = params_with_grads(shapes, dtype, rng, scale=3.0)
        grads[-1] = grads[-1] * 0 + 50.0  # the maximum is in the last launch
        ps[-1].grad = cp.Tensor(grads[-1].astype(dtype), dtype=dtype)
        total = clip_grad_norm_(ps, 1.0, norm_type)
        ref_total, ref_grads = reference_clip(grads, 1.0, norm_type)
        assert_close(total, ref_total, dtype)
        for p, g in zip(ps, ref_grads):
            assert_close(p.grad, g, dtype)


def test_clip_grad_norm_large_gradients_are_summed_accurately():
    # 300,000 elements in float32: short partial sums then a tree keep the relative error near 1e-7
    rng = np.random.default_rng(4)
    ps, grads = params_with_grads([(300_000,), (1000, 3)], np.float32, rng)
    total = clip_grad_norm_(ps, 1.0)
    assert_close(total, reference_norm(grads, 2.0), rtol=2e-6, atol=0)


def test_non_finite_gradients_follow_pytorch():
    # inf: the norm is inf, the coefficient 0, so finite entries become 0 and infinite ones NaN
    p = nn.Parameter(cp.Tensor([0.0, 0.0, 0.0]))
    q = nn.Parameter(cp.Tensor([0.0]))
    p.grad, q.grad = cp.Tensor([1.0, math.inf, -2.0]), cp.Tensor([3.0])
    total = clip_grad_norm_([p, q], 1.0)
    assert total.item() == math.inf
    np.testing.assert_array_equal(to_np(p.grad), [0.0, np.nan, -0.0])
    np.testing.assert_array_equal(to_np(q.grad), [0.0])
    # NaN: the norm and every gradient become NaN, for the inf norm too (max keeps NaN)
    for norm_type in (2.0, 1.0, math.inf):
        p.grad, q.grad = cp.Tensor([1.0, math.nan, 5.0]), cp.Tensor([100.0])
        total = clip_grad_norm_([p, q], 1.0, norm_type)
        assert math.isnan(total.item())
        assert np.isnan(to_np(p.grad)).all() and np.isnan(to_np(q.grad)).all()


def test_error_if_nonfinite_raises_at_the_next_read_and_leaves_the_grads():
    """The check is made on the device (no read back in clip_grad_norm_): the next host read raises, and the
    gradients are left as they were, as when PyTorch raises before scaling them."""
    from clownpiece.backend.checks import DeviceAssertError
    p = nn.Parameter(cp.Tensor([0.0, 0.0]))
    q = nn.Parameter(cp.Tensor([0.0]))
    for bad, norm_type, shown in ((math.inf, 2.0, "inf"), (math.nan, 2.0, "nan"), (math.nan, math.inf, "nan"),
                                  (math.inf, 1, "inf"), (math.inf, 0.5, "inf")):
        p.grad, q.grad = cp.Tensor([bad, 2.0]), cp.Tensor([-1.0])
        backend.synchronize()
        backend.reset_stats()
        total = clip_grad_norm_([p, q], 1.0, norm_type, error_if_nonfinite=True)
        assert backend.stats()["d2h_count"] == 0
        with pytest.raises(RuntimeError, match=rf"clip_grad_norm_: the total norm .* is {shown}, non-finite"):
            p.grad.numpy()
        np.testing.assert_array_equal(to_np(p.grad), [bad, 2.0])
        np.testing.assert_array_equal(to_np(q.grad), [-1.0])
        assert to_np(total) == bad or (math.isnan(bad) and math.isnan(total.item()))
    with pytest.raises(DeviceAssertError):  # the error is a DeviceAssertError, raised by any read
        p.grad = cp.Tensor([math.inf, 1.0], dtype=np.float64)
        q.grad = cp.Tensor([0.0], dtype=np.float64)
        clip_grad_norm_([p, q], 1.0, error_if_nonfinite=True).item()
    # finite: clipped as usual, nothing raised; without the flag a non-finite norm scales (see above)
    p.grad, q.grad = cp.Tensor([3.0, 4.0]), cp.Tensor([0.0])
    assert clip_grad_norm_([p, q], 1.0, error_if_nonfinite=True, foreach=True).item() == pytest.approx(5.0)
    assert_close(p.grad, [3.0 / (5 + 1e-6), 4.0 / (5 + 1e-6)])
    p.grad = cp.Tensor([math.inf, 1.0])
    assert clip_grad_norm_([p], 1.0, foreach=False).item() == math.inf
    np.testing.assert_array_equal(to_np(p.grad), [np.nan, 0.0])


def test_norm_order_zero_counts_the_gradients_holding_a_nonzero():
    """PyTorch's total norm is the norm of the per-gradient norms: for order 0, the number of gradients with
    a nonzero element (NaN counts; -0.0 does not), whatever their sizes; an empty gradient counts 0."""
    shapes = [(3,), (4, 2), (5,), (0,), (2, 2), (1,), (6,)]
    grads = [np.array([0.0, -0.0, 0.0]), np.zeros((4, 2)), np.array([0.0, 0.0, 0.0, 0.0, 7.0]), np.zeros(0),
             np.array([[0.0, math.nan], [0.0, 0.0]]), np.array([-2.0]), np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])]
    ps = []
    for shape, g in zip(shapes, grads):
        p = nn.Parameter(cp.Tensor(np.zeros(shape)))
        p.grad = cp.Tensor(g)
        ps.append(p)
    total = clip_grad_norm_(ps, 10.0, norm_type=0)
    assert total.item() == 4.0 == reference_norm(grads, 0)
    for p, g in zip(ps, grads):  # 10 / 4 > 1: unchanged
        np.testing.assert_array_equal(to_np(p.grad), g)
    total = clip_grad_norm_(ps[6], 0.5, norm_type=0.0)  # one gradient: 1, not its 4 nonzeros
    assert total.item() == 1.0
    assert_close(ps[6].grad, grads[6] * 0.5 / (1 + 1e-6))
    # over several launches (each launch's slots are split among the work-items)
    slots = foreach.slots_per_launch()
    many = [nn.Parameter(cp.Tensor(np.zeros(3))) for _ in range(2 * slots + 5)]
    for i, p in enumerate(many):
        p.grad = cp.Tensor(np.eye(3)[1] if i % 3 == 0 else np.zeros(3))
    assert clip_grad_norm_(many, 1e3, 0).item() == len(range(0, len(many), 3))


def test_negative_orders_and_minus_inf():
    """p < 0: a zero anywhere makes the norm 0 (|0|^p is inf), so the coefficient is 1; -inf: min |x|;
    NaN propagates through both; an empty gradient raises (PyTorch's vector_norm has no value for it)."""
    p = nn.Parameter(cp.Tensor([0.0, 0.0, 0.0]))
    q = nn.Parameter(cp.Tensor([0.0]))
    p.grad, q.grad = cp.Tensor([4.0, -0.5, 2.0]), cp.Tensor([-8.0])
    total = clip_grad_norm_([p, q], 0.1, -math.inf)
    assert total.item() == 0.5
    assert_close(p.grad, np.array([4.0, -0.5, 2.0]) * 0.1 / (0.5 + 1e-6))
    p.grad, q.grad = cp.Tensor([4.0, -0.5, 2.0]), cp.Tensor([-8.0])
    total = clip_grad_norm_([p, q], 0.1, -2)
    ref = (4.0 ** -2 + 0.5 ** -2 + 2.0 ** -2 + 8.0 ** -2) ** -0.5
    assert_close(total, ref, rtol=1e-6)
    p.grad, q.grad = cp.Tensor([4.0, 0.0, 2.0]), cp.Tensor([-8.0])
    for norm_type in (-2.0, -math.inf):
        assert clip_grad_norm_([p, q], 0.1, norm_type).item() == 0.0
        np.testing.assert_array_equal(to_np(p.grad), [4.0, 0.0, 2.0])
    p.grad = cp.Tensor([4.0, math.nan, 2.0])
    for norm_type in (-2.0, -math.inf):
        assert math.isnan(clip_grad_norm_([p, q], 0.1, norm_type).item())
    e = nn.Parameter(cp.Tensor(np.zeros(0, np.float32)))
    e.grad = cp.Tensor(np.zeros(0, np.float32))
    p.grad = cp.Tensor([1.0, 2.0, 3.0])
    with no_launch():
        for norm_type in (-math.inf, -1.0, -0.5):
            with pytest.raises(RuntimeError, match="empty"):
                clip_grad_norm_([p, e], 1.0, norm_type)
    assert clip_grad_norm_([p, e], 1.0, 0).item() == 1.0  # order 0 and p > 0 have a value for it


@pytest.mark.parametrize("count", [1, 3, 16, "slots", "slots+1", "3*slots"])
def test_clip_grad_norm_launches_do_not_grow_with_the_parameters(count):
    slots = foreach.slots_per_launch()
    n = {"slots": slots, "slots+1": slots + 1, "3*slots": 3 * slots}.get(count, count)
    ps, _ = params_with_grads([(4,)] * n, np.float32, np.random.default_rng(5))
    clip_grad_norm_(ps, 0.1)  # builds the kernels
    backend.synchronize()
    backend.reset_stats()
    clip_grad_norm_(ps, 0.1)
    s = backend.stats()
    launches_per_pass = -(-n // slots)
    assert s["launches"] == 2 * launches_per_pass + 1  # partial norms, the total, the scaling
    assert s["d2h_count"] == 0 and s["h2d_count"] == 0
    if n <= slots:
        assert s["launches"] == 3


def test_seed_model_clip_is_three_launches_after_a_backward():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    from train_mnist import seed_model
    model = seed_model()
    x = cp.randn(2, 1, 28, 28)
    model(x).sum().backward()
    params = list(model.parameters())
    grads = [to_np(p.grad) for p in params]
    backend.synchronize()
    backend.reset_stats()
    total = clip_grad_norm_(model.parameters(), 1e-3)
    assert backend.stats()["launches"] == 3 and backend.stats()["d2h_count"] == 0
    ref_total, ref_grads = reference_clip(grads, 1e-3, 2.0)
    assert_close(total, ref_total, rtol=1e-5)
    for p, g in zip(params, ref_grads):
        assert_close(p.grad, g, rtol=1e-5, atol=1e-9)


def test_clip_grad_norm_bad_arguments_raise_before_launching():
    p = nn.Parameter(cp.Tensor([1.0]))
    p.grad = cp.Tensor([1.0])
    d = nn.Parameter(cp.Tensor([1.0], dtype=np.float64))
    d.grad = cp.Tensor([1.0], dtype=np.float64)
    e = nn.Parameter(cp.Tensor(np.zeros(0, np.float32)))
    e.grad = cp.Tensor(np.zeros(0, np.float32))
    before = backend.stats()["launches"]
    for kwargs, exc, match in ((dict(norm_type=math.nan), ValueError, "norm_type"),
                               (dict(norm_type="fro"), TypeError, "norm_type"),
                               (dict(max_norm=cp.Tensor(1.0)), TypeError, "max_norm")):
        args = dict(max_norm=1.0, **kwargs) if "max_norm" not in kwargs else kwargs
        with pytest.raises(exc, match=match):
            clip_grad_norm_([p], **args)
    with pytest.raises(TypeError, match="float32, float64"):
        clip_grad_norm_([p, d], 1.0)
    with pytest.raises(RuntimeError, match="empty"):
        clip_grad_norm_([p, e], 1.0, norm_type=math.inf)
    with pytest.raises(TypeError, match="tensors"):
        clip_grad_norm_([p, 3.0], 1.0)
    assert backend.stats()["launches"] == before
    assert_close(p.grad, [1.0])


def test_clip_grad_norm_in_a_jitted_step_replays_like_eager():
    def run(use_jit):
        cp.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
        opt = cp.utils.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = nn.MSELoss()

        def step(x, y, max_norm):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            norm = clip_grad_norm_(model.parameters(), max_norm)
            clip_grad_value_(model.parameters(), 0.05)
            opt.step()
            return loss, norm

        fn = cp.jit(step) if use_jit else step
        rng = np.random.default_rng(9)
        out = [fn(cp.Tensor(rng.normal(size=(4, 6)).astype(np.float32)),
                  cp.Tensor(rng.normal(size=(4, 2)).astype(np.float32)), 0.5 / (1 + i)) for i in range(8)]
        return [(loss.item(), n.item()) for loss, n in out], [p.numpy() for p in model.parameters()]

    eager, jitted = run(False), run(True)
    assert eager[0] == jitted[0]
    for a, b in zip(eager[1], jitted[1]):
        np.testing.assert_array_equal(a, b)


# ---- clip_grad_value_ -------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_clip_grad_value_matches_numpy(layout, dtype):
    ps, grads = params_with_grads(SHAPES, dtype, np.random.default_rng(6), scale=2.0, layout=layout)
    assert clip_grad_value_(ps, 0.75) is None
    for p, g in zip(ps, grads):
        assert_close(p.grad, np.clip(g, -0.75, 0.75), dtype)


def test_clip_grad_value_keeps_nan_and_follows_pytorch_for_a_negative_value():
    p = nn.Parameter(cp.Tensor([0.0] * 4))
    p.grad = cp.Tensor([math.nan, -5.0, 0.25, math.inf])
    clip_grad_value_(p, 1)
    np.testing.assert_array_equal(to_np(p.grad), [np.nan, -1.0, 0.25, 1.0])
    # PyTorch clamps to at least -c, then to at most c: with c < 0 everything becomes c
    p.grad = cp.Tensor([3.0, -3.0, 0.0, 0.5])
    clip_grad_value_([p], -0.5)
    assert_close(p.grad, [-0.5] * 4)


def test_clip_grad_value_is_one_launch_per_pass_and_checks_arguments():
    slots = foreach.slots_per_launch()
    ps, _ = params_with_grads([(3,)] * (slots + 2), np.float32, np.random.default_rng(7))
    clip_grad_value_(ps, 0.1)
    backend.reset_stats()
    clip_grad_value_(ps, 0.1)
    assert backend.stats()["launches"] == 2 and backend.stats()["d2h_count"] == 0
    with pytest.raises(TypeError, match="clip_value"):
        clip_grad_value_(ps, "big")
    clip_grad_value_([nn.Parameter(cp.Tensor([1.0]))], 1.0)  # no grads: nothing to do


# ---- parameters <-> vector --------------------------------------------------------------------------------

def test_parameters_to_vector_and_back(dtype):
    rng = np.random.default_rng(8)
    arrays = [rng.normal(size=s) for s in [(2, 3), (4,), (), (1, 2)]]
    ps = [nn.Parameter(cp.Tensor(a.astype(dtype), dtype=dtype)) for a in arrays]
    vec = parameters_to_vector(ps)
    assert vec.shape == [13] and vec.requires_grad
    assert_close(vec, np.concatenate([a.ravel() for a in arrays]), dtype)
    # differentiable: d(sum(vec * w))/dp = w's slice
    w = rng.normal(size=13)
    (vec * cp.Tensor(w.astype(dtype), dtype=dtype)).sum().backward()
    assert_close(ps[0].grad, w[:6].reshape(2, 3), dtype)
    assert_close(ps[2].grad, w[10], dtype)

    new = rng.normal(size=15)
    source = cp.Tensor(new.astype(dtype), dtype=dtype)
    vector_to_parameters(source, ps)
    start = 0
    for p, a in zip(ps, arrays):
        assert p.shape == list(a.shape)
        assert_close(p, new[start:start + a.size].reshape(a.shape), dtype)
        start += a.size
    # like PyTorch's `param.data = vec[...]`: the parameters now view vec's storage
    with cp.no_grad():
        source.copy_(cp.Tensor(np.zeros(15, dtype), dtype=dtype))
    assert_close(ps[1], np.zeros(4), dtype)


def test_vector_to_parameters_works_with_an_optimizer_afterwards():
    p = nn.Parameter(cp.Tensor([1.0, 2.0]))
    vector_to_parameters(cp.Tensor([5.0, 6.0, 7.0]).narrow(0, 1, 2), [p])
    p.grad = cp.Tensor([1.0, 1.0])
    cp.utils.optim.SGD([p], lr=0.5).step()
    assert_close(p, [5.5, 6.5])


def test_parameter_vector_errors():
    p = nn.Parameter(cp.Tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="expected a tensor"):
        vector_to_parameters([1.0, 2.0], [p])
    with pytest.raises(ValueError, match="1 elements, the parameters need 2"):
        vector_to_parameters(cp.Tensor([1.0]), [p])
    with pytest.raises(ValueError, match="1-D"):
        vector_to_parameters(cp.Tensor([[1.0, 2.0]]), [p])
    with pytest.raises(RuntimeError, match="contiguous"):
        vector_to_parameters(cp.Tensor([[1.0, 2.0], [3.0, 4.0]]).transpose(0, 1)[0], [p])
    with pytest.raises(TypeError, match="single tensor"):
        parameters_to_vector(p)
    with pytest.raises(ValueError, match="no parameters"):
        parameters_to_vector([])
    assert_close(p, [1.0, 2.0])


def test_nn_utils_is_a_module_like_pytorchs():
    import clownpiece.nn.utils.clip_grad as clip_module
    assert nn.utils.clip_grad_norm_ is clip_module.clip_grad_norm_
    from clownpiece.nn.utils.convert_parameters import parameters_to_vector as ptv
    assert ptv is parameters_to_vector
