"""Parameter, Buffer and Module: the registration, traversal, state-dict and repr machinery every layer
builds on (docs/api.md, nn)."""
from collections import OrderedDict

import numpy as np

from .._grad_mode import no_grad
from .._tensor import Tensor, TensorBase
from ..autograd.autograd import zero_grads


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable: shares `data`'s storage and always requires grad
    (even under no_grad, as in PyTorch)."""

    def __init__(self, data=None, requires_grad=True):
        Tensor.__init__(self, data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)


class Buffer(Tensor):
    """A Tensor that a Module registers as state that is not trained (running statistics)."""

    def __init__(self, data=None):
        Tensor.__init__(self, data, requires_grad=False)


class Module:
    """Base class of all layers. Subclasses call `super().__init__()` before assigning attributes."""

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

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

    def __setattr__(self, name, value):
        params, buffers, modules = self._registries()
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Buffer):
            self._forget(name)
            buffers[name] = value
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

    def __getattr__(self, name):
        # only called when normal lookup fails: look in the registries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        params, buffers, modules = self._registries()
        for registry in (params, buffers, modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._forget(name)
        self._registries()[0][name] = param

    def register_buffer(self, name, buffer):
        if buffer is not None and not isinstance(buffer, TensorBase):
            raise TypeError(f"register_buffer: '{name}' must be a tensor or None, got {type(buffer).__name__}")
        self._forget(name)
        self._registries()[1][name] = buffer if buffer is None or isinstance(buffer, Buffer) else Buffer(buffer)

    def register_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"register_module: '{name}' must be a Module or None, got {type(module).__name__}")
        self._forget(name)
        self._registries()[2][name] = module

    register_modules = register_module  # the course tutorial's spelling
    add_module = register_module

    # ---- traversal ------------------------------------------------------------------------------
    def named_modules(self, recursive=True, prefix=""):
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

    def modules(self, recursive=True):
        for _, m in self.named_modules(recursive):
            yield m

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry, recursive):
        modules = self.named_modules() if recursive else [("", self)]
        for prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is not None:
                    yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recursive=True):
        """(dotted name, Parameter): own parameters in registration order, then each child's; disabled
        (None) parameters are skipped."""
        return self._named_members("_parameters", recursive)

    def parameters(self, recursive=True):
        for _, p in self.named_parameters(recursive):
            yield p

    def named_buffers(self, recursive=True):
        return self._named_members("_buffers", recursive)

    def buffers(self, recursive=True):
        for _, b in self.named_buffers(recursive):
            yield b

    # ---- modes and gradients --------------------------------------------------------------------
    def train(self, flag=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(flag))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def to(self, *args, **kwargs):
        """Move and/or convert every parameter and buffer in place (the same Python objects, so optimizers
        and state_dict keep seeing them): Tensor.to's forms, to(dtype), to(device), to(device, dtype).
        A move to another device moves the gradients along; a dtype change drops them."""
        with no_grad():
            for t in list(self.parameters()) + list(self.buffers()):
                converted = TensorBase.to(t, *args, **kwargs)
                if converted is t:
                    continue
                grad = t.grad
                t._set_view(converted._storage, converted._shape, converted._strides, converted._offset,
                            converted.dtype)
                t.grad = None if grad is None or grad.dtype != t.dtype else TensorBase.to(grad, t.device)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ---- forward --------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- state dict -----------------------------------------------------------------------------
    def state_dict(self):
        """Flat dict dotted name -> live tensor of every parameter and buffer; disabled entries are None
        (course semantics)."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    state[f"{prefix}.{name}" if prefix else name] = value
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy `state_dict`'s tensors into this module's tensors in place. strict: missing or unexpected
        keys and shape mismatches raise RuntimeError before anything is copied; non-strict skips them.
        Returns (missing_keys, unexpected_keys)."""
        own = self.state_dict()
        missing = [k for k, v in own.items() if v is not None and state_dict.get(k) is None]
        unexpected = [k for k, v in state_dict.items() if v is not None and own.get(k) is None]
        pairs, problems = [], []
        for key, dst in own.items():
            src = state_dict.get(key)
            if dst is None or src is None:
                continue
            if not isinstance(src, TensorBase):
                problems.append(f"bad value for '{key}': expected a tensor, got {type(src).__name__}")
            elif src.shape != dst.shape:
                problems.append(f"size mismatch for '{key}': checkpoint shape {src.shape}, model shape {dst.shape}")
            else:
                pairs.append((dst, src))
        if strict and (missing or unexpected or problems):
            lines = ([f"missing key '{k}'" for k in missing] + [f"unexpected key '{k}'" for k in unexpected]
                     + problems)
            raise RuntimeError(f"load_state_dict for {type(self).__name__} failed:\n  " + "\n  ".join(lines))
        with no_grad():  # in-place writes into parameters are not recorded
            for dst, src in pairs:
                dst.copy_(src)
        return missing, unexpected

    # ---- repr -----------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + _indent(repr(child)) for name, child in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([_indent(extra)] if extra else []) + lines
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"


def _indent(text):
    return text.replace("\n", "\n  ")
