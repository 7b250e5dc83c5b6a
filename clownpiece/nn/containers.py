"""Containers (docs/api.md, nn): Sequential, ModuleList, ModuleDict."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, ItemsView, Iterable, Iterator, KeysView, Mapping, Optional, Union, ValuesView

from .module import Module


def _check_module(m, op):
    if not isinstance(m, Module):
        raise TypeError(f"{op}: expected a Module, got {type(m).__name__}")
    return m


class ModuleList(Module):
    """An indexable list of modules registered as children "0".."n-1" (renumbered after a delete)."""

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, i):
        n = len(self._modules)
        if not isinstance(i, int):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {type(self).__name__} of length {n}")
        return str(i % n)

    def _renumber(self, modules):
        self._modules.clear()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def __getitem__(self, i: Union[int, slice]) -> Union[Module, ModuleList]:
        if isinstance(i, slice):
            return type(self)(list(self._modules.values())[i])
        return self._modules[self._index(i)]

    def __setitem__(self, i: int, module: Module) -> None:
        self._modules[self._index(i)] = _check_module(module, "ModuleList.__setitem__")

    def __delitem__(self, i: Union[int, slice]) -> None:
        items = list(self._modules.values())
        if isinstance(i, slice):
            del items[i]
        else:
            del items[int(self._index(i))]
        self._renumber(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        self._modules[str(len(self._modules))] = _check_module(module, "append")
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, _check_module(module, "insert"))
        self._renumber(items)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList(list(self) + list(other))


class Sequential(ModuleList):
    """Runs its children "0", "1", ... in order; also accepts one OrderedDict of named modules."""

    def __init__(self, *modules: Union[Module, OrderedDict[str, Module]]) -> None:
        Module.__init__(self)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self._modules[name] = _check_module(m, "Sequential")
        else:
            self.extend(modules)

    def __getitem__(self, i: Union[int, slice]) -> Union[Module, Sequential]:
        if isinstance(i, slice):
            return Sequential(*list(self._modules.values())[i])
        return list(self._modules.values())[int(self._index(i))]

    def __setitem__(self, i: int, module: Module) -> None:
        key = list(self._modules)[int(self._index(i))]
        self._modules[key] = _check_module(module, "Sequential.__setitem__")

    def __add__(self, other: Iterable[Module]) -> Sequential:
        return Sequential(*self, *other)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleDict(Module):
    """A dict of named child modules (from a dict or an iterable of (key, module) pairs)."""

    def __init__(self, dict_: Union[Mapping[str, Module], Iterable[tuple[str, Module]], None] = None) -> None:
        super().__init__()
        if dict_ is not None:
            self.update(dict_)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__}")
        self._modules[key] = _check_module(module, "ModuleDict.__setitem__")

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> KeysView[str]:
        return self._modules.keys()

    def values(self) -> ValuesView[Module]:
        return self._modules.values()

    def items(self) -> ItemsView[str, Module]:
        return self._modules.items()

    def pop(self, key: str) -> Module:
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def update(self, dict_: Union[Mapping[str, Module], Iterable[tuple[str, Module]]]) -> None:
        pairs = dict_.items() if hasattr(dict_, "items") else dict_
        for key, module in pairs:
            self[key] = module
