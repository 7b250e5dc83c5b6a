"""LR schedulers against the sequences of PyTorch's documented formulas (computed here, not by the
schedulers), their composition (SequentialLR, ChainedScheduler, two schedulers on one optimizer),
ReduceLROnPlateau's rules, state_dict round trips and bad arguments."""
import math

import numpy as np
import pytest

import clownpiece as cp
from clownpiece.utils.optim import (
    SGD,
    Adam,
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    OneCycleLR,
    Optimizer,
    PolynomialLR,
    ReduceLROnPlateau,
    RMSprop,
    SequentialLR,
    StepLR,
    lr_scheduler,
)

EPOCHS = 14


def opt_with(*lrs, cls=SGD, **kwargs):
    groups = [{"params": [cp.Tensor([1.0], requires_grad=True)], "lr": lr} for lr in lrs]
    return cls(groups, lr=lrs[0], **kwargs)


def lrs_of(sched, epochs=EPOCHS):
    """The lrs of every group at epochs 0 .. epochs-1 (the construction counts as epoch 0's step)."""
    out = []
    for _ in range(epochs):
        out.append(sched.get_last_lr())
        sched.step()
    return np.array(out)


def expected(formula, bases, epochs=EPOCHS):
    return np.array([[formula(base, e) for base in bases] for e in range(epochs)])


# ---- the documented closed forms -----------------------------------------------------------------------------

SCHEDULES = {
    "StepLR": (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda b, e: b * 0.5 ** (e // 3)),
    "MultiStepLR": (lambda o: MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.1),
                    lambda b, e: b * 0.1 ** sum(m <= e for m in [2, 5, 5, 9])),
    "ExponentialLR": (lambda o: ExponentialLR(o, gamma=0.8), lambda b, e: b * 0.8 ** e),
    "ConstantLR": (lambda o: ConstantLR(o, factor=0.25, total_iters=4), lambda b, e: b * (0.25 if e < 4 else 1.0)),
    "ConstantLR-defaults": (lambda o: ConstantLR(o), lambda b, e: b * (1 / 3 if e < 5 else 1.0)),
    "LinearLR": (lambda o: LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=6),
                 lambda b, e: b * (0.2 + 0.7 * min(e, 6) / 6)),
    "LinearLR-decay": (lambda o: LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=10),
                       lambda b, e: b * (1.0 - min(e, 10) / 10)),
    "PolynomialLR": (lambda o: PolynomialLR(o, total_iters=8, power=2.0), lambda b, e: b * (1 - min(e, 8) / 8) ** 2),
    "PolynomialLR-defaults": (lambda o: PolynomialLR(o), lambda b, e: b * (1 - min(e, 5) / 5)),
    "CosineAnnealingLR": (lambda o: CosineAnnealingLR(o, T_max=5, eta_min=0.01),  # beyond T_max it rises again
                          lambda b, e: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * e / 5)) / 2),
    "LambdaLR": (lambda o: LambdaLR(o, lambda e: 1 / (1 + e)), lambda b, e: b / (1 + e)),
    "MultiplicativeLR": (lambda o: MultiplicativeLR(o, lambda e: 0.9), lambda b, e: b * 0.9 ** e),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sequence_matches_the_documented_formula(name):
    make, formula = SCHEDULES[name]
    opt = opt_with(0.1, 0.03)
    np.testing.assert_allclose(lrs_of(make(opt)), expected(formula, [0.1, 0.03]), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", [n for n in SCHEDULES if n not in ("MultiplicativeLR",)])
def test_step_with_an_epoch_jumps_to_the_closed_form(name):
    make, formula = SCHEDULES[name]
    opt = opt_with(0.1)
    sched = make(opt)
    for epoch in (7, 3, 12, 0, 5):
        sched.step(epoch)
        assert sched.last_epoch == epoch
        assert opt.param_groups[0]["lr"] == pytest.approx(formula(0.1, epoch), rel=1e-12)


def test_cosine_warm_restarts_integer_epochs():
    # T_i = 3, 6, 12, ...: restarts at epochs 3 and 9
    opt = opt_with(0.5)
    got = lrs_of(CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.05), 22)[:, 0]
    np.testing.assert_allclose(got, [warm_restart(0.5, e, 3, 2, 0.05) for e in range(22)], rtol=1e-12)
    assert got[3] == pytest.approx(0.5) and got[9] == pytest.approx(0.5)


