"""Optimizers: the course's Optimizer base and SGD, and PyTorch's Adam, AdamW, RMSprop and Adagrad.

Every concrete step runs under no_grad, skips parameters whose grad is None, and updates each parameter in
place with ONE fused kernel launch (clownpiece/ops/optim.py); hyper-parameters, bias corrections and decayed
rates travel as kernel arguments computed on the host from Python numbers, so a step never reads device
memory back. Host state that changes every step (the step counts) is advanced inside a `backend.replayable`
call, so that clownpiece.jit replays advance it too; a learning rate reaches kernels as the Python number in
`group["lr"]`. Constructors validate their arguments with PyTorch's messages before anything runs;
`foreach` and `fused` are accepted for PyTorch's signatures and change nothing (every update already is one
fused kernel)."""
from __future__ import annotations

import itertools
import numbers
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np

from ..._grad_mode import no_grad
from ..._layout import ShapeError
from ..._tensor import Tensor, TensorBase
from ...autograd.autograd import zero_grads

# `state` is keyed by each parameter's `param_id` (the course's API). Ids come from one process-wide counter:
# the course numbered 0, 1, ... per optimizer, so ids kept from an earlier optimizer could collide.
_param_ids = itertools.count()

# what an optimizer takes: tensors, param groups (dicts of 'params' and per-group hyper-parameters), or one group
ParamsT = Union[Iterable[Tensor], Iterable[dict[str, Any]], dict[str, Any]]


def _param_id(param):
    pid = getattr(param, "param_id", None)
    if pid is None:
        pid = param.param_id = next(_param_ids)
    return pid


