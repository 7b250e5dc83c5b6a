"""MNIST and FashionMNIST from IDX files in torchvision's layout: root/MNIST/raw/train-images-idx3-ubyte
(optionally .gz), train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; CIFAR10 (cifar.py)."""
from __future__ import annotations

import gzip
import os
from typing import Any, Callable, Optional, Union

import numpy as np

from .cifar import CIFAR10, CorruptDatasetError  # noqa: F401  (the datasets live here for users)
from .dataset import Dataset
from .download import fetch as _fetch, md5 as _md5

# IDX type byte -> element dtype (big-endian on disk)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IDXError(ValueError):
    pass


def read_idx(path: Union[str, os.PathLike[str]]) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not: told apart by the gzip magic bytes)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise IDXError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise IDXError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"IDX file {path} is truncated: its header needs {header} bytes, the file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise IDXError(f"IDX file {path} is corrupt or truncated: shape {list(shape)} needs {expected} bytes, "
                       f"the file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


class MNIST(Dataset):
    """Item i: (image, label). The image is a float32 array [1, 28, 28] scaled to [0, 1], or, when
    `transform` is given, transform(the raw uint8 [28, 28] array); the label is an int (through
    `target_transform` if given). `.data` (uint8 [N, 28, 28]) and `.targets` (int64 [N]) hold the
    whole split for fast array access."""
    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = [("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                 ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                 ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: Union[str, os.PathLike[str]], train: bool = True, download: bool = False,
                 transform: Optional[Callable[[np.ndarray], Any]] = None,
                 target_transform: Optional[Callable[[int], Any]] = None) -> None:
        self.root = os.path.expanduser(str(root))
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if download and not self._have_files():
            self.download()
        prefix = "train" if train else "t10k"
        self.data = read_idx(self._find(f"{prefix}-images-idx3-ubyte"))
        self.targets = read_idx(self._find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
        if self.data.ndim != 3 or self.targets.shape != self.data.shape[:1]:
            raise IDXError(f"{type(self).__name__}: images of shape {list(self.data.shape)} and labels of "
                           f"shape {list(self.targets.shape)} in {self.raw_folder} do not match")

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, type(self).__name__, "raw")

    def _find(self, name):
        for candidate in (name, name + ".gz"):
            path = os.path.join(self.raw_folder, candidate)
            if os.path.exists(path):
                return path
        raise FileNotFoundError(f"{type(self).__name__}: {os.path.join(self.raw_folder, name)}[.gz] not found; "
                                f"pass download=True or put the IDX files there")

    def _have_files(self):
        try:
            for name, _ in self.resources:
                self._find(name[:-3])
        except FileNotFoundError:
            return False
        return True

    def download(self) -> None:
        """Fetch the gzipped IDX files from the mirrors into raw_folder, checking their md5."""
        os.makedirs(self.raw_folder, exist_ok=True)
        for name, md5 in self.resources:
            target = os.path.join(self.raw_folder, name)
            if os.path.exists(target) and _md5(target) == md5:
                continue
            errors = []
            for mirror in self.mirrors:
                try:
                    _fetch(mirror + name, target, md5)
                    break
                except (OSError, ValueError) as e:  # URLError and timeouts are OSErrors
                    errors.append(f"{mirror}{name}: {e}")
            else:
                raise RuntimeError(f"{type(self).__name__}: could not download {name} (offline?):\n  "
                                   + "\n  ".join(errors)
                                   + f"\nPut the IDX files in {self.raw_folder} by hand.")

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, target = self.data[index], int(self.targets[index])
        img = self.transform(img) if self.transform is not None else (img[None] / np.float32(255))
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)


class FashionMNIST(MNIST):
    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                 ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                 ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]

