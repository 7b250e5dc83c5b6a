// Fused neural-network kernels: cross-entropy, layer norm, im2col/col2im for convolution, pooling.
// T is float or double. Row kernels take one row per work-item (rows are short: classes, features);
// everything else is one work-item per output element. Inputs of the row kernels are contiguous (the host
// makes them so); image kernels read a strided NCHW input through its four strides. Every buffer parameter
// is followed by its element offset; kernels move the pointers they index from 0 first.
#include "common.h"

#define NEG_INF ((T)(-INFINITY))

// ---- cross-entropy over rows of logits x [n, c] with class-index targets t [n] ------------------------
// loss[i] = logsumexp(x[i]) - x[i, t[i]], the row max subtracted first so +-1e4 logits stay finite.
// lse[i] is kept for the backward. A target that is not an integer in [0, c) gives a NaN loss: checking
// device data on the host would need a sync.
__kernel void cross_entropy_fwd(__global T* loss, int oloss, __global T* lse, int olse, __global const T* x,
                                int ox, __global const T* t, int ot, int n, int c) {
    int i = get_global_id(0); if (i >= n) return;
    loss += oloss; lse += olse;
    __global const T* row = x + ox + i * c;
    T m = NEG_INF;
    for (int j = 0; j < c; ++j) { T v = row[j]; m = v > m ? v : m; }
    T s = ZERO;
    for (int j = 0; j < c; ++j) s += exp(row[j] - m);
    T l = m + log(s);
    T target = t[ot + i];
    int k = (int)target;
    lse[i] = l;
    loss[i] = (target >= ZERO && target < (T)c && (T)k == target) ? l - row[k] : (T)NAN;
}

// dx[i, j] = (softmax(x[i])[j] - (j == t[i])) * g[i * gs] * scale; gs = 0 for a reduced loss.
__kernel void cross_entropy_bwd(__global T* dx, int odx, __global const T* x, int ox, __global const T* lse,
                                int olse, __global const T* t, int ot, __global const T* g, int og, int gs,
                                T scale, int n, int c) {
    int k = get_global_id(0); if (k >= n * c) return;
    dx += odx; lse += olse;
    int i = k / c, j = k - i * c;
    T p = exp(x[ox + k] - lse[i]);
    dx[k] = (p - (T)((T)j == t[ot + i])) * g[og + i * gs] * scale;
}

// ---- layer norm over rows of x [n, f]: y = (x - mean) * rstd * w + b, biased variance -----------------
// mean and rstd per row are kept for the backward. affine: bit 0 scales by w, bit 1 shifts by b (an absent
// one is not read).
__kernel void layer_norm_fwd(__global T* y, int oy, __global T* mean_out, int om, __global T* rstd_out,
                             int orstd, __global const T* x, int ox, __global const T* w, int ow,
                             __global const T* b, int ob, int affine, T eps, int n, int f) {
    int i = get_global_id(0); if (i >= n) return;
    y += oy; mean_out += om; rstd_out += orstd;
    __global const T* row = x + ox + i * f;
    T s = ZERO;
    for (int j = 0; j < f; ++j) s += row[j];
    T mean = s / (T)f;
    T ss = ZERO;  // two passes: the one-pass formula cancels badly when |mean| >> std
    for (int j = 0; j < f; ++j) { T d = row[j] - mean; ss += d * d; }
    T rstd = ONE / sqrt(ss / (T)f + eps);
    mean_out[i] = mean;
    rstd_out[i] = rstd;
    __global T* out = y + i * f;
    for (int j = 0; j < f; ++j) {
        T v = (row[j] - mean) * rstd;
        T o = (affine & 1) ? v * w[ow + j] : v;
        out[j] = (affine & 2) ? o + b[ob + j] : o;
    }
}

// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)) with gw = g * w (or g), one row per work-item.
__kernel void layer_norm_bwd_input(__global T* dx, int odx, __global const T* g, int og, __global const T* x,
                                   int ox, __global const T* mean, int om, __global const T* rstd, int orstd,
                                   __global const T* w, int ow, int affine, int n, int f) {
    int i = get_global_id(0); if (i >= n) return;
    dx += odx; g += og; mean += om; rstd += orstd;
    __global const T* gr = g + i * f;
    __global const T* xr = x + ox + i * f;
    T mu = mean[i], r = rstd[i];
    T a = ZERO, bsum = ZERO;
    for (int j = 0; j < f; ++j) {
        T gw = affine ? gr[j] * w[ow + j] : gr[j];
        a += gw;
        bsum += gw * (xr[j] - mu) * r;
    }
    a /= (T)f;
    bsum /= (T)f;
    __global T* out = dx + i * f;
    for (int j = 0; j < f; ++j) {
        T gw = affine ? gr[j] * w[ow + j] : gr[j];
        out[j] = r * (gw - a - (xr[j] - mu) * r * bsum);
    }
}

// dw[j] = sum_i g[i, j] * xhat[i, j], db[j] = sum_i g[i, j]; one feature per work-item.
__kernel void layer_norm_bwd_affine(__global T* dw, int odw, __global T* db, int odb, __global const T* g,
                                    int og, __global const T* x, int ox, __global const T* mean, int om,
                                    __global const T* rstd, int orstd, int n, int f) {
    int j = get_global_id(0); if (j >= f) return;
    dw += odw; db += odb; g += og; mean += om; rstd += orstd;
    T sw = ZERO, sb = ZERO;
    for (int i = 0; i < n; ++i) {
        T gv = g[i * f + j];
        sw += gv * (x[ox + i * f + j] - mean[i]) * rstd[i];
        sb += gv;
    }
    dw[j] = sw;
    db[j] = sb;
}

// ---- convolution geometry -----------------------------------------------------------------------------
// The image x is [N, C, H, W] read through strides (xn, xc, xh, xw) from offset ox; the output plane is
// OH x OW; the window is KH x KW with stride (sh, sw) and zero padding (ph, pw).
#define IMG_ARGS __global const T* x, int ox, int xn, int xc, int xh, int xw, int C, int H, int W, \
                 int KH, int KW, int OH, int OW, int sh, int sw, int ph, int pw

// cols[(n*OH + oh)*OW + ow, (c*KH + kh)*KW + kw] = x[n, c, oh*sh - ph + kh, ow*sw - pw + kw] (0 outside).
__kernel void im2col(__global T* cols, int ocols, IMG_ARGS, int total) {
    int k = get_global_id(0); if (k >= total) return;
    cols += ocols;
    int ckk = C * KH * KW;
    int r = k / ckk, q = k - r * ckk;
    int ow = r % OW; r /= OW;
    int oh = r % OH; int n = r / OH;
    int kw = q % KW; q /= KW;
    int kh = q % KH; int c = q / KH;
    int h = oh * sh - ph + kh, w = ow * sw - pw + kw;
    cols[k] = (h >= 0 && h < H && w >= 0 && w < W) ? x[ox + n * xn + c * xc + h * xh + w * xw] : ZERO;
}

// First and one-past-last output positions whose window covers input position p along one axis.
#define COVER(p, pad, K, S, O, lo, hi)                                  \
    int lo = (p) + (pad) - (K) + 1; lo = lo > 0 ? (lo + (S) - 1) / (S) : 0; \
    int hi = ((p) + (pad)) / (S) + 1; hi = hi < (O) ? hi : (O);

// dx[n, c, h, w] = sum of the cols entries that im2col copied from it (a gather: no atomics needed).
__kernel void col2im(__global T* dx, int odx, __global const T* cols, int ocols, int C, int H, int W, int KH,
                     int KW, int OH, int OW, int sh, int sw, int ph, int pw, int total) {
    int k = get_global_id(0); if (k >= total) return;
    dx += odx; cols += ocols;
    int w = k % W; int r = k / W;
    int h = r % H; r /= H;
    int c = r % C; int n = r / C;
    COVER(h, ph, KH, sh, OH, oh0, oh1)
    COVER(w, pw, KW, sw, OW, ow0, ow1)
    int ckk = C * KH * KW;
    T s = ZERO;
    for (int oh = oh0; oh < oh1; ++oh) {
        int kh = h + ph - oh * sh;
        for (int ow = ow0; ow < ow1; ++ow) {
            int kw = w + pw - ow * sw;
            s += cols[((n * OH + oh) * OW + ow) * ckk + (c * KH + kh) * KW + kw];
        }
    }
    dx[k] = s;
}

