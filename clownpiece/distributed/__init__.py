"""Multi-process training over MPI (mpi4py, the optional extra `clownpiece[mpi]`).

    mpirun -n 4 python train.py        # every rank runs the same script

    from clownpiece import distributed as dist
    dist.init()                        # before making any tensor: picks this rank's device
    model = nn.parallel.DistributedDataParallel(model)

`init()` reads the MPI environment, chooses the rank's device and makes an exception on any rank abort the
whole job (`MPI.COMM_WORLD.Abort`) after printing that rank's traceback, so no rank waits forever in a
collective. Collectives work on tensors in place and go through host memory: one device read, the MPI
call on a numpy buffer, one device write. Every rank must call them in the same order, as in MPI; a
tensor whose shape or dtype differs between ranks raises on every rank instead of mixing up data.

Device per rank: `CLOWNPIECE_DEVICE` as usual (set it per rank, e.g. `mpirun -n 1 -x CLOWNPIECE_DEVICE=0:0
python t.py : -n 1 -x CLOWNPIECE_DEVICE=0:1 python t.py`), or a comma-separated list indexed by the
rank's local rank on its host (`CLOWNPIECE_DEVICE=0:0,0:1`); unset, the ranks of a host take its GPUs
round-robin by local rank. CPU ranks share PoCL, each with PoCL's usual thread per core: capping them
(POCL_MAX_PTHREAD_COUNT=1 for 2 ranks on 2 cores) was measured here to gain ~10% on the Python-bound seed
model and to lose up to 2.5x on the kernel-bound CNN when other work shares the machine, so it is left
to the user."""
import os
import sys

import numpy as np

from .. import backend
from ..autograd.no_grad import no_grad
from ..backend.discovery import choose
from ..tensor import TensorBase

_MPI_HINT = ("clownpiece.distributed needs mpi4py and an MPI library: pip install 'clownpiece[mpi]' (and e.g. "
             "Debian's `apt-get install openmpi-bin libopenmpi-dev`), then launch with `mpirun -n N python ...`")


class ReduceOp:
    """Reduction names accepted by all_reduce (strings work too: 'sum', 'product', 'min', 'max', 'avg')."""
    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


_OP_ALIASES = {"sum": "sum", "product": "product", "prod": "product", "min": "min", "max": "max",
               "avg": "avg", "mean": "avg"}


class _World:
    """What init() found: the communicator, this rank and its place on its host."""

    def __init__(self, MPI):
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()


_world = None


def is_available():
    """Whether mpi4py (and so an MPI library) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_initialized():
    return _world is not None


def init(abort_on_exception=True):
    """Join the MPI job (idempotent). Chooses this rank's device (see the module doc), so call it before
    making tensors. abort_on_exception: an uncaught exception on this rank prints its traceback, then
    aborts every rank of the job."""
    global _world
    if _world is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"{_MPI_HINT} ({e})") from None
    world = _World(MPI)
    _choose_device(world)
    _world = world
    if abort_on_exception:
        sys.excepthook = _aborting_excepthook(sys.excepthook, world)


def _device_spec(setting, local_rank, gpus):
    """The CLOWNPIECE_DEVICE value for the rank with this local rank: `setting` itself, its local_rank-th
    entry (round-robin) when it is a comma-separated list, else the local_rank-th GPU (round-robin) of
    `gpus` ('platform:device' strings); '' leaves the usual default."""
    setting = setting.strip()
    if "," in setting:
        choices = [c.strip() for c in setting.split(",")]
        if not all(choices):
            raise ValueError(f"CLOWNPIECE_DEVICE={setting!r}: an empty entry in the per-local-rank list")
        return choices[local_rank % len(choices)]
    if not setting and gpus:
        return gpus[local_rank % len(gpus)]
    return setting


def _choose_device(world):
    gpus = [f"{f[0]}:{f[1]}" for f in backend.list_devices() if "(GPU," in backend.describe(*f)]
    spec = _device_spec(os.environ.get("CLOWNPIECE_DEVICE", ""), world.local_rank, gpus)
    if not spec:
        return
    if backend.stats()["pool_bytes_in_use"]:  # tensors exist: switching devices would strand them
        current = backend.device()
        if choose(spec)[:2] != (current.platform_index, current.device_index):
            raise RuntimeError(f"clownpiece.distributed.init(): rank {world.rank} should use device {spec!r} but "
                               f"tensors already exist on {current}; call init() before making tensors")
        return
    backend.set_device(spec)


def _aborting_excepthook(previous, world):
    def hook(etype, value, tb):
        sys.stderr.write(f"clownpiece.distributed: uncaught exception on rank {world.rank} of {world.size}; "
                         f"aborting the job\n")
        previous(etype, value, tb)
        sys.stderr.flush()
        sys.stdout.flush()
        if world.size > 1:
            world.comm.Abort(1)
    return hook


def _require():
    if _world is None:
        raise RuntimeError("clownpiece.distributed is not initialized: call clownpiece.distributed.init() "
                           "first (and launch with `mpirun -n N python ...`)")
    return _world


def get_rank():
    return _require().rank


def get_world_size():
    return _require().size


def get_local_rank():
    """This rank's index among the ranks on its host (what picks its GPU)."""
    return _require().local_rank


def barrier():
    _require().comm.Barrier()


