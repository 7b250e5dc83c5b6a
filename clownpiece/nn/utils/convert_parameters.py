"""parameters_to_vector and vector_to_parameters (PyTorch's torch.nn.utils.convert_parameters)."""
from __future__ import annotations

from typing import Iterable

from ..._layout import contiguous_strides
from ..._tensor import Tensor, TensorBase
from ...autograd.functions import cat


def _tensors(parameters, op):
    if isinstance(parameters, TensorBase):
        raise TypeError(f"{op}: parameters must be an iterable of tensors, got a single tensor")
    params = list(parameters)
    for p in params:
        if not isinstance(p, TensorBase):
            raise TypeError(f"{op}: parameters must be tensors, got {type(p).__name__}")
    return params


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """One 1-D tensor of every parameter's elements in order (a copy; differentiable)."""
    params = _tensors(parameters, "parameters_to_vector")
    if not params:
        raise ValueError("parameters_to_vector: got no parameters")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Make each parameter a view of the next slice of the 1-D tensor `vec` (shape and all): like PyTorch's
    `param.data = vec[a:b].view_as(param)`, the parameters then share vec's storage and dtype. vec must be
    contiguous and hold at least as many elements as the parameters together (extra ones are ignored, as
    in PyTorch)."""
    if not isinstance(vec, TensorBase):
        raise TypeError(f"vector_to_parameters: expected a tensor for vec, but got {type(vec).__name__}")
    params = _tensors(parameters, "vector_to_parameters")
    if vec.dim() != 1:
        raise ValueError(f"vector_to_parameters: vec must be 1-D, got shape {vec.shape}")
    if not vec.is_contiguous():
        raise RuntimeError("vector_to_parameters: vec must be contiguous (parameters become views of it)")
    needed = sum(p.numel() for p in params)
    if vec.numel() < needed:
        raise ValueError(f"vector_to_parameters: vec has {vec.numel()} elements, the parameters need {needed}")
    start = vec._offset
    for p in params:
        shape = p._shape
        p._set_view(vec._storage, shape, contiguous_strides(shape), start, vec.dtype)
        start += p._numel
    return None

