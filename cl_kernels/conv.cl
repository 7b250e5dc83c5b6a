// Convolution by im2col + GEMM (the GEMM is matmul.cl's), and padding. T is float or double; one work-item
// per output element, every kernel a gather (no atomics). Every buffer parameter is followed by its element
// offset; kernels move the pointers they index from 0 first.
//
// Geometry: the image x is [N, C, H, W] (read through its strides xn, xc, xh, xw in im2col), split into G
// groups of Cg = C / G channels; the window is KH x KW with dilation (dh, dw), stride (sh, sw) and top/left
// zero padding (ph, pw) (bottom/right padding only shows in the output plane OH x OW, so 'same' padding with
// an even kernel is asymmetric for free).
#include "common.h"

#define GEOMETRY int C, int H, int W, int G, int KH, int KW, int OH, int OW, int sh, int sw, int ph, int pw, \
                 int dh, int dw

// cols[g, (c*KH + kh)*KW + kw, (n*OH + oh)*OW + ow] = x[n, g*Cg + c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// (0 outside the image): the [G, Cg*KH*KW, N*OH*OW] matrix that each group's weights [OC/G, Cg*KH*KW]
// multiply into the convolution's [OC/G, N*OH*OW]. One work-item per (g, c, kh, kw, n, oh) writes the run
// over ow (contiguous, reading one input row): divisions per run, not per element, which on PoCL is what an
// im2col costs.
__kernel void im2col(__global T* cols, int ocols, __global const T* x, int ox, int xn, int xc, int xh, int xw,
                     int N, GEOMETRY, int total) {
    int k = get_global_id(0); if (k >= total) return;  // total = G * Cg*KH*KW * N * OH
    int nh = k % (N * OH), gq = k / (N * OH);
    int oh = nh % OH, n = nh / OH;
    int Cg = C / G, q = gq % (Cg * KH * KW), g = gq / (Cg * KH * KW);
    int kw = q % KW, t = q / KW;
    int kh = t % KH, c = g * Cg + t / KH;
    __global T* out = cols + ocols + (size_t)k * OW;
    int h = oh * sh - ph + kh * dh;
    if (h < 0 || h >= H) {
        for (int ow = 0; ow < OW; ++ow) out[ow] = ZERO;
        return;
    }
    __global const T* row = x + ox + n * xn + c * xc + h * xh;
    int w = kw * dw - pw;
    for (int ow = 0; ow < OW; ++ow, w += sw) out[ow] = (w >= 0 && w < W) ? row[w * xw] : ZERO;
}

// The adjoint of im2col: dx[n, c, h, w] = the sum of the cols entries im2col copied from (h, w), plus
// bias[c] when has_bias (the transposed convolution's output). cols is contiguous [G, Cg*KH*KW, N*OH*OW].
// 2-D range: dim 0 the position h*W + w, dim 1 n*C + c. Tap (kh, kw) read (h, w) for output row
// oh = (h + ph - kh*dh) / sh where that divides and lies in [0, OH) (columns likewise); stride and dilation 1
// take a loop without divisions (integer division is what a gather like this costs on CPUs).
__kernel void col2im(__global T* dx, int odx, __global const T* cols, int ocols, __global const T* bias, int ob,
                     int has_bias, int N, GEOMETRY) {
    int hw = get_global_id(0), nc = get_global_id(1);
    if (hw >= H * W || nc >= N * C) return;
    int w = hw % W, h = hw / W;
    int c = nc % C, n = nc / C;
    int Cg = C / G, g = c / Cg, cl = c - g * Cg;
    int rows = N * OH * OW;
    __global const T* block = cols + ocols + (size_t)(g * Cg + cl) * KH * KW * rows + n * OH * OW;
    T s = has_bias ? bias[ob + c] : ZERO;
    if (sh == 1 && sw == 1 && dh == 1 && dw == 1) {
        int kh0 = max(0, h + ph - (OH - 1)), kh1 = min(KH, h + ph + 1);
        int kw0 = max(0, w + pw - (OW - 1)), kw1 = min(KW, w + pw + 1);
        for (int kh = kh0; kh < kh1; ++kh) {
            __global const T* tap = block + (size_t)kh * KW * rows + (h + ph - kh) * OW + w + pw;
            for (int kw = kw0; kw < kw1; ++kw) s += tap[(size_t)kw * rows - kw];
        }
    } else {
        for (int kh = 0; kh < KH; ++kh) {
            int t = h + ph - kh * dh;
            if (t < 0 || t % sh) continue;
            int oh = t / sh;
            if (oh >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                int u = w + pw - kw * dw;
                if (u < 0 || u % sw) continue;
                int ow = u / sw;
                if (ow < OW) s += block[(size_t)(kh * KW + kw) * rows + oh * OW + ow];
            }
        }
    }
    dx[odx + nc * H * W + hw] = s;
}

