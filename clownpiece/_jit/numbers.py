"""Traced numbers: how a Python float given to a captured function reaches kernel arguments at every replay.

During a recording each float argument is replaced by a `Traced` float with the same value and an
expression saying where it came from (`("arg", i)`). Arithmetic on it (`-lr`, `1.0 - lr * wd`, `lr / 2`)
gives new Traced floats whose value is exactly what plain float arithmetic gives and whose expression
records the operation; ops pass them to kernels unconverted (backend.kernel_number), where the recorder
finds them among the arguments. A replay evaluates the expressions with the new arguments, so a learning
rate that changes every call reaches every kernel that used it, bit for bit as eager execution would.

Decisions made on a traced value become guards: `lr > 0`, `bool(lr)`, `int(lr)`, `round(lr)` return
plain results and record (expression, result); a replay whose arguments change any of them captures
again. Values from `backend.replayable` (random counters, optimizer step counts) are traced the same way
(`("host", call, position)`) but may not be branched on.

Where a value leaves Python arithmetic (`math.exp(lr)`, `float(lr)`, numpy) its trace is lost and the
kernel argument would be a constant; the capture notices when that constant differs between its two
recordings (and a float that did not change between them is guarded as a constant), so a lost trace
raises JitError instead of replaying a stale number."""
import math
import operator

from .errors import JitError


class Trace:
    """One recording's traced numbers: guards (decisions on them) and the replayable host calls made."""

    def __init__(self):
        self.active = True
        self.guards = []  # (expression, result)
        self.host_calls = []  # (fn, args) in call order


def _expr(trace, v):
    """v's expression in `trace`: its own if it is traced there, else a constant."""
    if type(v) is Traced and v.trace is trace:
        return v.expr
    return ("const", float(v) if isinstance(v, float) else v)


def _plain(v):
    return float(v) if type(v) is Traced else v


def _binary(name, op, reflected=False):
    def method(self, other):
        if not isinstance(other, (int, float)):
            return NotImplemented
        a, b = (other, self) if reflected else (self, other)
        value = op(_plain(a), _plain(b))
        trace = self.trace
        if not trace.active or not isinstance(value, float):
            return value
        return Traced(value, (name, _expr(trace, a), _expr(trace, b)), trace)
    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


def _unary(name, op):
    def method(self):
        value = op(float(self))
        if not self.trace.active:
            return value
        return Traced(value, (name, self.expr), self.trace)
    method.__name__ = f"__{name}__"
    return method


def _decision(name, op):
    def method(self, *other):
        result = op(float(self), *(_plain(o) for o in other))
        trace = self.trace
        if trace.active:
            expr = (name, self.expr) + tuple(_expr(trace, o) for o in other)
            if _has_host(expr):
                raise JitError(f"clownpiece.jit: a value from backend.replayable (a random counter or an "
                               f"optimizer's step count) was used in a decision ({name}); such values can only "
                               f"be passed to kernels")
            trace.guards.append((expr, result))
        return result
    method.__name__ = f"__{name}__"
    return method


_OPS = dict(add=operator.add, sub=operator.sub, mul=operator.mul, truediv=operator.truediv,
            floordiv=operator.floordiv, mod=operator.mod, pow=operator.pow)
_UNARY = dict(neg=operator.neg, pos=operator.pos, abs=abs)
_DECISIONS = dict(lt=operator.lt, le=operator.le, gt=operator.gt, ge=operator.ge, eq=operator.eq, ne=operator.ne,
                  bool=bool, int=int, trunc=math.trunc, floor=math.floor, ceil=math.ceil, round=round)


class Traced(float):
    """A float argument of a captured function (or a number computed from one) with its expression."""
    __slots__ = ("expr", "trace")

    def __new__(cls, value, expr, trace):
        self = float.__new__(cls, value)
        self.expr = expr
        self.trace = trace
        return self

    def __reduce__(self):  # copies and saved state get the plain number
        return float, (float(self),)

    __hash__ = float.__hash__

    def __repr__(self):
        return float.__repr__(self)

    __str__ = __repr__


for _name, _op in _OPS.items():
    setattr(Traced, f"__{_name}__", _binary(_name, _op))
    setattr(Traced, f"__r{_name}__", _binary(_name, _op, reflected=True))
