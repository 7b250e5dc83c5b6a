"""Lazy elementwise fusion (clownpiece/backend/fusion.py): deferred chains compute exactly what the eager
kernels compute, run before anything reads or overwrites what they depend on, and cost nothing if dropped."""
import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import pool_bytes_in_use

import clownpiece as cp
from clownpiece import backend
from clownpiece.backend import fusion

DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def fusion_on():
    was = fusion.enabled
    fusion.set_enabled(True)
    yield
    fusion.set_enabled(was)


@contextlib.contextmanager
def eager():
    fusion.set_enabled(False)
    try:
        yield
    finally:
        fusion.set_enabled(True)


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tensor(x):
    return cp.Tensor(x, dtype=x.dtype)


def launches(fn):
    before = backend.stats()["launches"]
    out = fn()
    return backend.stats()["launches"] - before, out


def is_pending(t):
    return t._storage._expr is not None


# ---- results ----------------------------------------------------------------------------------------
CHAINS = {
    # name: (clownpiece chain, numpy float64 reference)
    "update": (lambda a, b, c: a - b.clamp(-1.0, 1.0) * 0.05,
               lambda a, b, c: a - np.clip(b, -1, 1) * 0.05),
    "mul_add": (lambda a, b, c: a * b + c, lambda a, b, c: a * b + c),  # must not become an fma
    "affine_sub": (lambda a, b, c: a.affine(1.5, -0.25) - b * c, lambda a, b, c: a * 1.5 - 0.25 - b * c),
    "unary_math": (lambda a, b, c: (a.abs() + 1).log().sqrt().exp().tanh() + b.sin() * c.cos(),
                   lambda a, b, c: np.tanh(np.exp(np.sqrt(np.log(np.abs(a) + 1)))) + np.sin(b) * np.cos(c)),
    "activations": (lambda a, b, c: a.relu() + b.sigmoid() - c.gelu() + a.leaky_relu(0.2),
                    lambda a, b, c: np.maximum(a, 0) + 1 / (1 + np.exp(-b))
                    - c * 0.5 * (1 + np.vectorize(__import__("math").erf)(c / np.sqrt(2)))
                    + np.where(a > 0, a, 0.2 * a)),
    "scalars_left": (lambda a, b, c: 2.0 - a / 3.0 + 1.0 / (b * b + 1) + (a ** 2) * (2 ** c),
                     lambda a, b, c: 2.0 - a / 3.0 + 1.0 / (b * b + 1) + a ** 2 * 2 ** c),
    "compare": (lambda a, b, c: (a > b) * c + (a <= 0.5) - (b == b) + a.maximum(c) - b.minimum(c),
                lambda a, b, c: (a > b) * c + (a <= 0.5) - (b == b) + np.maximum(a, c) - np.minimum(b, c)),
    "grad_helpers": (lambda a, b, c: a.relu_grad(b) + a.tanh_grad(c) * a.sigmoid_grad(b)
                     + a.clamp_grad(c, -0.5, 0.5) + a.sign_mul(b) + a.leaky_relu_grad(c, 0.1),
                     lambda a, b, c: np.where(b > 0, a, 0) + a * (1 - c * c) * (a * b * (1 - b))
                     + np.where((c > -0.5) & (c < 0.5), a, 0) + a * np.sign(b) + np.where(c > 0, a, 0.1 * a)),
    "log1p_expm1": (lambda a, b, c: (a.abs().log1p() - b.expm1()) * c,
                    lambda a, b, c: (np.log1p(np.abs(a)) - np.expm1(b)) * c),
    "pow_sign_round": (lambda a, b, c: a.pow(3) + b.sign() * c.floor() - a.round() + (-b),
                       lambda a, b, c: a ** 3 + np.sign(b) * np.floor(c) - np.round(a) - b),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_fused_chains_are_bit_identical_to_eager(name, dtype):
    chain, reference = CHAINS[name]
    arrays = [rand(37, 29, dtype=dtype, seed=s) for s in range(3)]
    with eager():
        want = chain(*(tensor(x) for x in arrays)).numpy()
    backend.synchronize()
    before = backend.stats()
    got_t = chain(*(tensor(x) for x in arrays))
    assert backend.stats()["fused_ops"] > before["fused_ops"]
    got = got_t.numpy()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)  # same bits (NaN where eager has NaN)
    ref = reference(*(x.astype(np.float64) for x in arrays))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_pass_through_like_eager(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e-30], dtype)
    f = lambda t: ((t * 2).exp() - t).clamp(-3, 3).maximum(t) / t  # noqa: E731
    with eager():
        want = f(tensor(x)).numpy()
    np.testing.assert_array_equal(f(tensor(x)).numpy(), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_dim_and_empty(dtype):
    s = tensor(np.array(1.5, dtype))
    out = (s * 2 + 1).exp()
    assert out.shape == [] and is_pending(out)
    np.testing.assert_allclose(out.numpy(), np.exp(4.0), rtol=1e-6)
    e = tensor(np.zeros((3, 0), dtype))
    n, out = launches(lambda: ((e * 2) + e).relu())
    assert n == 0 and out.shape == [3, 0] and out.numpy().shape == (3, 0)


# ---- laziness and launch counts ---------------------------------------------------------------------
def test_chain_runs_as_one_launch_when_read():
    a, b = cp.Tensor(rand(100)), cp.Tensor(rand(100, seed=1))
    backend.synchronize()
    n, out = launches(lambda: ((a * 2 + b).exp() - a).clamp(-1, 1))
    assert n == 0 and is_pending(out)
    n, host = launches(out.numpy)
    assert n == 1 and not is_pending(out)
    x, y = rand(100), rand(100, seed=1)
    np.testing.assert_allclose(host, np.clip(np.exp(x * 2 + y) - x, -1, 1), rtol=1e-6)


def test_dropped_pending_tensors_launch_nothing():
    a = cp.Tensor(rand(50))
    backend.synchronize()

    def work():
        for _ in range(10):
            t = (a * 3).sin() + a
            del t
    n, _ = launches(work)
    assert n == 0
    backend.synchronize()


def test_broadcasting_and_strided_operands_launch_eagerly():
    a, row = cp.Tensor(rand(4, 5)), cp.Tensor(rand(5))
    n, out = launches(lambda: a + row)
    assert n == 1 and not is_pending(out)
    n, out = launches(lambda: a.T * 2)
    assert n == 1 and not is_pending(out)
    np.testing.assert_allclose(out.numpy(), rand(4, 5).T * 2, rtol=1e-6)


def test_pending_input_of_an_eager_op_runs_first():
    a = cp.Tensor(rand(4, 5))
    t = a * 2 + 1
    n, out = launches(lambda: t.T.exp())  # strided read of a pending tensor
    assert n == 2
    np.testing.assert_allclose(out.numpy(), np.exp(rand(4, 5) * 2 + 1).T, rtol=1e-6)
    m = cp.Tensor(rand(5, 3, seed=2))
    np.testing.assert_allclose(((a * 2) @ m).numpy(), (rand(4, 5) * 2) @ rand(5, 3, seed=2), rtol=1e-5)


def test_views_of_pending_results():
    x = rand(6, 4)
    a = cp.Tensor(x)
    t = a * 2
    r = t.reshape(4, 6) + 1  # a full contiguous view: inlined
    assert is_pending(t) and is_pending(r)
    part = t[2:] - 1  # a partial view: read from t's buffer after t runs
    np.testing.assert_allclose(part.numpy(), x[2:] * 2 - 1, rtol=1e-6)
    np.testing.assert_allclose(r.numpy(), (x * 2).reshape(4, 6) + 1, rtol=1e-6)
    np.testing.assert_allclose(t.numpy(), x * 2, rtol=1e-6)


def test_update_loop_is_one_launch_per_parameter():
    rng = np.random.default_rng(0)
    shapes = [(4, 16), (4,), (8, 4), (8,), (10, 49), (10,)]
    host = [rng.standard_normal(s).astype(np.float32) * 3 for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) * 2 for s in shapes]
    params = [cp.Tensor(h, requires_grad=True) for h in host]
    for p, g in zip(params, grads):
        p.grad = cp.Tensor(g)
    backend.synchronize()

    def step(lr):
        with cp.autograd.no_grad():
            for p in params:
                p.copy_(p - p.grad.clamp(-1.0, 1.0) * lr)

    n, _ = launches(lambda: step(0.05))
    assert n == len(params)
    builds = backend.stats()["builds"]
    n, _ = launches(lambda: step(0.01))  # a new learning rate is a kernel argument, not a new kernel
    assert n == len(params) and backend.stats()["builds"] == builds
    for p, h, g in zip(params, host, grads):
        want = h - np.clip(g, -1, 1).astype(np.float32) * np.float32(0.05)
        want = want - np.clip(g, -1, 1).astype(np.float32) * np.float32(0.01)
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-6, atol=1e-6)


