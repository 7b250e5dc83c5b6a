"""PyTorch's indexing rules (ops/indexing.py): bool masks, index tensors and lists in any position and several
at once, mixed with ints, slices (positive steps, as views), None and `...`; __setitem__ and index_put_ for
all of them; gradients (repeated positions accumulate); device-side range checks; iteration. References are
numpy (the same rules where PyTorch and numpy agree) and, where they differ (an int between advanced
indices), numpy applied PyTorch's way: the ints first."""
import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make
from hypothesis import example, given, settings, strategies as st

import clownpiece as cp
from clownpiece.autograd.gradcheck import gradcheck
from clownpiece.backend import DeviceAssertError

rng = np.random.default_rng(11)
SHAPE = (4, 5, 6)


def _to_cp(idx):
    """A numpy-style index with its arrays as clownpiece tensors (bool arrays as bool masks)."""
    def one(e):
        return cp.tensor(e) if isinstance(e, np.ndarray) else e
    return tuple(one(e) for e in idx) if isinstance(idx, tuple) else one(idx)


MASK = rng.random(SHAPE) > 0.5
MASK2 = rng.random(SHAPE[:2]) > 0.5
IDS = np.array([3, 0, -1, 0])  # repeated and negative ids
J = np.array([[1, 3], [0, 2]])
# (index, where numpy and PyTorch agree): masks of every prefix, ids in every position, several broadcast
# together (adjacent: in place; separated: in front), with slices (steps), None and ...
CASES = [
    MASK, MASK2, (0, MASK[0]), (MASK2, slice(1, 5, 2)), (slice(None), MASK[0][:, :6]),
    IDS, (slice(None), IDS), (Ellipsis, IDS), (IDS, slice(1, 4)), (slice(None, None, 2), slice(None), IDS),
    (IDS, np.array([1, 2, 0, 4])), (J, J), (slice(None), J, np.array([0, 5])), (J, slice(None), np.array([1, 3])),
    (np.array([0, 2]), slice(None), np.array([[1], [5]])), (None, IDS, Ellipsis), (IDS, None, np.array([1, 2, 3, 4])),
    (np.array(2), slice(2, None)), (np.array([], dtype=np.int64),), (np.array([[0], [3]]), slice(None), MASK[0][0]),
    ([0, 2, 2],), [[0, 1], [1, 2]], (slice(1, None, 3), [4, 0]),
]


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_getitem_matches_numpy(case, layout, dtype):
    idx = CASES[case]
    t, ref = make(rng.normal(size=SHAPE), dtype, layout)
    np_idx = tuple(idx) if isinstance(idx, list) and isinstance(idx[0], list) else idx
    assert_close(t[_to_cp(idx)], ref[np_idx], dtype)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_int_index_is_a_view_of_that_row(layout, dtype):
    """t[i] for a plain int (its own fast path in __getitem__): the row as a view, negative ints from the end,
    out-of-range ints raising before any launch; a bool is not taken for an int there (it is refused)."""
    t, ref = make(np.random.default_rng(5).normal(size=SHAPE), dtype, layout)  # own rng: CASES' draws stay
    for i in (0, 3, -1, -4):
        row = t[i]
        assert row._storage is t._storage
        assert_close(row, ref[i], dtype)
        assert_close(row[-2], ref[i][-2], dtype)
    for i in (4, -5):
        with pytest.raises(IndexError, match=f"index {i} is out of bounds for dimension 0 with size 4"):
            t[i]
    with pytest.raises(TypeError, match="unsupported index entry bool"):
        t[True]


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"case{i}" for i in range(len(CASES))])
def test_setitem_matches_numpy_with_broadcast_values(case, dtype):
    idx = CASES[case]
    np_idx = tuple(idx) if isinstance(idx, list) and isinstance(idx[0], list) else idx
    t, ref = make(rng.normal(size=SHAPE), dtype, "transposed")
    ref = ref.copy()
    shape = ref[np_idx].shape
    if _repeats(np_idx):
        value = 2.5  # a number: repeated positions get the same value either way
    else:
        value = rng.normal(size=shape[1:] if shape else ())  # broadcast over the leading dim
    ref[np_idx] = value
    t[_to_cp(idx)] = cp.Tensor(value, dtype=dtype) if isinstance(value, np.ndarray) else value
    assert_close(t, ref, dtype)


