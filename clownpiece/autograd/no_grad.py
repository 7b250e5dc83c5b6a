"""Grad mode: whether Tensor ops record autograd graphs.

The flag itself lives in clownpiece/_grad_mode.py (a one-element list read by every Tensor op), so that
tensor.py can check it without importing autograd. Everything here saves the previous value and restores it
on exit, exceptions included, so modes nest."""
import functools

from .. import _grad_mode


class _GradMode:
    """Context manager that sets grad mode to `enabled` for its block; also a decorator."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.prev = None

    def __enter__(self):
        self.prev = _grad_mode.enabled[0]
        _grad_mode.enabled[0] = self.enabled
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled[0] = self.prev
        return False

    def __call__(self, func):
        enabled = self.enabled

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with _GradMode(enabled):  # a fresh manager per call: recursion and nesting stay correct
                return func(*args, **kwargs)
        return wrapper


def no_grad(func=None):
    """Turn recording off: `with no_grad():`, `@no_grad()` or `@no_grad`."""
    mode = _GradMode(False)
    return mode if func is None else mode(func)


def enable_grad(func=None):
    """Turn recording back on inside a no_grad block: `with enable_grad():`, `@enable_grad()`."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


class set_grad_enabled(_GradMode):
    """`set_grad_enabled(flag)` sets the mode at once (usable as a plain call); used as
    `with set_grad_enabled(flag):` it also restores the previous mode when the block ends."""

    def __init__(self, flag):
        super().__init__(bool(flag))
        self.prev = _grad_mode.enabled[0]
        _grad_mode.enabled[0] = self.enabled

    def __enter__(self):
        return self

    def __call__(self, func):
        _grad_mode.enabled[0] = self.prev  # used as a decorator: only calls of `func` change the mode
        return super().__call__(func)


def is_grad_enabled():
    return bool(_grad_mode.enabled[0])
