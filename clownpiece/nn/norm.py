"""Normalisation layers (docs/api.md, nn): the course's LayerNorm and channel-last BatchNorm, which gain
PyTorch's keywords, and PyTorch's BatchNorm1d, BatchNorm2d, GroupNorm and RMSNorm with PyTorch's
state_dict keys, shapes and defaults (kernels: cl_kernels/norm.cl and the layer-norm kernels of nn.cl)."""
from __future__ import annotations

import numbers
from typing import Optional

from .._layout import ShapeError
from .._tensor import Tensor, TensorBase
from .._types import DeviceLike, DTypeLike, ShapeLike
from ..autograd.functions.norm import batch_norm as _batch_norm
from . import functional as F, init
from .module import Module, new_buffer, new_parameter


def _affine_parameters(module, shape, weight, bias, dtype):
    """The per-feature scale (ones) and shift (zeros) of a norm layer; either may be registered as None."""
    if weight:
        module.weight = init.ones_(new_parameter(shape, dtype))
    else:
        module.register_parameter("weight", None)
    if bias:
        module.bias = init.zeros_(new_parameter(shape, dtype))
    else:
        module.register_parameter("bias", None)


def _shape_tuple(shape, op):
    dims = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if not dims or not all(isinstance(d, numbers.Integral) and d > 0 for d in dims):
        raise ValueError(f"{op}: normalized_shape must be a positive int or a list of positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _input(x, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a tensor input, got {type(x).__name__}")
    return x


class LayerNorm(Module):
    """Normalise over the trailing dims with the mean and biased variance, then scale and shift.

    LayerNorm(num_features) (an int, the course's form): the input is viewed as [-1, num_features], so
    num_features may also be the product of several trailing dims. LayerNorm([d1, d2, ...]) (PyTorch's
    normalized_shape): those must be the trailing dims, and weight and bias have that shape.
    affine / elementwise_affine (PyTorch's name) and bias=False as in PyTorch."""

    def __init__(self, num_features: ShapeLike, eps: float = 1e-5, affine: bool = True, bias: bool = True,
                 device: DeviceLike = None, dtype: DTypeLike = None, *,
                 elementwise_affine: Optional[bool] = None) -> None:
        super().__init__()
        affine = affine if elementwise_affine is None else elementwise_affine
        self._course_form = isinstance(num_features, numbers.Integral)
        self.normalized_shape = _shape_tuple(num_features, "LayerNorm")
        self.num_features = num_features if self._course_form else list(self.normalized_shape)
        self.eps, self.affine, self.elementwise_affine = eps, affine, affine
        _affine_parameters(self, self.normalized_shape, affine, affine and bias, dtype)

    def forward(self, x: Tensor) -> Tensor:
        shape = self.num_features if self._course_form else self.normalized_shape
        return F.layer_norm(_input(x, "LayerNorm"), shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        if self._course_form:
            return f"{self.num_features}, eps={self.eps}, affine={self.affine}"
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.affine}"


class RMSNorm(Module):
    """y = x / sqrt(mean(x^2) + eps) * weight over the trailing dims normalized_shape (PyTorch's RMSNorm;
    eps=None is the dtype's machine epsilon)."""

    def __init__(self, normalized_shape: ShapeLike, eps: Optional[float] = None, elementwise_affine: bool = True,
                 device: DeviceLike = None, dtype: DTypeLike = None) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape, "RMSNorm")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = init.ones_(new_parameter(self.normalized_shape, dtype))
        else:
            self.register_parameter("weight", None)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(_input(x, "RMSNorm"), self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalise each sample's num_groups groups of channels of an [N, C, *] input (PyTorch's GroupNorm);
    weight and bias are per channel."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: DeviceLike = None, dtype: DTypeLike = None) -> None:
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels {num_channels} must be divisible by num_groups {num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        _affine_parameters(self, (num_channels,), affine, affine, dtype)

    def forward(self, x: Tensor) -> Tensor:
        _input(x, "GroupNorm")
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ShapeError(f"GroupNorm: expected an input of shape [N, {self.num_channels}, *], got {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _BatchNorm(Module):
    """PyTorch's batch norm over dim 1 of [N, C, *]: batch statistics in training (the running buffers move
    towards them: unbiased variance, `momentum`, or the cumulative average when momentum is None) and
    whenever track_running_stats=False; the running statistics in eval mode. State: weight, bias,
    running_mean, running_var, num_batches_tracked (an int64 0-dim count, as in PyTorch, whatever `dtype`)."""
    _dims = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: DeviceLike = None, dtype: DTypeLike = None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine_parameters(self, (num_features,), affine, affine, dtype)
        if track_running_stats:
            self.running_mean = new_buffer((num_features,), 0.0, dtype)
            self.running_var = new_buffer((num_features,), 1.0, dtype)
            self.num_batches_tracked = new_buffer((), 0, "int64")
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_(), self.running_var.fill_(1.0), self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight), init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        _input(x, name)
        if x.dim() not in self._dims:
            dims = " or ".join(f"{d}D" for d in self._dims)
            raise ShapeError(f"{name}: expected {dims} input, got {x.dim()}D input of shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ShapeError(f"{name}: input {x.shape} has {x.shape[1]} channels (dim 1), expected "
                             f"{self.num_features}")
        use_batch_stats = self.training or self.running_mean is None
        tracking = self.training and self.running_mean is not None
        return F.batch_norm(x, self.running_mean if tracking or not use_batch_stats else None,
                            self.running_var if tracking or not use_batch_stats else None, self.weight, self.bias,
                            use_batch_stats, self.momentum, self.eps,
                            num_batches_tracked=self.num_batches_tracked if tracking else None)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of [N, C] or [N, C, L] inputs."""
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of [N, C, H, W] inputs."""
    _dims = (4,)


class BatchNorm(Module):
    """The course's batch norm: channel-last over rows of [..., num_features], the running variance moving
    towards the biased batch variance; running_mean/running_var are its state (no num_batches_tracked).
    PyTorch's keywords track_running_stats (False: batch statistics always, no buffers) and momentum=None
    (cumulative average) are accepted; for PyTorch's channel-first layer use BatchNorm1d/BatchNorm2d."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: DeviceLike = None, dtype: DTypeLike = None) -> None:
        super().__init__()
        if momentum is None and track_running_stats:
            raise ValueError("BatchNorm (channel-last) keeps no num_batches_tracked: momentum=None needs "
                             "BatchNorm1d/BatchNorm2d")
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        self.track_running_stats = track_running_stats
        _affine_parameters(self, (num_features,), affine, affine, dtype)
        if track_running_stats:
            self.running_mean = new_buffer((num_features,), 0.0, dtype)
            self.running_var = new_buffer((num_features,), 1.0, dtype)
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    def forward(self, x: Tensor) -> Tensor:
        _input(x, "BatchNorm")
        c = self.num_features
        if x.dim() == 0 or x.shape[-1] != c:
            raise ShapeError(f"BatchNorm: input of shape {x.shape} must have {c} features in its last dim")
        rows = x.reshape(-1, c)
        use_batch_stats = self.training or self.running_mean is None
        keep = self.running_mean is not None and (self.training or not use_batch_stats)
        y = _batch_norm(rows, self.running_mean if keep else None, self.running_var if keep else None,
                        self.weight, self.bias, use_batch_stats, self.momentum, self.eps, unbiased=False)
        return y.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
