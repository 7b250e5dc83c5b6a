"""clownpiece.linalg (PyTorch's torch.linalg names) and einsum. Everything here composes Tensor ops, so it
records autograd through them.

einsum lowers any equation to the ops that already exist: repeated letters within an operand take a
diagonal (a mask multiply and a sum), letters no one else needs are summed out at once, and operands are
contracted left to right, each pair as one batched matmul after a permute and a reshape."""
from __future__ import annotations

import string
from typing import Sequence, Union

from ._layout import ShapeError
from ._tensor import TensorBase
from ._types import DimLike, DTypeLike
from .factories import eye
from .ops.linalg import norm_order


def vector_norm(x: TensorBase, ord: float = 2, dim: DimLike = None, keepdim: bool = False, *,
                dtype: DTypeLike = None) -> TensorBase:
    """torch.linalg.vector_norm: ord a number, inf or -inf, over dim (None: every element)."""
    _tensor(x, "vector_norm")
    return x.norm(norm_order(ord, "vector_norm"), dim, keepdim, dtype)


def norm(x: TensorBase, ord: Union[float, str, None] = None, dim: DimLike = None, keepdim: bool = False, *,
         dtype: DTypeLike = None) -> TensorBase:
    """torch.linalg.norm for what is a vector norm: ord None (the 2-norm of all elements, which is the
    Frobenius norm of a matrix), a number with a 1-D input or an int dim, or 'fro'. Matrix norms of other
    orders (2, 'nuc', ...) raise."""
    _tensor(x, "norm")
    if ord is None or ord == "fro":
        return x.norm(2, dim, keepdim, dtype)
    if isinstance(dim, (list, tuple)) and len(dim) == 2 or (dim is None and x.dim() == 2):
        raise NotImplementedError(f"linalg.norm: the matrix norm of order {ord!r} needs singular values or "
                                  f"row/column sums of a matrix; clownpiece has vector norms and 'fro'")
    return x.norm(ord, dim, keepdim, dtype)


def _tensor(x, op):
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a tensor, got {type(x).__name__}")


# ---- einsum -----------------------------------------------------------------------------------------------
_LETTERS = set(string.ascii_letters)


