"""Gradients of the in-place ops (clownpiece/ops/inplace.py and the in-place writes of shape.py, index.py and
random.py), recorded by autograd/inplace.py: each row's node becomes the grad_fn of the tensor it wrote.

The rows read like their out-of-place twins, except that `self` is the target's value before the write (a
copy is kept only when a needed formula takes it) and `result` its value after. Ops that overwrite the
target (fill_, zero_, copy_, the random fills) give it a zero gradient; t[idx] = v and index_put_ zero it
where they wrote."""
from ...ops import elementwise as _ew
from ..autograd import zeros
from ..formula import Row
from ..inplace import InplaceFormula
from .elementwise import _either, _pow_grad_base, _pow_grad_exponent, _scaled, _zero


def _inplace(name, methods, **formulas):
    return Row(name, methods, kind=InplaceFormula, **formulas)


def _index(indices):
    """index_put_'s tuple of index tensors as a subscript."""
    return indices[0] if len(indices) == 1 else tuple(indices)


def _zero_at(grad, idx):
    """grad with the elements that t[idx] = ... overwrote set to zero."""
    g = grad.clone()
    g[idx] = 0.0
    return g


def _gathered(grad, dim, index, src_shape):
    """The gradient of a scatter's src: grad where index sends each source (zero for sources of a
    same-rank src larger than index, which are not scattered), in src's form."""
    if index.dim() == grad.dim() - 1:  # the course's form: index and src lack the dim
        return grad.gather(dim, index.unsqueeze(dim)).squeeze(dim)
    g = grad.gather(dim, index)
    if g._shape == tuple(src_shape):
        return g
    z = zeros(src_shape, g.dtype)
    z[tuple(slice(0, s) for s in g._shape)] = g
    return z


def _unscattered(grad, dim, index):
    """grad with the positions scatter_ overwrote set to zero."""
    return grad.clone().scatter_(dim, index, 0.0)


GRADIENTS = [
    # Function         Tensor methods     gradient of each input (self: before the write, result: after)
    _inplace("AddInplace",  "add_",        broadcasts=True,
             self=lambda grad: grad, other=lambda grad, alpha: _scaled(grad, alpha)),
    _inplace("SubInplace",  "sub_",        broadcasts=True,
             self=lambda grad: grad, other=lambda grad, alpha: _scaled(-grad, alpha)),
    _inplace("MulInplace",  "mul_",        broadcasts=True,
             self=lambda grad, other: grad * other, other=lambda grad, self: grad * self),
    _inplace("DivInplace",  "div_",        broadcasts=True,
             self=lambda grad, other: grad / other, other=lambda grad, other, result: -(grad / other) * result),
    _inplace("PowInplace",  "pow_",        broadcasts=True, self=_pow_grad_base, exponent=_pow_grad_exponent),
    _inplace("NegInplace",  "neg_",        self=lambda grad: -grad),
    # min < self < max exactly where min < result < max: the result is enough for the course's rule
    _inplace("ClampInplace", "clamp_ clip_",
             self=lambda grad, result, min_val, max_val, min, max: grad.clamp_grad(
                 result, _either(min_val, min), _either(max_val, max))),
    _inplace("ExpInplace",  "exp_",        self=lambda grad, result: grad * result),
    _inplace("LogInplace",  "log_",        self=lambda grad, self: grad / self),
    _inplace("SqrtInplace", "sqrt_",       self=lambda grad, result: (grad / result).affine(0.5)),
    _inplace("AbsInplace",  "abs_",        self=lambda grad, self: grad.sign_mul(self)),
    _inplace("ReluInplace", "relu_",       self=lambda grad, result: grad.relu_grad(result)),
    _inplace("MaskedFillInplace", "masked_fill_", broadcasts=True,
             self=lambda grad, mask: _ew.where(mask, 0.0, grad), value=lambda grad, mask: _ew.where(mask, grad, 0.0)),
    # overwrites: the old value gets no gradient, a tensor source gets all of it (summed to its shape)
    _inplace("FillInplace", "fill_",       broadcasts=True, self=_zero, value=lambda grad: grad),
    _inplace("ZeroInplace", "zero_",       self=_zero),
    _inplace("CopyInplace", "copy_",       broadcasts=True, self=_zero, src=lambda grad: grad),
    _inplace("UniformInplace", "uniform_", self=_zero),
    _inplace("NormalInplace", "normal_",   self=_zero),
    _inplace("BernoulliInplace", "bernoulli_", self=_zero),
    _inplace("ScatterInplace", "scatter_",
             self=lambda grad, dim, index: _unscattered(grad, dim, index),
             src=lambda grad, dim, index, src_shape: _gathered(grad, dim, index, src_shape)),
    _inplace("ScatterAddInplace", "scatter_add_",
             self=lambda grad: grad, src=lambda grad, dim, index, src_shape: _gathered(grad, dim, index, src_shape)),
    _inplace("IndexAddInplace", "index_add_",
             self=lambda grad: grad, src=lambda grad, dim, index, alpha: _scaled(grad.index_select(dim, index), alpha)),
    _inplace("SetItem",     "__setitem__", broadcasts=True,
             self=lambda grad, idx: _zero_at(grad, idx), value=lambda grad, idx: grad[idx]),
    _inplace("IndexPut",    "index_put_",  broadcasts=True,
             self=lambda grad, indices, accumulate: grad if accumulate else _zero_at(grad, _index(indices)),
             values=lambda grad, indices: grad[_index(indices)]),
]
