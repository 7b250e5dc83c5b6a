"""PyTorch's Module API beyond the course: apply, forward and forward-pre hooks with handles,
register_buffer(persistent=), get_submodule, and load_state_dict from numpy arrays (strict and non-strict,
the missing/unexpected report)."""
import numpy as np
import pytest
from conftest import assert_close, to_np

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.nn import Buffer, Linear, Module, ReLU, Sequential

rng = np.random.default_rng(3)


class Net(Module):
    def __init__(self):
        super().__init__()
        self.fc1 = Linear(3, 4)
        self.act = ReLU()
        self.fc2 = Linear(4, 2, bias=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


# ---- apply ----------------------------------------------------------------------------------------
def test_apply_visits_children_first_and_returns_self():
    m = Sequential(Linear(2, 2), Sequential(ReLU(), Linear(2, 3)))
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]

    def init_linear(mod):
        if isinstance(mod, Linear):
            nn.init.constant_(mod.weight, 0.5)
    m.apply(init_linear)
    assert (to_np(m[0].weight) == 0.5).all() and (to_np(m[1][1].weight) == 0.5).all()


def test_get_submodule():
    m = Sequential(Linear(2, 2), Sequential(ReLU(), Linear(2, 3)))
    assert m.get_submodule("1.1") is m[1][1] and m.get_submodule("") is m
    with pytest.raises(AttributeError, match="'7'"):
        m.get_submodule("1.7")


# ---- hooks ----------------------------------------------------------------------------------------
def test_forward_pre_hook_sees_and_replaces_the_input():
    m = Linear(2, 2)
    calls = []
    h = m.register_forward_pre_hook(lambda mod, args: calls.append((mod, len(args))))
    x = Tensor(rng.standard_normal((1, 2)))
    m(x)
    assert calls == [(m, 1)]
    h2 = m.register_forward_pre_hook(lambda mod, args: args[0] * 0.0)  # a single value is wrapped
    assert_close(m(x), np.broadcast_to(to_np(m.bias), (1, 2)))
    h.remove(), h2.remove()
    m(x)
    assert len(calls) == 2  # removed hooks no longer run


def test_forward_hook_sees_and_replaces_the_output():
    m = Net()
    outputs = {}

    def keep(name):
        return lambda mod, args, out: outputs.__setitem__(name, out)
    handles = [m.fc1.register_forward_hook(keep("fc1")), m.act.register_forward_hook(keep("act"))]
    x = Tensor(rng.standard_normal((2, 3)))
    y = m(x)
    assert outputs["fc1"].shape == [2, 4]
    assert_close(outputs["act"], np.maximum(to_np(outputs["fc1"]), 0))
    for h in handles:
        h.remove()
    with m.register_forward_hook(lambda mod, args, out: out * 2.0):  # a handle is a context manager
        assert_close(m(x), 2 * to_np(y))
    assert_close(m(x), to_np(y))


def test_hook_order_prepend_and_kwargs():
    m = Linear(2, 2)
    order = []
    m.register_forward_hook(lambda mod, a, out: order.append("second"))
    m.register_forward_hook(lambda mod, a, out: order.append("first"), prepend=True)

    def pre(mod, args, kwargs):
        order.append(("pre", sorted(kwargs)))
        return args, kwargs
    m.register_forward_pre_hook(pre, with_kwargs=True)
    m.register_forward_hook(lambda mod, a, kw, out: order.append(("kw", out.shape)), with_kwargs=True)
    m(Tensor(np.zeros((1, 2))))
    assert order == [("pre", []), "first", "second", ("kw", [1, 2])]


def test_hook_errors():
    m = Linear(2, 2)
    with pytest.raises(TypeError, match="callable"):
        m.register_forward_hook(3)
    m.register_forward_pre_hook(lambda mod, args, kwargs: 5, with_kwargs=True)
    with pytest.raises(RuntimeError, match="new_args, new_kwargs"):
        m(Tensor(np.zeros((1, 2))))


def test_always_call_hook_runs_when_forward_raises():
    m = Linear(2, 2)
    seen = []
    m.register_forward_hook(lambda mod, args, out: seen.append(out), always_call=True)
    m.register_forward_hook(lambda mod, args, out: seen.append("not always"))
    with pytest.raises(ValueError):
        m(Tensor(np.zeros((1, 5))))
    assert seen == [None]


