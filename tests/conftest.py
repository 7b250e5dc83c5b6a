"""Shared test helpers: both dtypes, numpy float64 references, and non-contiguous layouts of the same data."""
import contextlib
import gc
import os

import numpy as np
import pytest

import clownpiece as cp

DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5), np.dtype(np.float64): dict(rtol=1e-11, atol=1e-11)}


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


def to_np(t):
    """A tensor's values as float64 numpy (tests only)."""
    return np.asarray(t.numpy(), dtype=np.float64)


def assert_close(t, ref, dtype=None, rtol=None, atol=None):
    """Compare a tensor with a numpy float64 reference, tolerance by dtype."""
    dtype = np.dtype(dtype or t.dtype)
    tol = dict(TOL[dtype])
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    ref = np.asarray(ref, dtype=np.float64)
    got = to_np(t)
    assert list(got.shape) == list(ref.shape), f"shape {list(got.shape)} != reference {list(ref.shape)}"
    np.testing.assert_allclose(got, ref, equal_nan=True, **tol)


def pool_bytes_in_use():
    """Device bytes held by live tensors, once cyclic garbage (e.g. from earlier tests) has been collected:
    the collector may otherwise free old buffers in the middle of a measurement."""
    gc.collect()
    return cp.backend.stats()["pool_bytes_in_use"]


@contextlib.contextmanager
def no_launch():
    """Fails unless the block launches no kernel: views, and errors that must raise before any launch
    (nest pytest.raises inside it)."""
    before = cp.backend.stats()["launches"]
    yield
    assert cp.backend.stats()["launches"] == before, "the block launched a kernel"


def make(arr, dtype=np.float32, layout="contiguous", cls=cp.Tensor):
    """A tensor holding `arr`'s values laid out as asked, with the numpy array it equals.

    layout: 'contiguous'; 'transposed' (built from arr.T, then transposed back: same values, permuted
    strides); 'sliced' (a strided window of a bigger buffer); 'expanded' is done by callers via
    broadcast_to since it changes the shape."""
    arr = np.asarray(arr, dtype=np.float64)
    if layout == "contiguous" or arr.ndim == 0:  # a 0-dim tensor has one layout
        return cls(arr.astype(dtype), dtype=dtype), arr
    if layout == "transposed":
        if arr.ndim < 2:
            return make(arr, dtype, "sliced", cls)
        base = cls(np.ascontiguousarray(np.swapaxes(arr, -1, -2)).astype(dtype), dtype=dtype)
        return base.transpose(-1, -2), arr
    if layout == "sliced":
        big = np.zeros(tuple(s + 2 for s in arr.shape), dtype=np.float64) - 7.0
        window = tuple(slice(1, 1 + s) for s in arr.shape)
        big[window] = arr
        base = cls(big.astype(dtype), dtype=dtype)
        t = base
        for d, s in enumerate(arr.shape):
            t = t.narrow(d, 1, s)
        return t, arr
    raise ValueError(layout)


LAYOUTS = ["contiguous", "transposed", "sliced"]


# ---- the strict run (.ci/oclgrind): each test's oclgrind reports fail that test ---------------------------
# Under `oclgrind --log FILE`, with CLOWNPIECE_OCLGRIND_LOG=FILE, a test after which the simulator reported an
# invalid access, an uninitialised value, a data race or divergence gets an error naming what it reported.
_OCLGRIND_LOG = os.environ.get("CLOWNPIECE_OCLGRIND_LOG")
_oclgrind_seen = [0]


@pytest.fixture(autouse=bool(_OCLGRIND_LOG))
def _oclgrind_reports():
    yield
    cp.synchronize()
    size = os.path.getsize(_OCLGRIND_LOG) if os.path.exists(_OCLGRIND_LOG) else 0
    if size > _oclgrind_seen[0]:
        with open(_OCLGRIND_LOG, errors="replace") as f:
            f.seek(_oclgrind_seen[0])
            report = f.read()
        _oclgrind_seen[0] = size
        pytest.fail(f"oclgrind reported errors during this test:\n{report[:4000]}", pytrace=False)
