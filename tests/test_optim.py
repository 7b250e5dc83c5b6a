"""Optimizers and LR schedulers: step values against hand-computed numbers, launch counts, checkpoints."""
import math

import numpy as np
import pytest
from conftest import assert_close

import clownpiece as cp
from clownpiece import backend
from clownpiece._layout import ShapeError
from clownpiece.utils.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    Optimizer,
    StepLR,
    lr_scheduler as lr_scheduler_module,
    optimizer as optimizer_module,
)


def param(values, dtype=np.float32):
    return cp.Tensor(np.asarray(values, dtype=np.float64).astype(dtype), requires_grad=True, dtype=dtype)


def set_grad(p, values):
    p.grad = cp.Tensor(np.asarray(values, dtype=np.float64).astype(p.dtype), dtype=p.dtype)


# ---- SGD ---------------------------------------------------------------------------------------------------

def test_sgd_graded_example(dtype):
    p = param([1.0, 2.0], dtype)
    set_grad(p, [0.1, 0.2])
    SGD([p], lr=0.5).step()
    assert_close(p, [0.95, 1.9], dtype)


def test_sgd_updates_in_place_keeping_identity():
    p = param([1.0, 2.0])
    storage = p._storage
    set_grad(p, [1.0, 1.0])
    opt = SGD([p], lr=0.1)
    opt.step()
    assert opt.param_groups[0]["params"][0] is p and p._storage is storage


def test_sgd_damping_applies_from_the_first_step_without_momentum(dtype):
    # course semantics: v starts at 0, so v = (1 - damping) * g on every step when momentum is 0
    p = param([1.0, -1.0], dtype)
    opt = SGD([p], lr=1.0, damping=0.5)
    for expected in ([0.9, -0.8], [0.8, -0.6]):
        set_grad(p, [0.2, -0.4])
        opt.step()
        assert_close(p, expected, dtype)


def test_sgd_dampening_is_an_alias_of_damping():
    a, b = param([1.0]), param([1.0])
    set_grad(a, [0.2])
    set_grad(b, [0.2])
    SGD([a], lr=1.0, damping=0.25).step()
    SGD([b], lr=1.0, dampening=0.25).step()
    assert_close(a, [0.85])
    assert_close(b, [0.85])


def test_sgd_momentum_second_step_moves_further(dtype):
    p = param([1.0, 2.0], dtype)
    opt = SGD([p], lr=0.5, momentum=0.9)
    set_grad(p, [0.1, 0.2])
    opt.step()
    assert_close(p, [0.95, 1.9], dtype)  # v = g
    opt.step()  # same grad: v = 0.9 * g + g = 1.9 g
    assert_close(p, [0.95 - 0.095, 1.9 - 0.19], dtype)
    first_move, second_move = 0.05, 0.095
    assert second_move > first_move


def test_sgd_momentum_with_damping_and_weight_decay(dtype):
    p = param([2.0], dtype)
    opt = SGD([p], lr=0.1, momentum=0.5, damping=0.2, weight_decay=0.1)
    set_grad(p, [1.0])
    opt.step()
    # d = 1 + 0.1*2 = 1.2; v = 0.8 * 1.2 = 0.96; p = 2 - 0.096 = 1.904
    assert_close(p, [1.904], dtype)
    opt.step()
    # d = 1 + 0.1904 = 1.1904; v = 0.5*0.96 + 0.8*1.1904 = 1.43232; p = 1.904 - 0.143232
    assert_close(p, [1.760768], dtype)
    assert_close(opt.state[p.param_id]["momentum_buffer"], [1.43232], dtype)


def test_sgd_weight_decay_without_momentum(dtype):
    p = param([1.0, -2.0], dtype)
    set_grad(p, [0.5, 0.5])
    SGD([p], lr=0.1, weight_decay=0.5).step()
    # g + 0.5 p = [1.0, -0.5]
    assert_close(p, [0.9, -1.95], dtype)


def test_sgd_nesterov(dtype):
    p = param([1.0], dtype)
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    set_grad(p, [0.5])
    opt.step()  # v = 0.5; update = g + 0.9 v = 0.95
    assert_close(p, [0.905], dtype)
    opt.step()  # v = 0.45 + 0.5 = 0.95; update = 0.5 + 0.855 = 1.355
    assert_close(p, [0.7695], dtype)


