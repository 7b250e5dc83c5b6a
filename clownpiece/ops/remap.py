"""Copies that move elements by a rule per dim (kernels: cl_kernels/remap.cl): flip, roll, repeat, tile,
repeat_interleave, and tril / triu. Each reads its input through its strides (no contiguous copy first) and
writes a new contiguous tensor, as PyTorch's do."""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Union

import numpy as np

from .. import backend
from .._layout import MAX_KERNEL_DIMS, ShapeError, is_int, kernel_meta, normalize_dim, normalize_dims
from .._types import AnyTensor, ShapeLike, TensorT
from ..backend import dtypes as D
from .shape import _shape_arg

_COPY, _WRAP, _FLIP, _DIVIDE = 0, 1, 2, 3


def _int(v, op, what):
    if not is_int(v):
        raise TypeError(f"{op}: {what} must be an int, got {type(v).__name__}")
    return int(v)


def _remap(x, out_shape, rules, op):
    """out[c] = x[src(c)] with rules[d] = (mode, par) per dim of x (out_shape has x's rank)."""
    nd = len(out_shape)
    if nd > MAX_KERNEL_DIMS:
        raise RuntimeError(f"{op}: tensors of more than {MAX_KERNEL_DIMS} dims are not supported (got {nd})")
    out = x._empty(out_shape, x.dtype)
    if out._numel == 0:
        return out
    vecs = [np.ones(8, np.int32), np.ones(8, np.int32), np.zeros(8, np.int32), np.zeros(8, np.int32),
            np.zeros(8, np.int32)]
    for k, d in enumerate(reversed(range(nd))):
        mode, par = rules[d]
        for v, value in zip(vecs, (out_shape[d], x._shape[d], x._strides[d], par, mode)):
            v[k] = value
    backend.launch(backend.kernel("remap", "remap_s", x.dtype), out._numel, out, x, out._numel, max(nd, 1), *vecs)
    return out


def _tri(x, diagonal, upper, op):
    if x.dim() < 2:
        raise ShapeError(f"{op}: input must have at least 2 dims, got shape {x.shape}")
    diagonal = _int(diagonal, op, "diagonal")
    out = x._empty(x._shape, x.dtype)
    n = out._numel
    if n:
        r, c = x._shape[-2:]
        backend.launch(backend.kernel("remap", "tri_s", x.dtype), n, out, x, n, r, c, diagonal, int(upper),
                       *kernel_meta(x._shape, x._strides))
    return out


def _repeat_sizes(x, sizes, op):
    sizes = _shape_arg(sizes, op)
    if len(sizes) < x.dim():
        raise RuntimeError(f"{op}: number of repeat dims ({len(sizes)}) cannot be smaller than the number of "
                           f"tensor dims ({x.dim()})")
    if any(s < 0 for s in sizes):
        raise RuntimeError(f"{op}: repeats must be non-negative, got {list(sizes)}")
    return sizes


