"""In-place ops (add_ sub_ mul_ div_ pow_ neg_ clamp_ exp_ log_ sqrt_ abs_ relu_ masked_fill_ fill_ zero_
copy_ index_put_) against numpy float64: through contiguous, transposed and sliced views (the elements
around a view stay untouched), 0-d and empty tensors, broadcast right operands, operands that alias the
target, mixed dtypes, fusion's pending results, and the errors PyTorch raises."""
import numpy as np
import pytest
from conftest import assert_close, to_np

import clownpiece as cp
from clownpiece import backend
from clownpiece.backend import fusion

rng = np.random.default_rng(7)
PAD = -7.0  # what surrounds a sliced view in its base


def target(arr, dtype, layout):
    """(view, base, window): a tensor equal to `arr` laid out as asked, the tensor owning its storage, and
    where the view sits in the base's values (numpy index), so untouched elements can be checked."""
    arr = np.asarray(arr, np.float64)
    if layout == "contiguous" or arr.ndim == 0:
        base = cp.Tensor(arr.astype(dtype), dtype=dtype)
        return base, base, (lambda b: b)
    if layout == "transposed":
        base = cp.Tensor(np.ascontiguousarray(arr.T).astype(dtype), dtype=dtype)
        return base.T, base, (lambda b: b.T)
    big = np.full(tuple(s + 2 for s in arr.shape), PAD)
    window = tuple(slice(1, 1 + s) for s in arr.shape)
    big[window] = arr
    base = cp.Tensor(big.astype(dtype), dtype=dtype)
    view = base
    for d, s in enumerate(arr.shape):
        view = view.narrow(d, 1, s)
    return view, base, (lambda b: b[window])


def run_inplace(op, ref, arr, dtype, layout, **tol):
    """Apply `op` to a tensor laid out as asked and `ref` to a float64 copy; compare the view and its base."""
    view, base, window = target(arr, dtype, layout)
    before = to_np(base)
    out = op(view)
    assert out is view, "in-place ops return self"
    expect = before.copy()
    region = window(expect)
    if region.ndim == 0:
        expect = np.asarray(ref(np.array(region)), np.float64)
    else:
        region[...] = ref(region.copy())
    assert_close(base, expect, dtype, **tol)


def values(*shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, shape)


OTHER = values(3, 4)
ROW = values(4)
COLUMN = values(3, 1)
MASK = (rng.uniform(size=(3, 4)) > 0.5).astype(np.float64)

