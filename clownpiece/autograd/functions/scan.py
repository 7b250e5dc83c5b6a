"""Gradients of cumsum, cumprod and prod (clownpiece/ops/scan.py). cumprod's and prod's do not divide by
the input, so zeros in it get their exact gradient (PyTorch's results)."""
from ..._layout import normalize_dim
from ..autograd import zeros
from ..formula import Row


def _prod_grad(grad, x, dim, keepdim):
    """d prod / dx_t = the product of the others: cumprod's gradient for an output gradient that is zero
    except at the last position of each line, where it is grad."""
    if dim is None:
        line, d = x.reshape(-1), 0
        g = grad.reshape(1)
    elif x.dim() == 0:
        return grad.clone()
    else:
        line, d = x, normalize_dim(dim, x.dim())
        g = grad if keepdim else grad.unsqueeze(d)
    n = line._shape[d]
    if n == 0:
        return zeros(x._shape, x.dtype)
    full = zeros(line._shape, x.dtype)
    full.narrow(d, n - 1, 1)._assign_from(g)
    return full._cumprod_grad(line, d).reshape(x._shape)


GRADIENTS = [
    # Function      Tensor methods  gradient of each input
    Row("Cumsum",   "cumsum",       self=lambda grad, dim, self_dtype: grad._cumsum_reverse(dim).to(self_dtype)),
    Row("Cumprod",  "cumprod",      self=lambda grad, self, dim: grad.to(self.dtype)._cumprod_grad(self, dim)),
    Row("Prod",     "prod",
        self=lambda grad, self, dim, keepdim: _prod_grad(grad.to(self.dtype), self, dim, keepdim)),
]
