"""RandomOps: in-place random fills on TensorBase (kernels in cl_kernels/random.cl).

The generator is Philox4x32-10, counter-based: the state is just (seed, counter) on the host. Every fill
of n elements takes counters [counter, counter + n) and advances the counter, so streams never overlap,
nothing is read back from the device, and `manual_seed(s)` reproduces the same sequence of calls exactly."""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from .. import backend
from .._layout import is_int
from .._types import TensorT
from ..backend import dtypes

_DEFAULT_SEED = 67280421310721  # PyTorch's default, so an unseeded process is still reproducible
_MASK64 = (1 << 64) - 1
_state = {"seed": _DEFAULT_SEED, "counter": 0}


def manual_seed(seed: int) -> None:
    """Reset the generator: the same seed gives the same random streams."""
    if not is_int(seed):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    _state["seed"] = int(seed) & _MASK64
    _state["counter"] = 0


def initial_seed() -> int:
    return _state["seed"]


def _take_counters(n):
    """Key words and the first counter of a fresh range of n counters."""
    seed, base = _state["seed"], _state["counter"]
    _state["counter"] = (base + n) & _MASK64
    return seed & 0xFFFFFFFF, seed >> 32, base


def host_generator():
    """A numpy Generator seeded from clownpiece's generator (it takes one counter), for random choices made
    on the host, such as random_split's permutation, that clownpiece.manual_seed must reproduce."""
    k0, k1, base = _take_counters(1)
    return np.random.default_rng([k0, k1, base & 0xFFFFFFFF, base >> 32])


def _check_probability(p, op):
    if not isinstance(p, numbers.Real) or isinstance(p, bool):
        raise TypeError(f"{op}: p must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: probability p must be in [0, 1], got {p}")


