"""save(obj, path) / load(path): state dicts and nested containers of tensors in a safe format (no pickle),
and flat dicts of tensors in Hugging Face's safetensors format (`format="safetensors"`; see below).

File layout (all integers little-endian):

    magic    8 bytes  b"CLWNPCE\\0"
    version  u32      1
    hlen     u64      length of the header
    header   hlen bytes of UTF-8 JSON: {"tree": <encoded obj>, "tensors": [{"dtype", "shape", "offset",
                      "nbytes", "kind", "requires_grad"}...], "data_bytes": n}
    crc      u32      CRC-32 of header + data
    data     n bytes  the tensors' raw little-endian values, row-major, back to back

The tree encodes JSON scalars as themselves, other floats (nan, inf) as {"float": "nan"}, and containers
and tensors as tagged objects ({"list": [...]}, {"tuple": [...]}, {"dict": [[key, value], ...]} so keys
keep their type and order, {"tensor": index}). Loading trusts nothing: every length, offset, dtype and
tag is checked, and any problem raises SerializationError naming the file. Saving writes a temporary file
next to the target and renames it at the end, so a failed save never leaves a half-written file.

safetensors (written here, so the core needs no new dependency; the `safetensors` package reads and writes
the same files):

    hlen     u64      length of the header
    header   hlen bytes of UTF-8 JSON, padded with spaces to a multiple of 8: {name: {"dtype": "F32",
                      "shape": [...], "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
    data     the tensors' raw little-endian values, row-major; the [begin, end) ranges (relative to the data's
             start) tile it exactly, without gaps or overlaps

`load` tells the formats apart by their first bytes: clownpiece's magic, or a length followed by "{"."""
from __future__ import annotations

import json
import math
import numbers
import os
import struct
import tempfile
import zlib
from typing import Any, Literal, Union

import numpy as np

from ._layout import is_int
from ._tensor import Tensor, TensorBase

MAGIC = b"CLWNPCE\0"
VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
_CRC = struct.Struct("<I")
# every dtype by name, as stored (little-endian; bool as 0/1 bytes)
_DTYPES = {"bool": np.dtype("|b1"), "int32": np.dtype("<i4"), "int64": np.dtype("<i8"), "float16": np.dtype("<f2"),
           "float32": np.dtype("<f4"), "float64": np.dtype("<f8")}


class SerializationError(RuntimeError, ValueError):
    """A file that cannot be loaded (truncated, corrupted, not a clownpiece file) or an object that
    cannot be saved."""


