"""Convolution and pooling on NCHW inputs (beyond the course: docs/api.md, Decisions D7): Conv2D (= Conv2d),
MaxPool2D (= MaxPool2d), AvgPool2D (= AvgPool2d). The kernels are fused ops from ops/nn.py (im2col + one
GEMM+bias launch)."""
import math

from .._tensor import Tensor
from ..ops.nn import _pair
from .module import Module, Parameter
from . import functional as F, init


class Conv2D(Module):
    """Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True): weight
    [out, in, kH, kW] and bias [out] ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in PyTorch."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (_pair(v, name, "Conv2D") for v, name in (
            (kernel_size, "kernel_size"), (stride, "stride"), (padding, "padding")))
        dtype = Tensor._check_dtype(dtype)
        bound = 1.0 / math.sqrt(in_channels * self.kernel_size[0] * self.kernel_size[1])
        self.weight = init.uniform_(Parameter(Tensor._empty((out_channels, in_channels) + self.kernel_size, dtype)),
                                    -bound, bound)
        if bias:
            self.bias = init.uniform_(Parameter(Tensor._empty((out_channels,), dtype)), -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class _Pool2D(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool2D):
    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool2D(_Pool2D):
    """Average pooling; zero padding counts in the divisor (PyTorch's count_include_pad=True)."""

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


Conv2d, MaxPool2d, AvgPool2d = Conv2D, MaxPool2D, AvgPool2D