class RemapOps:
    __slots__ = ()

    def flip(self: TensorT, *dims: ShapeLike) -> TensorT:
        """Reverse the order of elements along dims (a copy, as PyTorch's)."""
        dims = normalize_dims(_shape_arg(dims, "flip"), self.dim(), "flip") if self._shape else ()
        rules = [(_FLIP if d in dims else _COPY, 0) for d in range(self.dim())]
        return _remap(self, self._shape, rules, "flip")

    def fliplr(self: TensorT) -> TensorT:
        if self.dim() < 2:
            raise ShapeError(f"fliplr: input must have at least 2 dims, got shape {self.shape}")
        return self.flip(1)

    def flipud(self: TensorT) -> TensorT:
        if self.dim() < 1:
            raise ShapeError("flipud: input must have at least 1 dim")
        return self.flip(0)

    def roll(self: TensorT, shifts: Union[int, Sequence[int]], dims: Union[int, Sequence[int], None] = None) -> TensorT:
        """Elements shifted by shifts along dims, wrapping around; without dims the flattened tensor is rolled
        and reshaped back."""
        shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
        shifts = tuple(_int(s, "roll", "shifts") for s in shifts)
        if dims is None:
            if len(shifts) != 1:
                raise RuntimeError(f"roll: shifts {list(shifts)} need dims (one shift without dims)")
            flat = self.reshape(-1)
            return flat.roll(shifts[0], 0).reshape(self._shape)
        dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
        if len(dims) != len(shifts):
            raise RuntimeError(f"roll: shifts and dims must have the same length, got {len(shifts)} and "
                               f"{len(dims)}")
        rules = [[_COPY, 0] for _ in range(max(self.dim(), 1))]
        for s, dim in zip(shifts, dims):
            d = normalize_dim(dim, self.dim(), "roll")
            size = self._shape[d] if self._shape else 1
            rules[d] = [_WRAP, (rules[d][1] + s) % max(size, 1)]
        if not self._shape:
            return self.clone()
        return _remap(self, self._shape, rules, "roll")

    def repeat(self: TensorT, *sizes: ShapeLike) -> TensorT:
        """The tensor tiled sizes[d] times along each dim (extra leading sizes add dims)."""
        sizes = _repeat_sizes(self, sizes, "repeat")
        x = self.reshape((1,) * (len(sizes) - self.dim()) + self._shape)
        out_shape = tuple(s * r for s, r in zip(x._shape, sizes))
        return _remap(x, out_shape, [(_WRAP, 0)] * len(sizes), "repeat")

    def tile(self: TensorT, *dims: ShapeLike) -> TensorT:
        """repeat, with dims padded by leading 1s to the tensor's rank."""
        dims = _shape_arg(dims, "tile")
        return self.repeat((1,) * (self.dim() - len(dims)) + tuple(dims))

    def repeat_interleave(self: TensorT, repeats: Union[int, AnyTensor], dim: Optional[int] = None, *,
                          output_size: Optional[int] = None) -> TensorT:
        """Each element repeated `repeats` times along dim (flattened when dim is None). repeats: an int, or a
        tensor of counts (one per element of the dim, or one for all); a tensor of counts needs the output
        size, read back from the device unless output_size gives it."""
        x = self.reshape(-1) if dim is None else self
        d = normalize_dim(0 if dim is None else dim, x.dim(), "repeat_interleave")
        size = x._shape[d] if x._shape else 1
        if x.dim() == 0:
            x = x.reshape(1)
        if isinstance(repeats, RemapOps):
            return _interleave_counts(x, repeats, d, size, output_size)
        r = _int(repeats, "repeat_interleave", "repeats")
        if r < 0:
            raise RuntimeError(f"repeat_interleave: repeats must be non-negative, got {r}")
        if output_size is not None and output_size != size * r:
            raise RuntimeError(f"repeat_interleave: output_size {output_size} != {size} * {r}")
        return x._interleave(d, r)

    def _interleave(self, dim, repeats):
        """repeat_interleave with an int count along a (normalized) dim."""
        out_shape = self._shape[:dim] + (self._shape[dim] * repeats,) + self._shape[dim + 1:]
        rules = [(_DIVIDE, repeats) if k == dim else (_COPY, 0) for k in range(self.dim())]
        return _remap(self, out_shape, rules, "repeat_interleave")

    def tril(self: TensorT, diagonal: int = 0) -> TensorT:
        """The lower triangle of the last two dims (elements with col - row <= diagonal), zeros elsewhere."""
        return _tri(self, diagonal, False, "tril")

    def triu(self: TensorT, diagonal: int = 0) -> TensorT:
        """The upper triangle of the last two dims (col - row >= diagonal), zeros elsewhere."""
        return _tri(self, diagonal, True, "triu")


def _interleave_counts(x, repeats, d, size, output_size):
    if repeats.dim() > 1 or repeats._numel not in (1, size):
        raise RuntimeError(f"repeat_interleave: repeats must be 0-d or 1-d with 1 or {size} elements (the size "
                           f"of the dim), got shape {repeats.shape}")
    if repeats.dtype not in D.INTEGRAL:
        raise TypeError(f"repeat_interleave: repeats must be an integer tensor, got {repeats.dtype.name}")
    counts = repeats.reshape(-1).to(D.int64)
    if counts._numel == 1 and size != 1:
        counts = counts.broadcast_to((size,))
    cum = counts.cumsum(0)
    if output_size is None:  # the output's shape depends on the counts: read their total (and check them)
        if size and counts.amin().item() < 0:
            raise RuntimeError("repeat_interleave: repeats must be non-negative")
        output_size = int(cum[-1].item()) if size else 0
    elif not isinstance(output_size, numbers.Integral) or output_size < 0:
        raise RuntimeError(f"repeat_interleave: output_size must be a non-negative int, got {output_size!r}")
    ids = x._empty((int(output_size),), D.int64)
    if output_size:
        backend.launch(backend.kernel("remap", "repeat_ids", D.int64), output_size, ids, cum, size, output_size)
    return x.index_select(d, ids)
