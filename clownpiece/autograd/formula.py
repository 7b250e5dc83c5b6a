"""Gradients as data: a `Row` is a differentiable op whose backward is one formula per input, in the
spirit of PyTorch's tools/autograd/derivatives.yaml. The row

    Row("Exp", "exp", self=lambda grad, result: grad * result)

reads: Function `Exp` records Tensor.exp; the gradient with respect to the input `self` is grad * result.
The forward is the raw TensorBase op of the first method name (or `forward=`), and the names in the op's
signature name its inputs. A formula's parameter names say what the forward keeps for it:

    grad           the incoming gradient (always the first parameter)
    result         the op's output (kept as a shallow copy: the node must not own its own output)
    <arg>          a forward argument by its signature name: an input tensor, a number, a dim, a shape...
    <arg>_shape    that argument's shape (() for a number); the tensor itself is not kept
    <arg>_dtype    its dtype (<arg>_device: its device)

so nothing else stays alive until backward. The forward keeps only what the formulas of the inputs that
require grad take (`x * c` with only x requiring grad keeps c, not x), and remembers the version counter of
every tensor it keeps (backward refuses a tensor overwritten in place since). A formula runs only for an
input that requires grad, under no_grad, and may call helpers (they sit next to the rows, in
autograd/functions/<family>.py).
`broadcasts=True` sums each gradient back to its input's shape (elementwise ops with broadcasting).
A Row is a Function subclass named as given; clownpiece.autograd.function exposes it by that name."""
import inspect

from .._tensor import TensorBase
from ..ops import half as _half
from .autograd import Function, _shallow
from .methods import differentiable

_VAR_POSITIONAL, _KEYWORD_ONLY = inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.KEYWORD_ONLY
_VAR_KEYWORD, _POSITIONAL_OR_KEYWORD = inspect.Parameter.VAR_KEYWORD, inspect.Parameter.POSITIONAL_OR_KEYWORD


class Op(Function):
    """Base of the built-in ops: backward may return only the leading gradients (the rest are None)."""
    _pad_grads = True
    # How an op whose kernels are float32/float64 only takes a float16 input (ops/half.py): None (it takes
    # float16 itself, or refuses it), "same" (computed in float32 through recorded casts; its other floating
    # inputs must be float16 too) or "mixed" (likewise, and float32 weights may join a float16 input)
    half_in_float32 = None

    @classmethod
    def record(cls, *args, **kwargs):
        """What a recording Tensor method calls: apply() on a fresh node."""
        if cls.half_in_float32 is not None and args and _half.is_half(args[0]):
            return _half.through_float32(lambda *a, **k: cls()._record(*a, **k), args, kwargs,
                                         mixed=cls.half_in_float32 == "mixed")
        return cls()._record(*args, **kwargs)


class Formula(Op):
    """A Function made from a Row (see the module docstring). Class attributes, set by Row:"""
    _op = None       # the forward: the raw op
    # what forward keeps, one entry per formula parameter (key): the argument at `pos` or keyword `name`
    # (else `default`), or what get(args, kwargs, out) returns (the result, *varargs, keyword-only); `attr`
    # "shape"/"dtype" keeps only that of it
    _keeps = ()      # ((key, pos, name, default, get, attr), ...)
    _keeps_for = None  # ctx.needs_input_grad -> the entries of _keeps the needed formulas take (a dict per class)
    _inputs = ()     # ((position, formula, keys after grad, shape key or None), ...), one per input with a formula
    _arity = 0       # positional parameters of the forward, up to the last input with a formula
    _positional = ()   # names of the forward's positional-or-keyword parameters, in order
    _keyword_inputs = frozenset()  # inputs with a formula that a caller may pass by keyword

    @classmethod
    def forward(cls, ctx, *args, **kwargs):
        keeps = cls._keeps_for.get(ctx.needs_input_grad)
        if keeps is None:
            keeps = cls._plan_keeps(ctx.needs_input_grad)
        out = cls._op(*args, **kwargs)
        cls._keep_values(ctx, keeps, args, kwargs, out)
        return out

    @classmethod
    def _keep_values(cls, ctx, keeps, args, kwargs, out):
        # runs once per recorded op: a plain loop, no call per kept value
        kept, tensors, versions, n = {}, [], [], len(args)
        for key, pos, name, default, get, attr in keeps:
            v = get(args, kwargs, out) if get is not None else args[pos] if pos < n else kwargs.get(name, default)
            if attr is not None:
                is_tensor = isinstance(v, TensorBase)
                v = (v._shape if is_tensor else ()) if attr == "shape" else (getattr(v, attr) if is_tensor else None)
            elif isinstance(v, TensorBase):
                tensors.append(v)
                versions.append(v._storage._version)
            kept[key] = v
        ctx.saved_values = kept
        ctx.saved_tensors = tensors  # what backward without retain_graph frees
        ctx.saved_versions = versions

    @classmethod
    def _plan_keeps(cls, needs):
        """The entries of _keeps that the formulas of the inputs marked in `needs` take (all of them when
        `needs` is empty: course code calling forward and backward by hand)."""
        if needs:
            keys = set()
            for pos, _, formula_keys, shape_key in cls._inputs:
                if pos < len(needs) and needs[pos]:
                    keys.update(formula_keys)
                    if shape_key:
                        keys.add(shape_key)
            keeps = tuple(k for k in cls._keeps if k[0] in keys)
        else:
            keeps = cls._keeps
        cls._keeps_for[needs] = keeps
        return keeps

    @classmethod
    def backward(cls, ctx, grad):
        kept = ctx.saved_values
        needs = ctx.needs_input_grad  # empty when course code calls backward(ctx, g) by hand: compute all
        grads = [None] * (len(needs) if needs else cls._arity)
        for pos, formula, keys, shape_key in cls._inputs:
            if pos < len(grads) and (not needs or needs[pos]):
                g = formula(grad, *map(kept.__getitem__, keys))
                grads[pos] = g if shape_key is None else _reduce_to(g, kept[shape_key])
        return grads

    @classmethod
    def record(cls, *args, **kwargs):
        """apply(), with inputs passed by keyword moved to their positions (see _positional_inputs)."""
        if kwargs:
            args, kwargs = cls._positional_inputs(args, kwargs)
        return cls()._record(*args, **kwargs)

    @classmethod
    def _positional_inputs(cls, args, kwargs):
        """Inputs passed by keyword (x.masked_fill(mask, value=v)) moved to their positions, so that they get
        a gradient edge (Function.apply gives keyword arguments none)."""
        if kwargs and not cls._keyword_inputs.isdisjoint(kwargs):
            args, kwargs = list(args), dict(kwargs)
            for name in cls._positional[len(args):]:
                if name not in kwargs:
                    break
                args.append(kwargs.pop(name))
        return args, kwargs


