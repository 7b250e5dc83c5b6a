"""Raw ops of pooling (kernels in cl_kernels/pool.cl): max and average pooling with padding, dilation (max),
ceil_mode, count_include_pad and divisor_override, and adaptive average/max pooling, on [N, C, H, W] or
unbatched [C, H, W] inputs (1-D pooling is H = 1). Module-level functions; autograd/functions/pool.py records
them. One launch forward, one backward; the max ops keep the flat position h*W + w each output took."""
import numbers

from .. import backend
from .._layout import ShapeError, ceil_div, is_int
from ..backend.dtypes import require_float
from .conv import pair


def _image(x, op, dims=2):
    """x as a 4-d [N, C, H, W] view (unbatched [C, H, W] gets N = 1; 1-D [N, C, L] gets H = 1) and whether
    to undo that on the result."""
    if not hasattr(x, "_storage"):
        raise TypeError(f"{op}: expected a tensor input, got {type(x).__name__}")
    require_float(x, op)
    if x.dim() not in (dims + 1, dims + 2):
        layout = "[N, C, L] or [C, L]" if dims == 1 else "[N, C, H, W] or [C, H, W]"
        raise ShapeError(f"{op}: expected a {dims + 1}-d or {dims + 2}-d {layout} input, got shape {x.shape}")
    v = x if x.dim() == dims + 2 else x.unsqueeze(0)
    return (v.unsqueeze(2) if dims == 1 else v), x.dim() == dims + 1


def _restore(y, unbatched, dims):
    if dims == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def _out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size: the last window must start inside the input or its left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (ceil_div(span, s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


class Window:
    """Pooling geometry of a 4-d view: sizes, output plane, the kernel arguments."""

    def __init__(self, v, kernel_size, stride, padding, dilation, ceil_mode, op, dims=2):
        def sizes(val, name):
            if dims == 1:
                if isinstance(val, (list, tuple)) and len(val) == 1:
                    val = val[0]
                return (1, pair(val, name, op)[1])
            return pair(val, name, op)
        self.kh, self.kw = sizes(kernel_size, "kernel_size")
        self.sh, self.sw = sizes(kernel_size if stride is None or stride == [] or stride == () else stride, "stride")
        self.ph, self.pw = (0, sizes(padding, "padding")[1]) if dims == 1 else sizes(padding, "padding")
        self.dh, self.dw = sizes(dilation, "dilation")
        if min(self.kh, self.kw, self.sh, self.sw, self.dh, self.dw) <= 0 or min(self.ph, self.pw) < 0:
            raise ValueError(f"{op}: kernel_size {(self.kh, self.kw)}, stride {(self.sh, self.sw)} and dilation "
                             f"must be positive and padding {(self.ph, self.pw)} non-negative")
        if 2 * self.ph > self.kh or 2 * self.pw > self.kw:
            raise ValueError(f"{op}: padding {(self.ph, self.pw)} must be at most half the kernel "
                             f"{(self.kh, self.kw)}")
        self.n, self.c, self.h, self.w = v._shape
        self.oh = _out_size(self.h, self.kh, self.sh, self.ph, self.dh, ceil_mode)
        self.ow = _out_size(self.w, self.kw, self.sw, self.pw, self.dw, ceil_mode)
        if self.oh <= 0 or self.ow <= 0:
            raise ShapeError(f"{op}: kernel {(self.kh, self.kw)} with padding {(self.ph, self.pw)} does not fit "
                             f"the input of shape {v.shape}")

    def args(self):
        return (self.c, self.h, self.w, self.kh, self.kw, self.oh, self.ow, self.sh, self.sw, self.ph, self.pw,
                self.dh, self.dw)

    @property
    def out_shape(self):
        return (self.n, self.c, self.oh, self.ow)

    @property
    def in_shape(self):
        return (self.n, self.c, self.h, self.w)


def _launch(name, out, *args):
    backend.launch(backend.kernel("pool", name, out.dtype), out._numel, out, *args, out._numel)
    return out


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, dims=2, op="max_pool2d"):
    """(y, indices as T, window, unbatched)."""
    v, unbatched = _image(x, op, dims)
    win = Window(v, kernel_size, stride, padding, dilation, ceil_mode, op, dims)
    y, idx = v._empty(win.out_shape, v.dtype), v._empty(win.out_shape, v.dtype)
    _launch("max_pool_fwd", y, idx, v, *v._strides, *win.args())
    return y, idx, win, unbatched


def max_pool_backward(grad, idx, win):
    g = grad.contiguous()
    return _launch("max_pool_bwd", g._empty(win.in_shape, g.dtype), g, idx, *win.args())


def _divisor(divisor_override, op):
    if divisor_override is None:
        return 0
    if not isinstance(divisor_override, numbers.Integral) or divisor_override <= 0:
        raise ValueError(f"{op}: divisor_override must be a positive int or None, got {divisor_override!r}")
    return int(divisor_override)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, dims=2, op="avg_pool2d"):
    """(y, window, unbatched, (count_include_pad, divisor))."""
    v, unbatched = _image(x, op, dims)
    div = _divisor(divisor_override, op)
    win = Window(v, kernel_size, stride, padding, 1, ceil_mode, op, dims)
    mode = (int(bool(count_include_pad)), div)
    y = _launch("avg_pool_fwd", v._empty(win.out_shape, v.dtype), v, *v._strides, *win.args(), *mode)
    return y, win, unbatched, mode


def avg_pool_backward(grad, win, mode):
    g = grad.contiguous()
    return _launch("avg_pool_bwd", g._empty(win.in_shape, g.dtype), g, *win.args(), *mode)


def adaptive_size(output_size, v, op, dims=2):
    """(OH, OW) from an int, a pair, or entries None (= the input's size)."""
    if dims == 1:
        size = output_size[0] if isinstance(output_size, (list, tuple)) and len(output_size) == 1 else output_size
        sizes = (1, size)
    elif isinstance(output_size, (list, tuple)):
        if len(output_size) != 2:
            raise TypeError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
        sizes = tuple(output_size)
    else:
        sizes = (output_size, output_size)
    sizes = tuple(v._shape[2 + i] if s is None else s for i, s in enumerate(sizes))
    if not all(is_int(s) and s > 0 for s in sizes):
        raise ValueError(f"{op}: output_size must be positive ints (or None), got {output_size!r}")
    if v._shape[2] == 0 or v._shape[3] == 0:
        raise ShapeError(f"{op}: input {v.shape} has an empty spatial dim")
    return int(sizes[0]), int(sizes[1])


def adaptive_pool(x, output_size, is_max, dims=2, op="adaptive_avg_pool2d"):
    """(y, indices or None, input 4-d shape, unbatched)."""
    v, unbatched = _image(x, op, dims)
    oh, ow = adaptive_size(output_size, v, op, dims)
    n, c, h, w = v._shape
    y = v._empty((n, c, oh, ow), v.dtype)
    idx = v._empty((n, c, oh, ow), v.dtype) if is_max else y
    _launch("adaptive_pool_fwd", y, idx, v, *v._strides, c, h, w, oh, ow, int(is_max))
    return y, (idx if is_max else None), v._shape, unbatched


def adaptive_pool_backward(grad, idx, in_shape):
    g = grad.contiguous()
    n, c, h, w = in_shape
    oh, ow = g._shape[2:]
    return _launch("adaptive_pool_bwd", g._empty(in_shape, g.dtype), g, g if idx is None else idx, c, h, w, oh, ow,
                   int(idx is not None))


restore = _restore