# name -> (op on the tensor, numpy reference, input values' range)
OPS = {
    "add_tensor": (lambda t: t.add_(cp.tensor(OTHER, dtype=t.dtype)), lambda a: a + OTHER, None),
    "add_alpha": (lambda t: t.add_(cp.tensor(OTHER, dtype=t.dtype), alpha=-2.5), lambda a: a - 2.5 * OTHER, None),
    "add_number": (lambda t: t.add_(1.25), lambda a: a + 1.25, None),
    "add_number_alpha": (lambda t: t.add_(1.25, alpha=2), lambda a: a + 2.5, None),
    "sub_tensor": (lambda t: t.sub_(cp.tensor(OTHER, dtype=t.dtype)), lambda a: a - OTHER, None),
    "sub_alpha": (lambda t: t.sub_(cp.tensor(OTHER, dtype=t.dtype), alpha=3), lambda a: a - 3 * OTHER, None),
    "sub_number_alpha": (lambda t: t.sub_(0.5, alpha=4), lambda a: a - 2.0, None),
    "mul_row": (lambda t: t.mul_(cp.tensor(ROW, dtype=t.dtype)), lambda a: a * ROW, None),
    "mul_number": (lambda t: t.mul_(-3.0), lambda a: a * -3.0, None),
    "div_column": (lambda t: t.div_(cp.tensor(COLUMN, dtype=t.dtype)), lambda a: a / COLUMN, None),
    "div_number": (lambda t: t.div_(4.0), lambda a: a / 4.0, None),
    "pow_number": (lambda t: t.pow_(3), lambda a: a ** 3, None),
    "pow_half": (lambda t: t.pow_(0.5), lambda a: a ** 0.5, (0.1, 3.0)),
    "pow_tensor": (lambda t: t.pow_(cp.tensor(ROW, dtype=t.dtype)), lambda a: a ** ROW, (0.1, 3.0)),
    "neg_": (lambda t: t.neg_(), lambda a: -a, None),
    "exp_": (lambda t: t.exp_(), np.exp, None),
    "log_": (lambda t: t.log_(), np.log, (0.1, 3.0)),
    "sqrt_": (lambda t: t.sqrt_(), np.sqrt, (0.1, 3.0)),
    "abs_": (lambda t: t.abs_(), np.abs, None),
    "relu_": (lambda t: t.relu_(), lambda a: np.maximum(a, 0), None),
    "clamp_": (lambda t: t.clamp_(-0.5, 0.75), lambda a: np.clip(a, -0.5, 0.75), None),
    "clamp_min": (lambda t: t.clamp_(min=0.25), lambda a: np.maximum(a, 0.25), None),
    "clip_max": (lambda t: t.clip_(max=-0.25), lambda a: np.minimum(a, -0.25), None),
    "masked_fill_": (lambda t: t.masked_fill_(cp.tensor(MASK, dtype=t.dtype), 9.5),
                     lambda a: np.where(MASK != 0, 9.5, a), None),
    "masked_fill_row_mask": (lambda t: t.masked_fill_(cp.tensor(MASK[0], dtype=t.dtype), -1.0),
                             lambda a: np.where(MASK[0] != 0, -1.0, a), None),
    "masked_fill_tensor_value": (lambda t: t.masked_fill_(cp.tensor(MASK, dtype=t.dtype),
                                                          cp.tensor(2.5, dtype=t.dtype)),
                                 lambda a: np.where(MASK != 0, 2.5, a), None),
    "fill_": (lambda t: t.fill_(1.5), lambda a: np.full_like(a, 1.5), None),
    "fill_tensor": (lambda t: t.fill_(cp.tensor(-0.25, dtype=t.dtype)), lambda a: np.full_like(a, -0.25), None),
    "zero_": (lambda t: t.zero_(), np.zeros_like, None),
    "copy_": (lambda t: t.copy_(cp.tensor(OTHER, dtype=t.dtype)), lambda a: OTHER + 0 * a, None),
    "copy_row": (lambda t: t.copy_(cp.tensor(ROW, dtype=t.dtype)), lambda a: ROW + 0 * a, None),
}


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_inplace_ops_through_views(name, layout, dtype):
    op, ref, domain = OPS[name]
    low, high = domain or (-2.0, 2.0)
    run_inplace(op, ref, values(3, 4, low=low, high=high), dtype, layout)


UNARY_0D = {"neg_": (lambda t: t.neg_(), lambda a: -a), "exp_": (lambda t: t.exp_(), np.exp),
            "log_": (lambda t: t.log_(), np.log), "sqrt_": (lambda t: t.sqrt_(), np.sqrt),
            "abs_": (lambda t: t.abs_(), np.abs), "relu_": (lambda t: t.relu_(), lambda a: np.maximum(a, 0)),
            "clamp_": (lambda t: t.clamp_(0.0, 0.5), lambda a: np.clip(a, 0.0, 0.5)),
            "pow_": (lambda t: t.pow_(2), lambda a: a * a), "add_": (lambda t: t.add_(2.0, alpha=0.5), lambda a: a + 1),
            "mul_0d_tensor": (lambda t: t.mul_(cp.tensor(3.0, dtype=t.dtype)), lambda a: a * 3),
            "fill_": (lambda t: t.fill_(4.0), lambda a: a * 0 + 4), "zero_": (lambda t: t.zero_(), lambda a: a * 0)}


@pytest.mark.parametrize("name", sorted(UNARY_0D))
def test_inplace_ops_on_0d_tensors(name, dtype):
    op, ref = UNARY_0D[name]
    run_inplace(op, ref, np.array(0.7), dtype, "contiguous")


# the ops whose operands (if any) broadcast to an empty [0, 4] target
EMPTY_OK = [n for n in sorted(OPS) if n.endswith("_number") or n.endswith("_alpha") and "number" in n
            or n in ("pow_number", "pow_half", "neg_", "exp_", "log_", "sqrt_", "abs_", "relu_", "clamp_",
                     "clamp_min", "clip_max", "masked_fill_row_mask", "fill_", "fill_tensor", "zero_",
                     "copy_row")]


