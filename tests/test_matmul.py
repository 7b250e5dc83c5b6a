"""matmul / dot / mm / bmm / linear against numpy float64: torch.matmul's rank rules, batch broadcasting,
strided operands read in place, every kernel strategy, errors before launch."""
import itertools

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch
from hypothesis import given, settings, strategies as st

import clownpiece as cp
from clownpiece import backend
from clownpiece._layout import ShapeError
from clownpiece.ops import matmul as linalg_ops

rng = np.random.default_rng(0)


def check(t, ref, dtype):
    """float32 sums of a few hundred products carry ~1e-6 relative error; leave a margin."""
    if np.dtype(dtype) == np.float32:
        assert_close(t, ref, dtype, rtol=1e-4, atol=2e-4)
    else:
        assert_close(t, ref, dtype)


def pair(shape_a, shape_b, dtype, layout_a="contiguous", layout_b="contiguous"):
    a, a_np = make(rng.normal(size=shape_a), dtype, layout_a)
    b, b_np = make(rng.normal(size=shape_b), dtype, layout_b)
    return a, a_np, b, b_np


RANK_CASES = [
    ((5,), (5,)),                    # 1-D @ 1-D -> 0-dim
    ((5,), (5, 3)),                  # 1-D @ 2-D -> [3]
    ((3, 5), (5,)),                  # 2-D @ 1-D -> [3]
    ((3, 5), (5, 4)),
    ((2, 1, 3, 4), (1, 5, 4, 6)),    # batch dims broadcast both ways -> [2, 5, 3, 6]
    ((3, 2, 4), (1, 4, 5)),
    ((3, 5), (2, 5, 4)),             # 2-D left broadcast over the right's batch -> [2, 3, 4]
    ((5,), (2, 5, 4)),               # -> [2, 4]
    ((2, 1, 3, 5), (5,)),            # -> [2, 1, 3]
    ((4, 3, 5), (5, 2)),             # shared right operand: batch folded into rows
    ((2, 3, 1, 5), (3, 5, 1)),
]


@pytest.mark.parametrize("shapes", RANK_CASES, ids=str)
def test_rank_rules_and_broadcast(shapes, dtype):
    a, a_np, b, b_np = pair(*shapes, dtype)
    out = a @ b
    assert isinstance(out, cp.Tensor)
    assert out.shape == list(np.matmul(a_np, b_np).shape)
    check(out, np.matmul(a_np, b_np), dtype)
    check(a.matmul(b), np.matmul(a_np, b_np), dtype)
    check(a.dot(b), np.matmul(a_np, b_np), dtype)
    check(b.__rmatmul__(a), np.matmul(a_np, b_np), dtype)


@pytest.mark.parametrize("layout_a", LAYOUTS)
@pytest.mark.parametrize("layout_b", LAYOUTS)
def test_strided_operands_read_in_place(layout_a, layout_b, dtype):
    a, a_np, b, b_np = pair((2, 7, 9), (2, 9, 6), dtype, layout_a, layout_b)
    backend.reset_stats()
    out = a @ b
    assert backend.stats()["launches"] == 1  # no copy of a transposed or sliced operand
    check(out, a_np @ b_np, dtype)


def test_transposed_views_like_autograd_backward(dtype):
    g, g_np, b, b_np = pair((4, 6, 5), (4, 7, 5), dtype)
    check(g @ b.mT, g_np @ np.swapaxes(b_np, -1, -2), dtype)
    c, c_np = make(rng.normal(size=(4, 6, 3)), dtype, "transposed")
    check(g.mT @ c, np.swapaxes(g_np, -1, -2) @ c_np, dtype)


