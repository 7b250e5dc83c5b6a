"""CIFAR10 from small fake files in both of CIFAR's formats (a few images each, never the real data): the
python version's pickles (as Python 2 wrote them, and as Python 3 does) read without running pickled code,
the binary version, md5 checks, clear errors for missing, truncated, altered and hostile files, and the
md5-checked download from a local mirror (file:// and http://127.0.0.1)."""
import functools
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest

from clownpiece.utils.data import Dataloader, default_collate
from clownpiece.utils.data.datasets import CIFAR10, CorruptDatasetError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_FILE = 3  # images per fake batch file (the real files hold 10000)
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def fake_batches(seed=0):
    """{batch name: (uint8 [PER_FILE, 3072] rows in CIFAR's channel-planar order, labels)}."""
    rng = np.random.default_rng(seed)
    return {name: (rng.integers(0, 256, (PER_FILE, 3072), dtype=np.uint8),
                   rng.integers(0, 10, PER_FILE).tolist()) for name in TRAIN + ["test_batch"]}


# ---- pickles as the real files hold them -------------------------------------------------------------------

def _str2(s):
    """A Python 2 str (bytes) opcode: SHORT_BINSTRING or BINSTRING."""
    b = s.encode("latin-1") if isinstance(s, str) else s
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b


def _int2(v):
    return b"K" + bytes([v]) if 0 <= v < 256 else b"M" + struct.pack("<H", v) if 0 <= v < 65536 else \
        b"J" + struct.pack("<i", v)


def py2_pickle(entries):
    """A dict of str -> (uint8 2-D array | list of ints | list of str | str | int) pickled as Python 2's cPickle did
    for CIFAR (protocol 2, str as BINSTRING, numpy.core.multiarray._reconstruct), assembled opcode by opcode."""
    out = [b"\x80\x02}("]
    for key, value in entries.items():
        out.append(_str2(key))
        if isinstance(value, np.ndarray):
            out += [b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n", _int2(0), b"\x85", _str2("b"),
                    b"\x87R(", _int2(1), *(_int2(s) for s in value.shape), b"\x86",
                    b"cnumpy\ndtype\n", _str2("u1"), _int2(0), _int2(1), b"\x87R(", _int2(3), _str2("|"),
                    b"NNN", _int2(-1), _int2(-1), _int2(0), b"tb\x89", _str2(value.tobytes()), b"tb"]
        elif isinstance(value, list):
            out += [b"](", *(_int2(v) if isinstance(v, int) else _str2(v) for v in value), b"e"]
        else:
            out.append(_int2(value) if isinstance(value, int) else _str2(value))
    out.append(b"u.")
    return b"".join(out)


WRITERS = {"python2": py2_pickle,
           "python3-protocol2": lambda d: pickle.dumps(d, protocol=2),  # bytes through _codecs.encode
           "python3-protocol4": lambda d: pickle.dumps(d, protocol=4)}


def write_python_version(root, batches, writer="python2"):
    """root/cifar-10-batches-py/ with the fake batches; returns {file name: md5} to put in the class."""
    folder = root / "cifar-10-batches-py"
    os.makedirs(folder, exist_ok=True)
    md5s = {}
    for name, (rows, labels) in batches.items():
        entry = {"batch_label": f"fake {name}", "labels": labels, "data": rows,
                 "filenames": [f"img_{i}.png" for i in range(len(labels))]}
        md5s[name] = write(folder / name, WRITERS[writer](entry))
    md5s["batches.meta"] = write(folder / "batches.meta", WRITERS[writer](
        {"num_cases_per_batch": PER_FILE, "label_names": CLASSES, "num_vis": 3072}))
    return md5s


def write(path, content):
    path.write_bytes(content)
    return hashlib.md5(content).hexdigest()


def write_binary_version(root, batches):
    folder = root / "cifar-10-batches-bin"
    os.makedirs(folder, exist_ok=True)
    for name, (rows, labels) in batches.items():
        records = np.concatenate([np.asarray(labels, np.uint8)[:, None], rows], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")


@pytest.fixture
def cifar_md5s(monkeypatch):
    """Point CIFAR10's md5 tables (torchvision's, for the real files) at the fake files' md5s."""
    monkeypatch.setattr(CIFAR10, "records_per_file", PER_FILE)

    def use(md5s):
        if not md5s:  # the binary version: only records_per_file matters
            return
        monkeypatch.setattr(CIFAR10, "train_list", [[n, md5s[n]] for n in TRAIN])
        monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
        monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                              "md5": md5s["batches.meta"]})
    return use


