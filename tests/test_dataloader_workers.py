"""DataLoader(num_workers=, prefetch_factor=, persistent_workers=, ...): PyTorch's validation, the same batches
as without workers, prefetch depth, the host-only hand-off (workers never touch the device; what needs the
device runs on the main thread, with a warning), errors, timeouts and thread lifetimes."""
import gc
import threading
import time
import warnings

import numpy as np
import pytest

import clownpiece as cp
from clownpiece import backend
from clownpiece.backend import HostOnlyThreadError, host_only_thread
from clownpiece.utils.data import DataLoader, Dataset, TensorDataset, default_collate, to_tensor_transform


class Squares(Dataset):
    """Item i: (i * i, float32 [2] of (i, -i), "s<i>"); records the threads that fetched items."""

    def __init__(self, n, fail_at=None, delay=0.0):
        self.n, self.fail_at, self.delay = n, fail_at, delay
        self.threads = set()
        self.fetched = []

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        self.fetched.append(i)
        if self.delay:
            time.sleep(self.delay)
        if i == self.fail_at:
            raise KeyError(f"no item {i}")
        return i * i, np.array([i, -i], dtype=np.float32), f"s{i}"

    def __len__(self):
        return self.n


def host(batches):
    """Batches as comparable host values."""
    def value(v):
        if isinstance(v, cp.TensorBase):
            return ("tensor", v.dtype.name, v.numpy().tolist())
        if isinstance(v, tuple):
            return tuple(value(x) for x in v)
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return ("array", v.tolist())
        return v
    return [value(b) for b in batches]


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback warning where none is expected fails the test
        yield