for _name, _op in _UNARY.items():
    setattr(Traced, f"__{_name}__", _unary(_name, _op))
for _name, _op in _DECISIONS.items():
    setattr(Traced, f"__{_name}__", _decision(_name, _op))


def _round(self, ndigits=None):
    result = round(float(self)) if ndigits is None else round(float(self), ndigits)
    trace = self.trace
    if trace.active:
        trace.guards.append((("round", self.expr, ("const", ndigits)), result))
    return result


Traced.__round__ = _round


class HostInt(int):
    """An integer from backend.replayable (a random counter word, a step count): a kernel argument that a
    replay recomputes by calling the same function again."""

    def __new__(cls, value, expr, trace):
        self = int.__new__(cls, value)
        self.expr = expr
        self.trace = trace
        return self

    def __reduce__(self):
        return int, (int(self),)


def _refuse(name):
    def method(self, *other):
        if self.trace.active:
            raise JitError(f"clownpiece.jit: a value from backend.replayable (a random counter or an optimizer's "
                           f"step count) was used in a decision or in arithmetic ({name}); such values can "
                           f"only be passed to kernels")
        return getattr(int, f"__{name}__")(int(self), *other)
    method.__name__ = f"__{name}__"
    return method


for _name in ("lt", "le", "gt", "ge", "eq", "ne", "bool", "add", "radd", "sub", "rsub", "mul", "rmul",
              "floordiv", "mod", "truediv", "pow", "neg", "and", "or", "xor", "rshift", "lshift"):
    setattr(HostInt, f"__{_name}__", _refuse(_name))
HostInt.__hash__ = int.__hash__


def host_values(trace, call, values):
    """`values` (a replayable call's results) as traced numbers of `trace`."""
    out = []
    for j, v in enumerate(values):
        expr = ("host", call, j)
        if isinstance(v, float):
            out.append(Traced(v, expr, trace))
        elif isinstance(v, int) and not isinstance(v, bool):
            out.append(HostInt(v, expr, trace))
        else:
            raise TypeError(f"backend.replayable: {v!r} is not a number")
    return tuple(out)


def _has_host(expr):
    if expr[0] == "host":
        return True
    return any(type(e) is tuple and _has_host(e) for e in expr[1:])


# ---- evaluation at replay -------------------------------------------------------------------------------
_SYMBOLS = dict(add="+", sub="-", mul="*", truediv="/", floordiv="//", mod="%", pow="**")
_UNARY_SYMBOLS = dict(neg="-", pos="+")


class Compiled:
    """Expressions compiled into one Python function f(args, host) -> tuple of values (one per expression),
    with constants passed by position so that every value round-trips exactly."""

    def __init__(self, exprs):
        consts = []

        def src(e):
            kind = e[0]
            if kind == "arg":
                return f"a[{e[1]}]"
            if kind == "host":
                return f"h[{e[1]}][{e[2]}]"
            if kind == "const":
                consts.append(e[1])
                return f"c[{len(consts) - 1}]"
            if kind in _SYMBOLS:
                return f"({src(e[1])} {_SYMBOLS[kind]} {src(e[2])})"
            if kind in _UNARY_SYMBOLS:
                return f"({_UNARY_SYMBOLS[kind]}{src(e[1])})"
            if kind in _COMPARE:
                return f"({src(e[1])} {_COMPARE[kind]} {src(e[2])})"
            if kind in _CALLS:
                return f"{_CALLS[kind]}({', '.join(src(x) for x in e[1:])})"
            raise AssertionError(kind)

        body = ", ".join(src(e) for e in exprs)
        fn = eval(f"lambda a, h: ({body}{',' if exprs else ''})",  # noqa: S307 (source built above)
                  {"c": consts, "abs": abs, "bool": bool, "int": int, "round": _eval_round, "trunc": math.trunc,
                   "floor": math.floor, "ceil": math.ceil})
        self.fn = fn

    def __call__(self, args, host):
        return self.fn(args, host)


_COMPARE = dict(lt="<", le="<=", gt=">", ge=">=", eq="==", ne="!=")
_CALLS = dict(abs="abs", bool="bool", int="int", trunc="trunc", floor="floor", ceil="ceil", round="round")


def _eval_round(x, ndigits=None):
    return round(x) if ndigits is None else round(x, ndigits)
