"""Gradients of the view and shape ops (clownpiece/ops/shape.py). Views' gradients are views too (no
launch) where they can be; taking part of a tensor (narrow, select) writes the gradient into zeros."""
from ...ops import index as _index_ops
from ...ops.shape import permutation_order
from ..autograd import zeros
from ..formula import Op, Row
from ..methods import differentiable


def _inverse_permutation(perm, ndim):
    """The permutation that undoes x.permute(*perm), partial permutations included."""
    order = permutation_order(perm, ndim)
    return tuple(sorted(range(ndim), key=order.__getitem__))


def _into_zeros(grad, shape, region):
    """Zeros of `shape` with grad written into the view `region(zeros)`: the gradient of taking a view."""
    z = zeros(shape, grad.dtype)
    region(z)._assign_from(grad)
    return z


GRADIENTS = [
    # Function           Tensor methods   gradient of each input
    Row("Clone",         "clone",         self=lambda grad: grad),
    Row("Contiguous",    "contiguous",    self=lambda grad: grad),
    # dtype and device conversions: the gradient goes back in the input's dtype, to its device
    Row("To",            "to",            self=lambda grad, self_dtype, self_device: grad.to(self_device,
                                                                                             self_dtype)),
    Row("Float",         "float",         self=lambda grad, self_dtype: grad.to(self_dtype)),
    Row("Double",        "double",        self=lambda grad, self_dtype: grad.to(self_dtype)),
    Row("Permute",       "permute",
        self=lambda grad, self_shape, perm: grad.permute(_inverse_permutation(perm, len(self_shape)))),
    Row("Transpose",     "transpose",     self=lambda grad, dim0, dim1: grad.transpose(dim0, dim1)),
    Row("FullTranspose", "T",             self=lambda grad: grad.T),  # reverses all dims: its own inverse
    Row("MatrixTranspose", "mT",          self=lambda grad: grad.mT),
    # ops that only regroup elements: the gradient is reshaped back (a view when grad is contiguous)
    Row("Reshape",       "reshape",       self=lambda grad, self_shape: grad.reshape(self_shape)),
    Row("View",          "view",          self=lambda grad, self_shape: grad.reshape(self_shape)),
    Row("Flatten",       "flatten",       self=lambda grad, self_shape: grad.reshape(self_shape)),
    Row("Squeeze",       "squeeze",       self=lambda grad, self_shape: grad.reshape(self_shape)),
    Row("Unsqueeze",     "unsqueeze",     self=lambda grad, self_shape: grad.reshape(self_shape)),
    # broadcasting views: the gradient sums over the expanded dims
    Row("BroadcastTo",   "broadcast_to",  self=lambda grad, self_shape: grad.sum_to(self_shape)),
    Row("Expand",        "expand",        self=lambda grad, self_shape: grad.sum_to(self_shape)),
    Row("ExpandAs",      "expand_as",     self=lambda grad, self_shape: grad.sum_to(self_shape)),
    Row("Narrow",        "narrow",
        self=lambda grad, self_shape, dim, start, length: _into_zeros(grad, self_shape,
                                                                      lambda z: z.narrow(dim, start, length))),
    Row("Select",        "select",
        self=lambda grad, self_shape, dim, index: _into_zeros(grad, self_shape, lambda z: z.select(dim, index))),
]


# ---- ops returning several views: the gradient puts the pieces' gradients back together ------------------
class _Pieces(Op):
    """Views of consecutive pieces along a dim: the gradient is the pieces' gradients concatenated back
    (zeros for pieces that got none)."""

    @staticmethod
    def backward(ctx, *grads):
        return _index_ops.cat(list(grads), ctx.dim)


@differentiable("split")
class Split(_Pieces):
    @staticmethod
    def forward(ctx, x, split_size_or_sections, dim=0):
        ctx.dim = dim
        return x.split(split_size_or_sections, dim)


@differentiable("chunk")
class Chunk(_Pieces):
    @staticmethod
    def forward(ctx, x, chunks, dim=0):
        ctx.dim = dim
        return x.chunk(chunks, dim)


@differentiable("unbind")
class Unbind(Op):
    @staticmethod
    def forward(ctx, x, dim=0):
        ctx.dim = dim
        return x.unbind(dim)

    @staticmethod
    def backward(ctx, *grads):
        return _index_ops.stack(list(grads), ctx.dim)
