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

// cols[g, (n*OH + oh)*OW + ow, (c*KH + kh)*KW + kw] = x[n, g*Cg + c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// (0 outside the image): the [G, N*OH*OW, Cg*KH*KW] matrix whose product with each group's weights
// [Cg*KH*KW, OC/G] is the convolution.
__kernel void im2col(__global T* cols, int ocols, __global const T* x, int ox, int xn, int xc, int xh, int xw,
                     int N, GEOMETRY, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int Cg = C / G, ckk = Cg * KH * KW, rows = N * OH * OW;
    int q = k % ckk, r = k / ckk;
    int row = r % rows, g = r / rows;
    int ow = row % OW; row /= OW;
    int oh = row % OH; int n = row / OH;
    int kw = q % KW; q /= KW;
    int kh = q % KH; int c = g * Cg + q / KH;
    int h = oh * sh - ph + kh * dh, w = ow * sw - pw + kw * dw;
    cols[ocols + k] = (h >= 0 && h < H && w >= 0 && w < W) ? x[ox + n * xn + c * xc + h * xh + w * xw] : ZERO;
}

// The adjoint of im2col: dx[n, c, h, w] = the sum of the cols entries im2col copied from (h, w), plus
// bias[c] when has_bias (the transposed convolution's output). cols is contiguous [G, N*OH*OW, Cg*KH*KW].
__kernel void col2im(__global T* dx, int odx, __global const T* cols, int ocols, __global const T* bias, int ob,
                     int has_bias, int N, GEOMETRY, int total) {
    int k = get_global_id(0); if (k >= total) return;
    cols += ocols;
    int w = k % W; int r = k / W;
    int h = r % H; r /= H;
    int c = r % C; int n = r / C;
    int Cg = C / G, g = c / Cg, cl = c - g * Cg;
    int ckk = Cg * KH * KW;
    __global const T* block = cols + (g * N + n) * OH * OW * ckk + cl * KH * KW;
    T s = has_bias ? bias[ob + c] : ZERO;
    for (int kh = 0; kh < KH; ++kh) {
        int t = h + ph - kh * dh;
        if (t < 0 || t % sh) continue;
        int oh = t / sh;
        if (oh >= OH) continue;
        for (int kw = 0; kw < KW; ++kw) {
            int u = w + pw - kw * dw;
            if (u < 0 || u % sw) continue;
            int ow = u / sw;
            if (ow < OW) s += block[(oh * OW + ow) * ckk + kh * KW + kw];
        }
    }
    dx[odx + k] = s;
}

// y[n, g*OCg + o, p] = prod[g, n*P + p, o] + bias[g*OCg + o]: the GEMM's [G, N*P, OCg] result (P = OH*OW
// positions) laid out as NCHW, with the bias added in the same pass.
__kernel void conv_output(__global T* y, int oy, __global const T* prod, int op, __global const T* bias, int ob,
                          int has_bias, int N, int G, int OCg, int P, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int p = k % P; int r = k / P;
    int oc = r % (G * OCg); int n = r / (G * OCg);
    int g = oc / OCg, o = oc - g * OCg;
    T v = prod[op + ((g * N + n) * P + p) * OCg + o];
    y[oy + k] = has_bias ? v + bias[ob + oc] : v;
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