def _repeats(np_idx):
    """Whether the index names a position twice (then which value lands there is not defined)."""
    probe = np.zeros(SHAPE)
    np.add.at(probe, np_idx, 1.0)
    return probe.max() > 1


def test_an_int_between_index_tensors_is_applied_first_as_in_pytorch():
    """numpy counts the int as an advanced index (x[0, :, [0, 1]] is (2, 5)); PyTorch selects first, so the
    list is the only advanced index and stays in place: (5, 2). An ellipsis that covers no dim does not
    separate advanced indices either (PyTorch)."""
    t, ref = make(rng.normal(size=SHAPE))
    assert t[0, :, [0, 1]].shape == [5, 2]
    assert_close(t[0, :, [0, 1]], ref[0][:, [0, 1]])
    assert t[[0, 1], 2, [3, 4]].shape == [2]  # adjacent once the int is applied
    assert_close(t[[0, 1], 2, [3, 4]], ref[:, 2][[0, 1], [3, 4]])
    assert t[:, [0, 1], ..., [2, 3]].shape == [4, 2]  # the ellipsis covers no dim: adjacent (numpy: [2, 4])
    assert t[[0, 1], ..., [2, 3]].shape == [2, 5]  # here it covers one: in front
    v = cp.zeros(SHAPE)
    v[0, :, [0, 1]] = cp.Tensor(np.arange(10.0).reshape(5, 2))
    expected = np.zeros(SHAPE)
    expected[0][:, [0, 1]] = np.arange(10.0).reshape(5, 2)
    assert_close(v, expected)


def test_positive_step_slices_are_views_and_negative_steps_raise():
    t, ref = make(rng.normal(size=SHAPE))
    v = t[::2, 1::3, ::2]
    assert v._storage is t._storage and v.shape == list(ref[::2, 1::3, ::2].shape)
    assert_close(v, ref[::2, 1::3, ::2])
    v[:] = 0.0
    ref[::2, 1::3, ::2] = 0.0
    assert_close(t, ref)
    for bad in (slice(None, None, -1), slice(3, 0, -2), slice(0, 4, 0)):
        with pytest.raises(ValueError, match="step"):
            t[bad]
        with pytest.raises(ValueError, match="step"):
            t[bad] = 1.0


def test_masks_and_ids_of_every_dtype():
    data = rng.integers(-5, 5, SHAPE)
    for dtype in (cp.int64, cp.int32, cp.bool, cp.float16):
        t = cp.tensor(data).to(dtype)
        ref = data.astype(dtype)
        got = t[cp.tensor(MASK2), 1:]
        assert got.dtype is dtype
        np.testing.assert_array_equal(got.numpy(), ref[MASK2, 1:])
        t[cp.tensor(IDS, dtype=cp.int32), 2] = 1
        ref[IDS, 2] = 1
        np.testing.assert_array_equal(t.numpy(), ref)
    # the course's float index tensors gather rows (integral values)
    t, ref = make(rng.normal(size=SHAPE))
    assert_close(t[cp.Tensor([2.0, 0.0]), :, cp.Tensor([1.0, 1.0])], ref[[2, 0], :, [1, 1]])


