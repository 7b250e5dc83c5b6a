"""Batch image augmentation, the raw ops (kernels in cl_kernels/augment.cl; the transforms users call are in
clownpiece.utils.data.transforms): random crop with padding, horizontal flip and per-channel normalize over
a [N, C, H, W] batch ([C, H, W] and [H, W] are one image), each one or two launches for the whole batch,
whatever N is.

Random choices come from clownpiece's generator (manual_seed), drawn on the device: one Philox block per
image fills a float32 table params [N, 3] of (top, left, flip), which crop_flip reads. A caller may pass a
table of its own to replay or check a choice. Nothing here records gradients: these ops are for data."""
import numpy as np

from .. import backend
from .._tensor import TensorBase
from ..backend.dtypes import require_float
from .half import is_half, through_float32
from .random import _take_counters

PADDING_MODES = {"constant": 0, "edge": 1, "reflect": 2, "symmetric": 3}
_INT_MAX = 2 ** 31 - 1


def image_layout(x, op, min_dim=2):
    """(N, C, H, W) and the element strides (sn, sc, sh, sw) of an image batch, after checking x."""
    if not isinstance(x, TensorBase):
        raise TypeError(f"{op}: expected a clownpiece tensor of images, got {type(x).__name__}")
    require_float(x, op)
    if getattr(x, "requires_grad", False):
        raise RuntimeError(f"{op}: the input requires grad; augmentation does not record gradients (apply it to "
                           f"data batches, or to x.detach())")
    if not min_dim <= x.dim() <= 4:
        forms = "[N, C, H, W], [C, H, W] or [H, W]" if min_dim == 2 else "[N, C, H, W] or [C, H, W]"
        raise ValueError(f"{op}: expected images {forms}, got shape {x.shape}")
    shape = (1,) * (4 - x.dim()) + tuple(x._shape)
    strides = (0,) * (4 - x.dim()) + tuple(x._strides)
    span = x._offset + sum((s - 1) * abs(st) for s, st in zip(shape, strides) if s)
    if span > _INT_MAX or int(np.prod(shape)) > _INT_MAX:
        raise ValueError(f"{op}: a batch of shape {x.shape} is too large for 32-bit indexing; split it")
    return shape, strides


def draw_params(n, range_y, range_x, flip_p):
    """params [n, 3] float32: per image a top in [0, range_y), a left in [0, range_x) and a flip (1.0 with
    probability flip_p, else 0.0), from clownpiece's generator; one launch."""
    params = TensorBase._empty((n, 3), np.dtype(np.float32))
    # replayable: under clownpiece.jit every replay takes fresh counters, so each batch draws anew
    backend.launch(backend.kernel("augment", "crop_flip_params", np.dtype(np.float32)), n, params, n,
                   *backend.replayable(_take_counters, n), int(range_y), int(range_x), float(flip_p))
    return params


def check_params(params, n, range_y, range_x, op):
    """A caller's params table, checked on the host (it is read back: a table that draw_params made needs no
    check, one from elsewhere could make the kernel read outside the image)."""
    if not isinstance(params, TensorBase) or params.dtype != np.float32 or params.shape != [n, 3]:
        raise ValueError(f"{op}: params must be a float32 tensor of shape [{n}, 3] (top, left, flip per image), "
                         f"got {getattr(params, 'dtype', '')} {getattr(params, 'shape', type(params).__name__)}")
    table = params.numpy()
    if n and not ((table == np.round(table)).all() and (0 <= table[:, 0]).all() and (table[:, 0] < range_y).all()
                  and (0 <= table[:, 1]).all() and (table[:, 1] < range_x).all()
                  and np.isin(table[:, 2], (0, 1)).all()):
        raise ValueError(f"{op}: params rows must be (top in [0, {range_y}), left in [0, {range_x}), flip 0 or 1) "
                         f"as ints, got {table.tolist()}")
    return params if params.is_contiguous() else params.contiguous()


def crop_flip(x, params, size, padding=(0, 0, 0, 0), extra=(0, 0), mode="constant", fill=0.0):
    """Each image of x padded by `padding` (left, top, right, bottom), then by `extra` (width, height) on both
    sides, cropped to `size` (h, w) at its params row's (top, left) and mirrored left-right where its flip is 1:
    a new contiguous tensor of x's leading dims and size; one launch. The caller checks the geometry."""
    if is_half(x):
        return through_float32(crop_flip, (x, params, size, padding, extra, mode, fill), {}, mixed=True)
    (n, c, h, w), (sn, sc, sh, sw) = image_layout(x, "crop_flip")
    oh, ow = size
    pl, pt, pr, pb = padding
    out_shape = tuple(x._shape[:-2]) + (oh, ow)
    out = x._empty(out_shape, x.dtype)
    total = n * c * oh * ow
    backend.launch(backend.kernel("augment", "crop_flip", x.dtype), total, out, x, params, total, c, h, w, oh, ow,
                   sn, sc, sh, sw, pt, pl, h + pt + pb, w + pl + pr, extra[1], extra[0], PADDING_MODES[mode],
                   backend.kernel_number(x.dtype, fill))
    return out


def normalize_channels(x, mean, std):
    """(x - mean[c]) / std[c] per channel c (dim -3) of every image: a new contiguous tensor; one launch.
    mean and std are 1-D tensors of x's dtype with 1 or C values."""
    if is_half(x):
        return through_float32(normalize_channels, (x, mean, std), {})
    (n, c, h, w), (sn, sc, sh, sw) = image_layout(x, "normalize", min_dim=3)
    out = x._empty(tuple(x._shape), x.dtype)
    total = n * c * h * w
    backend.launch(backend.kernel("augment", "normalize_channels", x.dtype), total, out, x, mean, std, total, c, h,
                   w, sn, sc, sh, sw, int(mean._numel > 1), int(std._numel > 1))
    return out
