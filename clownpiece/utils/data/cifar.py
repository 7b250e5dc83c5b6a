"""CIFAR-10 in torchvision's layout, from the python version (root/cifar-10-batches-py/, what `download`
fetches) or the binary version (root/cifar-10-batches-bin/).

The python version's batches are pickles. They are read by a restricted unpickler, not by pickle.load: the
only globals a file may name are the three that numpy's array pickles use (`_reconstruct`, `ndarray`,
`dtype`; plus `_codecs.encode`, which Python 3 writes for bytes at protocol 2), and they resolve to
stand-ins here that check their arguments and build the array with np.frombuffer. Nothing a file names can
run, whatever it contains. (Parsing the pickle opcodes ourselves would be the other safe way; the stdlib
parser with an allow-list is less code, and the check on every global is in one place, `find_class`.)

Every file is checked against torchvision's md5 when the dataset is made, as torchvision does, so a truncated
or altered file raises instead of loading. The binary version has no published per-file checksums (only its
archive's); its files must be whole numbers of 3073-byte records, `records_per_file` of them."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from typing import Any, Callable, Optional, Union

import numpy as np

from .dataset import Dataset
from .download import fetch, md5


class CorruptDatasetError(RuntimeError):
    """A dataset file that does not hold what it should (bad checksum, truncated, unexpected contents)."""


class CIFAR10(Dataset):
    """Item i: (image, label). The image is a float32 array [3, 32, 32] scaled to [0, 1] (what torchvision's
    ToTensor makes), or, when `transform` is given, transform(the raw uint8 [32, 32, 3] HWC array); the label
    an int (through `target_transform` if given). `.data` (uint8 [N, 32, 32, 3]), `.targets` (a list of ints),
    `.classes` and `.class_to_idx` are torchvision's. `train` picks data_batch_1..5 (50,000 images) or
    test_batch (10,000)."""
    base_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    filename = "cifar-10-python.tar.gz"
    tgz_md5 = "c58f30108f718f92721af3b95e74349a"
    train_list = [["data_batch_1", "c99cafc152244af753f735de768cd75f"],
                  ["data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"],
                  ["data_batch_3", "54ebc095f3ab1f0389bbae665268c751"],
                  ["data_batch_4", "634d18415352ddfa80567beed471001a"],
                  ["data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"]]
    test_list = [["test_batch", "40351d587109b95175f43aff81a1287e"]]
    meta = {"filename": "batches.meta", "key": "label_names", "md5": "5ff9c542aee3614f3951f8cda6e48888"}
    # the binary version (cifar-10-binary.tar.gz, md5 c32a1d4ab5d03f1284b67883e8d87530), read when the python
    # version is absent
    bin_folder = "cifar-10-batches-bin"
    bin_train_list = [f"data_batch_{i}.bin" for i in range(1, 6)]
    bin_test_list = ["test_batch.bin"]
    bin_meta = "batches.meta.txt"
    records_per_file = 10000
    num_classes = 10

    def __init__(self, root: Union[str, os.PathLike[str]], train: bool = True,
                 transform: Optional[Callable[[np.ndarray], Any]] = None,
                 target_transform: Optional[Callable[[int], Any]] = None, download: bool = False) -> None:
        self.root = os.path.expanduser(os.fspath(root))
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if download:
            self.download()
        if os.path.isdir(os.path.join(self.root, self.base_folder)) or not os.path.isdir(self._bin_dir()):
            self.data, self.targets, self.classes = self._load_python()
        else:
            self.data, self.targets, self.classes = self._load_binary()
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    # ---- items -------------------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, target = self.data[index], self.targets[index]
        img = self.transform(img) if self.transform is not None else _to_chw_float(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __len__(self) -> int:
        return len(self.data)

    def _collated(self, indices):
        """The host batch default_collate would make of these items, in one gather (Dataloader's fast path);
        None when a transform is set."""
        if self.transform is not None or self.target_transform is not None:
            return None
        rows = np.asarray(indices)
        return _to_chw_float(self.data[rows]), np.asarray(self.targets)[rows]

    # ---- the python version ------------------------------------------------------------------------------
    def _py_path(self, name):
        return os.path.join(self.root, self.base_folder, name)

    def _bin_dir(self):
        return os.path.join(self.root, self.bin_folder)

    def _read_checked(self, name, expected_md5):
        """The bytes of a python-version file, after its md5 is checked."""
        path = self._py_path(name)
        if not os.path.isfile(path):
            folder = os.path.join(self.root, self.base_folder)
            where = (f"{path} is missing" if os.path.isdir(folder) else
                     f"neither {folder} (the python version) nor {self._bin_dir()} (the binary version) exists")
            raise FileNotFoundError(f"{type(self).__name__}: {where}. Pass download=True to download it, or extract "
                                    f"{self.filename} ({self.url}) into {self.root}")
        with open(path, "rb") as f:
            blob = f.read()
        got = hashlib.md5(blob).hexdigest()
        if got != expected_md5:
            raise CorruptDatasetError(f"{type(self).__name__}: {path} is corrupt or truncated (md5 {got}, expected "
                                      f"{expected_md5}); delete it and pass download=True, or extract "
                                      f"{self.filename} again")
        return path, blob

    def _load_python(self):
        images, labels = [], []
        for name, expected in (self.train_list if self.train else self.test_list):
            path, blob = self._read_checked(name, expected)
            entry = _unpickle(blob, path)
            data = entry.get("data")
            rows = entry.get("labels", entry.get("fine_labels"))
            if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                    or data.shape[1] != 3072 or not isinstance(rows, list) or len(rows) != len(data)):
                raise CorruptDatasetError(f"{path} is not a CIFAR batch: expected 'data' (uint8 [N, 3072]) and N "
                                          f"'labels'")
            images.append(data)
            labels.extend(rows)
        path, blob = self._read_checked(self.meta["filename"], self.meta["md5"])
        classes = _unpickle(blob, path).get(self.meta["key"])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise CorruptDatasetError(f"{path} has no list of class names under {self.meta['key']!r}")
        return self._finish(images, labels, classes, os.path.join(self.root, self.base_folder))

    def _finish(self, images, labels, classes, where):
        if not all(isinstance(v, int) and 0 <= v < len(classes) for v in labels):
            raise CorruptDatasetError(f"{type(self).__name__}: labels in {where} outside [0, {len(classes)})")
        data = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # HWC, as torchvision
        return np.ascontiguousarray(data), [int(v) for v in labels], classes

    # ---- the binary version ------------------------------------------------------------------------------
    def _load_binary(self):
        record = 1 + 3072
        images, labels = [], []
        for name in (self.bin_train_list if self.train else self.bin_test_list):
            path = os.path.join(self._bin_dir(), name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{type(self).__name__}: {path} is missing; extract cifar-10-binary.tar.gz "
                                        f"again, or pass download=True to use the python version")
            raw = np.fromfile(path, np.uint8)
            if raw.size != self.records_per_file * record:
                raise CorruptDatasetError(f"{type(self).__name__}: {path} has {raw.size} bytes where "
                                          f"{self.records_per_file} records of {record} bytes "
                                          f"({self.records_per_file * record} bytes) were expected (truncated?)")
            raw = raw.reshape(-1, record)
            labels.extend(raw[:, 0].tolist())
            images.append(raw[:, 1:])
        meta = os.path.join(self._bin_dir(), self.bin_meta)
        try:
            with open(meta, encoding="ascii") as f:
                classes = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise FileNotFoundError(f"{type(self).__name__}: cannot read the class names in {meta} ({e})") from None
        if len(classes) != self.num_classes:
            raise CorruptDatasetError(f"{meta} lists {len(classes)} class names, expected {self.num_classes}")
        return self._finish(images, labels, classes, self._bin_dir())

    # ---- download ----------------------------------------------------------------------------------------
    def _check_integrity(self):
        for name, expected in self.train_list + self.test_list + [[self.meta["filename"], self.meta["md5"]]]:
            path = self._py_path(name)
            if not os.path.isfile(path) or md5(path) != expected:
                return False
        return True

    def download(self) -> None:
        """Fetch the python version's archive (md5-checked) and extract its batches into root, unless every
        file is already there with the right md5."""
        if self._check_integrity():
            return
        os.makedirs(self.root, exist_ok=True)
        archive = os.path.join(self.root, self.filename)
        if not (os.path.isfile(archive) and md5(archive) == self.tgz_md5):
            try:
                fetch(self.url, archive, self.tgz_md5)
            except (OSError, ValueError) as e:  # URLError and timeouts are OSErrors; ValueError: md5 mismatch
                raise RuntimeError(f"{type(self).__name__}: could not download {self.url} (offline?): {e}. "
                                   f"Download {self.filename} by hand and extract it into {self.root}, or "
                                   f"put it there and pass download=True again") from None
        _extract(archive, self.root, self.base_folder)
        if not self._check_integrity():
            raise CorruptDatasetError(f"{type(self).__name__}: {archive} does not hold the expected files "
                                      f"(their md5s do not match)")


def _to_chw_float(images):
    """uint8 [..., H, W, C] -> float32 [..., C, H, W] in [0, 1]."""
    return np.ascontiguousarray(np.moveaxis(images, -1, -3), dtype=np.float32) / np.float32(255)


def _extract(archive, root, folder):
    """Write the regular files under `folder/` of a tar.gz archive into root; any other member (links,
    devices, absolute paths, '..') is skipped, so an archive cannot write outside root/folder."""
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if (not member.isfile() or len(parts) != 2 or parts[0] != folder or parts[1] in ("", ".", "..")
                    or os.path.isabs(member.name)):
                continue
            target = os.path.join(root, folder, parts[1])
            with tar.extractfile(member) as src, open(target + ".part", "wb") as dst:
                dst.write(src.read())
            os.replace(target + ".part", target)


# ---- the restricted unpickler ---------------------------------------------------------------------------
_PLAIN_DTYPES = {"u1", "i1", "b1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"}


class _NDArrayClass:
    """Stands for numpy.ndarray: only ever passed to _reconstruct."""


class _DTypeStub:
    """numpy.dtype(spec, align, copy) of a pickle; its state sets the byte order. Plain numbers only."""

    def __init__(self, spec, align=0, copy=1):
        if not isinstance(spec, str) or spec not in _PLAIN_DTYPES:
            raise pickle.UnpicklingError(f"array dtype {spec!r} is not allowed (plain numbers only)")
        self.spec, self.order = spec, "|"

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"bad dtype state {state!r}")
        self.order = state[1]

    def dtype(self):
        return np.dtype(self.spec).newbyteorder(self.order if self.order in "<>" else "=")


class _ArrayStub:
    """numpy's _reconstruct(ndarray, shape, typecode) of a pickle: the array is built from its state."""

    def __init__(self, cls, shape, typecode):
        if cls is not _NDArrayClass:
            raise pickle.UnpicklingError("_reconstruct of something other than numpy.ndarray")
        self.array = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, is_fortran, raw)
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError("bad ndarray state")
        shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DTypeStub) or not isinstance(shape, tuple) or not all(
                isinstance(s, int) and s >= 0 for s in shape):
            raise pickle.UnpicklingError("bad ndarray state")
        if isinstance(raw, str):
            raw = raw.encode("latin-1")  # a Python 2 str, decoded as latin-1 by encoding="latin1"
        dtype = dtype.dtype()
        if not isinstance(raw, bytes) or len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise pickle.UnpicklingError(f"ndarray of shape {list(shape)} has the wrong number of data bytes")
        arr = np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran else "C")
        self.array = arr.astype(dtype.newbyteorder("="))


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed for latin-1 text (bytes at protocol 2)")
    return text.encode("latin-1")


class _Unpickler(pickle.Unpickler):
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _ArrayStub,
                ("numpy._core.multiarray", "_reconstruct"): _ArrayStub,
                ("numpy", "ndarray"): _NDArrayClass,
                ("numpy", "dtype"): _DTypeStub,
                ("_codecs", "encode"): _codecs_encode}

    def find_class(self, module, name):
        found = self._ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return found


def _unpickle(blob, path):
    """The dict a CIFAR pickle holds, its arrays as numpy arrays; anything else raises CorruptDatasetError."""
    try:
        obj = _Unpickler(io.BytesIO(blob), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError) as e:
        raise CorruptDatasetError(f"{path} is not a readable CIFAR batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise CorruptDatasetError(f"{path} is not a CIFAR batch (it holds a {type(obj).__name__}, not a dict)")
    out = {}
    for key, value in obj.items():
        if isinstance(value, _ArrayStub):
            value = getattr(value, "array", None)
            if value is None:
                raise CorruptDatasetError(f"{path} is not a readable CIFAR batch (an array without its data)")
        out[key] = value
    return out
