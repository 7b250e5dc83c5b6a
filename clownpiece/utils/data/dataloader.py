"""The course's Dataloader (PyTorch's DataLoader), the default collate, and prefetching on worker threads.

Collation happens on the host: numbers and arrays of a batch are stacked with numpy and uploaded once per
field, so a dataset of numpy samples costs one upload per batch. Works with any map-style dataset
(`__getitem__` + `__len__`), torchvision's included.

With `num_workers > 0`, worker threads fetch and collate the next `num_workers * prefetch_factor` batches
while the main thread trains. The hand-off keeps every device operation on the main thread: clownpiece's
pool, counters, fusion state and queue order are not locked, so a worker only ever builds host data (numpy
arrays, numbers, lists) and the main thread uploads it when it takes the batch (an upload is an enqueue that
does not wait, so this costs the main thread little). Workers are registered as host-only threads
(backend.host_only_thread): any allocation, launch, upload or download they would make raises
HostOnlyThreadError before touching device state. A dataset or collate_fn that makes device tensors (the
course's to_tensor_transform) is caught that way: the loader then does that work on the main thread from the
next batch on, with one warning, so results are the same, only without the overlap."""
from __future__ import annotations

import math
import numbers
import queue
import threading
import warnings
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np

from ..._tensor import Tensor, TensorBase
from ...backend import HostOnlyThreadError, host_only_thread
from ...ops.index import stack
from .dataset import MapDataset


class ConflictingOptionsError(ValueError, AssertionError):
    """shuffle together with a sampler: a ValueError as in PyTorch, an AssertionError as in the course."""


class _Stack(list):
    """Host collation's mark for samples that are clownpiece tensors: stacked on the device by the main thread."""


def _collate_host(samples):
    """default_collate without the device: numeric fields as stacked numpy arrays, clownpiece tensors as
    _Stack lists, other values as lists, in default_collate's tuples and dicts."""
    first = samples[0]
    if isinstance(first, TensorBase):
        return _Stack(samples)
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in samples):
            raise ValueError("default_collate: samples in a batch have different numbers of fields")
        return tuple(_collate_host(list(field)) for field in zip(*samples))
    if isinstance(first, dict):
        return {key: _collate_host([s[key] for s in samples]) for key in first}
    if first is None or isinstance(first, (str, bytes)):
        return list(samples)
    try:
        batch = np.stack([np.asarray(s) for s in samples])
    except ValueError as e:
        raise ValueError(f"default_collate: cannot stack samples of different shapes ({e})") from None
    if batch.dtype.kind not in "biuf":
        return list(samples)
    return batch


def _to_device(batch):
    """A host-collated batch with its numpy arrays uploaded (one Tensor each) and its _Stack lists stacked."""
    if isinstance(batch, np.ndarray):
        return Tensor(batch, requires_grad=False)
    if isinstance(batch, _Stack):
        return stack(list(batch))  # the raw op: the batch never records autograd history
    if isinstance(batch, tuple):
        return tuple(_to_device(field) for field in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value) for key, value in batch.items()}
    return batch


def default_collate(samples: list[Any]) -> Any:
    """Stack a list of samples into a batch: tuples/lists field-wise into a tuple, dicts key-wise;
    clownpiece tensors with clownpiece.stack; numbers and numpy (or array-like) values with numpy, uploaded
    as one Tensor (requires_grad=False, float32: docs/api.md, dtypes); strings and other objects are returned
    as a list."""
    return _to_device(_collate_host(samples))