def test_bool_mask_setitem_with_a_number_reads_nothing_back():
    t = cp.Tensor(np.arange(6.0).reshape(2, 3))
    t.numpy()
    before = cp.backend.stats()["d2h_count"]
    t[t > 2] = 0.0  # the example: one masked fill
    t[:, cp.tensor([True, False, True])] = -1.0
    assert cp.backend.stats()["d2h_count"] == before
    assert t.tolist() == [[-1.0, 1.0, -1.0], [-1.0, 0.0, -1.0]]
    u = cp.Tensor(np.arange(6.0).reshape(2, 3))
    assert u[u > 2].tolist() == [3.0, 4.0, 5.0]  # the t[t > 2]: the values, not rows


def test_index_put_accumulates_repeated_positions():
    t, ref = make(np.zeros(SHAPE))
    ref = ref.copy()
    rows, cols = np.array([0, 1, 0, 0]), np.array([2, 3, 2, 2])
    values = rng.normal(size=(4, 6))
    t.index_put_((cp.tensor(rows), cp.tensor(cols)), cp.Tensor(values), accumulate=True)
    np.add.at(ref, (rows, cols), values)
    assert_close(t, ref)
    t.index_put_((cp.tensor(MASK2),), 1.0, accumulate=True)
    ref[MASK2] += 1.0
    assert_close(t, ref)


@pytest.mark.parametrize("idx", [(IDS, slice(None), np.array([0, 1, 1, 5])), (slice(1, None, 2), J), MASK2,
                                 (slice(None), MASK[0][:, 2], 2), (np.array([[0], [3]]), np.array([1, 1, 4]))])
def test_gradients_accumulate_at_repeated_positions(idx):
    x = cp.Tensor(rng.normal(size=SHAPE), dtype=np.float64, requires_grad=True)
    cidx = _to_cp(idx)
    assert gradcheck(lambda x: x[cidx] * x[cidx], [x])
    y = x[cidx]
    w = rng.normal(size=y.shape)
    (y * cp.Tensor(w, dtype=np.float64)).sum().backward()
    expected = np.zeros(SHAPE)
    np.add.at(expected, idx, w)
    assert_close(x.grad, expected)


def test_setitem_gradients_reach_the_value_and_the_rest():
    x = cp.Tensor(rng.normal(size=SHAPE), dtype=np.float64, requires_grad=True)
    v = cp.Tensor(rng.normal(size=(6,)), dtype=np.float64, requires_grad=True)

    def f(x, v):
        y = x * 1.0
        y[[0, 2], [1, 3]] = v * 2.0
        return y * y
    assert gradcheck(f, [x, v])


def test_out_of_range_ids_raise_at_the_next_read_naming_the_op_and_value():
    t = cp.Tensor(np.zeros((3, 4)))
    y = t[:, cp.tensor([0, 7])]  # nothing is read here
    with pytest.raises(DeviceAssertError, match=r"__getitem__: index 7 is out of bounds for a dimension of size 4"):
        y.numpy()
    assert np.isnan(y.numpy()[:, 1]).all()  # cleared by the raise; the bad column is NaN
    t[cp.tensor([1, -4]), 0] = 5.0
    with pytest.raises(IndexError, match="index -4 is out of bounds for a dimension of size 3"):
        t.sum().item()
    assert t.numpy()[:, 0].tolist() == [0.0, 5.0, 0.0]
    with pytest.raises(IndexError, match="shape of the mask"):
        t[cp.tensor([True, False])]
    with pytest.raises(IndexError, match="could not be broadcast"):
        t[[0, 1], [0, 1, 2]]
    with pytest.raises(IndexError, match="ints or bools"):
        t[[0.5, 1.0]]


def test_iteration_unpacking_item_and_tolist_types():
    t = cp.tensor([[1, 2], [3, 4]])
    a, b = t
    assert a.tolist() == [1, 2] and b.tolist() == [3, 4]
    assert [row.tolist() for row in t] == [[1, 2], [3, 4]]
    assert type(t[0, 0].item()) is int and type((t > 2).tolist()[0][0]) is bool
    assert type(cp.Tensor([1.5])[0].item()) is float
    with pytest.raises(TypeError):
        iter(cp.tensor(3))