def test_copy_into_destination_the_source_reads():
    x = rand(300)
    a = cp.Tensor(x)
    u = a * 2 + 1
    n, _ = launches(lambda: a.copy_(u))
    assert n == 1
    np.testing.assert_allclose(a.numpy(), x * 2 + 1, rtol=1e-6)
    # u stays usable: it equals what was written, even after a is overwritten again
    a.copy_(cp.Tensor(np.zeros(300, np.float32)))
    np.testing.assert_allclose(u.numpy(), x * 2 + 1, rtol=1e-6)


def test_copy_into_a_view_leaves_the_source_a_copy_of_it():
    x = rand(3)
    big = cp.Tensor(np.zeros(10, np.float32))
    u = cp.Tensor(x) * 2
    n, _ = launches(lambda: big[3:6].copy_(u))
    assert n == 1
    big[3:6].fill_(0.0)  # u, now pending as a copy of big[3:6], runs before this write
    np.testing.assert_allclose(u.numpy(), x * 2, rtol=1e-6)
    np.testing.assert_array_equal(big.numpy(), np.zeros(10, np.float32))


def test_copy_into_a_shifted_view_of_an_input_does_not_race():
    x = np.arange(1000, dtype=np.float32)
    a = cp.Tensor(x)
    a[1:].copy_(a[:-1] * 2)
    want = x.copy()
    want[1:] = x[:-1] * 2
    np.testing.assert_array_equal(a.numpy(), want)


