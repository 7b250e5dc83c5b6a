"""The autograd graph and the backward engine: Node, Edge, Function (a recorded op is a Node), Context,
AccumulateGrad, GraphTask, backward, zero_grads.

The graph is made of Nodes. A Function instance recorded by an op is the Node of the tensors it produced;
its `next_edges` point, one per positional input, to the Node that produced that input (`Edge(input_nr,
node)`), to the AccumulateGrad of a leaf, or to nothing. `backward` adds one GraphRoot per tensor, counts
how many edges reach every Node, and runs the Nodes in reverse topological order with an explicit stack
(no recursion, so graphs of any depth work): a Node runs once, after every edge into it has delivered its
gradient; contributions to the same (node, slot) are summed. The engine runs with grad mode off, so
backward formulas never record graphs."""
from __future__ import annotations

import weakref
from typing import Any, Iterable, Optional, Sequence, Union

from .._grad_mode import no_grad, swap_grad_enabled
from .._tensor import _FLOATING, Tensor, TensorBase, float32 as _F32
from .hooks import run_post_accumulate_grad_hooks


class Edge:
    """Where a gradient goes: slot `input_nr` of `node` (node None: the gradient is dropped)."""
    __slots__ = ("input_nr", "node")

    def __init__(self, input_nr, node):
        self.input_nr = input_nr
        self.node = node

    @staticmethod
    def gradient_edge(tensor):
        """The edge a gradient w.r.t. `tensor` must follow."""
        if not isinstance(tensor, Tensor) or not tensor.requires_grad:
            return Edge(0, None)
        base = tensor._base
        if base is not None and tensor._base_gen != base._gen:
            refresh_view(tensor)
        if tensor.grad_fn is not None:
            return Edge(tensor.output_nr, tensor.grad_fn)
        return Edge(0, AccumulateGrad.of(tensor))


class Node:
    """A vertex of the backward graph. `num_inputs` gradients come in (one per output of the forward
    op), `run` returns one gradient (or None) per edge of `next_edges`."""
    next_edges = ()
    num_inputs = 0

    def run(self, grads: Sequence[Optional[TensorBase]], retain_graph: bool) -> Sequence[Optional[TensorBase]]:
        raise NotImplementedError

    def name(self) -> str:
        return type(self).__name__


class GraphRoot(Node):
    """Start of a backward pass: feeds `grad` to the node that produced `tensor`."""

    def __init__(self, tensor, grad):
        self.grad = grad
        self.next_edges = (Edge.gradient_edge(tensor),)

    def run(self, grads, retain_graph):
        return (self.grad,)


class AccumulateGrad(Node):
    """The node of a leaf that requires grad: adds the incoming gradient into `leaf.grad`, which is replaced
    by a new Tensor (requires_grad=False) each time. One instance per leaf (found again through a weak
    reference on the leaf), so a leaf used several times in a graph accumulates once per pass."""
    num_inputs = 1

    def __init__(self, variable):
        self.variable = variable

    @staticmethod
    def of(leaf):
        ref = leaf.__dict__.get("_grad_accumulator")
        acc = ref() if ref is not None else None
        if acc is None:
            acc = AccumulateGrad(leaf)
            leaf._grad_accumulator = weakref.ref(acc)  # weak: the leaf must not keep its graph alive
        return acc

    def run(self, grads, retain_graph):
        g = grads[0]
        if g is None:
            return ()
        var = self.variable
        if g.dtype != var.dtype:
            g = g.to(var.dtype)
        if var.grad is None:
            # a new object (the same gradient may have gone to another leaf too), laid out contiguously so
            # optimizers see a plain buffer, not a stride-0 broadcast view
            g = g.contiguous()
            var.grad = Tensor._make(g._storage, g._shape, g._strides, g._offset, g.dtype)
        else:
            var.grad = var.grad + g
        if "_post_accumulate_grad_hooks" in var.__dict__:
            run_post_accumulate_grad_hooks(var)
        return ()


# ---- recorded ops ----------------------------------------------------------------------------------
_NO_EDGE = Edge(0, None)

_FREED = ("Trying to backward through the graph a second time (or to read saved tensors after they were "
          "freed): {name}'s saved tensors were freed by the first backward. Pass retain_graph=True to the "
          "first backward() to keep them.")


