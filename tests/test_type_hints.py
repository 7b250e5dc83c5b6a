"""The public API carries complete, valid PEP 484 type hints.

For every public class of the modules below, each public method (and __init__, properties' getters and
setters) defined in the package, and for every public function, every parameter other than self/cls and the
return must be annotated, and typing.get_type_hints must resolve all of them: a misspelled name, or a name
used only in an annotation and never imported, fails here instead of in a user's type checker or IDE."""
from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Any, Callable, Iterator, Optional

import pytest

import clownpiece.autograd
import clownpiece.factories
import clownpiece.linalg
import clownpiece.nn as nn
import clownpiece.nn.init
import clownpiece.nn.parallel
import clownpiece.nn.utils
import clownpiece.utils.data as data
import clownpiece.utils.optim as optim
from clownpiece import serialization

# the special methods users call through syntax: construction, calls, indexing, len, iteration, conversions
# and the operators
PROTOCOL = {"__init__", "__call__", "__getitem__", "__setitem__", "__delitem__", "__len__", "__iter__",
            "__contains__", "__bool__", "__float__", "__int__", "__index__", "__array__", "__neg__", "__pos__",
            "__abs__", "__invert__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"} | {
    f"__{r}{op}__" for r in ("", "r") for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow",
                                                 "matmul", "and", "or", "xor", "lshift", "rshift")}


def _functions_of(klass: type, package: str) -> Iterator[tuple[str, Callable[..., Any], bool]]:
    """(qualified name, function, is_method) for the public methods (and PROTOCOL's) that `klass` and its
    bases from `package` define; a method an override replaces is not checked twice."""
    seen = set()
    for owner in klass.__mro__:
        if not owner.__module__.startswith(package):
            continue
        for name, attr in vars(owner).items():
            if name in seen or (name.startswith("_") and name not in PROTOCOL):
                continue
            seen.add(name)
            if isinstance(attr, property):
                candidates = [(f"{name}.getter", attr.fget, True), (f"{name}.setter", attr.fset, True)]
            elif isinstance(attr, staticmethod):
                candidates = [(name, attr.__func__, False)]
            elif isinstance(attr, classmethod):
                candidates = [(name, attr.__func__, True)]
            else:
                candidates = [(name, attr, True)]
            for label, fn, is_method in candidates:
                if isinstance(fn, types.FunctionType) and fn.__module__.startswith("clownpiece"):
                    yield f"{owner.__module__}.{owner.__qualname__}.{label}", fn, is_method


def public_api(module: types.ModuleType, package: str, exclude: tuple[str, ...] = (),
               only: Optional[tuple[str, ...]] = None) -> list[tuple[str, Callable[..., Any], bool]]:
    """Every public function and public class method that `module` exports (its __all__, else its public
    names; `only`: just those names) and `package` defines, except what the modules in `exclude` define."""
    names = only or getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    found, ids = [], set()
    for name in names:
        value = getattr(module, name)
        if getattr(value, "__module__", None) in exclude:
            continue
        if isinstance(value, type) and value.__module__.startswith(package):
            entries = list(_functions_of(value, package))
        elif isinstance(value, types.FunctionType) and value.__module__.startswith(package):
            entries = [(f"{value.__module__}.{value.__qualname__}", value, False)]
        elif isinstance(value, functools.partial) and value.__module__.startswith(package):  # the factories
            entries = [(f"{value.__module__}.{name}", value, False)]
        else:
            continue
        for entry in entries:
            if id(entry[1]) not in ids:
                ids.add(id(entry[1]))
                found.append(entry)
    return found


def hint_problems(label: str, fn: Callable[..., Any], is_method: bool,
                  localns: Optional[dict[str, Any]] = None) -> list[str]:
    """What is missing or unresolvable in `fn`'s annotations (empty when all is well)."""
    problems = []
    params = list(inspect.signature(fn).parameters.values())
    if is_method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    problems += [f"{label}: parameter '{p.name}' has no annotation" for p in params
                 if p.annotation is inspect.Parameter.empty]
    if inspect.signature(fn).return_annotation is inspect.Signature.empty:
        problems.append(f"{label}: no return annotation")
    try:
        typing.get_type_hints(fn, localns=localns)
    except Exception as e:
        problems.append(f"{label}: annotations do not resolve ({type(e).__name__}: {e})")
    return problems


