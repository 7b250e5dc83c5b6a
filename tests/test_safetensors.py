"""save(..., format="safetensors") / load: clownpiece's own safetensors writer and reader, checked against the
`safetensors` package (files written by each are read by the other, every dtype) and against corrupt files."""
import json
import os
import struct

import numpy as np
import pytest
import safetensors.numpy as st
from conftest import to_np

import clownpiece as cp
import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.serialization import SerializationError, load, save

rng = np.random.default_rng(7)

# every dtype both numpy and the format know; the ones clownpiece holds must round-trip exactly, the others
# must be refused with a clear error
FORMAT_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
                 "F16": np.float16, "U32": np.uint32, "I32": np.int32, "F32": np.float32, "U64": np.uint64,
                 "I64": np.int64, "F64": np.float64}


def holds(dtype):
    """Whether clownpiece has tensors of this dtype (float32 and float64 today; issue 11 adds more)."""
    try:
        cp.tensor(np.zeros(1, dtype), dtype=dtype)
    except TypeError:
        return False
    return True


def sample(dtype, shape=(3, 4)):
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    values = rng.standard_normal(shape).astype(dtype)
    values.flat[:3] = [np.inf, -0.0, np.finfo(dtype).tiny]  # exact bits, not only close values
    return values


def bits(arr):
    return arr.reshape(-1).view(np.uint8)


def test_float32_and_float64_are_held():
    assert holds(np.float32) and holds(np.float64)


@pytest.mark.parametrize("code", list(FORMAT_DTYPES))
def test_interop_with_the_safetensors_package_both_ways(tmp_path, code):
    dtype = np.dtype(FORMAT_DTYPES[code])
    arrays = {"w": sample(dtype), "scalar": sample(dtype, ()), "empty": sample(dtype, (0, 3))}
    theirs = tmp_path / "theirs.safetensors"
    st.save_file(arrays, str(theirs), metadata={"format": "pt"})
    if not holds(dtype):
        with pytest.raises(SerializationError, match=f"theirs.safetensors.*tensor '\\w+' is {dtype.name}, "
                                                     f"which clownpiece cannot hold"):
            load(theirs)
        return
    back = load(theirs)
    assert set(back) == set(arrays)
    for name, arr in arrays.items():
        assert isinstance(back[name], Tensor) and back[name].dtype == dtype and back[name].shape == list(arr.shape)
        assert not back[name].requires_grad
        np.testing.assert_array_equal(bits(back[name].numpy()), bits(arr))  # bit-exact

    ours = tmp_path / "ours.safetensors"
    save({name: cp.tensor(arr, dtype=dtype) for name, arr in arrays.items()}, ours, format="safetensors")
    read = st.load_file(str(ours))
    assert list(read) != [] and set(read) == set(arrays)
    for name, arr in arrays.items():
        assert read[name].dtype == dtype and read[name].shape == arr.shape
        np.testing.assert_array_equal(bits(read[name]), bits(arr))


def test_state_dict_round_trip_and_load_state_dict(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2), nn.Conv2d(1, 2, 3, dtype=np.float64))
    sd = model.state_dict()
    assert sd["0.bias"] is None  # course state_dicts hold None for disabled parameters
    path = tmp_path / "model.safetensors"
    save(sd, path, format="safetensors")
    back = load(path)
    assert list(back) == [k for k, v in sd.items() if v is not None]  # header order, the Nones left out
    for key, t in back.items():
        assert t.dtype == sd[key].dtype and t.shape == sd[key].shape
        np.testing.assert_array_equal(to_np(t), to_np(sd[key]))
    other = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2), nn.Conv2d(1, 2, 3, dtype=np.float64))
    other.load_state_dict(back)  # the left-out None entries are what load_state_dict expects
    np.testing.assert_array_equal(to_np(other[2].weight), to_np(model[2].weight))
    np.testing.assert_array_equal(st.load_file(str(path))["1.weight"], to_np(model[1].weight))


def test_the_written_layout(tmp_path):
    """8-byte length, a space-padded JSON header of a multiple of 8 bytes, data ordered by element size so
    every tensor is aligned, offsets that tile the data; views are written as their values."""
    tensors = {"a32": Tensor(np.arange(3.0), dtype="float32"),
               "b64": Tensor(np.arange(12.0).reshape(3, 4), dtype="float64").transpose(0, 1)[1:3]}
    path = tmp_path / "layout.safetensors"
    save(tensors, path, format="safetensors")
    blob = path.read_bytes()
    (n,) = struct.unpack_from("<Q", blob)
    assert n % 8 == 0 and blob[8:9] == b"{" and blob[8:8 + n].decode().endswith(("}", " "))
    header = json.loads(blob[8:8 + n])
    assert list(header) == ["a32", "b64"]
    assert header["b64"] == {"dtype": "F64", "shape": [2, 3], "data_offsets": [0, 48]}
    assert header["a32"] == {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]}
    data = blob[8 + n:]
    assert len(data) == 60
    np.testing.assert_array_equal(np.frombuffer(data, "<f8", 6), np.arange(12.0).reshape(3, 4).T[1:3].ravel())
    np.testing.assert_array_equal(np.frombuffer(data, "<f4", 3, 48), [0, 1, 2])