def test_copy_into_part_of_a_pending_tensor():
    x = rand(10)
    t = cp.Tensor(x) * 3
    t[2:5].copy_(cp.Tensor(x[:3]) + 1)
    want = x * 3
    want[2:5] = x[:3] + 1
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-6)


# ---- in-place writes after a pending read -------------------------------------------------------------
def test_copy_after_pending_read_sees_old_values():
    x, y = rand(64), rand(64, seed=1)
    a, b = cp.Tensor(x), cp.Tensor(y)
    t = a * 2
    a.copy_(b)
    np.testing.assert_allclose(t.numpy(), x * 2, rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), y, rtol=1e-6)


def test_setitem_after_pending_read_sees_old_values():
    x = rand(8)
    a = cp.Tensor(x)
    t = a + 1
    a[0] = 5.0
    np.testing.assert_allclose(t.numpy(), x + 1, rtol=1e-6)
    assert a.numpy()[0] == 5.0


def test_fill_and_masked_fill_after_pending_read():
    x = rand(8)
    a = cp.Tensor(x)
    t, s = a - 1, a * a
    a.fill_(2.0)
    np.testing.assert_allclose(t.numpy(), x - 1, rtol=1e-6)
    a.masked_fill_(a > 0, 7.0)
    np.testing.assert_allclose(s.numpy(), x * x, rtol=1e-6)
    np.testing.assert_array_equal(a.numpy(), np.full(8, 7.0, np.float32))


def test_optimizer_step_after_pending_read():
    x, g = rand(5, 3), rand(5, 3, seed=1)
    p = cp.nn.Parameter(cp.Tensor(x)) if hasattr(cp.nn, "Parameter") else cp.Tensor(x, requires_grad=True)
    p.grad = cp.Tensor(g)
    with cp.autograd.no_grad():
        before = p * 1.0
    cp.utils.optim.SGD([p], lr=0.5).step()
    np.testing.assert_allclose(before.numpy(), x, rtol=1e-6)
    np.testing.assert_allclose(p.numpy(), x - 0.5 * g, rtol=1e-6)


def test_random_fill_after_pending_read():
    x = rand(1000)
    a = cp.Tensor(x)
    t = a + 0.0
    a.normal_()
    np.testing.assert_array_equal(t.numpy(), x)
    assert not np.allclose(a.numpy(), x)


def test_upload_after_pending_read():
    x = rand(16)
    a = cp.Tensor(x)
    t = a.exp()
    backend.upload(a._storage, np.zeros(16, np.float32))
    np.testing.assert_allclose(t.numpy(), np.exp(x), rtol=1e-6)
    np.testing.assert_array_equal(a.numpy(), np.zeros(16, np.float32))