# ---- buffers --------------------------------------------------------------------------------------
def test_non_persistent_buffers_stay_out_of_state_dict():
    m = Linear(2, 2)
    m.register_buffer("cache", Tensor([1.0, 2.0]), persistent=False)
    m.register_buffer("kept", Tensor([3.0]))
    m.extra = Buffer(Tensor([4.0]), persistent=False)  # PyTorch's nn.Buffer(..., persistent=False)
    assert [n for n, _ in m.named_buffers()] == ["cache", "kept", "extra"]
    assert list(m.state_dict()) == ["weight", "bias", "kept"]
    m.cache = Tensor([9.0, 9.0])  # re-assigning keeps it a non-persistent buffer
    assert "cache" not in m.state_dict() and m.cache.tolist() == [9.0, 9.0]
    other = Linear(2, 2)
    other.register_buffer("cache", Tensor([0.0, 0.0]), persistent=False)
    other.register_buffer("kept", Tensor([0.0]))
    other.extra = Buffer(Tensor([0.0]), persistent=False)
    assert other.load_state_dict(m.state_dict()) == ([], [])  # not missing: it is not part of the state
    assert other.cache.tolist() == [0.0, 0.0] and other.kept.tolist() == [3.0]
    missing, unexpected = m.load_state_dict({**m.state_dict(), "cache": Tensor([1.0, 1.0])}, strict=False)
    assert unexpected == ["cache"]  # PyTorch: a non-persistent buffer in a checkpoint is unexpected
    m.register_buffer("cache", Tensor([1.0, 1.0]))  # re-registering as persistent
    assert "cache" in m.state_dict()
    with pytest.raises(KeyError, match="'.'"):
        m.register_buffer("a.b", Tensor([1.0]))


# ---- load_state_dict from arrays ----------------------------------------------------------------------
def test_load_state_dict_from_numpy_arrays():
    src = Net()
    arrays = {k: v.numpy().astype(np.float64) for k, v in src.state_dict().items() if v is not None}
    dst = Net()
    result = dst.load_state_dict(arrays)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (_, a), (_, b) in zip(src.named_parameters(), dst.named_parameters()):
        np.testing.assert_allclose(to_np(a), to_np(b), rtol=1e-7)  # float64 arrays into float32 parameters
    assert dst.fc1.weight.dtype == np.float32


def test_load_state_dict_accepts_objects_with_array_interface():
    class FakeTorchTensor:  # what a torch tensor offers: __array__
        def __init__(self, arr):
            self.arr = arr

        def __array__(self, dtype=None, copy=None):
            return self.arr if dtype is None else self.arr.astype(dtype)

    m = Linear(2, 3)
    m.load_state_dict({"weight": FakeTorchTensor(np.ones((3, 2))), "bias": FakeTorchTensor(np.arange(3.0))})
    assert to_np(m.bias).tolist() == [0, 1, 2] and (to_np(m.weight) == 1).all()


def test_load_state_dict_array_errors_and_non_strict_report():
    m = Net()
    before = to_np(m.fc1.weight)
    good = {k: v.numpy() for k, v in m.state_dict().items() if v is not None}
    with pytest.raises(RuntimeError, match=r"size mismatch for 'fc1.weight'.*\[3, 4\].*\[4, 3\]"):
        m.load_state_dict({**good, "fc1.weight": np.zeros((3, 4))})
    with pytest.raises(RuntimeError, match="expected numbers"):
        m.load_state_dict({**good, "fc1.bias": np.array(["a"] * 4)})
    with pytest.raises(RuntimeError, match="expected a tensor or an array"):
        m.load_state_dict({**good, "fc1.bias": "text"})
    with pytest.raises(TypeError, match="dict"):
        m.load_state_dict([1, 2])
    np.testing.assert_array_equal(to_np(m.fc1.weight), before)  # nothing copied on failure
    result = m.load_state_dict({"fc1.weight": np.ones((4, 3)), "extra.weight": np.ones(2)}, strict=False)
    assert result.missing_keys == ["fc1.bias", "fc2.weight"] and result.unexpected_keys == ["extra.weight"]
    assert (to_np(m.fc1.weight) == 1).all()