def _check_int(name, value, low, message=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Dataloader: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(message or f"Dataloader: {name} must be >= {low}, got {value}")
    return int(value)


class Dataloader:
    """Iterate a map-style dataset in batches of `batch_size`: `collate_fn(list of samples)` per batch,
    the final partial batch unless `drop_last`. Indices come from `sampler` (any iterable of indices with
    len) or range(len(dataset)), reshuffled each epoch when `shuffle`. `seed` (or a numpy `generator`)
    makes the shuffles reproducible; without either, numpy's global RNG is used.

    PyTorch's loader options are keywords: `num_workers` threads prefetch `prefetch_factor` batches each
    (default 2), `persistent_workers` keeps them between epochs, `worker_init_fn(worker_id)` runs in each at
    its start, `timeout` (seconds, 0: none) bounds the wait for a batch. `pin_memory` is accepted and has no
    effect (uploads are already asynchronous enqueues)."""

    def __init__(self, dataset: MapDataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 sampler: Optional[Iterable[int]] = None, collate_fn: Optional[Callable[[list[Any]], Any]] = None,
                 *, num_workers: int = 0, pin_memory: bool = False, timeout: float = 0,
                 worker_init_fn: Optional[Callable[[int], None]] = None, prefetch_factor: Optional[int] = None,
                 persistent_workers: bool = False, seed: Optional[int] = None,
                 generator: Optional[np.random.Generator] = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"Dataloader: batch_size must be a positive int, got {batch_size!r}")
        if shuffle and sampler is not None:
            raise ConflictingOptionsError("Dataloader: shuffle and sampler are mutually exclusive")
        self.num_workers = _check_int("num_workers", num_workers, 0, "num_workers option should be non-negative; "
                                      "use num_workers=0 to disable worker threads.")
        if not isinstance(timeout, numbers.Real) or isinstance(timeout, bool) or timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        if self.num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified with worker threads: let "
                             "num_workers > 0, otherwise set prefetch_factor to None.")
        if self.num_workers > 0:
            prefetch_factor = 2 if prefetch_factor is None else _check_int("prefetch_factor", prefetch_factor, 1)
        if persistent_workers and self.num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"Dataloader: worker_init_fn must be callable, got {worker_init_fn!r}")
        if len(dataset) == 0:
            raise ValueError(f"Dataloader: the dataset ({type(dataset).__name__}) is empty")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.sampler = sampler
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self.generator = generator if generator is not None or seed is None else np.random.default_rng(seed)
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.pin_memory = bool(pin_memory)
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self._workers = None  # the persistent _Workers
        self._on_main = _Fallback()

    def _indices(self):
        if self.sampler is not None:
            return iter(self.sampler)
        n = len(self.dataset)
        if self.shuffle:
            rng = self.generator if self.generator is not None else np.random
            return iter(rng.permutation(n).tolist())
        return iter(range(n))

    def _batches(self):
        """The index lists of one epoch."""
        batch = []
        for index in self._indices():
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def _samples(self, indices):
        getitems = getattr(self.dataset, "__getitems__", None)  # PyTorch's batched-fetch protocol
        return getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]

    def _host_batch(self, indices):
        """What a worker makes of a batch: ("host", a host-collated batch) with the default collate, else
        ("batch", collate_fn's result). Runs on either thread."""
        if self.collate_fn is default_collate:
            collated = getattr(self.dataset, "_collated", None)  # one gather for the whole batch
            batch = collated(indices) if collated is not None else None
            return ("host", batch if batch is not None else _collate_host(self._samples(indices)))
        return ("batch", self.collate_fn(self._samples(indices)))

    def _finish(self, kind, payload):
        """The batch from what a worker handed over (main thread)."""
        if kind == "indices":
            kind, payload = self._host_batch(payload)
        elif kind == "samples":
            kind, payload = "batch", self.collate_fn(payload)
        return _to_device(payload) if kind == "host" else payload

    def __iter__(self) -> Iterator[Any]:
        if self.num_workers == 0:
            return (self._finish("indices", indices) for indices in self._batches())
        if not self.persistent_workers:
            return _PrefetchingIterator(self, _Workers(self), owned=True)
        if self._workers is None:
            self._workers = _Workers(self)
        return _PrefetchingIterator(self, self._workers, owned=False)

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __del__(self):
        if getattr(self, "_workers", None) is not None:
            self._workers.shutdown()


DataLoader = Dataloader


class _Fallback:
    """What the workers found must run on the main thread: fetching (the dataset makes device tensors) or
    collating (collate_fn does); set once by a worker, read by all, warned about once by the main thread."""

    def __init__(self):
        self.fetch = self.collate = False
        self.reason = None
        self.warned = False


def _work(loader, indices):
    """One batch on a worker thread: as much of the batch as can be built without the device."""
    on_main = loader._on_main
    if on_main.fetch:
        return "indices", indices
    if on_main.collate:
        try:
            return "samples", loader._samples(indices)
        except HostOnlyThreadError as e:
            on_main.fetch, on_main.reason = True, f"the dataset made device tensors ({e})"
            return "indices", indices
    try:
        samples = None
        if loader.collate_fn is not default_collate:
            samples = loader._samples(indices)
            return "batch", loader.collate_fn(samples)
        return loader._host_batch(indices)
    except HostOnlyThreadError as e:
        if samples is None:
            on_main.fetch, on_main.reason = True, f"the dataset made device tensors ({e})"
            return "indices", indices
        on_main.collate, on_main.reason = True, f"collate_fn made device tensors ({e})"
        return "samples", samples


