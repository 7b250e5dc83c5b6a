// Normalisation over channels and groups of an [N, C, S] tensor (S = the spatial positions, 1 for [N, C]):
// batch norm (statistics per channel over N and S), group norm (per sample and group of C/G channels), and
// RMS norm over rows. T is float or double; inputs are contiguous (the host makes them so). Every buffer
// parameter is followed by its element offset; kernels move the pointers they index from 0 first.
//
// The statistics and gradient sums are one work-group per segment (a channel, or a sample's group), its
// work-items striding over the segment and combining their partial sums through local memory; the launches
// pass a power-of-two work-group size and the scratch space (cl.LocalMemory) for it.
#include "common.h"

// Sum of v over the work-group (get_local_size(0) a power of two), returned to every work-item.
inline T group_sum(T v, __local T* scratch) {
    int lid = get_local_id(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = (int)get_local_size(0) / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    T total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);  // the scratch is reused by the next call
    return total;
}

// Runs BODY for every element of a segment of `rows` runs of S contiguous elements, run r starting at
// base + r * outer; `at` is the element's index and `r_` its run. Work-item lid takes elements lid,
// lid + lsize, ... without a division per element.
#define SEGMENT_LOOP(base, rows, outer, S, BODY) {                                              \
    int lid_ = get_local_id(0), lsize_ = get_local_size(0);                                     \
    int r_ = lid_ / (S), p_ = lid_ - r_ * (S);                                                  \
    const int dr_ = lsize_ / (S), dp_ = lsize_ - dr_ * (S);                                     \
    while (r_ < (rows)) {                                                                       \
        int at = (base) + r_ * (outer) + p_;                                                    \
        BODY;                                                                                   \
        p_ += dp_; r_ += dr_;                                                                   \
        if (p_ >= (S)) { p_ -= (S); ++r_; }                                                     \
    } }

// mean and rstd = 1/sqrt(biased var + eps) of segment g (this work-group): rows runs of S elements, run r at
// g * seg_stride + r * outer. Batch norm: segment = channel (seg_stride S, rows N, outer C*S); group norm:
// segment = (n, group) (seg_stride Cg*S, rows Cg, outer S). Two passes over the data (the one-pass formula
// cancels when |mean| >> std). update = 1: also running = (1 - m) running + m batch, with the unbiased
// variance (the biased one when unbiased = 0: the course's channel-last BatchNorm), m = momentum, or
// 1 / (num_batches_tracked + 1) when cumulative (PyTorch's momentum=None; the count, an int64, is advanced by
// norm_apply's first work-item, after every group has read it).
__kernel void norm_stats(__global T* mean, int om, __global T* rstd, int orstd, __global const T* x, int ox,
                         int seg_stride, int rows, int outer, int S, T eps, __global T* run_mean, int orm,
                         __global T* run_var, int orv, __global const long* nbt, int onbt, int update, int unbiased,
                         int cumulative, T momentum, __local T* scratch) {
    int g = get_group_id(0);
    x += ox;
    int base = g * seg_stride, count = rows * S;
    T s = ZERO;
    SEGMENT_LOOP(base, rows, outer, S, s += x[at])
    T mu = group_sum(s, scratch) / (T)count;
    T ss = ZERO;
    SEGMENT_LOOP(base, rows, outer, S, { T d = x[at] - mu; ss += d * d; })
    T var = group_sum(ss, scratch) / (T)count;
    if (get_local_id(0) == 0) {
        mean[om + g] = mu;
        rstd[orstd + g] = ONE / sqrt(var + eps);
        if (update) {
            T m = cumulative ? ONE / ((T)nbt[onbt] + ONE) : momentum;
            T v = !unbiased ? var : (count > 1 ? var * (T)count / (T)(count - 1) : (T)NAN);
            run_mean[orm + g] = (ONE - m) * run_mean[orm + g] + m * mu;
            run_var[orv + g] = (ONE - m) * run_var[orv + g] + m * v;
        }
    }
}

