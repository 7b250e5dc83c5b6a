// Resampling of the planes of [N, C, H, W] (1-D: H = 1) by nearest, nearest-exact or (bi)linear
// interpolation, with PyTorch's source-index rules. T is float or double; one output element per work-item
// forward, one input element per work-item backward (a gather over the outputs that read it: no atomics).
// Every buffer parameter is followed by its element offset.
//
// Along each axis, output position d reads input positions i0 and i1 with weights 1 - l and l:
//   nearest        i0 = i1 = min(floor(d * fs), in - 1)           (fs in float, as PyTorch computes it)
//   nearest-exact  i0 = i1 = min(floor((d + 0.5) * fs), in - 1)
//   linear         src = s * d (align_corners) or max(s * (d + 0.5) - 0.5, 0); i0 = floor(src),
//                  i1 = i0 + 1 except at the last input, l = src - i0
#include "common.h"

#define NEAREST 0
#define LINEAR 1
#define NEAREST_EXACT 2

inline void source(int d, int in, float fs, T s, int mode, int align, int* i0, int* i1, T* l) {
    if (mode != LINEAR) {
        int i = (int)floor(((float)d + (mode == NEAREST_EXACT ? 0.5f : 0.0f)) * fs);
        *i0 = *i1 = min(i, in - 1);
        *l = ZERO;
        return;
    }
    T src = align ? s * (T)d : s * ((T)d + (T)0.5) - (T)0.5;
    if (src < ZERO) src = ZERO;
    int i = (int)src;
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l = src - (T)i;
}

// The weight input position i has in output position d.
inline T weight_of(int d, int i, int in, float fs, T s, int mode, int align) {
    int i0, i1;
    T l;
    source(d, in, fs, s, mode, align, &i0, &i1, &l);
    return (i0 == i ? ONE - l : ZERO) + (i1 == i ? l : ZERO);
}

#define AXES int C, int H, int W, int OH, int OW, float fsh, float fsw, T sh, T sw, int mode, int align

__kernel void upsample_fwd(__global T* y, int oy, __global const T* x, int ox, int xn, int xc, int xh, int xw,
                           AXES, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int ow = k % OW; int r = k / OW;
    int oh = r % OH; r /= OH;
    int c = r % C; int n = r / C;
    __global const T* p = x + ox + n * xn + c * xc;
    int h0, h1, w0, w1;
    T lh, lw;
    source(oh, H, fsh, sh, mode, align, &h0, &h1, &lh);
    source(ow, W, fsw, sw, mode, align, &w0, &w1, &lw);
    T a = (ONE - lw) * p[h0 * xh + w0 * xw] + lw * p[h0 * xh + w1 * xw];
    T b = (ONE - lw) * p[h1 * xh + w0 * xw] + lw * p[h1 * xh + w1 * xw];
    y[oy + k] = (ONE - lh) * a + lh * b;
}

// The output positions along an axis that can read input position i: a range around the inverse map,
// widened by 2 and checked exactly by weight_of; the last input also gets the clamped tail.
inline void readers(int i, int in, int out, float fs, T s, int mode, int align, int* lo, int* hi) {
    T scale = mode == LINEAR ? s : (T)fs;
    if (scale <= ZERO) { *lo = 0; *hi = out; return; }
    T shift = (mode == LINEAR && !align) ? (T)0.5 * s - (T)0.5 : (mode == NEAREST_EXACT ? (T)0.5 * scale : ZERO);
    *lo = max(0, (int)floor(((T)(i - 1) - shift) / scale) - 2);
    *hi = i == in - 1 ? out : min(out, (int)ceil(((T)(i + 1) - shift) / scale) + 2);
}

__kernel void upsample_bwd(__global T* dx, int odx, __global const T* g, int og, AXES, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int w = k % W; int r = k / W;
    int h = r % H; int plane = r / H * OH * OW;
    int a0, a1, b0, b1;
    readers(h, H, OH, fsh, sh, mode, align, &a0, &a1);
    readers(w, W, OW, fsw, sw, mode, align, &b0, &b1);
    T s = ZERO;
    for (int oh = a0; oh < a1; ++oh) {
        T wh = weight_of(oh, h, H, fsh, sh, mode, align);
        if (wh == ZERO) continue;
        for (int ow = b0; ow < b1; ++ow) {
            T ww = weight_of(ow, w, W, fsw, sw, mode, align);
            if (ww != ZERO) s += wh * ww * g[og + plane + oh * OW + ow];
        }
    }
    dx[odx + k] = s;
}