class Context:
    """What forward leaves for backward: tensors through save_for_backward, anything else as attributes.
    `needs_input_grad[i]` says whether positional input i requires grad."""
    needs_input_grad = ()  # class-level defaults: _record makes one Context per recorded op
    saved_versions = ()    # the version counter of each saved tensor when it was saved
    _freed = False

    def __init__(self) -> None:
        self.saved_tensors = []

    def save_for_backward(self, *values: Any) -> None:
        """Keep the tensor arguments (others are dropped) as shallow copies: they share storage but not
        grad_fn, so an output saved by its own Function does not form a reference cycle."""
        self.saved_tensors = [_shallow(v) for v in values if isinstance(v, TensorBase)]
        self.saved_versions = [t._storage._version for t in self.saved_tensors]

    def get_saved_tensors(self) -> list[TensorBase]:
        if self._freed:
            raise RuntimeError(_FREED.format(name="this Function"))
        return self.saved_tensors

    def _free(self):
        """After a backward without retain_graph: drop what forward kept. A second backward through a node
        that had kept tensors then raises (its gradient can no longer be computed)."""
        if self.saved_tensors:
            self.saved_tensors = []
            self.saved_values = None  # a gradient-table row's arguments and results (formula.py)
            self._freed = True


def _is_one_of(x, values):
    """`x` is (by identity) one of `values` (not `in`: tensors compare elementwise)."""
    for v in values:
        if v is x:
            return True
    return False


def zeros(shape, dtype):
    """A zero-filled Tensor (one fill kernel): the gradient of an output nothing used, or of a view."""
    return Tensor._empty(shape, dtype)._assign_from(0.0)


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
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grad_outputs: Optional[TensorBase]) -> Any:
        raise NotImplementedError

    def _record(self, *args, **kwargs):
        needs = tuple([isinstance(a, Tensor) and a.requires_grad for a in args])
        ctx = Context()
        ctx.needs_input_grad = needs
        grad_on = swap_grad_enabled(False)  # forward runs raw ops: nothing inside it records
        try:
            out = self.forward(ctx, *args, **kwargs)
        finally:
            swap_grad_enabled(grad_on)
        if not grad_on or True not in needs:
            return out
        if "ctx" in self.__dict__:
            raise RuntimeError(f"{self.name()}: a Function instance is one graph node; apply it once "
                               f"(use {self.name()}.apply(...) for a fresh one each call)")
        self.ctx = ctx
        self._connect(args, needs)
        self._output_meta = []
        if isinstance(out, (tuple, list)):
            outs = [self._mark(o, i, args) for i, o in enumerate(out)]
            self.num_inputs = len(outs)
            return tuple(outs) if isinstance(out, tuple) else outs
        self.num_inputs = 1
        return self._mark(out, 0, args)

    def _connect(self, args, needs):
        """One gradient edge per positional input (to the node that made it, its AccumulateGrad, or none)."""
        edges, meta = [], []
        for a, n in zip(args, needs):  # Edge.gradient_edge(a), inlined: this runs for every recorded op
            if n:
                base = a._base
                if base is not None and a._base_gen != base._gen:
                    refresh_view(a)  # its base was changed in place since the view was made
                fn = a.grad_fn
                edges.append(Edge(a.output_nr, fn) if fn is not None else Edge(0, AccumulateGrad.of(a)))
                meta.append((a._shape, a.dtype))
            else:
                edges.append(_NO_EDGE)
                meta.append(None)
        self.next_edges = edges
        self._input_meta = meta

    def _mark(self, out, output_nr, args):
        """Make `out` the output_nr-th output of this node (and remember its shape for zero grads). An output
        that shares the storage of an input requiring grad is a view of it: it remembers the input's base
        (see Tensor._base), so that an in-place op on either one keeps both gradients right."""
        if not isinstance(out, Tensor) or (out.dtype is not _F32 and out.dtype not in _FLOATING):
            self._output_meta.append(None)  # integer and bool outputs have no gradient (PyTorch)
            return out
        if out.requires_grad or out.grad_fn is not None or _is_one_of(out, args):
            out = _shallow(out)  # forward returned an input (e.g. contiguous()): mark a new object
        out.grad_fn = self
        out.output_nr = output_nr
        out.requires_grad = True
        storage = out._storage
        for a in args:
            if isinstance(a, Tensor) and a._storage is storage and a.requires_grad:
                base = a._base
                if base is None:
                    base = a
                out._base = base
                out._base_gen = base._gen
                break
        self._output_meta.append((out._shape, out.dtype))
        return out

    def run(self, grads: Sequence[Optional[TensorBase]], retain_graph: bool) -> Sequence[Optional[TensorBase]]:
        """Engine entry: the gradients of the outputs in, one checked gradient per input out."""
        ctx = self.ctx
        if ctx._freed:
            raise RuntimeError(_FREED.format(name=self.name()))
        if ctx.saved_versions:
            _check_versions(self, ctx)
        n = len(self.next_edges)
        missing = 0  # a plain loop: `None in grads` would call Tensor.__eq__
        for g in grads:
            if g is None:
                missing += 1
        if missing == len(grads):
            result = (None,) * n
        else:
            if missing and self.materialize_grads:
                grads = [zeros(m[0], m[1]) if g is None and m is not None else g
                         for g, m in zip(grads, self._output_meta)]
            result = self.backward(ctx, *grads)
            result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
            if len(result) < n and self._pad_grads:
                result += (None,) * (n - len(result))
            if len(result) != n:
                raise RuntimeError(f"{self.name()}.backward returned {len(result)} gradients but forward took "
                                   f"{n} positional inputs; return one per input (None where there is none)")
            checked, input_meta = [], self._input_meta
            for i, g in enumerate(result):
                meta = input_meta[i]
                if g is None or meta is None:
                    checked.append(None)
                elif isinstance(g, TensorBase) and g._shape == meta[0] and g.dtype == meta[1]:
                    checked.append(g)  # the usual case, without a call
                else:
                    checked.append(self._checked(i, g))
            result = tuple(checked)
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