@pytest.mark.parametrize("kwargs", [dict(lr=-0.1), dict(lr=0.1, momentum=-0.5), dict(lr=0.1, damping=-1.0),
                                    dict(lr=0.1, dampening=-1.0), dict(lr=0.1, weight_decay=-1e-4),
                                    dict(lr=0.1, nesterov=True), dict(lr=0.1, momentum=0.9, damping=0.1,
                                                                      nesterov=True)])
def test_sgd_rejects_bad_hyper_parameters(kwargs):
    with pytest.raises(ValueError):
        SGD([param([1.0])], **kwargs)


def test_sgd_skips_params_without_grad_and_zero_sized_params():
    a, b, empty = param([1.0, 2.0]), param([3.0]), param(np.zeros((0, 3)))
    set_grad(a, [1.0, 1.0])
    set_grad(empty, np.zeros((0, 3)))
    SGD([a, b, empty], lr=0.5).step()
    assert_close(a, [0.5, 1.5])
    assert_close(b, [3.0])
    assert empty.shape == [0, 3]


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_zero_dim_parameters(cls, dtype):
    p = param(3.0, dtype)
    set_grad(p, 2.0)
    cls([p], lr=0.5).step()
    assert p.shape == []
    assert_close(p, 2.0 if cls is SGD else 2.5, dtype, rtol=1e-6, atol=1e-6)  # Adam's step 1: lr * sign(g)


def test_sgd_non_contiguous_grad_is_read_correctly(dtype):
    p = param(np.arange(6.0).reshape(2, 3), dtype)
    g_np = np.arange(6.0).reshape(3, 2) / 10
    p.grad = cp.Tensor(g_np.astype(dtype), dtype=dtype).transpose(0, 1)
    assert not p.grad.is_contiguous()
    SGD([p], lr=1.0).step()
    assert_close(p, np.arange(6.0).reshape(2, 3) - g_np.T, dtype)


def test_update_rejects_non_contiguous_params_and_mismatched_grads():
    base = param(np.ones((3, 2)))
    p = base.transpose(0, 1)
    p.grad = cp.Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="contiguous"):
        SGD([p], lr=0.1).step()
    q = param([1.0, 2.0])
    q.grad = cp.Tensor([1.0, 2.0, 3.0])
    with pytest.raises(ShapeError, match=r"\[3\].*\[2\]"):
        SGD([q], lr=0.1).step()


# ---- Adam / AdamW -------------------------------------------------------------------------------------------

def adam_reference(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """The update rule written out in float64 (docs/api.md, Optimizers; AdamW decays p by 1 - lr*wd first)."""
    p = np.asarray(p, np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        p = p - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
    return p


def test_adam_first_step_moves_each_weight_by_lr(dtype):
    # step 1: m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g)
    p = param([1.0, -2.0, 0.5], dtype)
    set_grad(p, [0.1, -0.3, 4.0])
    Adam([p], lr=0.01).step()
    assert_close(p, [0.99, -1.99, 0.49], dtype, rtol=1e-6, atol=1e-6)


def test_adam_second_step_by_hand(dtype):
    p = param([1.0], dtype)
    opt = Adam([p], lr=0.1)
    set_grad(p, [1.0])
    opt.step()
    set_grad(p, [0.5])
    opt.step()
    # m = 0.9*0.1 + 0.1*0.5 = 0.14, m_hat = 0.14/0.19; v = 0.999*0.001 + 0.001*0.25 = 0.001249,
    # v_hat = 0.001249/0.001999; p = p1 - 0.1 * m_hat / (sqrt(v_hat) + 1e-8), p1 = 1 - 0.1 / (1 + 1e-8)
    m_hat, v_hat = 0.14 / 0.19, 0.001249 / (1 - 0.999 ** 2)
    assert_close(p, [1 - 0.1 / (1 + 1e-8) - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)], dtype)
    state = opt.state[p.param_id]
    assert state["step"] == 2
    assert_close(state["exp_avg"], [0.14], dtype)
    assert_close(state["exp_avg_sq"], [0.001249], dtype)


@pytest.mark.parametrize("cls,decoupled", [(Adam, False), (AdamW, True)])
def test_adam_and_adamw_weight_decay_match_the_formulas(cls, decoupled, dtype):
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(4)]
    p = param(p0, dtype)
    opt = cls([p], lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)
    for g in grads:
        set_grad(p, g)
        opt.step()
    ref = adam_reference(p0, grads, 0.05, (0.8, 0.99), 1e-6, 0.3, decoupled)
    assert_close(p, ref, dtype, rtol=1e-4 if dtype == np.float32 else 1e-10,
                 atol=1e-5 if dtype == np.float32 else 1e-10)


