"""Autograd: every differentiable op against finite differences (float64), composites, the engine's rules
(accumulation, seeds, retain_graph, errors), grad mode, custom Functions and a flat-memory training loop."""
import importlib
import inspect
import math

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, pool_bytes_in_use, to_np

import clownpiece as cp
from clownpiece import backend
from clownpiece.autograd import (
    Context,
    Function,
    backward,
    broadcast,
    broadcast_tensors,
    cat,
    enable_grad,
    gradcheck,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    stack,
    where,
)
from clownpiece.autograd.gradcheck import GradcheckError

F64 = np.float64
rng = np.random.default_rng(1)


def leaf(arr, layout="contiguous"):
    """A float64 leaf requiring grad, laid out as asked (views of a non-grad base are leaves too)."""
    t, _ = make(arr, F64, layout)
    return t.requires_grad_()


def randn(*shape):
    return rng.standard_normal(shape)


def away_from_zero(*shape):
    """Values with |v| in [0.2, 1.2]: finite differences never straddle a kink at 0."""
    return rng.uniform(0.2, 1.2, shape) * rng.choice([-1.0, 1.0], shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


# ---- unary ops --------------------------------------------------------------------------------------
UNARY = {
    "neg": (lambda x: -x, randn), "abs": (lambda x: abs(x), away_from_zero),
    "abs_method": (lambda x: x.abs(), away_from_zero), "sin": (lambda x: x.sin(), randn),
    "cos": (lambda x: x.cos(), randn), "tanh": (lambda x: x.tanh(), randn),
    "sigmoid": (lambda x: x.sigmoid(), randn), "relu": (lambda x: x.relu(), away_from_zero),
    "leaky_relu": (lambda x: x.leaky_relu(0.1), away_from_zero), "gelu": (lambda x: x.gelu(), randn),
    "log": (lambda x: x.log(), positive), "exp": (lambda x: x.exp(), randn),
    "log1p": (lambda x: x.log1p(), lambda *shape: rng.uniform(-0.8, 2.0, shape)),
    "expm1": (lambda x: x.expm1(), randn),
    "sqrt": (lambda x: x.sqrt(), positive), "sign": (lambda x: x.sign() * 3.0 + x, away_from_zero),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), away_from_zero),
    "clamp_open_low": (lambda x: x.clamp(None, 0.5), away_from_zero),
    "clamp_keywords": (lambda x: x.clamp(min=-0.5), away_from_zero),
    "affine": (lambda x: x.affine(3.0, -1.0), randn), "pow2": (lambda x: x ** 2, randn),
    "pow3": (lambda x: x.pow(3), randn), "pow_half": (lambda x: x.pow(0.5), positive),
    "pow_neg": (lambda x: x ** -1.5, positive), "rpow": (lambda x: 2.0 ** x, randn),
    "floor_round": (lambda x: x.floor() + x.round() + x, away_from_zero),
    "clone": (lambda x: x.clone() * 2, randn), "contiguous": (lambda x: x.contiguous() * 2, randn),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_unary_gradcheck(name, layout):
    fn, data = UNARY[name]
    assert gradcheck(fn, [leaf(data(3, 4), layout)])


def test_unary_on_0dim_and_empty():
    assert gradcheck(lambda x: x.exp() * x.sin(), [leaf(np.array(0.7))])
    assert gradcheck(lambda x: x.log1p() * x.expm1(), [leaf(np.array(0.7))])
    x = leaf(np.zeros((0, 3)))
    w = leaf(randn(3, 2))
    ((x.tanh() @ w).sum() + w.sum()).backward()
    assert x.grad.shape == [0, 3]
    assert_close(w.grad, np.ones((3, 2)))  # the empty product contributes zeros


def test_sign_and_clamp_gradients_follow_the_course_rules():
    x = cp.Tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], dtype=F64, requires_grad=True)
    x.clamp(-1.0, 1.0).sum().backward()
    assert_close(x.grad, [0, 0, 1, 1, 0, 0])  # strictly inside the bounds only
    x.grad = None
    x.sign().sum().backward()
    assert_close(x.grad, np.zeros(6))
    x.grad = None
    abs(x).sum().backward()
    assert_close(x.grad, [-1, -1, 0, 1, 1, 1])


