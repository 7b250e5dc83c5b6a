"""Datasets, transforms, the Dataloader and its default collate, and MNIST's IDX reader."""
import gzip
import hashlib
import os
import struct
import sys

import numpy as np
import pytest
from conftest import assert_close

import clownpiece as cp
from clownpiece import backend
from clownpiece.utils.data import (
    CSVDataset,
    DataLoader,
    Dataloader,
    Dataset,
    ImageDataset,
    TensorDataset,
    dataloader as dataloader_module,
    dataset as dataset_module,
    default_collate,
    normalize_transform,
    resize_transform,
    sequential_transform,
    to_tensor_transform,
)
from clownpiece.utils.data.datasets import MNIST, FashionMNIST, IDXError, read_idx


class Squares(Dataset):
    """Item i: (i * i as an int, a float32 array [2] of (i, -i))."""

    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return i * i, np.array([i, -i], dtype=np.float32)

    def __len__(self):
        return self.n


def labels(batches):
    return [b[0].numpy().tolist() for b in batches]


# ---- Dataloader --------------------------------------------------------------------------------------------

def test_batches_in_order_with_a_final_partial_batch():
    loader = Dataloader(Squares(7), batch_size=3)
    assert len(loader) == 3 and loader.dataset.n == 7
    batches = list(loader)
    assert labels(batches) == [[0, 1, 4], [9, 16, 25], [36]]
    assert_close(batches[1][1], [[3, -3], [4, -4], [5, -5]])


def test_drop_last():
    loader = Dataloader(Squares(7), batch_size=3, drop_last=True)
    assert len(loader) == 2
    assert labels(loader) == [[0, 1, 4], [9, 16, 25]]
    assert len(Dataloader(Squares(6), batch_size=3, drop_last=True)) == 2
    assert len(Dataloader(Squares(6), batch_size=4)) == 2