// ---- pooling ------------------------------------------------------------------------------------------
// Output y [N, C, OH, OW] contiguous, one element per work-item. Max pooling also writes the flat index
// h*W + w of the chosen input in its plane (as T), NaN wins like in PyTorch; padding never wins.
__kernel void max_pool2d_fwd(__global T* y, int oy, __global T* idx, int oi, IMG_ARGS, int total) {
    int k = get_global_id(0); if (k >= total) return;
    y += oy; idx += oi;
    int ow = k % OW; int r = k / OW;
    int oh = r % OH; r /= OH;
    int c = r % C; int n = r / C;
    T best = NEG_INF;
    int bi = -1;
    for (int kh = 0; kh < KH; ++kh) {
        int h = oh * sh - ph + kh;
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            int w = ow * sw - pw + kw;
            if (w < 0 || w >= W) continue;
            T v = x[ox + n * xn + c * xc + h * xh + w * xw];
            if (bi < 0 || (best == best && !(v <= best))) { best = v; bi = h * W + w; }
        }
    }
    y[k] = best;
    idx[k] = (T)bi;
}

// dx[n, c, h, w] = sum of g over the windows covering (h, w) that chose it; g and idx contiguous.
__kernel void max_pool2d_bwd(__global T* dx, int odx, __global const T* g, int og, __global const T* idx,
                             int oi, int C, int H, int W, int KH, int KW, int OH, int OW, int sh, int sw,
                             int ph, int pw, int total) {
    int k = get_global_id(0); if (k >= total) return;
    dx += odx; g += og; idx += oi;
    int w = k % W; int r = k / W;
    int h = r % H; r /= H;
    int plane = r * OH * OW;  // r = n*C + c
    COVER(h, ph, KH, sh, OH, oh0, oh1)
    COVER(w, pw, KW, sw, OW, ow0, ow1)
    T me = (T)(h * W + w), s = ZERO;
    for (int oh = oh0; oh < oh1; ++oh)
        for (int ow = ow0; ow < ow1; ++ow) {
            int o = plane + oh * OW + ow;
            if (idx[o] == me) s += g[o];
        }
    dx[k] = s;
}

// Average pooling counts the zero padding in the divisor (PyTorch's count_include_pad=True).
__kernel void avg_pool2d_fwd(__global T* y, int oy, IMG_ARGS, int total) {
    int k = get_global_id(0); if (k >= total) return;
    y += oy;
    int ow = k % OW; int r = k / OW;
    int oh = r % OH; r /= OH;
    int c = r % C; int n = r / C;
    T s = ZERO;
    for (int kh = 0; kh < KH; ++kh) {
        int h = oh * sh - ph + kh;
        if (h < 0 || h >= H) continue;
        for (int kw = 0; kw < KW; ++kw) {
            int w = ow * sw - pw + kw;
            if (w >= 0 && w < W) s += x[ox + n * xn + c * xc + h * xh + w * xw];
        }
    }
    y[k] = s / (T)(KH * KW);
}

__kernel void avg_pool2d_bwd(__global T* dx, int odx, __global const T* g, int og, int C, int H, int W,
                             int KH, int KW, int OH, int OW, int sh, int sw, int ph, int pw, int total) {
    int k = get_global_id(0); if (k >= total) return;
    dx += odx; g += og;
    int w = k % W; int r = k / W;
    int h = r % H; r /= H;
    int plane = r * OH * OW;
    COVER(h, ph, KH, sh, OH, oh0, oh1)
    COVER(w, pw, KW, sw, OW, ow0, ow1)
    T s = ZERO;
    for (int oh = oh0; oh < oh1; ++oh)
        for (int ow = ow0; ow < ow1; ++ow) s += g[plane + oh * OW + ow];
    dx[k] = s / (T)(KH * KW);
}