def warm_restart(base, epoch, T_0, T_mult, eta_min):
    """SGDR: walk the cycles (lengths T_0, T_0 T_mult, ...) to find T_cur and T_i for `epoch`."""
    start, T_i = 0.0, T_0
    while epoch >= start + T_i:
        start += T_i
        T_i *= T_mult
    return eta_min + (base - eta_min) * (1 + math.cos(math.pi * (epoch - start) / T_i)) / 2


@pytest.mark.parametrize("T_mult", [1, 2, 3])
def test_cosine_warm_restarts_fractional_epochs(T_mult):
    # the documented per-batch use: scheduler.step(epoch + i / iters)
    opt = opt_with(1.0, 0.2)
    sched = CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=T_mult, eta_min=0.0)
    iters = 5
    for epoch in range(9):
        for i in range(iters):
            x = epoch + i / iters
            sched.step(x)
            assert sched.get_last_lr() == pytest.approx([warm_restart(b, x, 2, T_mult, 0.0) for b in (1.0, 0.2)],
                                                        rel=1e-9, abs=1e-12)
            assert sched.last_epoch == math.floor(x)


def test_cosine_warm_restarts_checks_arguments():
    opt = opt_with(0.1)
    for kwargs, match in ((dict(T_0=0), "positive integer T_0"), (dict(T_0=2.5), "positive integer T_0"),
                          (dict(T_0=2, T_mult=0), "T_mult >= 1"), (dict(T_0=2, T_mult=1.5), "T_mult >= 1"),
                          (dict(T_0=2, eta_min="0"), "eta_min")):
        with pytest.raises(ValueError, match=match):
            CosineAnnealingWarmRestarts(opt, **kwargs)
    with pytest.raises(ValueError, match="non-negative epoch"):
        CosineAnnealingWarmRestarts(opt, T_0=2).step(-1)


# ---- OneCycleLR ----------------------------------------------------------------------------------------------

def one_cycle(step, total, max_lr, pct=0.3, div=25.0, final_div=1e4, three_phase=False, anneal="cos",
              low=0.85, high=0.95):
    """(lr, momentum) of the 1cycle policy at `step`, phases ending at the steps PyTorch documents in its
    source (pct * total - 1, [2 pct * total - 2,] total - 1)."""
    initial, min_lr = max_lr / div, max_lr / div / final_div
    if three_phase:
        phases = [(pct * total - 1, initial, max_lr, high, low), (2 * pct * total - 2, max_lr, initial, low, high),
                  (total - 1, initial, min_lr, high, high)]
    else:
        phases = [(pct * total - 1, initial, max_lr, high, low), (total - 1, max_lr, min_lr, low, high)]
    start = 0.0
    for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
        if step <= end or i == len(phases) - 1:
            t = (step - start) / (end - start)
            if anneal == "cos":
                mix = lambda a, b: b + (a - b) * (1 + math.cos(math.pi * t)) / 2  # noqa: E731
            else:
                mix = lambda a, b: a + (b - a) * t  # noqa: E731
            return mix(lr0, lr1), mix(m0, m1)
        start = end


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_lr_and_momentum(three_phase, anneal):
    opt = opt_with(0.1, momentum=0.9)
    total = 20
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=total, anneal_strategy=anneal, three_phase=three_phase)
    for step in range(total):
        lr, momentum = one_cycle(step, total, 1.0, three_phase=three_phase, anneal=anneal)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12)
        assert opt.param_groups[0]["momentum"] == pytest.approx(momentum, rel=1e-12)
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 21 times"):
        sched.step()


def test_one_cycle_cycles_adams_beta1_per_group_and_epochs_times_steps():
    opt = opt_with(0.1, 0.1, cls=Adam, betas=(0.9, 0.99))
    sched = OneCycleLR(opt, max_lr=[0.5, 2.0], epochs=3, steps_per_epoch=4, pct_start=0.25, div_factor=10.0,
                       final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9)
    assert sched.total_steps == 12
    for step in range(12):
        for group, top in zip(opt.param_groups, (0.5, 2.0)):
            lr, beta1 = one_cycle(step, 12, top, pct=0.25, div=10.0, final_div=100.0, low=0.8, high=0.9)
            assert group["lr"] == pytest.approx(lr, rel=1e-12)
            assert group["betas"] == pytest.approx((beta1, 0.99), rel=1e-12)
        sched.step()