@pytest.mark.parametrize("name", EMPTY_OK)
def test_inplace_ops_on_empty_tensors_launch_nothing(name):
    t = cp.Tensor(np.zeros((0, 4), np.float32))
    before = backend.stats()["launches"]
    assert OPS[name][0](t) is t and t.shape == [0, 4]
    assert backend.stats()["launches"] == before


def test_inplace_ops_with_empty_operands():
    t = cp.Tensor(np.zeros((0, 4), np.float32))
    t.add_(cp.Tensor(np.ones(4, np.float32))).mul_(cp.Tensor(np.ones((0, 1), np.float32)))
    t.masked_fill_(cp.Tensor(np.ones(4, np.float32)), 1.0).copy_(cp.Tensor(np.ones(4, np.float32)))
    assert t.shape == [0, 4]


def test_nan_and_inf_are_values():
    t = cp.Tensor([-1.0, 0.0, np.inf, np.nan])
    t.log_()
    got = t.numpy()
    assert np.isnan(got[0]) and got[1] == -np.inf and got[2] == np.inf and np.isnan(got[3])
    u = cp.Tensor([np.nan, -np.inf, 3.0])
    u.clamp_(-1.0, 1.0).sqrt_()
    got = u.numpy()
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == 1.0  # sqrt(-1) is NaN


# ---- broadcasting -------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_expanded_and_transposed_right_operands(layout, dtype):
    row = cp.tensor(ROW, dtype=dtype)
    run_inplace(lambda t: t.add_(row.expand(3, 4)), lambda a: a + ROW, values(3, 4), dtype, layout)
    other = cp.tensor(np.ascontiguousarray(OTHER.T), dtype=dtype).T
    run_inplace(lambda t: t.mul_(other), lambda a: a * OTHER, values(3, 4), dtype, layout)
    run_inplace(lambda t: t.sub_(cp.tensor(5.0, dtype=dtype), alpha=0.5), lambda a: a - 2.5, values(3, 4), dtype,
                layout)


def test_a_result_bigger_than_self_raises_before_writing():
    t = cp.Tensor(np.arange(4, dtype=np.float32))
    for write in (lambda: t.add_(cp.Tensor(np.ones((3, 4), np.float32))),
                  lambda: t.mul_(cp.Tensor(np.ones((2, 1), np.float32))),
                  lambda: t.pow_(cp.Tensor(np.ones((1, 4), np.float32))),
                  lambda: t.masked_fill_(cp.Tensor(np.ones((2, 4), np.float32)), 1.0),
                  lambda: t.copy_(cp.Tensor(np.ones((2, 4), np.float32)))):
        with pytest.raises(RuntimeError, match="broadcast|does not match|cannot be broadcast"):
            write()
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape \\[3, 4\\]"):
        t.add_(cp.Tensor(np.ones((3, 4), np.float32)))
    with pytest.raises(RuntimeError, match="not broadcastable"):
        t.add_(cp.Tensor(np.ones(3, np.float32)))
    np.testing.assert_array_equal(t.numpy(), np.arange(4))
    assert t._version == 0


def test_an_expanded_target_raises():
    base = cp.Tensor(np.arange(4, dtype=np.float32))
    wide = base.expand(3, 4)
    for write in (lambda: wide.add_(1.0), lambda: wide.exp_(), lambda: wide.mul_(wide),
                  lambda: wide.copy_(cp.Tensor(np.ones((3, 4), np.float32))),
                  lambda: wide.masked_fill_(cp.Tensor(np.ones((3, 4), np.float32)), 0.0)):
        with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
            write()
    np.testing.assert_array_equal(base.numpy(), np.arange(4))


def test_bad_operands_raise_type_errors():
    t = cp.Tensor([1.0, 2.0])
    for write in (lambda: t.add_("x"), lambda: t.add_(1.0, alpha="2"), lambda: t.mul_(None),
                  lambda: t.pow_([1, 2]), lambda: t.clamp_("0"), lambda: t.masked_fill_(t > 0, "v")):
        with pytest.raises(TypeError):
            write()
    with pytest.raises(ValueError, match="rounding_mode"):
        t.div_(2.0, rounding_mode="floor")
    with pytest.raises(RuntimeError, match="0-dim"):
        t.fill_(cp.Tensor([1.0, 2.0]))
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


