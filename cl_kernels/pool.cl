// Pooling over the planes of an [N, C, H, W] input (1-D pooling is H = 1): max and average windows, and
// adaptive windows. T is float or double. Forward kernels read the input through its four strides and write
// one contiguous output element per work-item; backward kernels are gathers (one input element per
// work-item, summing the outputs whose window holds it: no atomics). Every buffer parameter is followed by
// its element offset.
#include "common.h"

#define IMAGE __global const T* x, int ox, int xn, int xc, int xh, int xw
// the window of output (oh, ow): rows oh*sh - ph + kh*dh for kh < KH, columns likewise
#define WINDOW int C, int H, int W, int KH, int KW, int OH, int OW, int sh, int sw, int ph, int pw, int dh, int dw

// Max over the window (padding never wins; NaN does, as in PyTorch) and the flat position h*W + w it came
// from, kept as T for the backward and for return_indices.
__kernel void max_pool_fwd(__global T* y, int oy, __global T* idx, int oi, IMAGE, WINDOW, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int ow = k % OW; int r = k / OW;
    int oh = r % OH; r /= OH;
    int c = r % C; int n = r / C;
    __global const T* plane = x + ox + n * xn + c * xc;
    T best = (T)(-INFINITY);
    int bi = -1;
    for (int kh = 0; kh < KH; ++kh) {
        int h = oh * sh - ph + kh * dh;
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            int w = ow * sw - pw + kw * dw;
            if (w < 0 || w >= W) continue;
            T v = plane[h * xh + w * xw];
            if (bi < 0 || (best == best && !(v <= best))) { best = v; bi = h * W + w; }
        }
    }
    y[oy + k] = best;
    idx[oi + k] = (T)bi;
}

// dx[n, c, h, w] = the sum of g over the windows holding (h, w) that chose it.
__kernel void max_pool_bwd(__global T* dx, int odx, __global const T* g, int og, __global const T* idx, int oi,
                           WINDOW, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int w = k % W; int r = k / W;
    int h = r % H; int plane = r / H * OH * OW;  // r / H = n*C + c
    T me = (T)(h * W + w), s = ZERO;
    for (int kh = 0; kh < KH; ++kh) {
        int t = h + ph - kh * dh;
        if (t < 0 || t % sh) continue;
        int oh = t / sh;
        if (oh >= OH) continue;
        for (int kw = 0; kw < KW; ++kw) {
            int u = w + pw - kw * dw;
            if (u < 0 || u % sw) continue;
            int ow = u / sw;
            if (ow >= OW) continue;
            int o = plane + oh * OW + ow;
            if (idx[oi + o] == me) s += g[og + o];
        }
    }
    dx[odx + k] = s;
}

// PyTorch's divisor of the average over window (oh, ow): divisor_override if > 0; else with
// count_include_pad the window clipped to the padded image; else the number of input elements it holds.
inline T avg_divisor(int oh, int ow, int H, int W, int KH, int KW, int sh, int sw, int ph, int pw,
                     int count_include_pad, int divisor_override, int* h0, int* h1, int* w0, int* w1) {
    int hs = oh * sh - ph, ws = ow * sw - pw;
    int he = min(hs + KH, H + ph), we = min(ws + KW, W + pw);
    int padded = (he - hs) * (we - ws);
    hs = max(hs, 0); ws = max(ws, 0); he = min(he, H); we = min(we, W);
    *h0 = hs; *h1 = he; *w0 = ws; *w1 = we;
    if (divisor_override > 0) return (T)divisor_override;
    return (T)(count_include_pad ? padded : (he - hs) * (we - ws));
}

__kernel void avg_pool_fwd(__global T* y, int oy, IMAGE, WINDOW, int count_include_pad, int divisor_override,
                           int total) {
    int k = get_global_id(0); if (k >= total) return;
    int ow = k % OW; int r = k / OW;
    int oh = r % OH; r /= OH;
    int c = r % C; int n = r / C;
    __global const T* plane = x + ox + n * xn + c * xc;
    int h0, h1, w0, w1;
    T d = avg_divisor(oh, ow, H, W, KH, KW, sh, sw, ph, pw, count_include_pad, divisor_override, &h0, &h1, &w0, &w1);
    T s = ZERO;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) s += plane[h * xh + w * xw];
    y[oy + k] = s / d;
}

