// Batch image augmentation over [N, C, H, W] images (any strides; N = 1 for one image): random crop with
// padding, horizontal flip and per-channel normalize, each one pass over the whole batch (clownpiece/ops/
// augment.py). T is float or double. A batch's random choices are drawn on the device into a small table
// (crop_flip_params) that crop_flip reads, so no random number crosses to the host.
#include "common.h"
#include "philox.h"

// params[po + 3n + (0, 1, 2)] = (top, left, flip) of image n: top uniform in [0, range_y), left uniform in
// [0, range_x), flip 1 with probability flip_p, else 0; image n draws the Philox block of counter base + n.
// An integer in [0, range) is (r * range) >> 32 of a 32-bit word r (multiply-shift: a bias below
// range / 2^32, and no division).
__kernel void crop_flip_params(__global float* params, int po, int n, uint k0, uint k1, ulong base,
                               uint range_y, uint range_x, float flip_p) {
    int i = get_global_id(0); if (i >= n) return;
    uint4 r = philox_at(base + (ulong)i, k0, k1);
    params[po + 3 * i] = (float)(uint)(((ulong)r.x * (ulong)range_y) >> 32);
    params[po + 3 * i + 1] = (float)(uint)(((ulong)r.y * (ulong)range_x) >> 32);
    params[po + 3 * i + 2] = (float)(r.z >> 8) * 5.9604644775390625e-8f < flip_p ? 1.0f : 0.0f;
}

// Where coordinate c of an axis padded by `pad` before its `size` elements reads from: an index in
// [0, size), or -1 for the fill value. Modes are torchvision's: 0 constant, 1 edge, 2 reflect (the host
// keeps pad < size), 3 symmetric (pad <= size).
inline int unpad(int c, int pad, int size, int mode) {
    c -= pad;
    if (c >= 0 && c < size) return c;
    if (mode == 0) return -1;
    if (mode == 1) return c < 0 ? 0 : size - 1;
    if (mode == 2) return c < 0 ? -c : 2 * size - 2 - c;
    return c < 0 ? -c - 1 : 2 * size - 1 - c;
}

// out[n, c, i, j] (contiguous [N, C, OH, OW]) from x[n, c, ...] (strides sn, sc, sh, sw from element xo):
// image n padded by (pad_t, pad_l) before its H x W (to H1 x W1), padded again by (ext_t, ext_l) before
// that (torchvision's pad_if_needed pads the padded image), cropped at params row n's (top, left) and
// mirrored left-right when its flip entry is 1.
__kernel void crop_flip(__global T* out, int oo, __global const T* x, int xo, __global const float* params,
                        int po, int total, int C, int H, int W, int OH, int OW, int sn, int sc, int sh, int sw,
                        int pad_t, int pad_l, int H1, int W1, int ext_t, int ext_l, int mode, T fill) {
    int g = get_global_id(0); if (g >= total) return;
    int j = g % OW; int rest = g / OW;
    int i = rest % OH; rest /= OH;
    int c = rest % C; int n = rest / C;
    int top = (int)params[po + 3 * n], left = (int)params[po + 3 * n + 1];
    if (params[po + 3 * n + 2] != 0.0f) j = OW - 1 - j;
    int y = unpad(top + i, ext_t, H1, mode), xx = unpad(left + j, ext_l, W1, mode);
    if (y >= 0) y = unpad(y, pad_t, H, mode);
    if (xx >= 0) xx = unpad(xx, pad_l, W, mode);
    out[oo + g] = (y < 0 || xx < 0) ? fill : x[xo + n * sn + c * sc + y * sh + xx * sw];
}

// out[n, c, h, w] (contiguous) = (x[n, c, h, w] - mean[c]) / std[c], torchvision's Normalize in T; a
// step of 0 uses one value for every channel.
__kernel void normalize_channels(__global T* out, int oo, __global const T* x, int xo, __global const T* mean,
                                 int mo, __global const T* stdv, int so, int total, int C, int H, int W, int sn,
                                 int sc, int sh, int sw, int mean_step, int std_step) {
    int g = get_global_id(0); if (g >= total) return;
    int w = g % W; int rest = g / W;
    int h = rest % H; rest /= H;
    int c = rest % C; int n = rest / C;
    out[oo + g] = (x[xo + n * sn + c * sc + h * sh + w * sw] - mean[mo + c * mean_step]) / stdv[so + c * std_step];
}
