"""clip_grad_norm_ and clip_grad_value_ (PyTorch's torch.nn.utils.clip_grad), on the device in a fixed
number of multi-tensor launches (clownpiece/ops/foreach.py): for P parameters with gradients,
clip_grad_norm_ launches 2 * ceil(P / S) + 1 kernels and clip_grad_value_ ceil(P / S), S =
foreach.slots_per_launch() (56 on PoCL, at least 8 anywhere), and neither reads device memory back (not
even with error_if_nonfinite=True: the check is made on the device, backend/checks.py)."""
from __future__ import annotations

import math
import numbers
from typing import Iterable, Optional, Union

from ..._grad_mode import no_grad
from ..._tensor import Tensor, TensorBase
from ...backend import checks
from ...ops import foreach as multi


def _grads(parameters, op):
    if isinstance(parameters, TensorBase):
        parameters = [parameters]
    grads = []
    for p in parameters:
        if not isinstance(p, TensorBase):
            raise TypeError(f"{op}: parameters must be tensors, got {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    dtypes = {g.dtype for g in grads}
    if len(dtypes) > 1:
        raise TypeError(f"{op}: gradients of several dtypes ({', '.join(sorted(d.name for d in dtypes))}) are not "
                        f"supported; clip each dtype's parameters separately")
    return grads


def _number(value, op, name):
    """`value` as a float. A float stays the object it is: under clownpiece.jit it may be a traced argument,
    which float() would turn into a constant."""
    if isinstance(value, TensorBase) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}")
    return value if isinstance(value, float) else float(value)


def _in_place(grads, apply, fallback):
    """Run `apply` on the contiguous grads in one multi-tensor pass, `fallback(g)` on each strided one."""
    dense = [g for g in grads if g._contig]
    if dense:
        apply(dense)
    for g in grads:
        if not g._contig:
            fallback(g)


_NONFINITE = checks.register("clip_grad_norm_", "the total norm of the gradients from `parameters` is {value}, "
                             "non-finite, so it cannot be clipped (the gradients were left unscaled). To disable "
                             "this error and scale the gradients by the non-finite norm anyway, set "
                             "`error_if_nonfinite=False`", float_value=True)


def clip_grad_norm_(parameters: Union[Tensor, Iterable[Tensor]], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: Optional[bool] = None) -> Tensor:
    """Scale the gradients of `parameters` (a tensor or an iterable of them) in place so that their
    `norm_type`-norm, taken over all of them together, is at most `max_norm`: each is multiplied by
    min(max_norm / (total_norm + 1e-6), 1). Returns the total norm (before clipping) as a 0-dim tensor.

    norm_type: any number or +-inf, with PyTorch's meaning (the vector norm of the per-gradient vector norms):
    p > 0 (sum |x|^p)^(1/p) over every element; inf max |x|; -inf min |x|; p < 0 the same sum, where a zero
    makes the norm 0; 0 the number of gradients holding a nonzero element. inf, -inf and p < 0 have no value
    for an empty gradient and raise, as PyTorch's vector_norm does.

    error_if_nonfinite=True: a NaN or infinite total norm is found on the device and raised as
    DeviceAssertError (a RuntimeError) at the next host read (`loss.item()`, printing, `numpy()`), like
    CUDA's device-side assert, rather than by this call: nothing is read back here. The gradients are then
    left as they were (PyTorch raises before scaling them). `foreach` is accepted for PyTorch's signature:
    the multi-tensor kernels are always used."""
    op = "clip_grad_norm_"
    max_norm = _number(max_norm, op, "max_norm")
    norm_type = _number(norm_type, op, "norm_type")
    if norm_type != norm_type:
        raise ValueError(f"{op}: norm_type must be a number or +-inf, got {norm_type}")
    grads = _grads(parameters, op)
    if not grads:
        return Tensor(0.0)
    if (norm_type < 0 or norm_type == math.inf) and any(g._numel == 0 for g in grads):
        raise RuntimeError(f"{op}: the {norm_type} norm of an empty gradient is undefined (the operation has no "
                           f"identity), as in PyTorch's vector_norm")
    with no_grad():
        dense = [g if g._contig else g.contiguous() for g in grads]
        out = multi.norm_and_clip_coef(dense, norm_type, max_norm, _NONFINITE if error_if_nonfinite else None)
        total_norm, coef = out[0], out[1]
        _in_place(grads, lambda gs: multi.mul_(gs, coef), lambda g: g.copy_(g * coef))
    return total_norm


def clip_grad_value_(parameters: Union[Tensor, Iterable[Tensor]], clip_value: float,
                     foreach: Optional[bool] = None) -> None:
    """Clamp the gradients of `parameters` in place to [-clip_value, clip_value] (PyTorch: first at least
    -clip_value, then at most clip_value; NaN stays NaN). Returns None."""
    clip_value = _number(clip_value, "clip_grad_value_", "clip_value")
    grads = _grads(parameters, "clip_grad_value_")
    if not grads:
        return None
    with no_grad():
        _in_place(grads, lambda gs: multi.clamp_(gs, -clip_value, clip_value),
                  lambda g: g.copy_(g.clamp(min=-clip_value).clamp(max=clip_value)))
    return None