__kernel void avg_pool_bwd(__global T* dx, int odx, __global const T* g, int og, WINDOW, int count_include_pad,
                           int divisor_override, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int w = k % W; int r = k / W;
    int h = r % H; int plane = r / H * OH * OW;
    T s = ZERO;
    for (int kh = 0; kh < KH; ++kh) {
        int t = h + ph - kh;
        if (t < 0 || t % sh) continue;
        int oh = t / sh;
        if (oh >= OH) continue;
        for (int kw = 0; kw < KW; ++kw) {
            int u = w + pw - kw;
            if (u < 0 || u % sw) continue;
            int ow = u / sw;
            if (ow >= OW) continue;
            int h0, h1, w0, w1;
            T d = avg_divisor(oh, ow, H, W, KH, KW, sh, sw, ph, pw, count_include_pad, divisor_override, &h0, &h1,
                              &w0, &w1);
            if (h >= h0 && h < h1 && w >= w0 && w < w1) s += g[og + plane + oh * OW + ow] / d;
        }
    }
    dx[odx + k] = s;
}

// ---- adaptive pooling: output o of O covers input [floor(o*I/O), ceil((o+1)*I/O)) along each axis ---------
#define ADAPTIVE int C, int H, int W, int OH, int OW
#define START(o, I, O) ((o) * (I) / (O))
#define END(o, I, O) (((o) + 1) * (I) + (O) - 1) / (O)

__kernel void adaptive_pool_fwd(__global T* y, int oy, __global T* idx, int oi, IMAGE, ADAPTIVE, int is_max,
                                int total) {
    int k = get_global_id(0); if (k >= total) return;
    int ow = k % OW; int r = k / OW;
    int oh = r % OH; r /= OH;
    int c = r % C; int n = r / C;
    __global const T* plane = x + ox + n * xn + c * xc;
    int h0 = START(oh, H, OH), h1 = END(oh, H, OH), w0 = START(ow, W, OW), w1 = END(ow, W, OW);
    T acc = is_max ? (T)(-INFINITY) : ZERO;
    int bi = -1;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) {
            T v = plane[h * xh + w * xw];
            if (!is_max) acc += v;
            else if (bi < 0 || (acc == acc && !(v <= acc))) { acc = v; bi = h * W + w; }
        }
    y[oy + k] = is_max ? acc : acc / (T)((h1 - h0) * (w1 - w0));
    if (is_max) idx[oi + k] = (T)bi;
}

// Outputs whose window holds input h: o in [floor(h*O/I), ceil((h+1)*O/I)), checked exactly.
__kernel void adaptive_pool_bwd(__global T* dx, int odx, __global const T* g, int og, __global const T* idx,
                                int oi, ADAPTIVE, int is_max, int total) {
    int k = get_global_id(0); if (k >= total) return;
    int w = k % W; int r = k / W;
    int h = r % H; int plane = r / H * OH * OW;
    T me = (T)(h * W + w), s = ZERO;
    int a0 = h * OH / H, a1 = min(OH, ((h + 1) * OH + H - 1) / H);
    int b0 = w * OW / W, b1 = min(OW, ((w + 1) * OW + W - 1) / W);
    for (int oh = a0; oh < a1; ++oh) {
        int h0 = START(oh, H, OH), h1 = END(oh, H, OH);
        if (h < h0 || h >= h1) continue;
        for (int ow = b0; ow < b1; ++ow) {
            int w0 = START(ow, W, OW), w1 = END(ow, W, OW);
            if (w < w0 || w >= w1) continue;
            int o = plane + oh * OW + ow;
            if (is_max) { if (idx[oi + o] == me) s += g[og + o]; }
            else s += g[og + o] / (T)((h1 - h0) * (w1 - w0));
        }
    }
    dx[odx + k] = s;
}