def test_a_jitted_step_with_a_gather_reports_bad_ids_at_the_next_read():
    table = cp.Tensor(np.arange(12.0).reshape(6, 2))

    @cp.jit
    def rows(ids):
        return table[ids] * 2.0

    good = rows(cp.tensor([0, 5]))  # the first call captures (the error word is made inside it)
    assert good.tolist() == [[0.0, 2.0], [20.0, 22.0]]
    assert rows(cp.tensor([1, 2])).tolist() == [[4.0, 6.0], [8.0, 10.0]]  # a replay
    bad = rows(cp.tensor([1, 6]))
    with pytest.raises(DeviceAssertError, match="index 6 is out of bounds"):
        bad.numpy()
    assert rows(cp.tensor([3, 3])).tolist() == [[12.0, 14.0], [12.0, 14.0]]


# ---- random index forms (hypothesis) ----------------------------------------------------------------------
# An index of ints, positive-step slices, None, one `...`, int lists and int32/int64 tensors (broadcast
# together) and at most one bool mask, on a random shape. The reference is numpy applied PyTorch's way
# (see the module docstring): the ints first (a basic index, a view), then the rest with `...` written out
# as the full slices it stands for, which is where numpy and PyTorch agree.
@st.composite
def index_case(draw):
    nd = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    # a kind per dim (a run of "mask" dims is one mask: the first run, later ones become full slices), then
    # `...` in place of a run of entries (perhaps none) or a dropped tail, and up to two Nones
    dim_kinds = draw(st.lists(st.sampled_from(["ids", "int", "ids", "slice", "mask"]), min_size=nd, max_size=nd))
    plan, d = [], 0  # (kind, first dim, dims covered)
    while d < nd:
        k = 1
        while dim_kinds[d] == "mask" and d + k < nd and dim_kinds[d + k] == "mask":
            k += 1
        if dim_kinds[d] == "mask" and any(p[0] == "mask" for p in plan):
            plan += [("full", d + i, 1) for i in range(k)]
        else:
            plan.append((dim_kinds[d], d, k))
        d += k
    if draw(st.booleans()):
        i = draw(st.integers(0, len(plan)))
        j = draw(st.integers(i, len(plan)))
        first = plan[i][1] if i < len(plan) else nd
        plan = plan[:i] + [("ellipsis", first, sum(p[2] for p in plan[i:j]))] + plan[j:]
    else:
        plan = plan[:len(plan) - draw(st.integers(0, len(plan)))]
    for _ in range(draw(st.integers(0, 2))):
        plan.insert(draw(st.integers(0, len(plan))), ("none", 0, 0))
    masks = {i: np.array(draw(st.lists(st.booleans(), min_size=int(np.prod(shape[d:d + k])),
                                       max_size=int(np.prod(shape[d:d + k]))))).reshape(shape[d:d + k])
             for i, (kind, d, k) in enumerate(plan) if kind == "mask"}
    if masks:
        count = int(next(iter(masks.values())).sum())
        id_shapes = st.sampled_from([(1,), (count,)])
    else:
        target = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
        id_shapes = st.builds(lambda keep, ones: tuple(1 if o else s for s, o in zip(target[-keep:], ones)),
                              st.integers(1, len(target)), st.lists(st.booleans(), min_size=2, max_size=2))
    entries = []  # (entry, its kind) in order
    for i, (kind, d, k) in enumerate(plan):
        size = shape[d] if d < nd else 1
        if kind == "int":
            e = draw(st.integers(-size, size - 1))
            entries.append((e, kind))
        elif kind in ("slice", "full"):
            e = (slice(draw(st.one_of(st.none(), st.integers(-size - 1, size + 1))),
                       draw(st.one_of(st.none(), st.integers(-size - 1, size + 1))),
                       draw(st.sampled_from([None, 1, 2, 3]))) if kind == "slice" else slice(None))
            entries.extend([(e, "slice")] * (k if kind == "full" else 1))
        elif kind == "none":
            entries.append((None, kind))
        elif kind == "ellipsis":
            entries.append((Ellipsis, kind))
        elif kind == "mask":
            entries.append((masks[i], kind))
        else:
            ids_shape = draw(id_shapes)
            n = int(np.prod(ids_shape))
            ids = np.array(draw(st.lists(st.integers(-size, size - 1), min_size=n, max_size=n)),
                           np.int64).reshape(ids_shape)
            form = draw(st.sampled_from(["list", "int64", "int32"]))
            entries.append((ids.tolist() if form == "list" else ids.astype(form), "ids"))
    layout = draw(st.sampled_from(LAYOUTS))
    return shape, entries, layout


