"""Parameter, Buffer and Module: the registration, traversal, state-dict and repr machinery every layer
builds on (docs/api.md, nn)."""
from __future__ import annotations

import itertools
import numbers
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator, Mapping, Optional, TypeVar

import numpy as np

from .._grad_mode import no_grad
from .._tensor import Tensor, TensorBase
from .._types import DTypeLike
from ..autograd.autograd import zero_grads
from ..autograd.hooks import RemovableHandle
from ..backend import dtypes
from ..ops.shape import _to_arguments

_hook_ids = itertools.count()

# what load_state_dict returns (PyTorch's name and fields; unpacks as (missing, unexpected))
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

M = TypeVar("M", bound="Module")  # methods that return self keep the caller's class (Sequential.eval() is one)


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable: shares `data`'s storage and always requires grad
    (even under no_grad, as in PyTorch)."""

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        Tensor.__init__(self, data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __deepcopy__(self, memo):  # copy.deepcopy(module) keeps its parameters Parameters
        with no_grad():
            out = Parameter(self.clone(), requires_grad=self.requires_grad)
        memo[id(self)] = out
        return out


class Buffer(Tensor):
    """A Tensor that a Module registers as state that is not trained (running statistics). A buffer with
    persistent=False is part of the module but not of its state_dict (PyTorch's nn.Buffer)."""

    def __init__(self, data: Any = None, *, persistent: bool = True) -> None:
        Tensor.__init__(self, data, requires_grad=False)
        self.persistent = bool(persistent)

    def __deepcopy__(self, memo):
        with no_grad():
            out = Buffer(self.clone(), persistent=self.persistent)
        memo[id(self)] = out
        return out


def new_parameter(shape: tuple[int, ...], dtype: DTypeLike = None) -> Parameter:
    """An uninitialised Parameter of `shape` (callers fill it through nn.init)."""
    return Parameter(Tensor._empty(tuple(shape), Tensor._check_dtype(dtype)))


def new_buffer(shape: tuple[int, ...], value: float, dtype: DTypeLike = None, persistent: bool = True) -> Buffer:
    """A Buffer of `shape` filled with `value`."""
    return Buffer(Tensor._empty(tuple(shape), Tensor._check_dtype(dtype)).fill_(value), persistent=persistent)


class Module:
    """Base class of all layers. Subclasses call `super().__init__()` before assigning attributes."""

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ---- registration ---------------------------------------------------------------------------
    def _registries(self):
        try:
            return self.__dict__["_parameters"], self.__dict__["_buffers"], self.__dict__["_modules"]
        except KeyError:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes"
                               ) from None

    def _forget(self, name):
        """Drop any registration or plain attribute called `name` (re-assignment replaces it)."""
        for registry in self._registries():
            registry.pop(name, None)
        self.__dict__.pop(name, None)
        self.__dict__.get("_non_persistent_buffers", set()).discard(name)

    def _set_buffer(self, name, buffer, persistent):
        self._forget(name)
        self._registries()[1][name] = buffer
        if not persistent:
            self._non_persistent_buffers.add(name)

    def __setattr__(self, name: str, value: Any) -> None:
        params, buffers, modules = self._registries()
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Buffer):
            self._set_buffer(name, value, value.persistent)
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in buffers and (value is None or isinstance(value, TensorBase)):
            # PyTorch rule: a plain tensor assigned to a buffer's name stays a buffer
            buffers[name] = value if value is None or isinstance(value, Buffer) else Buffer(value)
        elif name in params and (value is None or isinstance(value, TensorBase)):
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to parameter '{name}' of "
                                f"{type(self).__name__}: wrap it in nn.Parameter (or assign None)")
            params[name] = None  # disables an optional parameter (appears as None in state_dict)
        elif name in modules and value is None:
            modules[name] = None
        else:
            self._forget(name)
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        params, buffers, modules = self._registries()
        for registry in (params, buffers, modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._forget(name)
        self._registries()[0][name] = param

    def register_buffer(self, name: str, buffer: Optional[TensorBase], persistent: bool = True) -> None:
        """A tensor (wrapped as a Buffer) or None registered as state; persistent=False keeps it out of
        state_dict (PyTorch)."""
        if buffer is not None and not isinstance(buffer, TensorBase):
            raise TypeError(f"register_buffer: '{name}' must be a tensor or None, got {type(buffer).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: buffer name must be a non-empty string without '.', got {name!r}")
        buffer = buffer if buffer is None or isinstance(buffer, Buffer) else Buffer(buffer)
        self._set_buffer(name, buffer, persistent)

    def register_module(self, name: str, module: Optional[Module]) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"register_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self._registries()[2][name] = module

    register_modules = register_module  # the course tutorial's spelling
    add_module = register_module

    # ---- traversal ------------------------------------------------------------------------------
    def named_modules(self, recursive: bool = True, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(name, module) for self (name '') and, when recursive, every descendant, depth-first."""
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            path = f"{prefix}.{name}" if prefix else name
            if recursive:
                yield from child.named_modules(True, path)
            else:
                yield path, child

    def modules(self, recursive: bool = True) -> Iterator[Module]:
        for _, m in self.named_modules(recursive):
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def apply(self: M, fn: Callable[[Module], Any]) -> M:
        """Call fn(module) on every descendant (children first) and then on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def get_submodule(self, target: str) -> Module:
        """The descendant at dotted path `target` ('' is self)."""
        module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule '{part}' (looking up '{target}')")
            module = child
        return module

    def _named_members(self, registry, recursive):
        modules = self.named_modules() if recursive else [("", self)]
        for prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is not None:
                    yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recursive: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter): own parameters in registration order, then each child's; disabled
        (None) parameters are skipped."""
        return self._named_members("_parameters", recursive)

    def parameters(self, recursive: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recursive):
            yield p

    def named_buffers(self, recursive: bool = True) -> Iterator[tuple[str, Buffer]]:
        return self._named_members("_buffers", recursive)

    def buffers(self, recursive: bool = True) -> Iterator[Buffer]:
        for _, b in self.named_buffers(recursive):
            yield b

    # ---- modes and gradients --------------------------------------------------------------------
    def train(self: M, flag: bool = True) -> M:
        for m in self.modules():
            object.__setattr__(m, "training", bool(flag))
        return self

    def eval(self: M) -> M:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads(self.parameters(), set_to_none)

    def to(self: M, *args: Any, **kwargs: Any) -> M:
        """Move and/or convert every parameter and buffer in place (the same Python objects, so optimizers
        and state_dict keep seeing them): Tensor.to's forms, to(dtype), to(device), to(device, dtype).
        A dtype must be floating and converts only the floating tensors (integer and bool buffers keep
        their dtype, as in PyTorch). A move to another device moves the gradients along; a dtype change
        drops them."""
        device, dtype, _ = _to_arguments(args, kwargs)
        if dtype is not None:
            dtype = Tensor._check_dtype(dtype)
            if not dtypes.is_floating(dtype):
                raise TypeError(f"Module.to: only floating dtypes are accepted, got {dtype.name}")
        with no_grad():
            for t in list(self.parameters()) + list(self.buffers()):
                converted = TensorBase.to(t, device, dtype if dtypes.is_floating(t.dtype) else None)
                if converted is t:
                    continue
                grad = t.grad
                t._set_view(converted._storage, converted._shape, converted._strides, converted._offset,
                            converted.dtype)
                t.grad = None if grad is None or grad.dtype != t.dtype else TensorBase.to(grad, t.device)
        return self

    def double(self: M) -> M:
        return self.to(np.float64)

    def float(self: M) -> M:
        return self.to(np.float32)

    def half(self: M) -> M:
        return self.to(np.float16)

    def requires_grad_(self: M, requires_grad: bool = True) -> M:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ---- forward --------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        d = self.__dict__
        if d.get("_forward_pre_hooks") or d.get("_forward_hooks"):
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    # ---- hooks (PyTorch's forward and forward-pre hooks) ------------------------------------------
    def _add_hook(self, registry, hook, prepend, entry, what):
        if not callable(hook):
            raise TypeError(f"{what}: hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.get(registry)
        if hooks is None:  # a module whose __init__ predates hooks (unpickled, or built by hand)
            hooks = OrderedDict()
            object.__setattr__(self, registry, hooks)
        key = next(_hook_ids)
        hooks[key] = entry
        if prepend:
            hooks.move_to_end(key, last=False)
        return RemovableHandle(hooks, key)

    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """hook(module, args) runs before forward and may return new args (a tuple, or one value that is
        wrapped in a tuple); with_kwargs=True: hook(module, args, kwargs) may return (args, kwargs).
        Returns a handle whose remove() unregisters it."""
        return self._add_hook("_forward_pre_hooks", hook, prepend, (hook, bool(with_kwargs)),
                              "register_forward_pre_hook")

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """hook(module, args, output) (or hook(module, args, kwargs, output) with with_kwargs=True) runs
        after forward and may return a replacement output; always_call=True runs it even when forward
        raised. Returns a handle whose remove() unregisters it."""
        return self._add_hook("_forward_hooks", hook, prepend, (hook, bool(with_kwargs), bool(always_call)),
                              "register_forward_hook")

    def _call_with_hooks(self, args, kwargs):
        for hook, with_kwargs in list(self._forward_pre_hooks.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"forward pre-hook {hook!r} (with_kwargs=True) must return None or a "
                                           f"tuple (new_args, new_kwargs), got {type(result).__name__}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        hooks = list(self._forward_hooks.values())
        try:
            out = self.forward(*args, **kwargs)
        except Exception:
            for hook, with_kwargs, always_call in hooks:
                if always_call:
                    try:
                        hook(self, args, kwargs, None) if with_kwargs else hook(self, args, None)
                    except Exception:
                        pass  # the forward's own error is the one to report
            raise
        for hook, with_kwargs, _ in hooks:
            result = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
            if result is not None:
                out = result
        return out

    # ---- state dict -----------------------------------------------------------------------------
    def state_dict(self, *, prefix: str = "") -> OrderedDict[str, Optional[Tensor]]:
        """Flat dict dotted name -> live tensor of every parameter and persistent buffer; disabled entries
        are None (course semantics). `prefix` is put before every key."""
        state = OrderedDict()
        for path, module in self.named_modules():
            skip = module.__dict__.get("_non_persistent_buffers", ())
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if registry is module._buffers and name in skip:
                        continue
                    state[prefix + (f"{path}.{name}" if path else name)] = value
        return state

    def _translate_state_dict(self, state, prefix):
        """Rename or split this module's entries of `state` (keys starting with `prefix`) from another
        layout into this module's own before loading; returns the (possibly new) dict. Layers whose
        PyTorch layout differs from the course's override it (MultiheadAttention's in_proj_weight)."""
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy `state_dict`'s values (tensors, numpy arrays, anything with __array__, or numbers for 0-dim
        entries) into this module's tensors in place, converting dtypes. strict: missing or unexpected
        keys and shape mismatches raise RuntimeError before anything is copied; non-strict skips them (the
        course's rule; PyTorch raises on a shape mismatch either way). The caller's dict is not changed.
        Returns IncompatibleKeys(missing_keys, unexpected_keys), which unpacks as a pair."""
        if not hasattr(state_dict, "items") or not hasattr(state_dict, "get"):
            raise TypeError(f"load_state_dict: expected a dict of name -> tensor or array, got "
                            f"{type(state_dict).__name__}")
        state = state_dict
        for path, module in self.named_modules():
            state = module._translate_state_dict(state, f"{path}." if path else "")
        own = self.state_dict()
        missing = [k for k, v in own.items() if v is not None and state.get(k) is None]
        unexpected = [k for k, v in state.items() if v is not None and own.get(k) is None]
        pairs, problems = [], []
        for key, dst in own.items():
            src = state.get(key)
            if dst is None or src is None:
                continue
            src, problem = _checkpoint_value(src, dst, key)
            if problem:
                problems.append(problem)
            else:
                pairs.append((dst, src))
        if strict and (missing or unexpected or problems):
            lines = ([f"missing key '{k}'" for k in missing] + [f"unexpected key '{k}'" for k in unexpected]
                     + problems)
            raise RuntimeError(f"load_state_dict for {type(self).__name__} failed:\n  " + "\n  ".join(lines))
        with no_grad():  # in-place writes into parameters are not recorded
            for dst, src in pairs:
                if not isinstance(src, TensorBase):  # host data: uploaded in the destination's dtype
                    src = Tensor(np.array(src, dtype=dst.dtype), dtype=dst.dtype)
                dst.copy_(src)
        return IncompatibleKeys(missing, unexpected)

    # ---- repr -----------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + _indent(repr(child)) for name, child in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([_indent(extra)] if extra else []) + lines
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"


def _checkpoint_value(src, dst, key):
    """(value to copy, None) for a checkpoint entry that fits `dst`, else (None, what is wrong)."""
    if isinstance(src, TensorBase):
        shape = src.shape
    elif isinstance(src, (np.ndarray, np.generic, numbers.Number)) or hasattr(src, "__array__"):
        try:
            src = np.asarray(src)
        except Exception as e:  # e.g. a framework tensor that refuses conversion
            return None, f"bad value for '{key}': cannot read it as an array ({e})"
        if src.dtype.kind not in "biuf":
            return None, f"bad value for '{key}': expected numbers, got an array of {src.dtype}"
        shape = list(src.shape)
    else:
        return None, f"bad value for '{key}': expected a tensor or an array, got {type(src).__name__}"
    if shape != dst.shape:
        return None, f"size mismatch for '{key}': checkpoint shape {shape}, model shape {dst.shape}"
    return src, None


def _indent(text):
    return text.replace("\n", "\n  ")