def test_adamw_decay_by_hand():
    p = param([1.0])
    set_grad(p, [0.5])
    AdamW([p], lr=0.1, weight_decay=0.1).step()
    # p * (1 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-8)
    assert_close(p, [0.99 - 0.1], rtol=1e-6, atol=1e-6)


def test_adamw_default_weight_decay_and_adam_default_lr():
    assert AdamW([param([1.0])]).defaults["weight_decay"] == 0.01
    assert Adam([param([1.0])]).defaults == dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                                                amsgrad=False, maximize=False)


@pytest.mark.parametrize("kwargs", [dict(lr=-1.0), dict(eps=-1e-8), dict(betas=(1.0, 0.999)),
                                    dict(betas=(0.9, -0.1)), dict(weight_decay=-0.1)])
@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_rejects_bad_hyper_parameters(cls, kwargs):
    with pytest.raises(ValueError):
        cls([param([1.0])], **kwargs)


# ---- one launch per parameter per step, no transfers ---------------------------------------------------------

@pytest.mark.parametrize("make_opt", [
    lambda ps: SGD(ps, lr=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: Adam(ps, lr=0.1, weight_decay=1e-4),
    lambda ps: AdamW(ps, lr=0.1),
], ids=["sgd", "momentum", "nesterov", "adam", "adamw"])
def test_each_step_is_one_launch_per_parameter_and_no_transfer(make_opt):
    params = [param(np.ones((4, 5))), param(np.ones(5)), param(np.ones((2, 3, 2)))]
    for p in params:
        set_grad(p, np.full(p.shape, 0.5))
    frozen = param([1.0])  # no grad: skipped, no launch
    opt = make_opt(params + [frozen])
    for _ in range(3):  # the first step (state creation) included
        backend.reset_stats()
        opt.step()
        s = backend.stats()
        assert s["launches"] == len(params)
        assert s["h2d_count"] == 0 and s["d2h_count"] == 0


# ---- Optimizer base ------------------------------------------------------------------------------------------

def test_param_groups_defaults_and_per_group_lr(dtype):
    a, b = param([1.0], dtype), param([1.0], dtype)
    set_grad(a, [1.0])
    set_grad(b, [1.0])
    opt = SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b
    assert set(opt.param_groups[0]) == {"params", "lr", "momentum", "damping", "weight_decay", "nesterov"}
    opt.step()
    assert_close(a, [0.9], dtype)
    assert_close(b, [0.5], dtype)


def test_add_param_group_fills_defaults_and_assigns_ids():
    a, b = param([1.0]), param([2.0])
    opt = SGD([a], lr=0.1, momentum=0.9)
    group = {"params": (x for x in [b]), "lr": 0.01}
    opt.add_param_group(group)
    assert opt.param_groups[1] is group and group["params"][0] is b and group["momentum"] == 0.9
    assert isinstance(b.param_id, int) and b.param_id != a.param_id
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [a]})


def test_param_ids_are_unique_across_optimizers():
    a, b, c = param([1.0]), param([1.0]), param([1.0])
    SGD([a, b], lr=0.1)
    SGD([c], lr=0.1)
    assert len({a.param_id, b.param_id, c.param_id}) == 3


def test_sgd_steps_an_nn_module_through_its_parameters_generator(dtype):
    from clownpiece.nn import Linear
    layer = Linear(3, 2, dtype=dtype)
    before = [p.numpy().astype(np.float64) for p in layer.parameters()]
    for p in layer.parameters():
        set_grad(p, np.ones(p.shape))
    opt = SGD(layer.parameters(), lr=0.25)
    opt.step()
    for p, b in zip(layer.parameters(), before):
        assert_close(p, b - 0.25, dtype)
    opt.zero_grad()
    assert all(p.grad is None for p in layer.parameters())


def test_optimizer_accepts_generators_and_rejects_empty_or_bad_params():
    ps = [param([1.0]), param([2.0])]
    assert len(SGD((p for p in ps), lr=0.1).param_groups[0]["params"]) == 2
    assert SGD({"params": ps, "lr": 0.5}, lr=0.1).param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError):
        SGD(ps[0], lr=0.1)
    with pytest.raises(TypeError):
        SGD([1.0], lr=0.1)


