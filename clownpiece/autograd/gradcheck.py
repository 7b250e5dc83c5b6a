"""gradcheck: compare autograd's gradients with central finite differences in float64.

This is host-side checking code: it reads outputs back and perturbs input elements in place through
one-element views. The function under test runs on the device like any other code."""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np

from .._tensor import Tensor, TensorBase, float64
from .autograd import backward
from .no_grad import enable_grad, no_grad


class GradcheckError(RuntimeError):
    pass


def gradcheck(fn: Callable[..., Any], inputs: Union[TensorBase, Sequence[Any]], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check d(fn)/d(input) for every input Tensor that requires grad (those must be float64).

    fn returns a tensor or a tuple/list of tensors. Both sides are projected on fixed random weights w
    (the analytic side is one backward with grads w, the numeric side differentiates sum(w * fn)), so a
    softmax-like function whose plain sum is constant is still checked. Returns True, or raises
    GradcheckError naming the worst element."""
    inputs = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
    wrt = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input is a Tensor that requires grad")
    for i in wrt:
        if inputs[i].dtype != float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64")

    rng = np.random.default_rng(seed)
    with enable_grad():
        outs = _tensors(fn(*inputs))
    weights = [rng.standard_normal(o._shape) for o in outs]
    analytic = _analytic(inputs, wrt, outs, weights)

    def projected():
        return sum(float((o.numpy().astype(np.float64) * w).sum()) for o, w in zip(_tensors(fn(*inputs)), weights))

    worst = None
    with no_grad():
        for i in wrt:
            x = inputs[i]
            values = x.numpy()
            for idx in np.ndindex(*x._shape):
                cell = _element(x, idx)
                v = float(values[idx])
                cell._assign_from(v + eps)
                plus = projected()
                cell._assign_from(v - eps)
                minus = projected()
                cell._assign_from(v)
                numeric = (plus - minus) / (2 * eps)
                got = float(analytic[i][idx])
                excess = abs(got - numeric) - (atol + rtol * abs(numeric))
                if worst is None or excess > worst[0]:
                    worst = (excess, i, idx, got, numeric)
    if worst is not None and not worst[0] <= 0:
        _, i, idx, got, numeric = worst
        raise GradcheckError(f"gradcheck: input {i} (shape {inputs[i].shape}) element {list(idx)}: analytic "
                             f"{got:.8g} vs numeric {numeric:.8g} (|diff| {abs(got - numeric):.3g} > atol "
                             f"{atol} + rtol {rtol} * |numeric|)")
    return True


def _tensors(out):
    out = list(out) if isinstance(out, (tuple, list)) else [out]
    if not all(isinstance(o, TensorBase) for o in out):
        raise TypeError("gradcheck: fn must return a tensor or a tuple/list of tensors")
    return out


def _analytic(inputs, wrt, outs, weights):
    """{input position: gradient as float64 numpy} from one backward pass, leaving .grad as it was."""
    old = {i: inputs[i].grad for i in wrt}
    for i in wrt:
        inputs[i].grad = None
    try:
        pairs = [(o, Tensor(w, dtype=o.dtype)) for o, w in zip(outs, weights)
                 if isinstance(o, Tensor) and o.requires_grad]
        if pairs:
            backward([p[0] for p in pairs], [p[1] for p in pairs])
        return {i: (np.zeros(inputs[i]._shape) if inputs[i].grad is None else inputs[i].grad.numpy())
                for i in wrt}
    finally:
        for i in wrt:
            inputs[i].grad = old[i]


def _element(x, idx):
    """A one-element view of x at multi-index idx."""
    cell = x
    for d, j in enumerate(idx):
        cell = TensorBase.narrow(cell, d, j, 1)
    return cell
