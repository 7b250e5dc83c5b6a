"""Function and Context (the API for writing differentiable ops) and, by name, the Function class of every
built-in op: course code looks them up here (`getattr(function, "Exp")().apply(x)`). The classes are
defined, by family, in clownpiece/autograd/functions/; most are rows of a gradient table (formula.py)."""
from .autograd import AccumulateGrad, Context, Function
from .functions import FUNCTIONS, broadcast, broadcast_tensors, cat, stack, where

globals().update(FUNCTIONS)  # Exp, MatMul, Subscriptor, ...: one name per built-in op

__all__ = ["Context", "Function", "AccumulateGrad", "stack", "cat", "broadcast", "broadcast_tensors", "where",
           *FUNCTIONS]