def test_one_cycle_checks_arguments():
    opt = opt_with(0.1, momentum=0.9)
    for kwargs, match in ((dict(), "total_steps OR"), (dict(total_steps=0), "positive integer total_steps"),
                          (dict(epochs=0, steps_per_epoch=3), "positive integer epochs"),
                          (dict(epochs=2, steps_per_epoch=1.5), "positive integer steps_per_epoch"),
                          (dict(total_steps=10, pct_start=1.5), "pct_start"),
                          (dict(total_steps=10, pct_start=1), "pct_start"),
                          (dict(total_steps=10, anneal_strategy="exp"), "anneal_strategy"),
                          (dict(total_steps=10, max_lr=[1.0, 2.0]), "same length")):
        with pytest.raises(ValueError, match=match):
            OneCycleLR(opt, **{"max_lr": 1.0, **kwargs})

    class NoMomentum(Optimizer):
        def __init__(self):
            self.param_groups, self.defaults, self.state = [{"lr": 0.1}], {"lr": 0.1}, {}

    with pytest.raises(ValueError, match="momentum or beta1"):
        OneCycleLR(NoMomentum(), max_lr=1.0, total_steps=10)
    OneCycleLR(NoMomentum(), max_lr=1.0, total_steps=10, cycle_momentum=False)


def test_one_cycle_gives_rmsprop_momentum_that_the_step_uses():
    p = cp.Tensor([1.0], requires_grad=True)
    opt = RMSprop([p], lr=0.01)
    OneCycleLR(opt, max_lr=0.1, total_steps=10)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)
    p.grad = cp.Tensor([1.0])
    opt.step()
    assert "momentum_buffer" in opt.state[p.param_id]


# ---- composition ----------------------------------------------------------------------------------------------

def test_sequential_lr_warmup_then_decay_uses_the_original_base():
    # PyTorch's documented use: warm up with LinearLR, then ExponentialLR from the original lr
    opt = opt_with(1.0, 0.5)
    warmup = LinearLR(opt, start_factor=0.1, total_iters=3)
    decay = ExponentialLR(opt, gamma=0.9)
    sched = SequentialLR(opt, [warmup, decay], milestones=[3])
    got = lrs_of(sched, 10)
    ref = expected(lambda b, e: b * (0.1 + 0.9 * e / 3) if e < 3 else b * 0.9 ** (e - 3), [1.0, 0.5], 10)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_sequential_lr_three_schedulers():
    opt = opt_with(0.2)
    scheds = [ConstantLR(opt, factor=0.5, total_iters=10), StepLR(opt, step_size=2, gamma=0.1),
              CosineAnnealingLR(opt, T_max=4)]
    got = lrs_of(SequentialLR(opt, scheds, milestones=[2, 6]), 12)[:, 0]
    ref = [0.2 * 0.5 if e < 2 else 0.2 * 0.1 ** ((e - 2) // 2) if e < 6 else
           0.2 * (1 + math.cos(math.pi * (e - 6) / 4)) / 2 for e in range(12)]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)


def test_chained_scheduler_multiplies_the_factors():
    opt = opt_with(1.0)
    sched = ChainedScheduler([ConstantLR(opt, factor=0.1, total_iters=2), ExponentialLR(opt, gamma=0.9)])
    got = lrs_of(sched, 8)[:, 0]
    np.testing.assert_allclose(got, [(0.1 if e < 2 else 1.0) * 0.9 ** e for e in range(8)], rtol=1e-12)


