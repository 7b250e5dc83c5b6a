"""The Function of every built-in differentiable op, by family, mirroring clownpiece/ops/: elementwise,
shape, reduce, matmul, index, inplace, nn, norm, conv, pool, upsample, attention, sort, scan, remap, linalg.
Each family module starts with its gradient table (`GRADIENTS`: one row per op whose backward is one formula
per input, autograd/formula.py), if it has one, followed by the classes whose backward needs real code.
Importing a family registers its ops (autograd/methods.py)."""
from ..methods import FUNCTIONS
from . import (  # noqa: F401
               attention,
               conv,
               elementwise,
               index,
               inplace,
               linalg,
               matmul,
               nn,
               norm,
               pool,
               reduce,
               remap,
               scan,
               shape,
               sort,
               upsample,
)
from .elementwise import where
from .index import broadcast, broadcast_tensors, cat, stack

__all__ = ["FUNCTIONS", "where", "stack", "cat", "broadcast", "broadcast_tensors"]