class _Epoch:
    """What the workers need of one epoch: its loader, its own results queue (so that a batch of an abandoned
    epoch goes nowhere) and its cancel flag (so that workers skip its remaining tasks). The threads reach the
    loader only through the epochs in flight, so a dropped persistent loader can be collected and stop them."""

    def __init__(self, loader):
        self.loader = loader
        self.results = queue.SimpleQueue()
        self.cancelled = False


class _Workers:
    """`num_workers` host-only threads taking (epoch, batch number, indices) tasks."""

    def __init__(self, loader):
        self.tasks = queue.SimpleQueue()
        self.stopped = False
        self.threads = [threading.Thread(target=self._run, args=(loader.worker_init_fn, i), daemon=True,
                                         name=f"clownpiece-loader-{i}") for i in range(loader.num_workers)]
        for t in self.threads:
            t.start()

    def _run(self, worker_init_fn, worker_id):
        with host_only_thread():
            init_error = None
            if worker_init_fn is not None:
                try:
                    worker_init_fn(worker_id)
                except BaseException as e:  # handed to the main thread with the first batch
                    init_error = e
            while True:
                task = self.tasks.get()
                if task is None or self.stopped:
                    return
                self._serve(*task, init_error)
                task = None  # hold no epoch (and so no loader) while waiting for the next task

    @staticmethod
    def _serve(epoch, number, indices, init_error):
        if epoch.cancelled:
            return
        if init_error is not None:
            epoch.results.put((number, "error", init_error))
            return
        try:
            kind, payload = _work(epoch.loader, indices)
        except BaseException as e:  # re-raised by the main thread at this batch, as PyTorch does
            kind, payload = "error", e
        epoch.results.put((number, kind, payload))

    def shutdown(self):
        if not self.stopped:
            self.stopped = True
            for _ in self.threads:
                self.tasks.put(None)


class _PrefetchingIterator:
    """One epoch over worker threads: keeps num_workers * prefetch_factor batches in flight and yields them in
    order, finishing each on the main thread (uploads, and whatever the workers could not do)."""

    def __init__(self, loader, workers, owned):
        self.loader, self.workers, self.owned = loader, workers, owned
        self.batches = loader._batches()  # indices are drawn on the main thread, as PyTorch does
        self.epoch = _Epoch(loader)
        self.ready = {}
        self.sent = self.taken = 0
        for _ in range(loader.num_workers * loader.prefetch_factor):
            self._send()

    def _send(self):
        indices = next(self.batches, None)
        if indices is not None:
            self.workers.tasks.put((self.epoch, self.sent, indices))
            self.sent += 1

    def __iter__(self):
        return self

    def __next__(self):
        if self.taken == self.sent:
            self.close()
            raise StopIteration
        while self.taken not in self.ready:
            try:
                number, kind, payload = self.epoch.results.get(timeout=self.loader.timeout or None)
            except queue.Empty:
                self.close()
                raise RuntimeError(f"DataLoader timed out after {self.loader.timeout} seconds") from None
            self.ready[number] = (kind, payload)
        kind, payload = self.ready.pop(self.taken)
        self.taken += 1
        if kind == "error":
            self.close()
            raise payload
        self._send()
        self._warn_once()
        return self.loader._finish(kind, payload)

    def _warn_once(self):
        on_main = self.loader._on_main
        if on_main.reason is not None and not on_main.warned:
            on_main.warned = True
            warnings.warn(f"DataLoader(num_workers={self.loader.num_workers}): {on_main.reason}. Worker threads "
                          f"cannot touch the device, so that work now runs on the main thread, without overlap. "
                          f"Return numpy arrays or numbers from the dataset and collate_fn (the loader uploads "
                          f"them) to let the workers prepare batches ahead.", RuntimeWarning, stacklevel=3)

    def close(self):
        self.epoch.cancelled = True
        if self.owned:
            self.workers.shutdown()

    def __del__(self):
        self.close()
