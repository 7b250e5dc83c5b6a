"""Devices as objects (t.device, to(device), Module.to(device), device= on the factories and tensor()), the
device strings PyTorch code passes ("opencl", "opencl:N"; "cpu"/"cuda" raise naming the devices), copies
between two devices (a second one is the same hardware with lowered limits: its own context and pool),
and iterating / unpacking over dim 0."""
import numpy as np
import pytest
from conftest import assert_close

import clownpiece as cp
from clownpiece import backend
from clownpiece.backend import discovery

rng = np.random.default_rng(11)


@pytest.fixture
def other():
    """A second device (the same hardware, another context and pool); the current device is restored."""
    home = backend.device()
    dev = backend.set_device(f"{home.platform_index}:{home.device_index}", "compute_units=1")
    backend.set_device(home)
    assert dev is not home and backend.device() is home
    yield dev
    backend.set_device(home)


def test_a_tensor_knows_its_device():
    t = cp.Tensor([1.0, 2.0])
    dev = t.device
    assert dev is backend.device() and dev.type == "opencl"
    assert dev.index == [f[:2] for f in discovery.list_devices()].index((dev.platform_index, dev.device_index))
    assert (t * 2).device is dev and t[0].device is dev


@pytest.mark.parametrize("spec", ["opencl", "OpenCL", "opencl:{index}", "device"])
def test_the_current_device_by_any_name_is_a_no_op(spec):
    t = cp.Tensor([1.0, 2.0])
    dev = t.device if spec == "device" else spec.format(index=t.device.index)
    assert t.to(dev) is t
    assert t.to(dev, "float32") is t
    assert t.to(device=dev, dtype="float64").dtype == np.float64
    assert cp.zeros(2, device=dev).device is t.device
    m = cp.nn.Linear(2, 2)
    w = m.weight
    assert m.to(dev) is m and m.weight is w


@pytest.mark.parametrize("spec", ["cpu", "cuda", "cuda:0", "mps", "opencl:99", "gpu", 0, 1.5, "opencl:x"])
def test_anything_else_raises_naming_the_devices(spec):
    t = cp.Tensor([1.0, 2.0])
    listing = [f"opencl:{i}" for i in range(len(discovery.list_devices()))]
    for call in (lambda: t.to(spec), lambda: cp.zeros(2, device=spec), lambda: cp.tensor([1.0], device=spec),
                 lambda: cp.nn.Linear(2, 2).to(spec), lambda: cp.ones_like(t, device=spec)):
        with pytest.raises(RuntimeError, match="is not a clownpiece device") as e:
            call()
        assert all(name in str(e.value) for name in listing) and t.device.name in str(e.value)
        if spec in ("cpu", "cuda", "cuda:0"):
            assert "no host ('cpu') tensors" in str(e.value)
    assert t.tolist() == [1.0, 2.0]


def test_to_parses_pytorch_s_forms():
    t = cp.Tensor([1.5, -2.0])
    d = cp.Tensor([0.0], dtype="float64")
    assert t.to(np.float64).dtype == np.float64 and t.to("float64").dtype == np.float64
    assert t.to(d).dtype == np.float64  # another tensor's device and dtype
    assert t.to(dtype=np.float32) is t and t.to() is t and t.to(None) is t
    copied = t.to(copy=True)
    assert copied is not t and copied._storage is not t._storage and copied.tolist() == [1.5, -2.0]
    assert t.to(np.float64, non_blocking=True).dtype == np.float64
    with pytest.raises(TypeError, match="unexpected"):
        t.to(np.float64, "x", "y")
    with pytest.raises(TypeError, match="unexpected keyword"):
        t.to(memory_format=1)


def test_copies_between_devices(other):
    home = backend.device()
    x = rng.standard_normal((3, 4))
    t = cp.Tensor(x.astype(np.float32))
    u = t.to(other)
    assert u.device is other and u is not t
    assert_close(u, x)
    v = t.T.to(other, np.float64)  # a strided source, converted on the way
    assert v.device is other and v.dtype == np.float64
    assert_close(v, x.T.astype(np.float32))
    back = u.to(home)
    assert back.device is home
    assert_close(back + 1.0, x + 1)  # usable on its device
    with pytest.raises(backend.DeviceMismatchError):
        (u + t).numpy()  # an op across devices raises before launching
    w = u.to("float64")  # a conversion of a tensor on another device runs there
    assert w.device is other and w.dtype == np.float64 and backend.device() is home
    assert_close(w, x.astype(np.float32))
    assert u.to(home, "float64").device is home


