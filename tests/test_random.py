"""Random fills: the Philox4x32-10 stream against an independent numpy reference, seeding, statistics,
fills through views, bernoulli/dropout masks, errors."""
import numpy as np
import pytest
from conftest import make, no_launch

import clownpiece as cp
from clownpiece import backend, set_grad_enabled
from clownpiece.factories import empty, manual_seed, zeros

N = 100_000
SIGMA5 = 5 / np.sqrt(N)  # five standard errors of a mean of N unit-variance samples


def philox4x32_10(ctr, key):
    """Reference Philox4x32-10 over arrays: ctr is (4, m) uint64 words, key two ints; returns (4, m)."""
    c = [np.asarray(w, np.uint64) for w in ctr]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    lo32 = np.uint64(0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & lo32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & lo32]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & lo32, (k1 + np.uint64(0xBB67AE85)) & lo32
    return c


def reference_words(seed, first, n):
    """The four words element i of a fill draws: counter first + i, key = the seed's two halves."""
    ctr = np.arange(first, first + n, dtype=np.uint64)
    zero = np.zeros(n, np.uint64)
    return philox4x32_10([ctr & np.uint64(0xFFFFFFFF), ctr >> np.uint64(32), zero, zero],
                         (seed & 0xFFFFFFFF, seed >> 32))


def reference_unit(words, dtype):
    if dtype == np.float32:
        return (words[0] >> np.uint64(8)).astype(np.float64) * 2.0 ** -24
    high, low = words[0] >> np.uint64(5), words[1] >> np.uint64(6)
    return (high * np.uint64(1 << 26) + low).astype(np.float64) * 2.0 ** -53


