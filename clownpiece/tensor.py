"""The public tensor module: TensorBase and Tensor, the factories, and the differentiable stack, cat and
broadcast (course code imports all of these from `clownpiece.tensor`; docs/api.md, "Import paths").

This is also the one place where methods are attached to the tensor classes, once, at import:
- TensorBase gets the class-method factories (`Tensor.zeros(2, 3)`, `TensorBase.stack([...])`), from
  factories.CLASS_METHODS;
- Tensor gets backward(), register_post_accumulate_grad_hook() and the recording form of every
  differentiable op, from the registry in autograd/methods.py (each op's Function: a row of a gradient table
  or a class, autograd/functions/).
The classes themselves are defined in clownpiece/_tensor.py, the raw ops in clownpiece/ops/."""
from __future__ import annotations

from typing import Optional

from . import factories
from ._tensor import Tensor, TensorBase, promote_types, result_type
from .autograd import hooks as _hooks, methods as _methods
from .autograd.autograd import backward as _backward
from .autograd.functions import broadcast, broadcast_tensors, cat, stack
from .backend.dtypes import bool_, float16, float32, float64, int32, int64
from .factories import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    initial_seed,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    range,
    tensor,
    zeros,
    zeros_like,
)


def _attach_methods():
    for name, factory in factories.CLASS_METHODS.items():
        setattr(TensorBase, name, classmethod(factory))

    def backward(self: Tensor, gradient: Optional[TensorBase] = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) * gradient into the .grad of every leaf that requires grad (gradient
        defaults to ones of self's shape, for any shape)."""
        _backward(self, gradient, retain_graph=retain_graph)

    Tensor.backward = backward
    Tensor.register_post_accumulate_grad_hook = _hooks.register_post_accumulate_grad_hook
    _methods.install(Tensor)


_attach_methods()

__all__ = ["TensorBase", "Tensor", "bool_", "int32", "int64", "float16", "float32", "float64", "result_type",
           "promote_types", "randint", "randperm", "stack", "cat", "broadcast", "broadcast_tensors",
           "arange", "empty", "empty_like", "eye", "from_numpy", "full", "full_like", "initial_seed", "linspace",
           "manual_seed", "ones", "ones_like", "rand", "rand_like", "randn", "randn_like", "range", "tensor",
           "zeros", "zeros_like"]
