"""MatmulOps: matmul (with torch.matmul's rank rules and batch broadcasting) and the fused linear op.
Kernels: cl_kernels/matmul.cl.

Operands are never copied into a contiguous layout: every kernel takes a row stride, a column stride and an
offset per operand, plus per-batch strides (0 where a batch dim is broadcast). Four strategies, chosen by
size and by what the device reports: devices whose local memory is dedicated (GPUs) stage tiles through it
("tiled", one launch) or, for small products, give each work-item one output ("direct"); devices that emulate
local memory in cached global memory (CPUs) use register blocks ("block": one work-item per block of up to
8 x 8 outputs, one launch) or, for large products, packed panels and a register-blocked micro-kernel
("packed", two launches). Strategies with fixed 64-work-item groups or local tiles are only chosen where
the device allows them."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import backend
from .._layout import ShapeError, broadcast_shapes, broadcast_strides, ceil_div, kernel_meta, numel
from .._types import AnyTensor, TensorT
from ..backend import dtypes

# Register block (MR rows x NR columns per work-item) of the CPU micro-kernel, by dtype: 4 rows x 16 floats
# (or 4 x 8 doubles) keep 8 AVX2 registers of accumulators plus 2 for B; of 4x16, 8x8, 6x16, 3x16 and 12x8,
# 4x16 measured fastest on a 2-core Zen3 with PoCL.
_BLOCKS = {np.dtype(np.float32): (4, 16), np.dtype(np.float64): (4, 8)}


def _defines(dtype):
    mr, nr = _BLOCKS[dtype]
    return (f"MR={mr}", f"NR={nr}")


backend.programs.PREFETCH["matmul"] = lambda dtype: _defines(dtype) if dtype in _BLOCKS else ()
# Below this many multiply-adds per batch element the register-blocked block kernel (one launch, no
# packing) beats packing + micro-kernel (two launches): measured on PoCL, float32, square n^3, GFLOP/s per
# CPU second (what contention for the cores does not change), median / best of 21: n=128 block 21/23 vs
# packed 20/32, n=192 34/38 vs 38/56, n=256 40/56 vs 55/68, n=384 42/44 vs 66/74, n=512 37/38 vs 67/73.
# Around 8M multiply-adds the two are within the noise, except where the output makes too few of
# mm_packed's 32 x 128 work-group tiles to keep the cores busy: [8, 2048] @ [2048, 512] (4 tiles) took 4.1
# ms of CPU packed against 0.8 in blocks. Wall time, alternated, after mm_packed's work-item order went back
# to rows (52cddea): block and packed tie at 192^3 and 256^3 (35/36 and 52/51 GFLOP/s), packed leads from 320^3
# (71 vs 59).
_PACKED_MIN_MACS = 192 ** 3
_PACKED_MIN_TILES = 8
_TILED_MIN_MACS = 32 ** 3
_PACK_KC = 8  # k values one packing work-item copies (KC in matmul.cl)


def _require_tensor(other, op):
    if not isinstance(other, MatmulOps):
        raise TypeError(f"{op}: expected a tensor operand, got {type(other).__name__} "
                        f"(use * for scaling by a number)")


def _operands(op, *tensors):
    """(the tensors in the dtype the product is computed in, the result dtype): the promoted dtype of the
    operands (None passes), float16 computed in float32 (rounded once at the end); integer and bool
    operands raise (PyTorch on GPUs does too)."""
    result = tensors[0].dtype
    mixed = False
    for t in tensors[1:]:
        if t is not None and t.dtype is not result:
            result, mixed = dtypes.promote_types(result, t.dtype), True
    if result is dtypes.float32 and not mixed:
        return tensors, result  # the usual case
    if result not in dtypes.FLOATING:
        raise TypeError(f"{op}: not supported for {result.name} tensors; it takes floating tensors "
                        f"(convert with .float())")
    compute = dtypes.compute_dtype(result)
    return tuple(t if t is None or t.dtype is compute else t.to(compute) for t in tensors), result


def _merged_stride(shape, strides):
    """The single stride that walks all of `shape` in row-major order, or None if the dims don't merge."""
    inner_stride, inner_size = None, 1
    for s, st in zip(reversed(shape), reversed(strides)):
        if s == 1:
            continue
        if inner_stride is not None and st != inner_stride * inner_size:
            return None
        if inner_stride is None:
            inner_stride = st
        inner_size *= s
    return 0 if inner_stride is None else inner_stride


_GROUP = 64  # work-items per group of mm_packed (an 8 x 8 square of blocks) and mm_tiled (8 x 8 threads)


def _tile_bytes(dtype):
    return 2 * 16 * 33 * dtype.itemsize  # mm_tiled's two local tiles, TK x (TS + 1) each


