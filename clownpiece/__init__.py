"""clownpiece: a PyTorch-style deep-learning library whose tensors live in OpenCL buffers."""
from . import autograd, backend, factories, linalg, nn, tensor_impl, utils
from ._jit import JitError, jit
from .autograd import (
    backward,
    broadcast,
    broadcast_tensors,
    cat,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    stack,
    where,
)
from .backend import synchronize
from .factories import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    initial_seed,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    range,
    tensor,
    zeros,
    zeros_like,
)
from .linalg import einsum
from .serialization import load, save

# the dtypes under PyTorch's names, aliases included (they shadow the builtins bool/int/float in this module
# only, as torch.bool does; nothing below uses those builtins)
from .tensor import (  # also attaches the tensor methods (see tensor.py)
    Tensor,
    TensorBase,
    bool_ as bool,  # noqa: E402
    float16,
    float32,
    float64,
    int32,
    int64,
    promote_types,
    result_type,
)
from .tensor_impl import TensorBaseImpl

half, float, double, long, int = float16, float32, float64, int64, int32


# clownpiece.<name>(input, ...) for the Tensor methods PyTorch also has as torch.<name>: the method's own
# recording wrapper runs, so these record autograd like the methods
_METHOD_FUNCTIONS = ("sort argsort topk msort cumsum cumprod prod flip fliplr flipud roll tile repeat_interleave "
                     "tril triu norm any all count_nonzero nonzero isnan isinf isfinite nan_to_num log2 log10 "
                     "erf erfinv rsqrt reciprocal square sign minimum maximum fmod remainder lerp clamp clip "
                     "isclose allclose equal multinomial bernoulli").split()


def _method_function(name):
    def function(input, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"clownpiece.{name}(input, ...) is input.{name}(...)."
    return function


globals().update({_name: _method_function(_name) for _name in _METHOD_FUNCTIONS})


def device() -> str:
    """The OpenCL device in use, described (selected by $CLOWNPIECE_DEVICE; see `python -m clownpiece.devices`)."""
    return str(backend.device())


__all__ = ["TensorBase", "Tensor", "TensorBaseImpl", "bool", "int32", "int64", "float16", "float32", "float64",
           "int", "long", "half", "float", "double", "result_type", "promote_types", "randint", "randperm", "backend",
           "device", "synchronize",
           "backward", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "stack", "cat",
           "broadcast", "broadcast_tensors", "where", "empty", "full", "zeros", "ones", "rand", "randn",
           "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "arange", "range",
           "linspace", "eye", "tensor", "from_numpy", "manual_seed", "initial_seed", "save", "load", "nn",
           "utils", "linalg", "einsum", "jit", "JitError", *_METHOD_FUNCTIONS]
