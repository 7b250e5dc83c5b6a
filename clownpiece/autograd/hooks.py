"""Tensor hooks: `Tensor.register_post_accumulate_grad_hook(hook)` as in PyTorch.

A leaf's hooks run, in registration order, right after backward has accumulated the leaf's gradient of
this pass into `leaf.grad` (AccumulateGrad.run), once per backward pass. Data-parallel training uses them
to start a gradient bucket's allreduce while the rest of backward still runs."""
from __future__ import annotations

import itertools
from typing import Any, Callable

from .._tensor import Tensor

_ids = itertools.count()
_ATTR = "_post_accumulate_grad_hooks"


class RemovableHandle:
    """What registering a hook returns: `remove()` unregisters it (idempotent)."""

    def __init__(self, hooks: dict[Any, Any], key: Any) -> None:
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def register_post_accumulate_grad_hook(tensor: Tensor, hook: Callable[[Tensor], None]) -> RemovableHandle:
    """Call `hook(tensor)` after each backward pass has accumulated into `tensor.grad`."""
    if not callable(hook):
        raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {type(hook).__name__}")
    if not tensor.requires_grad:
        raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a tensor that "
                           "does not require grad")
    if not tensor.is_leaf:
        raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate gradients; "
                           "this tensor has a grad_fn")
    hooks = tensor.__dict__.setdefault(_ATTR, {})
    key = next(_ids)
    hooks[key] = hook
    return RemovableHandle(hooks, key)


def run_post_accumulate_grad_hooks(tensor):
    hooks = tensor.__dict__.get(_ATTR)
    if hooks:
        for hook in list(hooks.values()):
            hook(tensor)
