"""Parameter-free activation modules (docs/api.md, nn), thin wrappers over nn.functional. `inplace=` is
accepted for PyTorch code (nn.ReLU(inplace=True)); the result is computed out of place, which gives the
same output (the input tensor is left unchanged)."""
from __future__ import annotations

from typing import Literal

from .._tensor import Tensor
from . import functional as F
from .module import Module


class _Activation(Module):
    """An activation whose constructor takes only PyTorch's `inplace` flag."""
    _fn = None

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return type(self)._fn(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class ReLU(_Activation):
    _fn = staticmethod(F.relu)


class SiLU(_Activation):
    """x * sigmoid(x) (swish)."""
    _fn = staticmethod(F.silu)


class SELU(_Activation):
    """scale * (x if x > 0 else alpha * (exp(x) - 1)) with PyTorch's alpha and scale."""
    _fn = staticmethod(F.selu)


class Mish(_Activation):
    """x * tanh(softplus(x))."""
    _fn = staticmethod(F.mish)


class Hardswish(_Activation):
    """x * relu6(x + 3) / 6."""
    _fn = staticmethod(F.hardswish)


class Hardsigmoid(_Activation):
    """relu6(x + 3) / 6."""
    _fn = staticmethod(F.hardsigmoid)


class GELU(Module):
    """GELU: the exact erf form (approximate='none', the default) or the tanh approximation ('tanh')."""

    def __init__(self, approximate: Literal["none", "tanh"] = "none") -> None:
        super().__init__()
        F.check_gelu_approximate(approximate)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)
