"""Function (a recorded op and its graph node), Context, and one Function class per differentiable op.

`SomeFn.apply(*args, **kwargs)` (or, as in the course, `SomeFn().apply(...)`) runs the static `forward`
under no_grad and, when grad mode is on and a positional Tensor argument requires grad, makes the instance
the `grad_fn` of the outputs. Each positional argument gets an edge (keyword arguments never do), so
`backward` returns one gradient per positional argument, None where there is nothing to differentiate.

Backward formulas use raw ops that each run as one kernel (the engine runs them with grad mode off), in
as few launches as the kernels allow: view grads are views, reductions broadcast back without copying,
and fused gradient kernels (relu_grad, tanh_grad, softmax_grad, ...) replace chains of elementwise ops.
At the bottom, `install_differentiable` makes every Tensor method record through its Function."""
import math

from .. import _grad_mode, tensor as _tensor
from .._layout import normalize_dim, numel
from ..ops import elementwise as _ew, index as _index_ops
from ..tensor import Tensor, TensorBase
from .autograd import Node, Edge, AccumulateGrad  # noqa: F401  (AccumulateGrad is part of this module's API)

_NO_EDGE = Edge(0, None)

_FREED = ("Trying to backward through the graph a second time (or to read saved tensors after they were "
          "freed): {name}'s saved tensors were freed by the first backward. Pass retain_graph=True to the "
          "first backward() to keep them.")


class Context:
    """What forward leaves for backward: tensors through save_for_backward, anything else as attributes.
    `needs_input_grad[i]` says whether positional input i requires grad."""
    needs_input_grad = ()  # class-level defaults: _record makes one Context per recorded op
    _freed = False

    def __init__(self):
        self.saved_tensors = []

    def save_for_backward(self, *values):
        """Keep the tensor arguments (others are dropped) as shallow copies: they share storage but not
        grad_fn, so an output saved by its own Function does not form a reference cycle."""
        self.saved_tensors = [_shallow(v) for v in values if isinstance(v, TensorBase)]

    def get_saved_tensors(self):
        if self._freed:
            raise RuntimeError(_FREED.format(name="this Function"))
        return self.saved_tensors

    def _free(self):
        if self.saved_tensors:
            self.saved_tensors = []
            self._freed = True


def _is_one_of(x, values):
    """`x` is (by identity) one of `values` (not `in`: tensors compare elementwise)."""
    for v in values:
        if v is x:
            return True
    return False


def _shallow(t):
    return (Tensor if isinstance(t, Tensor) else type(t))._make(t._storage, t._shape, t._strides, t._offset,
                                                               t.dtype)


class _Apply:
    """`Fn().apply(...)` records with that instance (the course's form); `Fn.apply(...)` makes a fresh
    instance per call (PyTorch's form)."""

    def __get__(self, instance, owner):
        if instance is not None:
            return instance._record
        return lambda *args, **kwargs: owner()._record(*args, **kwargs)