class Optimizer:
    def __init__(self, parameters: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(parameters, TensorBase):
            raise TypeError("optimizer params should be an iterable of tensors or dicts, got a single tensor")
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        groups = [parameters] if isinstance(parameters, dict) else list(parameters)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        if not isinstance(group, dict):
            raise TypeError(f"add_param_group: expected a dict with key 'params', got {type(group).__name__}")
        params = group["params"]
        group["params"] = [params] if isinstance(params, TensorBase) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if not isinstance(p, TensorBase):
                raise TypeError(f"optimizer can only optimize tensors, got {type(p).__name__}")
            if id(p) in seen:
                raise ValueError("some parameters appear in more than one parameter group")
            seen.add(id(p))
            _param_id(p)
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    def zero_grad(self, set_to_None: bool = True, *, set_to_none: Optional[bool] = None) -> None:
        """None the grads (default) or zero them in place; `set_to_none` is PyTorch's spelling."""
        if set_to_none is not None:
            set_to_None = set_to_none
        for group in self.param_groups:
            zero_grads(group.get("params", ()), set_to_None)

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.step() is not implemented")

    def _run(self, closure, update):
        """Evaluate the closure (in the caller's grad mode), then call update(group, param) under no_grad for
        each parameter that has a grad."""
        loss = closure() if closure is not None else None
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        update(group, p)
        return loss

    # ---- checkpointing ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: per-parameter state}, 'param_groups': [hyper-parameters + 'params': indices]},
        indices numbering the parameters in group order (PyTorch's format). Tensors are shared, not copied."""
        index, groups = {}, []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(_param_id(p), len(index))
                ids.append(index[_param_id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[pid]: dict(s) for pid, s in self.state.items() if pid in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: {len(groups)} parameter groups given, the optimizer has "
                             f"{len(self.param_groups)}")
        params = {}
        for mine, saved in zip(self.param_groups, groups):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError(f"load_state_dict: a saved group has {len(saved['params'])} parameters, the "
                                 f"optimizer's has {len(mine['params'])}")
            params.update(zip(saved["params"], mine["params"]))
        new_state = {}
        for idx, saved in state_dict["state"].items():
            p = params[int(idx)]
            new_state[_param_id(p)] = {k: _copy_state(v, p, k) for k, v in saved.items()}
        for mine, saved in zip(self.param_groups, groups):
            mine.update({k: v for k, v in saved.items() if k != "params"})
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _copy_state(value, param, key):
    """A private copy of a saved state entry; tensors (and arrays, as a file loader may return them) become
    contiguous buffers of the parameter's dtype, 0-d arrays become Python numbers; 'step' becomes an int
    whatever it was saved as (PyTorch saves a 0-dim tensor), since steps compute on the host from it."""
    if key == "step" and isinstance(value, (np.ndarray, TensorBase, numbers.Real)):
        return int(value.item() if isinstance(value, (np.ndarray, TensorBase)) else value)
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return value.item()
        value = TensorBase(value, dtype=param.dtype)
    if not isinstance(value, TensorBase):
        return value
    if value._shape != param._shape:
        raise ShapeError(f"load_state_dict: state '{key}' has shape {value.shape}, its parameter {param.shape}")
    out = param._empty(param._shape, param.dtype)
    out._assign_from(value.to(param.dtype))
    return out


_LABELS = {"lr": "learning rate", "eps": "epsilon value"}


def _check_non_negative(**values):
    """PyTorch's checks and messages: "Invalid learning rate: -1", "Invalid momentum value: -0.5", ..."""
    for name, v in values.items():
        if not isinstance(v, numbers.Real) or isinstance(v, bool) or not v >= 0:
            raise ValueError(f"Invalid {_LABELS.get(name, name + ' value')}: {v}")


def _check_betas(betas):
    try:
        betas = tuple(betas)
    except TypeError:
        raise TypeError(f"betas must be a pair of numbers, got {betas!r}") from None
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair, got {betas!r}")
    for i, b in enumerate(betas):
        if not isinstance(b, numbers.Real) or not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")
    return betas


class SGD(Optimizer):
    """SGD with the course's momentum: v starts at zero and v = momentum * v + (1 - damping) * g, so even
    the first step (and every step without momentum) uses (1 - damping) * g [differs from PyTorch].
    `dampening` is PyTorch's name for `damping`; `nesterov` as in PyTorch (needs momentum, no damping)."""

    def __init__(self, params: ParamsT, lr: float, momentum: float = 0.0, damping: float = 0.0,
                 weight_decay: float = 0.0, *, dampening: Optional[float] = None, nesterov: bool = False) -> None:
        if dampening is not None:
            damping = dampening
        _check_non_negative(lr=lr, momentum=momentum, damping=damping, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or damping != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, damping=damping, weight_decay=weight_decay,
                                      nesterov=bool(nesterov)))

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        return self._run(closure, self._update)

    def _update(self, group, p):
        lr, momentum, damping, wd = group["lr"], group["momentum"], group["damping"], group["weight_decay"]
        if not momentum:
            p._sgd_update_(p.grad, lr, damping, wd)
            return
        state = self.state.setdefault(_param_id(p), {})
        buf = state.get("momentum_buffer")
        first = buf is None
        if first:  # the kernel treats it as zero on the first step: no fill launch
            buf = state["momentum_buffer"] = p._empty(p._shape, p.dtype)
        p._sgd_momentum_update_(p.grad, buf, first, lr, momentum, damping, wd, group.get("nesterov", False))


class Adam(Optimizer):
    """Adam (PyTorch's rule) with coupled (L2) weight decay: g = grad + weight_decay * p; `amsgrad` keeps
    the maximum of the second moments (state 'max_exp_avg_sq'); `maximize` ascends."""
    _decoupled = False

    def __init__(self, params: ParamsT, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: Optional[bool] = None, fused: Optional[bool] = None) -> None:
        _check_non_negative(lr=lr, eps=eps)
        betas = _check_betas(betas)
        _check_non_negative(weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=bool(amsgrad), maximize=bool(maximize)))

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        return self._run(closure, self._update)

    def _update(self, group, p):
        state = self.state.setdefault(_param_id(p), {})
        amsgrad = group.get("amsgrad", False)
        if not state:
            state["step"] = 0
            state["exp_avg"] = p._empty(p._shape, p.dtype)  # read as zero on step 1 by the kernel
            state["exp_avg_sq"] = p._empty(p._shape, p.dtype)
        if amsgrad and "max_exp_avg_sq" not in state:
            if state["step"]:
                raise RuntimeError("Adam: amsgrad was switched on after the first step; the running maximum "
                                   "of the second moments does not exist (PyTorch fails here too)")
            state["max_exp_avg_sq"] = p._empty(p._shape, p.dtype)
        p._adam_update_(p.grad, state["exp_avg"], state["exp_avg_sq"], state, group["lr"],
                        group["betas"], group["eps"], group["weight_decay"], decoupled=self._decoupled,
                        max_exp_avg_sq=state["max_exp_avg_sq"] if amsgrad else None,
                        maximize=group.get("maximize", False))


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam update."""
    _decoupled = True

    def __init__(self, params: ParamsT, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: Optional[bool] = None, fused: Optional[bool] = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """RMSprop (PyTorch's rule): square_avg = alpha * square_avg + (1 - alpha) * g^2; `centered` divides
    by the estimated variance (square_avg - grad_avg^2) instead; `momentum` > 0 accumulates the scaled
    step in 'momentum_buffer'. State: 'step', 'square_avg', 'grad_avg' (centered), 'momentum_buffer'."""

    def __init__(self, params: ParamsT, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *, maximize: bool = False,
                 foreach: Optional[bool] = None) -> None:
        _check_non_negative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=bool(centered), maximize=bool(maximize)))

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        return self._run(closure, self._update)

    def _update(self, group, p):
        state = self.state.setdefault(_param_id(p), {})
        fresh = 0
        # buffers appear when their option is first on (OneCycleLR may switch momentum on later): new ones
        # are read as zero by the kernel, which saves a fill launch
        for bit, key, wanted in ((1, "square_avg", True), (2, "grad_avg", group["centered"]),
                                 (4, "momentum_buffer", group["momentum"] > 0)):
            if wanted and key not in state:
                state[key] = p._empty(p._shape, p.dtype)
                fresh |= bit
        state.setdefault("step", 0)
        p._rmsprop_update_(p.grad, state, state["square_avg"], state["grad_avg"] if group["centered"] else None,
                           state["momentum_buffer"] if group["momentum"] > 0 else None, fresh, group["lr"],
                           group["alpha"], group["eps"], group["weight_decay"], group["momentum"],
                           maximize=group.get("maximize", False))


class Adagrad(Optimizer):
    """Adagrad (PyTorch's rule): sum += g^2 (starting at initial_accumulator_value), p -= clr * g /
    (sqrt(sum) + eps) with clr = lr / (1 + (step - 1) * lr_decay). State: 'step', 'sum' (made at the first
    step, where PyTorch makes it at construction)."""

    def __init__(self, params: ParamsT, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False,
                 foreach: Optional[bool] = None, fused: Optional[bool] = None) -> None:
        _check_non_negative(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                            initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=bool(maximize)))

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        return self._run(closure, self._update)

    def _update(self, group, p):
        state = self.state.setdefault(_param_id(p), {})
        if "sum" not in state:
            state["step"] = 0
            state["sum"] = p._empty(p._shape, p.dtype)  # the kernel starts it at initial_accumulator_value
        p._adagrad_update_(p.grad, state, group["lr"], group["lr_decay"], group["weight_decay"], group["eps"],
                           group["initial_accumulator_value"], maximize=group.get("maximize", False))