def _choose_path(m, n, k, device, dtype=np.dtype(np.float32)):
    """'block' or 'packed' (local memory emulated in global memory: CPUs), 'direct' or 'tiled' (dedicated
    local memory: GPUs) for [m, k] @ [k, n] (per batch element)."""
    macs = m * n * k
    wide_groups = device.max_work_group_size >= _GROUP
    if not device.local_mem_dedicated:
        mr, nr = _BLOCKS.get(np.dtype(dtype), (4, 16))
        tiles = -(-m // (8 * mr)) * -(-n // (8 * nr))
        packed = macs >= _PACKED_MIN_MACS and tiles >= _PACKED_MIN_TILES and m >= 8 and n >= 8 and wide_groups
        return "packed" if packed else "block"
    tiles_fit = wide_groups and device.local_mem_size >= _tile_bytes(dtype)
    return "tiled" if macs >= _TILED_MIN_MACS and tiles_fit else "direct"


def _block_shape(m, n, dtype):
    """Rows x columns per work-item of the CPU block kernel. More rows give more independent accumulator
    chains sharing each load of B: 8 while the accumulators fit in 8 AVX registers (256 bytes), else 4,
    or 1 when M is smaller; 4 columns when N <= 4 so none are wasted, else 8."""
    cols = 4 if n <= 4 else 8
    if m >= 8 and 8 * cols * dtype.itemsize <= 256:
        return 8, cols
    return (4 if m >= 4 else 1), cols


_plans = {}


def _gemm(out, a, a_shape, a_strides, b, b_shape, b_strides, batch, bias):
    """Write a @ b (+ bias) into the contiguous `out` (numel = prod(batch) * M * N).

    a/b are tensors supplying storage, offset and dtype; a_shape/a_strides ([..., M, K]) and b_shape/b_strides
    ([..., K, N]) describe the (possibly virtual, e.g. transposed) views to multiply; batch is the broadcast
    batch shape; bias is None or a 1-D tensor of N."""
    if out._numel == 0:
        return
    key = (a_shape, a_strides, b_shape, b_strides, batch, out.dtype, backend.device())
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) > 4096:
            _plans.clear()
        plan = _plans[key] = _make_plan(*key)
    if bias is None:
        plan(out, a, b, out, 0, 0)  # bias not read: has_bias = 0
    else:
        plan(out, a, b, bias, bias._strides[0], 1)


def _make_plan(a_shape, a_strides, b_shape, b_strides, batch, dtype, device):
    """The launches for one layout, as a function of the tensors: everything that depends only on shapes and
    strides (strategy, kernels, grid, scalar arguments) is worked out once here."""
    m, k = a_shape[-2:]
    n = b_shape[-1]
    sam, sak = a_strides[-2:]
    sbk, sbn = b_strides[-2:]
    a_bst = broadcast_strides(a_shape[:-2], a_strides[:-2], batch)
    b_bst = broadcast_strides(b_shape[:-2], b_strides[:-2], batch)
    if batch and not any(b_bst):
        # one B for every batch element: fold A's batch dims into its rows when their strides allow
        rows = _merged_stride(batch + (m,), a_bst + (sam,))
        if rows is not None:
            m, sam, batch, a_bst, b_bst = numel(batch) * m, rows, (), (), ()
    nbatch = numel(batch)
    meta = kernel_meta(batch, a_bst, b_bst)[:4]
    mr, nr = _BLOCKS[dtype]
    defines = _defines(dtype)
    path = _choose_path(m, n, k, device, dtype)

    if path == "block":
        rows, cols = _block_shape(m, n, dtype)
        blocks = nbatch * ceil_div(m, rows)
        knl = backend.kernel("matmul", f"mm_block{rows}x{cols}", dtype, defines)
        grid, tail = (blocks, ceil_div(n, cols)), (m, n, k, blocks) + meta

        def run(out, a, b, bias, sbias, has_bias):
            backend.launch(knl, grid, out, a, sam, sak, b, sbk, sbn, bias, sbias, has_bias, *tail)
    elif path == "direct":
        total = nbatch * m * n
        knl = backend.kernel("matmul", "mm_direct", dtype, defines)
        tail = (m, n, k, total) + meta

        def run(out, a, b, bias, sbias, has_bias):
            backend.launch(knl, total, out, a, sam, sak, b, sbk, sbn, bias, sbias, has_bias, *tail)
    elif path == "tiled":
        knl = backend.kernel("matmul", "mm_tiled", dtype, defines)
        grid, tail = (ceil_div(n, 32) * 8, ceil_div(m, 32) * 8, nbatch), (m, n, k) + meta

        def run(out, a, b, bias, sbias, has_bias):
            backend.launch(knl, grid, out, a, sam, sak, b, sbk, sbn, bias, sbias, has_bias, *tail,
                           local=(8, 8, 1))
    else:
        mb, nb = ceil_div(m, mr), ceil_div(n, nr)
        tiles_n = ceil_div(nb, 8)
        k_groups = ceil_div(k, _PACK_KC)
        pack, micro = (backend.kernel("matmul", name, dtype, defines) for name in ("pack_panels", "mm_packed"))
        nd, sh, sa, sb = meta
        a_size = nbatch * mb * mr * k  # B's panels follow A's in one buffer (one allocation)
        nbytes = (a_size + nbatch * nb * nr * k) * dtype.itemsize

        def run(out, a, b, bias, sbias, has_bias):
            panels = backend.alloc(nbytes)
            backend.launch(pack, (k_groups, mb + nb, nbatch), panels, 0, a, sam, sak, m, mb, panels, a_size, b, sbn,
                           sbk, n, nb, k, nd, sh, sa, sb)
            backend.launch(micro, (ceil_div(mb, 8) * tiles_n * _GROUP, nbatch), out, panels, 0, panels, a_size, bias,
                           sbias, has_bias, m, n, k, mb, nb, tiles_n, local=(_GROUP, 1))
    return run


