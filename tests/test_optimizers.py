"""Adam/AdamW (amsgrad, maximize), RMSprop and Adagrad against the update rules of PyTorch's documentation
written out in numpy float64, over several steps; per-group options, launch counts, state_dict round trips
and PyTorch's argument checks."""
import numpy as np
import pytest
from conftest import assert_close, no_launch

import clownpiece as cp
from clownpiece import backend
from clownpiece.utils.optim import SGD, Adagrad, Adam, AdamW, RMSprop

STEPS = 5


# ---- the documented algorithms (pytorch.org/docs/stable/generated/torch.optim.*.html) ----------------------

def adam_rule(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
              decoupled=False):
    p = np.array(p, np.float64)
    m = v = vmax = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p - lr * weight_decay * p
        elif weight_decay:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g ** 2
        m_hat = m / (1 - betas[0] ** t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            v_hat = vmax / (1 - betas[1] ** t)
        else:
            v_hat = v / (1 - betas[1] ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def rmsprop_rule(p, grads, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
    p = np.array(p, np.float64)
    v = b = g_ave = np.zeros_like(p)
    for g in grads:
        g = -g if maximize else g
        if weight_decay:
            g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g ** 2
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v_tilde - g_ave ** 2
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            p = p - lr * b
        else:
            p = p - lr * g / (np.sqrt(v_tilde) + eps)
    return p


def adagrad_rule(p, grads, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 maximize=False):
    p = np.array(p, np.float64)
    state_sum = np.full_like(p, initial_accumulator_value)
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        lr_t = lr / (1 + (t - 1) * lr_decay)
        if weight_decay:
            g = g + weight_decay * p
        state_sum = state_sum + g ** 2
        p = p - lr_t * g / (np.sqrt(state_sum) + eps)
    return p


def adamw_rule(p, grads, weight_decay=0.01, **kwargs):  # AdamW's default weight decay is 0.01
    return adam_rule(p, grads, weight_decay=weight_decay, decoupled=True, **kwargs)


CASES = [
    (Adam, adam_rule, dict(lr=0.05)),
    (Adam, adam_rule, dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.1, amsgrad=True)),
    (Adam, adam_rule, dict(lr=0.02, amsgrad=True, maximize=True, eps=1e-3)),
    (AdamW, adamw_rule, dict(lr=0.05, weight_decay=0.2, amsgrad=True)),
    (AdamW, adamw_rule, dict(lr=0.05, maximize=True)),
    (RMSprop, rmsprop_rule, dict()),
    (RMSprop, rmsprop_rule, dict(lr=0.02, alpha=0.9, weight_decay=0.1)),
    (RMSprop, rmsprop_rule, dict(lr=0.01, momentum=0.9)),
    (RMSprop, rmsprop_rule, dict(lr=0.01, centered=True, alpha=0.8)),
    (RMSprop, rmsprop_rule, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.05, maximize=True)),
    (Adagrad, adagrad_rule, dict()),
    (Adagrad, adagrad_rule, dict(lr=0.1, lr_decay=0.3, weight_decay=0.1, initial_accumulator_value=0.5)),
    (Adagrad, adagrad_rule, dict(lr=0.1, eps=1e-3, maximize=True)),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for c, _, kw in CASES]


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


def run(cls, kwargs, p0, grads, dtype):
    p = cp.Tensor(p0.astype(dtype), requires_grad=True, dtype=dtype)
    opt = cls([p], **kwargs)
    for g in grads:
        p.grad = cp.Tensor(g.astype(dtype), dtype=dtype)
        opt.step()
    return p, opt


@pytest.mark.parametrize("cls,rule,kwargs", CASES, ids=IDS)
def test_steps_follow_the_documented_rule(cls, rule, kwargs, dtype):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 5))
    grads = [rng.normal(size=(3, 5)) * (1 + t) for t in range(STEPS)]
    p, _ = run(cls, kwargs, p0, grads, dtype)
    assert_close(p, rule(p0, grads, **kwargs), dtype, **tol(dtype))


def test_amsgrad_differs_from_adam_when_the_second_moment_shrinks():
    # a big gradient then small ones: v falls, vmax keeps the big one, so AMSGrad takes smaller steps
    p0 = np.array([1.0])
    grads = [np.array([10.0])] + [np.array([0.1])] * 4
    plain, _ = run(Adam, dict(lr=0.1), p0, grads, np.float64)
    ams, opt = run(Adam, dict(lr=0.1, amsgrad=True), p0, grads, np.float64)
    assert_close(plain, adam_rule(p0, grads, lr=0.1))
    assert_close(ams, adam_rule(p0, grads, lr=0.1, amsgrad=True))
    assert abs(1.0 - ams.item()) < abs(1.0 - plain.item())
    state = opt.state[ams.param_id]
    # the largest v_t is v_1 = (1 - 0.999) * 100 = 0.1 (later ones are 0.999 v + 0.001 * 0.01, smaller)
    assert_close(state["max_exp_avg_sq"], [0.1])