def test_float_double_conversions_send_gradients_back_in_the_input_dtype():
    x = cp.Tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    (x.float() * 3).sum().backward()
    assert x.grad.dtype == np.float64
    assert_close(x.grad, [3, 3])
    y = cp.Tensor([1.0, 2.0], requires_grad=True)
    (y.double() * y.to(np.float64)).sum().backward()
    assert y.grad.dtype == np.float32
    assert_close(y.grad, [2, 4])


# ---- binary ops -------------------------------------------------------------------------------------
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "maximum": lambda a, b: a.maximum(b), "minimum": lambda a, b: a.minimum(b),
    "add_method": lambda a, b: a.add(b), "div_method": lambda a, b: a.div(b),
    "pow_tensor": lambda a, b: a.abs() ** b,
}
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((5,), ())]


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_binary_gradcheck_with_broadcasting(name, shapes):
    a = leaf(away_from_zero(*shapes[0]) + 0.05)
    b = leaf(away_from_zero(*shapes[1]) * 1.3)  # different magnitudes: maximum/minimum have no ties
    assert gradcheck(BINARY[name], [a, b])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_binary_noncontiguous_and_expanded_inputs(layout):
    a = leaf(randn(4, 3), layout)
    b = leaf(positive(4, 1), layout)
    assert gradcheck(lambda a, b: a * b.broadcast_to((4, 3)) / b - a.T.T, [a, b])


SCALAR_FORMS = {
    "x+2": lambda x: x + 2, "2+x": lambda x: 2 + x, "x-2": lambda x: x - 2, "2-x": lambda x: 2 - x,
    "x*3": lambda x: x * 3, "3*x": lambda x: 3 * x, "x/3": lambda x: x / 3, "3/x": lambda x: 3 / x,
    "sum-builtin": lambda x: sum([x, x * 2]), "0+x": lambda x: 0 + x,
}


@pytest.mark.parametrize("form", sorted(SCALAR_FORMS))
def test_scalar_operands_on_either_side(form):
    assert gradcheck(SCALAR_FORMS[form], [leaf(positive(2, 3))])


def test_reflected_ops_put_the_scalar_on_the_left():
    x = cp.Tensor([1.0, 4.0], dtype=F64, requires_grad=True)
    y = 2 - x
    assert_close(y, [1, -2])
    z = 8 / x
    assert_close(z, [8, 2])
    (y + z).sum().backward()
    assert_close(x.grad, [-1 - 8, -1 - 0.5])


def test_masked_fill_gradcheck():
    mask = cp.Tensor([[1.0, 0.0, 0.0, 1.0]], dtype=F64)
    x, value = leaf(randn(3, 4)), leaf(np.array(0.7))
    assert gradcheck(lambda x: x.masked_fill(mask, -2.0), [x])
    assert gradcheck(lambda x, v: x.masked_fill(mask, v), [x, value])


def test_maximum_splits_ties_evenly():
    a = cp.Tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    b = cp.Tensor([2.0, 2.0, 1.0], dtype=F64, requires_grad=True)
    a.maximum(b).sum().backward()
    assert_close(a.grad, [0, 0.5, 1])
    assert_close(b.grad, [1, 0.5, 0])


def test_maximum_minimum_with_a_number():
    # used to fail in backward (the number was not among the saved tensors)
    x = leaf(away_from_zero(3, 4))
    assert gradcheck(lambda x: x.maximum(0.1) * x.minimum(-0.1), [x])
    y = cp.Tensor([1.0, 0.5, -2.0], dtype=F64, requires_grad=True)
    y.maximum(0.5).sum().backward()
    assert_close(y.grad, [1, 0.5, 0])  # the tie at 0.5 splits evenly


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()), ((4,), (3, 4), (3, 1))],
                         ids=str)
def test_where_gradcheck(shapes):
    cond = cp.Tensor((rng.random(shapes[0]) > 0.5).astype(F64), dtype=F64)
    a, b = leaf(randn(*shapes[1])), leaf(randn(*shapes[2]))
    assert gradcheck(lambda a, b: where(cond, a, b), [a, b])
    assert gradcheck(lambda a: a.where(cond, 2.0), [a])
    assert gradcheck(lambda b: where(cond, 1.5, b), [b])