def test_two_schedulers_stepped_together_compose_like_pytorch():
    opt = opt_with(1.0)
    a, b = StepLR(opt, step_size=2, gamma=0.5), LinearLR(opt, start_factor=0.5, total_iters=4)
    got = []
    for _ in range(7):
        got.append(opt.param_groups[0]["lr"])
        a.step()
        b.step()
    np.testing.assert_allclose(got, [0.5 ** (e // 2) * (0.5 + 0.5 * min(e, 4) / 4) for e in range(7)], rtol=1e-12)


def test_plateau_reductions_survive_a_warmup_scheduler():
    opt = opt_with(1.0)
    warmup = LinearLR(opt, start_factor=0.5, total_iters=2)
    plateau = ReduceLROnPlateau(opt, factor=0.5, patience=0)
    warmup.step()                  # 0.75
    plateau.step(1.0)              # first metric: an improvement
    plateau.step(1.0)              # no improvement, patience 0: halve -> 0.375
    warmup.step()                  # the warm-up factor 1 / 0.75 on top -> 0.5
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_composites_check_their_schedulers():
    opt, other = opt_with(0.1), opt_with(0.1)
    a, b = StepLR(opt, 2), StepLR(other, 2)
    with pytest.raises(ValueError, match="same optimizer"):
        SequentialLR(opt, [a, b], milestones=[2])
    with pytest.raises(ValueError, match="one more than the number of milestone"):
        SequentialLR(opt, [a], milestones=[2])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        ChainedScheduler([a, ReduceLROnPlateau(opt)])
    with pytest.raises(ValueError, match="at least one"):
        ChainedScheduler([])
    with pytest.raises(TypeError, match="optimizer"):
        SequentialLR(opt, [a, object()], milestones=[2])


# ---- ReduceLROnPlateau ----------------------------------------------------------------------------------------

def test_plateau_min_rel_with_patience_cooldown_and_min_lr():
    opt = opt_with(1.0, 0.02)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=[0.1, 0.01])
    metrics = [10, 9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8]
    # epoch 1 best 10; 2 best 9; 3, 4, 5 bad -> 3 bad > patience 2: halve at 5, cooldown 1; 6 cools down
    # (its bad count is reset); 7, 8, 9 bad: halve at 9; 10 improves (8 < 9 * (1 - 1e-4)); 11, 12, 13 bad:
    # halve at 13
    want = [1.0] * 4 + [0.5] * 4 + [0.25] * 4 + [0.125]
    want_small = [0.02] * 4 + [0.01] * 9  # stops at its min_lr
    got = []
    for m in metrics:
        sched.step(m)
        got.append(sched.get_last_lr())
    np.testing.assert_allclose(np.array(got), np.array([want, want_small]).T)


def test_plateau_modes_and_thresholds():
    def run(metrics, **kwargs):
        opt = opt_with(1.0)
        sched = ReduceLROnPlateau(opt, factor=0.1, patience=0, **kwargs)
        for m in metrics:
            sched.step(m)
        return opt.param_groups[0]["lr"]

    assert run([1.0, 2.0], mode="max") == 1.0                      # rising: better in max mode
    assert run([1.0, 0.5], mode="max") == pytest.approx(0.1)
    assert run([1.0, 0.95], threshold=0.1) == pytest.approx(0.1)   # rel: needs < 0.9
    assert run([1.0, 0.85], threshold=0.1) == 1.0
    assert run([1.0, 0.95], threshold=0.1, threshold_mode="abs") == pytest.approx(0.1)
    assert run([1.0, 1.05], mode="max", threshold=0.1, threshold_mode="abs") == pytest.approx(0.1)
    assert run([1.0, 1.2], mode="max", threshold=0.1, threshold_mode="abs") == 1.0
    assert run([1.0, 2.0], min_lr=0.5) == 0.5
    assert run([1.0, 2.0], eps=0.95) == 1.0                        # a change below eps is skipped
    assert run([cp.Tensor(1.0), cp.Tensor(2.0)]) == pytest.approx(0.1)  # 0-dim tensor metrics


def test_plateau_checks_arguments():
    opt = opt_with(0.1, 0.2)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown"):
        ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="threshold mode x is unknown"):
        ReduceLROnPlateau(opt, threshold_mode="x")
    with pytest.raises(ValueError, match="expected 2 min_lrs, got 1"):
        ReduceLROnPlateau(opt, min_lr=[0.1])


# ---- state dicts ----------------------------------------------------------------------------------------------

ROUND_TRIP = {
    "StepLR": lambda o: StepLR(o, 3, gamma=0.5),
    "MultiStepLR": lambda o: MultiStepLR(o, [2, 4, 4], gamma=0.5),
    "LinearLR": lambda o: LinearLR(o, 0.1, total_iters=6),
    "PolynomialLR": lambda o: PolynomialLR(o, 8, 2.0),
    "CosineAnnealingLR": lambda o: CosineAnnealingLR(o, 5),
    "CosineAnnealingWarmRestarts": lambda o: CosineAnnealingWarmRestarts(o, 2, 2),
    "OneCycleLR": lambda o: OneCycleLR(o, 1.0, total_steps=20),
    "LambdaLR": lambda o: LambdaLR(o, lambda e: 0.9 ** e),
    "SequentialLR": lambda o: SequentialLR(o, [LinearLR(o, 0.5, total_iters=3), ExponentialLR(o, 0.9)], [3]),
    "ChainedScheduler": lambda o: ChainedScheduler([ConstantLR(o, 0.5, 3), ExponentialLR(o, 0.9)]),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip_through_a_file_continues_identically(name, tmp_path):
    make = ROUND_TRIP[name]
    opt = opt_with(0.1, momentum=0.9)
    sched = make(opt)
    for _ in range(5):
        sched.step()
    cp.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, str(tmp_path / "ckpt.cpt"))
    saved = cp.load(str(tmp_path / "ckpt.cpt"))
    assert "optimizer" not in saved["sched"]

    fresh = opt_with(0.1, momentum=0.9)
    resumed = make(fresh)
    fresh.load_state_dict(saved["opt"])
    resumed.load_state_dict(saved["sched"])
    assert getattr(resumed, "last_epoch", None) == getattr(sched, "last_epoch", None)
    for _ in range(8):
        sched.step()
        resumed.step()
        assert resumed.get_last_lr() == sched.get_last_lr()
        assert fresh.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]