def test_expanded_batch_operands(dtype):
    a, a_np = make(rng.normal(size=(1, 3, 4)), dtype)
    b, b_np = make(rng.normal(size=(5, 4, 2)), dtype, "sliced")
    a_big = a.broadcast_to((5, 3, 4))  # stride 0 in the batch dim
    check(a_big @ b, np.broadcast_to(a_np, (5, 3, 4)) @ b_np, dtype)
    col, col_np = make(rng.normal(size=(4, 1)), dtype)
    check(a_big @ col.broadcast_to((4, 6)), np.broadcast_to(a_np, (5, 3, 4)) @ np.broadcast_to(col_np, (4, 6)),
          dtype)


def test_odd_sizes(dtype):
    sizes = (1, 3, 17, 65, 130)
    for m, k, n in itertools.product(sizes, repeat=3):
        a, a_np, b, b_np = pair((m, k), (k, n), dtype)
        check(a @ b, a_np @ b_np, dtype)


def test_packed_path_size(dtype):
    assert linalg_ops._choose_path(400, 257, 330, backend.device()) == "packed"
    assert linalg_ops._choose_path(256, 256, 256, backend.device()) == "packed"
    # a large product with too few output tiles to share out: the block kernel's smaller work-items
    assert linalg_ops._choose_path(8, 512, 2048, backend.device()) == "block"
    a, a_np, b, b_np = pair((8, 2048), (2048, 512), dtype)
    check(a @ b, a_np @ b_np, dtype)
    for layout_a, layout_b in [("contiguous", "contiguous"), ("transposed", "sliced")]:
        a, a_np, b, b_np = pair((400, 330), (330, 257), dtype, layout_a, layout_b)
        check(a @ b, a_np @ b_np, dtype)
    a, a_np, b, b_np = pair((2, 1, 70, 65), (3, 65, 33), dtype)
    check(a @ b, a_np @ b_np, dtype)


@pytest.mark.parametrize("path", ["block", "direct", "packed", "tiled"])
def test_every_kernel_strategy(path, dtype, monkeypatch):
    """Force each strategy (the GPU kernels run on PoCL too) over edges, batches and strides."""
    monkeypatch.setattr(linalg_ops, "_choose_path", lambda *args: path)
    monkeypatch.setattr(linalg_ops, "_plans", {})  # launch plans cached with the real choice
    for (sa, sb), (la, lb) in itertools.product(
            [((1, 1), (1, 1)), ((9, 5), (5, 3)), ((33, 17), (17, 40)), ((2, 1, 19, 7), (3, 7, 35)),
             ((6,), (6,)), ((4, 2, 6), (6,)), ((0, 4), (4, 3)), ((3, 0), (0, 5))],
            [("contiguous", "contiguous"), ("transposed", "sliced")]):
        a, a_np, b, b_np = pair(sa, sb, dtype, la, lb)
        check(a @ b, np.matmul(a_np, b_np), dtype)
    x, x_np = make(rng.normal(size=(2, 11, 13)), dtype, "sliced")
    w, w_np = make(rng.normal(size=(37, 13)), dtype, "transposed")
    bias, bias_np = make(rng.normal(size=(37,)), dtype, "sliced")
    check(x.linear(w, bias), x_np @ w_np.T + bias_np, dtype)


@pytest.mark.parametrize("m", [1, 3, 5, 9, 17])
def test_cpu_block_kernel_edges(m, dtype, monkeypatch):
    """The CPU block kernel's blocks (1, 4 or 8 rows x 4 or 8 columns) with partial edge blocks; B's
    columns contiguous (vector loads at unaligned offsets), strided or partial; batches and a bias."""
    monkeypatch.setattr(linalg_ops, "_choose_path", lambda *args: "block")
    monkeypatch.setattr(linalg_ops, "_plans", {})
    for n, la, lb in itertools.product((1, 4, 5, 8, 13, 16), ("contiguous", "transposed"), ("sliced", "transposed")):
        a, a_np, b, b_np = pair((m, 6), (6, n), dtype, la, lb)
        check(a @ b, a_np @ b_np, dtype)
        a, a_np, b, b_np = pair((3, m, 2), (3, 2, n), dtype, la, lb)
        check(a @ b, a_np @ b_np, dtype)
        bias, bias_np = make(rng.normal(size=(n,)), dtype, "sliced")
        check(a.linear(b[0].mT, bias), a_np @ b_np[0] + bias_np, dtype)