class Function(Node):
    """Subclass with static `forward(ctx, *args, **kwargs)` and `backward(ctx, *grad_outputs)`.

    backward gets one gradient per forward output (zeros for outputs that received none, unless the class
    sets `materialize_grads = False`, in which case they are None) and returns one gradient per positional
    forward input (None for non-tensors and inputs without a gradient); a bare value is fine for one input."""
    apply = _Apply()
    materialize_grads = True
    _pad_grads = False  # built-in ops: backward returns the leading gradients, the rest are None

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError

    def _record(self, *args, **kwargs):
        needs = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
        ctx = Context()
        ctx.needs_input_grad = needs
        enabled = _grad_mode.enabled
        grad_on = enabled[0]
        enabled[0] = False
        try:
            out = self.forward(ctx, *args, **kwargs)
        finally:
            enabled[0] = grad_on
        if not grad_on or True not in needs:
            return out
        if "ctx" in self.__dict__:
            raise RuntimeError(f"{self.name()}: a Function instance is one graph node; apply it once "
                               f"(use {self.name()}.apply(...) for a fresh one each call)")
        self.ctx = ctx
        edges, meta = [], []
        for a, n in zip(args, needs):
            if n:
                edges.append(Edge.gradient_edge(a))
                meta.append((a._shape, a.dtype))
            else:
                edges.append(_NO_EDGE)
                meta.append(None)
        self.next_edges = edges
        self._input_meta = meta
        self._output_meta = []
        if isinstance(out, (tuple, list)):
            outs = [self._mark(o, i, args) for i, o in enumerate(out)]
            self.num_inputs = len(outs)
            return tuple(outs) if isinstance(out, tuple) else outs
        self.num_inputs = 1
        return self._mark(out, 0, args)

    def _mark(self, out, output_nr, args):
        """Make `out` the output_nr-th output of this node (and remember its shape for zero grads)."""
        if not isinstance(out, Tensor):
            self._output_meta.append(None)
            return out
        if out.requires_grad or out.grad_fn is not None or _is_one_of(out, args):
            out = _shallow(out)  # forward returned an input (e.g. contiguous()): mark a new object
        out.grad_fn = self
        out.output_nr = output_nr
        out.requires_grad = True
        self._output_meta.append((out._shape, out.dtype))
        return out

    def run(self, grads, retain_graph):
        """Engine entry: the gradients of the outputs in, one checked gradient per input out."""
        ctx = self.ctx
        if ctx._freed:
            raise RuntimeError(_FREED.format(name=self.name()))
        n = len(self.next_edges)
        missing = 0  # a plain loop: `None in grads` would call Tensor.__eq__
        for g in grads:
            if g is None:
                missing += 1
        if missing == len(grads):
            result = (None,) * n
        else:
            if missing and self.materialize_grads:
                grads = [_zeros(m[0], m[1]) if g is None and m is not None else g
                         for g, m in zip(grads, self._output_meta)]
            result = self.backward(ctx, *grads)
            result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
            if len(result) < n and self._pad_grads:
                result += (None,) * (n - len(result))
            if len(result) != n:
                raise RuntimeError(f"{self.name()}.backward returned {len(result)} gradients but forward took "
                                   f"{n} positional inputs; return one per input (None where there is none)")
            result = tuple([self._checked(i, g) for i, g in enumerate(result)])
        if not retain_graph:
            ctx._free()
        return result

    def _checked(self, i, g):
        meta = self._input_meta[i]
        if g is None or meta is None:
            return None
        if not isinstance(g, TensorBase):
            raise TypeError(f"{self.name()}.backward returned a {type(g).__name__} for input {i}; expected a "
                            f"tensor or None")
        shape, dtype = meta
        if g._shape != shape:
            raise RuntimeError(f"{self.name()}.backward returned a gradient of shape {g.shape} for input {i} "
                               f"of shape {list(shape)}")
        return g if g.dtype == dtype else g.to(dtype)


class _Op(Function):
    """Base of the built-in ops."""
    _pad_grads = True


def _zeros(shape, dtype):
    return Tensor._empty(shape, dtype)._assign_from(0.0)


def _reduce_to(g, shape):
    """The gradient of broadcasting an input of `shape` up to g's shape."""
    return g if g._shape == shape else g.sum_to(shape)


def _shape_of(x):
    return x._shape if isinstance(x, TensorBase) else ()


def _keep(keepdims, keepdim):
    return bool(keepdims if keepdim is None else keepdim)


def _kept_shape(shape, dim):
    """Input shape with the reduced dims set to 1 (dim: None/[] = all, an int, or a list)."""
    if dim is None or (isinstance(dim, (list, tuple)) and not dim):
        return (1,) * len(shape)
    dims = dim if isinstance(dim, (list, tuple)) else (dim,)
    nd = len(shape)
    if nd == 0:
        return ()
    dims = {normalize_dim(d, nd) for d in dims}
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _unreduce(g, shape, dim):
    """Broadcast a reduction's gradient back to the input shape (a view)."""
    kept = _kept_shape(shape, dim)
    if g._shape != kept:
        g = g.reshape(kept)
    return g.broadcast_to(shape)


# ---- identity-like and unary math ----------------------------------------------------------------------
class Clone(_Op):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g


class Contiguous(_Op):
    @staticmethod
    def forward(ctx, x):
        return x.contiguous()

    @staticmethod
    def backward(ctx, g):
        return g


class Neg(_Op):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, g):
        return -g


class Sign(_Op):
    """Piecewise constant: the gradient is zero (PyTorch's rule; the course's too)."""
    _method = "sign"

    @classmethod
    def forward(cls, ctx, x):
        ctx.shape, ctx.dtype = x._shape, x.dtype
        return getattr(x, cls._method)()

    @staticmethod
    def backward(ctx, g):
        return _zeros(ctx.shape, ctx.dtype)


class Floor(Sign):
    _method = "floor"


