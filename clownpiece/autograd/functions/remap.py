"""Gradients of flip, roll, repeat, repeat_interleave, tril and triu (clownpiece/ops/remap.py). Each moves
the gradient back by the inverse rule: flip and roll by themselves, repeats by summing the copies."""
from ...ops.shape import _shape_arg
from ..formula import Row


def _repeat_grad(grad, shape, sizes):
    """Sum the sizes[d] copies along each dim: grad viewed as (r0, s0, r1, s1, ...) summed over the r's."""
    sizes = _shape_arg(sizes, "repeat")
    full = (1,) * (len(sizes) - len(shape)) + tuple(shape)
    split = [x for r, s in zip(sizes, full) for x in (r, s)]
    g = grad.reshape(split).sum(list(range(0, len(split), 2))) if split else grad
    return g.reshape(shape)


def _interleave_grad(grad, shape, dim, repeats):
    """Sum each element's `repeats` copies: dim viewed as (size, repeats)."""
    split = tuple(shape[:dim]) + (shape[dim], repeats) + tuple(shape[dim + 1:])
    return grad.reshape(split).sum(dim + 1)


def _roll_back(grad, shifts, dims):
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    return grad.roll(tuple(-s for s in shifts), dims)


GRADIENTS = [
    # Function            Tensor methods  gradient of each input
    Row("Flip",           "flip",         self=lambda grad, dims: grad.flip(*dims)),
    Row("Roll",           "roll",         self=lambda grad, shifts, dims: _roll_back(grad, shifts, dims)),
    Row("Repeat",         "repeat",       self=lambda grad, self_shape, sizes: _repeat_grad(grad, self_shape, sizes)),
    Row("RepeatInterleave", "_interleave",
        self=lambda grad, self_shape, dim, repeats: _interleave_grad(grad, self_shape, dim, repeats)),
    Row("Tril",           "tril",         self=lambda grad, diagonal: grad.tril(diagonal)),
    Row("Triu",           "triu",         self=lambda grad, diagonal: grad.triu(diagonal)),
]
