"""clownpiece.jit: replays are bit-identical to eager execution, re-read float arguments, draw fresh random
numbers, hold flat memory, and refuse (JitError, naming the line) what they could not repeat."""
import gc
import math
import os
import sys
import warnings

import numpy as np
import pytest
from conftest import pool_bytes_in_use

import clownpiece as cp
from clownpiece import backend, nn
from clownpiece.utils.optim import SGD, Adagrad, Adam, AdamW, RMSprop

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import train_mnist  # noqa: E402

RNG = np.random.default_rng(0)


def batches(n, batch=20, features=784, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, features)).astype(np.float32),
             rng.integers(0, classes, batch).astype(np.float32)) for _ in range(n)]


def train(make_model, make_opt, data, lrs, use_jit, clamp=True, manual=False):
    """Run one training step per batch; (losses, final parameters, the step function)."""
    cp.manual_seed(0)
    model = make_model()
    opt = make_opt(model.parameters())
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y, lr):
        for group in opt.param_groups:
            group["lr"] = lr
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        with cp.no_grad():
            for p in model.parameters():
                if clamp:
                    p.grad = p.grad.clamp(-1.0, 1.0)
                if manual:
                    p.copy_(p - p.grad * lr)
        if not manual:
            opt.step()
        return loss

    fn = cp.jit(step) if use_jit else step
    losses = [fn(cp.Tensor(x), cp.Tensor(y), lr) for (x, y), lr in zip(data, lrs)]
    return [loss.item() for loss in losses], [p.numpy() for p in model.parameters()], fn


def assert_same_run(a, b):
    assert a[0] == b[0]  # float equality of every loss: bit-identical
    for pa, pb in zip(a[1], b[1]):
        np.testing.assert_array_equal(pa, pb)


def test_seed_model_100_steps_with_changing_lr_are_bit_identical():
    data = batches(10)
    lrs = [0.05 * math.exp(-0.01 * i) for i in range(100)]
    data = [data[i % 10] for i in range(100)]
    opt = lambda params: SGD(params, lr=0.05, momentum=0.9)  # noqa: E731
    eager = train(train_mnist.seed_model, opt, data, lrs, use_jit=False)
    jitted = train(train_mnist.seed_model, opt, data, lrs, use_jit=True)
    assert_same_run(eager, jitted)
    assert jitted[2].captured == 1
    assert len(set(eager[0])) > 50  # the run did change something


def _mlp():
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


def _mlp_data(n, seed=1):
    return batches(n, batch=5, features=12, classes=3, seed=seed)


@pytest.mark.parametrize("opt", [
    lambda ps: SGD(ps, lr=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: Adam(ps, lr=0.01),
    lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
    lambda ps: Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.01),
    lambda ps: RMSprop(ps, lr=0.01, momentum=0.9, centered=True),
    lambda ps: Adagrad(ps, lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1),
], ids=["sgd", "nesterov", "adam", "adamw", "amsgrad", "rmsprop", "adagrad"])
def test_optimizers_replay_like_eager(opt):
    data = _mlp_data(12)
    lrs = [0.1 / (1 + i) for i in range(12)]
    assert_same_run(train(_mlp, opt, data, lrs, False), train(_mlp, opt, data, lrs, True))


def test_adam_step_count_advances_at_replays():
    data = _mlp_data(8)
    *_, fn = train(_mlp, lambda ps: Adam(ps, lr=0.01), data, [0.01] * 8, True)
    opt = fn.__wrapped__.__closure__  # the step closes over its optimizer
    adam = next(c.cell_contents for c in opt if isinstance(c.cell_contents, Adam))
    assert {s["step"] for s in adam.state.values()} == {8}


@pytest.mark.parametrize("cls", [RMSprop, Adagrad])
def test_rmsprop_and_adagrad_step_counts_advance_at_replays(cls):
    *_, fn = train(_mlp, lambda ps: cls(ps, lr=0.01), _mlp_data(8), [0.01] * 8, True)
    opt = next(c.cell_contents for c in fn.__wrapped__.__closure__ if isinstance(c.cell_contents, cls))
    assert {s["step"] for s in opt.state.values()} == {8}