class Round(Sign):
    _method = "round"


class _UnaryWithGradKernel(_Op):
    """y = x.<_method>(); the gradient is one fused kernel, g.<_grad>(saved), where saved is the output
    (`_saves_output`) or the input."""
    _saves_output = False

    @classmethod
    def forward(cls, ctx, x):
        y = getattr(x, cls._method)()
        ctx.save_for_backward(y if cls._saves_output else x)
        ctx.grad = cls._grad
        return y

    @staticmethod
    def backward(ctx, g):
        saved, = ctx.saved_tensors
        return getattr(g, ctx.grad)(saved)


class Abs(_UnaryWithGradKernel):
    _method, _grad = "abs", "sign_mul"  # g * sign(x), 0 at 0


class Tanh(_UnaryWithGradKernel):
    _method, _grad, _saves_output = "tanh", "tanh_grad", True


class Sigmoid(_UnaryWithGradKernel):
    _method, _grad, _saves_output = "sigmoid", "sigmoid_grad", True


class Relu(_UnaryWithGradKernel):
    _method, _grad = "relu", "relu_grad"


class Gelu(_UnaryWithGradKernel):
    _method, _grad = "gelu", "gelu_grad"


class Sin(_Op):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * x.cos()


class Cos(_Op):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.cos()

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * (-x).sin()


class LeakyRelu(_Op):
    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.save_for_backward(x)
        ctx.slope = negative_slope
        return x.leaky_relu(negative_slope)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g.leaky_relu_grad(x, ctx.slope)


class Clamp(_Op):
    """Gradient passes where min < x < max strictly (the course's rule; PyTorch includes the bounds)."""

    @staticmethod
    def forward(ctx, x, min_val=None, max_val=None, *, min=None, max=None):
        ctx.lo = min if min_val is None else min_val
        ctx.hi = max if max_val is None else max_val
        ctx.save_for_backward(x)
        return x.clamp(ctx.lo, ctx.hi)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g.clamp_grad(x, ctx.lo, ctx.hi)


class Log(_Op):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.log()

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g / x


class Exp(_Op):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        return g * y


class Sqrt(_Op):
    @staticmethod
    def forward(ctx, x):
        y = x.sqrt()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        return (g / y).affine(0.5)


class Affine(_Op):
    @staticmethod
    def forward(ctx, x, scale, shift=0.0):
        ctx.scale = scale
        return x.affine(scale, shift)

    @staticmethod
    def backward(ctx, g):
        return g.affine(ctx.scale)


class To(_Op):
    """Dtype conversion (to/float/double): the gradient goes back in the input's dtype."""

    @staticmethod
    def forward(ctx, x, *args, **kwargs):
        ctx.dtype = x.dtype
        return x.to(*args, **kwargs)

    @staticmethod
    def backward(ctx, g):
        return g.to(ctx.dtype)


class Float(To):
    @staticmethod
    def forward(ctx, x):
        ctx.dtype = x.dtype
        return x.float()


class Double(To):
    @staticmethod
    def forward(ctx, x):
        ctx.dtype = x.dtype
        return x.double()


# ---- binary arithmetic (either operand may be a Python number; gradients reduced to each shape) --------
def _is_tensor(x):
    return isinstance(x, TensorBase)


class Add(_Op):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = _shape_of(a), _shape_of(b)
        return a + b

    @staticmethod
    def backward(ctx, g):
        ga, gb = ctx.needs_input_grad
        return (_reduce_to(g, ctx.shapes[0]) if ga else None, _reduce_to(g, ctx.shapes[1]) if gb else None)


class Sub(_Op):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = _shape_of(a), _shape_of(b)
        return a - b

    @staticmethod
    def backward(ctx, g):
        ga, gb = ctx.needs_input_grad
        return (_reduce_to(g, ctx.shapes[0]) if ga else None, _reduce_to(-g, ctx.shapes[1]) if gb else None)


