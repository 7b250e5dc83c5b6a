"""Containers (docs/api.md, nn): Sequential, ModuleList, ModuleDict."""
from collections import OrderedDict

from .module import Module


def _check_module(m, op):
    if not isinstance(m, Module):
        raise TypeError(f"{op}: expected a Module, got {type(m).__name__}")
    return m


class ModuleList(Module):
    """An indexable list of modules registered as children "0".."n-1" (renumbered after a delete)."""

    def __init__(self, modules=None):
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

    def __getitem__(self, i):
        if isinstance(i, slice):
            return type(self)(list(self._modules.values())[i])
        return self._modules[self._index(i)]

    def __setitem__(self, i, module):
        self._modules[self._index(i)] = _check_module(module, "ModuleList.__setitem__")

    def __delitem__(self, i):
        items = list(self._modules.values())
        if isinstance(i, slice):
            del items[i]
        else:
            del items[int(self._index(i))]
        self._renumber(items)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self._modules[str(len(self._modules))] = _check_module(module, "append")
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        items = list(self._modules.values())
        items.insert(index, _check_module(module, "insert"))
        self._renumber(items)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))


class Sequential(ModuleList):
    """Runs its children "0", "1", ... in order; also accepts one OrderedDict of named modules."""

    def __init__(self, *modules):
        Module.__init__(self)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self._modules[name] = _check_module(m, "Sequential")
        else:
            self.extend(modules)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*list(self._modules.values())[i])
        return list(self._modules.values())[int(self._index(i))]

    def __setitem__(self, i, module):
        key = list(self._modules)[int(self._index(i))]
        self._modules[key] = _check_module(module, "Sequential.__setitem__")

    def __add__(self, other):
        return Sequential(*self, *other)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleDict(Module):
    """A dict of named child modules (from a dict or an iterable of (key, module) pairs)."""

    def __init__(self, dict_=None):
        super().__init__()
        if dict_ is not None:
            self.update(dict_)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__}")
        self._modules[key] = _check_module(module, "ModuleDict.__setitem__")

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        return self._modules.pop(key)

    def clear(self):
        self._modules.clear()

    def update(self, dict_):
        pairs = dict_.items() if hasattr(dict_, "items") else dict_
        for key, module in pairs:
            self[key] = module
