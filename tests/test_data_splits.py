"""Subset, ConcatDataset, Dataset + Dataset and random_split, with PyTorch's semantics and errors."""
import warnings

import numpy as np
import pytest

import clownpiece as cp
from clownpiece.utils.data import ConcatDataset, Dataloader, Dataset, Subset, TensorDataset, random_split


class Numbers(Dataset):
    """Item i is start + i."""

    def __init__(self, n, start=0):
        self.n, self.start = n, start

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.start + i

    def __len__(self):
        return self.n


class Batched(Numbers):
    """Numbers with PyTorch's batched-fetch protocol; records what it was asked for."""

    def __init__(self, n):
        super().__init__(n)
        self.asked = []

    def __getitems__(self, indices):
        self.asked.append(list(indices))
        return [self[i] for i in indices]


def items(ds):
    return [ds[i] for i in range(len(ds))]


# ---- Subset ------------------------------------------------------------------------------------------------

def test_subset_reads_the_given_indices_in_order():
    sub = Subset(Numbers(10, start=100), [7, 2, 2, 9])
    assert len(sub) == 4 and items(sub) == [107, 102, 102, 109]
    assert sub[-1] == 109  # the index list's own negative indexing, as PyTorch
    assert sub.dataset.n == 10 and sub.indices == [7, 2, 2, 9]
    assert Subset(Numbers(5), np.array([4, 0]))[0] == 4 and len(Subset(Numbers(5), range(1, 4))) == 3
    with pytest.raises(IndexError):
        sub[4]


def test_subset_passes_batched_fetches_through():
    base = Batched(10)
    sub = Subset(base, [5, 6, 7, 8])
    assert sub.__getitems__([3, 0]) == [8, 5] and base.asked == [[8, 5]]
    assert Subset(Numbers(10), [5, 6]).__getitems__([1, 0]) == [6, 5]
    batches = [b.numpy().tolist() for b in Dataloader(sub, batch_size=3)]
    assert batches == [[5, 6, 7], [8]] and base.asked[1:] == [[5, 6, 7], [8]]


def test_subset_of_a_tensor_dataset_keeps_the_one_gather_fast_path():
    x = np.arange(20.0).reshape(10, 2)
    sub = Subset(TensorDataset(x, np.arange(10)), [9, 3, 4])
    cp.backend.reset_stats()
    xb, yb = next(iter(Dataloader(sub, batch_size=3)))
    assert cp.backend.stats()["h2d_count"] == 2  # one upload per field, no per-sample work
    np.testing.assert_array_equal(xb.numpy(), x[[9, 3, 4]])
    np.testing.assert_array_equal(yb.numpy(), [9, 3, 4])


# ---- ConcatDataset -----------------------------------------------------------------------------------------

def test_concat_dataset_indexes_across_the_parts():
    cat = ConcatDataset([Numbers(3), Numbers(0), Numbers(2, start=10), Numbers(4, start=20)])
    assert len(cat) == 9 and cat.cumulative_sizes == [3, 3, 5, 9]
    assert items(cat) == [0, 1, 2, 10, 11, 20, 21, 22, 23]
    assert cat[-1] == 23 and cat[-9] == 0
    both = Numbers(2) + Numbers(1, start=5)  # Dataset.__add__
    assert isinstance(both, ConcatDataset) and items(both) == [0, 1, 5]
    loader = Dataloader(ConcatDataset((Numbers(2), Numbers(2, start=7))), batch_size=4)
    assert next(iter(loader)).numpy().tolist() == [0, 1, 7, 8]


def test_concat_dataset_errors():
    cat = ConcatDataset([Numbers(2), Numbers(3)])
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        cat[-6]
    with pytest.raises(IndexError, match="index 5 is out of range for a dataset of length 5"):
        cat[5]
    with pytest.raises(TypeError, match="index must be an int"):
        cat[1.0]
    with pytest.raises(ValueError, match="should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="int is not a map-style dataset"):
        ConcatDataset([Numbers(2), 3])


# ---- random_split ------------------------------------------------------------------------------------------

def test_random_split_with_lengths_partitions_the_dataset():
    parts = random_split(Numbers(10), [3, 7], seed=0)
    assert [len(p) for p in parts] == [3, 7] and all(isinstance(p, Subset) for p in parts)
    assert sorted(items(parts[0]) + items(parts[1])) == list(range(10))
    again = random_split(Numbers(10), [3, 7], generator=np.random.default_rng(0))
    assert [p.indices for p in again] == [p.indices for p in parts]
    assert [p.indices for p in random_split(Numbers(10), [3, 7], seed=1)] != [p.indices for p in parts]


def test_random_split_fractions_follow_pytorchs_rounding():
    # floor(n * f) each, then the remainder one at a time from the first split on (PyTorch's rule)
    cases = {(10, (0.3, 0.7)): [3, 7], (11, (0.5, 0.5)): [6, 5], (10, (1 / 3, 1 / 3, 1 / 3)): [4, 3, 3],
             (7, (0.1, 0.2, 0.7)): [1, 2, 4], (5, (1.0,)): [5]}
    for (n, fracs), sizes in cases.items():
        parts = random_split(Numbers(n), fracs, seed=3)
        assert [len(p) for p in parts] == sizes, (n, fracs)
        assert sorted(sum((p.indices for p in parts), [])) == list(range(n))
    with pytest.warns(UserWarning, match="Length of split at index") as caught:
        assert [len(p) for p in random_split(Numbers(2), [0.9, 0.05, 0.05], seed=0)] == [2, 0, 0]
    assert [str(w.message)[:31] for w in caught] == ["Length of split at index 1 is 0",
                                                      "Length of split at index 2 is 0"]


def test_random_split_follows_clownpiece_manual_seed():
    cp.manual_seed(11)
    a = [p.indices for p in random_split(Numbers(50), [25, 25])]
    b = [p.indices for p in random_split(Numbers(50), [25, 25])]
    cp.manual_seed(11)
    c = [p.indices for p in random_split(Numbers(50), [25, 25])]
    assert a == c and a != b


def test_random_split_errors():
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
        random_split(Numbers(10), [3, 8])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        random_split(Numbers(10), [0.5, -0.5, 1.0])
    with pytest.raises(ValueError, match=r"lengths\[0\] = -1 is neither"):
        random_split(Numbers(10), [-1, 11])
    with pytest.raises(ValueError, match=r"lengths\[0\] = 2.5"):
        random_split(Numbers(10), [2.5, 7.5])
    with pytest.raises(TypeError, match=r"lengths\[1\] must be an int or a fraction"):
        random_split(Numbers(10), [5, "5"])
    with pytest.raises(ValueError, match="lengths is empty"):
        random_split(Numbers(10), [])
    with pytest.raises(ValueError, match="generator or seed, not both"):
        random_split(Numbers(10), [5, 5], generator=np.random.default_rng(0), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole lengths never warn, even a zero one
        assert [len(p) for p in random_split(Numbers(3), [0, 3], seed=0)] == [0, 3]