# ---- matmul and linear ------------------------------------------------------------------------------
MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 1, 2, 3), (1, 3, 3, 2)),
                 ((3, 2, 4), (1, 4, 5)), ((3, 5), (2, 5, 4)), ((5,), (2, 5, 4)), ((2, 1, 3, 5), (5,))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_gradcheck(shapes):
    a, b = leaf(randn(*shapes[0])), leaf(randn(*shapes[1]))
    assert gradcheck(lambda a, b: a @ b, [a, b])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_matmul_noncontiguous_and_methods(layout):
    a, b = leaf(randn(3, 4), layout), leaf(randn(4, 2), layout)
    assert gradcheck(lambda a, b: a.matmul(b) + a.mm(b) + b.__rmatmul__(a), [a, b])
    assert gradcheck(lambda a, b: a.T.__matmul__(a) @ b + a.T.dot(a.mm(b)), [a, b])
    c, d = leaf(randn(2, 3, 4), layout), leaf(randn(2, 4, 2), layout)
    assert gradcheck(lambda c, d: c.bmm(d), [c, d])
    with pytest.raises(RuntimeError, match="mm"):
        c.mm(d)  # the recorded form keeps the raw op's shape checks


def test_matmul_with_one_side_not_requiring_grad():
    x = cp.Tensor(randn(4, 3), dtype=F64)
    w = leaf(randn(3, 2))
    (x @ w).sum().backward()
    assert x.grad is None
    assert_close(w.grad, to_np(x).sum(0)[:, None] * np.ones((3, 2)))


@pytest.mark.parametrize("x_shape", [(5, 3), (3,), (2, 4, 3)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradcheck(x_shape, with_bias):
    x, w = leaf(randn(*x_shape)), leaf(randn(2, 3))
    if with_bias:
        b = leaf(randn(2))
        assert gradcheck(lambda x, w, b: x.linear(w, b), [x, w, b])
    else:
        assert gradcheck(lambda x, w: x.linear(w), [x, w])


def test_tensors_passed_by_keyword_get_gradients():
    # an op's tensor inputs may be passed by keyword; they are still inputs of the graph (as in PyTorch)
    x, w, b = leaf(randn(4, 3)), leaf(randn(2, 3)), leaf(randn(2))
    v = leaf(np.array(1.5))
    mask = cp.Tensor((randn(4, 3) > 0).astype(np.float64), dtype=F64)
    assert gradcheck(lambda x, w, b: x.linear(w, bias=b), [x, w, b])
    assert gradcheck(lambda x, w: x.linear(weight=w), [x, w])
    assert gradcheck(lambda x, v: x.masked_fill(mask, value=v) * x, [x, v])
    data = cp.Tensor(randn(4, 3), dtype=F64)  # does not require grad: only the keyword value does
    assert gradcheck(lambda v: data.masked_fill(mask=mask, value=v), [v])
    assert gradcheck(lambda x, y: x.mul(other=y), [x, leaf(randn(4, 3))])


# ---- reductions -------------------------------------------------------------------------------------
REDUCTIONS = {
    "sum_all": lambda x: x.sum(), "sum_dim": lambda x: x.sum(1), "sum_neg_keep": lambda x: x.sum(-1, True),
    "sum_dims": lambda x: x.sum(dim=(1, -1)), "sum_dims_keep": lambda x: x.sum((-1, -3), keepdims=True),
    "sum_keepdim_alias": lambda x: x.sum(0, keepdim=True), "mean_dim": lambda x: x.mean(1),
    "mean_all": lambda x: x.mean(), "mean_dims_keep": lambda x: x.mean((0, 2), keepdims=True),
    "var": lambda x: x.var(1), "var_biased_keep": lambda x: x.var(-1, True, False),
    "var_dims": lambda x: x.var((0, 2)), "std": lambda x: x.std(2), "std_keep": lambda x: x.std(0, keepdims=True),
    "max": lambda x: x.max(1)[0], "max_keep": lambda x: x.max(-1, keepdims=True)[0],
    "max_default": lambda x: x.max()[0], "min": lambda x: x.min(0)[0], "amax": lambda x: x.amax((0, 2)),
    "amin_keep": lambda x: x.amin(1, keepdims=True), "softmax": lambda x: x.softmax(1),
    "softmax_last": lambda x: x.softmax(-1), "log_softmax": lambda x: x.log_softmax(0),
    "logsumexp": lambda x: x.logsumexp(1), "logsumexp_keep": lambda x: x.logsumexp(-1, keepdims=True),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_reduction_gradcheck(name, layout):
    x = leaf(rng.permutation(24).reshape(2, 3, 4) * 0.1 + randn(2, 3, 4) * 0.01, layout)  # no ties
    assert gradcheck(REDUCTIONS[name], [x])


def test_reductions_of_0dim_and_1d():
    assert gradcheck(lambda x: x.sum() * x.mean(0), [leaf(np.array(1.5))])
    assert gradcheck(lambda x: x.max(0)[0] + x.var(0) + x.softmax(0).sum() * x.logsumexp(0), [leaf(randn(5))])


def test_max_gradient_goes_to_the_first_of_tied_maxima():
    x = cp.Tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0]], dtype=F64, requires_grad=True)
    values, indices = x.max(1)
    # int64 indices are not differentiable (PyTorch); the values are
    assert indices.dtype == cp.int64 and not indices.requires_grad and indices.grad_fn is None
    assert values.requires_grad and values.grad_fn is not None and values.output_nr == 0
    values.sum().backward()
    assert_close(x.grad, [[0, 1, 0, 0], [1, 0, 0, 0]])
    x.grad = None
    x.min(0, keepdims=True)[0].sum().backward()
    assert_close(x.grad, [[1, 1, 1, 0], [0, 0, 0, 1]])