class Mul(_Op):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        ctx.scalars = (None if _is_tensor(a) else a, None if _is_tensor(b) else b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        saved = iter(ctx.saved_tensors)
        a, b = (next(saved) if s is None else s for s in ctx.scalars)
        ga, gb = ctx.needs_input_grad
        return (_reduce_to(g * b, a._shape) if ga else None, _reduce_to(g * a, b._shape) if gb else None)


class Div(_Op):
    @staticmethod
    def forward(ctx, a, b):
        y = a / b
        ctx.a_shape = _shape_of(a)
        ctx.b_scalar = None if _is_tensor(b) else b
        ctx.save_for_backward(b, y)
        return y

    @staticmethod
    def backward(ctx, g):
        ga, gb = ctx.needs_input_grad
        if ctx.b_scalar is not None:
            return _reduce_to(g * (1.0 / ctx.b_scalar), ctx.a_shape)
        b, y = ctx.saved_tensors
        g_over_b = g / b
        grad_b = _reduce_to(-(g_over_b * y), b._shape) if gb else None  # d(a/b)/db = -(a/b)/b
        return (_reduce_to(g_over_b, ctx.a_shape) if ga else None, grad_b)


class Pow(_Op):
    """x ** e for a number or tensor exponent, and number ** tensor (the reflected form)."""

    @staticmethod
    def forward(ctx, x, e):
        y = x.pow(e) if _is_tensor(x) else x ** e
        ctx.scalars = (None if _is_tensor(x) else x, None if _is_tensor(e) else e)
        ctx.save_for_backward(x, e, y)
        return y

    @staticmethod
    def backward(ctx, g):
        saved = iter(ctx.saved_tensors)
        x, e = (next(saved) if s is None else s for s in ctx.scalars)
        y, = saved
        gx_needed, ge_needed = ctx.needs_input_grad
        gx = ge = None
        if gx_needed:
            if _is_tensor(e):
                gx = _reduce_to(g * e * x.pow(e - 1.0), x._shape)
            elif e == 2:
                gx = g * x.affine(2.0)
            else:
                gx = g * x.pow(e - 1).affine(e)
        if ge_needed:
            log_x = x.log() if _is_tensor(x) else math.log(x)
            ge = _reduce_to(g * y * log_x, e._shape)
        return gx, ge


class MaskedFill(_Op):
    """x.masked_fill(mask, value): x's gradient is g where the mask is 0; a tensor value gets the rest."""

    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        ctx.value_shape = _shape_of(value)
        return x.masked_fill(mask, value)

    @staticmethod
    def backward(ctx, g):
        mask, = ctx.saved_tensors
        need_x, _, need_value = ctx.needs_input_grad
        return (_ew.where(mask, 0.0, g) if need_x else None, None,
                _reduce_to(_ew.where(mask, g, 0.0), ctx.value_shape) if need_value else None)


class Maximum(_Op):
    """Ties split the gradient evenly between the two inputs (as PyTorch does)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.maximum(b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _split_by_weight(g, (a - b).sign().affine(0.5, 0.5), a._shape, b._shape, ctx.needs_input_grad)


class Minimum(_Op):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a.minimum(b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return _split_by_weight(g, (b - a).sign().affine(0.5, 0.5), a._shape, b._shape, ctx.needs_input_grad)


def _split_by_weight(g, weight_a, a_shape, b_shape, needs):
    ga = g * weight_a
    return (_reduce_to(ga, a_shape) if needs[0] else None, _reduce_to(g - ga, b_shape) if needs[1] else None)


class Where(_Op):
    """where(condition, a, b): the condition gets no gradient; a and b may be numbers."""

    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        ctx.shapes = _shape_of(a), _shape_of(b)
        return _ew.where(condition, a, b)

    @staticmethod
    def backward(ctx, g):
        cond, = ctx.saved_tensors
        _, ga, gb = ctx.needs_input_grad
        return (None, _reduce_to(_ew.where(cond, g, 0.0), ctx.shapes[0]) if ga else None,
                _reduce_to(_ew.where(cond, 0.0, g), ctx.shapes[1]) if gb else None)


# ---- matrix products ---------------------------------------------------------------------------------
class MatMul(_Op):
    """torch.matmul rules. 1-D operands are padded to matrices ([n] -> [1, n] on the left, [n, 1] on the
    right), the products run on the padded forms, and the padding is undone; batch dims an operand was
    broadcast along are summed away. Subclasses only change the forward method (its shape checks)."""
    _method = "matmul"

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return getattr(a, cls._method)(b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        a2 = a.unsqueeze(0) if a.dim() == 1 else a
        b2 = b.unsqueeze(-1) if b.dim() == 1 else b
        g2 = g.unsqueeze(-1) if b.dim() == 1 else g
        g2 = g2.unsqueeze(-2) if a.dim() == 1 else g2
        need_a, need_b = ctx.needs_input_grad
        ga = _reduce_to(g2.matmul(b2.mT), a2._shape).reshape(a._shape) if need_a else None
        gb = _reduce_to(a2.mT.matmul(g2), b2._shape).reshape(b._shape) if need_b else None
        return ga, gb


class Mm(MatMul):
    _method = "mm"


class Bmm(MatMul):
    _method = "bmm"


class Dot(MatMul):
    _method = "dot"


class Linear(_Op):
    """x @ weight.T + bias (weight [out, in]); weight's gradient is one product over all batch rows."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        return x.linear(weight, bias)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        need_b = len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]
        n_out, n_in = w._shape
        g2 = g.reshape(-1, n_out)
        gx = g.matmul(w) if need_x else None
        gw = g2.mT.matmul(x.reshape(-1, n_in)) if need_w else None
        gb = g2.sum(0) if need_b else None
        return (gx, gw, gb)[:len(ctx.needs_input_grad)]


# ---- reductions --------------------------------------------------------------------------------------
class Sum(_Op):
    @staticmethod
    def forward(ctx, x, dim=None, keepdims=False, *, keepdim=None):
        ctx.shape, ctx.dim = x._shape, dim
        return x.sum(dim, _keep(keepdims, keepdim))

    @staticmethod
    def backward(ctx, g):
        return _unreduce(g, ctx.shape, ctx.dim)


class Mean(_Op):
    @staticmethod
    def forward(ctx, x, dim=None, keepdims=False, *, keepdim=None):
        ctx.shape, ctx.dim = x._shape, dim
        return x.mean(dim, _keep(keepdims, keepdim))

    @staticmethod
    def backward(ctx, g):
        n = numel(ctx.shape) // max(numel(_kept_shape(ctx.shape, ctx.dim)), 1)
        return _unreduce(g.affine(1.0 / n) if n else g, ctx.shape, ctx.dim)


class Var(_Op):
    """d var / dx = 2 (x - mean) / (n - 1) (or / n when biased)."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdims=False, unbiased=True, *, keepdim=None):
        ctx.dim, ctx.unbiased = dim, unbiased
        ctx.save_for_backward(x)
        return x.var(dim, _keep(keepdims, keepdim), unbiased)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return _var_grad(x, g, ctx.dim, ctx.unbiased)


class Std(_Op):
    """std = sqrt(var): d std = d var / (2 std)."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdims=False, unbiased=True, *, keepdim=None):
        ctx.dim, ctx.unbiased = dim, unbiased
        y = x.std(dim, _keep(keepdims, keepdim), unbiased)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return _var_grad(x, (g / y).affine(0.5), ctx.dim, ctx.unbiased)


def _var_grad(x, g_var, dim, unbiased):
    kept = _kept_shape(x._shape, dim)
    n = x._numel // max(numel(kept), 1)
    centered = x - x.mean(dim, True)
    return centered * g_var.reshape(kept).affine(2.0 / (n - 1 if unbiased else n))


class Max(_Op):
    """(values, indices) along one dim: the gradient goes to the first maximal element (the index the
    forward returned), scattered into zeros of the input's shape."""
    materialize_grads = False
    _kind = "max"

    @classmethod
    def forward(cls, ctx, x, dim=-1, keepdims=False, *, keepdim=None):
        values, indices = getattr(x, cls._kind)(dim, _keep(keepdims, keepdim))
        ctx.shape, ctx.dtype = x._shape, x.dtype
        ctx.dim = -1 if dim is None else (dim[0] if isinstance(dim, (list, tuple)) else dim)
        ctx.save_for_backward(indices)
        return values, indices

    @staticmethod
    def backward(ctx, g_values, g_indices=None):
        indices, = ctx.saved_tensors
        if not ctx.shape:
            return g_values
        return _zeros(ctx.shape, ctx.dtype).scatter_(ctx.dim, indices, g_values)


class Min(Max):
    _kind = "min"


class Amax(_Op):
    """Values only, any dims; ties share the gradient evenly (PyTorch's amax rule)."""
    _kind = "amax"

    @classmethod
    def forward(cls, ctx, x, dim=None, keepdims=False, *, keepdim=None):
        y = getattr(x, cls._kind)(dim, _keep(keepdims, keepdim))
        ctx.dim = dim
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g, *unused):
        x, y = ctx.saved_tensors
        kept = _kept_shape(x._shape, ctx.dim)
        hit = x == y.reshape(kept)
        share = g.reshape(kept) / hit.sum(ctx.dim, True)
        return hit * share