def test_per_group_options(dtype):
    rng = np.random.default_rng(1)
    a0, b0 = rng.normal(size=4), rng.normal(size=(2, 2))
    grads = [(rng.normal(size=4), rng.normal(size=(2, 2))) for _ in range(STEPS)]
    a = cp.Tensor(a0.astype(dtype), requires_grad=True, dtype=dtype)
    b = cp.Tensor(b0.astype(dtype), requires_grad=True, dtype=dtype)
    opt = RMSprop([{"params": [a]}, {"params": [b], "lr": 0.05, "centered": True, "momentum": 0.3}], lr=0.01)
    assert opt.param_groups[1]["alpha"] == 0.99 and opt.param_groups[0]["centered"] is False
    for ga, gb in grads:
        a.grad = cp.Tensor(ga.astype(dtype), dtype=dtype)
        b.grad = cp.Tensor(gb.astype(dtype), dtype=dtype)
        opt.step()
    assert_close(a, rmsprop_rule(a0, [g for g, _ in grads], lr=0.01), dtype, **tol(dtype))
    assert_close(b, rmsprop_rule(b0, [g for _, g in grads], lr=0.05, centered=True, momentum=0.3), dtype, **tol(dtype))
    state = opt.state[b.param_id]
    assert set(state) == {"step", "square_avg", "grad_avg", "momentum_buffer"} and state["step"] == STEPS
    assert set(opt.state[a.param_id]) == {"step", "square_avg"}


def test_add_param_group_uses_the_defaults_of_the_optimizer():
    a = cp.Tensor([1.0], requires_grad=True)
    b = cp.Tensor([1.0], requires_grad=True)
    opt = Adagrad([a], lr=0.5, lr_decay=0.1)
    opt.add_param_group({"params": [b], "initial_accumulator_value": 1.0})
    a.grad, b.grad = cp.Tensor([2.0]), cp.Tensor([2.0])
    opt.step()
    assert_close(a, adagrad_rule([1.0], [np.array([2.0])], lr=0.5))
    assert_close(b, adagrad_rule([1.0], [np.array([2.0])], lr=0.5, initial_accumulator_value=1.0))


def test_momentum_switched_on_later_starts_from_zero():
    # OneCycleLR may give RMSprop a momentum after the first step: the buffer starts at zero then
    p = cp.Tensor([1.0], requires_grad=True, dtype=np.float64)
    opt = RMSprop([p], lr=0.1)
    p.grad = cp.Tensor([1.0], dtype=np.float64)
    opt.step()
    opt.param_groups[0]["momentum"] = 0.5
    opt.step()
    v1 = 0.01
    v2 = 0.99 * v1 + 0.01
    p1 = 1.0 - 0.1 / (np.sqrt(v1) + 1e-8)
    assert_close(p, [p1 - 0.1 * (1.0 / (np.sqrt(v2) + 1e-8))])


def test_adam_amsgrad_switched_on_after_a_step_raises():
    p = cp.Tensor([1.0], requires_grad=True)
    p.grad = cp.Tensor([1.0])
    opt = Adam([p])
    opt.step()
    opt.param_groups[0]["amsgrad"] = True
    with pytest.raises(RuntimeError, match="amsgrad"):
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda ps: Adam(ps, amsgrad=True, weight_decay=0.1), lambda ps: AdamW(ps, maximize=True),
    lambda ps: RMSprop(ps), lambda ps: RMSprop(ps, momentum=0.9, centered=True, weight_decay=1e-3),
    lambda ps: Adagrad(ps, lr_decay=0.01, initial_accumulator_value=0.1),
], ids=["adam-amsgrad", "adamw-maximize", "rmsprop", "rmsprop-centered-momentum", "adagrad"])
def test_one_launch_per_parameter_per_step_and_no_transfer(make_opt):
    ps = [cp.Tensor(np.ones(s, np.float32), requires_grad=True) for s in [(4, 5), (5,), (2, 3, 2)]]
    for p in ps:
        p.grad = cp.Tensor(np.full(p.shape, 0.5, np.float32))
    opt = make_opt(ps + [cp.Tensor([1.0], requires_grad=True)])  # the last has no grad: no launch
    for _ in range(3):
        backend.reset_stats()
        opt.step()
        s = backend.stats()
        assert s["launches"] == len(ps) and s["h2d_count"] == 0 and s["d2h_count"] == 0