// The element kernels run on a 2-D range, dim 0 the position s < S and dim 1 the plane n * C + c, so the
// channel and statistics index cost no division per element.
#define PLANE_INDEX                                                                             \
    int s_ = get_global_id(0), nc = get_global_id(1);                                          \
    if (s_ >= S || nc >= N * C) return;                                                        \
    int c = nc % C, n = nc / C, i = nc * S + s_;                                                \
    int k = n * G + c / Cg;

// y = (x - mean[k]) * rstd[k] * w[c] + b[c] over x [N, C, S], k = n * G + c / Cg the statistics index (batch
// norm: G = 0, Cg = 1, so k = c). affine: bit 0 scales by w, bit 1 shifts by b. bump = 1: work-item 0 also
// advances the running-stat count (after norm_stats has used it: one in-order queue).
__kernel void norm_apply(__global T* y, int oy, __global const T* x, int ox, __global const T* mean, int om,
                         __global const T* rstd, int orstd, __global const T* w, int ow, __global const T* b,
                         int ob, int affine, int N, int C, int S, int G, int Cg, __global long* nbt, int onbt,
                         int bump) {
    PLANE_INDEX
    y += oy;
    T v = (x[ox + i] - mean[om + k]) * rstd[orstd + k];
    if (affine & 1) v *= w[ow + c];
    if (affine & 2) v += b[ob + c];
    y[i] = v;
    if (bump && i == 0) nbt[onbt] += 1;
}

// Per channel c (this work-group): sum_g[c] = sum of g, sum_gx[c] = sum of g * xhat over n and s, xhat with
// statistics k = n * G + c / Cg (batch norm: the weight and bias gradients, and what its dx needs).
__kernel void channel_grad_sums(__global T* sum_gx, int ogx, __global T* sum_g, int og_, __global const T* g,
                                int og, __global const T* x, int ox, __global const T* mean, int om,
                                __global const T* rstd, int orstd, int N, int C, int S, int G, int Cg,
                                __local T* scratch) {
    int c = get_group_id(0);
    g += og; x += ox; mean += om; rstd += orstd;
    T a = ZERO, bsum = ZERO;
    SEGMENT_LOOP(c * S, N, C * S, S, {
        int k = r_ * G + c / Cg;
        T gv = g[at];
        a += gv;
        bsum += gv * (x[at] - mean[k]) * rstd[k]; })
    a = group_sum(a, scratch);
    bsum = group_sum(bsum, scratch);
    if (get_local_id(0) == 0) { sum_g[og_ + c] = a; sum_gx[ogx + c] = bsum; }
}

// Per sample and group k = n * G + grp (this work-group): sums of g * w[c] and of g * w[c] * xhat over the
// group's Cg channels and S positions (w = 1 when has_w = 0): what group norm's dx needs.
__kernel void group_grad_sums(__global T* sum_gwx, int ogwx, __global T* sum_gw, int ogw, __global const T* g,
                              int og, __global const T* x, int ox, __global const T* mean, int om,
                              __global const T* rstd, int orstd, __global const T* w, int ow, int has_w,
                              int G, int Cg, int S, __local T* scratch) {
    int k = get_group_id(0);
    g += og; x += ox; w += ow;
    T mu = mean[om + k], r = rstd[orstd + k];
    int c0 = (k % G) * Cg;
    T a = ZERO, bsum = ZERO;
    SEGMENT_LOOP(k * Cg * S, Cg, S, S, {
        T gw = has_w ? g[at] * w[c0 + r_] : g[at];
        a += gw;
        bsum += gw * (x[at] - mu) * r; })
    a = group_sum(a, scratch);
    bsum = group_sum(bsum, scratch);
    if (get_local_id(0) == 0) { sum_gw[ogw + k] = a; sum_gwx[ogwx + k] = bsum; }
}