def _check_versions(node, ctx):
    """PyTorch's check: every tensor the node saved must still hold the values it had when it was saved."""
    for t, version in zip(ctx.saved_tensors, ctx.saved_versions):
        now = t._storage._version
        if now != version:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [{type(t).__name__} {t.dtype} {t.shape}], saved by {node.name()} for its "
                f"gradient, is at version {now}; expected version {version} instead. Hint: the tensor (or "
                f"a view of its storage) was written in place after {node.name()} used it; clone() it before "
                f"the in-place op, or use the op's out-of-place form")


# ---- views of a base that changed in place --------------------------------------------------------------
def refresh_view(view):
    """Rebuild the grad_fn of a view whose base was changed by an in-place op after the view was made: the
    view now hangs off the base's new grad_fn (PyTorch regenerates it the same way)."""
    base = view._base
    view.grad_fn = ViewOf(base, view)
    view.output_nr = 0
    view._base_gen = base._gen


def storage_image(base, dtype):
    """(image, base_view): a fresh 1-d tensor spanning the storage elements that `base`'s view covers, and
    that view of it. A view of `base` (same storage) is then `image._view(shape, strides, offset -
    base._offset)`: the gradient of any view can be written into, or read out of, its base's gradient."""
    span = 1 + sum((s - 1) * st for s, st in zip(base._shape, base._strides)) if base._numel else 0
    image = Tensor._empty((span,), dtype)
    return image, image._view(base._shape, base._strides, 0)


def region(image, base, view):
    """`view`'s elements inside the storage image of its base (see storage_image)."""
    return image._view(view._shape, view._strides, view._offset - base._offset)


class ViewOf(Node):
    """The grad_fn of a view after its base changed in place: the gradient goes to the base's new node,
    written into zeros of the base's shape where the view's elements are (summed over broadcast dims)."""
    num_inputs = 1

    def __init__(self, base, view):
        self.next_edges = (Edge.gradient_edge(base),)
        self.base = _shallow(base)  # only its layout and dtype are used
        self.view = _shallow(view)
        self.broadcast = [d for d, (s, st) in enumerate(zip(view._shape, view._strides)) if st == 0 and s > 1]

    def run(self, grads, retain_graph):
        g = grads[0]
        if g is None:
            return (None,)
        if self.broadcast:  # repeated elements: their gradients add up in the one element they show
            g = g.sum(self.broadcast, keepdims=True)
        image, base_grad = storage_image(self.base, g.dtype)
        image._assign_from(0.0)
        view = self.view
        shape = tuple(1 if d in self.broadcast else s for d, s in enumerate(view._shape))
        image._view(shape, view._strides, view._offset - self.base._offset)._assign_from(g)
        return (base_grad,)