def test_size_zero_dims(dtype):
    a, a_np, b, b_np = pair((3, 0), (0, 4), dtype)
    check(a @ b, np.zeros((3, 4)), dtype)  # empty inner dim: zeros
    for sa, sb in [((0, 3), (3, 4)), ((2, 0, 3), (3, 5)), ((0, 2, 3), (1, 3, 4)), ((3, 4), (4, 0)), ((0,), (0,))]:
        a, a_np, b, b_np = pair(sa, sb, dtype)
        out = a @ b
        assert out.shape == list(np.matmul(a_np, b_np).shape)
        check(out, np.matmul(a_np, b_np), dtype)


def test_mixed_dtypes_promote_to_float64():
    a, a_np, _, _ = pair((3, 4), (1,), np.float32)
    b, b_np = make(rng.normal(size=(4, 2)), np.float64)
    for out in (a @ b, b.mT @ a.mT):
        assert out.dtype == np.float64
    check(a @ b, a_np.astype(np.float32).astype(np.float64) @ b_np, np.float64)
    bias = cp.Tensor(np.ones(2), dtype=np.float64)
    assert a.linear(b.mT, bias).dtype == np.float64


def test_mm_and_bmm(dtype):
    a, a_np, b, b_np = pair((3, 4), (4, 5), dtype)
    check(a.mm(b), a_np @ b_np, dtype)
    a, a_np, b, b_np = pair((2, 3, 4), (2, 4, 5), dtype, "transposed")
    check(a.bmm(b), a_np @ b_np, dtype)
    with pytest.raises(ShapeError):
        a.mm(b)
    with pytest.raises(ShapeError):
        a.bmm(b[0])


@pytest.mark.parametrize("x_shape", [(7,), (5, 7), (2, 3, 7)], ids=str)
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear(x_shape, with_bias, dtype):
    x, x_np = make(rng.normal(size=x_shape), dtype, "sliced")
    w, w_np = make(rng.normal(size=(4, 7)), dtype)
    bias, bias_np = make(rng.normal(size=(4,)), dtype) if with_bias else (None, 0.0)
    backend.reset_stats()
    out = x.linear(w, bias)
    assert backend.stats()["launches"] == 1  # fused: no transpose copy, bias added in the same kernel
    check(out, x_np @ w_np.T + bias_np, dtype)


def test_linear_strided_weight_and_expanded_bias(dtype):
    x, x_np = make(rng.normal(size=(6, 70)), dtype)
    w, w_np = make(rng.normal(size=(90, 70)), dtype, "transposed")  # weight stored [in, out]
    b1, b1_np = make(rng.normal(size=(1,)), dtype)
    check(x.linear(w, b1.broadcast_to((90,))), x_np @ w_np.T + b1_np, dtype)
    big, big_np = make(rng.normal(size=(400, 330)), dtype)  # the packed path, bias added at the store
    wb, wb_np = make(rng.normal(size=(257, 330)), dtype, "sliced")
    bias, bias_np = make(rng.normal(size=(257,)), dtype)
    assert linalg_ops._choose_path(400, 257, 330, backend.device()) == "packed"
    check(big.linear(wb, bias), big_np @ wb_np.T + bias_np, dtype)


def test_linear_empty_input_dim_gives_bias(dtype):
    x = cp.Tensor(np.zeros((3, 0)), dtype=dtype)
    w = cp.Tensor(np.zeros((2, 0)), dtype=dtype)
    bias, bias_np = make(rng.normal(size=(2,)), dtype)
    check(x.linear(w, bias), np.broadcast_to(bias_np, (3, 2)), dtype)