def test_reference_philox_matches_random123_known_answers():
    kat = [  # (counter, key, expected) from Random123's kat_vectors
        ([0, 0, 0, 0], (0, 0), [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, (0xFFFFFFFF, 0xFFFFFFFF), [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], (0xA4093822, 0x299F31D0),
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    for ctr, key, expected in kat:
        got = philox4x32_10([np.array([w], np.uint64) for w in ctr], key)
        assert [int(w[0]) for w in got] == expected


def test_uniform_is_the_philox_stream(dtype):
    seed = 0x1234_5678_9ABC  # both key words nonzero
    manual_seed(seed)
    first = empty(1000, dtype=dtype).uniform_()
    second = empty(300, dtype=dtype).uniform_(-2.0, 3.0)  # the next call takes the next counters
    u1 = reference_unit(reference_words(seed, 0, 1000), dtype)
    u2 = reference_unit(reference_words(seed, 1000, 300), dtype)
    tol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(first.numpy(), u1, rtol=0, atol=tol)
    np.testing.assert_allclose(second.numpy(), -2.0 + 5.0 * u2, rtol=0, atol=5 * tol)


def test_normal_is_box_muller_of_the_stream(dtype):
    seed = 99
    manual_seed(seed)
    got = empty(2000, dtype=dtype).normal_(1.5, 2.0).numpy()
    w = reference_words(seed, 0, 2000)
    u1 = 1.0 - reference_unit(w, dtype)
    u2 = reference_unit(w[2:], dtype)
    ref = 1.5 + 2.0 * np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("fill", ["uniform_", "normal_", "bernoulli_", "dropout_mask"])
def test_same_seed_same_stream_different_seed_different_stream(fill, dtype):
    def draw(seed):
        manual_seed(seed)
        a = getattr(empty(4, 64, dtype=dtype), fill)()
        b = getattr(empty(4, 64, dtype=dtype), fill)()
        return a.numpy(), b.numpy()
    a1, b1 = draw(7)
    a2, b2 = draw(7)
    a3, _ = draw(8)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(a1, b1)  # successive calls take fresh counters
    assert not np.array_equal(a1, a3)


def test_seed_arguments():
    manual_seed(2 ** 64 + 5)  # reduced modulo 2**64, like a 64-bit generator seed
    a = cp.factories.rand(10).numpy()
    manual_seed(5)
    np.testing.assert_array_equal(a, cp.factories.rand(10).numpy())
    assert cp.factories.initial_seed() == 5
    with pytest.raises(TypeError, match="manual_seed"):
        manual_seed(1.5)


def test_normal_statistics(dtype):
    manual_seed(1)
    x = empty(N, dtype=dtype).normal_().numpy().astype(np.float64)
    assert abs(x.mean()) < SIGMA5
    assert abs(x.std() - 1) < 5 / np.sqrt(2 * N)
    within_one = np.mean(np.abs(x) < 1)  # 68.27% of a normal lies within one sigma
    assert abs(within_one - 0.682689) < 5 * np.sqrt(0.6827 * 0.3173 / N)
    y = empty(N, dtype=dtype).normal_(mean=3.0, std=0.5).numpy().astype(np.float64)
    assert abs(y.mean() - 3.0) < 0.5 * SIGMA5
    assert abs(y.std() - 0.5) < 0.5 * 5 / np.sqrt(2 * N)


def test_uniform_statistics(dtype):
    manual_seed(2)
    x = empty(N, dtype=dtype).uniform_(-2.0, 3.0).numpy().astype(np.float64)
    assert x.min() >= -2.0 and x.max() <= 3.0
    width_sd = 5 / np.sqrt(12)
    assert abs(x.mean() - 0.5) < width_sd * SIGMA5
    assert abs(x.var() - 25 / 12) < 0.05
    counts, _ = np.histogram(x, bins=10, range=(-2, 3))  # each bin ~ Binomial(N, 0.1)
    assert np.all(np.abs(counts - N / 10) < 5 * np.sqrt(N * 0.1 * 0.9))
    u = empty(N, dtype=dtype).uniform_().numpy()
    assert u.min() >= 0.0 and u.max() < 1.0


@pytest.mark.parametrize("layout", ["transposed", "sliced"])
@pytest.mark.parametrize("fill", ["uniform_", "normal_", "bernoulli_"])
def test_fill_through_noncontiguous_view(layout, fill, dtype):
    # the view receives exactly the values a contiguous fill of the same shape gets, in logical order
    manual_seed(11)
    expected = getattr(empty(5, 7, dtype=dtype), fill)().numpy()
    view, _ = make(np.zeros((5, 7)), dtype, layout)
    before = view.numpy()
    manual_seed(11)
    assert getattr(view, fill)() is view
    np.testing.assert_array_equal(view.numpy(), expected)
    assert not np.array_equal(before, expected)


def test_fill_through_view_leaves_the_rest_of_the_storage(dtype):
    base = zeros(6, 8, dtype=dtype)
    base.narrow(1, 2, 3).transpose(0, 1).uniform_(5.0, 6.0)
    got = base.numpy()
    assert np.all((got[:, 2:5] >= 5.0) & (got[:, 2:5] <= 6.0))
    np.testing.assert_array_equal(np.delete(got, [2, 3, 4], axis=1), 0.0)


def test_fill_expanded_view_writes_the_shared_element(dtype):
    # a stride-0 view aliases one element per row: the fill must still land inside the base storage
    base = zeros(3, 1, dtype=dtype)
    base.broadcast_to((3, 4)).normal_()
    assert np.all(base.numpy() != 0)


def test_fills_are_one_launch_and_never_read_back(dtype):
    t = empty(1000, dtype=dtype)
    backend.synchronize()
    before = backend.stats()
    t.uniform_()
    t.normal_()
    t.bernoulli_(0.3)
    m = t.dropout_mask(0.2)
    after = backend.stats()
    assert after["launches"] - before["launches"] == 4
    assert after["d2h_count"] == before["d2h_count"] and after["h2d_count"] == before["h2d_count"]
    assert m.shape == [1000]


def test_zero_dim_and_empty(dtype):
    s = cp.Tensor(0.0, dtype=dtype).uniform_(2.0, 3.0)
    assert s.shape == [] and 2.0 <= s.item() <= 3.0
    with no_launch():
        e = empty(0, 4, dtype=dtype).normal_()
        assert e.shape == [0, 4] and e.dropout_mask(0.5).shape == [0, 4]


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_bernoulli_rate(p, dtype):
    manual_seed(3)
    x = empty(N, dtype=dtype).bernoulli_(p).numpy()
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert abs(x.mean() - p) < 5 * np.sqrt(max(p * (1 - p), 1e-12) / N)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_dropout_mask_values_and_keep_rate(p, dtype):
    manual_seed(4)
    src = cp.Tensor(np.full((100, 1000), 7.0), dtype=dtype)
    mask = src.dropout_mask(p)
    assert type(mask) is cp.Tensor and mask.shape == src.shape and mask.dtype == dtype
    m = mask.numpy().astype(np.float64)
    keep = 1 - p
    scale = 1 / keep if keep > 0 else 0.0
    assert np.all((m == 0) | np.isclose(m, scale, rtol=1e-6))
    kept = np.mean(m != 0)
    assert abs(kept - keep) < 5 * np.sqrt(max(p * keep, 1e-12) / m.size)
    np.testing.assert_array_equal(src.numpy(), 7.0)  # the source is untouched


def test_dropout_mask_of_a_noncontiguous_tensor(dtype):
    t, _ = make(np.ones((6, 5)), dtype, "transposed")
    mask = t.dropout_mask(0.5)
    assert mask.shape == [6, 5] and mask.is_contiguous()
    assert set(np.unique(mask.numpy())) <= {0.0, 2.0}


@pytest.mark.parametrize("call, exc", [
    (lambda t: t.bernoulli_(1.5), ValueError),
    (lambda t: t.bernoulli_(-0.1), ValueError),
    (lambda t: t.bernoulli_("a"), TypeError),
    (lambda t: t.dropout_mask(1.01), ValueError),
    (lambda t: t.normal_(0.0, -1.0), ValueError),
])
def test_bad_arguments_raise_before_launch(call, exc):
    t = empty(10)
    with no_launch(), pytest.raises(exc):
        call(t)


def test_inplace_fill_of_a_leaf_that_requires_grad():
    w = cp.Tensor(np.zeros(4), requires_grad=True)
    with pytest.raises(RuntimeError, match="uniform_"):
        w.uniform_()
    with set_grad_enabled(False):  # what no_grad() does; initialisers fill parameters this way
        w.normal_()
    assert np.all(w.numpy() != 0)


# ---- randperm, multinomial, bernoulli (issue 12) ----------------------------------------------------------
def test_randperm():
    cp.manual_seed(3)
    a = cp.randperm(1000)
    assert a.dtype == np.int64 and sorted(a.tolist()) == list(range(1000))
    assert a.tolist() != list(range(1000))
    cp.manual_seed(3)
    assert cp.randperm(1000).tolist() == a.tolist()  # seeded
    assert cp.randperm(1000).tolist() != a.tolist()  # a fresh draw
    assert cp.randperm(0).shape == [0] and cp.randperm(1).tolist() == [0]
    assert cp.randperm(6, dtype=cp.float32).dtype == np.float32
    firsts = np.bincount([cp.randperm(4)[0].item() for _ in range(800)], minlength=4) / 800
    np.testing.assert_allclose(firsts, 0.25, atol=0.06)
    with pytest.raises(ValueError, match="non-negative"):
        cp.randperm(-1)


def test_multinomial_with_replacement():
    cp.manual_seed(5)
    w = cp.tensor([[0.1, 0.0, 0.6, 0.3], [5.0, 5.0, 0.0, 0.0]])
    s = w.multinomial(40000, replacement=True)
    assert s.dtype == np.int64 and s.shape == [2, 40000]
    np.testing.assert_allclose(np.bincount(s.numpy()[0], minlength=4) / 40000, [0.1, 0.0, 0.6, 0.3], atol=0.01)
    np.testing.assert_allclose(np.bincount(s.numpy()[1], minlength=4) / 40000, [0.5, 0.5, 0, 0], atol=0.01)
    assert cp.multinomial(cp.tensor([0.0, 1.0]), 5, replacement=True).tolist() == [1] * 5


def test_multinomial_without_replacement():
    cp.manual_seed(6)
    draws = cp.tensor([1.0, 2.0, 3.0, 4.0, 0.0]).repeat(3000, 1).multinomial(2)
    got = draws.numpy()
    assert draws.shape == [3000, 2] and np.all(got[:, 0] != got[:, 1]) and not np.any(got == 4)
    np.testing.assert_allclose(np.bincount(got[:, 0], minlength=5) / 3000, [0.1, 0.2, 0.3, 0.4, 0.0], atol=0.03)
    # second draws follow the remaining weights: P(second = 0) = sum_j w_j / 10 * w_0 / (10 - w_j)
    p0 = sum(wj / 10 * 1 / (10 - wj) for wj in (2.0, 3.0, 4.0))
    assert abs(np.mean(got[:, 1] == 0) - p0) < 0.03
    assert sorted(cp.tensor([1.0, 1.0, 1.0]).multinomial(3).tolist()) == [0, 1, 2]


def test_multinomial_errors():
    w = cp.tensor([0.5, 0.5])
    with pytest.raises(RuntimeError, match="cannot sample 3"):
        w.multinomial(3)
    with pytest.raises(RuntimeError, match="positive int"):
        w.multinomial(0)
    with pytest.raises(RuntimeError, match="1-d or 2-d"):
        cp.ones(2, 2, 2).multinomial(1)
    with pytest.raises(RuntimeError, match="invalid distribution"):
        cp.tensor([1.0, -0.5]).multinomial(1, replacement=True)
    with pytest.raises(RuntimeError, match="invalid distribution"):
        cp.tensor([0.0, 0.0]).multinomial(1, replacement=True)
    with pytest.raises(RuntimeError, match="invalid distribution"):
        cp.tensor([1.0, 0.0]).multinomial(2)
    with pytest.raises(TypeError):
        cp.tensor([1, 2]).multinomial(1)


def test_small_draws():
    """bernoulli, multinomial and randperm on a few elements (the statistics tests are large)."""
    cp.manual_seed(8)
    assert cp.tensor([0.0, 1.0, 0.0, 1.0]).bernoulli().tolist() == [0.0, 1.0, 0.0, 1.0]
    assert cp.tensor([[0.0, 2.0, 0.0]]).multinomial(3, replacement=True).tolist() == [[1, 1, 1]]
    assert sorted(cp.tensor([1.0, 3.0, 2.0]).multinomial(3).tolist()) == [0, 1, 2]
    assert sorted(cp.randperm(9).tolist()) == list(range(9))


def test_bernoulli():
    cp.manual_seed(7)
    p = cp.tensor(np.linspace(0, 1, 5)).repeat(20000, 1)
    b = p.bernoulli()
    assert b.dtype == p.dtype and set(np.unique(b.numpy())) <= {0.0, 1.0}
    np.testing.assert_allclose(b.numpy().mean(0), np.linspace(0, 1, 5), atol=0.015)
    assert b.numpy()[:, 0].max() == 0.0 and b.numpy()[:, 4].min() == 1.0
    np.testing.assert_allclose(cp.zeros(50000).bernoulli(0.3).numpy().mean(), 0.3, atol=0.01)
    t, _ = make(np.full((30, 40), 0.5), np.float32, "transposed")
    assert 0.4 < cp.bernoulli(t).numpy().mean() < 0.6
    with pytest.raises(ValueError, match="probability"):
        cp.zeros(3).bernoulli(1.5)
