"""Type aliases of the public API's annotations (PEP 484), so every signature spells a tensor, a shape, a dtype
or a device the same way. Annotations only: nothing here is checked at run time.

The raw ops are mixins of TensorBase (clownpiece/ops/*.py), which _tensor.py imports: they cannot import
TensorBase back, so they annotate with the names here. For type checkers `AnyTensor` is TensorBase (imported
under TYPE_CHECKING); at run time it is a forward reference that typing.get_type_hints resolves in
clownpiece._tensor, so the hints of every Tensor method resolve once clownpiece is imported. (It is not a
class at run time: isinstance checks use TensorBase itself.)"""
from __future__ import annotations

from typing import TYPE_CHECKING, ForwardRef, Sequence, TypeVar, Union

from numpy.typing import DTypeLike

from .backend.discovery import Device

if TYPE_CHECKING:
    from ._tensor import TensorBase as AnyTensor  # a TensorBase or any subclass (Tensor, Parameter...)
else:
    AnyTensor = ForwardRef("TensorBase", module="clownpiece._tensor")

# the class of `self` that a raw op returns: Tensor ops give Tensors, TensorBase ops TensorBases
TensorT = TypeVar("TensorT", bound="AnyTensor")
# an operand of an elementwise op: a tensor, or a Python (or numpy) number broadcast against the other side
TensorOrScalar = Union[AnyTensor, bool, int, float]
# a device= argument: None (the current device), "opencl", "opencl:N", or a Device (backend.resolve_device)
DeviceLike = Union[Device, str, None]
# a size: one int or a sequence of them (factories and shape ops accept both, as PyTorch does)
ShapeLike = Union[int, Sequence[int]]
# a kernel_size, stride, padding or dilation: one int for every spatial dim, or one per dim
IntOrPair = Union[int, Sequence[int]]
# the dims a reduction runs over: one, several, or None for all
DimLike = Union[int, Sequence[int], None]

__all__ = ["AnyTensor", "Device", "DTypeLike", "DeviceLike", "DimLike", "IntOrPair", "ShapeLike", "TensorOrScalar",
           "TensorT"]
