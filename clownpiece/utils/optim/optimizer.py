"""Optimizers: the course's Optimizer base, SGD and Adam, plus AdamW.

Every concrete step runs under no_grad, skips parameters whose grad is None, and updates each parameter in
place with ONE fused kernel launch (clownpiece/ops/optim.py); hyper-parameters and Adam's bias corrections
travel as kernel arguments, so a step never reads device memory back. Host state that changes every step
(Adam's step count) is advanced inside a `backend.replayable` call, so that clownpiece.jit replays advance
it too; a learning rate reaches kernels as the Python number in `group["lr"]`."""
import itertools
import numbers

import numpy as np

from ..._grad_mode import no_grad
from ..._tensor import TensorBase
from ...autograd.autograd import zero_grads
from ..._layout import ShapeError

# `state` is keyed by each parameter's `param_id` (the course's API). Ids come from one process-wide counter:
# the course numbered 0, 1, ... per optimizer, so ids kept from an earlier optimizer could collide.
_param_ids = itertools.count()


def _param_id(param):
    pid = getattr(param, "param_id", None)
    if pid is None:
        pid = param.param_id = next(_param_ids)
    return pid


class Optimizer:
    def __init__(self, parameters, defaults):
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

    def add_param_group(self, group):
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

    def zero_grad(self, set_to_None=True, *, set_to_none=None):
        """None the grads (default) or zero them in place; `set_to_none` is PyTorch's spelling."""
        if set_to_none is not None:
            set_to_None = set_to_none
        for group in self.param_groups:
            zero_grads(group.get("params", ()), set_to_None)

    def step(self, closure=None):
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
    def state_dict(self):
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

    def load_state_dict(self, state_dict):
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

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _copy_state(value, param, key):
    """A private copy of a saved state entry; tensors (and arrays, as a file loader may return them) become
    contiguous buffers of the parameter's dtype, 0-d arrays become Python numbers."""
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


def _check_non_negative(**values):
    for name, v in values.items():
        if not isinstance(v, numbers.Real) or v < 0:
            raise ValueError(f"invalid {name}: {v!r} (expected a non-negative number)")


class SGD(Optimizer):
    """SGD with the course's momentum: v starts at zero and v = momentum * v + (1 - damping) * g, so even
    the first step (and every step without momentum) uses (1 - damping) * g [differs from PyTorch].
    `dampening` is PyTorch's name for `damping`; `nesterov` as in PyTorch (needs momentum, no damping)."""

    def __init__(self, params, lr, momentum=0.0, damping=0.0, weight_decay=0.0, *, dampening=None,
                 nesterov=False):
        if dampening is not None:
            damping = dampening
        _check_non_negative(lr=lr, momentum=momentum, damping=damping, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or damping != 0):
            raise ValueError("nesterov momentum requires a momentum > 0 and zero damping")
        super().__init__(params, dict(lr=lr, momentum=momentum, damping=damping, weight_decay=weight_decay,
                                      nesterov=bool(nesterov)))

    def step(self, closure=None):
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
    """Adam with coupled (L2) weight decay: g = grad + weight_decay * p."""
    _decoupled = False

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        _check_non_negative(lr=lr, eps=eps, weight_decay=weight_decay)
        betas = tuple(betas)
        for i, b in enumerate(betas):
            if not isinstance(b, numbers.Real) or not 0.0 <= b < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {b!r} (expected 0 <= beta < 1)")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair, got {betas!r}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def step(self, closure=None):
        return self._run(closure, self._update)

    def _update(self, group, p):
        state = self.state.setdefault(_param_id(p), {})
        if not state:
            state["step"] = 0
            state["exp_avg"] = p._empty(p._shape, p.dtype)  # read as zero on step 1 by the kernel
            state["exp_avg_sq"] = p._empty(p._shape, p.dtype)
        p._adam_update_(p.grad, state["exp_avg"], state["exp_avg_sq"], state, group["lr"],
                        group["betas"], group["eps"], group["weight_decay"], decoupled=self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam update."""
    _decoupled = True

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)