def test_amax_shares_ties_evenly():
    x = cp.Tensor([1.0, 3.0, 3.0], dtype=F64, requires_grad=True)
    x.amax().backward()
    assert_close(x.grad, [0, 0.5, 0.5])


# ---- shape ops and indexing -----------------------------------------------------------------------------
SHAPE_OPS = {
    "permute": lambda x: x.permute(2, 0, 1), "permute_list": lambda x: x.permute([1, 2, 0]),
    "permute_partial": lambda x: x.permute([2, 0]), "transpose": lambda x: x.transpose(0, 2),
    "transpose_default": lambda x: x.transpose(), "T": lambda x: x.T, "mT": lambda x: x.mT,
    "reshape": lambda x: x.reshape(4, 6), "reshape_tuple": lambda x: x.reshape((-1,)),
    "view": lambda x: x.contiguous().view(6, -1), "flatten": lambda x: x.flatten(1),
    "squeeze": lambda x: x.unsqueeze(1).squeeze(1), "unsqueeze": lambda x: x.unsqueeze(-1) * 2,
    "broadcast_to": lambda x: x.unsqueeze(0).broadcast_to((3, 2, 3, 4)),
    "expand": lambda x: x[:, :1].expand(2, 3, 4), "sum_to": lambda x: x.sum_to(3, 1) * x.sum_to((4,)).sum(),
    "narrow": lambda x: x.narrow(2, 1, 2),
    "select": lambda x: x.select(1, -1), "split": lambda x: x.split(3, 2)[0] * 2 + x.split(3, 2)[1].sum(),
    "split_sections": lambda x: x.split([1, 3], 2)[1], "chunk": lambda x: x.chunk(3, 1)[1] * x.chunk(3, 1)[2],
    "unbind": lambda x: x.unbind(1)[0] - x.unbind(1)[2] * 2,
    "getitem_int": lambda x: x[1], "getitem_tuple": lambda x: x[0, 1:3], "getitem_slice": lambda x: x[:, 2:],
    "getitem_none_ellipsis": lambda x: x[None, ..., 1], "getitem_list": lambda x: x[[1, 0, 1]],
    "getitem_tensor": lambda x: x[cp.Tensor([1.0, 0.0, 1.0, 1.0], dtype=F64)],
    "index_select": lambda x: x.index_select(2, cp.Tensor([3.0, 0.0, 3.0], dtype=F64)),
    "gather": lambda x: x.gather(1, cp.Tensor(np.array([[[2, 0, 1, 2], [1, 1, 0, 0]]] * 2, dtype=F64))),
}


@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_shape_op_gradcheck(name, layout):
    assert gradcheck(SHAPE_OPS[name], [leaf(randn(2, 3, 4), layout)])


def test_expand_as_differentiates_only_the_expanded_input():
    x, other = leaf(randn(3, 1)), leaf(randn(3, 4))
    assert gradcheck(lambda x, o: x.expand_as(o) * 2, [x, other])