# ---- aliasing: the operand reads the target's storage -------------------------------------------------
def test_operands_that_alias_the_target(dtype):
    x = values(4, 4)
    a = cp.tensor(x, dtype=dtype)
    a.add_(a.T)  # every element reads one another work-item writes
    assert_close(a, x + x.T)
    a = cp.tensor(x, dtype=dtype)
    a[1:].mul_(a[:-1])
    want = x.copy()
    want[1:] = x[1:] * x[:-1]
    assert_close(a, want)
    a = cp.tensor(x, dtype=dtype)
    a.sub_(a[0])  # a row broadcast over the target, row 0 included
    assert_close(a, x - x[0])
    a = cp.tensor(x, dtype=dtype)
    a.mul_(a)  # the same view: each element reads itself
    assert_close(a, x * x)
    a = cp.tensor(x, dtype=dtype)
    a.masked_fill_(a[0] > 0, 0.0)
    assert_close(a, np.where(x[0] > 0, 0.0, x))
    a = cp.tensor(x, dtype=dtype)
    a.fill_(a[1, 2])
    assert_close(a, np.full((4, 4), x[1, 2]))


def test_mixed_dtypes_compute_in_the_wider_one_and_keep_self_dtype():
    x, y = values(3, 4), values(4)
    a = cp.tensor(x, dtype="float32")
    a.add_(cp.tensor(y, dtype="float64"), alpha=0.5)
    assert a.dtype == np.float32
    assert_close(a, (x.astype(np.float32) + 0.5 * y).astype(np.float32))
    b = cp.tensor(x, dtype="float64")
    b.mul_(cp.tensor(y, dtype="float32"))
    assert b.dtype == np.float64
    assert_close(b, x * y.astype(np.float32).astype(np.float64))


# ---- launches and fusion ------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_one_launch_per_inplace_op(layout):
    view, _, _ = target(values(30, 40), np.float32, layout)
    row = cp.Tensor(values(40).astype(np.float32))
    view.exp_()  # builds the programs
    view.add_(row)
    for write in (lambda: view.exp_(), lambda: view.add_(row), lambda: view.mul_(2.0),
                  lambda: view.add_(row, alpha=2.0), lambda: view.clamp_(-1, 1), lambda: view.masked_fill_(row, 0.0)):
        write()
        before = backend.stats()["launches"]
        write()
        assert backend.stats()["launches"] - before == 1


@pytest.fixture(params=[True, False], ids=["fused", "eager"])
def fusion_mode(request):
    was = fusion.enabled
    fusion.set_enabled(request.param)
    yield request.param
    fusion.set_enabled(was)


def test_pending_readers_see_the_old_values(fusion_mode):
    x = values(64)
    a = cp.Tensor(x)
    doubled, shifted = a * 2.0, (a + 1.0).exp()
    a.add_(3.0).mul_(a)
    np.testing.assert_allclose(doubled.numpy(), x * 2, rtol=1e-6)
    np.testing.assert_allclose(shifted.numpy(), np.exp(x + 1), rtol=1e-6)
    np.testing.assert_allclose(a.numpy(), (x + 3) ** 2, rtol=1e-5)


def test_a_pending_target_is_computed_before_the_write(fusion_mode):
    x, y = values(8, 8), values(8)
    a = cp.Tensor(x) * 2.0 + 1.0  # pending under fusion
    a.T.sub_(cp.Tensor(y))
    b = cp.Tensor(x).exp()
    b.relu_().clamp_(max=3.0)
    np.testing.assert_allclose(a.numpy(), (x * 2 + 1) - y[:, None], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), np.minimum(np.exp(x), 3.0), rtol=1e-6)


def test_a_pending_operand_is_computed_first(fusion_mode):
    x, y = values(16), values(16)
    a = cp.Tensor(x)
    other = cp.Tensor(y) * 3.0
    a.add_(other, alpha=-1.0)
    np.testing.assert_allclose(a.numpy(), x - 3 * y, rtol=1e-5, atol=1e-6)