def _pytorch_index_on_numpy(shape, entries):
    """(ints-first basic index, the rest) for numpy; `...` written out as full slices."""
    nd, named = len(shape), sum(np.ndim(e) if k == "mask" else k not in ("none", "ellipsis") for e, k in entries)
    expanded = []
    for e, kind in entries:
        if kind == "ellipsis":
            expanded += [(slice(None), "slice")] * (nd - named)
        else:
            expanded.append((np.asarray(e, np.int64) if kind == "ids" else e, kind))
    ints = tuple(e if k == "int" else slice(None) for e, k in expanded for _ in range(np.ndim(e) if k == "mask" else
                                                                                    k != "none"))
    rest = tuple(e for e, k in expanded if k != "int")
    return ints + (Ellipsis,), rest


def _cp_index(entries):
    return tuple(cp.tensor(e) if isinstance(e, np.ndarray) else e for e, _ in entries)


@given(index_case())
@settings(max_examples=100, deadline=None, derandomize=True)
# always tried: where numpy's own rule differs (an int or an empty `...` apart from the index tensors), and
# index tensors apart after a leading slice (their dims go in front, not where the first one stood)
@example(((4, 5, 6), [(0, "int"), (slice(None), "slice"), (np.array([0, 1]), "ids")], "contiguous"))
@example(((3, 4, 5, 6), [(slice(None), "slice"), ([0, 2], "ids"), (slice(1, None), "slice"),
                         (np.array([1, 5]), "ids")], "transposed"))
@example(((3, 4, 5), [(None, "none"), (np.array([True, False, True]), "mask"), (None, "none"),
                      (np.array([[3], [0]], np.int32), "ids")], "contiguous"))
@example(((4, 5, 6), [(slice(None), "slice"), ([2, 0], "ids"), (None, "none"), (1, "int")], "transposed"))
@example(((4, 5, 6), [(slice(1, None, 2), "slice"), ([0, 1], "ids"), (Ellipsis, "ellipsis"),
                      (np.array([[2], [3]], np.int32), "ids")], "sliced"))
def test_random_index_forms_get_and_set_like_numpy(case):
    shape, entries, layout = case
    data = np.arange(1.0, np.prod(shape) + 1).reshape(shape)  # distinct values: positions are checked
    t, ref = make(data, np.float32, layout)
    ints, rest = _pytorch_index_on_numpy(shape, entries)
    want = ref[ints][rest]
    got = t[_cp_index(entries)]
    assert got.shape == list(want.shape), (entries, got.shape, want.shape)
    assert_close(got, want)
    probe = np.zeros(shape)
    np.add.at(probe[ints], rest, 1.0)
    full = -np.arange(1.0, want.size + 1).reshape(want.shape)
    if probe.max() > 1:
        value = 0.5  # a position named twice takes one of its values: a number makes that one value
    else:  # a value of the result's shape, or one broadcast along its first dim
        value = full if full.ndim == 0 or full.shape[0] % 2 else full[-1:]
    expected = ref.copy()
    expected[ints][rest] = value  # ints is a basic index: a view of expected
    t[_cp_index(entries)] = value if np.isscalar(value) else cp.Tensor(value)
    assert_close(t, expected)