class Amin(Amax):
    _kind = "amin"


class Softmax(_Op):
    """Saves its output; the gradient is one fused row kernel (`softmax_grad` / `log_softmax_grad`)."""
    _method, _grad = "softmax", "softmax_grad"

    @classmethod
    def forward(cls, ctx, x, dim=-1):
        y = getattr(x, cls._method)(dim)
        ctx.dim, ctx.grad = dim, cls._grad
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        y, = ctx.saved_tensors
        return getattr(g, ctx.grad)(y, ctx.dim)


class LogSoftmax(Softmax):
    _method, _grad = "log_softmax", "log_softmax_grad"


class LogSumExp(_Op):
    """d logsumexp / dx = softmax(x) along dim."""

    @staticmethod
    def forward(ctx, x, dim=-1, keepdims=False, *, keepdim=None):
        ctx.dim = dim
        ctx.save_for_backward(x)
        return x.logsumexp(dim, _keep(keepdims, keepdim))

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        if not x._shape:
            return g
        return x.softmax(ctx.dim) * g.reshape(_kept_shape(x._shape, ctx.dim))


# ---- views and shape changes ---------------------------------------------------------------------------
def _dims_vararg(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else tuple(args)


class Permute(_Op):
    @staticmethod
    def forward(ctx, x, *perm):
        y = x.permute(*perm)
        # the order actually applied (the course allows partial permutations), to invert it exactly
        dims = [normalize_dim(p, x.dim(), "permute") for p in _dims_vararg(perm)]
        order = list(range(x.dim()))
        for slot, d in zip(sorted(dims), dims):
            order[slot] = d
        ctx.inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
        return y

    @staticmethod
    def backward(ctx, g):
        return g.permute(ctx.inverse)


class Transpose(_Op):
    @staticmethod
    def forward(ctx, x, dim0=-2, dim1=-1):
        ctx.dims = dim0, dim1
        return x.transpose(dim0, dim1)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(*ctx.dims)


class FullTranspose(_Op):
    """x.T reverses all dims (its own inverse)."""

    @staticmethod
    def forward(ctx, x):
        return x.T

    @staticmethod
    def backward(ctx, g):
        return g.T


class MatrixTranspose(_Op):
    @staticmethod
    def forward(ctx, x):
        return x.mT

    @staticmethod
    def backward(ctx, g):
        return g.mT


class _BackToInputShape(_Op):
    """Ops that only regroup elements: the gradient is reshaped back (a view when g is contiguous)."""

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape)