// dx over [N, C, S] with statistics k = n * G + c / Cg over `count` elements each:
//   batch statistics: dx = rstd * (g w - (A + xhat B) / count), A and B the sums of g w and g w xhat over
//   the statistics' segment: per group (sums_per_channel = 0: group_grad_sums, weights included) or per
//   channel (1: channel_grad_sums, without the weight, so multiplied by w[c] here);
//   running statistics (batch norm in eval mode: fixed = 1): dx = rstd * g w.
__kernel void norm_backward(__global T* dx, int odx, __global const T* g, int og, __global const T* x, int ox,
                            __global const T* mean, int om, __global const T* rstd, int orstd,
                            __global const T* w, int ow, int has_w, __global const T* sum_a, int oa,
                            __global const T* sum_b, int ob, int sums_per_channel, int fixed, int N, int C, int S,
                            int G, int Cg, int count) {
    PLANE_INDEX
    dx += odx;
    T wc = has_w ? w[ow + c] : ONE;
    T r = rstd[orstd + k];
    T gw = g[og + i] * wc;
    if (fixed) { dx[i] = r * gw; return; }
    int j = sums_per_channel ? c : k;
    T sw = sums_per_channel ? wc : ONE;
    T xhat = (x[ox + i] - mean[om + k]) * r;
    dx[i] = r * (gw - sw * (sum_a[oa + j] + xhat * sum_b[ob + j]) / (T)count);
}

// ---- RMS norm over rows of x [n, f]: y = x * rrms * w, rrms = 1 / sqrt(mean(x^2) + eps) -------------------
// One row per work-item (rows are short: features); rrms per row is kept for the backward. has_w = 0: w is
// not read.
__kernel void rms_norm_fwd(__global T* y, int oy, __global T* rrms_out, int orr, __global const T* x, int ox,
                           __global const T* w, int ow, int has_w, T eps, int n, int f) {
    int i = get_global_id(0); if (i >= n) return;
    __global const T* row = x + ox + i * f;
    T ss = ZERO;
    for (int j = 0; j < f; ++j) ss += row[j] * row[j];
    T rr = ONE / sqrt(ss / (T)f + eps);
    rrms_out[orr + i] = rr;
    __global T* out = y + oy + i * f;
    for (int j = 0; j < f; ++j) out[j] = has_w ? row[j] * rr * w[ow + j] : row[j] * rr;
}

// dx = rrms * (gw - xhat * mean(gw * xhat)), xhat = x * rrms, gw = g * w (or g); one row per work-item.
__kernel void rms_norm_bwd_input(__global T* dx, int odx, __global const T* g, int og, __global const T* x,
                                 int ox, __global const T* rrms, int orr, __global const T* w, int ow, int has_w,
                                 int n, int f) {
    int i = get_global_id(0); if (i >= n) return;
    __global const T* gr = g + og + i * f;
    __global const T* xr = x + ox + i * f;
    T rr = rrms[orr + i];
    T s = ZERO;
    for (int j = 0; j < f; ++j) s += (has_w ? gr[j] * w[ow + j] : gr[j]) * xr[j];
    s *= rr * rr / (T)f;
    __global T* out = dx + odx + i * f;
    for (int j = 0; j < f; ++j) out[j] = rr * ((has_w ? gr[j] * w[ow + j] : gr[j]) - xr[j] * s);
}

// dw[j] = sum over rows of g * x * rrms; one feature per work-item.
__kernel void rms_norm_bwd_weight(__global T* dw, int odw, __global const T* g, int og, __global const T* x,
                                  int ox, __global const T* rrms, int orr, int n, int f) {
    int j = get_global_id(0); if (j >= f) return;
    T s = ZERO;
    for (int i = 0; i < n; ++i) s += g[og + i * f + j] * x[ox + i * f + j] * rrms[orr + i];
    dw[odw + j] = s;
}
