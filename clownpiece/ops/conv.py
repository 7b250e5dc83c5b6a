"""Raw ops of convolution and padding (kernels in cl_kernels/conv.cl): conv2d with groups, dilation and
asymmetric zero padding, its transpose, and F.pad's modes on the last two dims. Module-level functions of
tensors; autograd/functions/conv.py records them. 1-D convolutions are these with a height of 1.

A convolution is im2col (one launch) + one batched GEMM over the groups (matmul.cl) + one launch that lays
the product out as NCHW and adds the bias; its transpose is a GEMM + col2im with the bias folded in. A
direct kernel (one output per work-item) was measured against im2col on PoCL (2-core CI machine, float32,
3x3, padding 1, forward only): N=20 1->8 channels 28x28: im2col 2.3 ms, direct 1.7 ms; 8->16 14x14: 2.2 vs
3.4 ms; N=64 16->32 14x14: 13 vs 44 ms, so im2col is the one path."""
import numbers

from .. import backend
from .._layout import ShapeError, is_int
from ..backend.dtypes import DTypeMismatchError, require_float


def pair(v, name, op):
    """An int or a pair of ints (height, width), as PyTorch's kernel_size/stride/padding/dilation."""
    if is_int(v):
        v = (v, v)
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(is_int(e) for e in v)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return int(v[0]), int(v[1])


class Geometry:
    """A window sliding over an [N, C, H, W] image in G groups: kernel, stride, dilation, padding
    (top, bottom, left, right) and the output plane OH x OW."""

    def __init__(self, shape, groups, kernel, stride, dilation, padding, op, plane=None):
        self.n, self.c, self.h, self.w = shape
        self.g = groups
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        self.dh, self.dw = dilation
        self.pt, self.pb, self.pl, self.pr = padding
        if min(self.kh, self.kw, self.sh, self.sw, self.dh, self.dw) <= 0:
            raise ValueError(f"{op}: kernel_size {kernel}, stride {stride} and dilation {dilation} must be positive")
        if min(padding) < 0:
            raise ValueError(f"{op}: padding {padding} must be non-negative")
        self.oh = (self.h + self.pt + self.pb - self.dh * (self.kh - 1) - 1) // self.sh + 1
        self.ow = (self.w + self.pl + self.pr - self.dw * (self.kw - 1) - 1) // self.sw + 1
        if plane is not None:  # a transposed convolution's input plane
            self.oh, self.ow = plane
        if self.oh <= 0 or self.ow <= 0:
            raise ShapeError(f"{op}: kernel {kernel} (dilation {dilation}) with padding {padding} does not fit "
                             f"the input of shape {list(shape)}")

    def args(self):
        return (self.c, self.h, self.w, self.g, self.kh, self.kw, self.oh, self.ow, self.sh, self.sw, self.pt,
                self.pl, self.dh, self.dw)

    @property
    def rows(self):
        return self.n * self.oh * self.ow

    @property
    def ckk(self):
        return self.c // self.g * self.kh * self.kw


def _launch(name, out, *args):
    backend.launch(backend.kernel("conv", name, out.dtype), out._numel, out, *args, out._numel)
    return out


def im2col(x, geo):
    """[G, Cg*KH*KW, N*OH*OW] columns of the (possibly strided) image x."""
    cols = x._empty((geo.g, geo.ckk, geo.rows), x.dtype)
    runs = geo.g * geo.ckk * geo.n * geo.oh  # one work-item per output row run
    if runs and geo.ow:
        backend.launch(backend.kernel("conv", "im2col", x.dtype), runs, cols, x, *x._strides, geo.n, *geo.args(),
                       runs)
    return cols


def col2im(cols, geo, bias=None):
    """The [N, C, H, W] image whose im2col is summed from `cols` [G, Cg*KH*KW, N*OH*OW] (+ bias[c])."""
    cols = cols.contiguous()
    out = cols._empty((geo.n, geo.c, geo.h, geo.w), cols.dtype)
    backend.launch(backend.kernel("conv", "col2im", cols.dtype), (geo.h * geo.w, geo.n * geo.c), out, cols,
                   cols if bias is None else bias.contiguous(), int(bias is not None), geo.n, *geo.args())
    return out


def rows_to_image(prod, n, oh, ow, bias=None):
    """A GEMM result [G, OCg, N*OH*OW] (contiguous) as [N, G*OCg, OH, OW], + bias."""
    g, ocg, _ = prod._shape
    y = prod._empty((n, g * ocg, oh, ow), prod.dtype)
    backend.launch(backend.kernel("conv", "conv_output", prod.dtype), (oh * ow, n * g * ocg), y, prod,
                   prod if bias is None else bias.contiguous(), int(bias is not None), n, g * ocg, oh * ow)
    return y


