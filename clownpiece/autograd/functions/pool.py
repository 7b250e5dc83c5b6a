"""Gradients of pooling (clownpiece/ops/pool.py, kernels in cl_kernels/pool.cl). Each forward keeps only the
window geometry (and, for max pooling, the positions the maxima came from). The functions work on the 4-d
view of the input and hand back the input's own shape (unbatched and 1-D inputs)."""
from ...ops import pool as _pool
from ..formula import Op
from ..methods import differentiable, register


@differentiable()
class MaxPool(Op):
    materialize_grads = False  # the indices output gets no gradient
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, x, kernel_size=1, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False,
                dims=2, op="max_pool2d"):
        y, idx, win, unbatched = _pool.max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, dims, op)
        ctx.save_for_backward(idx)
        ctx.win, ctx.shape = win, x._shape
        y = _pool.restore(y, unbatched, dims)
        return (y, _pool.restore(idx, unbatched, dims)) if return_indices else y

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        idx, = ctx.get_saved_tensors()
        if grad is None:
            return None
        win = ctx.win
        return _pool.max_pool_backward(grad.reshape(win.out_shape), idx, win).reshape(ctx.shape)


@differentiable()
class AvgPool(Op):
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, x, kernel_size=1, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None, dims=2, op="avg_pool2d"):
        y, win, unbatched, mode = _pool.avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                                 divisor_override, dims, op)
        ctx.win, ctx.mode, ctx.shape = win, mode, x._shape
        return _pool.restore(y, unbatched, dims)

    @staticmethod
    def backward(ctx, grad):
        win = ctx.win
        return _pool.avg_pool_backward(grad.reshape(win.out_shape), win, ctx.mode).reshape(ctx.shape)


@differentiable()
class AdaptivePool(Op):
    materialize_grads = False
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, x, output_size=1, is_max=False, return_indices=False, dims=2, op="adaptive_avg_pool2d"):
        y, idx, in_shape, unbatched = _pool.adaptive_pool(x, output_size, is_max, dims, op)
        ctx.save_for_backward(*([idx] if idx is not None else []))
        ctx.in_shape, ctx.out_shape, ctx.shape = in_shape, y._shape, x._shape
        y = _pool.restore(y, unbatched, dims)
        return (y, _pool.restore(idx, unbatched, dims)) if return_indices else y

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        saved = ctx.get_saved_tensors()
        if grad is None:
            return None
        dx = _pool.adaptive_pool_backward(grad.reshape(ctx.out_shape), saved[0] if saved else None, ctx.in_shape)
        return dx.reshape(ctx.shape)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, dims=2,
             op="max_pool2d"):
    return MaxPool.record(x, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                          ceil_mode=ceil_mode, return_indices=return_indices, dims=dims, op=op)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None,
             dims=2, op="avg_pool2d"):
    return AvgPool.record(x, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                          count_include_pad=count_include_pad, divisor_override=divisor_override, dims=dims, op=op)


def adaptive_pool(x, output_size, is_max, return_indices=False, dims=2, op="adaptive_avg_pool2d"):
    return AdaptivePool.record(x, output_size=output_size, is_max=is_max, return_indices=return_indices, dims=dims,
                               op=op)


# Tensor.max_pool2d / avg_pool2d (beyond PyTorch; the course-era tests use them) record through the same entries
register("max_pool2d", max_pool)
register("avg_pool2d", avg_pool)