// y[n, g*OCg + o, p] = prod[g, o, n*P + p] + bias[g*OCg + o]: the GEMM's [G, OCg, N*P] result (P = OH*OW
// positions) laid out as NCHW, with the bias added in the same pass. 2-D range: dim 0 p, dim 1 n*OC + oc.
__kernel void conv_output(__global T* y, int oy, __global const T* prod, int op, __global const T* bias, int ob,
                          int has_bias, int N, int OC, int P) {
    int p = get_global_id(0), r = get_global_id(1);
    if (p >= P || r >= N * OC) return;
    int oc = r % OC, n = r / OC;
    T v = prod[op + ((size_t)oc * N + n) * P + p];  // g*OCg + o = oc: [G, OCg] rows are the channels in order
    y[oy + (size_t)r * P + p] = has_bias ? v + bias[ob + oc] : v;
}

// The other way: rows[oc, n*P + p] = g[n, oc, p] (the gradient as the GEMM's [G, OCg, N*P] operand).
__kernel void image_to_rows(__global T* rows, int orows, __global const T* g, int og, int gn, int gc, int gp,
                            int N, int OC, int P) {
    int p = get_global_id(0), r = get_global_id(1);
    if (p >= P || r >= N * OC) return;
    int oc = r % OC, n = r / OC;
    rows[orows + ((size_t)oc * N + n) * P + p] = g[og + n * gn + oc * gc + p * gp];
}

// ---- padding of the last two dims: x [B, H, W] -> y [B, H + pt + pb, W + pl + pr] ----------------------
// mode 0 constant (value; pads may be negative: cropping), 1 reflect (without repeating the edge),
// 2 replicate (the edge), 3 circular (wrap around). The host checks the pads fit the mode.
inline int pad_source(int o, int pad, int n, int mode) {
    int i = o - pad;
    if (i >= 0 && i < n) return i;
    if (mode == 1) return i < 0 ? -i : 2 * (n - 1) - i;
    if (mode == 2) return i < 0 ? 0 : n - 1;
    if (mode == 3) return i < 0 ? i + n : i - n;
    return -1;
}

__kernel void pad2d(__global T* y, int oy, __global const T* x, int ox, int H, int W, int pt, int pl, int OH,
                    int OW, int mode, T value, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int ow = k % OW; int r = k / OW;
    int oh = r % OH; int b = r / OH;
    int h = pad_source(oh, pt, H, mode), w = pad_source(ow, pl, W, mode);
    y[oy + k] = (h >= 0 && w >= 0) ? x[ox + (b * H + h) * W + w] : value;
}

// dx[b, h, w] = the sum of g over the output positions pad2d read (h, w) for: the interior one and, for the
// non-constant modes, those in the pad bands (top pt and bottom pb rows, left pl and right pr columns).
__kernel void pad2d_backward(__global T* dx, int odx, __global const T* g, int og, int H, int W, int pt, int pl,
                             int OH, int OW, int mode, int total) {
    int k = get_global_id(0); if (k >= total) return;
    g += og;
    int w = k % W; int r = k / W;
    int h = r % H; int b = r / H;
    int pb = OH - H - pt, pr = OW - W - pl;
    __global const T* plane = g + b * OH * OW;
    T s = ZERO;
    // candidate output rows: the interior one, then the pad bands; each counted once
    int nrows = 1 + (mode ? (pt > 0 ? pt : 0) + (pb > 0 ? pb : 0) : 0);
    int ncols = 1 + (mode ? (pl > 0 ? pl : 0) + (pr > 0 ? pr : 0) : 0);
    for (int a = 0; a < nrows; ++a) {
        int oh = a == 0 ? h + pt : (a <= pt ? a - 1 : H + pt + (a - 1 - pt));
        if (oh < 0 || oh >= OH || (a > 0 && oh >= pt && oh < pt + H)) continue;
        if (pad_source(oh, pt, H, mode) != h) continue;
        for (int c = 0; c < ncols; ++c) {
            int ow = c == 0 ? w + pl : (c <= pl ? c - 1 : W + pl + (c - 1 - pl));
            if (ow < 0 || ow >= OW || (c > 0 && ow >= pl && ow < pl + W)) continue;
            if (pad_source(ow, pl, W, mode) == w) s += plane[oh * OW + ow];
        }
    }
    dx[odx + k] = s;
}
