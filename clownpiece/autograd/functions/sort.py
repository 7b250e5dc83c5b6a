"""Gradients of sort and topk (clownpiece/ops/sort.py): the values' gradient goes back to the positions the
indices name (one kernel, sort.cl's sort_grad); argsort and msort are built on sort."""
from ..._layout import normalize_dim
from ...ops.sort import SortResult, TopkResult
from ..formula import Op
from ..methods import differentiable


class _Sorted(Op):
    """(values, indices) with the gradient of values scattered back through indices."""
    materialize_grads = False
    _result = SortResult

    @classmethod
    def record(cls, *args, **kwargs):
        return cls._result(*cls()._record(*args, **kwargs))

    @staticmethod
    def _keep(ctx, x, dim, indices):
        ctx.dim = dim
        ctx.size = x._shape[normalize_dim(dim, x.dim())] if x._shape else 1
        ctx.save_for_backward(indices)

    @staticmethod
    def backward(ctx, g_values, g_indices=None):
        if g_values is None:
            return None
        indices, = ctx.saved_tensors
        return g_values._sort_grad(indices, ctx.dim, ctx.size)


@differentiable("sort")
class Sort(_Sorted):
    @staticmethod
    def forward(ctx, x, dim=-1, descending=False, stable=False):
        values, indices = x.sort(dim, descending, stable)
        _Sorted._keep(ctx, x, dim, indices)
        return values, indices


@differentiable("topk")
class Topk(_Sorted):
    _result = TopkResult

    @staticmethod
    def forward(ctx, x, k, dim=-1, largest=True, sorted=True):
        values, indices = x.topk(k, dim, largest, sorted)
        _Sorted._keep(ctx, x, dim, indices)
        return values, indices