def test_manual_update_with_lr_argument_and_constant_then_changing_lr():
    data = _mlp_data(14)
    lrs = [0.1] * 6 + [0.1 * 0.8 ** i for i in range(8)]  # constant at first: guarded, then captured again
    opt = lambda ps: SGD(ps, lr=0.0)  # noqa: E731
    eager = train(_mlp, opt, data, lrs, False, manual=True)
    jitted = train(_mlp, opt, data, lrs, True, manual=True)
    assert_same_run(eager, jitted)


def test_replays_launch_no_python_ops_and_the_same_kernels():
    model, loss_fn = _mlp(), nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = (cp.Tensor(a) for a in _mlp_data(1)[0])
    backend.reset_stats()
    step(x, y)
    eager_launches = backend.stats()["launches"]
    fn = cp.jit(step)
    for _ in range(3):
        fn(x, y)
    import clownpiece.autograd.autograd as engine
    record, engine.Function._record = engine.Function._record, None  # a replay must not record anything
    try:
        backend.reset_stats()
        fn(x, y)
    finally:
        engine.Function._record = record
    s = backend.stats()
    assert 0 < s["launches"] <= eager_launches and s["d2h_count"] == 0 and s["h2d_count"] == 0


def test_independent_elementwise_launches_are_merged_bit_identically(monkeypatch):
    """The seed step's per-parameter gradient clamps and SGD updates run as a few merged launches."""
    data = [(cp.Tensor(x), cp.Tensor(y)) for x, y in batches(6)]

    def run(merge):
        monkeypatch.setattr(cp._jit.plan, "_MERGE", merge)
        cp.manual_seed(0)
        model = train_mnist.seed_model()
        params = list(model.parameters())
        step = cp.jit(train_mnist.make_train_step(model, nn.CrossEntropyLoss(), SGD(params, lr=0.05), params))
        losses = [step(x, y, 0.05 / (1 + i)).item() for i, (x, y) in enumerate(data)]
        backend.reset_stats()
        step(*data[0], 0.01)
        return losses, [p.numpy() for p in params], backend.stats()["launches"]

    merged, plain = run(True), run(False)
    assert merged[0] == plain[0]
    for a, b in zip(merged[1], plain[1]):
        np.testing.assert_array_equal(a, b)
    assert merged[2] <= 0.75 * plain[2]


def test_random_ops_draw_fresh_numbers_like_eager():
    def f(x):
        return x * x.dropout_mask(0.5) + cp.rand(4, 8)

    x = cp.Tensor(RNG.standard_normal((4, 8)).astype(np.float32))
    cp.manual_seed(3)
    eager = [f(x).numpy() for _ in range(6)]
    cp.manual_seed(3)
    fn = cp.jit(f)
    jitted = [fn(x).numpy() for _ in range(6)]
    for a, b in zip(eager, jitted):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(jitted[4], jitted[5])
    assert fn.captured == 1


def test_outputs_are_fresh_tensors_each_call():
    w = cp.Tensor(np.ones((3,), np.float32))

    def f(x, lr):
        w.copy_(w - x * lr)
        return w * 2.0, x.sum(), lr * 3, "tag"

    fn = cp.jit(f)
    outs = [fn(cp.Tensor(np.full(3, float(i), np.float32)), 0.5) for i in range(6)]
    ref = np.ones(3)
    for i, (a, s, k, tag) in enumerate(outs):
        ref = ref - i * 0.5
        np.testing.assert_array_equal(a.numpy(), (ref * 2).astype(np.float32))
        assert s.item() == 3.0 * i and k == 1.5 and type(k) is float and tag == "tag"
        assert not a.requires_grad
    assert len({id(a._storage) for a, *_ in outs}) == 6


def test_float_arguments_are_reread_and_decisions_on_them_are_guarded():
    def f(x, scale):
        y = x * scale - scale / 4
        if scale > 1.0:
            y = y.exp()
        return y

    fn = cp.jit(f)
    x = cp.Tensor(RNG.standard_normal(5).astype(np.float32))
    for s in (0.5, 0.7, 0.25, 0.3, 2.0, 3.0, 0.9, 4.0, 0.1):
        np.testing.assert_array_equal(fn(x, s).numpy(), f(x, s).numpy())


def test_inputs_are_swapped_including_views_at_other_offsets():
    big = cp.Tensor(RNG.standard_normal((10, 4)).astype(np.float32))

    def f(x, y):
        return (x + y[1:]).relu() * 2.0

    fn = cp.jit(f)
    for i in range(6):
        x, y = big[i:i + 3], big[i:i + 4]
        np.testing.assert_array_equal(fn(x, y).numpy(), f(x, y).numpy())
    assert fn.captured == 1