# ---- the host boundary: one device read, one device write --------------------------------------------------

def _read(tensor, out=None):
    """The tensor's values as a contiguous numpy array (into `out` when given): one device read."""
    if out is None or not tensor.is_contiguous():
        values = tensor.numpy()
        if out is None:
            return values
        out[...] = values.reshape(out.shape)
        return out
    return backend.download(tensor._storage, out, tensor._offset * tensor.dtype.itemsize)


def _write(tensor, host):
    """Overwrite the tensor's values with the numpy array `host` (same number of elements): one device
    write, queued without waiting."""
    host = np.ascontiguousarray(host, tensor.dtype)
    if tensor.is_contiguous():
        backend.upload(tensor._storage, host, tensor._offset * tensor.dtype.itemsize)
    else:
        with no_grad():
            TensorBase.copy_(tensor, TensorBase(host.reshape(tensor.shape), dtype=tensor.dtype))


def _check_tensor(fn, tensor):
    if not isinstance(tensor, TensorBase):
        raise TypeError(f"{fn}: expected a clownpiece tensor, got {type(tensor).__name__}")


def check_same_across_ranks(what, value):
    """Raise the same RuntimeError on every rank unless `value` (a picklable description: shapes,
    names) is equal on all of them. Costs one small collective."""
    world = _require()
    values = world.comm.allgather(value)
    for r, v in enumerate(values):
        if v != values[0]:
            raise RuntimeError(f"{what} differs between ranks: rank 0 has {values[0]}, rank {r} has {v}")


def _layout(tensor):
    return (tuple(tensor.shape), tensor.dtype.name)


def _mpi_op(world, op):
    name = _OP_ALIASES.get(op.lower()) if isinstance(op, str) else None
    if name is None:
        raise ValueError(f"all_reduce: unknown op {op!r}; expected one of 'sum', 'product', 'min', 'max', 'avg' "
                         f"(or clownpiece.distributed.ReduceOp.SUM, ...)")
    mpi = world.MPI
    return name, {"sum": mpi.SUM, "avg": mpi.SUM, "product": mpi.PROD, "min": mpi.MIN, "max": mpi.MAX}[name]


def all_reduce(tensor, op=ReduceOp.SUM):
    """Reduce `tensor` across ranks in place (every rank gets the result) and return it."""
    world = _require()
    _check_tensor("all_reduce", tensor)
    name, mpi_op = _mpi_op(world, op)
    if name == "avg" and tensor.dtype.kind != "f":
        raise TypeError(f"all_reduce: op 'avg' needs a floating-point tensor, got {tensor.dtype.name}")
    check_same_across_ranks("all_reduce: tensor shape/dtype", _layout(tensor))
    host = _read(tensor)
    world.comm.Allreduce(world.MPI.IN_PLACE, host, op=mpi_op)
    _write(tensor, host)
    if name == "avg":
        with no_grad():
            TensorBase.copy_(tensor, TensorBase.__mul__(tensor, 1.0 / world.size))
    return tensor


def _check_src(fn, world, src):
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < world.size:
        raise ValueError(f"{fn}: src must be a rank in [0, {world.size}), got {src!r}")
    return int(src)


def broadcast(tensor, src=0):
    """Overwrite `tensor` on every rank with its values on rank `src`, in place; returns it."""
    world = _require()
    _check_tensor("broadcast", tensor)
    src = _check_src("broadcast", world, src)
    check_same_across_ranks("broadcast: tensor shape/dtype", _layout(tensor))
    host = _read(tensor) if world.rank == src else np.empty(tensor.shape, tensor.dtype)
    world.comm.Bcast(host, root=src)
    if world.rank != src:
        _write(tensor, host)
    return tensor


def all_gather(tensor_list, tensor):
    """Fill `tensor_list` (world size tensors shaped like `tensor`) with every rank's `tensor`, in rank
    order, as torch.distributed.all_gather does."""
    world = _require()
    _check_tensor("all_gather", tensor)
    if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != world.size:
        got = len(tensor_list) if isinstance(tensor_list, (list, tuple)) else type(tensor_list).__name__
        raise ValueError(f"all_gather: tensor_list must be a list of {world.size} tensors (one per rank), got {got}")
    for i, t in enumerate(tensor_list):
        _check_tensor("all_gather", t)
        if _layout(t) != _layout(tensor):
            raise ValueError(f"all_gather: tensor_list[{i}] has shape {t.shape} ({t.dtype.name}); expected "
                             f"{tensor.shape} ({tensor.dtype.name}) like the input tensor")
    check_same_across_ranks("all_gather: tensor shape/dtype", _layout(tensor))
    out = np.empty((world.size,) + tuple(tensor.shape), tensor.dtype)
    world.comm.Allgather(_read(tensor), out)
    for t, values in zip(tensor_list, out):
        _write(t, values)
    return tensor_list


def broadcast_object(obj, src=0):
    """Rank `src`'s picklable Python object, on every rank (e.g. a metric only rank 0 computed)."""
    world = _require()
    return world.comm.bcast(obj, root=_check_src("broadcast_object", world, src))


__all__ = ["init", "is_available", "is_initialized", "get_rank", "get_world_size", "get_local_rank",
           "barrier", "all_reduce", "broadcast", "all_gather", "broadcast_object", "check_same_across_ranks",
           "ReduceOp"]
