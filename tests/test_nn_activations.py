"""The activations beyond the course (SiLU, ELU, SELU, Softplus, Mish, Hardswish, Hardsigmoid, GELU's tanh
form): forward against numpy float64 formulas on every layout, gradients by finite differences (float64),
PyTorch's gradient values at the kinks, extreme inputs, modules and their reprs."""
import math

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, to_np

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import gradcheck
from clownpiece.nn import functional as F

rng = np.random.default_rng(5)
f64 = np.float64
ALPHA, SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def np_softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(np.minimum(beta * x, threshold))) / beta)


REFS = {
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x))),
    "elu": (F.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "elu_alpha": (lambda t: F.elu(t, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(np.minimum(x, 0)))),
    "selu": (F.selu, lambda x: SCALE * np.where(x > 0, x, ALPHA * np.expm1(np.minimum(x, 0)))),
    "softplus": (F.softplus, np_softplus),
    "softplus_beta": (lambda t: F.softplus(t, 2.0, 3.0), lambda x: np_softplus(x, 2.0, 3.0)),
    "mish": (F.mish, lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    "hardswish": (F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    "hardsigmoid": (F.hardsigmoid, lambda x: np.clip(x + 3, 0, 6) / 6),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
}


def _away_from_kinks(shape):
    """Values in [-5, 5] at least 0.05 from the kinks (0, +-3) and the softplus thresholds (1.5, 20)."""
    x = rng.uniform(-5, 5, shape)
    for k in (0.0, 3.0, -3.0, 1.5):
        near = np.abs(x - k) < 0.05
        x[near] += 0.1
    return x


@pytest.mark.parametrize("name", sorted(REFS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_forward_matches_formula(name, layout, dtype):
    fn, ref = REFS[name]
    t, x = make(_away_from_kinks((4, 6)), dtype, layout)
    f32 = dtype == np.float32
    assert_close(fn(t), ref(x), rtol=1e-5 if f32 else 1e-12, atol=1e-6 if f32 else 1e-13)


@pytest.mark.parametrize("name", sorted(REFS))
def test_gradient_by_finite_differences(name):
    fn, _ = REFS[name]
    x = Tensor(_away_from_kinks((3, 5)), requires_grad=True, dtype=f64)
    assert gradcheck(fn, [x])
    t, _ = make(_away_from_kinks((3, 4)), f64, "transposed")
    t.requires_grad_()
    assert gradcheck(fn, [t])


@pytest.mark.parametrize("name", sorted(REFS))
def test_zero_dim_and_empty(name, dtype):
    fn, ref = REFS[name]
    assert_close(fn(Tensor(0.7, dtype=dtype)), ref(np.array(0.7)), rtol=1e-6)
    assert fn(Tensor(np.zeros((0, 3)), dtype=dtype)).shape == [0, 3]


def _grad_at(fn, values):
    x = Tensor(np.asarray(values, f64), requires_grad=True, dtype=f64)
    fn(x).sum().backward()
    return to_np(x.grad)


def test_gradients_at_the_kinks_follow_pytorch():
    # hardswish: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above; hardsigmoid: 1/6 strictly inside (-3, 3)
    np.testing.assert_allclose(_grad_at(F.hardswish, [-3.5, -3.0, 0.0, 3.0, 3.5]), [0, -0.5, 0.5, 1.5, 1])
    np.testing.assert_allclose(_grad_at(F.hardsigmoid, [-3.0, -1.0, 3.0]), [0, 1 / 6, 0])
    # elu at 0 takes the negative branch: alpha * exp(0)
    np.testing.assert_allclose(_grad_at(lambda t: F.elu(t, 0.5), [0.0, 1.0]), [0.5, 1.0])
    np.testing.assert_allclose(_grad_at(F.selu, [0.0]), [SCALE * ALPHA])
    # softplus above the threshold is the identity
    np.testing.assert_allclose(_grad_at(lambda t: F.softplus(t, 1.0, 2.0), [2.5]), [1.0])


@pytest.mark.parametrize("name", sorted(REFS))
def test_extreme_inputs_stay_finite(name, dtype):
    fn, ref = REFS[name]
    x = np.array([-1e4, -100.0, -30.0, 30.0, 100.0, 1e4])
    t = Tensor(x, requires_grad=True, dtype=dtype)
    y = fn(t)
    got = to_np(y)
    assert np.isfinite(got).all(), got
    with np.errstate(over="ignore"):
        assert_close(y, ref(x), rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert np.isfinite(to_np(t.grad)).all(), to_np(t.grad)


MODULES = [
    (nn.SiLU(), "silu", "SiLU()"),
    (nn.ELU(), "elu", "ELU(alpha=1.0)"),
    (nn.ELU(0.7), "elu_alpha", "ELU(alpha=0.7)"),
    (nn.SELU(), "selu", "SELU()"),
    (nn.Softplus(), "softplus", "Softplus(beta=1.0, threshold=20.0)"),
    (nn.Softplus(2.0, 3.0), "softplus_beta", "Softplus(beta=2.0, threshold=3.0)"),
    (nn.Mish(), "mish", "Mish()"),
    (nn.Hardswish(), "hardswish", "Hardswish()"),
    (nn.Hardsigmoid(), "hardsigmoid", "Hardsigmoid()"),
    (nn.GELU(approximate="tanh"), "gelu_tanh", "GELU(approximate='tanh')"),
]


@pytest.mark.parametrize("module,name,text", MODULES, ids=[m[2] for m in MODULES])
def test_modules(module, name, text):
    x = _away_from_kinks((2, 3))
    assert_close(module(Tensor(x, dtype=f64)), REFS[name][1](x))
    assert repr(module) == text
    assert list(module.parameters()) == [] and module.state_dict() == {}


def test_inplace_flag_is_accepted_and_returns_the_result():
    x = Tensor(np.array([-1.0, 2.0]))
    for m in (nn.ReLU(inplace=True), nn.SiLU(True), nn.ELU(inplace=True), nn.LeakyReLU(0.1, inplace=True)):
        y = m(x)
        assert y.shape == [2] and "inplace=True" in repr(m)
    assert_close(nn.ReLU(inplace=True)(x), [0.0, 2.0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(Tensor([1.0]), approximate="erf")
    with pytest.raises(ValueError, match="beta"):
        F.softplus(Tensor([1.0]), beta=0)
    with pytest.raises(TypeError, match="silu"):
        F.silu([1.0])
