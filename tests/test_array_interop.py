"""clownpiece.tensor and from_numpy read arrays of other libraries through __array__ or __dlpack__ (what a
torch tensor offers); tested with numpy's own protocols, never with torch."""
import numpy as np
import pytest

import clownpiece as cp


class OnlyArray:
    """An array of another library as numpy sees it through __array__ (PIL images, pandas, ...)."""

    def __init__(self, arr):
        self.arr = arr

    def __array__(self, dtype=None, copy=None):
        return self.arr if dtype is None else self.arr.astype(dtype)


class OnlyDLPack:
    """An array that offers DLPack only (numpy's own exporter underneath)."""

    def __init__(self, arr):
        self.arr = arr

    def __dlpack__(self, **kwargs):
        return self.arr.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


class DeviceOnlyDLPack(OnlyDLPack):
    """An array in memory only its library can read: numpy refuses its DLPack capsule."""

    def __dlpack__(self, **kwargs):
        raise BufferError("the array is in device memory")

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA


class BrokenDLPackWithArray(DeviceOnlyDLPack):
    """A torch-like object whose DLPack export fails but whose __array__ works: __array__ is used."""

    def __array__(self, dtype=None, copy=None):
        return self.arr


rng = np.random.default_rng(3)


@pytest.mark.parametrize("wrap", [OnlyArray, OnlyDLPack, BrokenDLPackWithArray], ids=lambda w: w.__name__)
@pytest.mark.parametrize("shape", [(2, 3), (), (0, 4), (3, 1, 2)], ids=str)
def test_tensor_reads_array_protocols(wrap, shape):
    arr = rng.standard_normal(shape).astype(np.float32)
    t = cp.tensor(wrap(arr))
    assert isinstance(t, cp.Tensor) and t.shape == list(shape) and t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), arr)
    f = cp.from_numpy(wrap(arr))
    assert f.shape == list(shape)
    np.testing.assert_array_equal(f.numpy(), arr)


@pytest.mark.parametrize("wrap", [OnlyArray, OnlyDLPack], ids=lambda w: w.__name__)
def test_dtypes_strides_and_options_through_the_protocols(wrap):
    base = rng.standard_normal((4, 6))
    strided = base[::2, 1::2]  # a non-contiguous view: DLPack hands over its strides
    t = cp.tensor(wrap(strided), dtype="float64", requires_grad=True)
    assert t.dtype == np.float64 and t.requires_grad and t.shape == [2, 3]
    np.testing.assert_array_equal(t.numpy(), strided)
    assert cp.from_numpy(wrap(strided)).dtype == np.float64  # from_numpy keeps float64
    ints = cp.from_numpy(wrap(np.arange(5)))
    assert ints.dtype == np.int64 and ints.tolist() == [0, 1, 2, 3, 4]  # keeps its dtype, as for a numpy array
    arr = np.ones(3, np.float32)
    t = cp.tensor(wrap(arr))
    arr[0] = 5.0
    assert t.tolist() == [1.0, 1.0, 1.0]  # tensor() copies


def test_unreadable_objects_raise_clearly():
    with pytest.raises(TypeError, match="cannot read the DeviceOnlyDLPack through __dlpack__.*copy it to host"):
        cp.tensor(DeviceOnlyDLPack(np.zeros(2)))
    with pytest.raises(TypeError, match="cannot read the DeviceOnlyDLPack"):
        cp.from_numpy(DeviceOnlyDLPack(np.zeros(2)))
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray or an object with __array__ or "
                                        "__dlpack__, got list"):
        cp.from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="cannot build a tensor from object"):
        cp.tensor(object())
