"""NNOps: fused neural-network raw ops on TensorBase (kernels in cl_kernels/nn.cl): layer norm and the
backward kernels that clownpiece/autograd/functions/nn.py records it with, and the reduction helpers of the
losses (their kernels: ops/loss.py). (Convolution:
ops/conv.py; pooling: ops/pool.py, with max_pool2d/avg_pool2d methods here for Tensor.)"""
from __future__ import annotations

from typing import Optional, Union

from .. import backend
from .._layout import ShapeError, is_int, numel
from .._types import AnyTensor, IntOrPair, ShapeLike, TensorT
from ..backend import dtypes as D
from . import pool as _pool
from .half import is_half, through_float32

_REDUCTIONS = ("mean", "sum", "none")


def _check_tensor(t, name, op, dtype):
    if not isinstance(t, NNOps):
        raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
    return t if t.dtype == dtype else t.to(dtype)


def _as_float(x, op):
    """x in a dtype nn.cl computes in: float16 goes through float32 (the caller converts results back);
    integer and bool tensors raise."""
    if x.dtype is D.float16:
        return x.to(D.float32)
    if x.dtype not in D.FLOATING:
        raise TypeError(f"{op}: not supported for {x.dtype.name} tensors; it takes floating tensors")
    return x


def _rows(x, features):
    """x as a contiguous [-1, features] matrix (a view when x is already contiguous)."""
    return x.contiguous().view(-1, features)


def reduce_loss(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


class NNOps:
    __slots__ = ()

    # ---- layer norm -------------------------------------------------------------------------------
    def layer_norm(self: TensorT, normalized_shape: ShapeLike, weight: Optional[AnyTensor] = None,
                   bias: Optional[AnyTensor] = None, eps: float = 1e-5) -> TensorT:
        """Normalise rows of `features` elements with the biased variance, then y*weight + bias.

        normalized_shape: an int F (the course's LayerNorm: the input is viewed as [-1, F], and F must be the
        product of some trailing dims) or a list of trailing dims (PyTorch)."""
        return self._layer_norm(normalized_shape, weight, bias, eps)[0]

    def _layer_norm_features(self, normalized_shape):
        op = "layer_norm"
        if is_int(normalized_shape):
            f = int(normalized_shape)
            suffixes = [numel(self._shape[i:]) for i in range(self.dim())]
            if f <= 0 or f not in suffixes:
                raise ShapeError(f"{op}: num_features={f} must be the size of the trailing dim(s) of the "
                                 f"input, got input shape {self.shape}")
            return f
        dims = tuple(int(d) for d in normalized_shape)
        if not dims or self._shape[len(self._shape) - len(dims):] != dims or len(dims) > self.dim():
            raise ShapeError(f"{op}: normalized_shape {list(dims)} must match the trailing dims of the input "
                             f"shape {self.shape}")
        return numel(dims)

    def _layer_norm(self, normalized_shape, weight, bias, eps):
        """(y, mean [N], rstd [N], x as contiguous [N, F], F); float16 is computed in float32."""
        f = self._layer_norm_features(normalized_shape)
        src = _as_float(self, "layer_norm")
        if weight is not None:
            weight = _check_tensor(weight, "weight", "layer_norm", src.dtype).contiguous()
        if bias is not None:
            bias = _check_tensor(bias, "bias", "layer_norm", src.dtype).contiguous()
        for t, name in ((weight, "weight"), (bias, "bias")):
            if t is not None and t._numel != f:
                raise ShapeError(f"layer_norm: {name} {t.shape} must have {f} elements (one per feature)")
        x = _rows(src, f)
        n = x._shape[0]
        y = src._empty(x._shape, src.dtype)
        mean, rstd = src._empty((n,), src.dtype), src._empty((n,), src.dtype)
        if n:
            affine = (weight is not None) | (bias is not None) << 1
            w = x if weight is None else weight  # an absent one is not read
            b = x if bias is None else bias
            backend.launch(backend.kernel("nn", "layer_norm_fwd", src.dtype), n, y, mean, rstd, x, w, b,
                           affine, eps, n, f)
        return y.view(self._shape).to(self.dtype), mean, rstd, x, f

    @staticmethod
    def _layer_norm_backward(grad, x, mean, rstd, weight, need_affine_grads):
        """(dx as [N, F], dweight [F] or None, dbias [F] or None) for the rows x saved by _layer_norm;
        need_affine_grads: compute both dweight and dbias (the caller keeps what it needs)."""
        n, f = x._shape
        g = _rows(grad.to(x.dtype), f)
        dx = x._empty((n, f), x.dtype)
        if n:
            w = weight.to(x.dtype).contiguous() if weight is not None else x  # not read without weight
            backend.launch(backend.kernel("nn", "layer_norm_bwd_input", x.dtype), n, dx, g, x, mean, rstd, w,
                           int(weight is not None), n, f)
        if not need_affine_grads:
            return dx, None, None
        dw, db = x._empty((f,), x.dtype), x._empty((f,), x.dtype)
        backend.launch(backend.kernel("nn", "layer_norm_bwd_affine", x.dtype), f, dw, db, g, x, mean, rstd, n, f)
        return dx, dw, db

    # ---- pooling (ops/pool.py; these methods are the Tensor.max_pool2d / avg_pool2d raw forms) --------------
    def max_pool2d(self: TensorT, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                   dilation: IntOrPair = 1, ceil_mode: bool = False,
                   return_indices: bool = False) -> Union[TensorT, tuple[TensorT, TensorT]]:
        if is_half(self):
            return through_float32(NNOps.max_pool2d, (self, kernel_size, stride, padding, dilation, ceil_mode,
                                                      return_indices), {})
        y, idx, _, unbatched = _pool.max_pool(self, kernel_size, stride, padding, dilation, ceil_mode)
        y = _pool.restore(y, unbatched, 2)
        return (y, _pool.restore(idx, unbatched, 2)) if return_indices else y

    def avg_pool2d(self: TensorT, kernel_size: IntOrPair, stride: Optional[IntOrPair] = None, padding: IntOrPair = 0,
                   ceil_mode: bool = False, count_include_pad: bool = True,
                   divisor_override: Optional[int] = None) -> TensorT:
        if is_half(self):
            return through_float32(NNOps.avg_pool2d, (self, kernel_size, stride, padding, ceil_mode,
                                                      count_include_pad, divisor_override), {})
        y, _, unbatched, _ = _pool.avg_pool(self, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                            divisor_override)
        return _pool.restore(y, unbatched, 2)