def test_zero_grad_to_none_and_in_place(dtype):
    a, b = param([1.0, 2.0], dtype), param([3.0], dtype)
    set_grad(a, [5.0, 6.0])
    opt = SGD([a, b], lr=0.1)
    opt.zero_grad(set_to_None=False)
    grad = a.grad
    assert_close(grad, [0.0, 0.0], dtype)
    assert b.grad is None
    opt.zero_grad(set_to_none=False)
    assert a.grad is grad
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    set_grad(a, [1.0, 1.0])
    opt.zero_grad(set_to_none=True)
    assert a.grad is None


def test_base_step_is_abstract_and_closures_return_the_loss():
    p = param([1.0])
    with pytest.raises(NotImplementedError):
        Optimizer([p], {}).step()
    set_grad(p, [1.0])
    opt = SGD([p], lr=0.5)
    assert opt.step(closure=lambda: 42.0) == 42.0
    assert_close(p, [0.5])


@pytest.mark.parametrize("make_opt", [lambda ps: SGD(ps, lr=0.1, momentum=0.9),
                                      lambda ps: Adam(ps, lr=0.05, weight_decay=0.01)], ids=["sgd", "adam"])
def test_state_dict_round_trip_continues_identically(make_opt, dtype):
    rng = np.random.default_rng(2)
    p0 = [rng.normal(size=(3,)), rng.normal(size=(2, 2))]
    grads = [[rng.normal(size=g.shape) for g in p0] for _ in range(3)]
    ps = [param(x, dtype) for x in p0]
    opt = make_opt(ps)
    for step in grads[:2]:
        for p, g in zip(ps, step):
            set_grad(p, g)
        opt.step()
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1] and saved["param_groups"][0]["params"] == [0, 1]

    clones = [param(p.numpy(), dtype) for p in ps]
    restored = make_opt(clones)
    restored.param_groups[0]["lr"] = 123.0  # overwritten by the load
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for model, o in ((ps, opt), (clones, restored)):
        for p, g in zip(model, grads[2]):
            set_grad(p, g)
        o.step()
    for p, q in zip(ps, clones):
        assert_close(q, p.numpy(), dtype)
    # the restored state is a copy: further steps of one optimizer leave the other's buffers alone
    key = "momentum_buffer" if "momentum_buffer" in saved["state"][0] else "exp_avg"
    before = restored.state[clones[0].param_id][key].numpy()
    opt.step()
    np.testing.assert_array_equal(restored.state[clones[0].param_id][key].numpy(), before)


def test_load_state_dict_accepts_numpy_arrays_from_a_file(dtype):
    p = param([1.0, 2.0], dtype)
    opt = Adam([p], lr=0.1)
    saved = {"state": {0: {"step": np.array(3), "exp_avg": np.array([0.1, 0.2]),
                           "exp_avg_sq": np.array([0.01, 0.04])}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "params": [0]}]}
    opt.load_state_dict(saved)
    set_grad(p, [0.0, 0.0])
    opt.step()  # step 4: m = 0.9 m, v = 0.999 v
    m, v = np.array([0.09, 0.18]), np.array([0.00999, 0.03996])
    expected = np.array([1.0, 2.0]) - 0.1 * (m / (1 - 0.9 ** 4)) / (np.sqrt(v / (1 - 0.999 ** 4)) + 1e-8)
    assert opt.state[p.param_id]["step"] == 4
    assert_close(p, expected, dtype, rtol=1e-5 if dtype == np.float32 else 1e-11)


def test_load_state_dict_rejects_mismatched_groups_and_shapes():
    a, b = param([1.0]), param([1.0, 2.0])
    set_grad(a, [1.0])
    opt = SGD([a], lr=0.1, momentum=0.9)
    opt.step()
    saved = opt.state_dict()
    with pytest.raises(ValueError):
        SGD([a, b], lr=0.1, momentum=0.9).load_state_dict(saved)
    with pytest.raises(ValueError):
        SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(saved)
    with pytest.raises(ShapeError):
        SGD([b], lr=0.1, momentum=0.9).load_state_dict(saved)


# ---- schedulers --------------------------------------------------------------------------------------------