# group -> (the walk, the fewest functions it must find: a walk that finds nothing would pass)
GROUPS = {
    "optim": (lambda: public_api(optim, "clownpiece.utils.optim"), 40),
    # modules, containers, layers, losses and their bases
    "nn": (lambda: public_api(nn, "clownpiece.nn"), 100),
    "nn.functional": (lambda: public_api(nn.functional, "clownpiece"), 50),
    "nn.init": (lambda: public_api(clownpiece.nn.init, "clownpiece.nn.init"), 10),
    "nn.parallel": (lambda: public_api(clownpiece.nn.parallel, "clownpiece.nn.parallel"), 3),
    "nn.utils": (lambda: public_api(clownpiece.nn.utils, "clownpiece.nn.utils"), 4),
    "serialization": (lambda: public_api(serialization, "clownpiece.serialization"), 2),
    "data": (lambda: public_api(data, "clownpiece.utils.data"), 30),
    "data.datasets": (lambda: public_api(data.datasets, "clownpiece.utils.data"), 10),
    "data.transforms": (lambda: public_api(data.transforms, "clownpiece.utils.data.transforms"), 10),
    # Tensor and TensorBase: the raw ops (ops/*.py mixins), the recording wrappers (which carry their raw op's
    # hints), the class-method factories, backward
    "tensor": (lambda: public_api(clownpiece, "clownpiece", only=("TensorBase", "Tensor")), 200),
    "factories": (lambda: public_api(clownpiece.factories, "clownpiece"), 20),
    # the top-level functions (grad mode, differentiable stack/cat/where, save/load) and autograd's
    "clownpiece": (lambda: public_api(clownpiece, "clownpiece", only=(
        "backward", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "stack", "cat", "broadcast",
        "broadcast_tensors", "where", "save", "load", "device", "synchronize")), 15),
    "linalg": (lambda: public_api(clownpiece.linalg, "clownpiece.linalg"), 3),
    "autograd": (lambda: public_api(clownpiece.autograd, "clownpiece", exclude=("clownpiece.autograd.function",)),
                 12),
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_public_api_is_annotated(group: str) -> None:
    walk, fewest = GROUPS[group]
    entries = walk()
    assert len(entries) >= fewest, f"{group}: the walk found only {len(entries)} functions"
    problems = [p for label, fn, is_method in entries for p in hint_problems(label, fn, is_method)]
    assert not problems, f"{len(problems)} missing or broken type hints:\n  " + "\n  ".join(problems)


# ---- the checker itself can fail ------------------------------------------------------------------------
def _bare(x, y=1):
    return x


def _no_return(x: int):
    return x


def _dangling(x: NoSuchName) -> int:  # noqa: F821 (the point: a name that does not resolve)
    return 0


def _fine(self, x: int, *rest: float, scale: Optional[float] = None, **options: Any) -> list[int]:
    return [x]


def test_checker_reports_missing_and_unresolvable_hints() -> None:
    assert hint_problems("bare", _bare, False) == ["bare: parameter 'x' has no annotation",
                                                   "bare: parameter 'y' has no annotation",
                                                   "bare: no return annotation"]
    assert hint_problems("no_return", _no_return, False) == ["no_return: no return annotation"]
    [problem] = hint_problems("dangling", _dangling, False)
    assert problem.startswith("dangling: annotations do not resolve (NameError")
    assert hint_problems("fine", _fine, True) == []
    assert hint_problems("fine", _fine, False) == ["fine: parameter 'self' has no annotation"]


def test_walk_finds_methods_properties_and_overrides() -> None:
    entries = public_api(optim, "clownpiece.utils.optim")
    labels = {label for label, _, _ in entries}
    assert "clownpiece.utils.optim.optimizer.Adam.__init__" in labels
    assert "clownpiece.utils.optim.optimizer.Optimizer.zero_grad" in labels
    assert "clownpiece.utils.optim.lr_policies.ReduceLROnPlateau.in_cooldown.getter" in labels
    assert "clownpiece.utils.optim.lr_base.LRScheduler.get_last_lr" in labels
    assert "clownpiece.utils.optim.lr_policies._SchedulerList.state_dict" in labels  # a private base's public method
    assert {fn.__name__ for _, fn, _ in entries if fn.__name__.startswith("_")} == {"__init__"}  # private: skipped
    labels = {label for label, _, _ in public_api(nn, "clownpiece.nn")}
    assert {"clownpiece.nn.containers.ModuleDict.__getitem__", "clownpiece.nn.module.Module.__call__"} <= labels
    assert "clownpiece.nn.module.Module._call_with_hooks" not in labels
    labels = {label for label, _, _ in GROUPS["tensor"][0]()}
    assert {"clownpiece._tensor.Tensor.exp", "clownpiece._tensor.Tensor.backward", "clownpiece._tensor.Tensor.T.getter",
            "clownpiece._tensor.TensorBase.zeros", "clownpiece.ops.elementwise.ElementwiseOps.__add__",
            "clownpiece._tensor.Tensor.__getitem__"} <= labels


def test_tensor_methods_and_factories_show_their_real_signatures() -> None:
    # a recording method is a (*args, **kwargs) wrapper: it carries its raw op's signature and hints
    for name in ("sum", "reshape", "__add__", "masked_fill", "clamp"):
        method, raw = getattr(clownpiece.Tensor, name), getattr(clownpiece.TensorBase, name)
        assert method is not raw and inspect.signature(method) == inspect.signature(raw)
        assert typing.get_type_hints(method) == typing.get_type_hints(raw)
    # a factory is a partial of a function of the result class: help() shows it without cls, with device=
    signature = inspect.signature(clownpiece.zeros)
    assert list(signature.parameters) == ["shape", "dtype", "requires_grad", "device"]
    assert typing.get_type_hints(clownpiece.zeros)["return"] is clownpiece.Tensor
    assert list(inspect.signature(clownpiece.Tensor.ones).parameters) == ["shape", "dtype", "requires_grad", "device"]
