"""Augmentation of whole batches on the device: torchvision's RandomCrop, RandomHorizontalFlip, Normalize and
Compose, with their arguments, defaults and errors, applied to a [N, C, H, W] batch (or one [C, H, W] image)
already on the device, each in one or two kernel launches (raw ops: clownpiece/ops/augment.py).

Every image of a batch gets its own random choice, as torchvision gives each sample when the transform runs
per sample in a dataset, so `RandomCrop(32, padding=4)(x)` on a collated batch is distributed as
torchvision's per-sample pipeline. The choices come from clownpiece's generator (`clownpiece.manual_seed`).
`draw(x)` returns them as a float32 table [N, 3] of (top, left, flip); `t(x, params)` applies a given table."""
from __future__ import annotations

import numbers
from typing import Callable, Literal, Optional, Sequence, Union

import numpy as np

from ... import backend
from ..._layout import is_int
from ..._tensor import Tensor
from ...ops import augment as _ops


def _check_p(p, op):
    if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _size_pair(size, op):
    """torchvision's size argument: an int, or a sequence of 1 or 2 ints (h, w)."""
    if is_int(size):
        size = (int(size), int(size))
    elif isinstance(size, (tuple, list)) and len(size) == 1:
        size = (size[0], size[0])
    elif not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"{op}: please provide only two dimensions (h, w) for size, got {size!r}")
    if not all(is_int(s) and s > 0 for s in size):
        raise ValueError(f"{op}: size must hold positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def _padding4(padding, op):
    """torchvision's padding: an int (every side), (left/right, top/bottom) or (left, top, right, bottom)."""
    if padding is None:
        return (0, 0, 0, 0)
    if is_int(padding):
        padding = (padding,)
    if not isinstance(padding, (tuple, list)):
        raise TypeError(f"{op}: got inappropriate padding arg {padding!r}")
    if len(padding) not in (1, 2, 4):
        raise ValueError(f"{op}: padding must be an int or a 1, 2, or 4 element tuple, not a {len(padding)} "
                         f"element tuple")
    if not all(is_int(p) and p >= 0 for p in padding):
        raise ValueError(f"{op}: padding must hold non-negative ints, got {padding!r}")
    p = [int(v) for v in padding]
    return tuple(p * 4 if len(p) == 1 else p * 2 if len(p) == 2 else p)


def _check_pad_fits(pads, h, w, mode, op):
    """torch's rule for reflect (pad < size) and symmetric (pad <= size) padding, per side."""
    left, top, right, bottom = pads
    for pad, size, side in ((left, w, "left"), (right, w, "right"), (top, h, "top"), (bottom, h, "bottom")):
        if (mode == "reflect" and pad >= size) or (mode == "symmetric" and pad > size):
            rule = "less than" if mode == "reflect" else "at most"
            raise ValueError(f"{op}: {mode} padding of {pad} on the {side} must be {rule} the image's size "
                             f"{size} along that dim")


class RandomCrop:
    """torchvision.transforms.RandomCrop(size, padding=None, pad_if_needed=False, fill=0,
    padding_mode="constant") for a batch: each image is padded, then cropped to `size` at its own random
    position."""

    def __init__(self, size: Union[int, Sequence[int]], padding: Union[int, Sequence[int], None] = None,
                 pad_if_needed: bool = False, fill: float = 0,
                 padding_mode: Literal["constant", "edge", "reflect", "symmetric"] = "constant") -> None:
        self.size = _size_pair(size, "RandomCrop")
        if padding is not None and not isinstance(padding, (numbers.Number, tuple, list)):
            raise TypeError(f"RandomCrop: got inappropriate padding arg {padding!r}")
        self._pads = _padding4(padding, "RandomCrop")
        self.padding = padding
        self.pad_if_needed = bool(pad_if_needed)
        if not isinstance(fill, numbers.Real) or isinstance(fill, bool):
            raise TypeError(f"RandomCrop: fill must be a number for tensor images, got {fill!r}")
        self.fill = fill
        if padding_mode not in _ops.PADDING_MODES:
            raise ValueError("RandomCrop: padding mode should be either constant, edge, reflect or symmetric, "
                             f"got {padding_mode!r}")
        self.padding_mode = padding_mode

    def _geometry(self, x):
        """(image shape, the pad_if_needed extra (width, height), the crop position ranges)."""
        (n, c, h, w), _ = _ops.image_layout(x, "RandomCrop")
        left, top, right, bottom = self._pads
        _check_pad_fits(self._pads, h, w, self.padding_mode, "RandomCrop")
        h1, w1 = h + top + bottom, w + left + right
        th, tw = self.size
        ew = tw - w1 if self.pad_if_needed and w1 < tw else 0
        eh = th - h1 if self.pad_if_needed and h1 < th else 0
        _check_pad_fits((ew, eh, ew, eh), h1, w1, self.padding_mode, "RandomCrop (pad_if_needed)")
        h2, w2 = h1 + 2 * eh, w1 + 2 * ew
        if h2 < th or w2 < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than input image size "
                             f"{(h2, w2)}" + (" (after padding)" if h2 != h or w2 != w else ""))
        return n, (ew, eh), (h2 - th + 1, w2 - tw + 1)

    def draw(self, x: Tensor) -> Tensor:
        """The random (top, left, flip = 0) of each image of x: a float32 tensor [N, 3]."""
        n, _, (ry, rx) = self._geometry(x)
        return _ops.draw_params(n, ry, rx, 0.0)

    def __call__(self, x: Tensor, params: Optional[Tensor] = None) -> Tensor:
        n, extra, (ry, rx) = self._geometry(x)
        params = _ops.draw_params(n, ry, rx, 0.0) if params is None else \
            _ops.check_params(params, n, ry, rx, "RandomCrop")
        return _ops.crop_flip(x, params, self.size, self._pads, extra, self.padding_mode, float(self.fill))

    def __repr__(self) -> str:
        return (f"RandomCrop(size={self.size}, padding={self.padding}, pad_if_needed={self.pad_if_needed}, "
                f"fill={self.fill}, padding_mode={self.padding_mode})")


