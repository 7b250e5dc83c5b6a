"""Recording in-place ops (add_, mul_, masked_fill_, t[idx] = v, ...) into the graph, as PyTorch does.

An in-place op on a tensor `t` that is in the graph, or that takes an operand which is, becomes a node like
its out-of-place form: its edges go to the nodes of t's old value and of the operands, and then t itself is
*rebased*: t.grad_fn becomes the new node (t is the op's output). Formulas that need t's old value get a
copy taken before the write; those that need the new one take `result`.

Views (Tensor._base, set by Function._mark) keep gradients right across in-place writes:
- an op on a base bumps the base's `_gen`; each view made before it gets a new grad_fn (autograd.ViewOf,
  from the base's new node) the next time it is used;
- an op on a view rebases the base instead, with a CopySlices node: the base's gradient, whose view
  region goes through the op's backward and the rest straight to the base's old node; the view (and every
  other view of that base) then hangs off the base's new node.

What raises, before anything is written (PyTorch's rules and messages):
- a leaf that requires grad, or a view of one, written in place with grad mode on;
- a tensor that does not require grad, taking an operand that does, while other tensors share its storage
  (views made outside the graph, tensors saved for backward): PyTorch would pull those views into the graph
  too; clownpiece cannot see them, so it refuses instead of letting their gradients silently go missing.
Backward through a tensor that was saved and then overwritten raises in Function.run (version counters)."""
import sys

from .._grad_mode import swap_grad_enabled
from .._tensor import Tensor, TensorBase
from .autograd import Context, Edge, Node, _shallow, refresh_view, region, storage_image
from .formula import Formula


class _Holder:
    __slots__ = ("ref",)


def _one_holder_count():
    """What sys.getrefcount reports for an object that one slot refers to (interpreters differ)."""
    h = _Holder()
    h.ref = object()
    return sys.getrefcount(h.ref)


_ONE_HOLDER = _one_holder_count()


def _shared(t):
    """Whether anything but `t` refers to its storage: another view of it, a tensor saved for backward."""
    t._storage.buf  # pending fused work that reads the storage (and so refers to it) runs first
    return sys.getrefcount(t._storage) > _ONE_HOLDER


def _check_target(t, op):
    if t.requires_grad:
        if t.grad_fn is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place "
                               f"operation. Wrap the write in `with no_grad():` (as optimizers do) or detach() "
                               f"the tensor first")
        base = t._base
        if base is not None and base.grad_fn is None and base.requires_grad:
            raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being used in an "
                               f"in-place operation. Wrap the write in `with no_grad():` or clone() the leaf")
    elif _shared(t):
        raise RuntimeError(f"{op}: an operand requires grad, so the target joins the graph, but the target "
                           f"(shape {t.shape}) does not require grad and shares its storage with other "
                           f"tensors (views taken outside the graph, or tensors saved for backward). PyTorch "
                           f"would make those views part of the graph; clownpiece cannot, so it refuses. Write "
                           f"into a tensor of its own (clone() it, or make it with zeros()) and take views of "
                           f"it after the write")


class InplaceFormula(Formula):
    """A gradient-table row (formula.py) for an in-place op; Row(..., kind=InplaceFormula). The raw op
    returns self; formulas name self's old value `self` and its new one `result`."""

    @classmethod
    def record(cls, *args, **kwargs):
        args, kwargs = cls._positional_inputs(args, kwargs)
        t = args[0]
        needs = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
        if True not in needs:  # e.g. only an index tensor requires grad: nothing to differentiate
            return cls._op(*args, **kwargs)
        op = cls._op.__name__
        _check_target(t, op)
        node = cls()
        ctx = Context()
        ctx.needs_input_grad = needs
        node._connect(args, needs)  # before the write: t's grad_fn is still its old value's
        grad_on = swap_grad_enabled(False)
        try:
            cls.forward(ctx, *args, **kwargs)
        finally:
            swap_grad_enabled(grad_on)
        node.ctx = ctx
        node.num_inputs = 1
        node._output_meta = [(t._shape, t.dtype)]
        _rebase(t, node)
        return t

    @classmethod
    def forward(cls, ctx, *args, **kwargs):
        keeps = cls._keeps_for.get(ctx.needs_input_grad)
        if keeps is None:
            keeps = cls._plan_keeps(ctx.needs_input_grad)
        t = args[0]
        kept_args = args
        for key, pos, name, default, get, attr in keeps:
            # the old value of self, and of an operand that reads self's storage, is copied before the write
            if attr is None and get is None and pos < len(args):
                a = args[pos]
                if isinstance(a, TensorBase) and (pos == 0 or a._storage is t._storage):
                    if kept_args is args:
                        kept_args = list(args)
                    kept_args[pos] = a.clone()
        cls._op(*args, **kwargs)
        cls._keep_values(ctx, keeps, kept_args, kwargs, t)
        return t


def _rebase(t, node):
    """Make `node` the grad_fn of t's new value (through CopySlices on its base when t is a view)."""
    base = t._base
    if base is None:
        t.grad_fn = node
        t.output_nr = 0
        t.requires_grad = True
        t._gen += 1  # t's views get their grad_fn from the new node when next used
        return
    base.grad_fn = CopySlices(base, t, node)
    base.output_nr = 0
    base._gen += 1
    refresh_view(t)


class CopySlices(Node):
    """The base's node after an in-place op `fn` on one of its views (PyTorch's CopySlices): the view's
    region of the base's gradient goes through fn's backward, the rest passes unchanged to the base's old
    node; fn's other inputs get their gradients from fn."""
    num_inputs = 1

    def __init__(self, base, view, fn):
        self.fn = fn
        self.next_edges = (Edge.gradient_edge(base),) + tuple(fn.next_edges[1:])
        self.base = _shallow(base)  # layouts only
        self.view = _shallow(view)

    def name(self):
        return f"CopySlices({self.fn.name()})"

    def run(self, grads, retain_graph):
        g = grads[0]
        if g is None:
            return (None,) * len(self.next_edges)
        image, base_grad = storage_image(self.base, g.dtype)
        base_grad._assign_from(g)
        view_grad = region(image, self.base, self.view)
        result = self.fn.run([view_grad.clone()], retain_graph)
        view_grad._assign_from(0.0 if result[0] is None else result[0])
        return (base_grad,) + tuple(result[1:])