class Reshape(_BackToInputShape):
    @staticmethod
    def forward(ctx, x, *shape):
        ctx.shape = x._shape
        return x.reshape(*shape)


class View(_BackToInputShape):
    @staticmethod
    def forward(ctx, x, *shape):
        ctx.shape = x._shape
        return x.view(*shape)


class Flatten(_BackToInputShape):
    @staticmethod
    def forward(ctx, x, start_dim=0, end_dim=-1):
        ctx.shape = x._shape
        return x.flatten(start_dim, end_dim)


class Squeeze(_BackToInputShape):
    @staticmethod
    def forward(ctx, x, dim=0):
        ctx.shape = x._shape
        return x.squeeze(dim)


class Unsqueeze(_BackToInputShape):
    @staticmethod
    def forward(ctx, x, dim=0):
        ctx.shape = x._shape
        return x.unsqueeze(dim)


class BroadcastTo(_Op):
    @staticmethod
    def forward(ctx, x, *shape):
        ctx.shape = x._shape
        return x.broadcast_to(*shape)

    @staticmethod
    def backward(ctx, g):
        return g.sum_to(ctx.shape)


class Expand(BroadcastTo):
    pass


class SumTo(_Op):
    @staticmethod
    def forward(ctx, x, *shape):
        ctx.shape = x._shape
        return x.sum_to(*shape)

    @staticmethod
    def backward(ctx, g):
        return g.broadcast_to(ctx.shape)


class ExpandAs(_Op):
    @staticmethod
    def forward(ctx, x, other):
        ctx.shape = x._shape
        return x.expand_as(other)

    @staticmethod
    def backward(ctx, g):
        return g.sum_to(ctx.shape), None


