"""Every kernel the package asks for by name exists: each `backend.kernel(family, name, ...)` call is read
from the source (ast), its name turned into a pattern (a literal is itself; the variable parts of an f-string
or a `name + "_c"` concatenation match any identifier part) and matched against the kernels cl_kernels/<family>.cl
defines when built, so a renamed or deleted kernel fails here rather than at the first launch."""
import ast
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import kernel_coverage  # noqa: E402


def _pattern(node):
    """A regex for the kernel name expression, or None when it is not a string expression at all."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pattern(node.left), _pattern(node.right)
        return (left or r"\w+") + (right or r"\w+")
    return None


def kernel_requests():
    """(file:line, family, name pattern) of every backend.kernel(...) call with a literal family."""
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "clownpiece")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "kernel"
                        and isinstance(node.func.value, ast.Name) and node.func.value.id in ("backend", "runtime")
                        and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)):
                    where = f"{os.path.relpath(path, ROOT)}:{node.lineno}"
                    found.append((where, node.args[0].value, _pattern(node.args[1]) or r"\w+"))
    return found


REQUESTS = kernel_requests()


def test_kernel_requests_are_found():
    assert len(REQUESTS) > 30
    assert any(p == "mm_block\\w+x\\w+" for _, _, p in REQUESTS)


@pytest.fixture(scope="module")
def defined():
    names, _ = kernel_coverage.defined_kernels()
    return names


@pytest.mark.parametrize("where,family,pattern", REQUESTS, ids=[w for w, _, _ in REQUESTS])
def test_requested_kernel_exists(where, family, pattern, defined):
    assert family in kernel_coverage.BUILDS, \
        f"{where}: cl_kernels/{family}.cl needs an entry in tools/kernel_coverage.py BUILDS (its builds)"
    names = [n for f, n in defined if f == family]
    assert any(re.fullmatch(pattern, n) for n in names), \
        f"{where}: asks cl_kernels/{family}.cl for a kernel matching {pattern!r}; it defines {sorted(names)}"