def test_pytorch_validation():
    ds = Squares(4)
    cases = [
        (dict(num_workers=-1), ValueError, "num_workers option should be non-negative"),
        (dict(num_workers=1.5), TypeError, "num_workers must be an int"),
        (dict(prefetch_factor=2), ValueError, "prefetch_factor option could only be specified with worker threads"),
        (dict(num_workers=2, prefetch_factor=0), ValueError, "prefetch_factor must be >= 1"),
        (dict(num_workers=2, prefetch_factor=2.0), TypeError, "prefetch_factor must be an int"),
        (dict(persistent_workers=True), ValueError, "persistent_workers option needs num_workers > 0"),
        (dict(timeout=-1), ValueError, "timeout option should be non-negative"),
        (dict(num_workers=1, worker_init_fn=3), TypeError, "worker_init_fn must be callable"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            DataLoader(ds, **kwargs)
    loader = DataLoader(ds, batch_size=3, num_workers=2, pin_memory=True, persistent_workers=True)
    assert loader.prefetch_factor == 2 and loader.pin_memory and len(loader) == 2
    assert DataLoader(ds, num_workers=0).prefetch_factor is None


LOADERS = [
    lambda ds: dict(batch_size=3),
    lambda ds: dict(batch_size=4, shuffle=True, seed=7),
    lambda ds: dict(batch_size=5, drop_last=True),
    lambda ds: dict(batch_size=2, sampler=[9, 1, 4, 4, 0]),
    lambda ds: dict(batch_size=3, collate_fn=lambda s: [x[0] for x in s]),
]


@pytest.mark.parametrize("options", LOADERS)
@pytest.mark.parametrize("workers, prefetch", [(1, 1), (2, None), (3, 4)])
def test_same_batches_as_without_workers(options, workers, prefetch):
    reference = host(DataLoader(Squares(11), **options(None)))
    ds = Squares(11)
    got = host(DataLoader(ds, num_workers=workers, prefetch_factor=prefetch, **options(None)))
    assert got == reference
    assert ds.threads and all(name.startswith("clownpiece-loader-") for name in ds.threads)  # fetched there


def test_tensor_datasets_and_dict_samples_with_workers():
    x, y = np.arange(40.0).reshape(20, 2), np.arange(20)
    for data in ((x, y), (cp.Tensor(x), cp.Tensor(y, dtype="float64"))):  # numpy: one gather; device: views
        ds = TensorDataset(*data)
        assert host(DataLoader(ds, batch_size=6, shuffle=True, seed=1, num_workers=2)) == \
            host(DataLoader(ds, batch_size=6, shuffle=True, seed=1))

    class Dicts(Dataset):
        def __getitem__(self, i):
            return {"x": np.full(3, i, np.float32), "name": f"n{i}", "pair": (i, i + 0.5)}

        def __len__(self):
            return 7
    assert host(DataLoader(Dicts(), batch_size=3, num_workers=2)) == host(DataLoader(Dicts(), batch_size=3))


def test_workers_build_host_data_and_the_main_thread_uploads():
    ds = Squares(12)
    backend.reset_stats()
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert backend.stats()["h2d_count"] == 3 * 2  # two numeric fields per batch, uploaded once each
    assert all(isinstance(b[0], cp.Tensor) and b[2] == [f"s{i}" for i in range(4 * k, 4 * k + 4)]
               for k, b in enumerate(batches))


def test_prefetch_keeps_num_workers_times_prefetch_factor_batches_in_flight():
    ds = Squares(40)
    it = iter(DataLoader(ds, batch_size=1, num_workers=2, prefetch_factor=3))
    deadline = time.time() + 10
    while len(ds.fetched) < 6 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # nothing beyond the depth may follow
    assert sorted(ds.fetched) == list(range(6))
    assert host([next(it)]) == host(DataLoader(Squares(1), batch_size=1))
    deadline = time.time() + 10
    while len(ds.fetched) < 7 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert sorted(ds.fetched) == list(range(7))  # taking one batch asks for one more
    assert len(list(it)) == 39


def test_the_guard_refuses_device_work_on_a_host_only_thread():
    t = cp.Tensor([1.0, 2.0])
    with host_only_thread():
        for fn in (lambda: cp.Tensor([1.0]), lambda: t + 1, lambda: t.numpy(), lambda: t.mul_(2.0)):
            with pytest.raises(HostOnlyThreadError, match="data loader worker thread"):
                fn()
    assert t.tolist() == [1.0, 2.0]  # nothing ran
    errors = []

    def worker():
        with host_only_thread():
            try:
                cp.zeros(3)
            except HostOnlyThreadError as e:
                errors.append(e)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1 and (t + 1).tolist() == [2.0, 3.0]  # the main thread is not affected


def test_a_dataset_that_makes_device_tensors_falls_back_to_the_main_thread():
    class DeviceSamples(Dataset):
        to_tensor = staticmethod(to_tensor_transform())

        def __getitem__(self, i):
            return self.to_tensor(np.full(2, i, np.float32)), i

        def __len__(self):
            return 9
    reference = host(DataLoader(DeviceSamples(), batch_size=2))
    with pytest.warns(RuntimeWarning, match="num_workers=2.*the dataset made device tensors.*main thread") as w:
        got = host(DataLoader(DeviceSamples(), batch_size=2, num_workers=2))
    assert got == reference and len(w) == 1


def test_a_collate_fn_that_makes_device_tensors_falls_back_to_the_main_thread():
    ds = Squares(10)
    reference = host(DataLoader(ds, batch_size=3, collate_fn=lambda s: default_collate(s)))
    with pytest.warns(RuntimeWarning, match="collate_fn made device tensors") as w:
        got = host(DataLoader(ds, batch_size=3, num_workers=2, collate_fn=lambda s: default_collate(s)))
    assert got == reference and len(w) == 1
    assert any(name.startswith("clownpiece-loader-") for name in ds.threads)  # samples still come from workers


def test_dataset_errors_surface_at_their_batch():
    it = iter(DataLoader(Squares(12, fail_at=7), batch_size=3, num_workers=2))
    assert host([next(it), next(it)]) == host(list(DataLoader(Squares(6), batch_size=3)))
    with pytest.raises(KeyError, match="no item 7"):
        next(it)


def test_timeout():
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.05 seconds"):
        list(DataLoader(Squares(4, delay=1.0), batch_size=2, num_workers=1, timeout=0.05))


def loader_threads():
    return {t for t in threading.enumerate() if t.name.startswith("clownpiece-loader-")}


def wait_for(condition, seconds=10):
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.01)
    return condition()


def test_worker_init_fn_and_persistent_workers():
    assert wait_for(lambda: not loader_threads())
    calls = []

    def init(worker_id):
        calls.append((worker_id, threading.current_thread().name))
    loader = DataLoader(Squares(6), batch_size=2, num_workers=2, worker_init_fn=init, persistent_workers=True)
    first, second = host(loader), host(loader)
    assert first == second == host(DataLoader(Squares(6), batch_size=2))
    assert sorted(calls) == [(0, "clownpiece-loader-0"), (1, "clownpiece-loader-1")]  # once per thread
    assert len(loader_threads()) == 2
    del loader
    gc.collect()
    assert wait_for(lambda: not loader_threads())

    calls.clear()
    loader = DataLoader(Squares(6), batch_size=2, num_workers=2, worker_init_fn=init)
    host(loader), host(loader)
    assert sorted(w for w, _ in calls) == [0, 0, 1, 1]  # new threads every epoch
    assert wait_for(lambda: not loader_threads())  # and they end with it

    def broken(worker_id):
        raise ValueError(f"init failed in {worker_id}")
    with pytest.raises(ValueError, match="init failed in"):
        list(DataLoader(Squares(6), batch_size=2, num_workers=1, worker_init_fn=broken))


def test_an_abandoned_epoch_stops_its_threads():
    assert wait_for(lambda: not loader_threads())
    ds = Squares(1000)
    it = iter(DataLoader(ds, batch_size=1, num_workers=2, prefetch_factor=2))
    next(it)
    del it
    gc.collect()
    assert wait_for(lambda: not loader_threads())
    assert len(ds.fetched) <= 1 + 2 * 2 + 2  # the batches in flight, no more