def expected_hwc(batches, names):
    rows = np.concatenate([batches[n][0] for n in names])
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), sum((batches[n][1] for n in names), [])


def test_the_hand_assembled_python2_pickle_is_what_numpy_reads():
    """The fixture itself: the real unpickler (on data this test made) reads it as the intended dict."""
    rows = np.arange(12, dtype=np.uint8).reshape(2, 6)
    back = pickle.loads(py2_pickle({"data": rows, "labels": [3, 300], "names": ["a", "b"], "x": "y"}),
                        encoding="latin1")
    assert back["labels"] == [3, 300] and back["names"] == ["a", "b"] and back["x"] == "y"
    assert back["data"].dtype == np.uint8
    np.testing.assert_array_equal(back["data"], rows)


@pytest.mark.parametrize("writer", list(WRITERS))
def test_python_version_reads_like_torchvision(tmp_path, cifar_md5s, writer):
    batches = fake_batches()
    cifar_md5s(write_python_version(tmp_path, batches, writer))
    train, test = CIFAR10(tmp_path), CIFAR10(str(tmp_path), train=False)
    assert len(train) == 5 * PER_FILE and len(test) == PER_FILE
    images, labels = expected_hwc(batches, TRAIN)
    assert train.data.dtype == np.uint8 and train.data.shape == (5 * PER_FILE, 32, 32, 3)
    np.testing.assert_array_equal(train.data, images)
    assert train.targets == labels and isinstance(train.targets, list) and isinstance(train.targets[0], int)
    np.testing.assert_array_equal(test.data, expected_hwc(batches, ["test_batch"])[0])
    assert train.classes == CLASSES and train.class_to_idx["cat"] == 3
    img, label = train[4]
    assert img.shape == (3, 32, 32) and img.dtype == np.float32 and label == labels[4]
    np.testing.assert_allclose(img, images[4].transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_transforms_get_the_raw_hwc_image(tmp_path, cifar_md5s):
    batches = fake_batches()
    cifar_md5s(write_python_version(tmp_path, batches))
    ds = CIFAR10(tmp_path, transform=lambda img: (img.shape, img.dtype, int(img[0, 0, 1])),
                 target_transform=lambda t: t + 100)
    (shape, dtype, green), target = ds[0]
    assert shape == (32, 32, 3) and dtype == np.uint8 and green == batches["data_batch_1"][0][0, 1024]
    assert target == batches["data_batch_1"][1][0] + 100


def test_binary_version_gives_the_same_dataset(tmp_path, cifar_md5s):
    batches = fake_batches(1)
    cifar_md5s(write_python_version(tmp_path / "py", batches))
    write_binary_version(tmp_path / "bin", batches)
    for train in (True, False):
        a, b = CIFAR10(tmp_path / "py", train=train), CIFAR10(tmp_path / "bin", train=train)
        np.testing.assert_array_equal(a.data, b.data)
        assert a.targets == b.targets and a.classes == b.classes == CLASSES


def test_loader_fast_path_matches_per_sample_collate(tmp_path, cifar_md5s):
    cifar_md5s(write_python_version(tmp_path, fake_batches()))
    ds = CIFAR10(tmp_path)
    fast = list(Dataloader(ds, batch_size=4, shuffle=True, seed=2))
    slow = list(Dataloader(ds, batch_size=4, shuffle=True, seed=2, collate_fn=lambda s: default_collate(s)))
    assert len(fast) == len(slow) == 4
    for (fx, fy), (sx, sy) in zip(fast, slow):
        assert fx.shape == sx.shape and fx.shape[1:] == [3, 32, 32] and fy.dtype == sy.dtype
        np.testing.assert_array_equal(fx.numpy(), sx.numpy())
        np.testing.assert_array_equal(fy.numpy(), sy.numpy())


def test_missing_files_say_where_and_what_to_do(tmp_path, cifar_md5s):
    with pytest.raises(FileNotFoundError, match="neither .*cifar-10-batches-py.* nor .*cifar-10-batches-bin.*"
                                                "download=True"):
        CIFAR10(tmp_path)
    cifar_md5s(write_python_version(tmp_path, fake_batches()))
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="data_batch_3 is missing. Pass download=True"):
        CIFAR10(tmp_path)
    CIFAR10(tmp_path, train=False)  # the test split is all there
    write_binary_version(tmp_path / "b", fake_batches())
    os.remove(tmp_path / "b" / "cifar-10-batches-bin" / "test_batch.bin")
    with pytest.raises(FileNotFoundError, match="test_batch.bin is missing"):
        CIFAR10(tmp_path / "b", train=False)


