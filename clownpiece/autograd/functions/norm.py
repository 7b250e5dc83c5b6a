"""Gradients of the channel and group normalisations (clownpiece/ops/norm.py, kernels in cl_kernels/norm.cl):
classes, because each forward keeps its statistics for the backward. The entry functions are what
nn.functional calls: tensor inputs positional (one gradient edge each, None for an absent weight or bias),
running buffers and hyper-parameters as keywords (state, never differentiated)."""
from ...ops import norm as _norm
from ..formula import Op
from ..methods import differentiable


def _needs_affine(ctx):
    need = ctx.needs_input_grad
    return not need or any(need[1:3])


@differentiable()
class BatchNorm(Op):
    half_in_float32 = "mixed"

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean=None, running_var=None, training=False, momentum=0.1, eps=1e-5,
                num_batches_tracked=None, unbiased=True):
        y, mean, rstd, xc = _norm.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps,
                                             num_batches_tracked, unbiased)
        ctx.save_for_backward(xc, mean, rstd, *([weight] if weight is not None else []))
        ctx.training, ctx.has_bias = training, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        xc, mean, rstd, *weight = ctx.get_saved_tensors()
        weight = weight[0] if weight else None
        dx, dw, db = _norm.batch_norm_backward(grad, xc, mean, rstd, weight, ctx.training, _needs_affine(ctx))
        return dx, dw if weight is not None else None, db if ctx.has_bias else None


@differentiable()
class GroupNorm(Op):
    half_in_float32 = "mixed"

    @staticmethod
    def forward(ctx, x, weight, bias, num_groups=1, eps=1e-5):
        y, mean, rstd, xc = _norm.group_norm(x, num_groups, weight, bias, eps)
        ctx.save_for_backward(xc, mean, rstd, *([weight] if weight is not None else []))
        ctx.num_groups, ctx.has_bias = num_groups, bias is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        xc, mean, rstd, *weight = ctx.get_saved_tensors()
        weight = weight[0] if weight else None
        dx, dw, db = _norm.group_norm_backward(grad, xc, mean, rstd, weight, ctx.num_groups, _needs_affine(ctx))
        return dx, dw if weight is not None else None, db if ctx.has_bias else None


@differentiable()
class RMSNorm(Op):
    half_in_float32 = "mixed"

    @staticmethod
    def forward(ctx, x, weight, normalized_shape=None, eps=None):
        y, rrms, rows = _norm.rms_norm(x, normalized_shape, weight, eps)
        ctx.save_for_backward(rows, rrms, *([weight] if weight is not None else []))
        ctx.shape = x._shape
        return y

    @staticmethod
    def backward(ctx, grad):
        rows, rrms, *weight = ctx.get_saved_tensors()
        weight = weight[0] if weight else None
        need = ctx.needs_input_grad
        dx, dw = _norm.rms_norm_backward(grad, rows, rrms, weight, weight is not None and (not need or need[1]))
        return dx.view(ctx.shape), None if dw is None else dw.view(weight._shape)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5,
               num_batches_tracked=None, unbiased=True):
    return BatchNorm.record(x, weight, bias, running_mean=running_mean, running_var=running_var,
                            training=training, momentum=momentum, eps=eps, num_batches_tracked=num_batches_tracked,
                            unbiased=unbiased)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    return GroupNorm.record(x, weight, bias, num_groups=num_groups, eps=eps)


def rms_norm(x, normalized_shape, weight=None, eps=None):
    return RMSNorm.record(x, weight, normalized_shape=normalized_shape, eps=eps)