def test_a_new_signature_captures_again_and_ints_are_part_of_it():
    def f(x, k):
        return x[:k].sum(0) * 1.5

    fn = cp.jit(f)
    for shape in ((4, 3), (6, 2), (4, 3), (6, 2)) * 2:
        for k in (1, 2):
            x = cp.Tensor(RNG.standard_normal(shape).astype(np.float32))
            np.testing.assert_array_equal(fn(x, k).numpy(), f(x, k).numpy())
    assert fn.captured == 4


def test_host_read_inside_raises_naming_the_line():
    def f(x):
        y = x * 2.0
        if y.sum().item() > 0:  # the offending line
            return y
        return -y

    fn = cp.jit(f)
    x = cp.Tensor(np.ones(3, np.float32))
    fn(x)  # the first call runs eagerly
    with pytest.raises(cp.JitError, match=r"reads a tensor's value on the host at .*test_jit.py:\d+ `if y.sum"):
        fn(x)
    assert not backend.runtime.recording()
    assert (x * 2.0).sum().item() == 6.0  # reads work again afterwards


def test_gradients_accumulated_across_calls_raise():
    model, loss_fn = _mlp(), nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.1)

    def step(x, y):  # no zero_grad: each call adds to the previous call's grads
        loss_fn(model(x), y).backward()
        opt.step()

    fn = cp.jit(step)
    x, y = (cp.Tensor(a) for a in _mlp_data(1)[0])
    fn(x, y)
    with pytest.raises(cp.JitError, match="replaced state that it read"):
        fn(x, y)


def test_a_number_that_changes_without_being_an_argument_raises():
    model, loss_fn = _mlp(), nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    fn = cp.jit(step)
    x, y = (cp.Tensor(a) for a in _mlp_data(1)[0])
    with pytest.raises(cp.JitError, match="does not come from the function's float arguments"):
        for i in range(5):
            opt.param_groups[0]["lr"] = 0.1 / (i + 1)  # a schedule outside: pass lr as an argument instead
            fn(x, y)


def test_a_lost_trace_raises_when_the_argument_changes():
    def f(x, lr):
        return x * math.exp(lr)  # math.exp gives a plain float: the replay could not recompute it

    fn = cp.jit(f)
    x = cp.Tensor(np.ones(2, np.float32))
    with pytest.raises(cp.JitError, match="does not come from the function's float arguments"):
        for lr in (0.1, 0.2, 0.3, 0.4, 0.5):
            fn(x, lr)


def test_host_data_inside_is_a_constant_or_raises():
    def const(x):
        return x + cp.Tensor([1.0, 2.0])

    fn = cp.jit(const)
    for i in range(5):
        x = cp.Tensor(np.full(2, float(i), np.float32))
        np.testing.assert_array_equal(fn(x).numpy(), [i + 1.0, i + 2.0])
    counter = [0]

    def changing(x):
        counter[0] += 1
        return x + cp.Tensor([float(counter[0])] * 2)

    fn = cp.jit(changing)
    with pytest.raises(cp.JitError, match="host data that changes"):
        for _ in range(5):
            fn(x)


def test_memory_is_flat_over_replays_and_reset_frees_it():
    model, loss_fn = train_mnist.seed_model(), nn.CrossEntropyLoss()
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(x, y, lr):
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    data = [tuple(cp.Tensor(a) for a in b) for b in batches(4)]
    before = pool_bytes_in_use()
    fn = cp.jit(step)
    window = None
    held = []
    for i in range(410):
        loss = fn(*data[i % 4], 0.05 / (1 + i))
        window = loss if window is None else window + loss
        if i in (9, 409):
            assert math.isfinite(window.item())
            held.append(pool_bytes_in_use())
    assert held[0] > before and held[1] == held[0]
    del loss, window
    fn.reset()
    opt.zero_grad()
    momentum = sum(backend.memory.bucket(p.numel() * 4) for p in model.parameters())
    assert pool_bytes_in_use() == before + momentum


