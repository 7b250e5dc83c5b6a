"""Grad mode: whether Tensor ops record autograd graphs (one process-wide flag, as in the course).

Every module reads and changes it through these functions, never by hand. `no_grad()`, `enable_grad()` and
`set_grad_enabled(flag)` restore the previous mode when their block ends, exceptions included, so modes nest;
all three also work as decorators. This module imports nothing from clownpiece: the tensor classes read the
mode (`requires_grad_()` defaults to it) and autograd sets it, so it sits below both. The public names are
re-exported by `clownpiece` and `clownpiece.autograd.no_grad` (docs/api.md, "Grad mode")."""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, TypeVar, Union

F = TypeVar("F", bound=Callable[..., Any])  # a function a grad-mode decorator returns with its signature

# The mode itself. Change it only through the functions below; read it with is_grad_enabled(). The one
# exception is the per-op check in autograd/methods.py, which reads STATE[0] directly: it runs on every
# Tensor method call, and a function call there costs more than the rest of the check.
STATE = [True]


def is_grad_enabled() -> bool:
    """True when ops record graphs (outside `no_grad`)."""
    return STATE[0]


def swap_grad_enabled(mode: bool) -> bool:
    """Set grad mode to `mode` at once and return the previous mode, to restore with a second call.

    The fast form for code that switches the mode on every op (Function.apply runs each forward with grad
    mode off); elsewhere prefer the context managers, which cannot forget to restore."""
    previous = STATE[0]
    STATE[0] = mode
    return previous


class _GradMode:
    """Context manager that sets grad mode to `enabled` for its block; also a decorator."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.prev = None

    def __enter__(self) -> _GradMode:
        self.prev = swap_grad_enabled(self.enabled)
        return self

    def __exit__(self, *exc: Any) -> bool:
        swap_grad_enabled(self.prev)
        return False

    def __call__(self, func: F) -> F:
        enabled = self.enabled

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with _GradMode(enabled):  # a fresh manager per call: recursion and nesting stay correct
                return func(*args, **kwargs)
        return wrapper


def no_grad(func: Optional[F] = None) -> Union[_GradMode, F]:
    """Turn recording off: `with no_grad():`, `@no_grad()` or `@no_grad`."""
    mode = _GradMode(False)
    return mode if func is None else mode(func)


def enable_grad(func: Optional[F] = None) -> Union[_GradMode, F]:
    """Turn recording back on inside a no_grad block: `with enable_grad():`, `@enable_grad()`."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


class set_grad_enabled(_GradMode):
    """`set_grad_enabled(flag)` sets the mode at once (usable as a plain call); used as
    `with set_grad_enabled(flag):` it also restores the previous mode when the block ends."""

    def __init__(self, flag: bool) -> None:
        super().__init__(bool(flag))
        self.prev = swap_grad_enabled(self.enabled)

    def __enter__(self) -> set_grad_enabled:
        return self

    def __call__(self, func: F) -> F:
        swap_grad_enabled(self.prev)  # used as a decorator: only calls of `func` change the mode
        return super().__call__(func)
