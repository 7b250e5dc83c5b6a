// Loss kernels (raw ops: clownpiece/ops/loss.py): cross-entropy and NLL over a class dim, binary
// cross-entropy on probabilities and on logits. T is float or double. Class-index targets are TGT
// (-DTGT=long for int64 targets, PyTorch's; by default T: the course's float targets). -DNLL builds the
// class kernels for log-probabilities (nll_loss: no log-sum-exp). Every buffer parameter is followed by its
// element offset; kernels move the pointers they write from 0 first.
//
// Class layout: x is contiguous [B, C, D] (PyTorch's [N, C, d1, ...] with D = d1 * ...; the course's [..., C]
// is D = 1); position i = b * D + s of the n = B * D positions has its class j at x[b*C*D + j*D + s].
#include "common.h"

#define NEG_INF ((T)(-INFINITY))
#ifndef TGT
#define TGT T
#endif

// The class index of target value v, or -1 when v is not an integer in [0, c).
inline int class_of(TGT v, int c) {
    int k = (int)v;
    return (v >= (TGT)0 && v < (TGT)c && (TGT)k == v) ? k : -1;
}

// ---- class-index targets ----------------------------------------------------------------------------
// loss[i] = (1 - eps) * w[t] * (lse - x[t]) + eps / C * sum_j w[j] * (lse - x[j])  (lse = 0 for NLL, eps = 0)
// and wt[i] = w[t] (the 'mean' divisor's share), both 0 where t == ignore_index; a target that is no class
// makes both NaN and is reported to the error word err (backend/checks.py: raised at the next host read).
// lse[i] is kept for the backward. has_w = 0: every w[j] is 1 (w is not read).
__kernel void class_loss_fwd(__global T* loss, int oloss, __global T* wt, int owt, __global T* lse, int olse,
                             __global const T* x, int ox, __global const TGT* t, int ot, __global const T* w,
                             int ow, int has_w, int ignore_index, T eps, __global int* err, int code, int n,
                             int c, int d) {
    int i = get_global_id(0); if (i >= n) return;
    loss += oloss; wt += owt; lse += olse;
    int b = i / d, s = i - b * d;
    __global const T* row = x + ox + b * c * d + s;  // class j at row[j * d]
    T l = ZERO;
#ifndef NLL
    T m = NEG_INF;
    for (int j = 0; j < c; ++j) { T v = row[j * d]; m = v > m ? v : m; }
    T sum = ZERO;
    for (int j = 0; j < c; ++j) sum += exp(row[j * d] - m);
    l = m + log(sum);
    lse[i] = l;
#endif
    TGT target = t[ot + i];
    if (target == (TGT)ignore_index) { loss[i] = ZERO; wt[i] = ZERO; return; }
    int k = class_of(target, c);
    if (k < 0) {
        report_error(err, code, (long)target, c);
        loss[i] = (T)NAN; wt[i] = (T)NAN; return;
    }
    T wk = has_w ? w[ow + k] : ONE;
    T v = wk * (l - row[k * d]);
#ifndef NLL
    if (eps != ZERO) {
        T smooth = ZERO;
        for (int j = 0; j < c; ++j) smooth += (has_w ? w[ow + j] : ONE) * (l - row[j * d]);
        v = (ONE - eps) * v + eps / (T)c * smooth;
    }
#endif
    loss[i] = v;
    wt[i] = wk;
}

// d loss / d x[b, j, s] = g[i * gs] / div * ((1 - eps) * w[t] * (p_j - [j == t]) + eps / C * (W * p_j - w[j])),
// p = softmax of the position's classes (0 for NLL), W = wsum[0], the sum of the weights (C without them:
// wsum is not read); 0 where t == ignore_index, NaN where t is no class. gs = 0 for a reduced loss; div =
// dv[0], the 'mean' divisor, where has_div (else 1: dv is not read).
__kernel void class_loss_bwd(__global T* dx, int odx, __global const T* x, int ox, __global const T* lse,
                             int olse, __global const TGT* t, int ot, __global const T* w, int ow, int has_w,
                             __global const T* wsum, int owsum, __global const T* g, int og, int gs,
                             __global const T* dv, int odv, int has_div, int ignore_index, T eps, int n, int c,
                             int d) {
    int e = get_global_id(0); if (e >= n * c) return;
    dx += odx;
    int cd = c * d;
    int b = e / cd, r = e - b * cd;
    int j = r / d, s = r - j * d;
    int i = b * d + s;
    TGT target = t[ot + i];
    if (target == (TGT)ignore_index) { dx[e] = ZERO; return; }
    int k = class_of(target, c);
    if (k < 0) { dx[e] = (T)NAN; return; }
    T wk = has_w ? w[ow + k] : ONE;
    T hit = (T)(j == k);
#ifdef NLL
    T v = -wk * hit;
#else
    T p = exp(x[ox + e] - lse[olse + i]);
    T v = wk * (p - hit);
    if (eps != ZERO) {
        T wj = has_w ? w[ow + j] : ONE;
        v = (ONE - eps) * v + eps / (T)c * ((has_w ? wsum[owsum] : (T)c) * p - wj);
    }
#endif
    T gi = g[og + i * gs];
    dx[e] = v * (has_div ? gi / dv[odv] : gi);
}