def _parse(equation, operands):
    """(list of letter lists per operand, output letter list); '...' becomes private symbols (one per
    broadcast dim, aligned from the right)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: the equation {equation!r} names {len(terms)} operands, {len(operands)} "
                         f"were given")
    ell_dims = 0
    for t, x in zip(terms, operands):
        named = len(t.replace("...", ""))
        if "..." in t:
            ell_dims = max(ell_dims, x.dim() - named)
        elif named != x.dim():
            raise ShapeError(f"einsum: the subscripts {t!r} name {named} dims of an operand with "
                             f"{x.dim()} dims (shape {x.shape})")
    ell = [chr(0x100 + i) for i in range(ell_dims)]
    letters = []
    for t, x in zip(terms, operands):
        bad = set(t.replace("...", "")) - _LETTERS
        if bad or t.count("...") > 1:
            raise ValueError(f"einsum: invalid subscripts {t!r} (letters a-z, A-Z and one '...')")
        if "..." in t:
            head, _, tail = t.partition("...")
            k = x.dim() - len(head) - len(tail)
            if k < 0:
                raise ShapeError(f"einsum: the subscripts {t!r} name more dims than the operand has "
                                 f"({x.dim()}, shape {x.shape})")
            letters.append(list(head) + ell[ell_dims - k:] + list(tail))
        else:
            letters.append(list(t))
    if arrow:
        if set(rhs.replace("...", "")) - _LETTERS or rhs.count("...") > 1:
            raise ValueError(f"einsum: invalid output subscripts {rhs!r}")
        head, dots, tail = rhs.partition("...")
        out = list(head) + (ell if dots else []) + list(tail)
        seen = [c for ls in letters for c in ls]
        for c in out:
            if out.count(c) > 1:
                raise ValueError(f"einsum: output subscript {c!r} appears more than once")
            if c not in seen:
                raise ValueError(f"einsum: output subscript {c!r} does not appear in the inputs")
        if ell and not dots:
            raise ValueError("einsum: the inputs have '...' dims, so the output must name '...' too")
    else:  # implicit output: broadcast dims, then the letters that appear once, in alphabetical order
        counts = {}
        for ls in letters:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, k in counts.items() if k == 1 and c in _LETTERS)
    return letters, out


def _diagonals(x, ls):
    """x with each repeated letter reduced to its diagonal."""
    ls = list(ls)
    while True:
        rep = next((c for i, c in enumerate(ls) if c in ls[i + 1:]), None)
        if rep is None:
            return x, ls
        a = ls.index(rep)
        b = ls.index(rep, a + 1)
        n = x._shape[a]
        if x._shape[b] != n:
            raise ShapeError(f"einsum: subscript {rep!r} is repeated over dims of sizes {n} and {x._shape[b]}")
        shape = [1] * x.dim()
        shape[a] = shape[b] = n
        x = (x * eye(n, dtype=x.dtype).reshape(shape)).sum(b)
        del ls[b]


def _sizes(operands, letters):
    sizes = {}
    for x, ls in zip(operands, letters):
        for c, s in zip(ls, x._shape):
            if sizes.get(c, 1) != 1 and s != 1 and sizes[c] != s:
                raise ShapeError(f"einsum: subscript {c!r} has sizes {sizes[c]} and {s} (operand shapes "
                                 f"{[o.shape for o in operands]})")
            sizes[c] = max(sizes.get(c, 1), s) if s != 0 else 0
    return sizes


def _sum_out(x, ls, keep):
    drop = [i for i, c in enumerate(ls) if c not in keep]
    if drop:
        x = x.sum(drop)
        ls = [c for c in ls if c in keep]
    return x, ls


def _contract(a, la, b, lb, needed, sizes):
    """a (letters la) and b (lb) multiplied and summed over the letters no later operand or the output
    needs, as one batched matmul: (batch, M, K) @ (batch, K, N)."""
    batch = [c for c in la if c in lb and c in needed]
    summed = [c for c in la if c in lb and c not in needed]
    a_only = [c for c in la if c not in lb]
    b_only = [c for c in lb if c not in la]

    def arrange(x, ls, order):
        x = x.permute([ls.index(c) for c in order]) if ls != order else x
        full = [sizes[c] for c in order]
        return x.expand(full) if list(x._shape) != full else x

    a = arrange(a, la, batch + a_only + summed)
    b = arrange(b, lb, batch + summed + b_only)
    nb = [sizes[c] for c in batch]
    m, k, n = (_prod(sizes[c] for c in part) for part in (a_only, summed, b_only))
    out = a.reshape([_prod(nb), m, k]).matmul(b.reshape([_prod(nb), k, n]))
    return out.reshape(nb + [sizes[c] for c in a_only + b_only]), batch + a_only + b_only


def _prod(values):
    p = 1
    for v in values:
        p *= v
    return p


def einsum(equation: str, *operands: Union[TensorBase, Sequence[TensorBase]]) -> TensorBase:
    """torch.einsum: einsum('ij,jk->ik', a, b), any number of operands (also passed as one list), '...' for
    broadcast dims, implicit output when there is no '->'."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__}")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum: at least one operand is needed")
    for x in operands:
        _tensor(x, "einsum")
    letters, out = _parse(equation, operands)
    sizes = _sizes(operands, letters)
    xs, ls = [], []
    for i, (x, l_) in enumerate(zip(operands, letters)):
        x, l_ = _diagonals(x, l_)
        later = set(out).union(*letters[:i], *letters[i + 1:])
        x, l_ = _sum_out(x, l_, later)
        xs.append(x)
        ls.append(l_)
    acc, lacc = xs[0], ls[0]
    for i in range(1, len(xs)):
        needed = set(out).union(*ls[i + 1:])
        acc, lacc = _contract(acc, lacc, xs[i], ls[i], needed, sizes)
    acc, lacc = _sum_out(acc, lacc, set(out))
    full = [sizes[c] for c in lacc]
    if list(acc._shape) != full:
        acc = acc.expand(full)
    if lacc != out:
        acc = acc.permute([lacc.index(c) for c in out])
    return acc
