"""The package's imports only go down the layers, and no modules import each other in a circle.

Every `import` and `from ... import` in clownpiece/ (at module level and inside functions) and in tools/
is read with ast, resolved to the module it names, and checked against LAYERS, the one table of the layers
(docs/architecture.md describes them). A module may import the modules of its own group and of any lower
layer; the groups of one layer (nn, optim, data, serialization) are siblings and may not import each other.
Importing `a.b.c` also runs the package __init__s of `a` and `a.b`; those implicit imports are not edges
(the __init__s only re-export, and every one of them is checked as a module of its own)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# lowest layer first: {group: [module prefixes]}. A module belongs to the group of the longest prefix it
# starts with (the root package "clownpiece" only matches itself).
LAYERS = [
    {"backend": ["clownpiece.backend"]},
    {"layout": ["clownpiece._layout"], "grad mode": ["clownpiece._grad_mode"]},
    {"tensor": ["clownpiece.ops", "clownpiece._tensor", "clownpiece.factories", "clownpiece.tensor_impl",
                "clownpiece.utils_", "clownpiece._types"]},
    {"autograd": ["clownpiece.autograd", "clownpiece.tensor"]},
    {"distributed": ["clownpiece.distributed"]},
    {"nn": ["clownpiece.nn"], "optim": ["clownpiece.utils.optim"], "data": ["clownpiece.utils.data"],
     "serialization": ["clownpiece.serialization"], "jit": ["clownpiece._jit"]},
    {"api": ["clownpiece", "clownpiece.utils", "clownpiece.devices", "clownpiece.linalg"]},
    {"tools": ["tools", "tensor_impl"]},
]


def _module_files():
    """module name -> (path, is_package) for clownpiece/, tools/ and the top-level tensor_impl shim."""
    files = {}
    for path in sorted((ROOT / "clownpiece").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py")) + \
            [ROOT / "tensor_impl.py"]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        files[".".join(parts)] = (path, is_package)
    return files


def import_graph(files=None, type_checking=True):
    """module -> set of the package's modules it imports (anywhere in the file). type_checking=False leaves
    out the imports under `if TYPE_CHECKING:`, which only a type checker runs (the run-time graph)."""
    files = files or _module_files()
    graph = {}
    for name, (path, is_package) in files.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        tree = ast.parse(path.read_text(), str(path))
        skip = set() if type_checking else _type_checking_imports(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets.update(_known(alias.name, files) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:  # `from pkg import mod` imports the module pkg.mod
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in files else _known(base, files))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def _type_checking_imports(tree):
    """ids of the import nodes inside `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`) blocks of `tree`."""
    found = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                         or getattr(test, "attr", None) == "TYPE_CHECKING"):
            found.update(id(n) for stmt in node.body for n in ast.walk(stmt)
                         if isinstance(n, (ast.Import, ast.ImportFrom)))
    return found


def _known(module, files):
    """The longest prefix of `module` that is one of the files (None: not this repository's)."""
    parts = module.split(".")
    while parts:
        if ".".join(parts) in files:
            return ".".join(parts)
        parts.pop()
    return None


def group_of(module):
    """(layer index, group name) of a module, or None when no entry of LAYERS covers it."""
    best = None
    for layer, groups in enumerate(LAYERS):
        for group, prefixes in groups.items():
            for prefix in prefixes:
                covers = module == prefix or (prefix != "clownpiece" and module.startswith(prefix + "."))
                if covers and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), layer, group)
    return None if best is None else best[1:]


def upward_imports(graph):
    """'a -> b (why)' for every import that is not of the same group or a lower layer."""
    bad = []
    for module, targets in sorted(graph.items()):
        src = group_of(module)
        for target in sorted(targets):
            dst = group_of(target)
            if src is None or dst is None:
                bad.append(f"{module if src is None else target} is in no layer of LAYERS")
            elif dst[0] > src[0] or (dst[0] == src[0] and dst[1] != src[1]):
                bad.append(f"{module} ({src[1]}) imports {target} ({dst[1]}), a "
                           f"{'higher layer' if dst[0] > src[0] else 'sibling group'}")
    return sorted(set(bad))


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


# ---- the package ------------------------------------------------------------------------------------------
def test_every_module_is_in_a_layer():
    graph = import_graph()
    assert len(graph) > 60
    assert [m for m in sorted(graph) if group_of(m) is None] == []


def test_no_import_goes_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_no_import_cycles():
    # at run time: an import only a type checker runs (annotations of a class's mixins) cannot make a cycle,
    # but it still obeys the layers (test_no_import_goes_up_a_layer reads the full graph)
    assert cycles(import_graph(type_checking=False)) == []


def test_the_graph_sees_imports_inside_functions_and_relative_imports():
    graph = import_graph()
    assert "clownpiece.distributed" in graph["clownpiece.utils.data.sampler"]  # imported inside a method
    assert "clownpiece.backend" in graph["clownpiece._tensor"]  # `from . import backend`
    assert "clownpiece.autograd.formula" in graph["clownpiece.autograd.functions.elementwise"]  # `..formula`


def test_no_star_imports_in_the_package():
    # a star import once replaced the builtin `range` inside tensor.py and broke `for row in t`
    stars = [f"{path.relative_to(ROOT)}:{node.lineno}" for name, (path, _) in _module_files().items()
             if name.startswith("clownpiece") for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names)]
    assert stars == []


def test_no_module_over_600_lines():
    long = {str(path.relative_to(ROOT)): n for path in (ROOT / "clownpiece").rglob("*.py")
            if (n := len(path.read_text().splitlines())) > 600}
    assert long == {}


# ---- the checker itself ---------------------------------------------------------------------------------
def test_type_checking_imports_are_in_the_full_graph_only():
    full, runtime = import_graph(), import_graph(type_checking=False)
    assert "clownpiece._tensor" in full["clownpiece._types"]  # under `if TYPE_CHECKING:`
    assert "clownpiece._tensor" not in runtime["clownpiece._types"]
    assert "clownpiece.backend.discovery" in runtime["clownpiece._types"]


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module,target,ok", [
    ("clownpiece.nn.layers", "clownpiece.autograd.functions.nn", True),     # down
    ("clownpiece.autograd.function", "clownpiece.autograd.autograd", True),  # own group
    ("clownpiece._tensor", "clownpiece.autograd.autograd", False),           # up
    ("clownpiece.utils.optim.optimizer", "clownpiece.nn.module", False),     # sibling
    ("clownpiece.serialization", "clownpiece.nn.module", False),             # sibling
    ("clownpiece.ops.shape", "clownpiece.nowhere", False),                   # not in a layer
])
def test_layer_rule(module, target, ok):
    assert (upward_imports({module: {target}}) == []) == ok
