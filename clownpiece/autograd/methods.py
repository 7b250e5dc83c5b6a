"""The one registration path of differentiable ops: which Function each recording Tensor method goes through.

Every built-in op's Function is registered here, whether it is a gradient-table row (formula.py) or a
class with real backward code (`@differentiable("narrow")` on the class), together with the Tensor
methods that record through it. `install(Tensor)` (called once, by clownpiece/tensor.py) then gives Tensor
one wrapper per method: when grad mode is on and an argument requires grad, it records through the op's
Function; otherwise it calls the raw TensorBase op directly. docs/adding-an-op.md walks through adding one."""
from .._grad_mode import STATE as _GRAD_MODE, is_grad_enabled
from .._tensor import Tensor, TensorBase

FUNCTIONS = {}  # class name -> Function of every built-in differentiable op (clownpiece.autograd.function)
RECORDERS = {}  # Tensor method name -> callable(self, *args, **kwargs) that records the op

# reflected operators: `2 - t` calls t.__rsub__(2), which must record Sub(2, t)
_REFLECTED = frozenset({"__radd__", "__rsub__", "__rmul__", "__rtruediv__", "__rpow__", "__rmatmul__", "__rmod__"})


def register(names, recorder):
    """Tensor methods `names` (a space-separated string or a sequence) record through `recorder`
    (a Function's apply, or a function that passes the method's arguments on to one)."""
    for name in names.split() if isinstance(names, str) else names:
        if name in RECORDERS:
            raise ValueError(f"Tensor.{name} is registered twice")
        RECORDERS[name] = _swapped(recorder) if name in _REFLECTED else recorder


def differentiable(names=""):
    """Class decorator for a built-in op's Function (a formula.Op): registers it by name and makes Tensor
    methods `names` record through it (its `record`)."""
    def decorate(cls):
        if cls.__name__ in FUNCTIONS:
            raise ValueError(f"two built-in Functions are named {cls.__name__}")
        FUNCTIONS[cls.__name__] = cls
        register(names, cls.record)
        return cls
    return decorate


def _swapped(recorder):
    def reflected(self, other):
        return recorder(other, self)
    return reflected


def needs_grad(args):
    """Does any Tensor among `args` (lists/tuples in them flattened one level) require grad?"""
    for a in args:
        if isinstance(a, Tensor):
            if a.requires_grad:
                return True
        elif isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, Tensor) and b.requires_grad:
                    return True
    return False


def recording(args):
    """Whether an op on `args` must record: grad mode is on and an argument requires grad."""
    return is_grad_enabled() and needs_grad(args)


def install(tensor_cls):
    """Give tensor_cls a recording wrapper for every registered method, over the raw TensorBase op of the
    same name (properties such as `T` stay properties). A name TensorBase lacks raises: a table row for
    an op that does not exist is a bug."""
    for name, recorder in RECORDERS.items():
        attr = next((c.__dict__[name] for c in TensorBase.__mro__ if name in c.__dict__), None)
        if attr is None:
            raise AttributeError(f"autograd registers Tensor.{name}, but TensorBase has no raw op {name}")
        raw = attr.fget if isinstance(attr, property) else attr

        def method(self, *args, _raw=raw, _record=recorder, _mode=_GRAD_MODE, **kwargs):
            # every op call passes here (the hot path): the cheap tests first, needs_grad only with arguments;
            # _mode[0] is is_grad_enabled() without the call
            if _mode[0] and (self.requires_grad or (args and needs_grad(args))
                             or (kwargs and needs_grad(kwargs.values()))):
                return _record(self, *args, **kwargs)
            return _raw(self, *args, **kwargs)

        method.__name__ = method.__qualname__ = name
        method.__doc__ = raw.__doc__
        # the raw op's signature and type hints are the method's (inspect.signature follows __wrapped__)
        method.__wrapped__, method.__annotations__ = raw, raw.__annotations__
        setattr(tensor_cls, name, property(method) if isinstance(attr, property) else method)
