"""The backward engine.

The graph is made of Nodes. A Function instance recorded by an op is the Node of the tensors it produced;
its `next_edges` point, one per positional input, to the Node that produced that input (`Edge(input_nr,
node)`), to the AccumulateGrad of a leaf, or to nothing. `backward` adds one GraphRoot per tensor, counts
how many edges reach every Node, and runs the Nodes in reverse topological order with an explicit stack
(no recursion, so graphs of any depth work): a Node runs once, after every edge into it has delivered its
gradient; contributions to the same (node, slot) are summed. The engine runs with grad mode off, so
backward formulas never record graphs."""
import weakref

from .. import _grad_mode
from ..tensor import Tensor, TensorBase
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
        if tensor.grad_fn is not None:
            return Edge(tensor.output_nr, tensor.grad_fn)
        return Edge(0, AccumulateGrad.of(tensor))


class Node:
    """A vertex of the backward graph. `num_inputs` gradients come in (one per output of the forward
    op), `run` returns one gradient (or None) per edge of `next_edges`."""
    next_edges = ()
    num_inputs = 0

    def run(self, grads, retain_graph):
        raise NotImplementedError

    def name(self):
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
        prev = _grad_mode.enabled[0]
        _grad_mode.enabled[0] = False
        try:
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
        finally:
            _grad_mode.enabled[0] = prev
            self.tasks = {}


def _as_list(x):
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def backward(tensors, grads=None, retain_graph=False):
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
