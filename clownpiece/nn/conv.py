"""Convolutions on NCHW (and NCL) inputs with PyTorch's signatures and parameter layouts (beyond the course:
docs/api.md, Decisions D7): Conv1d, Conv2d (= Conv2D), ConvTranspose1d, ConvTranspose2d. Kernels: im2col +
GEMM (ops/conv.py); padding_mode other than 'zeros' pads with F.pad first, as PyTorch does. The pooling
modules are importable from here too (nn/pooling.py)."""
from __future__ import annotations

import math
from typing import Literal, Optional, Sequence, Union

from .._layout import ShapeError
from .._tensor import Tensor
from .._types import DeviceLike, DTypeLike, IntOrPair
from ..ops.conv import conv_padding, pair
from . import functional as F, init
from .module import Module, Parameter
from .pooling import AvgPool2D, AvgPool2d, MaxPool2D, MaxPool2d  # noqa: F401  (their old home)

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _sizes(v, dims, name, op):
    """An int or a `dims`-tuple of ints as a tuple."""
    if dims == 2:
        return pair(v, name, op)
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{op}: {name} must be an int or a 1-tuple of ints, got {v!r}")
    return (int(v),)


class _ConvNd(Module):
    _dims = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair,
                 padding: Union[IntOrPair, str], dilation: IntOrPair, groups: int, bias: bool, padding_mode: str,
                 dtype: DTypeLike, output_padding: IntOrPair = 0) -> None:
        super().__init__()
        op = type(self).__name__
        if not isinstance(groups, int) or groups <= 0 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{op}: in_channels {in_channels} and out_channels {out_channels} must be divisible "
                             f"by groups {groups!r}")
        if padding_mode not in _PADDING_MODES or (self._transposed and padding_mode != "zeros"):
            allowed = ("zeros",) if self._transposed else _PADDING_MODES
            raise ValueError(f"{op}: padding_mode must be one of {allowed}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups, self.padding_mode = in_channels, out_channels, groups, \
            padding_mode
        self.kernel_size = _sizes(kernel_size, self._dims, "kernel_size", op)
        self.stride = _sizes(stride, self._dims, "stride", op)
        self.dilation = _sizes(dilation, self._dims, "dilation", op)
        if isinstance(padding, str):
            if self._transposed or padding not in ("same", "valid"):
                raise ValueError(f"{op}: padding must be an int, a tuple{'' if self._transposed else ', same or valid'}"
                                 f", got {padding!r}")
            self.padding = padding
            # checks stride for 'same' at construction, as PyTorch
            conv_padding(padding, (1,) * (2 - self._dims) + self.kernel_size,
                         (1,) * (2 - self._dims) + self.dilation, (1,) * (2 - self._dims) + self.stride, op)
        else:
            self.padding = _sizes(padding, self._dims, "padding", op)
        self.output_padding = _sizes(output_padding, self._dims, "output_padding", op)
        dtype = Tensor._check_dtype(dtype)
        shape = ((in_channels, out_channels // groups) if self._transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        fan_in = shape[1] * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0  # kaiming_uniform_(a=sqrt(5)), as PyTorch
        self.weight = init.uniform_(Parameter(Tensor._empty(shape, dtype)), -bound, bound)
        if bias:
            self.bias = init.uniform_(Parameter(Tensor._empty((out_channels,), dtype)), -bound, bound)
        else:
            self.register_parameter("bias", None)

    def _explicit_padding(self, x):
        """For padding_mode != 'zeros': x padded by F.pad (the conv then pads nothing)."""
        k = (1,) * (2 - self._dims) + self.kernel_size
        d = (1,) * (2 - self._dims) + self.dilation
        s = (1,) * (2 - self._dims) + self.stride
        p = self.padding if isinstance(self.padding, str) else (0,) * (2 - self._dims) + self.padding
        top, bottom, left, right = conv_padding(p, k, d, s, type(self).__name__)
        pads = (left, right) if self._dims == 1 else (left, right, top, bottom)
        return F.pad(x, pads, self.padding_mode)

    def _check_input(self, x):
        op = type(self).__name__
        if not hasattr(x, "_storage"):
            raise TypeError(f"{op}: expected a tensor input, got {type(x).__name__}")
        if x.dim() != self._dims + 2 or x.shape[1] != self.in_channels:
            layout = "[N, C, L]" if self._dims == 1 else "[N, C, H, W]"
            raise ShapeError(f"{op}: expected a {self._dims + 2}-d {layout} input with C = {self.in_channels}, "
                             f"got {x.shape}")

    def extra_repr(self) -> str:
        padding = repr(self.padding) if isinstance(self.padding, str) else f"{self.padding}"
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={padding}")
        if any(self.output_padding):
            text += f", output_padding={self.output_padding}"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        text += f", bias={self.bias is not None}"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


class Conv2D(_ConvNd):
    """Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
    padding_mode='zeros'): weight [out, in/groups, kH, kW] and bias [out] ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    as in PyTorch; padding may be 'same' or 'valid'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: Union[IntOrPair, Literal["valid", "same"]] = 0, dilation: IntOrPair = 1, groups: int = 1,
                 bias: bool = True, padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
                 device: DeviceLike = None, dtype: DTypeLike = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if self.padding_mode != "zeros":
            return F.conv2d(self._explicit_padding(x), self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
    padding_mode='zeros') on [N, C, L] inputs; weight [out, in/groups, k]."""
    _dims = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: Union[IntOrPair, Literal["valid", "same"]] = 0, dilation: IntOrPair = 1, groups: int = 1,
                 bias: bool = True, padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
                 device: DeviceLike = None, dtype: DTypeLike = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if self.padding_mode != "zeros":
            return F.conv1d(self._explicit_padding(x), self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, output_padding: IntOrPair = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrPair = 1, padding_mode: Literal["zeros"] = "zeros", device: DeviceLike = None,
                 dtype: DTypeLike = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, dtype, output_padding)

    def _output_padding(self, x, output_size):
        """PyTorch's rule: the output_padding that gives output_size (the trailing dims of it)."""
        if output_size is None:
            return self.output_padding
        size = list(output_size)[-self._dims:]
        if len(size) != self._dims:
            raise ValueError(f"{type(self).__name__}: output_size {output_size!r} must give {self._dims} sizes")
        pads = []
        for i in range(self._dims):
            dim = x.shape[2 + i]
            low = (dim - 1) * self.stride[i] - 2 * self.padding[i] + self.dilation[i] * (self.kernel_size[i] - 1) + 1
            if not low <= size[i] < low + self.stride[i]:
                raise ValueError(f"{type(self).__name__}: requested output size {size[i]} is not in "
                                 f"[{low}, {low + self.stride[i] - 1}] for input {x.shape}")
            pads.append(size[i] - low)
        return tuple(pads)


class ConvTranspose2d(_ConvTransposeNd):
    """ConvTranspose2d(in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
    bias=True, dilation=1): weight [in, out/groups, kH, kW]; output (H-1)*stride - 2*padding +
    dilation*(kH-1) + output_padding + 1."""

    def forward(self, x: Tensor, output_size: Optional[Sequence[int]] = None) -> Tensor:
        self._check_input(x)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(x, output_size), self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    _dims = 1

    def forward(self, x: Tensor, output_size: Optional[Sequence[int]] = None) -> Tensor:
        self._check_input(x)
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(x, output_size), self.groups, self.dilation)


Conv2d = Conv2D