# ---- out-of-place alpha forms and index_put_ ---------------------------------------------------------
def test_add_and_sub_take_alpha(dtype):
    x, y = values(3, 4), values(4)
    a, b = cp.tensor(x, dtype=dtype), cp.tensor(y, dtype=dtype)
    assert_close(a.add(b, alpha=2.5), x + 2.5 * y)
    assert_close(a.sub(b, alpha=-0.5), x + 0.5 * y)
    assert_close(a.add(2.0, alpha=3), x + 6)
    assert_close(a.sub(b), x - y)
    with pytest.raises(TypeError, match="alpha"):
        a.add(b, alpha=None)


def test_index_put_writes_or_accumulates_rows(dtype):
    x = values(5, 3)
    ids = [3.0, 0.0, 3.0]
    v = values(3, 3)
    t = cp.tensor(x, dtype=dtype)
    assert t.index_put_((cp.Tensor(ids),), cp.tensor(v, dtype=dtype)) is t
    want = x.copy()
    want[0] = v[1]
    want[3] = v[2]  # a repeated id keeps the last value
    assert_close(t, want)
    t = cp.tensor(x, dtype=dtype)
    t.index_put_((cp.Tensor(ids),), cp.tensor(v, dtype=dtype), accumulate=True)
    want = x.copy()
    np.add.at(want, [3, 0, 3], v)
    assert_close(t, want)
    t = cp.tensor(x, dtype=dtype)
    t.index_put_([cp.Tensor([-1.0])], 2.0)  # a list of index tensors, a negative id, a number
    want = x.copy()
    want[-1] = 2.0
    assert_close(t, want)
    t = cp.tensor(x, dtype=dtype)
    t.T.index_put_((cp.Tensor([1.0]),), cp.tensor(v[0, :1], dtype=dtype).expand(5))  # through a view
    want = x.copy()
    want[:, 1] = v[0, 0]
    assert_close(t, want)


def test_index_put_errors():
    t = cp.Tensor(np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="tuple of index tensors"):
        t.index_put_(cp.Tensor([0.0]), 1.0)
    with pytest.raises(IndexError, match="too many indices"):
        t.index_put_((cp.Tensor([0.0]), cp.Tensor([1.0]), cp.Tensor([1.0])), 1.0)
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        t.index_put_((cp.Tensor([0.0]),), cp.Tensor(np.ones((2, 3), np.float32)))
    np.testing.assert_array_equal(t.numpy(), np.zeros((3, 2)))
    t.index_put_((cp.Tensor([0.0]), cp.Tensor([1.0])), 1.0)  # one index tensor per leading dim (PyTorch)
    np.testing.assert_array_equal(t.numpy(), [[0, 1], [0, 0], [0, 0]])


# ---- version counters -----------------------------------------------------------------------------------
def test_every_inplace_write_bumps_the_shared_version_counter():
    base = cp.Tensor(np.zeros((3, 4), np.float32))
    view = base[1:]
    assert base._version == view._version == 0
    writes = [lambda: view.add_(1.0), lambda: base.T.mul_(2.0), lambda: view.copy_(view * 2),
              lambda: base.fill_(1.0), lambda: view.zero_(), lambda: base.__setitem__(0, 3.0),
              lambda: base.masked_fill_(base > 2, 0.0), lambda: base.index_put_((cp.Tensor([0.0]),), 1.0),
              lambda: base.scatter_(1, cp.Tensor([0.0, 1.0, 2.0]), 5.0),
              lambda: base.index_add_(0, cp.Tensor([1.0]), cp.Tensor(np.ones((1, 4), np.float32))),
              lambda: base.normal_(), lambda: view.exp_(), lambda: view.clamp_(0, 1)]
    for k, write in enumerate(writes, 1):
        write()
        assert base._version == view._version == k
    fresh = base * 2  # out-of-place results start their own counter
    assert fresh._version == 0 and base._version == len(writes)



@pytest.mark.parametrize("use_foreach", [True, False], ids=["foreach", "per-tensor"])
def test_gradient_clipping_counts_as_an_inplace_write(use_foreach):
    p = cp.nn.Parameter(cp.Tensor(np.arange(4, dtype=np.float32)))
    p.grad = cp.Tensor(np.array([3.0, -4.0, 0.5, 0.0], np.float32))
    g = p.grad
    before = g._version
    cp.nn.utils.clip_grad_value_([p], 1.0, foreach=use_foreach)
    cp.nn.utils.clip_grad_norm_([p], 1.0, foreach=use_foreach)
    assert g._version == before + 2