def test_shuffle_with_a_seed_is_reproducible_and_reshuffles_each_epoch():
    first = Dataloader(Squares(20), batch_size=5, shuffle=True, seed=3)
    second = DataLoader(Squares(20), batch_size=5, shuffle=True, seed=3)
    epochs_a = [sum(labels(first), []) for _ in range(2)]
    epochs_b = [sum(labels(second), []) for _ in range(2)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != epochs_a[1]
    for epoch in epochs_a:
        assert sorted(epoch) == [i * i for i in range(20)]
    other_seed = sum(labels(Dataloader(Squares(20), batch_size=5, shuffle=True, seed=4)), [])
    assert other_seed != epochs_a[0]


def test_shuffle_with_a_generator_or_numpys_global_rng():
    a = sum(labels(Dataloader(Squares(12), 4, shuffle=True, generator=np.random.default_rng(9))), [])
    b = sum(labels(Dataloader(Squares(12), 4, shuffle=True, generator=np.random.default_rng(9))), [])
    assert a == b and sorted(a) == [i * i for i in range(12)]
    np.random.seed(5)
    c = sum(labels(Dataloader(Squares(12), 4, shuffle=True)), [])
    np.random.seed(5)
    d = sum(labels(Dataloader(Squares(12), 4, shuffle=True)), [])
    assert c == d


def test_sampler_gives_the_indices_and_the_length():
    loader = Dataloader(Squares(10), batch_size=2, sampler=[9, 1, 4])
    assert len(loader) == 2
    assert labels(loader) == [[81, 1], [16]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        Dataloader(Squares(10), shuffle=True, sampler=[1])
    with pytest.raises(AssertionError):  # the course asserts
        Dataloader(Squares(10), shuffle=True, sampler=[1])


@pytest.mark.parametrize("batch_size", [0, -2, 1.5, True])
def test_bad_batch_sizes_raise(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        Dataloader(Squares(4), batch_size=batch_size)


def test_empty_dataset_raises_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        Dataloader(Squares(0), batch_size=2)


def test_custom_collate_fn_gets_the_list_of_samples():
    loader = Dataloader(Squares(5), batch_size=2, collate_fn=lambda samples: [s[0] for s in samples])
    assert list(loader) == [[0, 1], [4, 9], [16]]


def test_one_upload_per_field_per_batch():
    loader = Dataloader(Squares(40), batch_size=20)
    backend.reset_stats()
    for _ in loader:
        pass
    stats = backend.stats()
    assert stats["h2d_count"] == 2 * 2 and stats["launches"] == 0


def test_any_map_style_dataset_with_array_like_samples():
    class ArrayLike:  # what torch tensors and PIL images look like to numpy
        def __init__(self, v):
            self.v = v

        def __array__(self, dtype=None, copy=None):
            return np.full((2, 2), self.v, dtype=np.uint8)

    class NotADatasetSubclass:
        def __getitem__(self, i):
            return ArrayLike(i), i

        def __len__(self):
            return 3

    x, y = next(iter(Dataloader(NotADatasetSubclass(), batch_size=3)))
    assert x.shape == [3, 2, 2] and x.dtype == np.float32
    assert_close(x, np.arange(3.0)[:, None, None] * np.ones((3, 2, 2)))
    assert_close(y, [0.0, 1.0, 2.0])


# ---- default collate ---------------------------------------------------------------------------------------

def test_collate_numbers_become_a_float32_vector():
    batch = default_collate([1, 2, 3])
    assert isinstance(batch, cp.Tensor) and batch.shape == [3] and batch.dtype == np.float32
    assert not batch.requires_grad
    assert_close(batch, [1.0, 2.0, 3.0])
    assert_close(default_collate([0.5, np.float64(1.5)]), [0.5, 1.5])


def test_collate_tuples_field_wise_into_a_tuple_and_dicts_key_wise():
    batch = default_collate([(np.ones((2, 3)), 1, "a"), (np.zeros((2, 3)), 0, "b")])
    assert isinstance(batch, tuple) and len(batch) == 3
    assert_close(batch[0], np.stack([np.ones((2, 3)), np.zeros((2, 3))]))
    assert_close(batch[1], [1.0, 0.0])
    assert batch[2] == ["a", "b"]
    nested = default_collate([[1, (2, 3)], [4, (5, 6)]])
    assert_close(nested[0], [1, 4])
    assert_close(nested[1][0], [2, 5])
    assert_close(nested[1][1], [3, 6])
    d = default_collate([{"x": 1.0, "y": np.array([1.0])}, {"x": 2.0, "y": np.array([2.0])}])
    assert_close(d["x"], [1.0, 2.0])
    assert_close(d["y"], [[1.0], [2.0]])


def test_collate_clownpiece_tensors_stack_and_keep_their_dtype(dtype):
    a = cp.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, dtype=dtype)
    b = cp.Tensor(np.ones((3, 2)), dtype=dtype).transpose(0, 1)  # non-contiguous sample
    batch = default_collate([a, b])
    assert batch.dtype == dtype and not batch.requires_grad
    assert_close(batch, np.stack([np.arange(6.0).reshape(2, 3), np.ones((2, 3))]), dtype)


def test_collate_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="numbers of fields"):
        default_collate([(1, 2), (1,)])


def test_tensor_dataset_over_numpy_and_clownpiece_tensors():
    x = np.arange(12.0).reshape(4, 3)
    ds = TensorDataset(x, np.arange(4))
    assert len(ds) == 4
    xb, yb = next(iter(Dataloader(ds, batch_size=4)))
    assert_close(xb, x)
    assert_close(yb, [0, 1, 2, 3])
    with pytest.raises(ValueError):
        TensorDataset(x, np.arange(3))
    with pytest.raises(ValueError):
        TensorDataset()


# ---- course datasets and transforms ------------------------------------------------------------------------

def test_dataset_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Dataset()[0]
    with pytest.raises(NotImplementedError):
        len(Dataset())


def test_csv_dataset_keeps_raw_string_rows_or_transforms_them(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("1.0,2.0,3.0\n4.0,5.0,6.0\n")
    ds = CSVDataset(str(path))
    assert ds.file_path == str(path) and len(ds) == 2
    assert ds[0] == ["1.0", "2.0", "3.0"] and ds[0][0] == "1.0"

    def to_pair(row):
        values = np.asarray(row, dtype=np.float32)
        return values[:2], values[2:]
    ds = CSVDataset(str(path), transform=to_pair)
    x, y = next(iter(Dataloader(ds, batch_size=2)))
    assert_close(x, [[1, 2], [4, 5]])
    assert_close(y, [[3], [6]])


def test_transforms_compose_normalize_and_to_tensor_keeps_hwc():
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    t = sequential_transform(normalize_transform(10.0, 2.0), to_tensor_transform())(img)
    assert isinstance(t, cp.Tensor) and t.shape == [2, 4, 3] and not t.requires_grad
    assert_close(t, (np.arange(24.0).reshape(2, 4, 3) - 10.0) / 2.0)
    per_channel = normalize_transform([0.0, 1.0, 2.0], [1.0, 2.0, 4.0])(img)
    np.testing.assert_allclose(per_channel, (img - np.array([0, 1, 2])) / np.array([1, 2, 4]), rtol=1e-6)


def test_resize_transform_uses_pil_order_width_height():
    img = np.zeros((4, 6, 3), dtype=np.uint8)
    img[:, 3:] = 200
    out = resize_transform((3, 2))(img)  # (width, height)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[:, 0].max() == 0 and out[:, 2].min() == 200
    flt = resize_transform((3, 2))(img[..., 0].astype(np.float32))
    assert flt.shape == (2, 3)


def test_image_dataset_loads_rgb_classes_in_sorted_order(tmp_path):
    from PIL import Image
    for cls, value in (("zebra", 30), ("ant", 200)):
        os.makedirs(tmp_path / cls)
        for i in range(2):
            Image.fromarray(np.full((5, 4), value + i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = ImageDataset(str(tmp_path))
    assert ds.class_to_idx == {"ant": 0, "zebra": 1} and len(ds) == 4
    img, label = ds[0]
    assert img.shape == (5, 4, 3) and img.dtype == np.uint8 and label == 0 and isinstance(label, int)
    assert (img == 200).all() and ds.labels == [0, 0, 1, 1]
    ds = ImageDataset(str(tmp_path), transform=sequential_transform(resize_transform((2, 2)),
                                                                    normalize_transform(0.0, 255.0),
                                                                    to_tensor_transform()))
    x, y = next(iter(Dataloader(ds, batch_size=4)))
    assert x.shape == [4, 2, 2, 3]
    assert_close(y, [0, 0, 1, 1])
    assert_close(x[2], np.full((2, 2, 3), 30 / 255.0), rtol=1e-6, atol=1e-6)


def test_missing_pillow_raises_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install Pillow"):
        ImageDataset(str(tmp_path))
    with pytest.raises(ImportError, match="Pillow"):
        resize_transform((2, 2))


def test_import_paths():
    assert dataset_module.CSVDataset is CSVDataset and dataloader_module.Dataloader is DataLoader


# ---- IDX files and MNIST -----------------------------------------------------------------------------------

_IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
              np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(arr, dtype=np.uint8):
    """The IDX encoding of arr written out by hand: 0, 0, type code, ndim, big-endian dims, big-endian data."""
    dtype = np.dtype(dtype)
    header = bytes([0, 0, _IDX_CODES[dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.asarray(arr).astype(dtype).tobytes()


def write_idx(path, arr, gz=False, dtype=np.uint8):
    data = idx_bytes(arr, dtype)
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if gz else data)


def make_mnist(root, name="MNIST", n_train=6, n_test=4, gz=False):
    rng = np.random.default_rng(0)
    raw = root / name / "raw"
    os.makedirs(raw, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        targets = rng.integers(0, 10, size=n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", targets, gz)
        arrays[prefix] = (images, targets)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_mnist_reads_torchvision_layout(tmp_path, gz):
    arrays = make_mnist(tmp_path, gz=gz)
    train = MNIST(str(tmp_path), train=True)
    test = MNIST(tmp_path, train=False)
    assert len(train) == 6 and len(test) == 4
    np.testing.assert_array_equal(train.data, arrays["train"][0])
    np.testing.assert_array_equal(test.targets, arrays["t10k"][1])
    assert train.data.dtype == np.uint8 and train.targets.dtype == np.int64
    img, label = train[2]
    assert img.shape == (1, 28, 28) and img.dtype == np.float32
    np.testing.assert_allclose(img[0], arrays["train"][0][2] / 255.0, rtol=1e-6)
    assert label == int(arrays["train"][1][2]) and isinstance(label, int)


def test_mnist_transforms_get_the_raw_array_and_batches_collate(tmp_path):
    arrays = make_mnist(tmp_path)
    ds = MNIST(tmp_path, transform=lambda a: a.astype(np.float32).sum(), target_transform=lambda t: t + 100)
    value, target = ds[1]
    assert value == arrays["train"][0][1].sum() and target == arrays["train"][1][1] + 100
    x, y = next(iter(Dataloader(MNIST(tmp_path), batch_size=4)))
    assert x.shape == [4, 1, 28, 28]
    assert_close(x, arrays["train"][0][:4, None] / 255.0, rtol=1e-6, atol=1e-7)
    assert_close(y, arrays["train"][1][:4])


def test_fashion_mnist_uses_its_own_folder(tmp_path):
    arrays = make_mnist(tmp_path, name="FashionMNIST", gz=True)
    ds = FashionMNIST(tmp_path, train=False)
    np.testing.assert_array_equal(ds.data, arrays["t10k"][0])
    assert ds.classes[0] == "T-shirt/top"
    with pytest.raises(FileNotFoundError, match=os.path.join("MNIST", "raw")):
        MNIST(tmp_path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8"])
def test_read_idx_element_types(tmp_path, dtype):
    arr = np.arange(-3, 9).reshape(2, 3, 2) if np.dtype(dtype) != np.uint8 else np.arange(12).reshape(2, 3, 2)
    write_idx(tmp_path / "x.idx", arr, dtype=dtype)
    got = read_idx(str(tmp_path / "x.idx"))
    assert got.shape == (2, 3, 2)
    np.testing.assert_array_equal(got, arr)


def test_truncated_and_corrupt_idx_files_raise_naming_the_file(tmp_path):
    data = idx_bytes(np.zeros((3, 28, 28)))
    cases = {"short.idx": data[:-10], "long.idx": data + b"\0", "magic.idx": b"\x08\x03" + data[2:],
             "header.idx": data[:6], "empty.idx": b"", "bad.gz": gzip.compress(data)[:-12]}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(IDXError, match=name):
            read_idx(str(path))


def test_mnist_with_a_truncated_file_raises_naming_it(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IDXError, match="train-labels-idx1-ubyte"):
        MNIST(tmp_path)
    write_idx(path, np.zeros(5, dtype=np.uint8))  # 6 images, 5 labels
    with pytest.raises(IDXError, match="do not match"):
        MNIST(tmp_path)


def test_download_fails_clearly_when_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens on the discard port
    with pytest.raises(RuntimeError, match="could not download train-images-idx3-ubyte.gz"):
        MNIST(tmp_path, download=True)


def test_download_checks_md5_and_installs_good_files(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    os.makedirs(mirror)
    resources = []
    for prefix, n in (("train", 3), ("t10k", 2)):
        for kind, arr in (("images-idx3", np.full((n, 28, 28), 7)), ("labels-idx1", np.arange(n))):
            name = f"{prefix}-{kind}-ubyte.gz"
            content = gzip.compress(idx_bytes(arr))
            (mirror / name).write_bytes(content)
            resources.append((name, hashlib.md5(content).hexdigest()))
    monkeypatch.setattr(MNIST, "mirrors", [mirror.as_uri() + "/"])
    monkeypatch.setattr(MNIST, "resources", [(resources[0][0], "0" * 32)] + resources[1:])
    root = tmp_path / "root"
    with pytest.raises(RuntimeError, match="md5 mismatch"):
        MNIST(root, download=True)
    assert not os.path.exists(root / "MNIST" / "raw" / resources[0][0])  # nothing half-written is left

    monkeypatch.setattr(MNIST, "resources", resources)
    ds = MNIST(root, download=True)
    assert len(ds) == 3 and (ds.data == 7).all()
    assert sorted(os.listdir(root / "MNIST" / "raw")) == sorted(name for name, _ in resources)


def test_tensor_dataset_fast_path_matches_per_sample_collate():
    """Dataloader gathers a TensorDataset of numpy arrays in one go; the batches must equal what the
    per-sample default collate makes, in the same order."""
    from clownpiece.utils.data import Dataloader, TensorDataset
    from clownpiece.utils.data.dataloader import default_collate
    r = np.random.default_rng(5)
    x, y = r.normal(size=(23, 3, 2)), r.integers(0, 10, 23)
    ds = TensorDataset(x, y)
    fast = list(Dataloader(ds, batch_size=5, shuffle=True, seed=3))
    slow = list(Dataloader(ds, batch_size=5, shuffle=True, seed=3, collate_fn=lambda s: default_collate(s)))
    assert len(fast) == len(slow) == 5
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert fx.shape == sx.shape and fy.shape == sy.shape and fx.dtype == sx.dtype
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())