class RandomOps:
    __slots__ = ()

    def _random_fill(self, name, a, b):
        """Run random.cl's `name` over self's elements with parameters a, b; writes through views."""
        n = self._numel
        if n == 0:
            return self
        # a strided target gets a contiguous temporary, then one strided copy into the view
        dst = self if self._contig else self._empty(self._shape, self.dtype)
        # replayable: a clownpiece.jit replay takes fresh counters here too, so it draws new numbers
        backend.launch(backend.kernel("random", name, self.dtype), n, dst, n, *backend.replayable(_take_counters, n),
                       a, b)
        if dst is not self:
            self._assign_from(dst)
        return self

    def _require_floating(self, op):
        if self.dtype not in dtypes.FLOATING:
            raise TypeError(f"{op}: not supported for {self.dtype.name} tensors; it fills floating tensors "
                            f"(randint gives integers)")

    def uniform_(self: TensorT, low: float = 0.0, high: float = 1.0) -> TensorT:
        """Fill with U(low, high) in place."""
        self._require_floating("uniform_")
        self._check_inplace("uniform_")
        self._storage._version += 1
        return self._random_fill("uniform_fill", low, high)

    def normal_(self: TensorT, mean: float = 0.0, std: float = 1.0) -> TensorT:
        """Fill with N(mean, std^2) in place (Box-Muller)."""
        if std < 0:
            raise ValueError(f"normal_: std must be non-negative, got {std}")
        self._require_floating("normal_")
        self._check_inplace("normal_")
        self._storage._version += 1
        return self._random_fill("normal_fill", mean, std)

    def bernoulli_(self: TensorT, p: float = 0.5) -> TensorT:
        """Fill with 1 with probability p, else 0, in place (any dtype)."""
        _check_probability(p, "bernoulli_")
        self._check_inplace("bernoulli_")
        self._storage._version += 1
        return self._random_fill("threshold_fill", p, dtypes.INFO[self.dtype].scalar(1))

    def dropout_mask(self: TensorT, p: float = 0.5) -> TensorT:
        """A new tensor of self's shape holding 1/(1-p) with probability 1-p and 0 otherwise, so that
        `x * x.dropout_mask(p)` keeps the expected value of x."""
        _check_probability(p, "dropout_mask")
        self._require_floating("dropout_mask")
        keep = 1.0 - p
        out = self._empty(self._shape, self.dtype)
        return out._random_fill("threshold_fill", keep, 1.0 / keep if keep > 0 else 0.0)

    def bernoulli(self: TensorT, p: Optional[float] = None) -> TensorT:
        """A new tensor of self's shape and dtype: 1 with probability self[i] (or p, a number, everywhere),
        else 0. Probabilities outside [0, 1] are not read back to be checked: below 0 never, above 1 always."""
        self._require_floating("bernoulli")
        out = self._empty(self._shape, self.dtype)
        if p is not None:
            _check_probability(p, "bernoulli")
            return out._random_fill("threshold_fill", p, dtypes.INFO[self.dtype].scalar(1))
        n = self._numel
        if n:
            probs = self.contiguous()
            backend.launch(backend.kernel("random", "bernoulli_draw", self.dtype), n, out, n,
                           *backend.replayable(_take_counters, n), probs)
        return out

    def multinomial(self: TensorT, num_samples: int, replacement: bool = False) -> TensorT:
        """Category indices (int64) drawn from the rows of self (non-negative weights, [C] or [N, C]) in
        proportion to the weights: num_samples per row, without repeating a category unless replacement.
        Without replacement the draws are the num_samples largest of log(u) / w (u uniform: the
        exponential race, which draws in proportion to w). The weights are checked on the host (one read)."""
        if self.dim() not in (1, 2):
            raise RuntimeError(f"multinomial: input must be 1-d or 2-d, got shape {self.shape}")
        self._require_floating("multinomial")
        if not isinstance(num_samples, numbers.Integral) or isinstance(num_samples, bool) or num_samples <= 0:
            raise RuntimeError(f"multinomial: num_samples must be a positive int, got {num_samples!r}")
        categories = self._shape[-1]
        if not replacement and num_samples > categories:
            raise RuntimeError(f"multinomial: cannot sample {num_samples} > {categories} categories without "
                               f"replacement")
        w = self.reshape(-1, categories) if categories else self
        if categories == 0 or w._numel == 0:
            raise RuntimeError(f"multinomial: input of shape {self.shape} has no categories to draw from")
        bad = ((w < 0).logical_or(w.isfinite().logical_not())).any(1).logical_or(w.sum(1) <= 0)
        if not replacement:
            bad = bad.logical_or(w.count_nonzero(1) < num_samples)
        if bad.any().item():
            raise RuntimeError("multinomial: invalid distribution: weights must be finite and non-negative with "
                               "a positive sum" + ("" if replacement else f", and at least {num_samples} "
                                                   f"nonzero per row (without replacement)"))
        rows = w._shape[0]
        if replacement:
            cum = w.cumsum(1)
            out = self._empty((rows, num_samples), dtypes.int64)
            n = out._numel
            backend.launch(backend.kernel("random", "multinomial_draw", w.dtype), n, out, n,
                           *backend.replayable(_take_counters, n), cum, categories, num_samples)
        else:
            u = self._empty(w._shape, w.dtype).uniform_()
            out = (u.log() / w).topk(num_samples, dim=1).indices
        return out if self.dim() == 2 else out.reshape(num_samples)

    def _randint_(self, low, high):
        """Fill the integer tensor self with uniform integers in [low, high) in place."""
        if self.dtype not in dtypes.INTEGRAL:
            raise TypeError(f"randint: dtype must be int32 or int64, got {self.dtype.name}")
        info = np.iinfo(self.dtype)
        if not info.min <= low < high <= info.max + 1:
            raise ValueError(f"randint: need low < high within {self.dtype.name}, got low={low}, high={high}")
        return self._random_fill("randint_fill", int(low), int(high) - int(low))
