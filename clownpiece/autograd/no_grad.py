"""Grad mode (the course's module path `clownpiece.autograd.no_grad`): `no_grad`, `enable_grad`,
`set_grad_enabled` and `is_grad_enabled`, defined in clownpiece/_grad_mode.py so that the tensor classes,
which sit below autograd, can read the mode too."""
from .._grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]