class Broadcast(_Op):
    """broadcast(tensors) / broadcast_tensors(*tensors): views at the common shape; each gradient is summed
    back to its input's shape. Inputs are passed positionally, so each gets an edge."""
    materialize_grads = False

    @staticmethod
    def forward(ctx, *tensors):
        ctx.shapes = [t._shape for t in tensors]
        return tuple(_index_ops.broadcast_tensors(*tensors))

    @staticmethod
    def backward(ctx, *grads):
        return tuple(None if g is None else g.sum_to(s) for g, s in zip(grads, ctx.shapes))


def _write_into_zeros(shape, dtype, region, g):
    """Zeros of `shape` with g written into the view `region(zeros)`: the gradient of taking a view."""
    z = _zeros(shape, dtype)
    region(z)._assign_from(g)
    return z


class Narrow(_Op):
    @staticmethod
    def forward(ctx, x, dim, start, length):
        ctx.shape, ctx.dtype, ctx.args = x._shape, x.dtype, (dim, start, length)
        return x.narrow(dim, start, length)

    @staticmethod
    def backward(ctx, g):
        return _write_into_zeros(ctx.shape, ctx.dtype, lambda z: z.narrow(*ctx.args), g)


class Select(_Op):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.shape, ctx.dtype, ctx.args = x._shape, x.dtype, (dim, index)
        return x.select(dim, index)

    @staticmethod
    def backward(ctx, g):
        return _write_into_zeros(ctx.shape, ctx.dtype, lambda z: z.select(*ctx.args), g)


class Subscriptor(_Op):
    """x[index]. Basic indices (ints, slices, None, Ellipsis) give views: the gradient is zeros with g
    written into the same view. A tensor index gathers rows: rows named several times accumulate."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype = x._shape, x.dtype
        ctx.index = None if isinstance(index, TensorBase) else index
        ctx.save_for_backward(index)
        return x[index]

    @staticmethod
    def backward(ctx, g):
        if ctx.index is not None:
            return _write_into_zeros(ctx.shape, ctx.dtype, lambda z: z[ctx.index], g)
        ids, = ctx.saved_tensors
        k, rest = ids._numel, ctx.shape[1:]
        return _zeros(ctx.shape, ctx.dtype).index_add_(0, ids.reshape(k), g.reshape((k,) + rest))


class IndexSelect(_Op):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.shape, ctx.dtype, ctx.dim = x._shape, x.dtype, dim
        ctx.save_for_backward(index)
        return x.index_select(dim, index)

    @staticmethod
    def backward(ctx, g):
        index, = ctx.saved_tensors
        return _zeros(ctx.shape, ctx.dtype).index_add_(ctx.dim, index, g)


class Gather(_Op):
    @staticmethod
    def forward(ctx, x, dim, index):
        ctx.shape, ctx.dtype, ctx.dim = x._shape, x.dtype, dim
        ctx.save_for_backward(index)
        return x.gather(dim, index)

    @staticmethod
    def backward(ctx, g):
        index, = ctx.saved_tensors
        return _zeros(ctx.shape, ctx.dtype).scatter_add_(ctx.dim, index, g)


class _Pieces(_Op):
    """Ops returning views of consecutive pieces along a dim: the gradient is the pieces' gradients
    concatenated back (zeros for pieces that got none)."""

    @staticmethod
    def backward(ctx, *grads):
        return _index_ops.cat(list(grads), ctx.dim)


class Split(_Pieces):
    @staticmethod
    def forward(ctx, x, split_size_or_sections, dim=0):
        ctx.dim = dim
        return x.split(split_size_or_sections, dim)


class Chunk(_Pieces):
    @staticmethod
    def forward(ctx, x, chunks, dim=0):
        ctx.dim = dim
        return x.chunk(chunks, dim)


class Unbind(_Op):
    @staticmethod
    def forward(ctx, x, dim=0):
        ctx.dim = dim
        return x.unbind(dim)

    @staticmethod
    def backward(ctx, *grads):
        return _index_ops.stack(list(grads), ctx.dim)


class Stack(_Op):
    """stack(tensors, dim): tensors are passed positionally (one edge each), dim as a keyword."""

    @staticmethod
    def forward(ctx, *tensors, dim=0):
        ctx.dim = dim
        return _index_ops.stack(list(tensors), dim)

    @staticmethod
    def backward(ctx, g):
        return g.unbind(ctx.dim)


class Cat(_Op):
    @staticmethod
    def forward(ctx, *tensors, dim=0):
        ctx.dim = dim
        ctx.sizes = [t._shape[normalize_dim(dim, t.dim(), "cat")] if t._shape else 0 for t in tensors]
        return _index_ops.cat(list(tensors), dim)

    @staticmethod
    def backward(ctx, g):
        return g.split(ctx.sizes, ctx.dim)


# ---- module-level differentiable functions --------------------------------------------------------------
def _recording(args):
    return _grad_mode.enabled[0] and _tensor._needs_grad(args)


def stack(tensors, dim=0):
    """Stack equal-shaped tensors along a new dim (a copy); differentiable."""
    if _recording(tensors):
        return Stack.apply(*tensors, dim=dim)
    return _index_ops.stack(tensors, dim)


def cat(tensors, dim=0):
    """Concatenate along an existing dim (a copy); differentiable."""
    if _recording(tensors):
        return Cat.apply(*tensors, dim=dim)
    return _index_ops.cat(tensors, dim)


def broadcast_tensors(*tensors):
    """Views of the tensors at their common broadcast shape: broadcast_tensors(a, b) or ([a, b])."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if _recording(tensors):
        return Broadcast.apply(*tensors)
    return _index_ops.broadcast_tensors(*tensors)


