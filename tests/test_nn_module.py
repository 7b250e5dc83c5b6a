"""Module machinery (registration, traversal, state_dict, train/eval, zero_grad, repr), containers and
nn.init."""
import math

import numpy as np
import pytest
from conftest import to_np

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import no_grad
from clownpiece.nn import (
    BatchNorm,
    Buffer,
    LayerNorm,
    Linear,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    ReLU,
    Sequential,
    init,
)
from clownpiece.ops.random import manual_seed


class Net(Module):
    def __init__(self):
        super().__init__()
        self.fc1 = Linear(3, 4)
        self.act = ReLU()
        self.fc2 = Linear(4, 2, bias=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


# ---- Parameter / Buffer ---------------------------------------------------------------------------
def test_parameter_and_buffer():
    t = Tensor([1.0, 2.0])
    p = Parameter(t)
    assert p.requires_grad and p.is_leaf and p.data_ptr() == t.data_ptr()
    with no_grad():
        assert Parameter(t).requires_grad
    b = Buffer(t)
    assert not b.requires_grad and isinstance(b, Tensor)
    assert type(p * 2) is Tensor  # op results are plain tensors


# ---- registration ---------------------------------------------------------------------------------
def test_attribute_assignment_registers():
    m = Module()
    m.w = Parameter(Tensor([1.0]))
    m.stats = Buffer(Tensor([0.0]))
    m.child = Linear(2, 2)
    m.plain = Tensor([3.0])
    m.number = 5
    assert list(m._parameters) == ["w"] and list(m._buffers) == ["stats"] and list(m._modules) == ["child"]
    assert m.plain.tolist() == [3.0] and m.number == 5
    assert m.w is m._parameters["w"] and m.child is m._modules["child"]
    with pytest.raises(AttributeError, match="nope"):
        m.nope


def test_reassignment_replaces_registration():
    m = Linear(2, 3)
    new_w = Parameter(Tensor(np.zeros((3, 2))))
    m.weight = new_w
    assert m.state_dict()["weight"] is new_w
    m.weight = Buffer(Tensor(np.zeros((3, 2))))  # moves from parameters to buffers
    assert "weight" not in m._parameters and "weight" in m._buffers
    m.weight = 7  # a plain value replaces the registration
    assert "weight" not in m._buffers and m.weight == 7
    m.bias = None  # disabling an optional parameter keeps the name, as None
    assert "bias" in m._parameters and m.bias is None
    m.running = Buffer(Tensor([1.0]))
    m.running = Tensor([2.0])  # a plain tensor assigned to a buffer name stays a buffer
    assert isinstance(m._buffers["running"], Buffer) and m.running.tolist() == [2.0]
    with pytest.raises(TypeError, match="Parameter"):
        Linear(2, 2).weight = Tensor(np.zeros((2, 2)))


def test_delattr_and_register_functions():
    m = Net()
    del m.fc1
    assert "fc1" not in m._modules and [n for n, _ in m.named_children()] == ["act", "fc2"]
    m.register_parameter("p", Parameter(Tensor([1.0])))
    m.register_parameter("q", None)
    m.register_buffer("buf", Tensor([2.0]))
    m.register_module("sub", ReLU())
    m.register_modules("sub2", ReLU())
    assert isinstance(m.buf, Buffer) and "q" in m._parameters and "sub2" in m._modules
    del m.p
    assert "p" not in m._parameters
    with pytest.raises(TypeError):
        m.register_parameter("x", Tensor([1.0]))
    with pytest.raises(TypeError):
        m.register_buffer("x", 3)


def test_assignment_before_super_init_raises():
    class Bad(Module):
        def __init__(self):
            self.x = 1
            super().__init__()

    with pytest.raises(RuntimeError, match="super"):
        Bad()


# ---- traversal ------------------------------------------------------------------------------------
def test_parameters_and_names():
    m = Net()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight"]  # fc2.bias is None: skipped
    assert all(p.requires_grad for p in m.parameters())
    assert list(m.parameters(recursive=False)) == []
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    assert list(m.modules())[0] is m
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    bn = Sequential(Linear(2, 2), BatchNorm(2))
    assert [n for n, _ in bn.named_buffers()] == ["1.running_mean", "1.running_var"]
    assert len(list(bn.buffers())) == 2


def test_train_eval_return_self_and_recurse():
    m = Net()
    assert m.eval() is m and not m.training and not m.fc1.training
    assert m.train() is m and m.act.training


def test_zero_grad():
    m = Net()
    m(Tensor(np.ones((2, 3)))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(not to_np(p.grad).any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_forward_is_abstract():
    with pytest.raises(NotImplementedError):
        Module()(1)


def test_to_double_keeps_objects():
    m = Net()
    w = m.fc1.weight
    before = to_np(w)
    m.double()
    assert m.fc1.weight is w and w.dtype == np.float64
    np.testing.assert_allclose(to_np(w), before)


# ---- state dict ----------------------------------------------------------------------------------------
def test_state_dict_contents():
    m = Sequential(Linear(3, 4, bias=False), BatchNorm(4))
    sd = m.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
    assert sd["0.bias"] is None  # disabled entries appear as None (course)
    assert sd["0.weight"] is m[0].weight  # live tensors


def test_load_state_dict_roundtrip_in_place():
    a, b = Net(), Net()
    w = b.fc1.weight
    assert b.load_state_dict(a.state_dict()) == ([], [])
    assert b.fc1.weight is w
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(to_np(pa), to_np(pb))


def test_load_state_dict_strict_errors():
    m = Net()
    good = dict(m.state_dict())
    missing = {k: v for k, v in good.items() if k != "fc1.bias"}
    with pytest.raises(RuntimeError, match="missing key 'fc1.bias'"):
        m.load_state_dict(missing)
    with pytest.raises(RuntimeError, match="unexpected key 'extra'"):
        m.load_state_dict({**good, "extra": Tensor([1.0])})
    wrong = {**good, "fc1.weight": Tensor(np.zeros((3, 4)))}
    before = to_np(m.fc2.weight)
    with pytest.raises(RuntimeError, match=r"'fc1.weight'.*\[3, 4\].*\[4, 3\]"):
        m.load_state_dict(wrong)
    np.testing.assert_array_equal(to_np(m.fc2.weight), before)  # nothing copied on failure
    assert set(wrong) == set(good)  # the caller's dict is not mutated


def test_load_state_dict_non_strict():
    m = Net()
    sd = {"fc1.weight": Tensor(np.ones((4, 3))), "extra": Tensor([1.0]), "fc2.weight": Tensor(np.ones((9, 9)))}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert (to_np(m.fc1.weight) == 1).all() and "fc1.bias" in missing and unexpected == ["extra"]


# ---- repr ------------------------------------------------------------------------------------------
def test_repr_nested():
    m = Sequential(Linear(3, 4), ReLU(), Sequential(nn.LeakyReLU(), LayerNorm(4)))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): LeakyReLU(negative_slope=0.01)\n"
        "    (1): LayerNorm(4, eps=1e-05, affine=True)\n"
        "  )\n"
        ")")
    assert repr(nn.MultiheadAttention(4, 2)).startswith("MultiheadAttention(\n  hidden_dim=4, num_heads=2\n  (q_proj)")
    assert repr(Module()) == "Module()"


# ---- containers ------------------------------------------------------------------------------------
def test_sequential():
    s = Sequential(Linear(2, 3), ReLU())
    assert len(s) == 2 and isinstance(s[-1], ReLU) and isinstance(s[0:1], Sequential) and len(s[0:1]) == 1
    out = s(Tensor(np.array([[1.0, -2.0]])))
    assert out.shape == [1, 3] and (to_np(out) >= 0).all()
    assert [n for n, _ in s.named_children()] == ["0", "1"]


def test_module_list():
    ml = ModuleList([ReLU(), Linear(1, 1)])
    assert ml.append(nn.Tanh()) is ml and len(ml) == 3
    ml.extend([nn.Sigmoid()])
    assert [type(m).__name__ for m in ml] == ["ReLU", "Linear", "Tanh", "Sigmoid"]
    assert isinstance(ml[-1], nn.Sigmoid)
    ml[0] = nn.GELU()
    del ml[1]
    assert list(ml._modules) == ["0", "1", "2"] and isinstance(ml[1], nn.Tanh)  # renumbered
    both = ml + [ReLU()]
    assert isinstance(both, ModuleList) and len(both) == 4 and len(ml) == 3
    assert len(ml[1:]) == 2
    with pytest.raises(IndexError):
        ml[5]
    with pytest.raises(TypeError):
        ml.append(3)
    holder = Module()
    holder.layers = ModuleList([Linear(2, 2), Linear(2, 2)])
    assert [n for n, _ in holder.named_parameters()][:2] == ["layers.0.weight", "layers.0.bias"]


def test_module_dict():
    d = ModuleDict({"a": ReLU(), "b": Linear(1, 2)})
    assert len(d) == 2 and list(d) == ["a", "b"] and "a" in d and "z" not in d
    d["c"] = nn.Tanh()
    del d["a"]
    assert list(d.keys()) == ["b", "c"] and isinstance(list(d.values())[1], nn.Tanh)
    assert [k for k, _ in d.items()] == ["b", "c"]
    d.update([("e", ReLU())])
    assert list(ModuleDict([("x", ReLU())])) == ["x"] and "e" in d
    assert [n for n, _ in d.named_parameters()] == ["b.weight", "b.bias"]


# ---- init -------------------------------------------------------------------------------------------
def test_calcuate_gain():
    assert init.calcuate_gain("linear") == 1 and init.calcuate_gain("Idenity") == 1
    assert init.calcuate_gain("sigmoid") == 1 and init.calcuate_gain("TANH") == pytest.approx(5 / 3)
    assert init.calcuate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calcuate_gain("leaky_relu", 0.5) == pytest.approx(math.sqrt(2 / 1.25))
    assert init.calcuate_gain("selu") == 0.75
    assert nn.calculate_gain is init.calcuate_gain and init.constant_ is init.constants_
    with pytest.raises(KeyError):
        init.calcuate_gain("swish")


def _stats(t):
    a = to_np(t)
    return a.mean(), a.std(), a.min(), a.max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_statistics(dtype):
    manual_seed(0)
    t = Tensor(np.zeros((400, 300)), dtype=dtype)
    assert init.constants_(t, 2.5) is t and (to_np(t) == 2.5).all()
    assert (to_np(init.zeros_(t)) == 0).all() and (to_np(init.ones_(t)) == 1).all()
    mean, std, lo, hi = _stats(init.uniform_(t, -2.0, 4.0))
    assert abs(mean - 1) < 0.03 and abs(std - 6 / math.sqrt(12)) < 0.02 and lo >= -2 and hi <= 4
    mean, std, _, _ = _stats(init.normal_(t, 1.0, 3.0))
    assert abs(mean - 1) < 0.03 and abs(std - 3) < 0.03
    a = math.sqrt(6 / 700)
    mean, std, lo, hi = _stats(init.xavier_uniform_(t))
    assert abs(std - a / math.sqrt(3)) < 0.002 and -a <= lo and hi <= a
    mean, std, _, _ = _stats(init.xavier_normal_(t, gain=2.0))
    assert abs(std - 2 * math.sqrt(2 / 700)) < 0.003
    b = math.sqrt(2) * math.sqrt(3 / 300)
    mean, std, lo, hi = _stats(init.kaiming_uniform_(t, nonlinearity="relu"))
    assert abs(std - b / math.sqrt(3)) < 0.003 and -b <= lo and hi <= b
    mean, std, _, _ = _stats(init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"))
    assert abs(std - math.sqrt(2) / math.sqrt(400)) < 0.003


def test_init_fans_and_errors():
    conv_w = Tensor(np.zeros((8, 4, 3, 3)))
    _, std, _, _ = _stats(init.xavier_normal_(conv_w))
    assert abs(std - math.sqrt(2 / (36 + 72))) < 0.02
    with pytest.raises(ValueError, match="2 dims"):
        init.xavier_uniform_(Tensor(np.zeros(5)))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(Tensor(np.zeros((2, 2))), mode="fan_avg")


def test_init_on_parameters_is_not_recorded():
    p = Parameter(Tensor(np.zeros((3, 3))))
    init.normal_(p)
    assert p.grad_fn is None and p.requires_grad and to_np(p).std() > 0


def test_linear_init_is_bounded_and_nonzero():
    m = Linear(16, 8)
    w, b = to_np(m.weight), to_np(m.bias)
    assert np.abs(w).max() <= 0.25 and np.abs(b).max() <= 0.25 and w.std() > 0.05 and np.abs(b).sum() > 0