def test_empty_dict_and_format_detection(tmp_path):
    empty = tmp_path / "empty.safetensors"
    save({}, empty, format="safetensors")
    assert load(empty) == {} and st.load_file(str(empty)) == {}
    native = tmp_path / "native.cpt"
    save({"w": Tensor([1.0, 2.0])}, native)  # the default format is still clownpiece's
    assert load(native)["w"].tolist() == [1.0, 2.0] and native.read_bytes()[:8] == b"CLWNPCE\0"


def test_save_refuses_what_the_format_cannot_hold(tmp_path):
    path = tmp_path / "x.safetensors"
    cases = [([Tensor([1.0])], "expected a flat dict"), ({1: Tensor([1.0])}, "key 1 must be a str"),
             ({"__metadata__": Tensor([1.0])}, "'__metadata__' is reserved"),
             ({"step": 3}, "'step' holds a int; the format stores tensors only"),
             ({"nested": {"w": Tensor([1.0])}}, "'nested' holds a dict")]
    for obj, message in cases:
        with pytest.raises(SerializationError, match=message):
            save(obj, path, format="safetensors")
    with pytest.raises(ValueError, match="format must be 'clownpiece' or 'safetensors', got 'pt'"):
        save({"w": Tensor([1.0])}, path, format="pt")
    assert os.listdir(tmp_path) == []  # nothing half-written


def write_raw(path, header, data=b"", pad=True):
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    if pad:
        text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_corrupt_files_raise_naming_the_file(tmp_path):
    good = tmp_path / "good.safetensors"
    save({"a": Tensor(np.ones((2, 3))), "b": Tensor([1.0, 2.0])}, good, format="safetensors")
    blob = good.read_bytes()
    (n,) = struct.unpack_from("<Q", blob)
    f4 = np.ones(2, "<f4").tobytes()
    def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
        return {"dtype": dtype, "shape": list(shape),
                                                                  "data_offsets": list(offsets)}
    cases = {
        "cut_data": (blob[:-1], "the tensors cover 32 data bytes, the file has 31"),
        "cut_header": (blob[:8 + n - 3], "does not fit in the .*-byte file \\(truncated\\)"),
        "padded": (blob + b"\0", "the tensors cover 32 data bytes, the file has 33"),
        "huge_header": (struct.pack("<Q", 2 ** 40) + b"{}", "exceeds the format's limit"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(SerializationError, match=f"{name}.safetensors.*{message}"):
            load(path)
    headers = {
        "bad_json": (b'{"a": {"dtype": ', f4, "unreadable header"),
        "duplicate": (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "a": {"dtype": "F32", '
                      b'"shape": [2], "data_offsets": [0, 8]}}', f4, "duplicate names \\['a'\\]"),
        "unknown_dtype": ({"a": entry(dtype="F31")}, f4, "'F31', which is not a safetensors dtype"),
        "bf16": ({"a": entry(dtype="BF16", offsets=(0, 4))}, f4[:4], "'BF16', which numpy, and so clownpiece, "
                                                                    "cannot hold"),
        "size": ({"a": entry(shape=(3,))}, f4, "bytes \\[0, 8\\] do not hold shape \\[3\\] of F32"),
        "gap": ({"a": entry(offsets=(8, 16))}, f4 + f4, "starts at byte 8 of the data where 0 was expected"),
        "overlap": ({"a": entry(), "b": entry(offsets=(4, 12))}, f4 + f4[:4],
                    "starts at byte 4 of the data where 8 was expected"),
        "negative": ({"a": entry(shape=(-2,))}, f4, "bad shape \\[-2\\]"),
        "fields": ({"a": {"dtype": "F32", "shape": [2]}}, f4, "expected dtype, shape and data_offsets"),
        "metadata": ({"__metadata__": {"format": 1}, "a": entry()}, f4, "__metadata__ must map names to strings"),
        "bool_bytes": ({"a": entry(dtype="BOOL", offsets=(0, 2))}, b"\x01\x07", "holds bytes other than 0 and 1"),
    }
    for name, (header, data, message) in headers.items():
        path = tmp_path / f"{name}.safetensors"
        write_raw(path, header, data)
        with pytest.raises(SerializationError, match=f"{name}.safetensors.*{message}"):
            load(path)


def test_a_header_that_is_no_json_object_is_no_safetensors_file(tmp_path):
    path = tmp_path / "list.safetensors"
    write_raw(path, b"[1, 2]", b"\0" * 16)
    with pytest.raises(SerializationError, match="list.safetensors.*written neither by clownpiece.save nor in the "
                                                 "safetensors format"):
        load(path)


def test_unpadded_headers_from_other_writers_load(tmp_path):
    path = tmp_path / "unpadded.safetensors"
    write_raw(path, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, np.float32([3, 4]).tobytes(),
              pad=False)
    assert load(path)["a"].tolist() == [3.0, 4.0]
