"""clownpiece.serialization save/load: exact round trips of state dicts and nested containers, and clear
errors for truncated, corrupted, foreign or unsupported data; writes never leave a partial file."""
import math
import os
import struct

import numpy as np
import pytest
from conftest import to_np

import clownpiece.nn as nn
from clownpiece import Tensor, TensorBase
from clownpiece.serialization import MAGIC, SerializationError, load, save

rng = np.random.default_rng(5)


def test_state_dict_round_trip_exact(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm(4), nn.Conv2d(1, 2, 3, dtype=np.float64))
    sd = model.state_dict()
    path = tmp_path / "model.cpt"
    save(sd, path)
    back = load(path)
    assert list(back) == list(sd)
    assert back["0.bias"] is None
    for key, value in sd.items():
        if value is None:
            continue
        assert type(back[key]) is type(value) and back[key].dtype == value.dtype and back[key].shape == value.shape
        np.testing.assert_array_equal(to_np(back[key]), to_np(value))  # bit-exact
    other = nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm(4), nn.Conv2d(1, 2, 3, dtype=np.float64))
    other.load_state_dict(back)
    np.testing.assert_array_equal(to_np(other[2].weight), to_np(model[2].weight))


def test_nested_containers_and_scalars(tmp_path):
    a = Tensor(rng.standard_normal((2, 3)).astype(np.float32))
    obj = {
        "step": 7, "lr": 1e-3, "name": "adam", "flag": True, "nothing": None,
        "special": [math.inf, -math.inf], "nested": {"list": [a, (1, 2.5, "x")], 3: "int key"},
        "zero_dim": Tensor(2.5), "empty": Tensor(np.zeros((0, 4))), "base": TensorBase([1.0, 2.0]),
        "grad": Tensor([1.0], requires_grad=True), "shared": [a, a],
        "view": Tensor(np.arange(12.0).reshape(3, 4)).transpose(0, 1)[1:3],
    }
    path = str(tmp_path / "obj.cpt")
    save(obj, path)
    back = load(path)
    assert back["step"] == 7 and back["lr"] == 1e-3 and back["name"] == "adam" and back["flag"] is True
    assert back["nothing"] is None and back["special"] == [math.inf, -math.inf]
    assert isinstance(back["nested"]["list"][1], tuple) and back["nested"]["list"][1] == (1, 2.5, "x")
    assert back["nested"][3] == "int key"
    np.testing.assert_array_equal(to_np(back["nested"]["list"][0]), to_np(a))
    assert back["zero_dim"].shape == [] and back["zero_dim"].item() == 2.5
    assert back["empty"].shape == [0, 4]
    assert type(back["base"]) is TensorBase and back["base"].tolist() == [1.0, 2.0]
    assert back["grad"].requires_grad and not back["zero_dim"].requires_grad
    assert back["shared"][0] is back["shared"][1]
    assert back["view"].tolist() == [[1.0, 5.0, 9.0], [2.0, 6.0, 10.0]]
    nan_path = tmp_path / "nan.cpt"
    save([math.nan], nan_path)
    assert math.isnan(load(nan_path)[0])


def test_unsupported_objects_are_refused(tmp_path):
    path = tmp_path / "x.cpt"
    with pytest.raises(SerializationError, match=r"set at obj\['a'\]"):
        save({"a": {1, 2}}, path)
    with pytest.raises(SerializationError, match="key"):
        save({(1, 2): 3}, path)
    assert not path.exists() and os.listdir(tmp_path) == []  # no partial or temporary file left


def test_failed_save_keeps_old_file(tmp_path):
    path = tmp_path / "keep.cpt"
    save({"v": 1}, path)
    with pytest.raises(SerializationError):
        save({"v": object()}, path)
    assert load(path) == {"v": 1} and os.listdir(tmp_path) == ["keep.cpt"]


@pytest.fixture
def saved_file(tmp_path):
    path = tmp_path / "good.cpt"
    save({"w": Tensor(rng.standard_normal((4, 5)).astype(np.float32)), "n": 3}, path)
    return path


def test_truncated_file(saved_file):
    blob = saved_file.read_bytes()
    for cut in (5, 30, len(blob) - 7):
        saved_file.write_bytes(blob[:cut])
        with pytest.raises(SerializationError, match="good.cpt.*truncated"):
            load(saved_file)


def test_corrupted_data(saved_file):
    blob = bytearray(saved_file.read_bytes())
    blob[-3] ^= 0xFF
    saved_file.write_bytes(bytes(blob))
    with pytest.raises(SerializationError, match="good.cpt.*checksum"):
        load(saved_file)


def test_corrupted_header(saved_file):
    blob = bytearray(saved_file.read_bytes())
    start = blob.index(b'"tensors"')
    blob[start + 1] = ord("X")
    saved_file.write_bytes(bytes(blob))
    with pytest.raises(SerializationError, match="good.cpt"):
        load(saved_file)


def test_foreign_and_future_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(SerializationError, match="foreign.npz.*magic"):
        load(foreign)
    future = tmp_path / "future.cpt"
    future.write_bytes(struct.pack("<8sIQ", MAGIC, 99, 2) + b"{}" + b"\0" * 4)
    with pytest.raises(SerializationError, match="version 99"):
        load(future)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.cpt"):
        load(tmp_path / "absent.cpt")
