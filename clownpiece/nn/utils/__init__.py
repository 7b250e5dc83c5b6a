"""clownpiece.nn.utils (PyTorch's torch.nn.utils): gradient clipping over a model's parameters and
conversion between parameters and one flat vector."""
from .clip_grad import clip_grad_norm_, clip_grad_value_
from .convert_parameters import parameters_to_vector, vector_to_parameters

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]