def image_to_rows(x, groups):
    """[N, C, H, W] as the contiguous [G, C/G, N*H*W] GEMM operand (one launch)."""
    n, c, h, w = x._shape
    if h * w > 1 and x._strides[2] != w * x._strides[3] and h > 1 and w > 1:
        x = x.contiguous()  # (h, w) must be one run of positions
    rows = x._empty((groups, c // groups, n * h * w), x.dtype)
    backend.launch(backend.kernel("conv", "image_to_rows", x.dtype), (h * w, n * c), rows, x, x._strides[0],
                   x._strides[1], x._strides[3] if w > 1 else x._strides[2], n, c, h * w)
    return rows


def _check_operands(x, weight, bias, groups, op, transposed):
    for t, name in ((x, "input"), (weight, "weight")):
        if not hasattr(t, "_storage"):
            raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
    if bias is not None and not hasattr(bias, "_storage"):
        raise TypeError(f"{op}: bias must be a tensor or None, got {type(bias).__name__}")
    # before require_float: a float16 input with a float32 weight comes here as it is (ops/half.py) for this error
    for t, name in ((weight, "weight"), (bias, "bias")):
        if t is not None and t.dtype != x.dtype:
            raise DTypeMismatchError(f"{op}: expected input ({x.dtype}) and {name} ({t.dtype}) to have the same "
                                     f"dtype")
    require_float(x, op)
    if x.dim() != 4:
        raise ShapeError(f"{op}: expected a 4-d [N, C, H, W] input, got shape {x.shape}")
    if weight.dim() != 4:
        layout = "[in_channels, out_channels/groups, kH, kW]" if transposed else \
            "[out_channels, in_channels/groups, kH, kW]"
        raise ShapeError(f"{op}: weight must be {layout}, got {weight.shape}")
    if not isinstance(groups, numbers.Integral) or groups <= 0:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    c = x._shape[1]
    a, b = weight._shape[:2]
    if transposed:
        if a != c or c % groups:
            raise ShapeError(f"{op}: input {x.shape} has {c} channels; weight {weight.shape} expects {a}, and "
                             f"channels must be divisible by groups={groups}")
        out_channels = b * groups
    else:
        if c % groups or a % groups or b * groups != c:
            raise ShapeError(f"{op}: input {x.shape} has {c} channels but weight {weight.shape} expects "
                             f"{b * groups} ({b} per group, groups={groups}); out_channels {a} must be divisible "
                             f"by groups")
        out_channels = a
    if bias is not None and bias._shape != (out_channels,):
        raise ShapeError(f"{op}: bias must have shape [{out_channels}], got {bias.shape}")
    return out_channels


def conv_padding(padding, kernel, dilation, stride, op):
    """(top, bottom, left, right) for an int/pair or 'valid'/'same' (PyTorch: 'same' puts the odd one of an
    even total at the bottom/right and needs stride 1)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                                 f"(stride {stride}), as in PyTorch")
            th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = pair(padding, "padding", op)
    return ph, ph, pw, pw


def conv2d(x, weight, bias, stride, padding, dilation, groups):
    """(y, geometry) of the cross-correlation of x [N, C, H, W] with weight [OC, C/groups, KH, KW]."""
    op = "conv2d"
    _check_operands(x, weight, bias, groups, op, transposed=False)
    stride, dilation = pair(stride, "stride", op), pair(dilation, "dilation", op)
    pads = conv_padding(padding, weight._shape[2:], dilation, stride, op)
    geo = Geometry(x._shape, groups, weight._shape[2:], stride, dilation, pads, op)
    w = weight.reshape(groups, weight._shape[0] // groups, geo.ckk)  # [G, OCg, Cg*KH*KW]
    return rows_to_image(w.matmul(im2col(x, geo)), geo.n, geo.oh, geo.ow, bias), geo


def conv2d_backward(grad, x, weight, geo, need_x, need_w, need_b):
    g = geo.g
    g_rows = image_to_rows(grad, g)  # [G, OCg, N*OH*OW]
    w = weight.reshape(g, weight._shape[0] // g, geo.ckk)
    dx = col2im(w.mT.matmul(g_rows), geo) if need_x else None
    dw = g_rows.matmul(im2col(x, geo).mT).reshape(weight._shape) if need_w else None
    db = grad.sum([0, 2, 3]) if need_b else None
    return dx, dw, db


def conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation):
    """(y, geometry) of the transposed convolution of x [N, C, H, W] with weight [C, OC/groups, KH, KW]: the
    gradient of conv2d with respect to its input, output size (H-1)*s - 2p + d(k-1) + output_padding + 1."""
    op = "conv_transpose2d"
    oc = _check_operands(x, weight, bias, groups, op, transposed=True)
    stride, dilation = pair(stride, "stride", op), pair(dilation, "dilation", op)
    (ph, pw), (oph, opw) = pair(padding, "padding", op), pair(output_padding, "output_padding", op)
    if not (0 <= oph < max(stride[0], dilation[0]) and 0 <= opw < max(stride[1], dilation[1])):
        raise ValueError(f"{op}: output_padding {(oph, opw)} must be non-negative and smaller than stride "
                         f"{stride} or dilation {dilation}")
    n, c, h, w = x._shape
    kh, kw = weight._shape[2:]
    out_h = (h - 1) * stride[0] - 2 * ph + dilation[0] * (kh - 1) + oph + 1
    out_w = (w - 1) * stride[1] - 2 * pw + dilation[1] * (kw - 1) + opw + 1
    if out_h <= 0 or out_w <= 0 or min(ph, pw) < 0:
        raise ShapeError(f"{op}: input {x.shape}, kernel {(kh, kw)}, stride {stride}, padding {(ph, pw)}: the "
                         f"output size {(out_h, out_w)} must be positive")
    # the convolution whose input gradient this is: image [N, OC, out_h, out_w] -> plane h x w
    geo = Geometry((n, oc, out_h, out_w), groups, (kh, kw), stride, dilation, (ph, ph, pw, pw), op, plane=(h, w))
    w2 = weight.reshape(groups, c // groups, geo.ckk)  # [G, Cg, OCg*KH*KW]
    return col2im(w2.mT.matmul(image_to_rows(x, groups)), geo, bias), geo


def conv_transpose2d_backward(grad, x, weight, geo, need_x, need_w, need_b):
    g = geo.g
    n, c, h, w = x._shape
    cols = im2col(grad, geo)  # [G, OCg*KH*KW, N*h*w]
    w2 = weight.reshape(g, c // g, geo.ckk)
    dx = rows_to_image(w2.matmul(cols), n, h, w) if need_x else None
    dw = image_to_rows(x, g).matmul(cols.mT).reshape(weight._shape) if need_w else None
    db = grad.sum([0, 2, 3]) if need_b else None
    return dx, dw, db


# ---- padding ----------------------------------------------------------------------------------------------
PAD_MODES = {"constant": 0, "reflect": 1, "replicate": 2, "circular": 3}


def pad_spec(x, pad, mode, op="pad"):
    """(left, right, top, bottom) from PyTorch's pad tuple (last dim first), checked against the mode."""
    check_pad(x, pad, mode, op, most=4)
    left, right, top, bottom = (list(pad) + [0, 0])[:4]
    return int(left), int(right), int(top), int(bottom)


def check_pad(x, pad, mode, op="pad", most=None):
    """Raise unless `pad` (PyTorch's tuple: (front, back) pairs, last dim first) fits x and the mode: the
    non-constant modes pad at most the last 3 dims, reflect less than the size, circular at most the size."""
    if mode not in PAD_MODES:
        raise ValueError(f"{op}: mode must be one of {sorted(PAD_MODES)}, got {mode!r}")
    most = most or (2 * x.dim() if mode == "constant" else 6)
    if (not isinstance(pad, (list, tuple)) or not pad or len(pad) % 2 or len(pad) > most
            or len(pad) // 2 > x.dim()
            or not all(is_int(p) for p in pad)):
        raise ValueError(f"{op}: pad must be a list of an even number of ints (2 or 4 for the last one or two "
                         f"dims, last dim first; at most {most} here, mode {mode!r}) for an input of {x.dim()} "
                         f"dims, got {pad!r}")
    for j in range(len(pad) // 2):
        dim = -1 - j
        size = x._shape[dim]
        for p in pad[2 * j:2 * j + 2]:
            if mode != "constant" and p < 0:
                raise ValueError(f"{op}: negative padding {pad} needs mode='constant'")
            if mode == "reflect" and p >= size and p > 0:
                raise ValueError(f"{op}: reflect padding {p} must be smaller than the input size {size} of dim "
                                 f"{dim}")
            if mode == "circular" and p > size:
                raise ValueError(f"{op}: circular padding {p} must be at most the input size {size} of dim {dim}")
            if mode == "replicate" and size == 0 and p > 0:
                raise ValueError(f"{op}: cannot replicate an empty dim {dim}")
        if size + pad[2 * j] + pad[2 * j + 1] < 0:
            raise ShapeError(f"{op}: padding {pad} of input {x.shape} gives a negative size")


def pad2d(x, spec, mode, value):
    """x padded on its last (two) dims: spec = (left, right, top, bottom)."""
    left, right, top, bottom = spec
    require_float(x, "pad")
    h = x._shape[-2] if x.dim() >= 2 else 1
    w = x._shape[-1]
    lead = x._shape[:-2] if x.dim() >= 2 else ()
    oh, ow = h + top + bottom, w + left + right
    xc = x.contiguous()
    out_shape = (lead + (oh, ow)) if x.dim() >= 2 else (ow,)
    y = x._empty(out_shape, x.dtype)
    if y._numel:
        _launch("pad2d", y, xc, h, w, top, left, oh, ow, PAD_MODES[mode], float(value))
    return y


def pad2d_backward(grad, in_shape, spec, mode):
    left, right, top, bottom = spec
    h = in_shape[-2] if len(in_shape) >= 2 else 1
    w = in_shape[-1]
    g = grad.contiguous()
    dx = g._empty(in_shape, g.dtype)
    if dx._numel:
        _launch("pad2d_backward", dx, g, h, w, top, left, h + top + bottom, w + left + right, PAD_MODES[mode])
    return dx


def check_value(value, op="pad"):
    if value is None:
        return 0.0
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: value must be a number, got {type(value).__name__}")
    return float(value)