def _raises_before_launch(exc, fn, *needles):
    with no_launch(), pytest.raises(exc) as info:
        fn()
    for needle in needles:
        assert needle in str(info.value)


def test_errors_raise_before_any_launch():
    a = cp.Tensor(np.ones((2, 3)))
    b = cp.Tensor(np.ones((4, 5)))
    _raises_before_launch(ShapeError, lambda: a @ b, "[2, 3]", "[4, 5]")
    _raises_before_launch(RuntimeError, lambda: a @ b, "matmul")
    c = cp.Tensor(np.ones((2, 3, 4)))
    d = cp.Tensor(np.ones((3, 4, 5)))
    _raises_before_launch(ShapeError, lambda: c @ d, "[2, 3, 4]", "[3, 4, 5]")
    s = cp.Tensor(2.0)
    _raises_before_launch(ShapeError, lambda: s @ a, "[]", "[2, 3]")
    _raises_before_launch(ShapeError, lambda: a.dot(s), "[2, 3]", "[]")
    v = cp.Tensor(np.ones(4))
    _raises_before_launch(ShapeError, lambda: v @ cp.Tensor(np.ones(3)), "[4]", "[3]")
    _raises_before_launch(ShapeError, lambda: a @ v, "[2, 3]", "[4]")
    # a mixed-dtype operand is not converted before the shapes are checked
    _raises_before_launch(ShapeError, lambda: a @ cp.Tensor(np.ones((4, 2)), dtype=np.float64))


def test_non_tensor_operands_are_type_errors():
    a = cp.Tensor(np.ones((2, 2)))
    for bad in (2, 2.5, [[1.0, 0.0], [0.0, 1.0]], np.eye(2)):
        _raises_before_launch(TypeError, lambda: a.matmul(bad))
        _raises_before_launch(TypeError, lambda: a @ bad)
    _raises_before_launch(TypeError, lambda: 2 @ a)
    _raises_before_launch(TypeError, lambda: np.eye(2) @ a)
    _raises_before_launch(TypeError, lambda: a.linear(np.eye(2)))


def test_linear_errors():
    x = cp.Tensor(np.ones((3, 4)))
    w = cp.Tensor(np.ones((5, 4)))
    _raises_before_launch(ShapeError, lambda: x.linear(cp.Tensor(np.ones((5, 3)))), "[3, 4]", "[5, 3]")
    _raises_before_launch(ShapeError, lambda: x.linear(cp.Tensor(np.ones(4))), "weight [4]")
    _raises_before_launch(ShapeError, lambda: x.linear(w, cp.Tensor(np.ones(4))), "bias [4]")
    _raises_before_launch(ShapeError, lambda: cp.Tensor(1.0).linear(w), "input []")


dims = st.integers(1, 5)


@st.composite
def matmul_shapes(draw):
    """Random ranks 1-4, inner dims that agree, batch dims that broadcast (some set to 1 or dropped)."""
    m, k, n = draw(dims), draw(dims), draw(dims)
    batch = draw(st.lists(dims, max_size=2))
    a_batch = [draw(st.sampled_from([s, 1])) for s in batch]
    b_batch = [draw(st.sampled_from([s, 1])) for s in batch][draw(st.integers(0, len(batch))):]
    a_shape = (k,) if draw(st.booleans()) and not a_batch else tuple(a_batch) + (m, k)
    b_shape = (k,) if draw(st.booleans()) and not b_batch else tuple(b_batch) + (k, n)
    return a_shape, b_shape, draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(LAYOUTS))


@settings(max_examples=30, deadline=None)
@given(matmul_shapes(), st.sampled_from([np.float32, np.float64]))
def test_random_shapes_match_numpy(case, dtype):
    a_shape, b_shape, layout_a, layout_b = case
    a, a_np, b, b_np = pair(a_shape, b_shape, dtype, layout_a, layout_b)
    check(a @ b, np.matmul(a_np, b_np), dtype)
