"""Raw ops of resampling (kernels in cl_kernels/upsample.cl): F.interpolate's nearest, nearest-exact,
linear and bilinear modes on [N, C, L] and [N, C, H, W] inputs, with PyTorch's output sizes, scales and
source-index rules (align_corners, recompute_scale_factor). One launch forward, one backward."""
import math
import numbers

from .. import backend
from .._layout import ShapeError
from ..backend.dtypes import require_float

MODES = {"nearest": 0, "linear": 1, "bilinear": 1, "nearest-exact": 2}
_DIMS = {"linear": 1, "bilinear": 2}


class Plan:
    """Output sizes and per-axis scales of one resampling of a 4-d view."""

    def __init__(self, x, size, scale_factor, mode, align_corners, recompute_scale_factor, op="interpolate"):
        if not hasattr(x, "_storage"):
            raise TypeError(f"{op}: expected a tensor input, got {type(x).__name__}")
        require_float(x, op)
        if mode not in MODES:
            raise ValueError(f"{op}: mode must be one of {sorted(MODES)} ('bicubic', 'trilinear' and 'area' are "
                             f"not supported), got {mode!r}")
        if x.dim() not in (3, 4):
            raise ShapeError(f"{op}: expected a 3-d [N, C, L] or 4-d [N, C, H, W] input, got {x.shape}")
        dims = x.dim() - 2
        if mode in _DIMS and _DIMS[mode] != dims:
            raise ValueError(f"{op}: mode {mode!r} needs a {_DIMS[mode] + 2}-d input, got {x.dim()}-d")
        if align_corners is not None and MODES[mode] != 1:
            raise ValueError(f"{op}: align_corners only applies to the linear modes, not {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{op}: give exactly one of size and scale_factor")
        inputs = x._shape[2:]
        if size is not None:
            sizes = _per_axis(size, dims, "size", op, numbers.Integral)
            if any(s <= 0 for s in sizes):
                raise ValueError(f"{op}: size must be positive, got {size!r}")
            scales = (None,) * dims
        else:
            scales = _per_axis(scale_factor, dims, "scale_factor", op, numbers.Real)
            if any(s <= 0 for s in scales):
                raise ValueError(f"{op}: scale_factor must be positive, got {scale_factor!r}")
            sizes = tuple(int(math.floor(i * float(s))) for i, s in zip(inputs, scales))
            if any(s <= 0 for s in sizes):
                raise ShapeError(f"{op}: scale_factor {scale_factor!r} gives an empty output for input {x.shape}")
            if recompute_scale_factor:
                scales = (None,) * dims
        if any(i == 0 for i in inputs):
            raise ShapeError(f"{op}: input {x.shape} has an empty spatial dim")
        self.mode, self.align = MODES[mode], int(bool(align_corners))
        self.in_hw = (1,) * (2 - dims) + tuple(inputs)
        self.out_hw = (1,) * (2 - dims) + tuple(sizes)
        scales = (None,) * (2 - dims) + tuple(scales)
        self.fs, self.s = [], []
        for i, o, sc in zip(self.in_hw, self.out_hw, scales):
            # nearest: PyTorch's float scale; linear: in the tensor's precision (both as their kernels do)
            ratio = (1.0 / float(sc)) if sc is not None else i / o
            self.fs.append(ratio)
            self.s.append(((i - 1) / (o - 1) if o > 1 else 0.0) if self.align else ratio)
        self.dims = dims

    def args(self, c):
        (h, w), (oh, ow) = self.in_hw, self.out_hw
        return (c, h, w, oh, ow, self.fs[0], self.fs[1], self.s[0], self.s[1], self.mode, self.align)


def _per_axis(v, dims, name, op, kind):
    vals = tuple(v) if isinstance(v, (list, tuple)) else (v,) * dims
    if len(vals) != dims or not all(isinstance(e, kind) and not isinstance(e, bool) for e in vals):
        raise TypeError(f"{op}: {name} must be a number or {dims} numbers, got {v!r}")
    return vals


def _view4(x):
    return x.unsqueeze(2) if x.dim() == 3 else x


def upsample(x, plan):
    v = _view4(x)
    n, c = v._shape[:2]
    y = v._empty((n, c) + plan.out_hw, v.dtype)
    if y._numel:
        backend.launch(backend.kernel("upsample", "upsample_fwd", v.dtype), y._numel, y, v, *v._strides,
                       *plan.args(c), y._numel)
    return y.squeeze(2) if plan.dims == 1 else y


def upsample_backward(grad, plan, in_shape):
    g = _view4(grad).contiguous()
    n, c = g._shape[:2]
    dx = g._empty((n, c) + plan.in_hw, g.dtype)
    if dx._numel:
        backend.launch(backend.kernel("upsample", "upsample_bwd", g.dtype), dx._numel, dx, g, *plan.args(c),
                       dx._numel)
    return dx.reshape(in_shape)
