"""Gradients of convolution and padding (clownpiece/ops/conv.py, kernels in cl_kernels/conv.cl). The forward
keeps the input and weight (the backward recomputes im2col rather than keeping the columns: 1/(KH*KW) of
the memory). Entry functions pass tensors positionally (one gradient edge each) and hyper-parameters as
keywords."""
from ..._layout import numel
from ...ops import conv as _conv
from ..formula import Op
from ..methods import differentiable


def _needs(ctx, n):
    need = ctx.needs_input_grad
    return tuple(bool(not need or (i < len(need) and need[i])) for i in range(n))


@differentiable()
class Conv2d(Op):
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        y, geo = _conv.conv2d(x, weight, bias, stride, padding, dilation, groups)
        ctx.save_for_backward(x, weight)
        ctx.geo, ctx.has_bias = geo, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.get_saved_tensors()
        need_x, need_w, need_b = _needs(ctx, 3)
        return _conv.conv2d_backward(grad, x, weight, ctx.geo, need_x, need_w, need_b and ctx.has_bias)


@differentiable()
class ConvTranspose2d(Op):
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
        y, geo = _conv.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)
        ctx.save_for_backward(x, weight)
        ctx.geo, ctx.has_bias = geo, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.get_saved_tensors()
        need_x, need_w, need_b = _needs(ctx, 3)
        return _conv.conv_transpose2d_backward(grad, x, weight, ctx.geo, need_x, need_w, need_b and ctx.has_bias)


@differentiable()
class Pad(Op):
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, x, pad=(), mode="constant", value=0.0):
        spec = _conv.pad_spec(x, pad, mode)
        ctx.spec, ctx.mode, ctx.shape = spec, mode, x._shape
        return _conv.pad2d(x, spec, mode, value)

    @staticmethod
    def backward(ctx, grad):
        return _conv.pad2d_backward(grad, ctx.shape, ctx.spec, ctx.mode)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return Conv2d.record(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return ConvTranspose2d.record(x, weight, bias, stride=stride, padding=padding, output_padding=output_padding,
                                  groups=groups, dilation=dilation)


def pad(x, pad, mode="constant", value=None):
    """The last two dims in one Pad; each further (front, back) pair pads its dim as the middle one of an
    [outer, size, inner] view (the modes work dim by dim, so the pieces compose)."""
    value = _conv.check_value(value)
    _conv.check_pad(x, pad, mode)  # every pair, before anything launches
    pad = tuple(int(p) for p in pad)
    out = Pad.record(x, pad=pad[:4], mode=mode, value=value)
    for j in range(2, len(pad) // 2):
        front, back = pad[2 * j:2 * j + 2]
        if front == back == 0:
            continue
        shape, d = out._shape, out.dim() - 1 - j
        view = out.reshape(numel(shape[:d]), shape[d], numel(shape[d + 1:]))
        out = Pad.record(view, pad=(0, 0, front, back), mode=mode, value=value)
        out = out.reshape(shape[:d] + (shape[d] + front + back,) + shape[d + 1:])
    return out
