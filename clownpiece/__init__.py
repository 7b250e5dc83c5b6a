"""clownpiece: a PyTorch-style deep-learning library whose tensors live in OpenCL buffers."""
from . import backend
from .tensor import TensorBase, Tensor, float32, float64
from .backend import synchronize

__all__ = ["TensorBase", "Tensor", "float32", "float64", "backend", "synchronize"]