class RandomHorizontalFlip:
    """torchvision.transforms.RandomHorizontalFlip(p=0.5) for a batch: each image is mirrored left-right
    with probability p, independently."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_p(p, "RandomHorizontalFlip")

    def draw(self, x: Tensor) -> Tensor:
        """The random (0, 0, flip) of each image of x: a float32 tensor [N, 3]."""
        (n, _, _, _), _ = _ops.image_layout(x, "RandomHorizontalFlip")
        return _ops.draw_params(n, 1, 1, self.p)

    def __call__(self, x: Tensor, params: Optional[Tensor] = None) -> Tensor:
        (n, _, h, w), _ = _ops.image_layout(x, "RandomHorizontalFlip")
        params = _ops.draw_params(n, 1, 1, self.p) if params is None else \
            _ops.check_params(params, n, 1, 1, "RandomHorizontalFlip")
        return _ops.crop_flip(x, params, (h, w))

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """torchvision.transforms.Normalize(mean, std): (x - mean[c]) / std[c] for every channel c (dim -3),
    computed in x's dtype; mean and std hold 1 or C values."""

    def __init__(self, mean: Union[float, Sequence[float]], std: Union[float, Sequence[float]],
                 inplace: bool = False) -> None:
        if inplace:
            raise NotImplementedError("Normalize: inplace=True is not supported; the result is a new tensor")
        self.mean = self._values(mean, "mean")
        self.std = self._values(std, "std")
        self.inplace = False
        self._uploaded = {}  # (device, dtype) -> (mean, std) tensors

    @staticmethod
    def _values(v, name):
        arr = np.asarray(v, dtype=np.float64).reshape(-1) if not isinstance(v, Tensor) else v.numpy().reshape(-1)
        if arr.size == 0:
            raise ValueError(f"Normalize: {name} is empty")
        return [float(a) for a in arr]

    def __call__(self, x: Tensor) -> Tensor:
        (_, c, _, _), _ = _ops.image_layout(x, "Normalize", min_dim=3)
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, c):
                raise ValueError(f"Normalize: {name} has {len(values)} values for an image of {c} channels "
                                 f"(shape {x.shape}); give 1 or {c}")
        key = (x.device, x.dtype)
        if key not in self._uploaded:
            std = np.asarray(self.std, x.dtype)
            if (std == 0).any():
                raise ValueError(f"std evaluated to zero after conversion to {x.dtype}, leading to division by "
                                 f"zero.")
            with backend.using_device(x.device):
                self._uploaded[key] = (Tensor(np.asarray(self.mean, x.dtype), dtype=x.dtype),
                                       Tensor(std, dtype=x.dtype))
        mean, std = self._uploaded[key]
        return _ops.normalize_channels(x, mean, std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """torchvision.transforms.Compose(transforms): each transform in turn."""

    def __init__(self, transforms: Sequence[Callable[[Tensor], Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose(\n" + "".join(f"    {t}\n" for t in self.transforms) + ")"
