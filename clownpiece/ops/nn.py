"""NNOps: fused neural-network raw ops on TensorBase (kernels in cl_kernels/nn.cl): cross-entropy, layer
norm, 2-D convolution (im2col + the linear raw op), max/avg pooling, and the backward kernels that
clownpiece/autograd/functions/nn.py records them with.

Convolution is im2col + the `linear` raw op (one fused GEMM+bias launch) + one layout copy to NCHW. A direct
kernel (one output element per work-item, looping over C*KH*KW) was measured against it on PoCL (2-core CI
machine, float32, 3x3, padding 1, forward only): N=20 1->8 channels 28x28: im2col 2.3 ms, direct 1.7 ms;
N=20 8->16 14x14: 2.2 vs 3.4 ms; N=64 16->32 14x14: 13 vs 44 ms. im2col wins as soon as there is more
than one input channel, and its columns are reused by the weight gradient, so it is the only path."""
import numpy as np

from .. import backend
from .._layout import ShapeError, numel

_REDUCTIONS = ("mean", "sum", "none")


def _per_element(name, out, *args):
    """Run nn.cl's `name` with one work-item per element of the fresh contiguous `out`: the kernel takes out,
    then `args`, then the element count."""
    backend.launch(backend.kernel("nn", name, out.dtype), out._numel, out, *args, out._numel)
    return out


