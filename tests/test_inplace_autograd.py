"""Autograd through in-place ops: gradients against finite differences (float64) for every recorded in-place
op, on plain tensors and through views (the base is rebased, PyTorch's CopySlices), the version-counter
errors for tensors saved and then overwritten, and the errors for leaves and aliased targets."""
import numpy as np
import pytest
from conftest import assert_close

import clownpiece as cp
from clownpiece.autograd import Function, gradcheck, no_grad

F64 = np.float64
rng = np.random.default_rng(3)
MODIFIED = "modified by an inplace operation"


def leaf(*shape, low=-2.0, high=2.0):
    return cp.Tensor(rng.uniform(low, high, shape), dtype=F64, requires_grad=True)


def away_from_zero(*shape):
    return cp.Tensor(rng.uniform(0.2, 1.2, shape) * rng.choice([-1.0, 1.0], shape), dtype=F64,
                     requires_grad=True)


MASK = cp.Tensor((rng.uniform(size=(3, 4)) > 0.5).astype(F64), dtype=F64)

# name -> (f(x, y): an in-place op on a non-leaf made from x, with y a second input; inputs)
CASES = {
    "add_": (lambda x, y: (x * 1.0).add_(y), lambda: (leaf(3, 4), leaf(4))),
    "add_alpha": (lambda x, y: (x * 1.0).add_(y, alpha=-2.5), lambda: (leaf(3, 4), leaf(3, 1))),
    "sub_alpha": (lambda x, y: (x * 2.0).sub_(y, alpha=3.0), lambda: (leaf(3, 4), leaf(3, 4))),
    "mul_": (lambda x, y: (x + 1.0).mul_(y), lambda: (leaf(3, 4), leaf(4))),
    "div_": (lambda x, y: (x + 0.0).div_(y), lambda: (leaf(3, 4), leaf(4, low=0.5, high=2.0))),
    "pow_tensor": (lambda x, y: (x * 1.0).pow_(y), lambda: (leaf(3, 4, low=0.5, high=2.0), leaf(4))),
    "pow_number": (lambda x, y: (x * y).pow_(3), lambda: (leaf(3, 4), leaf(4))),
    "neg_": (lambda x, y: (x * y).neg_(), lambda: (leaf(3, 4), leaf(4))),
    "clamp_": (lambda x, y: (x * 1.0).clamp_(-0.5, 0.5) * y, lambda: (away_from_zero(3, 4), leaf(4))),
    "clamp_min": (lambda x, y: (x * 1.0).clamp_(min=0.3) * y, lambda: (away_from_zero(3, 4), leaf(4))),
    "exp_": (lambda x, y: (x * y).exp_(), lambda: (leaf(3, 4), leaf(4))),
    "log_": (lambda x, y: (x * y).log_(), lambda: (leaf(3, 4, low=0.5, high=2), leaf(4, low=0.5, high=2))),
    "sqrt_": (lambda x, y: (x * y).sqrt_(), lambda: (leaf(3, 4, low=0.5, high=2), leaf(4, low=0.5, high=2))),
    "abs_": (lambda x, y: (x * 1.0).abs_() * y, lambda: (away_from_zero(3, 4), leaf(4))),
    "relu_": (lambda x, y: (x * 1.0).relu_() * y, lambda: (away_from_zero(3, 4), leaf(4))),
    "masked_fill_": (lambda x, y: (x * 1.0).masked_fill_(MASK, 2.0) * y, lambda: (leaf(3, 4), leaf(4))),
    "masked_fill_tensor": (lambda x, y: (x * 1.0).masked_fill_(MASK, y), lambda: (leaf(3, 4), leaf())),
    "fill_tensor": (lambda x, y: (x * 1.0).fill_(y) * x, lambda: (leaf(3, 4), leaf())),
    "zero_": (lambda x, y: (x * y).zero_() + x * y, lambda: (leaf(3, 4), leaf(4))),
    "copy_": (lambda x, y: (x * 1.0).copy_(y) * x, lambda: (leaf(3, 4), leaf(4))),
    "normal_": (lambda x, y: (x * 1.0).normal_() * 0.0 + x * y, lambda: (leaf(3, 4), leaf(4))),
    "chain": (lambda x, y: (x * 1.0).mul_(y).add_(x).sub_(1.0).exp_(), lambda: (leaf(3, 4), leaf(4))),
    "self_operand": (lambda x, y: (x * y).mul_((x * y)).add_(x), lambda: (leaf(3, 4), leaf(4))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_inplace_gradcheck(name):
    f, inputs = CASES[name]
    assert gradcheck(f, inputs())


def test_the_target_is_rebased_and_returned():
    x = leaf(2, 3)
    y = x * 2.0
    mul = y.grad_fn
    assert y.add_(1.0) is y and y.grad_fn is not mul and type(y.grad_fn).__name__ == "AddInplace"
    y.sum().backward()
    assert_close(x.grad, np.full((2, 3), 2.0))


def test_a_target_that_does_not_require_grad_joins_the_graph():
    x = leaf(3)
    acc = cp.zeros(3, dtype=F64)
    acc.add_(x * x).add_(x, alpha=2.0)
    assert acc.requires_grad and not acc.is_leaf
    acc.sum().backward()
    assert_close(x.grad, 2 * x.detach().numpy() + 2)


# ---- views: the base follows the in-place op on its view, and views follow their base -----------------
def test_inplace_on_a_view_rebases_the_base():
    def f(x, y):
        b = x * 1.0
        b[1:].mul_(y)  # a view of b
        b.T[0].add_(y[0].exp())  # a view through a transpose
        return b * b
    assert gradcheck(f, [leaf(3, 4), leaf(4)])


def test_views_made_before_an_inplace_op_on_their_base():
    def f(x, y):
        b = x * 1.0
        row, col = b[0], b.T[1]  # made before the write
        b.mul_(y)
        return row * 2.0 + col.sum()
    assert gradcheck(f, [leaf(3, 4), leaf(4)])


def test_sibling_views_see_each_other_s_writes():
    def f(x, y):
        b = x * 1.0
        top, left = b[0], b[:, 0]
        top.mul_(y)  # changes left[0] too
        left.add_(1.0)
        return top * left[0] + left.sum()
    assert gradcheck(f, [leaf(3, 4), leaf(4)])


def test_expanded_view_of_a_rebased_base():
    def f(x):
        b = x * 1.0
        wide = b.expand(3, 4)
        b.exp_()
        return wide * wide
    assert gradcheck(f, [leaf(4)])


def test_setitem_records_into_the_graph():
    def f(x, y):
        out = cp.zeros(3, 4, dtype=F64)
        out[0] = x * 2.0
        out[1:, 1] = y[:2]
        out[2, 2:] = 3.0
        return out * out
    assert gradcheck(f, [leaf(4), leaf(3)])

    def g(x, v):
        b = x * 1.0
        b[cp.Tensor([2.0, 0.0])] = v  # tensor index: rows
        return b.exp()
    assert gradcheck(g, [leaf(3, 2), leaf(2, 2)])


def test_index_put_gradients():
    ids = cp.Tensor([1.0, 1.0, 0.0])

    def put(x, v):
        return (x * 1.0).index_put_((ids,), v) * x

    def accumulate(x, v):
        return (x * 1.0).index_put_((ids,), v, accumulate=True) * x
    assert gradcheck(accumulate, [leaf(3, 2), leaf(3, 2)])
    x, v = leaf(3, 2), leaf(2)  # a broadcast value: each row written gets v
    put(x, v).sum().backward()
    xs = x.detach().numpy()
    assert_close(v.grad, xs[1] * 2 + xs[0])
    want = 2 * xs
    want[:2] = v.detach().numpy()
    assert_close(x.grad, want)


# ---- version counters: saved tensors overwritten before backward -----------------------------------------
def test_the_issue_example_raises():
    a = cp.Tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    c = b * b
    b.zero_()
    with pytest.raises(RuntimeError, match=f"{MODIFIED}: .* is at version 1; expected version 0 instead"):
        c.sum().backward()


@pytest.mark.parametrize("write", ["view", "detach", "setitem", "masked_fill_", "copy_", "no_grad_leaf",
                                   "other_view_of_storage", "result", "twice",
                                   "chain"])
def test_overwriting_a_saved_tensor_raises(write):
    x = cp.Tensor(rng.uniform(0.5, 2, (3, 4)), dtype=F64, requires_grad=True)
    y = x * 1.0
    if write == "view":
        z = y * y
        y[0].fill_(0.0)
    elif write == "detach":
        z = y.log()
        y.detach().add_(1.0)
    elif write == "setitem":
        z = y.pow(3)
        y[:, 1] = 5.0
    elif write == "masked_fill_":
        z = y * x
        y.masked_fill_(y > 1, 0.0)
    elif write == "copy_":
        z = y.abs()
        y.copy_(y * 3.0)
    elif write == "no_grad_leaf":
        z = x * x
        with no_grad():
            x.mul_(2.0)
    elif write == "other_view_of_storage":
        t = y.T
        z = t.exp() * t  # saves a transposed view
        y[2].neg_()  # written through another view of the same storage
    elif write == "result":
        z = y.exp()  # Exp keeps its result
        z.add_(1.0)
    elif write == "chain":
        z = y.exp_().sub_(1.0)  # sub_ overwrites what exp_ kept
    elif write == "twice":
        y.exp_()  # exp_ keeps its result, which the second one overwrites (PyTorch raises too)
        z = y.exp_()
    with pytest.raises(RuntimeError, match=MODIFIED):
        z.sum().backward()


def test_writes_to_tensors_nothing_saved_are_fine():
    x = leaf(3, 4)
    c = cp.Tensor(rng.uniform(size=(3, 4)), dtype=F64)
    y = x * 1.0
    z = y * c  # y's gradient needs only c: y itself is not kept
    y.add_(1.0)  # so this write does not affect z's backward (as in PyTorch)
    w = x * 2.0  # a number operand: nothing kept
    w.mul_(3.0)
    (z.sum() + w.sum()).backward()
    assert_close(x.grad, c.numpy() + 6.0)


def test_custom_function_saved_tensors_are_checked():
    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * x * 2.0

    x = leaf(3)
    y = x * 1.0
    z = Square.apply(y)
    y.sub_(1.0)
    with pytest.raises(RuntimeError, match=f"{MODIFIED}: .*saved by Square"):
        z.sum().backward()


def test_retain_graph_then_optimizer_step_then_backward_raises():
    p = cp.nn.Parameter(cp.Tensor(rng.uniform(size=(4,)), dtype=F64))
    loss = (p * p).sum()
    loss.backward(retain_graph=True)
    cp.utils.optim.SGD([p], lr=0.1).step()  # an in-place update under no_grad: bumps the version
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


# ---- leaves, views of leaves, aliased targets ------------------------------------------------------------
INPLACE_WRITES = {
    "add_": lambda t: t.add_(1.0), "sub_": lambda t: t.sub_(t.detach()), "mul_": lambda t: t.mul_(2.0),
    "div_": lambda t: t.div_(2.0), "pow_": lambda t: t.pow_(2), "neg_": lambda t: t.neg_(),
    "clamp_": lambda t: t.clamp_(0, 1), "exp_": lambda t: t.exp_(), "log_": lambda t: t.log_(),
    "sqrt_": lambda t: t.sqrt_(), "abs_": lambda t: t.abs_(), "relu_": lambda t: t.relu_(),
    "masked_fill_": lambda t: t.masked_fill_(t > 0, 0.0), "fill_": lambda t: t.fill_(1.0),
    "zero_": lambda t: t.zero_(), "copy_": lambda t: t.copy_(t.detach() * 2),
    "index_put_": lambda t: t.index_put_((cp.Tensor([0.0]),), 1.0), "setitem": lambda t: t.__setitem__(0, 1.0),
    "scatter_": lambda t: t.scatter_(0, cp.Tensor([0.0]), 1.0), "uniform_": lambda t: t.uniform_(),
}


@pytest.mark.parametrize("name", sorted(INPLACE_WRITES))
def test_a_leaf_that_requires_grad_refuses_inplace_writes(name):
    x = cp.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
        INPLACE_WRITES[name](x)
    assert x._version == 0 and x.tolist() == [1.0, 2.0, 3.0] and x.is_leaf
    with no_grad():
        INPLACE_WRITES[name](x)
    assert x._version == 1 and x.is_leaf and x.grad_fn is None


@pytest.mark.parametrize("name", ["add_", "exp_", "fill_", "setitem", "copy_"])
def test_a_view_of_a_leaf_refuses_inplace_writes(name):
    w = cp.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    for view in (w[0], w.T, w.reshape(4)):
        with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
            INPLACE_WRITES[name](view)
    assert w._version == 0 and w.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_an_aliased_target_joining_the_graph_raises():
    x = leaf(3)
    out = cp.zeros(2, 3, dtype=F64)
    version = out._version
    row = out[0]  # a view made outside the graph
    with pytest.raises(RuntimeError, match="shares its storage with other tensors"):
        out.add_(x)
    with pytest.raises(RuntimeError, match="shares its storage with other tensors"):
        row.copy_(x)
    assert out._version == version
    del row
    out.add_(x)  # alone now: fine
    out.sum().backward()
    assert_close(x.grad, [2.0, 2.0, 2.0])


def test_scatter_and_index_add_gradients():
    ids = cp.Tensor([[0.0, 2.0, 1.0], [1.0, 3.0, 0.0]])  # no repeats per row: scatter_ overwrites exactly
    repeated = cp.Tensor([[0.0, 2.0, 2.0], [1.0, 1.0, 0.0]])
    assert gradcheck(lambda x, s: (x * 1.0).scatter_(1, ids, s), [leaf(2, 4), leaf(2, 3)])
    assert gradcheck(lambda x, s: (x * 1.0).scatter_(1, ids[:, :2], s), [leaf(2, 4), leaf(2, 3)])  # src > index
    assert gradcheck(lambda x, s: (x * 1.0).scatter_add_(1, repeated, s), [leaf(2, 4), leaf(2, 3)])
    course = cp.Tensor([2.0, 0.0, 1.0, 2.0])  # the course's form: index and src lack the scattered dim
    assert gradcheck(lambda x, s: (x * 1.0).scatter_(0, course, s), [leaf(3, 4), leaf(4)])
    assert gradcheck(lambda x, s: (x * 1.0).scatter_add_(-1, cp.Tensor([3.0, 0.0, 3.0]), s), [leaf(3, 4), leaf(3)])
    assert gradcheck(lambda x, s: (x * 1.0).index_add_(0, cp.Tensor([1.0, 1.0, 0.0]), s, alpha=2.0),
                     [leaf(3, 2), leaf(3, 2)])
    out = cp.zeros(4, 3, dtype=F64)  # message passing: sum rows into their targets
    src = leaf(5, 3)
    out.index_add_(0, cp.Tensor([0.0, 3.0, 3.0, 1.0, 0.0]), src)
    (out * out).sum().backward()
    sums = np.zeros((4, 3))
    np.add.at(sums, [0, 3, 3, 1, 0], src.detach().numpy())
    assert_close(src.grad, 2 * sums[[0, 3, 3, 1, 0]])


def test_raw_inplace_ops_reached_without_recording_refuse_tensors_that_require_grad():
    """The safety net under the recorded ops: a raw TensorBase in-place op called on a Tensor in the graph
    with grad mode on would lose its gradient, so it raises."""
    x = leaf(3)
    y = x * 1.0
    with pytest.raises(RuntimeError, match="not differentiable"):
        cp.TensorBase.scatter_add_(y, 0, cp.Tensor([0.0]), cp.Tensor([1.0], dtype=F64))
    buf = cp.zeros(3, dtype=F64)
    with pytest.raises(RuntimeError, match="not differentiable"):
        cp.TensorBase.index_add_(buf, 0, cp.Tensor([1.0]), x[:1])
    with no_grad():
        cp.TensorBase.index_add_(buf, 0, cp.Tensor([1.0]), x[:1])
    assert_close(buf, [0.0, x.detach().numpy()[0], 0.0])


def test_no_grad_inplace_ops_record_nothing():
    x = leaf(3)
    y = x * 2.0
    fn = y.grad_fn
    with no_grad():
        y.add_(1.0)
    assert y.grad_fn is fn
    y.sum().backward()  # Mul kept nothing of y: the write does not matter to it
    assert_close(x.grad, [2.0, 2.0, 2.0])