class NodeTask:
    """A node waiting to run: its input buffer and how many incoming edges have not delivered yet."""
    __slots__ = ("node", "inputs", "pending", "base")

    def __init__(self, node, pending, base):
        self.node = node
        self.inputs = [None] * node.num_inputs
        self.pending = pending
        self.base = base


class GraphTask:
    """One backward pass over the graph reachable from `roots` (GraphRoot nodes)."""

    def __init__(self, roots):
        self.roots = roots
        self.tasks = {}

    def _count_dependencies(self):
        deps = {}  # node -> edges into it; a node is visited when it first enters deps
        stack = list(self.roots)
        while stack:
            node = stack.pop()
            for edge in node.next_edges:
                nxt = edge.node
                if nxt is None:
                    continue
                n = deps.get(nxt)
                if n is None:
                    deps[nxt] = 1
                    stack.append(nxt)
                else:
                    deps[nxt] = n + 1
        return deps

    def run(self, retain_graph=False):
        deps = self._count_dependencies()
        tasks = self.tasks = {node: NodeTask(node, n, self) for node, n in deps.items()}
        ready = [NodeTask(root, 0, self) for root in reversed(self.roots)]
        try:
            with no_grad():
                self._run(ready, tasks, retain_graph)
        finally:
            self.tasks = {}

    @staticmethod
    def _run(ready, tasks, retain_graph):
        while ready:
            task = ready.pop()
            node = task.node
            grads = node.run(task.inputs, retain_graph)
            task.inputs = None  # free the incoming gradients as soon as the node has used them
            for edge, g in zip(node.next_edges, grads):
                nxt = edge.node
                if nxt is None:
                    continue
                nxt_task = tasks[nxt]
                if g is not None:  # contributions to the same (node, slot) are summed
                    inputs, slot = nxt_task.inputs, edge.input_nr
                    old = inputs[slot]
                    inputs[slot] = g if old is None else old + g
                nxt_task.pending -= 1
                if nxt_task.pending == 0:
                    del tasks[nxt]
                    ready.append(nxt_task)


def _as_list(x):
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def backward(tensors: Union[Tensor, Sequence[Tensor]],
             grads: Union[TensorBase, Sequence[Optional[TensorBase]], None] = None, retain_graph: bool = False) -> None:
    """Accumulate d(tensors)/d(leaf) * grads into `.grad` of every leaf that requires grad.

    tensors: a Tensor or a list of them; grads: matching gradients (None, or None entries: ones of the
    tensor's shape, for any shape). Tensors that do not require grad are skipped. The graph's saved
    tensors are freed afterwards unless retain_graph=True."""
    tensors = _as_list(tensors)
    grads = _as_list(grads) or [None] * len(tensors)
    if len(grads) != len(tensors):
        raise RuntimeError(f"backward: got {len(grads)} gradients for {len(tensors)} tensors")
    roots = []
    for t, g in zip(tensors, grads):
        if not isinstance(t, Tensor):
            raise TypeError(f"backward: expected Tensors, got {type(t).__name__}")
        if not t.requires_grad:
            continue
        if g is None:
            g = t._empty(t._shape, t.dtype)._assign_from(1.0)
        else:
            if not isinstance(g, TensorBase):
                raise TypeError(f"backward: gradient must be a tensor, got {type(g).__name__}")
            if g._shape != t._shape:
                raise RuntimeError(f"backward: gradient of shape {g.shape} does not match the tensor's "
                                   f"shape {t.shape}")
            if g.dtype != t.dtype:
                g = g.to(t.dtype)
        roots.append(GraphRoot(t, g))
    if not roots:
        raise RuntimeError("backward: none of the tensors requires grad (element 0 of tensors does not "
                           "require grad and does not have a grad_fn)")
    GraphTask(roots).run(retain_graph)


def zero_grads(params: Iterable[TensorBase], set_to_none: bool = True) -> None:
    """Drop each tensor's grad (set_to_none) or zero it in place: Module.zero_grad and Optimizer.zero_grad."""
    for p in params:
        if p.grad is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            p.grad.zero_()