def test_repeated_rows_of_a_tensor_index_accumulate():
    x = cp.Tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=F64, requires_grad=True)
    idx = cp.Tensor([[2.0, 0.0], [2.0, 2.0]], dtype=F64)
    x[idx].sum().backward()
    assert_close(x.grad, [[1, 1], [0, 0], [3, 3]])


def test_split_outputs_without_gradient_count_as_zeros():
    x = leaf(randn(5, 2))
    a, b, c = x.split(2)
    assert (a.output_nr, b.output_nr, c.output_nr) == (0, 1, 2) and a.grad_fn is c.grad_fn
    (b * 3).sum().backward()
    assert_close(x.grad, [[0, 0], [0, 0], [3, 3], [3, 3], [0, 0]])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_stack_and_cat_gradcheck(dim):
    a, b, c = leaf(randn(2, 3)), leaf(randn(2, 3)), leaf(randn(2, 3))
    assert gradcheck(lambda a, b, c: stack([a, b, c], dim=dim), [a, b, c])
    d = leaf(randn(2, 1) if dim else randn(4, 3))
    assert gradcheck(lambda a, d: cat([a, d, a], dim=dim if dim != -1 else 1), [a, d])


def test_stack_cat_with_non_grad_members_and_top_level_names():
    a = leaf(randn(2))
    const = cp.Tensor(randn(2), dtype=F64)
    out = stack([const, a])
    assert out.requires_grad and out.grad_fn is not None
    cat([out, stack((a, a))], 0).sum().backward()
    assert_close(a.grad, [3, 3])
    plain = cat([const, const])
    assert not plain.requires_grad and plain.grad_fn is None


def test_broadcast_gradcheck():
    a, b, c = leaf(randn(3, 1)), leaf(randn(4)), leaf(np.array(0.5))
    assert gradcheck(lambda a, b, c: broadcast_tensors(a, b, c), [a, b, c])
    assert gradcheck(lambda a, b: broadcast([a, b])[0] * broadcast([a, b])[1], [a, b])
    views = broadcast_tensors([a, b])
    assert [v.shape for v in views] == [[3, 4], [3, 4]]


def test_views_record_but_share_storage():
    base = leaf(randn(3, 4))
    v = base.T
    assert v.grad_fn is not None and v.data_ptr() == base.data_ptr()
    same = base.contiguous()
    assert same is not base and base.is_leaf and same.grad_fn is not None


# ---- composites ------------------------------------------------------------------------------------
def test_mlp_of_raw_ops_gradcheck():
    x = cp.Tensor(randn(5, 4), dtype=F64)
    w1, b1, w2, b2 = leaf(randn(4, 6)), leaf(randn(6)), leaf(randn(6, 3)), leaf(randn(3))

    def mlp(w1, b1, w2, b2):
        h = (x @ w1 + b1).tanh()
        logits = h @ w2 + b2
        return (logits.exp() / logits.exp().sum(1, keepdims=True)).log().mean()
    assert gradcheck(mlp, [w1, b1, w2, b2])


def test_attention_gradcheck():
    q, k, v = leaf(randn(2, 3, 4)), leaf(randn(2, 5, 4)), leaf(randn(2, 5, 4))
    assert gradcheck(lambda q, k, v: (q @ k.transpose(-2, -1) / math.sqrt(4)).softmax(-1) @ v, [q, k, v])


def test_softmax_log_sum_gradcheck():
    assert gradcheck(lambda x: x.softmax(1).log().sum(), [leaf(randn(3, 5))])


def test_graph_with_shared_subexpressions_matches_numpy():
    x_np = randn(3, 3)
    x = cp.Tensor(x_np, dtype=F64, requires_grad=True)
    y = x.exp()
    z = (y * y.sin() + y).sum() + (x * x).sum()
    z.backward()
    e = np.exp(x_np)
    assert_close(x.grad, e * np.sin(e) + e * e * np.cos(e) + e + 2 * x_np)


def test_float32_training_gradients_match_float64_reference():
    x_np, w_np = randn(8, 5), randn(5, 3)
    x = cp.Tensor(x_np)
    w = cp.Tensor(w_np, requires_grad=True)
    (x @ w).relu().sum().backward()
    assert w.grad.dtype == np.float32
    assert_close(w.grad, x_np.T @ ((x_np @ w_np) > 0), rtol=1e-5, atol=1e-5)


