"""Multi-tensor ("foreach") raw ops on lists of tensors (kernels in cl_kernels/foreach.cl), for
nn.utils.clip_grad_norm_ and clip_grad_value_.

A launch takes up to `slots_per_launch()` tensors as separate buffer arguments (OpenCL 1.2 kernels cannot
reach a buffer through memory, only through an argument, and a device bounds their total size by its
max_parameter_size: 1024 bytes at the least, 60 triples). So a list of P tensors costs ceil(P / slots)
launches per pass: one for every model up to that many parameters, the way PyTorch's CUDA foreach
kernels chunk their tensor lists. The tensors must be contiguous and of one dtype; callers check."""
import math

import pyopencl as cl

from .. import backend
from .._layout import ceil_div
from ..backend import checks

_SLOT_BYTES = 16      # pointer (8 bytes on 64-bit devices) + element offset + element count
_OTHER_BYTES = 64     # the kernels' other parameters, generously
_MAX_SLOTS = 128      # beyond this, setting the unused arguments costs more host time than a launch
_slots = {}           # Device -> slots per launch


def slots_per_launch():
    """How many tensors one foreach launch takes on the current device (a multiple of 8, 8 to 128)."""
    dev = backend.device()
    n = _slots.get(dev)
    if n is None:
        room = dev.device.max_parameter_size - _OTHER_BYTES
        n = _slots[dev] = max(8, min(_MAX_SLOTS, room // _SLOT_BYTES // 8 * 8))
    return n


def _chunks(tensors):
    """(kernel width, argument list) per launch: each tensor as (its buffer and offset, its numel), padded
    to a multiple of 8 slots with count-0 copies of the first buffer."""
    step = slots_per_launch()
    for start in range(0, len(tensors), step):
        chunk = tensors[start:start + step]
        width = ceil_div(len(chunk), 8) * 8
        args = []
        for t in chunk:
            args += (t, t._numel)
        args += (chunk[0], 0) * (width - len(chunk))
        yield width, args


def _kernel(name, dtype, width):
    return backend.kernel("foreach", name, dtype, (f"NBUF={width}",))


def _work_items(tensors, per_item):
    """Work-items of a pass: enough that each one visits about `per_item` elements, at most 64K."""
    biggest = max(t._numel for t in tensors)
    return max(1, min(1 << 16, ceil_div(biggest, per_item)))


def norm_and_clip_coef(tensors, norm_type, max_norm, nonfinite_code=None):
    """A new 2-element tensor [total norm, min(max_norm / (total norm + 1e-6), 1)]: the `norm_type`-norm of
    all the tensors' elements taken together (PyTorch's clip_grad_norm_: the norm of the per-tensor norms,
    which for norm_type 0 counts the tensors holding a nonzero). ceil(P / slots) + 1 launches, nothing read
    back. norm_type: a float or +-inf. With nonfinite_code (a checks code) a non-finite norm is reported to
    the device's error word and the coefficient is 1."""
    dtype = tensors[0].dtype
    kind = {math.inf: 0, 1: 1, 2: 2, -math.inf: 4, 0: 5}.get(norm_type, 3)
    # enough partials that each one sums ~64 elements (accuracy: short sums, then a tree), at most 16K
    total = sum(t._numel for t in tensors)
    parts = max(1, min(1 << 14, ceil_div(total, 64)))
    part = backend.alloc(parts * dtype.itemsize)
    widths = []
    for width, args in _chunks(tensors):
        backend.launch(_kernel("norm_partials", dtype, width), parts, part, 0, parts, int(not widths), kind,
                       norm_type, *args)
        widths.append(width)
    out = tensors[0]._empty((2,), dtype)
    finish = _kernel("norm_finish", dtype, widths[0])  # any width's program has it: reuse the one built
    local = 1 << (min(256, finish.max_local).bit_length() - 1)
    backend.launch(finish, local, out, part, 0, parts, kind, norm_type, max_norm, int(nonfinite_code is not None),
                   checks.error_word(out._storage.pool), nonfinite_code or 0,
                   cl.LocalMemory(local * dtype.itemsize), local=local)
    return out


def _written(tensors):
    """In-place writes count in each storage's version counter (autograd checks saved tensors against it)."""
    for t in tensors:
        t._storage._version += 1


def mul_(tensors, scalar):
    """Multiply every tensor in place by `scalar`, a 1-element tensor on the device (read there)."""
    _written(tensors)
    work = _work_items(tensors, 4)
    for width, args in _chunks(tensors):
        backend.launch(_kernel("mul_scalar_", tensors[0].dtype, width), work, scalar, work, *args)


def clamp_(tensors, lo, hi):
    """x = min(max(x, lo), hi) for every element of every tensor, in place."""
    _written(tensors)
    work = _work_items(tensors, 4)
    for width, args in _chunks(tensors):
        backend.launch(_kernel("clamp_", tensors[0].dtype, width), work, work, lo, hi, *args)
