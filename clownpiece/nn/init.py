"""In-place initialisers (docs/api.md, nn). Random fills run on the device (ops/random.py) under no_grad and
return the tensor. The course's names come first (`calcuate_gain`, `constants_`, table key `idenity`);
PyTorch's spellings are aliases."""
from __future__ import annotations

import math
from typing import Literal, Optional

from .._grad_mode import no_grad
from .._tensor import Tensor

_GAINS = {
    "linear": lambda a: 1.0,
    "idenity": lambda a: 1.0,  # sic: the course's table key
    "identity": lambda a: 1.0,
    "conv1d": lambda a: 1.0,
    "conv2d": lambda a: 1.0,
    "sigmoid": lambda a: 1.0,
    "tanh": lambda a: 5.0 / 3,
    "relu": lambda a: math.sqrt(2.0),
    "leaky_relu": lambda a: math.sqrt(2.0 / (1 + a * a)),
    "selu": lambda a: 3.0 / 4,
}


def calcuate_gain(nonlinearity: str, a: Optional[float] = 0) -> float:
    """The recommended gain for `nonlinearity` (case-insensitive); unknown names raise KeyError."""
    key = str(nonlinearity).lower()
    if key not in _GAINS:
        raise KeyError(f"calcuate_gain: unknown nonlinearity {nonlinearity!r}; expected one of {sorted(_GAINS)}")
    if key == "leaky_relu" and a is None:
        a = 0.01
    return _GAINS[key](a)


calculate_gain = calcuate_gain


def _fans(tensor):
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"fan in/out need a tensor with at least 2 dims, got shape {shape}")
    receptive = math.prod(shape[2:])
    if shape[0] * shape[1] * receptive == 0:
        raise ValueError(f"fan in/out of a tensor with no elements (shape {shape}) are undefined")
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


@no_grad()
def constants_(tensor: Tensor, value: float) -> Tensor:
    return tensor.fill_(value)


constant_ = constants_


def zeros_(tensor: Tensor) -> Tensor:
    return constants_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constants_(tensor, 1.0)


@no_grad()
def uniform_(tensor: Tensor, low: float = 0.0, high: float = 1.0, *, a: Optional[float] = None,
             b: Optional[float] = None) -> Tensor:
    """U(low, high); PyTorch's keyword names a=/b= work too."""
    return tensor.uniform_(low if a is None else a, high if b is None else b)


@no_grad()
def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return tensor.normal_(mean, std)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: Literal["fan_in", "fan_out"] = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    bound = calcuate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: Literal["fan_in", "fan_out"] = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    return normal_(tensor, 0.0, calcuate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)))


__all__ = ["calcuate_gain", "calculate_gain", "constants_", "constant_", "zeros_", "ones_", "uniform_",
           "normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]