def _tensor_kinds():
    """The tensor classes a file can name: TensorBase, Tensor, and the subclasses of Tensor that clownpiece
    defines (nn's Parameter and Buffer). They are found through Tensor.__subclasses__(), so saving and
    loading need only the tensor classes, not clownpiece.nn."""
    kinds = {"TensorBase": TensorBase, "Tensor": Tensor}
    pending = Tensor.__subclasses__()
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("clownpiece.") and cls.__name__ not in kinds:
            kinds[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return kinds


class _Writer:
    def __init__(self):
        self.entries, self.chunks, self.offset = [], [], 0
        self.index_of = {}  # id(tensor) -> index: a tensor saved twice is loaded as one object

    def encode(self, obj, path):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, numbers.Integral):
            return int(obj)
        if isinstance(obj, numbers.Real):
            v = float(obj)
            return v if math.isfinite(v) else {"float": repr(v)}
        if isinstance(obj, TensorBase):
            return {"tensor": self.add_tensor(obj)}
        if isinstance(obj, (list, tuple)):
            tag = "list" if isinstance(obj, list) else "tuple"
            return {tag: [self.encode(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise SerializationError(f"save: dict key {k!r} at {path} must be a str or an int")
                items.append([k, self.encode(v, f"{path}[{k!r}]")])
            return {"dict": items}
        raise SerializationError(f"save: cannot store {type(obj).__name__} at {path}; supported: tensors, numbers, "
                                 f"strings, None, and lists/tuples/dicts of them")

    def add_tensor(self, t):
        key = id(t)
        if key in self.index_of:
            return self.index_of[key]
        data = t.numpy().astype(_DTYPES[t.dtype.name], copy=False)
        self.entries.append({"dtype": t.dtype.name, "shape": list(t._shape), "offset": self.offset,
                             "nbytes": data.nbytes, "kind": _kind_name(t),
                             "requires_grad": bool(getattr(t, "requires_grad", False))})
        self.chunks.append(data.tobytes())
        self.offset += data.nbytes
        self.index_of[key] = len(self.entries) - 1
        return self.index_of[key]


def _kind_name(t):
    """The most derived of the known tensor classes that t is (subclasses load as that class)."""
    known = _tensor_kinds()
    return next(c.__name__ for c in type(t).__mro__ if known.get(c.__name__) is c)


def save(obj: Any, path: Union[str, os.PathLike[str]],
         format: Literal["clownpiece", "safetensors"] = "clownpiece") -> None:
    """Write `obj` to `path`. format="clownpiece": tensors, numbers, strings, None, and nested
    lists/tuples/dicts of them. format="safetensors": a flat dict of name -> tensor (a state_dict; its None
    entries, disabled parameters, are left out, which load_state_dict accepts)."""
    if format == "safetensors":
        chunks = _safetensors_chunks(obj)
    elif format == "clownpiece":
        chunks = _clownpiece_chunks(obj)
    else:
        raise ValueError(f"save: format must be 'clownpiece' or 'safetensors', got {format!r}")
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _clownpiece_chunks(obj):
    writer = _Writer()
    tree = writer.encode(obj, "obj")
    header = json.dumps({"tree": tree, "tensors": writer.entries, "data_bytes": writer.offset},
                        separators=(",", ":")).encode("utf-8")
    crc = zlib.crc32(header)
    for chunk in writer.chunks:
        crc = zlib.crc32(chunk, crc)
    return [_PREFIX.pack(MAGIC, VERSION, len(header)), header, _CRC.pack(crc), *writer.chunks]


def load(path: Union[str, os.PathLike[str]]) -> Any:
    """Read a file written by `save` in either format (told apart by its first bytes). A clownpiece file
    gives back its object, tensors as the class they were saved as (Tensor, Parameter, Buffer, TensorBase)
    with their dtype, shape and requires_grad; a safetensors file (from any writer) a dict of name -> Tensor
    in the header's order."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()
    if _is_safetensors(blob):
        return _load_safetensors(blob, path)

    def fail(what):
        return SerializationError(f"load: {path!r} is not a valid clownpiece file: {what}")

    if len(blob) < _PREFIX.size:
        raise fail(f"only {len(blob)} bytes (truncated or not a clownpiece file)")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise fail(f"bad magic {magic!r} (expected {MAGIC!r}): written neither by clownpiece.save nor in the "
                   f"safetensors format")
    if version != VERSION:
        raise fail(f"format version {version} is not supported (this build reads version {VERSION})")
    start = _PREFIX.size + hlen + _CRC.size
    if start > len(blob):
        raise fail(f"header of {hlen} bytes does not fit in the {len(blob)}-byte file (truncated)")
    header_bytes = blob[_PREFIX.size:_PREFIX.size + hlen]
    (crc,) = _CRC.unpack_from(blob, _PREFIX.size + hlen)
    data = memoryview(blob)[start:]
    try:
        header = json.loads(header_bytes.decode("utf-8"))
        entries, tree, data_bytes = header["tensors"], header["tree"], header["data_bytes"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise fail(f"unreadable header ({e})") from None
    if data_bytes != len(data):
        raise fail(f"{len(data)} data bytes where the header announces {data_bytes} (truncated or padded)")
    if zlib.crc32(data, zlib.crc32(header_bytes)) != crc:
        raise fail("checksum mismatch (the file is corrupted)")
    tensors = [_read_tensor(e, data, i, fail) for i, e in enumerate(entries)]
    return _decode(tree, tensors, fail)


def _read_tensor(entry, data, i, fail):
    kinds = _tensor_kinds()
    try:
        dtype = _DTYPES[entry["dtype"]]
        shape = tuple(int(s) for s in entry["shape"])
        offset, nbytes, kind = int(entry["offset"]), int(entry["nbytes"]), kinds[entry["kind"]]
        requires_grad = bool(entry.get("requires_grad", False))
    except (KeyError, TypeError, ValueError) as e:
        raise fail(f"tensor {i} has a bad description {entry!r} ({e!r})") from None
    if any(s < 0 for s in shape) or nbytes != math.prod(shape) * dtype.itemsize:
        raise fail(f"tensor {i}: {nbytes} bytes do not hold shape {list(shape)} of {dtype.name}")
    if offset < 0 or offset + nbytes > len(data):
        raise fail(f"tensor {i}: bytes [{offset}, {offset + nbytes}) lie outside the {len(data)}-byte data")
    arr = np.frombuffer(data, dtype, math.prod(shape), offset).reshape(shape).astype(dtype.newbyteorder("="))
    native = arr.dtype
    if kind is TensorBase:
        return TensorBase(arr, dtype=native)
    t = Tensor(arr, requires_grad=requires_grad, dtype=native)
    if kind is Tensor:
        return t
    out = kind(t)  # Parameter(t), Buffer(t): a Tensor subclass shares the loaded tensor's storage
    out.requires_grad = requires_grad
    return out


def _decode(node, tensors, fail):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict) and len(node) == 1:
        (tag, value), = node.items()
        if tag == "tensor" and isinstance(value, int) and 0 <= value < len(tensors):
            return tensors[value]
        if tag == "float" and value in ("nan", "inf", "-inf"):
            return float(value)
        if tag in ("list", "tuple") and isinstance(value, list):
            items = [_decode(v, tensors, fail) for v in value]
            return items if tag == "list" else tuple(items)
        if tag == "dict" and isinstance(value, list) and all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int)) for p in value):
            return {k: _decode(v, tensors, fail) for k, v in value}
    raise fail(f"unknown entry {json.dumps(node)[:80]} in the object tree")


# ---- safetensors ------------------------------------------------------------------------------------------
# the format's dtype codes that numpy can hold; BF16 and the 8-bit floats have no numpy dtype
_ST_DTYPES = {"BOOL": np.dtype("|b1"), "U8": np.dtype("|u1"), "I8": np.dtype("|i1"), "U16": np.dtype("<u2"),
              "I16": np.dtype("<i2"), "F16": np.dtype("<f2"), "U32": np.dtype("<u4"), "I32": np.dtype("<i4"),
              "F32": np.dtype("<f4"), "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8")}
_ST_CODES = {dtype.newbyteorder("="): code for code, dtype in _ST_DTYPES.items()}
_ST_MAX_HEADER = 100_000_000  # the reference implementation's limit
_U64 = struct.Struct("<Q")


def _is_safetensors(blob):
    return (len(blob) >= _U64.size + 1 and blob[:len(MAGIC)] != MAGIC and blob[_U64.size:_U64.size + 1] == b"{")


def _safetensors_chunks(obj):
    if not isinstance(obj, dict):
        raise SerializationError(f"save(format='safetensors'): expected a flat dict of name -> tensor (a "
                                 f"state_dict), got {type(obj).__name__}")
    tensors = []
    for name, t in obj.items():
        if not isinstance(name, str):
            raise SerializationError(f"save(format='safetensors'): key {name!r} must be a str")
        if name == "__metadata__":
            raise SerializationError("save(format='safetensors'): the key '__metadata__' is reserved by the format")
        if t is None:
            continue
        if not isinstance(t, TensorBase):
            raise SerializationError(f"save(format='safetensors'): {name!r} holds a {type(t).__name__}; the format "
                                     f"stores tensors only (use format='clownpiece' for other values)")
        code = _ST_CODES.get(np.dtype(t.dtype))
        if code is None:
            raise SerializationError(f"save(format='safetensors'): {name!r} has dtype {t.dtype}, which has no "
                                     f"safetensors code")
        tensors.append((name, code, t.numpy().astype(_ST_DTYPES[code], copy=False)))
    # data in order of decreasing element size keeps every tensor aligned to its element (as the reference
    # writer does); the header keeps the dict's order, which load returns
    ordered = sorted(tensors, key=lambda e: -e[2].itemsize)
    offsets, offset = {}, 0
    for name, _, data in ordered:
        offsets[name] = (offset, offset + data.nbytes)
        offset += data.nbytes
    header = json.dumps({name: {"dtype": code, "shape": list(data.shape), "data_offsets": list(offsets[name])}
                         for name, code, data in tensors}, separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 8)
    return [_U64.pack(len(header)), header, *(np.ascontiguousarray(d).tobytes() for _, _, d in ordered)]


def _load_safetensors(blob, path):
    def fail(what):
        return SerializationError(f"load: {path!r} is not a valid safetensors file: {what}")

    (hlen,) = _U64.unpack_from(blob)
    if hlen > _ST_MAX_HEADER:
        raise fail(f"header length {hlen} exceeds the format's limit of {_ST_MAX_HEADER} bytes")
    if _U64.size + hlen > len(blob):
        raise fail(f"header of {hlen} bytes does not fit in the {len(blob)}-byte file (truncated)")

    def unique(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate names {sorted({k for k in keys if keys.count(k) > 1})}")
        return dict(pairs)

    try:
        header = json.loads(blob[_U64.size:_U64.size + hlen].decode("utf-8"), object_pairs_hook=unique)
    except (UnicodeDecodeError, ValueError) as e:
        raise fail(f"unreadable header ({e})") from None
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail("__metadata__ must map names to strings")
    data = memoryview(blob)[_U64.size + hlen:]
    entries = [(name, *_safetensors_entry(name, info, fail)) for name, info in header.items()]
    end = 0
    for name, _, _, (begin, stop) in sorted(entries, key=lambda e: e[3]):
        if begin != end:
            raise fail(f"tensor {name!r} starts at byte {begin} of the data where {end} was expected (the "
                       f"tensors must tile the data without gaps or overlaps)")
        end = stop
    if end != len(data):
        raise fail(f"the tensors cover {end} data bytes, the file has {len(data)} (truncated or padded)")
    out = {}
    for name, dtype, shape, (begin, stop) in entries:
        arr = np.frombuffer(data, dtype, math.prod(shape), begin).reshape(shape)
        if dtype == np.bool_ and arr.view(np.uint8).max(initial=0) > 1:
            raise fail(f"BOOL tensor {name!r} holds bytes other than 0 and 1")
        native = arr.astype(dtype.newbyteorder("="))
        try:
            out[name] = Tensor(native, dtype=native.dtype)
        except TypeError as e:
            raise SerializationError(f"load: {path!r}: tensor {name!r} is {dtype.name}, which clownpiece cannot "
                                     f"hold ({e})") from None
    return out


def _safetensors_entry(name, info, fail):
    """(numpy dtype, shape, (begin, end)) of one header entry, every field checked."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise fail(f"tensor {name!r} has a bad description {info!r} (expected dtype, shape and data_offsets)")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if code not in _ST_DTYPES:
        known = code in ("BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64")
        raise fail(f"tensor {name!r} has dtype {code!r}, which "
                   + ("numpy, and so clownpiece, cannot hold" if known else "is not a safetensors dtype"))
    def ints(v):
        return isinstance(v, list) and all(is_int(x) and x >= 0 for x in v)
    if not ints(shape) or not ints(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise fail(f"tensor {name!r}: bad shape {shape!r} or data_offsets {offsets!r}")
    dtype = _ST_DTYPES[code]
    if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
        raise fail(f"tensor {name!r}: bytes {offsets} do not hold shape {shape} of {code}")
    return dtype, tuple(shape), tuple(offsets)
