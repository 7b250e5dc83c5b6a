"""Gradients of the indexing, gathering and joining ops (clownpiece/ops/index.py), and the differentiable
module-level stack, cat and broadcast."""
from __future__ import annotations

from typing import Sequence, Union

from ..._layout import normalize_dim
from ..._tensor import TensorBase
from ...backend import dtypes as _dtypes
from ...ops import elementwise as _ew, index as _index_ops, indexing as _indexing
from ..autograd import zeros
from ..formula import Op, Row
from ..methods import differentiable, recording
from .shape import _into_zeros


def _subscript_grad(grad, self_shape, idx):
    """x[idx]: basic indices (ints, slices, None, Ellipsis) give views, so the gradient is zeros with grad
    written into the same view; index tensors, lists and masks gather, and the gradient is grad added back
    at the positions gathered (index_put_ with accumulate: positions named several times add up)."""
    if isinstance(idx, TensorBase) and idx.dtype is not _dtypes.bool_:
        k, rest = idx._numel, self_shape[1:]
        return zeros(self_shape, grad.dtype).index_add_(0, idx.reshape(k), grad.reshape((k,) + rest))
    z = zeros(self_shape, grad.dtype)
    parsed = _indexing.parse(z, idx, "__getitem__")
    if not parsed.advanced:
        return _into_zeros(grad, self_shape, lambda z: z[idx])
    _index_ops.IndexOps._put(z, parsed, grad, True, "__getitem__")
    return z


GRADIENTS = [
    # Function        Tensor methods            gradient of each input
    Row("Subscriptor", "__getitem__ take_rows", self=_subscript_grad),
    Row("IndexSelect", "index_select",
        self=lambda grad, self_shape, dim, index: zeros(self_shape, grad.dtype).index_add_(dim, index, grad)),
    Row("Gather",      "gather",
        self=lambda grad, self_shape, dim, index: zeros(self_shape, grad.dtype).scatter_add_(dim, index, grad)),
    # x.masked_fill(mask, value): x's gradient is grad where the mask is 0; a tensor value gets the rest
    Row("MaskedFill",  "masked_fill",           broadcasts=True,
        self=lambda grad, mask: _ew.where(mask, 0.0, grad), value=lambda grad, mask: _ew.where(mask, grad, 0.0)),
]


# ---- joining: the tensors are positional inputs (one gradient edge each), dim a keyword -------------------
@differentiable()
class Stack(Op):
    """stack(tensors, dim): the gradient of each input is its slice of grad along the new dim."""

    @staticmethod
    def forward(ctx, *tensors, dim=0):
        ctx.dim = dim
        return _index_ops.stack(list(tensors), dim)

    @staticmethod
    def backward(ctx, g):
        return g.unbind(ctx.dim)


@differentiable()
class Cat(Op):
    @staticmethod
    def forward(ctx, *tensors, dim=0):
        ctx.dim = dim
        ctx.sizes = [t._shape[normalize_dim(dim, t.dim(), "cat")] if t._shape else 0 for t in tensors]
        return _index_ops.cat(list(tensors), dim)

    @staticmethod
    def backward(ctx, g):
        return g.split(ctx.sizes, ctx.dim)


@differentiable()
class Broadcast(Op):
    """broadcast(tensors) / broadcast_tensors(*tensors): views at the common shape; each gradient is summed
    back to its input's shape."""
    materialize_grads = False

    @staticmethod
    def forward(ctx, *tensors):
        ctx.shapes = [t._shape for t in tensors]
        return tuple(_index_ops.broadcast_tensors(*tensors))

    @staticmethod
    def backward(ctx, *grads):
        return tuple(None if g is None else g.sum_to(s) for g, s in zip(grads, ctx.shapes))


def stack(tensors: Sequence[TensorBase], dim: int = 0) -> TensorBase:
    """Stack equal-shaped tensors along a new dim (a copy); differentiable."""
    if recording(tensors):
        return Stack.record(*tensors, dim=dim)
    return _index_ops.stack(tensors, dim)


def cat(tensors: Sequence[TensorBase], dim: int = 0) -> TensorBase:
    """Concatenate along an existing dim (a copy); differentiable."""
    if recording(tensors):
        return Cat.record(*tensors, dim=dim)
    return _index_ops.cat(tensors, dim)


def broadcast_tensors(*tensors: Union[TensorBase, Sequence[TensorBase]]) -> tuple[TensorBase, ...]:
    """Views of the tensors at their common broadcast shape: broadcast_tensors(a, b) or ([a, b])."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if recording(tensors):
        return Broadcast.record(*tensors)
    return _index_ops.broadcast_tensors(*tensors)


def broadcast(tensors: Sequence[TensorBase]) -> list[TensorBase]:
    """The course's name: a list of views at the common broadcast shape."""
    return list(broadcast_tensors(*tensors))