#ifndef NLL
// ---- class-probability targets (same shape as x) -------------------------------------------------------
// q_j = t_j * (1 - eps) + eps / C; loss[i] = sum_j w[j] * q_j * (lse - x_j); qw[i] = sum_j w[j] * q_j and lse[i]
// are kept for the backward.
__kernel void prob_loss_fwd(__global T* loss, int oloss, __global T* qw, int oqw, __global T* lse, int olse,
                            __global const T* x, int ox, __global const T* t, int ot, __global const T* w,
                            int ow, int has_w, T eps, int n, int c, int d) {
    int i = get_global_id(0); if (i >= n) return;
    loss += oloss; qw += oqw; lse += olse;
    int b = i / d, s = i - b * d;
    int base = b * c * d + s;
    __global const T* row = x + ox + base;
    __global const T* trow = t + ot + base;
    T m = NEG_INF;
    for (int j = 0; j < c; ++j) { T v = row[j * d]; m = v > m ? v : m; }
    T sum = ZERO;
    for (int j = 0; j < c; ++j) sum += exp(row[j * d] - m);
    T l = m + log(sum);
    T acc = ZERO, q_sum = ZERO;
    for (int j = 0; j < c; ++j) {
        T q = (trow[j * d] * (ONE - eps) + eps / (T)c) * (has_w ? w[ow + j] : ONE);
        acc += q * (l - row[j * d]);
        q_sum += q;
    }
    loss[i] = acc;
    qw[i] = q_sum;
    lse[i] = l;
}

// dx = g * (p_j * qw - w_j * q_j); dt = g * (1 - eps) * w_j * (lse - x_j) (written when need_dt).
__kernel void prob_loss_bwd(__global T* dx, int odx, __global T* dt, int odt, __global const T* x, int ox,
                            __global const T* t, int ot, __global const T* w, int ow, int has_w,
                            __global const T* lse, int olse, __global const T* qw, int oqw,
                            __global const T* g, int og, int gs, int need_dt, T eps, int n, int c, int d) {
    int e = get_global_id(0); if (e >= n * c) return;
    dx += odx; dt += odt;
    int cd = c * d;
    int b = e / cd, r = e - b * cd;
    int j = r / d, s = r - j * d;
    int i = b * d + s;
    T wj = has_w ? w[ow + j] : ONE;
    T l = lse[olse + i];
    T xv = x[ox + e];
    T gi = g[og + i * gs];
    T q = t[ot + e] * (ONE - eps) + eps / (T)c;
    dx[e] = gi * (exp(xv - l) * qw[oqw + i] - wj * q);
    if (need_dt) dt[e] = gi * (ONE - eps) * wj * (l - xv);
}

// ---- binary cross-entropy, elementwise over contiguous same-shaped x and t -------------------------------
// On probabilities x: -(t * log(x) + (1 - t) * log(1 - x)), each log clamped to >= -100 (PyTorch's). An x
// outside [0, 1] (or NaN), which PyTorch refuses, is reported to the error word err; its loss is NaN. The
// target is not checked (PyTorch does not either).
__kernel void bce_fwd(__global T* out, int oo, __global const T* x, int ox, __global const T* t, int ot,
                      __global int* err, int code, int n) {
    int i = get_global_id(0); if (i >= n) return;
    T xv = x[ox + i], tv = t[ot + i];
    if (!(xv >= ZERO && xv <= ONE)) {
        report_error(err, code, FLOAT_BITS(xv), sizeof(T));
        out[oo + i] = (T)NAN; return;
    }
    out[oo + i] = (tv - ONE) * fmax(log1p(-xv), (T)-100) - tv * fmax(log(xv), (T)-100);
}

// dx = g * (x - t) / max(x * (1 - x), 1e-12); dt = g * (log(1 - x) - log(x)) (when need_dt).
__kernel void bce_bwd(__global T* dx, int odx, __global T* dt, int odt, __global const T* g, int og,
                      __global const T* x, int ox, __global const T* t, int ot, int need_dt, int n) {
    int i = get_global_id(0); if (i >= n) return;
    T xv = x[ox + i], gv = g[og + i];
    dx[odx + i] = gv * (xv - t[ot + i]) / fmax((ONE - xv) * xv, (T)1e-12);
    if (need_dt) dt[odt + i] = gv * (log1p(-xv) - log(xv));
}

// log(sigmoid(v)) without overflow: min(v, 0) - log1p(exp(-|v|)).
inline T log_sigmoid(T v) { return fmin(v, ZERO) - log1p(exp(-fabs(v))); }

// On logits x, with pos_weight p (has_p; else 1): (1 - t) * x - (1 + (p - 1) * t) * log_sigmoid(x).
__kernel void bce_logits_fwd(__global T* out, int oo, __global const T* x, int ox, __global const T* t, int ot,
                             __global const T* p, int op, int has_p, int n) {
    int i = get_global_id(0); if (i >= n) return;
    T xv = x[ox + i], tv = t[ot + i];
    T lw = has_p ? ONE + (p[op + i] - ONE) * tv : ONE;
    out[oo + i] = (ONE - tv) * xv - lw * log_sigmoid(xv);
}

// dx = g * ((p * t + 1 - t) * sigmoid(x) - p * t); dt = g * ((1 - p) * log_sigmoid(x) - x);
// dp = -g * t * log_sigmoid(x) (dt, dp written when need_dt, need_dp).
__kernel void bce_logits_bwd(__global T* dx, int odx, __global T* dt, int odt, __global T* dp, int odp,
                             __global const T* g, int og, __global const T* x, int ox, __global const T* t,
                             int ot, __global const T* p, int op, int has_p, int need_dt, int need_dp, int n) {
    int i = get_global_id(0); if (i >= n) return;
    T xv = x[ox + i], tv = t[ot + i], gv = g[og + i];
    T pv = has_p ? p[op + i] : ONE;
    T pt = pv * tv;
    T sig = ONE / (ONE + exp(-xv));
    dx[odx + i] = gv * ((pt + ONE - tv) * sig - pt);
    T ls = log_sigmoid(xv);
    if (need_dt) dt[odt + i] = gv * ((ONE - pv) * ls - xv);
    if (need_dp) dp[odp + i] = -gv * tv * ls;
}
#endif