def test_factories_and_tensor_on_another_device(other):
    home = backend.device()
    cp.manual_seed(5)
    here = cp.randn(3, 2)
    cp.manual_seed(5)
    there = cp.randn(3, 2, device=other)
    assert there.device is other and backend.device() is home
    np.testing.assert_array_equal(there.numpy(), here.numpy())  # the same random stream
    for t in (cp.zeros(2, device=other), cp.ones(2, device=other), cp.full((2,), 3.0, device=other),
              cp.arange(3, device=other), cp.eye(2, device=other), cp.empty(2, device=other)):
        assert t.device is other
    assert cp.zeros_like(there).device is other  # *_like follow their model
    assert cp.zeros_like(there, device=home).device is home
    t = cp.tensor(here, device=other)  # a copy of a tensor of another device
    assert t.device is other and t.tolist() == here.tolist()
    assert cp.tensor(t).device is home and cp.tensor(t).tolist() == here.tolist()
    assert cp.tensor([1.0, 2.0], device=f"opencl:{other.index}").device is home  # the current device first


def test_module_to_another_device_keeps_objects_and_moves_grads(other):
    m = cp.nn.Sequential(cp.nn.Linear(3, 2), cp.nn.BatchNorm(2))
    w = m[0].weight
    values = w.numpy()
    m(cp.randn(4, 3)).sum().backward()
    grad = w.grad.numpy()
    assert m.to(other) is m and m[0].weight is w
    assert w.device is other and m[1].running_mean.device is other and w.requires_grad
    np.testing.assert_array_equal(w.numpy(), values)
    assert w.grad.device is other
    np.testing.assert_array_equal(w.grad.numpy(), grad)
    m.to(backend.device(), np.float64)  # back, and converted: gradients are dropped
    assert w.device is backend.device() and w.dtype == np.float64 and w.grad is None


def test_gradient_of_a_device_move_goes_back():
    a = cp.Tensor([1.0, 2.0], requires_grad=True)
    (a.to("opencl", "float64") * 3.0).sum().backward()
    assert a.grad.dtype == np.float32 and a.grad.device is a.device
    assert_close(a.grad, [3.0, 3.0])


# ---- iteration and unpacking over dim 0 ---------------------------------------------------------------
def test_iteration_and_unpacking():
    x = rng.standard_normal((3, 2))
    t = cp.Tensor(x)
    rows = list(t)
    assert len(rows) == 3 and all(r.shape == [2] for r in rows)
    for r, want in zip(t, x):
        assert_close(r, want)
    a, b, c = t
    assert_close(b, x[1])
    with pytest.raises(ValueError):
        a, b = t
    rows[1].fill_(5.0)  # rows are views: the write shows in t
    assert t.tolist()[1] == [5.0, 5.0]
    assert [list(r.shape) for r in cp.Tensor(x).T] == [[3], [3]]
    assert list(cp.Tensor(np.zeros((0, 2)))) == []
    with pytest.raises(TypeError, match="0-d"):
        iter(cp.Tensor(1.0))
    (p, q), = [cp.Tensor([1.0, 2.0])]
    assert p.item() == 1.0 and q.item() == 2.0


def test_iteration_is_differentiable():
    x = cp.Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    total = None
    for k, row in enumerate(x):
        term = (row * float(k + 1)).sum()
        total = term if total is None else total + term
    total.backward()
    assert_close(x.grad, np.repeat([[1.0], [2.0], [3.0]], 2, axis=1))


def test_no_builtin_is_shadowed_in_the_tensor_modules():
    """`tensor.py` once ended with `from .factories import *`, whose `range` replaced the builtin that
    iteration used; tests/test_imports.py now refuses star imports anywhere in the package."""
    import builtins
    import sys
    for name in ("clownpiece._tensor", "clownpiece.ops.shape", "clownpiece.autograd.autograd"):
        assert sys.modules[name].__dict__.get("range", builtins.range) is builtins.range
    assert sys.modules["clownpiece.tensor"].range is cp.range is not builtins.range  # the course's factory