@pytest.mark.parametrize("make_opt", [
    lambda ps: Adam(ps, lr=0.05, amsgrad=True), lambda ps: AdamW(ps, lr=0.05, weight_decay=0.1),
    lambda ps: RMSprop(ps, lr=0.01, momentum=0.9, centered=True), lambda ps: Adagrad(ps, lr=0.1, lr_decay=0.1),
], ids=["adam-amsgrad", "adamw", "rmsprop", "adagrad"])
def test_state_dict_round_trip_through_a_file(make_opt, tmp_path, dtype):
    rng = np.random.default_rng(2)
    p0 = [rng.normal(size=(3,)), rng.normal(size=(2, 2))]
    grads = [[rng.normal(size=x.shape) for x in p0] for _ in range(4)]

    def stepped(opt, params, steps):
        for step in steps:
            for p, g in zip(params, step):
                p.grad = cp.Tensor(g.astype(dtype), dtype=dtype)
            opt.step()

    ps = [cp.Tensor(x.astype(dtype), requires_grad=True, dtype=dtype) for x in p0]
    opt = make_opt(ps)
    stepped(opt, ps, grads[:2])
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1] and saved["param_groups"][0]["params"] == [0, 1]
    assert saved["state"][0]["step"] == 2
    cp.save(saved, str(tmp_path / "opt.cpt"))

    clones = [cp.Tensor(p.numpy(), requires_grad=True, dtype=dtype) for p in ps]
    restored = make_opt(clones)
    restored.load_state_dict(cp.load(str(tmp_path / "opt.cpt")))
    assert restored.state[clones[0].param_id]["step"] == 2
    stepped(opt, ps, grads[2:])
    stepped(restored, clones, grads[2:])
    for p, q in zip(ps, clones):
        np.testing.assert_array_equal(q.numpy(), p.numpy())


def test_load_state_dict_takes_pytorch_style_tensor_steps():
    p = cp.Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    opt = Adagrad([p], lr=0.1)
    opt.load_state_dict({"state": {0: {"step": cp.Tensor(2.0), "sum": cp.Tensor([1.0, 4.0], dtype=np.float64)}},
                         "param_groups": [dict(opt.param_groups[0], params=[0])]})
    p.grad = cp.Tensor([1.0, 1.0], dtype=np.float64)
    opt.step()  # step 3, sum = [2, 5]
    assert opt.state[p.param_id]["step"] == 3 and isinstance(opt.state[p.param_id]["step"], int)
    assert_close(p, [1.0 - 0.1 / (np.sqrt(2.0) + 1e-10), 2.0 - 0.1 / (np.sqrt(5.0) + 1e-10)])


BAD = [
    (Adam, dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    (Adam, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (Adam, dict(betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (Adam, dict(betas=(0.9, -0.5)), "Invalid beta parameter at index 1: -0.5"),
    (Adam, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (AdamW, dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (RMSprop, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (RMSprop, dict(eps=-1e-8), "Invalid epsilon value"),
    (RMSprop, dict(momentum=-0.9), "Invalid momentum value: -0.9"),
    (RMSprop, dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    (RMSprop, dict(alpha=-0.99), "Invalid alpha value: -0.99"),
    (Adagrad, dict(lr=-0.1), "Invalid learning rate"),
    (Adagrad, dict(lr_decay=-0.1), "Invalid lr_decay value: -0.1"),
    (Adagrad, dict(weight_decay=-0.1), "Invalid weight_decay value"),
    (Adagrad, dict(initial_accumulator_value=-1.0), "Invalid initial_accumulator_value value: -1.0"),
    (Adagrad, dict(eps=-1.0), "Invalid epsilon value"),
    (SGD, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (SGD, dict(lr=0.1, momentum=-1), "Invalid momentum value: -1"),
    (SGD, dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
]


@pytest.mark.parametrize("cls,kwargs,message", BAD, ids=[f"{c.__name__}-{m}" for c, _, m in BAD])
def test_bad_arguments_raise_pytorchs_messages_before_anything_runs(cls, kwargs, message):
    p = cp.Tensor([1.0], requires_grad=True)
    with no_launch():
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            cls([p], **kwargs)


def test_other_bad_arguments():
    p = cp.Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="pair"):
        Adam([p], betas=(0.9,))
    with pytest.raises(TypeError, match="pair"):
        Adam([p], betas=0.9)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        RMSprop([p], lr="0.1")
    with pytest.raises(TypeError):
        Adam([p], capturable=True)  # not accepted: there is nothing to capture


def test_foreach_and_fused_are_accepted_and_change_nothing():
    rng = np.random.default_rng(3)
    p0, grads = rng.normal(size=4), [rng.normal(size=4) for _ in range(3)]
    plain, _ = run(AdamW, dict(lr=0.1), p0, grads, np.float64)
    fused, _ = run(AdamW, dict(lr=0.1, foreach=True, fused=True), p0, grads, np.float64)
    np.testing.assert_array_equal(plain.numpy(), fused.numpy())