def _matmul(a, b):
    """torch.matmul's rank rules: a 1-D left operand is a row [1, K], a 1-D right operand a column [K, 1]
    (the inserted dim is dropped from the result); leading dims broadcast as batch dims."""
    if not a._shape or not b._shape:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape}: both operands need at least one dim "
                         f"(got a 0-dim tensor)")
    a_shape, a_strides = a._shape, a._strides
    b_shape, b_strides = b._shape, b._strides
    if len(a_shape) == 1:
        a_shape, a_strides = (1,) + a_shape, (0,) + a_strides
    if len(b_shape) == 1:
        b_shape, b_strides = b_shape + (1,), b_strides + (0,)
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied (inner dims "
                         f"{a_shape[-1]} and {b_shape[-2]} differ)")
    a_batch, b_batch = a_shape[:-2], b_shape[:-2]
    if not b_batch or a_batch == b_batch:
        batch = a_batch
    elif not a_batch:
        batch = b_batch
    else:
        try:
            batch = broadcast_shapes(a_batch, b_batch)
        except ShapeError:
            raise ShapeError(f"matmul: shapes {a.shape} and {b.shape}: batch dims {list(a_batch)} and "
                             f"{list(b_batch)} are not broadcastable") from None
    out_shape = batch + a._shape[-2:-1]  # () when a is 1-D
    if len(b._shape) > 1:
        out_shape += b._shape[-1:]
    out = a._empty(out_shape, a.dtype)
    _gemm(out, a, a_shape, a_strides, b, b_shape, b_strides, batch, None)
    return out


class MatmulOps:
    __slots__ = ()

    # every entry point goes through matmul, so autograd only has to record that one op
    def matmul(self: TensorT, other: AnyTensor) -> TensorT:
        _require_tensor(other, "matmul")
        (a, b), result = _operands("matmul", self, other)
        out = _matmul(a, b)
        return out if out.dtype is result else out.to(result)

    def __matmul__(self: TensorT, other: AnyTensor) -> TensorT:
        return self.matmul(other)

    def __rmatmul__(self: TensorT, other: AnyTensor) -> TensorT:
        _require_tensor(other, "matmul")
        return other.matmul(self)

    def dot(self: TensorT, other: AnyTensor) -> TensorT:
        """The course's dot: matmul for any ranks (1-D . 1-D gives a 0-dim tensor)."""
        return self.matmul(other)

    def mm(self: TensorT, other: AnyTensor) -> TensorT:
        _require_tensor(other, "mm")
        if len(self._shape) != 2 or len(other._shape) != 2:
            raise ShapeError(f"mm: expected two 2-D tensors, got shapes {self.shape} and {other.shape}")
        return self.matmul(other)

    def bmm(self: TensorT, other: AnyTensor) -> TensorT:
        _require_tensor(other, "bmm")
        if len(self._shape) != 3 or len(other._shape) != 3 or self._shape[0] != other._shape[0]:
            raise ShapeError(f"bmm: expected two 3-D tensors with the same batch size, got shapes "
                             f"{self.shape} and {other.shape}")
        return self.matmul(other)

    def linear(self: TensorT, weight: AnyTensor, bias: Optional[AnyTensor] = None) -> TensorT:
        """self @ weight.T + bias in one launch (weight [out, in], self [..., in], bias [out] or None);
        weight is read through its strides, never transposed in memory."""
        _require_tensor(weight, "linear")
        if bias is not None:
            _require_tensor(bias, "linear")
        n_out = weight._shape[0] if len(weight._shape) == 2 else None
        if (n_out is None or not self._shape or self._shape[-1] != weight._shape[1]
                or (bias is not None and bias._shape != (n_out,))):
            bias_shape = "None" if bias is None else bias.shape
            raise ShapeError(f"linear: input {self.shape}, weight {weight.shape}, bias {bias_shape}: expected "
                             f"input [..., in], weight [out, in] and bias [out] or None")
        (x, w, b), result = _operands("linear", self, weight, bias)  # converted first: copies change strides
        x_shape, x_strides = x._shape, x._strides
        if len(x_shape) == 1:
            x_shape, x_strides = (1,) + x_shape, (0,) + x_strides
        out = x._empty(self._shape[:-1] + (n_out,), x.dtype)
        _gemm(out, x, x_shape, x_strides, w, w._shape[::-1], w._strides[::-1], x_shape[:-2], b)
        return out if out.dtype is result else out.to(result)
