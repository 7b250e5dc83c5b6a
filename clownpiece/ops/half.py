"""float16 tensors in the ops whose kernels compute in float32/float64 only, in one place.

Convolution, padding, pooling, batch/group/RMS norm, resampling, attention and the image augmentations
(cl_kernels/ files of backend/dtypes.FLOAT_ONLY_FAMILIES) take a float16 input by converting their float16
tensors to float32, running the float32 op, and rounding its result back to float16 once: the float32
result of the float16 values, rounded once, which is what PyTorch computes for half tensors (in float32, on
CPUs and GPUs). The conversions are the tensors' own `to`: on Tensors that record (autograd/formula.Op.record
calls this for the ops that declare it) they are recorded casts, so the backward runs in float32 too and each
float16 input's gradient is the float32 gradient rounded once to float16.

Why not build those kernel files with the half storage type (common.h's LD/ST) instead, which would save the
conversions: their intermediates would be stored, and rounded, in float16 too: im2col columns feeding a GEMM
that rounds its product before the bias is added (two roundings), batch statistics and attention's per-row
log-sum-exps held in half, max pooling's positions exact only up to 2048. Each file would need its own
float32 scratch buffers to stay at one rounding; this way no kernel changes and every op keeps one float32
path. The conversions cost a few elementwise launches per op, which fusion mostly merges with their
neighbours (a layer's rounding down and the next layer's conversion up become one kernel): a training step
of a small CNN (two conv/batch norm/ReLU/max pool blocks and a linear layer, 64 images of 28x28) takes 98
launches and 46 ms of PoCL device time in float16 against 55 launches and 42 ms in float32."""
from ..backend import dtypes as D

_F16, _F32 = D.float16, D.float32


def is_half(t):
    """Whether t is a float16 tensor."""
    return getattr(t, "dtype", None) is _F16 and hasattr(t, "_storage")


def _floating(a):
    return getattr(a, "dtype", None) in D.FLOATING and hasattr(a, "_storage")


def through_float32(fn, args, kwargs, mixed=False):
    """fn(*args, **kwargs) for a float16 input args[0]: its float16 tensors (positional and keyword) as float32
    copies, the result (the first one, when fn returns several: max pooling's positions stay float32, where
    they are exact) rounded to float16.

    mixed=False: the other floating positional tensors must be float16 too (PyTorch's conv and attention
    raise for a float16 input with a float32 weight); when one is not, fn gets the tensors as they are and
    raises its own dtype mismatch error. mixed=True: float32 ones may join a float16 input (PyTorch's
    mixed-type normalisation layers: float32 weights or running statistics with a half input).

    Keyword tensors are state the op may update in place (batch norm's running statistics): a float16 one
    whose float32 copy fn changed (its version counter moved) gets the new values back, rounded."""
    if not mixed and any(_floating(a) and a.dtype is not _F16 for a in args[1:]):
        return fn(*args, **kwargs)
    args = [a.to(_F32) if is_half(a) else a for a in args]
    state = {k: (v, v.to(_F32)) for k, v in kwargs.items() if is_half(v)}
    if state:
        kwargs = dict(kwargs, **{k: copy for k, (_, copy) in state.items()})
        versions = {k: copy._storage._version for k, (_, copy) in state.items()}
    out = fn(*args, **kwargs)
    for k, (original, copy) in state.items():
        if copy._storage._version != versions[k]:
            original.copy_(copy)
    if isinstance(out, (tuple, list)):
        return type(out)([out[0].to(_F16), *out[1:]])
    return out.to(_F16)
