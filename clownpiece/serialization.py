"""save(obj, path) / load(path): state dicts and nested containers of tensors in a safe format (no pickle).

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
next to the target and renames it at the end, so a failed save never leaves a half-written file."""
import json
import math
import numbers
import os
import struct
import tempfile
import zlib

import numpy as np

from ._tensor import Tensor, TensorBase

MAGIC = b"CLWNPCE\0"
VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
_CRC = struct.Struct("<I")
_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}


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


def save(obj, path):
    """Write `obj` (tensors, numbers, strings, None, and nested lists/tuples/dicts of them) to `path`."""
    writer = _Writer()
    tree = writer.encode(obj, "obj")
    header = json.dumps({"tree": tree, "tensors": writer.entries, "data_bytes": writer.offset},
                        separators=(",", ":")).encode("utf-8")
    crc = zlib.crc32(header)
    for chunk in writer.chunks:
        crc = zlib.crc32(chunk, crc)
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_PREFIX.pack(MAGIC, VERSION, len(header)))
            f.write(header)
            f.write(_CRC.pack(crc))
            for chunk in writer.chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path):
    """Read an object written by `save`; tensors come back as the class they were saved as (Tensor,
    Parameter, Buffer, TensorBase) with their dtype, shape and requires_grad."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()

    def fail(what):
        return SerializationError(f"load: {path!r} is not a valid clownpiece file: {what}")

    if len(blob) < _PREFIX.size:
        raise fail(f"only {len(blob)} bytes (truncated or not a clownpiece file)")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise fail(f"bad magic {magic!r} (expected {MAGIC!r}): not written by clownpiece.save")
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