def _reduce_to(g, shape):
    """The gradient of broadcasting an input of `shape` up to g's shape."""
    return g if g._shape == shape else g.sum_to(shape)


def _raw_op(name):
    """The TensorBase method `name` (the function under a property such as `T`)."""
    attr = next((c.__dict__[name] for c in TensorBase.__mro__ if name in c.__dict__), None)
    if attr is None:
        raise AttributeError(f"gradient row: TensorBase has no op {name}")
    return attr.fget if isinstance(attr, property) else attr


def _keep(params, key, row):
    """The _keeps entry (key, pos, name, default, get, attr) for formula parameter `key`."""
    if key == "result":
        return key, 0, None, None, lambda args, kwargs, out: _shallow(out), None
    name, attr = key, None
    if key not in params:
        name, _, attr = key.rpartition("_")
        if name not in params or attr not in ("shape", "dtype", "device"):
            raise TypeError(f"gradient row {row}: a formula takes {key!r}, which is not grad, result, an "
                            f"argument of the forward ({', '.join(params)}) or <argument>_shape/_dtype/_device")
    pos, p = list(params).index(name), params[name]
    default = None if p.default is p.empty else p.default
    get = None
    if p.kind is _VAR_POSITIONAL:
        get = lambda args, kwargs, out: args[pos:]  # noqa: E731
    elif p.kind is _VAR_KEYWORD:
        get = lambda args, kwargs, out: kwargs  # noqa: E731
    elif p.kind is _KEYWORD_ONLY:
        get = lambda args, kwargs, out: kwargs.get(name, default)  # noqa: E731
    return key, pos, name, default, get, attr


def Row(name, methods="", forward=None, broadcasts=False, kind=Formula, **formulas):
    """A Function `name` for Tensor methods `methods` (space-separated; `__r*__` operators are recorded with
    their operands swapped) whose gradient w.r.t. each input is formulas[<input name>]. `kind` is the
    Formula subclass to make (autograd/inplace.py's InplaceFormula for in-place ops). Checked here, at
    import time: every formula parameter must name something the forward can keep."""
    op = forward or _raw_op(methods.split()[0])
    params = inspect.signature(op).parameters
    keeps, inputs = {}, []
    for input_name, formula in formulas.items():
        if input_name not in params or params[input_name].kind in (_VAR_POSITIONAL, _VAR_KEYWORD, _KEYWORD_ONLY):
            raise TypeError(f"gradient row {name}: {input_name!r} is not a positional input of the forward "
                            f"({', '.join(params)})")
        keys = list(inspect.signature(formula).parameters)
        if keys[:1] != ["grad"]:
            raise TypeError(f"gradient row {name}: the formula for {input_name!r} must take grad first")
        shape_key = f"{input_name}_shape" if broadcasts else None
        for key in keys[1:] + ([shape_key] if shape_key else []):
            keeps[key] = _keep(params, key, name)
        pos = list(params).index(input_name)
        inputs.append((pos, formula, tuple(keys[1:]), shape_key))
    cls = type(name, (kind,), {
        "__doc__": f"Gradient-table row (autograd/formula.py) for Tensor {methods or name}.",
        "__module__": inspect.currentframe().f_back.f_globals["__name__"],
        "_op": staticmethod(op), "_keeps": tuple(keeps.values()), "_inputs": tuple(inputs), "_keeps_for": {},
        "_arity": max(pos for pos, *_ in inputs) + 1,
        "_positional": tuple(n for n, p in params.items() if p.kind is _POSITIONAL_OR_KEYWORD),
        "_keyword_inputs": frozenset(n for n in formulas if params[n].kind is _POSITIONAL_OR_KEYWORD)})
    return differentiable(methods)(cls)
