"""Gradient of the fused layer norm (clownpiece/ops/nn.py, kernels in cl_kernels/nn.cl; the losses:
autograd/functions/loss.py). A class, because the forward keeps intermediates of its private raw op (row
statistics).

The entry functions below are what nn.functional and the Tensor methods of the same names call. They pass
tensor inputs positionally (one gradient edge each, None for an absent optional tensor) and
hyper-parameters as keywords, so every backward returns a fixed number of gradients."""
from __future__ import annotations

from typing import Optional

from ..._tensor import TensorBase
from ..._types import ShapeLike
from ..formula import Op
from ..methods import differentiable, register


@differentiable()
class LayerNorm(Op):
    @staticmethod
    def forward(ctx, x, weight, bias, normalized_shape, eps=1e-5):
        y, mean, rstd, rows, _ = x._layer_norm(normalized_shape, weight, bias, eps)
        ctx.save_for_backward(rows, mean, rstd, *([weight] if weight is not None else []))
        ctx.shape = x._shape
        ctx.affine_shapes = (None if weight is None else weight._shape, None if bias is None else bias._shape)
        return y

    @staticmethod
    def backward(ctx, grad):
        rows, mean, rstd, *weight = ctx.get_saved_tensors()
        weight = weight[0] if weight else None
        w_shape, b_shape = ctx.affine_shapes
        need = ctx.needs_input_grad
        need_affine = not need or (w_shape is not None and need[1]) or (b_shape is not None and need[2])
        dx, dw, db = TensorBase._layer_norm_backward(grad, rows, mean, rstd, weight, need_affine)
        dw = dw.view(w_shape) if dw is not None and w_shape is not None else None
        db = db.view(b_shape) if db is not None and b_shape is not None else None
        return dx.view(ctx.shape), dw, db


def layer_norm(x: TensorBase, normalized_shape: ShapeLike, weight: Optional[TensorBase] = None,
               bias: Optional[TensorBase] = None, eps: float = 1e-5) -> TensorBase:
    return LayerNorm.record(x, weight, bias, normalized_shape=normalized_shape, eps=eps)


# the Tensor methods of the same names record through the same entry points (TensorBase keeps the raw ops)
for _entry in (layer_norm,):
    register(_entry.__name__, _entry)
