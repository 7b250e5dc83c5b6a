"""Autograd: grad mode, the Function/Context API, the built-in ops' gradients (a table per family in
autograd/functions/), the backward engine and gradcheck.

`clownpiece.autograd.no_grad` is the function (as in the course). The submodule of that name is still
importable by path: `from clownpiece.autograd.no_grad import is_grad_enabled` or
`importlib.import_module("clownpiece.autograd.no_grad")`."""
from .autograd import backward
from .function import Context, Function, broadcast, broadcast_tensors, cat, stack, where
from .gradcheck import gradcheck
from .no_grad import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["backward", "Function", "Context", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "gradcheck", "stack", "cat", "broadcast", "broadcast_tensors", "where"]