def test_truncated_or_altered_python_files_fail_their_md5(tmp_path, cifar_md5s):
    cifar_md5s(write_python_version(tmp_path, fake_batches()))
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    blob = path.read_bytes()
    for content in (blob[:-100], blob[:-50] + bytes([blob[-50] ^ 1]) + blob[-49:]):
        path.write_bytes(content)
        with pytest.raises(CorruptDatasetError, match="data_batch_2 is corrupt or truncated .*md5.*download=True"):
            CIFAR10(tmp_path)


def test_files_with_a_matching_md5_are_still_checked(tmp_path, cifar_md5s):
    """A file whose checksum the class was told (a custom table) must still be a CIFAR batch."""
    batches = fake_batches()
    md5s = write_python_version(tmp_path, batches)
    folder = tmp_path / "cifar-10-batches-py"
    rows, labels = batches["test_batch"]
    bad = {"truncated": py2_pickle({"data": rows, "labels": labels})[:-30],
           "labels": py2_pickle({"data": rows, "labels": labels[:-1]}),
           "label_range": py2_pickle({"data": rows, "labels": [10] * PER_FILE}),
           "shape": py2_pickle({"data": rows.reshape(-1, 1024), "labels": labels}),
           "not_a_dict": pickle.dumps([1, 2], protocol=2),
           "object_dtype": pickle.dumps({"data": np.array([None, 1], dtype=object), "labels": [1, 2]})}
    messages = {"truncated": "not a readable CIFAR batch", "labels": "expected 'data'",
                "label_range": "labels in .* outside \\[0, 10\\)", "shape": "expected 'data'",
                "not_a_dict": "holds a list, not a dict",
                "object_dtype": "dtype 'O8' is not allowed \\(plain numbers only\\)"}
    for case, content in bad.items():
        md5s["test_batch"] = write(folder / "test_batch", content)
        cifar_md5s(md5s)
        with pytest.raises(CorruptDatasetError, match=messages[case]):
            CIFAR10(tmp_path, train=False)