def test_deleting_the_function_frees_its_buffers():
    def f(x):
        return ((x * 2.0).exp() @ x.transpose(0, 1)).sum()

    x = cp.Tensor(RNG.standard_normal((16, 16)).astype(np.float32))
    before = pool_bytes_in_use()
    fn = cp.jit(f)
    for _ in range(4):
        fn(x)
    assert fn.captured == 1 and pool_bytes_in_use() > before
    del fn
    assert pool_bytes_in_use() == before


def test_memory_is_flat_over_20000_replays():
    """Device memory, Python objects and the uploads kept in flight stay flat over 20,000 replays of a
    call that updates state in place, draws random numbers, uploads host data, allocates and returns a
    fresh tensor, with a float argument that changes every call."""
    w = cp.Tensor(np.zeros(64, np.float32))

    def f(x, lr):
        w.copy_(w * (1.0 - lr) + x * lr)
        return (w + cp.rand(64) - cp.Tensor([0.5])).sum()

    x = cp.Tensor(np.ones(64, np.float32))
    fn = cp.jit(f)
    held = []
    for i in range(20000):
        if i in (99, 19999):
            backend.device().queue.finish()  # every earlier upload done (kept until a synchronize if leaked)
        out = fn(x, 1.0 / (2 + i % 7))
        if i in (99, 19999):
            in_flight = len(backend.runtime._pending)
            backend.synchronize()
            held.append((pool_bytes_in_use(), len(gc.get_objects()), in_flight))
    assert fn.captured == 1
    assert held[1][0] == held[0][0] and held[1][2] <= 17  # 16 completed ones kept, and this call's
    assert abs(held[1][1] - held[0][1]) < 50  # a few objects of pytest's and the collector's own
    assert 32.0 < out.item() < 96.0  # w -> 1 and 64 uniform draws less 0.5 each: a sum near 64


def test_nested_jit_records_inline_and_methods_work():
    class Net:
        def __init__(self):
            self.w = cp.Tensor(np.ones(3, np.float32))

        @cp.jit
        def inner(self, x):
            return x * self.w

    net = Net()
    outer = cp.jit(lambda x: net.inner(x) + 1.0)
    for i in range(5):
        x = cp.Tensor(np.full(3, float(i), np.float32))
        np.testing.assert_array_equal(outer(x).numpy(), np.full(3, i + 1.0))
        np.testing.assert_array_equal(net.inner(x).numpy(), np.full(3, float(i)))


def test_pending_work_outside_is_settled_before_a_replay_overwrites_it():
    w = cp.Tensor(np.ones(4, np.float32))

    def f(x):
        w.copy_(w + x)
        return w.sum()

    fn = cp.jit(f)
    x = cp.Tensor(np.ones(4, np.float32))
    for _ in range(3):
        fn(x)
    snapshot = w * 1.0  # deferred: reads w when it runs
    fn(x)
    np.testing.assert_array_equal(snapshot.numpy(), np.full(4, 4.0))
    np.testing.assert_array_equal(w.numpy(), np.full(4, 5.0))


def test_work_that_differs_between_calls_raises():
    calls = [0]

    def f(x):
        calls[0] += 1
        for _ in range(calls[0]):
            x = x.exp()
        return x

    fn = cp.jit(f)
    x = cp.Tensor(np.zeros(2, np.float32))
    with pytest.raises(cp.JitError, match="does not do the same work from call to call"):
        for _ in range(5):
            fn(x)


def test_guard_thrash_falls_back_to_eager_with_a_warning():
    def f(x, s):
        return x * 2.0 if s > 0.5 else x * 3.0

    fn = cp.jit(f)
    x = cp.Tensor(np.ones(2, np.float32))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i in range(60):
            s = 0.1 + 0.8 * (i % 2) + i * 1e-3
            assert fn(x, s).numpy()[0] == (2.0 if s > 0.5 else 3.0)
    assert any("runs without jit" in str(m.message) for m in w)
    gc.collect()


