"""Pooling and resampling modules with PyTorch's signatures (beyond the course: docs/api.md, Decisions D7):
MaxPool1d/2d (= MaxPool2D), AvgPool1d/2d (= AvgPool2D), AdaptiveAvgPool1d/2d, AdaptiveMaxPool1d/2d, Upsample.
Kernels: cl_kernels/pool.cl (ops/pool.py) and cl_kernels/upsample.cl (ops/upsample.py)."""
from __future__ import annotations

from typing import Literal, Optional, Sequence, Union

from .._tensor import Tensor
from .._types import IntOrPair
from . import functional as F
from .module import Module


class _Pool(Module):
    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + self._more() + (", ceil_mode=True" if self.ceil_mode else ""))

    def _more(self):
        return ""


class _MaxPool(_Pool):
    _fn = None

    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                 dilation: IntOrPair = 1, return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation, self.return_indices = dilation, return_indices

    def forward(self, x: Tensor) -> Union[Tensor, tuple[Tensor, Tensor]]:
        return type(self)._fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                              self.return_indices)

    def _more(self):
        return f", dilation={self.dilation}" if self.dilation not in (1, (1, 1), (1,)) else ""


class MaxPool2D(_MaxPool):
    """Max over kernel_size windows of [N, C, H, W] (or [C, H, W]); padding never wins, NaN does."""
    _fn = staticmethod(F.max_pool2d)


class MaxPool1d(_MaxPool):
    _fn = staticmethod(F.max_pool1d)


class _AvgPool(_Pool):
    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad

    def _more(self):
        return "" if self.count_include_pad else ", count_include_pad=False"


class AvgPool2D(_AvgPool):
    """Mean over kernel_size windows; zero padding counts in the divisor unless count_include_pad=False;
    divisor_override replaces the divisor (PyTorch)."""

    def __init__(self, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Optional[int] = None
                 ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def _more(self):
        return super()._more() + ("" if self.divisor_override is None
                                  else f", divisor_override={self.divisor_override}")


class AvgPool1d(_AvgPool):
    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class _Adaptive(Module):
    _fn = None
    _max = False

    def __init__(self, output_size: Union[int, None, Sequence[Optional[int]]], return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x: Tensor) -> Union[Tensor, tuple[Tensor, Tensor]]:
        if self._max:
            return type(self)._fn(x, self.output_size, self.return_indices)
        return type(self)._fn(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_Adaptive):
    """Average over the windows that split [N, C, H, W] into output_size (an int, a pair, or None = keep)."""
    _fn = staticmethod(F.adaptive_avg_pool2d)

    def __init__(self, output_size: Union[int, None, Sequence[Optional[int]]]) -> None:
        super().__init__(output_size)


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    _fn = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveMaxPool2d(_Adaptive):
    _fn = staticmethod(F.adaptive_max_pool2d)
    _max = True


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    _fn = staticmethod(F.adaptive_max_pool1d)


MaxPool2d, AvgPool2d = MaxPool2D, AvgPool2D


class Upsample(Module):
    """Resample to `size` or by `scale_factor` with mode 'nearest' (default), 'nearest-exact', 'linear' or
    'bilinear' (align_corners for the linear modes), as F.interpolate."""

    def __init__(self, size: Optional[IntOrPair] = None, scale_factor: Union[float, Sequence[float], None] = None,
                 mode: Literal["nearest", "nearest-exact", "linear", "bilinear"] = "nearest",
                 align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None) -> None:
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"scale_factor={self.scale_factor}" if self.size is None else f"size={self.size}"
        return f"{what}, mode={self.mode!r}" + ("" if self.align_corners is None
                                                 else f", align_corners={self.align_corners}")


class UpsamplingNearest2d(Upsample):
    def __init__(self, size: Optional[IntOrPair] = None, scale_factor: Union[float, Sequence[float], None] = None
                 ) -> None:
        super().__init__(size, scale_factor, "nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size: Optional[IntOrPair] = None, scale_factor: Union[float, Sequence[float], None] = None
                 ) -> None:
        super().__init__(size, scale_factor, "bilinear", align_corners=True)
