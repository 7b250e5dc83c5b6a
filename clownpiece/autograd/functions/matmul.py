"""Gradients of the matrix products (the MatmulOps raw ops, kernels in cl_kernels/matmul.cl)."""
from ..formula import Op, Row, _reduce_to
from ..methods import differentiable


# torch.matmul rules: 1-D operands are padded to matrices ([n] -> [1, n] on the left, [n, 1] on the right),
# the products run on the padded forms and the padding is undone; batch dims an operand was broadcast along
# are summed away.
def _padded(grad, a, b):
    a_vector, b_vector = len(a._shape) == 1, len(b._shape) == 1
    a2 = a.unsqueeze(0) if a_vector else a
    b2 = b.unsqueeze(-1) if b_vector else b
    g2 = grad.unsqueeze(-1) if b_vector else grad
    return a2, b2, (g2.unsqueeze(-2) if a_vector else g2)


def _matmul_grad_self(grad, self, other):
    a2, b2, g2 = _padded(grad, self, other)
    return _reduce_to(g2.matmul(b2.mT), a2._shape).reshape(self._shape)


def _matmul_grad_other(grad, self, other):
    a2, b2, g2 = _padded(grad, self, other)
    return _reduce_to(a2.mT.matmul(g2), b2._shape).reshape(other._shape)


GRADIENTS = [
    # Function    Tensor methods                    gradient of each input
    Row("MatMul", "matmul __matmul__ __rmatmul__",  self=_matmul_grad_self, other=_matmul_grad_other),
    Row("Mm",     "mm",                             self=_matmul_grad_self, other=_matmul_grad_other),
    Row("Bmm",    "bmm",                            self=_matmul_grad_self, other=_matmul_grad_other),
    Row("Dot",    "dot",                            self=_matmul_grad_self, other=_matmul_grad_other),
]


@differentiable("linear")
class Linear(Op):
    """x @ weight.T + bias (weight [out, in]): a class because the three gradients share grad's 2-D view;
    weight's gradient is one product over all batch rows."""

    @classmethod
    def record(cls, x, weight, bias=None):
        return cls()._record(x, weight, bias)  # bias positional, so a bias passed by keyword gets its edge

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        return x.linear(weight, bias)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        need_b = len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]  # Linear.apply(x, w) has no bias
        n_out, n_in = w._shape
        g2 = g.reshape(-1, n_out)
        gx = g.matmul(w) if need_x else None
        gw = g2.mT.matmul(x.reshape(-1, n_in)) if need_w else None
        gb = g2.sum(0) if need_b else None
        return (gx, gw, gb)[:len(ctx.needs_input_grad)]