def test_plateau_state_dict_round_trip(tmp_path):
    opt = opt_with(1.0)
    sched = ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for m in (3, 2, 2):
        sched.step(m)
    cp.save(sched.state_dict(), str(tmp_path / "s.cpt"))
    other = ReduceLROnPlateau(opt_with(1.0), patience=5)
    other.load_state_dict(cp.load(str(tmp_path / "s.cpt")))
    assert other.patience == 1 and other.best == 2 and other.num_bad_epochs == 1
    sched.step(2)
    other.optimizer.param_groups[0]["lr"] = 1.0
    other.step(2)
    assert other.get_last_lr() == sched.get_last_lr() == [0.5]


def test_lambda_lr_state_dict_saves_callable_objects_but_not_functions():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    opt = opt_with(1.0, 1.0)
    sched = LambdaLR(opt, [Decay(0.5), lambda e: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.5}, None]
    other = LambdaLR(opt_with(1.0, 1.0), [Decay(0.9), lambda e: 2.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].rate == 0.5
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        LambdaLR(opt, [Decay(0.5)])


# ---- bad arguments --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 2), lambda o: MultiStepLR(o, [1]), lambda o: ExponentialLR(o), lambda o: ConstantLR(o),
    lambda o: LinearLR(o), lambda o: PolynomialLR(o), lambda o: CosineAnnealingLR(o, 3),
    lambda o: CosineAnnealingWarmRestarts(o, 2), lambda o: OneCycleLR(o, 1.0, total_steps=5),
    lambda o: LambdaLR(o, lambda e: 1.0), lambda o: MultiplicativeLR(o, lambda e: 1.0),
    lambda o: ReduceLROnPlateau(o), lambda o: SequentialLR(o, [], []),
], ids=["StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR", "LinearLR", "PolynomialLR", "CosineAnnealingLR",
        "CosineAnnealingWarmRestarts", "OneCycleLR", "LambdaLR", "MultiplicativeLR", "ReduceLROnPlateau",
        "SequentialLR"])
def test_a_scheduler_given_a_non_optimizer_raises(make):
    with pytest.raises(TypeError, match="dict is not an Optimizer"):
        make({"lr": 0.1})


def test_factor_checks():
    opt = opt_with(0.1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        ConstantLR(opt, factor=1.5)
    with pytest.raises(ValueError, match="greater than 0"):
        LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="Ending multiplicative factor"):
        LinearLR(opt, end_factor=1.5)


def test_construction_and_import_paths():
    opt = opt_with(0.1)
    sched = LinearLR(opt, start_factor=0.5)
    assert sched.last_epoch == 0 and sched.base_lrs == [0.1] and sched.get_last_lr() == [0.05]
    assert "initial_lr" not in opt.param_groups[0]  # the course's groups stay as they were
    assert lr_scheduler.OneCycleLR is OneCycleLR and lr_scheduler.ReduceLROnPlateau is ReduceLROnPlateau