class Exploit:
    """A pickle that would run os.mkdir(target) when loaded by pickle.load."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_pickled_code_never_runs(tmp_path, cifar_md5s):
    md5s = write_python_version(tmp_path, fake_batches())
    folder = tmp_path / "cifar-10-batches-py"
    target = str(tmp_path / "pwned")
    for payload in ({"data": Exploit(target), "labels": []}, Exploit(target)):
        for protocol in (0, 2, 4):
            md5s["test_batch"] = write(folder / "test_batch", pickle.dumps(payload, protocol=protocol))
            cifar_md5s(md5s)
            with pytest.raises(CorruptDatasetError, match="global (posix|os).mkdir is not allowed in a CIFAR batch"):
                CIFAR10(tmp_path, train=False)
            assert not os.path.exists(target)


def test_truncated_or_mislabeled_binary_files(tmp_path, cifar_md5s):
    cifar_md5s({})
    batches = fake_batches()
    write_binary_version(tmp_path, batches)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_5.bin"
    blob = path.read_bytes()
    path.write_bytes(blob[:-3073])  # a whole record short
    with pytest.raises(CorruptDatasetError, match=f"data_batch_5.bin has {2 * 3073} bytes where 3 records of 3073 "
                                                  f"bytes .* were expected"):
        CIFAR10(tmp_path)
    path.write_bytes(bytes([12]) + blob[1:])
    with pytest.raises(CorruptDatasetError, match="labels in .*cifar-10-batches-bin outside \\[0, 10\\)"):
        CIFAR10(tmp_path)
    path.write_bytes(blob)
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(CorruptDatasetError, match="lists 2 class names, expected 10"):
        CIFAR10(tmp_path)


# ---- download ----------------------------------------------------------------------------------------------

def make_archive(path, folder_files, extra_members=True):
    """A tar.gz of cifar-10-batches-py/<files>, plus (extra_members) a readme, a path escaping the folder and a
    symlink, which extraction must skip."""
    with tarfile.open(path, "w:gz") as tar:
        def add(name, data, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.size, info.type, info.linkname = len(data), kind, link
            tar.addfile(info, io.BytesIO(data))
        for name, data in folder_files.items():
            add(f"cifar-10-batches-py/{name}", data)
        if extra_members:
            add("cifar-10-batches-py/../escaped", b"x")
            add("/abs_escaped", b"x")
            add("cifar-10-batches-py/link", b"", tarfile.SYMTYPE, "/etc/passwd")
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path, cifar_md5s, monkeypatch):
    src = tmp_path / "src"
    md5s = write_python_version(src, fake_batches(4))
    cifar_md5s(md5s)
    files = {name: (src / "cifar-10-batches-py" / name).read_bytes() for name in md5s}
    files["readme.html"] = b"<html></html>"
    served = tmp_path / "mirror"
    os.makedirs(served)
    archive_md5 = make_archive(served / "cifar-10-python.tar.gz", files)
    monkeypatch.setattr(CIFAR10, "tgz_md5", archive_md5)
    return served


def test_download_from_a_file_mirror_checks_md5_and_extracts_safely(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", (mirror / "cifar-10-python.tar.gz").as_uri())
    root = tmp_path / "root"
    ds = CIFAR10(root, download=True)
    assert len(ds) == 5 * PER_FILE and ds.classes == CLASSES
    np.testing.assert_array_equal(ds.data, expected_hwc(fake_batches(4), TRAIN)[0])
    assert sorted(os.listdir(root / "cifar-10-batches-py")) == sorted(TRAIN + ["test_batch", "batches.meta",
                                                                              "readme.html"])
    assert not os.path.exists(tmp_path / "escaped") and not os.path.exists(root / "escaped")
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/gone.tar.gz")
    assert len(CIFAR10(root, train=False, download=True)) == PER_FILE  # verified files: nothing is fetched


def test_download_over_http_from_localhost(tmp_path, mirror, monkeypatch):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{server.server_port}/cifar-10-python.tar.gz")
        ds = CIFAR10(tmp_path / "root", train=False, download=True)
        np.testing.assert_array_equal(ds.data, expected_hwc(fake_batches(4), ["test_batch"])[0])
    finally:
        server.shutdown()
        server.server_close()


def test_download_with_a_wrong_md5_keeps_nothing(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", (mirror / "cifar-10-python.tar.gz").as_uri())
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(RuntimeError, match="could not download .*md5 mismatch \\(expected 0{32}"):
        CIFAR10(root, download=True)
    assert os.listdir(root) == []


def test_download_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # the discard port
    with pytest.raises(RuntimeError, match="could not download http://127.0.0.1:9/cifar-10-python.tar.gz "
                                           "\\(offline\\?\\).*extract it into"):
        CIFAR10(tmp_path, download=True)


def test_an_archive_without_the_expected_files_raises(tmp_path, cifar_md5s, monkeypatch):
    cifar_md5s(write_python_version(tmp_path / "src", fake_batches()))
    archive = tmp_path / "cifar-10-python.tar.gz"
    monkeypatch.setattr(CIFAR10, "tgz_md5", make_archive(archive, {"data_batch_1": b"nope"}, extra_members=False))
    monkeypatch.setattr(CIFAR10, "url", archive.as_uri())
    with pytest.raises(CorruptDatasetError, match="does not hold the expected files"):
        CIFAR10(tmp_path / "root", download=True)


def test_torchvisions_checksums():
    """The md5 table is torchvision's (what the real files must match)."""
    assert CIFAR10.tgz_md5 == "c58f30108f718f92721af3b95e74349a"
    assert CIFAR10.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert dict(CIFAR10.train_list)["data_batch_4"] == "634d18415352ddfa80567beed471001a"
    assert CIFAR10.test_list == [["test_batch", "40351d587109b95175f43aff81a1287e"]]
    assert CIFAR10.meta["md5"] == "5ff9c542aee3614f3951f8cda6e48888" and CIFAR10.records_per_file == 10000
