"""Map-style datasets and the course's transform factories.

Samples stay on the host (numpy arrays, Python numbers, strings) until the Dataloader collates a batch,
so a dataset of N images costs one upload per batch, not one device buffer per image."""
from __future__ import annotations

import bisect
import csv
import itertools
import math
import numbers
import os
import warnings
from typing import Any, Callable, Iterable, Optional, Protocol, Sequence, Union

import numpy as np

from ..._tensor import Tensor
from ...ops.random import host_generator


class MapDataset(Protocol):
    """What the loaders, Subset, ConcatDataset and random_split take: any map-style dataset (clownpiece's,
    torchvision's, a list), i.e. `__getitem__(index)` and `__len__()` (a type for annotations only)."""

    def __getitem__(self, index: int) -> Any: ...

    def __len__(self) -> int: ...


class Dataset:
    """Base of map-style datasets: `__getitem__(index)` and `__len__()`. Takes no constructor arguments
    (course code subclasses it without calling super().__init__)."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.__getitem__ is not implemented")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}.__len__ is not implemented")

    def __add__(self, other: MapDataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Item i is (t[i] for t in tensors); the tensors (clownpiece Tensors or numpy arrays) share dim 0."""

    def __init__(self, *tensors: Union[Tensor, np.ndarray]) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        sizes = {len(t) for t in tensors}
        if len(sizes) != 1:
            raise ValueError(f"TensorDataset: tensors differ in their first dim: {[len(t) for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(t[index] for t in self.tensors)

    def _collated(self, indices):
        """The host batch default_collate would make of these samples, with one numpy gather per field instead
        of a Python call per sample (Dataloader's fast path, which uploads each field once); None unless
        every field is numeric numpy data."""
        if not all(isinstance(t, np.ndarray) and t.dtype.kind in "biuf" for t in self.tensors):
            return None
        rows = np.asarray(indices)
        return tuple(t[rows] for t in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


class Subset(Dataset):
    """The items of `dataset` at `indices` (any sequence of ints), in that order (torch.utils.data.Subset)."""

    def __init__(self, dataset: MapDataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx: Union[int, list[int]]) -> Any:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def _collated(self, indices):
        """The underlying dataset's batched host gather (Dataloader's fast path), when it has one."""
        collated = getattr(self.dataset, "_collated", None)
        return None if collated is None else collated([self.indices[i] for i in indices])

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """The datasets one after another (torch.utils.data.ConcatDataset); `cumulative_sizes[i]` is the length
    of the first i + 1 of them."""

    def __init__(self, datasets: Iterable[MapDataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if not hasattr(d, "__len__") or not hasattr(d, "__getitem__"):
                raise TypeError(f"ConcatDataset: {type(d).__name__} is not a map-style dataset "
                                f"(__getitem__ and __len__)")
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        if isinstance(idx, bool) or not isinstance(idx, numbers.Integral):
            raise TypeError(f"ConcatDataset: index must be an int, got {type(idx).__name__}")
        n = len(self)
        if idx < 0:
            if -idx > n:
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += n
        if idx >= n:
            raise IndexError(f"ConcatDataset: index {idx} is out of range for a dataset of length {n}")
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[d][idx - (self.cumulative_sizes[d - 1] if d else 0)]


def random_split(dataset: MapDataset, lengths: Sequence[Union[int, float]],
                 generator: Optional[np.random.Generator] = None, *, seed: Optional[int] = None) -> list[Subset]:
    """Split `dataset` into non-overlapping Subsets of the given `lengths` (ints summing to len(dataset), or
    fractions summing to 1, as torch.utils.data.random_split: floor(n * fraction) each, the remainder handed
    out one at a time from the first split on). The permutation comes from `generator` (a numpy Generator),
    else `seed`, else clownpiece's generator, so that clownpiece.manual_seed makes it reproducible. numpy
    draws the permutation, so the splits differ from PyTorch's for the same seed."""
    if generator is not None and seed is not None:
        raise ValueError("random_split: pass generator or seed, not both")
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    for i, v in enumerate(lengths):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"random_split: lengths[{i}] must be an int or a fraction, got {v!r}")
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if frac < 0 or frac > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            sizes.append(int(math.floor(n * frac)))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.")
        lengths = sizes
    for i, v in enumerate(lengths):
        if not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"random_split: lengths[{i}] = {v!r} is neither a non-negative int nor one of "
                             f"fractions that sum to 1")
    lengths = [int(v) for v in lengths]
    if sum(lengths) != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! "
                         f"(lengths {lengths} sum to {sum(lengths)}, the dataset has {n} items)")
    if generator is None:
        generator = np.random.default_rng(seed) if seed is not None else host_generator()
    indices = generator.permutation(n).tolist()
    return [Subset(dataset, indices[end - size:end]) for end, size in zip(itertools.accumulate(lengths), lengths)]


class CSVDataset(Dataset):
    """Every row of a CSV file (lists of strings, no header skipping), each passed through `transform`
    once at load time."""

    def __init__(self, file_path: Union[str, os.PathLike[str]],
                 transform: Optional[Callable[[list[str]], Any]] = None) -> None:
        self.file_path = file_path
        self.transform = transform if transform is not None else (lambda row: row)
        self.data = []
        self.load_data()

    def load_data(self) -> None:
        with open(self.file_path, newline="") as f:
            self.data = [self.transform(row) for row in csv.reader(f)]

    def __getitem__(self, index: int) -> Any:
        return self.data[index]

    def __len__(self) -> int:
        return len(self.data)


def _pil_image():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("this needs Pillow, which is not installed: pip install Pillow "
                          "(or pip install 'clownpiece[examples]')") from None
    return Image


class ImageDataset(Dataset):
    """Images in `file_path/<class name>/<file>`: classes are the sub-directories in sorted order; every
    file is loaded with PIL as an RGB uint8 array [H, W, 3] and passed through `transform` at load time.
    Items are (image, label) with label a Python int."""

    def __init__(self, file_path: Union[str, os.PathLike[str]],
                 transform: Optional[Callable[[np.ndarray], Any]] = None) -> None:
        self.file_path = file_path
        self.transform = transform if transform is not None else (lambda img: img)
        self.class_to_idx = {}
        self.data = []
        self.labels = []
        self.load_data()

    def load_data(self) -> None:
        Image = _pil_image()
        classes = sorted(d for d in os.listdir(self.file_path) if os.path.isdir(os.path.join(self.file_path, d)))
        self.class_to_idx = {name: i for i, name in enumerate(classes)}
        for name in classes:
            folder = os.path.join(self.file_path, name)
            for fname in sorted(os.listdir(folder)):
                path = os.path.join(folder, fname)
                if not os.path.isfile(path):
                    continue
                with Image.open(path) as img:
                    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
                self.data.append(self.transform(arr))
                self.labels.append(self.class_to_idx[name])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.data[index], self.labels[index]

    def __len__(self) -> int:
        return len(self.data)


# ---- transforms (each factory returns a one-argument function) -----------------------------------------

def sequential_transform(*transforms: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply `transforms` left to right."""
    def apply(x):
        for t in transforms:
            x = t(x)
        return x
    return apply


def resize_transform(size: tuple[int, int]) -> Callable[[Any], np.ndarray]:
    """Resize an image array with PIL's bilinear filter; size = (width, height), PIL's order."""
    Image = _pil_image()
    size = tuple(size)

    def resize(x):
        x = np.asarray(x)
        if x.dtype != np.uint8:  # PIL's float images are single-channel: resize each channel as 'F'
            chans = x[..., None] if x.ndim == 2 else x
            out = np.stack([np.asarray(Image.fromarray(chans[..., c].astype(np.float32))
                                       .resize(size, Image.BILINEAR)) for c in range(chans.shape[-1])], -1)
            return out[..., 0] if x.ndim == 2 else out
        return np.asarray(Image.fromarray(x).resize(size, Image.BILINEAR))
    return resize


def normalize_transform(mean: Union[float, Sequence[float]], std: Union[float, Sequence[float]]
                        ) -> Callable[[Any], np.ndarray]:
    """(x - mean) / std on the raw values (no /255 scaling); returns an ndarray."""
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)

    def normalize(x):
        return (np.asarray(x, dtype=np.float32) - mean) / std
    return normalize


def to_tensor_transform() -> Callable[[Any], Tensor]:
    """An ndarray -> a clownpiece Tensor of the SAME shape ([H, W, C] stays HWC, no scaling),
    requires_grad=False."""
    def to_tensor(x):
        return Tensor(np.asarray(x), requires_grad=False)
    return to_tensor
