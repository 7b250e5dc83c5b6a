// Fused neural-network kernels: layer norm (losses: loss.cl, convolution: conv.cl, pooling: pool.cl).
// T is float or double. Row kernels take one row per work-item (rows are short: classes, features);
// everything else is one work-item per output element. Inputs of the row kernels are contiguous (the host
// makes them so). Every buffer parameter is followed by its element offset; kernels move the pointers they
// index from 0 first.
#include "common.h"

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
