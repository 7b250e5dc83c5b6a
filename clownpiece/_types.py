"""Type aliases of the public API's annotations (PEP 484), so every signature spells a shape, a dtype or a
device the same way. Annotations only: nothing here is checked at run time."""
from __future__ import annotations

from typing import Sequence, Union

from numpy.typing import DTypeLike

from .backend.discovery import Device

# a device= argument: None (the current device), "opencl", "opencl:N", or a Device (backend.resolve_device)
DeviceLike = Union[Device, str, None]
# a size: one int or a sequence of them (factories and shape ops accept both, as PyTorch does)
ShapeLike = Union[int, Sequence[int]]
# a kernel_size, stride, padding or dilation: one int for every spatial dim, or one per dim
IntOrPair = Union[int, Sequence[int]]

__all__ = ["DTypeLike", "DeviceLike", "ShapeLike", "IntOrPair"]