def test_pending_inputs_kwargs_none_results_errors_and_reset():
    acc = cp.Tensor(np.zeros(3, np.float32))

    def f(x, *, scale=1.0, fail=False):
        acc.copy_(acc + x * scale)
        if fail:
            raise ValueError("boom")

    fn = cp.jit(f)
    base = cp.Tensor(np.ones(3, np.float32))
    expected = np.zeros(3)
    for i in range(6):
        assert fn(base * float(i), scale=0.5) is None  # the input is a pending (deferred) result
        expected += 0.5 * i
    np.testing.assert_array_equal(acc.numpy(), expected.astype(np.float32))
    for _ in range(3):  # eager, then twice while recording: each adds, then raises
        with pytest.raises(ValueError, match="boom"):
            fn(base, scale=1.0, fail=True)
        assert not backend.runtime.recording()
    fn.reset()
    for _ in range(4):
        fn(base, scale=2.0)
    np.testing.assert_array_equal(acc.numpy(), (expected + 3 + 8).astype(np.float32))


def test_too_many_signatures_warn_once():
    fn = cp.jit(lambda x, k: x * float(k), max_signatures=2)
    x = cp.Tensor(np.ones(2, np.float32))
    with pytest.warns(UserWarning, match="more than 2 signatures"):
        for k in range(5):
            assert fn(x, k).tolist() == [float(k)] * 2


def test_replayable_host_calls_run_again_with_the_new_float_arguments():
    calls = []

    def host_scale(lr):
        calls.append(lr)
        return (lr * 2.0,)

    def f(x, lr):
        (scale,) = backend.replayable(host_scale, lr)
        return x * scale

    fn = cp.jit(f)
    x = cp.Tensor(np.ones(2, np.float32))
    for lr in (0.5, 0.25, 0.125, 2.0, 4.0):
        assert fn(x, lr).tolist() == [lr * 2.0] * 2
    assert calls == [0.5, 0.25, 0.125, 2.0, 4.0] and all(type(c) is float for c in calls[3:])


def test_attention_dropout_draws_fresh_masks_and_its_backward_reuses_them():
    F = nn.functional
    rng = np.random.default_rng(5)
    q, k, v = (cp.Tensor(rng.standard_normal((2, 5, 4)).astype(np.float32), requires_grad=True) for _ in range(3))

    def f(q, k, v):
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
        out.sum().backward()
        g = q.grad
        q.grad = k.grad = v.grad = None
        return out, g

    cp.manual_seed(11)
    eager = [tuple(t.numpy() for t in f(q, k, v)) for _ in range(5)]
    cp.manual_seed(11)
    fn = cp.jit(f)
    jitted = [tuple(t.numpy() for t in fn(q, k, v)) for _ in range(5)]
    for a, b in zip(eager, jitted):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert fn.captured == 1 and not np.array_equal(jitted[3][0], jitted[4][0])


def test_a_step_schedule_records_once_when_the_rate_first_changes():
    recordings = []
    w = cp.Tensor(np.ones(3, np.float32))

    def f(x, lr):
        w.copy_(w - x * lr)
        return w.sum()

    fn = cp.jit(f)
    orig = cp._jit.Jitted._record
    cp._jit.Jitted._record = lambda self, *a: recordings.append(1) or orig(self, *a)
    try:
        x = cp.Tensor(np.full(3, 0.5, np.float32))
        ref = np.ones(3, np.float32)
        for epoch in range(6):
            lr = 0.1 * 0.5 ** epoch  # constant within an epoch (StepLR)
            for _ in range(4):
                got = fn(x, lr).item()
                ref = ref - np.float32(0.5) * np.float32(lr)
                assert got == float(ref.sum(dtype=np.float32))
    finally:
        cp._jit.Jitted._record = orig
    assert len(recordings) == 3  # calls 2 and 3, then once when the rate first changed


def test_independent_launches_of_kernels_with_helper_functions_replay():
    """Merging moves a kernel's body into generated source that has common.h only: kernels that call a helper
    of their own file (index.cl's row_id in a gather) or of another header (philox.h) stay separate launches."""
    a, b = cp.Tensor(np.arange(12.0).reshape(4, 3)), cp.Tensor(np.arange(8.0).reshape(4, 2))
    ids = cp.Tensor([2.0, 0.0, 3.0])

    def two_lookups(a, b, ids):
        return a[ids] * 1.0, b[ids] * 2.0

    fn = cp.jit(two_lookups)
    for _ in range(5):
        x, y = fn(a, b, ids)
    assert fn.captured == 1
    np.testing.assert_array_equal(x.numpy(), np.arange(12.0).reshape(4, 3)[[2, 0, 3]])
    np.testing.assert_array_equal(y.numpy(), 2 * np.arange(8.0).reshape(4, 2)[[2, 0, 3]])