def test_in_place_write_flushes_pending_readers_of_inlined_inputs():
    x = rand(32)
    a = cp.Tensor(x)
    t = a * 2        # reads a
    u = t + 1        # inlines t: reads a too
    v = u.sigmoid()  # and again
    a.copy_(cp.Tensor(np.zeros(32, np.float32)))
    np.testing.assert_allclose(v.numpy(), 1 / (1 + np.exp(-(x * 2 + 1))), rtol=1e-6)
    np.testing.assert_allclose(u.numpy(), x * 2 + 1, rtol=1e-6)


# ---- caps, memory -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_deep_chain_hits_the_cap_and_computes_right(dtype):
    x = rand(100, dtype=dtype)
    a = tensor(x)
    t = a
    want = x.astype(np.float64)
    for k in range(100):
        t = t * 0.99 + 0.01 * k
        want = want * 0.99 + 0.01 * k
    n, host = launches(t.numpy)  # 200 ops: pieces of up to MAX_NODES ops, each reading the one before
    assert 200 / fusion.MAX_NODES <= n <= 2 * 200 / fusion.MAX_NODES
    np.testing.assert_allclose(host, want, rtol=1e-4)
    with eager():
        e = a
        for k in range(100):
            e = e * 0.99 + 0.01 * k
    np.testing.assert_array_equal(host, e.numpy())


def test_many_inputs_and_shared_subexpressions_hit_the_caps():
    xs = [rand(10, seed=s) for s in range(40)]
    ts = [cp.Tensor(x) for x in xs]
    total = ts[0]
    for t in ts[1:]:
        total = total + t
        assert len(total._storage._expr.reads) <= fusion.MAX_INPUTS
    np.testing.assert_allclose(total.numpy(), np.sum(xs, axis=0), rtol=1e-5)
    d = ts[0]
    for _ in range(12):  # every step doubles the tree
        d = d + d * 0.5
    assert d._storage._expr.nodes <= fusion.MAX_NODES
    np.testing.assert_allclose(d.numpy(), xs[0] * 1.5 ** 12, rtol=1e-5)


def test_training_steps_hold_flat_memory_and_short_reader_lists():
    rng = np.random.default_rng(0)
    w = cp.Tensor(rng.standard_normal((8, 4)).astype(np.float32) * 0.1, requires_grad=True)
    b = cp.Tensor(np.zeros(4, np.float32), requires_grad=True)
    x = cp.Tensor(rng.standard_normal((16, 8)).astype(np.float32))
    const = cp.Tensor(np.ones((16, 4), np.float32))

    def step():
        loss = (((x @ w + b).tanh() - const) * 0.5).sum()
        loss.backward()
        with cp.autograd.no_grad():
            for p in (w, b):
                p.copy_(p - p.grad.clamp(-1.0, 1.0) * 0.01)
                p.grad = None
        return const * 2  # a pending reader of const, dropped unread

    for _ in range(20):
        step()
    in_use = pool_bytes_in_use()
    for _ in range(500):
        step()
    assert pool_bytes_in_use() == in_use
    assert len(const._storage._readers or ()) <= fusion._PRUNE_AT


def test_generated_source_comes_from_the_op_bodies():
    a, b = cp.Tensor(rand(5)), cp.Tensor(rand(5, seed=1))
    t = (a.clamp(-1, 1) * 0.5) - b
    e = t._storage._expr
    name, src, fp64 = fusion.source(e.sig, len(e.reads), len(e.numbers))
    assert name == "fused_sub_mul_clamp" and f"__kernel void {name}(" in src and not fp64
    # one function per (op, dtype), T spelled as the dtype's arithmetic type, the result rounded to the output's
    assert "inline float f_clamp_ff(float x, float p0, float p1) { return (float)(x < p0 ? p0 : (x > p1 ? p1 : x)); }" \
        in src
    assert "0.5" not in src  # numbers are kernel arguments
    assert len(e.reads) == 2 and len(e.numbers) == 3


def test_fusion_off_by_environment():
    code = ("import numpy as np, clownpiece as cp; from clownpiece import backend\n"
            "from clownpiece.backend import fusion\n"
            "a = cp.Tensor(np.arange(4, dtype=np.float32)); backend.synchronize(); backend.reset_stats()\n"
            "t = (a * 2 + 1).exp()\n"
            "s = backend.stats(); assert not fusion.enabled and s['launches'] == 3 and s['fused_ops'] == 0, s\n"
            "print(t.tolist())")
    env = dict(os.environ, CLOWNPIECE_FUSE="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    np.testing.assert_allclose(eval(out.stdout), np.exp(np.arange(4) * 2 + 1), rtol=1e-6)
