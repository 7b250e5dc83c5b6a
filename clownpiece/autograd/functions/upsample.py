"""Gradient of resampling (clownpiece/ops/upsample.py, kernels in cl_kernels/upsample.cl): the forward keeps
only the plan (sizes and scales)."""
from ...ops import upsample as _up
from ..formula import Op
from ..methods import differentiable


@differentiable()
class Upsample(Op):
    half_in_float32 = "same"

    @staticmethod
    def forward(ctx, x, plan=None):
        ctx.plan, ctx.shape = plan, x._shape
        return _up.upsample(x, plan)

    @staticmethod
    def backward(ctx, grad):
        return _up.upsample_backward(grad, ctx.plan, ctx.shape)


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
    plan = _up.Plan(x, size, scale_factor, mode, align_corners, recompute_scale_factor)
    return Upsample.record(x, plan=plan)