# ---- engine rules ------------------------------------------------------------------------------------
def test_accumulation_across_two_backward_calls_on_different_graphs():
    x = cp.Tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    (x * 3).sum().backward()
    first = x.grad
    (x * x).sum().backward()
    assert_close(x.grad, [3 + 2, 3 + 4])
    assert x.grad is not first and not x.grad.requires_grad and x.grad.grad_fn is None
    assert_close(first, [3, 3])  # the old gradient object is not modified in place


def test_leaf_used_several_times_gets_the_sum():
    x = cp.Tensor([2.0], dtype=F64, requires_grad=True)
    (x * x * x + x + x).backward()
    assert_close(x.grad, [3 * 4 + 2])


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 2)], ids=str)
def test_default_seed_is_ones_for_any_shape(shape):
    x = leaf(randn(*shape))
    (x * 2).backward()
    assert_close(x.grad, np.full(shape, 2.0))


def test_explicit_seed_and_b_backward_b():
    x = cp.Tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    b = x * x
    b.backward(b)  # the seed is b's values: d/dx sum(b * stop(b)) = 2x * x^2
    assert_close(x.grad, [2, 16, 54])
    x.grad = None
    backward([x * 2, x.sum()], [cp.Tensor([1.0, 0.0, 1.0], dtype=F64), None])
    assert_close(x.grad, [3, 1, 3])


def test_seed_of_another_dtype_is_converted():
    x = cp.Tensor([1.0, 2.0], requires_grad=True)
    (x * 2).backward(cp.Tensor([1.0, 1.0], dtype=F64))
    assert x.grad.dtype == np.float32
    assert_close(x.grad, [2, 2])


def test_leaf_backward_and_mixed_dtype_graph():
    x = cp.Tensor([1.0, 2.0], requires_grad=True)
    x.backward()
    assert_close(x.grad, [1, 1])
    x.grad = None
    (x * cp.Tensor([3.0, 4.0], dtype=F64)).sum().backward()  # promotes to float64 forward
    assert x.grad.dtype == np.float32
    assert_close(x.grad, [3, 4])


def test_tensors_not_requiring_grad_are_skipped_and_none_left_is_an_error():
    x = cp.Tensor([1.0, 2.0], requires_grad=True)
    c = cp.Tensor([5.0])
    backward([c, x.sum()])
    assert_close(x.grad, [1, 1])
    with pytest.raises(RuntimeError, match="requires grad"):
        c.backward()
    with pytest.raises(RuntimeError, match="requires grad"):
        backward([c, c * 2])


def test_wrong_gradient_shape_names_both_shapes():
    y = cp.Tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"\[3\].*\[2\]"):
        y.backward(cp.Tensor([1.0, 1.0, 1.0]))
    with pytest.raises(RuntimeError, match="2 gradients for 1 tensors"):
        backward([y], [None, None])


def test_second_backward_needs_retain_graph():
    x = cp.Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    z = (x.exp() * 2).sum()
    z.backward(retain_graph=True)
    z.backward()
    assert_close(x.grad, 2 * np.array([1.0, 2.0]) + 2 * 2 * np.exp([1.0, 2.0]), rtol=1e-5)


def test_backward_frees_saved_tensors():
    x = cp.Tensor(randn(4, 4), requires_grad=True)
    y = x.tanh()
    node = y.grad_fn
    assert len(node.ctx.saved_tensors) == 1
    y.sum().backward()
    assert node.ctx.saved_tensors == []
    with pytest.raises(RuntimeError, match="freed"):
        node.ctx.get_saved_tensors()


def test_graph_without_saved_tensors_can_run_twice():
    x = cp.Tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    assert_close(x.grad, [2, 2])