def _pair(v, name, op):
    """An int or a pair of ints (height, width), as in PyTorch's kernel_size/stride/padding."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (v, v)
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return int(v[0]), int(v[1])


class _Window:
    """Geometry of a sliding window over an [N, C, H, W] input: sizes, output plane, kernel args."""

    def __init__(self, x, kernel_size, stride, padding, op, pooling=False):
        if x.dim() != 4:
            raise ShapeError(f"{op}: expected a 4-d [N, C, H, W] input, got shape {x.shape}")
        self.kh, self.kw = _pair(kernel_size, "kernel_size", op)
        self.sh, self.sw = _pair(kernel_size if stride is None else stride, "stride", op)
        self.ph, self.pw = _pair(padding, "padding", op)
        if self.kh <= 0 or self.kw <= 0 or self.sh <= 0 or self.sw <= 0 or self.ph < 0 or self.pw < 0:
            raise ValueError(f"{op}: kernel_size {(self.kh, self.kw)} and stride {(self.sh, self.sw)} must be "
                             f"positive and padding {(self.ph, self.pw)} non-negative")
        if pooling and (2 * self.ph > self.kh or 2 * self.pw > self.kw):
            raise ValueError(f"{op}: padding {(self.ph, self.pw)} must be at most half the kernel "
                             f"{(self.kh, self.kw)}")
        self.n, self.c, self.h, self.w = x._shape
        self.oh = (self.h + 2 * self.ph - self.kh) // self.sh + 1
        self.ow = (self.w + 2 * self.pw - self.kw) // self.sw + 1
        if self.oh <= 0 or self.ow <= 0:
            raise ShapeError(f"{op}: kernel {(self.kh, self.kw)} with padding {(self.ph, self.pw)} does not fit "
                             f"the input of shape {x.shape}")

    def image_args(self, x):
        """The IMG_ARGS of nn.cl for a (possibly strided) input view x."""
        return (x, *x._strides, self.c, self.h, self.w, *self.plane_args())

    def plane_args(self):
        return (self.kh, self.kw, self.oh, self.ow, self.sh, self.sw, self.ph, self.pw)

    def grad_args(self):
        """The geometry arguments of the gather-style backward kernels (col2im, pool backward)."""
        return (self.c, self.h, self.w, *self.plane_args())

    @property
    def in_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def out_shape(self):
        return (self.n, self.c, self.oh, self.ow)


def _check_tensor(t, name, op, dtype):
    if not isinstance(t, NNOps):
        raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")
    return t if t.dtype == dtype else t.to(dtype)


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

    # ---- cross-entropy --------------------------------------------------------------------------
    def cross_entropy(self, target, reduction="mean"):
        """Cross-entropy of logits self [..., C] against float class indices target [...]; a target that
        is not an integer in [0, C) makes its row's loss NaN (checked on the device, without a sync)."""
        check_reduction(reduction, "cross_entropy")
        loss, _, _, _ = self._cross_entropy_rows(target)
        return reduce_loss(loss, reduction)

    def _cross_entropy_rows(self, target):
        """(per-position loss [...], lse [N], logits as contiguous [N, C], targets as contiguous [N])."""
        target = _check_tensor(target, "target", "cross_entropy", self.dtype)
        if self.dim() == 0 or target._shape != self._shape[:-1]:
            raise ShapeError(f"cross_entropy: logits {self.shape} need targets of shape {self.shape[:-1]} "
                             f"(one class index per row), got {target.shape}")
        c = self._shape[-1]
        if c == 0:
            raise ShapeError(f"cross_entropy: logits {self.shape} have no classes")
        x = _rows(self, c)
        n = x._shape[0]
        t = target.contiguous()
        loss = self._empty(target._shape, self.dtype)
        lse = self._empty((n,), self.dtype)
        if n:
            backend.launch(backend.kernel("nn", "cross_entropy_fwd", self.dtype), n, loss, lse, x, t, n, c)
        return loss, lse, x, t

    @staticmethod
    def _cross_entropy_backward(x, lse, t, grad, scale):
        """d loss / d logits for the contiguous [N, C] logits x; grad is 0-dim (reduced loss) or holds one
        value per row; scale is 1/N for 'mean'."""
        n, c = x._shape
        dx = x._empty((n, c), x.dtype)
        if n * c:
            g = grad.contiguous()
            backend.launch(backend.kernel("nn", "cross_entropy_bwd", x.dtype), n * c, dx, x, lse, t, g,
                           0 if g._numel == 1 else 1, scale, n, c)
        return dx

    # ---- layer norm -------------------------------------------------------------------------------
    def layer_norm(self, normalized_shape, weight=None, bias=None, eps=1e-5):
        """Normalise rows of `features` elements with the biased variance, then y*weight + bias.

        normalized_shape: an int F (the course's LayerNorm: the input is viewed as [-1, F], and F must be the
        product of some trailing dims) or a list of trailing dims (PyTorch)."""
        return self._layer_norm(normalized_shape, weight, bias, eps)[0]

    def _layer_norm_features(self, normalized_shape):
        op = "layer_norm"
        if isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool):
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
        """(y, mean [N], rstd [N], x as contiguous [N, F], F)."""
        f = self._layer_norm_features(normalized_shape)
        if weight is not None:
            weight = _check_tensor(weight, "weight", "layer_norm", self.dtype).contiguous()
        if bias is not None:
            bias = _check_tensor(bias, "bias", "layer_norm", self.dtype).contiguous()
        for t, name in ((weight, "weight"), (bias, "bias")):
            if t is not None and t._numel != f:
                raise ShapeError(f"layer_norm: {name} {t.shape} must have {f} elements (one per feature)")
        x = _rows(self, f)
        n = x._shape[0]
        y = self._empty(x._shape, self.dtype)
        mean, rstd = self._empty((n,), self.dtype), self._empty((n,), self.dtype)
        if n:
            affine = (weight is not None) | (bias is not None) << 1
            w = x if weight is None else weight  # an absent one is not read
            b = x if bias is None else bias
            backend.launch(backend.kernel("nn", "layer_norm_fwd", self.dtype), n, y, mean, rstd, x, w, b,
                           affine, eps, n, f)
        return y.view(self._shape), mean, rstd, x, f

    @staticmethod
    def _layer_norm_backward(grad, x, mean, rstd, weight, need_affine_grads):
        """(dx as [N, F], dweight [F] or None, dbias [F] or None) for the rows x saved by _layer_norm;
        need_affine_grads: compute both dweight and dbias (the caller keeps what it needs)."""
        n, f = x._shape
        g = _rows(grad, f)
        dx = x._empty((n, f), x.dtype)
        if n:
            w = weight.contiguous() if weight is not None else x  # not read without weight
            backend.launch(backend.kernel("nn", "layer_norm_bwd_input", x.dtype), n, dx, g, x, mean, rstd, w,
                           int(weight is not None), n, f)
        if not need_affine_grads:
            return dx, None, None
        dw, db = x._empty((f,), x.dtype), x._empty((f,), x.dtype)
        backend.launch(backend.kernel("nn", "layer_norm_bwd_affine", x.dtype), f, dw, db, g, x, mean, rstd, n, f)
        return dx, dw, db

    # ---- convolution ------------------------------------------------------------------------------
    def conv2d(self, weight, bias=None, stride=1, padding=0):
        """2-D cross-correlation of self [N, C, H, W] with weight [OC, C, KH, KW] (+ bias [OC]) as
        im2col + one fused GEMM+bias launch; the result is a contiguous [N, OC, OH, OW]."""
        return self._conv2d(weight, bias, stride, padding)[0]

    def _conv2d(self, weight, bias, stride, padding):
        """(y, cols [N*OH*OW, C*KH*KW], weight as [OC, C*KH*KW], window)."""
        op = "conv2d"
        weight = _check_tensor(weight, "weight", op, self.dtype)
        if weight.dim() != 4:
            raise ShapeError(f"{op}: weight must be [out_channels, in_channels, kH, kW], got {weight.shape}")
        oc, wc, kh, kw = weight._shape
        if self.dim() == 4 and self._shape[1] != wc:
            raise ShapeError(f"{op}: input {self.shape} has {self._shape[1]} channels but weight {weight.shape} "
                             f"expects {wc}")
        if bias is not None:
            bias = _check_tensor(bias, "bias", op, self.dtype)
            if bias._shape != (oc,):
                raise ShapeError(f"{op}: bias must have shape [{oc}], got {bias.shape}")
        win = _Window(self, (kh, kw), stride, padding, op)
        cols = self._im2col(win)
        w2d = weight.reshape(oc, wc * kh * kw)
        out = cols.linear(w2d, bias)  # [N*OH*OW, OC]
        y = out.view(win.n, win.oh, win.ow, oc).permute(0, 3, 1, 2).contiguous()
        return y, cols, w2d, win

    def _im2col(self, win):
        rows, ckk = win.n * win.oh * win.ow, win.c * win.kh * win.kw
        return _per_element("im2col", self._empty((rows, ckk), self.dtype), *win.image_args(self))

    @staticmethod
    def _col2im(dcols, win):
        return _per_element("col2im", dcols._empty(win.in_shape, dcols.dtype), dcols.contiguous(),
                            *win.grad_args())

    # ---- pooling ----------------------------------------------------------------------------------
    def max_pool2d(self, kernel_size, stride=None, padding=0):
        """Max over kernel_size windows of self [N, C, H, W]; stride defaults to kernel_size; padding is
        never chosen (as -inf) and at most half the kernel."""
        return self._max_pool2d(kernel_size, stride, padding)[0]

    def _max_pool2d(self, kernel_size, stride, padding):
        """(y, idx, window): idx holds the flat h*W + w position each output took, as a float tensor."""
        win = _Window(self, kernel_size, stride, padding, "max_pool2d", pooling=True)
        y, idx = self._empty(win.out_shape, self.dtype), self._empty(win.out_shape, self.dtype)
        _per_element("max_pool2d_fwd", y, idx, *win.image_args(self))
        return y, idx, win

    @staticmethod
    def _max_pool2d_backward(grad, idx, win):
        g = grad.contiguous()
        return _per_element("max_pool2d_bwd", g._empty(win.in_shape, g.dtype), g, idx, *win.grad_args())

    def avg_pool2d(self, kernel_size, stride=None, padding=0):
        """Mean over kernel_size windows of self [N, C, H, W]; zero padding counts in the divisor."""
        return self._avg_pool2d(kernel_size, stride, padding)[0]

    def _avg_pool2d(self, kernel_size, stride, padding):
        win = _Window(self, kernel_size, stride, padding, "avg_pool2d", pooling=True)
        return _per_element("avg_pool2d_fwd", self._empty(win.out_shape, self.dtype), *win.image_args(self)), win

    @staticmethod
    def _avg_pool2d_backward(grad, win):
        g = grad.contiguous()
        return _per_element("avg_pool2d_bwd", g._empty(win.in_shape, g.dtype), g, *win.grad_args())