def sgd_with_lrs(*lrs):
    return SGD([{"params": [param([1.0])], "lr": lr} for lr in lrs], lr=lrs[0])


def test_exponential_lr_default_gamma_and_epoch_jumps():
    opt = sgd_with_lrs(1.0)
    sched = ExponentialLR(opt)
    assert sched.gamma == 0.1 and sched.last_epoch == 0 and sched.get_last_lr() == [1.0]
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)

    opt = sgd_with_lrs(1.0)
    sched = ExponentialLR(opt, gamma=0.5)
    sched.step(epoch=3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.125)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0625) and sched.last_epoch == 4


def test_base_lrs_are_the_current_lrs_at_construction():
    opt = sgd_with_lrs(0.1, 0.2)
    first = StepLR(opt, step_size=1, gamma=0.5)
    first.step()
    assert first.get_last_lr() == pytest.approx([0.05, 0.1])
    for group in opt.param_groups:  # course code resets lr and attaches a second scheduler
        group["lr"] = 1.0
    second = ExponentialLR(opt, gamma=0.5)
    assert second.base_lrs == [1.0, 1.0]
    second.step()
    assert second.get_last_lr() == pytest.approx([0.5, 0.5])


def test_step_lr_and_lambda_lr_per_group():
    opt = sgd_with_lrs(1.0, 0.5)
    sched = StepLR(opt, step_size=2, gamma=0.1)
    lrs = []
    for _ in range(5):
        lrs.append(sched.get_last_lr())
        sched.step()
    np.testing.assert_allclose(lrs, [[1.0, 0.5], [1.0, 0.5], [0.1, 0.05], [0.1, 0.05], [0.01, 0.005]])

    opt = sgd_with_lrs(2.0, 4.0)
    sched = LambdaLR(opt, lambda epoch: 1.0 / (epoch + 1))
    sched.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([2.0 / 3, 4.0 / 3])
    with pytest.raises(TypeError):
        LambdaLR(opt, 0.5)
    with pytest.raises(ValueError):
        StepLR(opt, step_size=0)


def test_last_epoch_zero_at_construction_is_accepted():
    opt = sgd_with_lrs(1.0)
    sched = ExponentialLR(opt, gamma=0.5, last_epoch=0)
    assert sched.last_epoch == 1 and opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_cosine_annealing_closed_form():
    opt = sgd_with_lrs(1.0)
    sched = CosineAnnealingLR(opt, T_max=4, eta_min=0.2)
    got = []
    for _ in range(5):
        got.append(opt.param_groups[0]["lr"])
        sched.step()
    assert got == pytest.approx([0.2 + 0.8 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(5)])
    assert got[-1] == pytest.approx(0.2)


def test_schedulers_drive_duck_optimizers_that_skip_init():
    class Duck(Optimizer):
        def __init__(self):  # sets only what the course's duck optimizers set
            self.param_groups = [{"lr": 1.0}, {"lr": 3.0}]
            self.defaults = {}
            self.state = {}

    duck = Duck()
    sched = StepLR(duck, step_size=1, gamma=0.5)
    sched.step()
    assert duck.param_groups == [{"lr": 0.5}, {"lr": 1.5}]
    duck.zero_grad()  # no params: nothing to do, no error


def test_base_scheduler_get_lr_is_abstract_and_state_dict_round_trips():
    with pytest.raises(NotImplementedError):
        LRScheduler(sgd_with_lrs(1.0))
    opt = sgd_with_lrs(1.0)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    for _ in range(4):
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 4
    other = StepLR(sgd_with_lrs(1.0), step_size=1)
    other.load_state_dict(state)
    assert other.last_epoch == 4 and other.step_size == 3


def test_import_paths():
    assert optimizer_module.SGD is SGD and lr_scheduler_module.StepLR is StepLR


def test_state_dict_survives_clownpiece_save_and_load(tmp_path):
    from clownpiece.serialization import load, save
    p = param([1.0, 2.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    set_grad(p, [1.0, -1.0])
    opt.step()
    save(opt.state_dict(), str(tmp_path / "opt.cpt"))
    q = param(p.numpy())
    restored = SGD([q], lr=0.5, momentum=0.9)
    restored.load_state_dict(load(str(tmp_path / "opt.cpt")))
    assert restored.param_groups[0]["lr"] == 0.1
    assert_close(restored.state[q.param_id]["momentum_buffer"], [1.0, -1.0])