def test_deep_graph_has_no_recursion_limit():
    x = cp.Tensor([1.0], dtype=F64, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0001 + 0.0
    y.backward()
    assert_close(x.grad, [1.0001 ** 3000], rtol=1e-9)
    y = x
    for _ in range(3000):
        y = y.unsqueeze(0).squeeze(0)
    del y  # tearing the graph down must not recurse either


def test_no_graph_is_built_for_tensors_not_requiring_grad():
    x = cp.Tensor([1.0, 2.0])
    y = x * 2 + x.exp()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf


def test_recorded_outputs_and_comparisons():
    x = cp.Tensor([1.0, -2.0], requires_grad=True)
    y = x * 2
    assert y.requires_grad and not y.is_leaf and type(y.grad_fn).__name__ == "Mul" and y.output_nr == 0
    assert "grad_fn=Mul" in repr(y)
    mask = y > 0
    assert not mask.requires_grad and mask.grad_fn is None


# ---- grad mode ---------------------------------------------------------------------------------------
def test_no_grad_context_and_decorator():
    x = cp.Tensor([1.0], requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2
        with enable_grad():
            assert is_grad_enabled()
            assert (x * 2).requires_grad
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @no_grad()
    def f(t):
        assert not is_grad_enabled()
        return t * 3

    @no_grad
    def g(t):
        return t * 3

    assert not f(x).requires_grad and not g(x).requires_grad and is_grad_enabled()


def test_no_grad_restores_the_mode_after_exceptions():
    with pytest.raises(ValueError):
        with no_grad():
            raise ValueError("boom")
    assert is_grad_enabled()

    @no_grad()
    def fails():
        raise KeyError("boom")
    with pytest.raises(KeyError):
        fails()
    assert is_grad_enabled()
    with no_grad():
        with pytest.raises(ValueError):
            with enable_grad():
                raise ValueError("inner")
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_set_grad_enabled_as_call_and_context():
    try:
        set_grad_enabled(False)
        assert not is_grad_enabled()
        with set_grad_enabled(True):
            assert is_grad_enabled()
        assert not is_grad_enabled()
    finally:
        set_grad_enabled(True)
    with set_grad_enabled(False):
        assert not (cp.Tensor([1.0], requires_grad=True) * 2).requires_grad
    assert is_grad_enabled()

    @set_grad_enabled(False)
    def f():
        return is_grad_enabled()
    assert is_grad_enabled() and f() is False and is_grad_enabled()


def test_requires_grad_default_follows_grad_mode_and_module_names():
    with no_grad():
        assert not cp.Tensor([1.0]).requires_grad_().requires_grad
    assert cp.Tensor([1.0]).requires_grad_().requires_grad
    import clownpiece.autograd as ag
    assert callable(ag.no_grad) and not isinstance(ag.no_grad, type(ag))
    module = importlib.import_module("clownpiece.autograd.no_grad")
    assert module.is_grad_enabled is is_grad_enabled
    assert cp.autograd.backward is backward


def test_inplace_writes_on_leaves_requiring_grad_are_refused_outside_no_grad():
    p = cp.Tensor([1.0, 2.0], requires_grad=True)
    for write in (lambda: p.copy_(cp.Tensor([0.0, 0.0])), lambda: p.fill_(0.0), lambda: p.__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match="in-place"):
            write()
    with no_grad():
        p.copy_(cp.Tensor([3.0, 4.0]))
        p[0] = 7.0
    assert_close(p, [7, 4])
    assert p.is_leaf and p.requires_grad


# ---- custom Functions ------------------------------------------------------------------------------------
class ScaledSquare(Function):
    """y = scale * x**2, written the way the README shows a custom op."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * scale

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * x * (2 * ctx.scale), None  # one gradient per positional input; scale gets None


def test_custom_function_class_and_instance_apply():
    x = cp.Tensor([1.0, -2.0, 3.0], dtype=F64, requires_grad=True)
    y = ScaledSquare.apply(x, 3.0)
    assert isinstance(y.grad_fn, ScaledSquare)
    y.sum().backward()
    assert_close(x.grad, [6, -12, 18])
    assert gradcheck(lambda x: ScaledSquare().apply(x, 0.5), [x])
    node = ScaledSquare()
    node.apply(x, 1.0)
    with pytest.raises(RuntimeError, match="apply it once"):
        node.apply(x, 1.0)


def test_custom_function_without_grad_records_nothing():
    y = ScaledSquare.apply(cp.Tensor([2.0]), 1.0)
    assert not y.requires_grad and y.grad_fn is None


class TwoOutputs(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b, a + b

    @staticmethod
    def backward(ctx, g_prod, g_sum):
        a, b = ctx.get_saved_tensors()
        return g_prod * b + g_sum, g_prod * a + g_sum


def test_custom_function_with_two_outputs_gets_zeros_for_the_unused_one():
    a, b = leaf(randn(3)), leaf(randn(3))
    assert gradcheck(lambda a, b: TwoOutputs.apply(a, b), [a, b])
    a.grad = b.grad = None
    prod, _ = TwoOutputs.apply(a, b)
    prod.sum().backward()
    assert_close(a.grad, to_np(b))


class WrongCount(Function):
    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, g):
        return g


class WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x.sum()

    @staticmethod
    def backward(ctx, g):
        return g


class WrongMath(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * x  # should be 2 * g * x


def test_custom_function_errors():
    x = cp.Tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    with pytest.raises(RuntimeError, match="WrongCount.backward returned 1 gradients.*2 positional inputs"):
        WrongCount.apply(x, x).sum().backward()
    with pytest.raises(RuntimeError, match=r"WrongShape.backward returned a gradient of shape \[\].*\[2\]"):
        WrongShape.apply(x).backward()
    with pytest.raises(GradcheckError, match="input 0.*element"):
        gradcheck(lambda x: WrongMath.apply(x), [x])
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * 2, [cp.Tensor([1.0], requires_grad=True)])


def test_context_keeps_tensors_only_as_shallow_copies():
    ctx = Context()
    t = cp.Tensor([1.0, 2.0], requires_grad=True) * 2
    ctx.save_for_backward(t, 3.0, None, "x")
    saved, = ctx.get_saved_tensors()
    assert saved is not t and saved.data_ptr() == t.data_ptr() and saved.grad_fn is None
    assert ctx.saved_tensors == [saved]


# ---- differentiable surface and cost ---------------------------------------------------------------------
def test_every_table_entry_names_a_tensor_op():
    # every registered method exists as a raw TensorBase op and Tensor records it (autograd.methods.install
    # also refuses, at import, a name TensorBase lacks)
    from clownpiece.autograd import methods
    assert len(methods.RECORDERS) > 80
    for name in methods.RECORDERS:
        raw = inspect.getattr_static(cp.TensorBase, name)
        assert inspect.getattr_static(cp.Tensor, name) is not raw, name


def _launches(fn):
    backend.synchronize()
    before = backend.stats()["launches"]
    fn()
    return backend.stats()["launches"] - before


@pytest.mark.parametrize("op,expected", [("relu", 1), ("tanh", 1), ("sigmoid", 1), ("abs", 1), ("exp", 1),
                                         ("log1p", 1), ("expm1", 1), ("softmax", 1), ("log_softmax", 1)])
def test_backward_formulas_are_single_kernels(op, expected):
    x = cp.Tensor(randn(4, 5), requires_grad=True)
    y = getattr(x, op)()
    seed = cp.Tensor(randn(4, 5))
    # reading the gradient runs its formula if elementwise fusion deferred it
    assert _launches(lambda: (y.backward(seed), x.grad.numpy())) == expected


def test_view_backward_launches_no_kernel():
    x = cp.Tensor(randn(4, 5), requires_grad=True)
    y = x.T.reshape(20).unsqueeze(0)
    y.backward(cp.Tensor(randn(1, 20)))  # warm up: first kernel builds
    x.grad = None
    y = x.T.reshape(20).unsqueeze(0)
    seed = cp.Tensor(randn(1, 20))
    assert _launches(lambda: y.backward(seed)) == 1  # only the copy that makes x.grad contiguous
    assert_close(x.grad, to_np(seed).reshape(5, 4).T)


def test_training_loop_holds_flat_memory():
    x = cp.Tensor(randn(16, 8))
    w = cp.Tensor(randn(8, 4) * 0.1, requires_grad=True)
    b = cp.Tensor(np.zeros(4), requires_grad=True)

    def step():
        loss = (x @ w + b).relu().sum()
        loss.backward()
        with no_grad():
            w.copy_(w - w.grad * 1e-3)
            b.copy_(b - b.grad * 1e-3)
        w.grad = b.grad = None

    for _ in range(20):
        step()
    backend.synchronize()
    in_use = pool_bytes_in_use()
    for _ in range(2000):
        step()
    backend.synchronize()
    assert pool_bytes_in_use() <= in_use
