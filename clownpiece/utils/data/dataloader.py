"""The course's Dataloader (PyTorch's DataLoader) and the default collate.

Collation happens on the host: numbers and arrays of a batch are stacked with numpy and uploaded once per
field, so a dataset of numpy samples costs one upload per batch. Works with any map-style dataset
(`__getitem__` + `__len__`), torchvision's included."""
import math
import numbers

import numpy as np

from ...ops.index import stack
from ..._tensor import TensorBase, Tensor


class ConflictingOptionsError(ValueError, AssertionError):
    """shuffle together with a sampler: a ValueError as in PyTorch, an AssertionError as in the course."""


def default_collate(samples):
    """Stack a list of samples into a batch: tuples/lists field-wise into a tuple, dicts key-wise;
    clownpiece tensors with clownpiece.stack; numbers and numpy (or array-like) values with numpy, uploaded
    as one Tensor (requires_grad=False, float32: docs/api.md, dtypes); strings and other objects are returned
    as a list."""
    first = samples[0]
    if isinstance(first, TensorBase):
        return stack(samples)  # the raw op: the batch never records autograd history
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("default_collate: samples in a batch have different numbers of fields")
        return tuple(default_collate(list(field)) for field in zip(*samples))
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if first is None or isinstance(first, (str, bytes)):
        return list(samples)
    try:
        batch = np.stack([np.asarray(s) for s in samples])
    except ValueError as e:
        raise ValueError(f"default_collate: cannot stack samples of different shapes ({e})") from None
    if batch.dtype.kind not in "biuf":
        return list(samples)
    return Tensor(batch, requires_grad=False)


class Dataloader:
    """Iterate a map-style dataset in batches of `batch_size`: `collate_fn(list of samples)` per batch,
    the final partial batch unless `drop_last`. Indices come from `sampler` (any iterable of indices with
    len) or range(len(dataset)), reshuffled each epoch when `shuffle`. `seed` (or a numpy `generator`)
    makes the shuffles reproducible; without either, numpy's global RNG is used."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, sampler=None, collate_fn=None,
                 *, seed=None, generator=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"Dataloader: batch_size must be a positive int, got {batch_size!r}")
        if shuffle and sampler is not None:
            raise ConflictingOptionsError("Dataloader: shuffle and sampler are mutually exclusive")
        if len(dataset) == 0:
            raise ValueError(f"Dataloader: the dataset ({type(dataset).__name__}) is empty")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.sampler = sampler
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self.generator = generator if generator is not None or seed is None else np.random.default_rng(seed)

    def _indices(self):
        if self.sampler is not None:
            return iter(self.sampler)
        n = len(self.dataset)
        if self.shuffle:
            rng = self.generator if self.generator is not None else np.random
            return iter(rng.permutation(n).tolist())
        return iter(range(n))

    def _fetch(self, indices):
        collated = getattr(self.dataset, "_collated", None)  # TensorDataset of numpy arrays
        if collated is not None and self.collate_fn is default_collate:
            batch = collated(indices)
            if batch is not None:
                return batch
        getitems = getattr(self.dataset, "__getitems__", None)  # PyTorch's batched-fetch protocol
        samples = getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)

    def __iter__(self):
        batch = []
        for index in self._indices():
            batch.append(index)
            if len(batch) == self.batch_size:
                yield self._fetch(batch)
                batch = []
        if batch and not self.drop_last:
            yield self._fetch(batch)

    def __len__(self):
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


DataLoader = Dataloader