def broadcast(tensors):
    """The course's name: a list of views at the common broadcast shape."""
    return list(broadcast_tensors(*tensors))


def where(condition, a, b):
    """Elementwise `a if condition != 0 else b` (a and b tensors or numbers, all broadcast)."""
    if _recording((condition, a, b)):
        return Where.apply(condition, a, b)
    return _ew.where(condition, a, b)


# ---- Tensor methods that record ---------------------------------------------------------------------------
class _Rearranged:
    """Records `fn` with the method's arguments reordered: reflected operators (`2 - t` calls
    t.__rsub__(2), which must record Sub(2, t)) and Tensor.where(condition, other)."""

    def __init__(self, fn, order):
        self.fn, self.order = fn, order

    def apply(self, *args, **kwargs):
        return self.fn.apply(*(args[i] for i in self.order), **kwargs)


def _reflected(fn):
    return _Rearranged(fn, (1, 0))


DIFFERENTIABLE = {
    "clone": Clone, "contiguous": Contiguous, "__getitem__": Subscriptor,
    "__neg__": Neg, "neg": Neg, "sign": Sign, "floor": Floor, "round": Round, "abs": Abs, "__abs__": Abs, "sin": Sin, "cos": Cos,
    "tanh": Tanh, "sigmoid": Sigmoid, "relu": Relu, "leaky_relu": LeakyRelu, "gelu": Gelu,
    "clamp": Clamp, "clip": Clamp, "log": Log, "exp": Exp, "sqrt": Sqrt, "affine": Affine,
    "pow": Pow, "__pow__": Pow, "__rpow__": _reflected(Pow),
    "to": To, "float": Float, "double": Double,
    "__add__": Add, "__radd__": _reflected(Add), "add": Add,
    "__sub__": Sub, "__rsub__": _reflected(Sub), "sub": Sub,
    "__mul__": Mul, "__rmul__": _reflected(Mul), "mul": Mul,
    "__truediv__": Div, "__rtruediv__": _reflected(Div), "div": Div,
    "maximum": Maximum, "minimum": Minimum, "masked_fill": MaskedFill, "where": _Rearranged(Where, (1, 0, 2)),
    "matmul": MatMul, "__matmul__": MatMul, "__rmatmul__": _reflected(MatMul), "dot": Dot,
    "mm": Mm, "bmm": Bmm, "linear": Linear,
    "sum": Sum, "mean": Mean, "var": Var, "std": Std, "max": Max, "min": Min, "amax": Amax, "amin": Amin,
    "softmax": Softmax, "log_softmax": LogSoftmax, "logsumexp": LogSumExp,
    "permute": Permute, "transpose": Transpose, "T": FullTranspose, "mT": MatrixTranspose,
    "reshape": Reshape, "view": View, "flatten": Flatten, "squeeze": Squeeze, "unsqueeze": Unsqueeze,
    "broadcast_to": BroadcastTo, "expand": Expand, "sum_to": SumTo, "expand_as": ExpandAs,
    "narrow": Narrow, "select": Select, "split": Split, "chunk": Chunk, "unbind": Unbind,
    "index_select": IndexSelect, "gather": Gather, "take_rows": Subscriptor,
}

_uninstalled = _tensor.install_differentiable(DIFFERENTIABLE)  # names TensorBase lacks (a test checks)
