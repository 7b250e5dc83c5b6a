"""The scheduler base class and the rule for base learning rates (see lr_scheduler.py's docstring), shared
by lr_scheduler.py (the schedulers that are a formula of the epoch) and lr_policies.py (the others)."""
from __future__ import annotations

import weakref
from typing import Any, Optional

from .optimizer import Optimizer

# optimizer -> {id(group): (group, base lr, the lr a scheduler last wrote)}
_written = weakref.WeakKeyDictionary()


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


def _base_lrs(optimizer):
    record = _written.get(optimizer, {})
    bases = []
    for group in optimizer.param_groups:
        mine = record.get(id(group))
        if "initial_lr" in group:
            bases.append(group["initial_lr"])
        elif mine is not None and mine[2] == group["lr"]:
            bases.append(mine[1])
        else:
            bases.append(group["lr"])
    return bases


def _write_lrs(scheduler, lrs):
    optimizer = scheduler.optimizer
    try:
        record = _written.setdefault(optimizer, {})
    except TypeError:  # an optimizer that cannot be weakly referenced: chaining falls back to current lrs
        record = {}
    for group, base, lr in zip(optimizer.param_groups, scheduler.base_lrs, lrs):
        group["lr"] = lr
        record[id(group)] = (group, base, lr)


def _format_param(name, optimizer, param):
    """One value per param group: a list/tuple of that length, or one value for all."""
    if isinstance(param, (list, tuple)):
        if len(param) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has "
                             f"{len(param)} values, param_groups has {len(optimizer.param_groups)}.")
        return list(param)
    return [param] * len(optimizer.param_groups)


class LRScheduler:
    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.base_lrs = _base_lrs(optimizer)
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__}.get_lr() is not implemented")

    def step(self, epoch: Optional[int] = None) -> None:
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            lrs = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = getattr(self, "_get_closed_form_lr", None)
            lrs = closed() if closed is not None else self.get_lr()
        _write_lrs(self, lrs)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _current(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer and callables (PyTorch's convention)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)
