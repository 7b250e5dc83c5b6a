// Reductions, built per input dtype (common.h: T_MEM is the stored element, T what arithmetic happens in).
// sum accumulates floating inputs in T (float for float16) and bool/integer inputs in long: its output is
// the input dtype for floats, int64 otherwise (PyTorch), and its partials are ACC. max/min take every dtype
// and give int64 indices. var/std and the softmax family take floating inputs only (float16 goes through
// float32 on the host for the softmax family).
//
// A reduction sees its input as (kept dims) x (reduced dims). Both arrive from the host as collapsed
// kernel_meta layouts (innermost first, int8 vectors): KMETA maps an output index to the offset of its
// first input element, RMETA maps a reduction index j (row-major over the reduced dims) to an offset
// relative to that. Work-item gid = p * nout + o reduces indices [p*chunk, min((p+1)*chunk, nred)) of
// output o. With nchunk == 1 it writes the final value; otherwise it writes partial [p][o] and a *_partials
// kernel combines the nchunk partials of each output (two-stage reduction: few outputs and long
// reductions, or column-like reductions whose short chunks keep neighbouring work-items on the same rows).
// Partials are p-major so that neighbouring work-items read neighbouring outputs' elements.
//
// Row kernels (softmax family) take one work-item per row along a single dim with its stride.
// Every buffer parameter is followed by its element offset; kernels that index their outputs from 0 move
// the pointer first (`out += oo`).
#include "common.h"

#define IMIN(a, b) ((a) < (b) ? (a) : (b))

#define KMETA int knd, int8 ksh, int8 kst
#define RMETA int rnd, int8 rsh, int8 rst

// Runs STEP(x, j) for reduction indices J0 <= j < J1 in order, reading x = a[...] from `base`. The
// innermost reduced dim is a plain strided loop; outer reduced dims advance like an odometer, so no
// division happens per element.
#define FOR_REDUCED(J0, J1, STEP) {                                                               \
    LOAD8(rsh); LOAD8(rst);                                                                       \
    int c_[8]; int q_ = (J0) / rsh_[0]; int c0_ = (J0) - q_ * rsh_[0]; int row_ = base;          \
    for (int k_ = 1; k_ < rnd; ++k_) { c_[k_] = q_ % rsh_[k_]; q_ /= rsh_[k_]; row_ += c_[k_] * rst_[k_]; } \
    for (int j_ = (J0); j_ < (J1);) {                                                             \
        int run_ = IMIN(rsh_[0] - c0_, (J1) - j_);                                                \
        int p_ = row_ + c0_ * rst_[0];                                                            \
        for (int e_ = 0; e_ < run_; ++e_, p_ += rst_[0]) { T x = LD(a, p_); int j = j_ + e_; STEP(x, j) } \
        j_ += run_; c0_ = 0;                                                                      \
        for (int k_ = 1; k_ < rnd; ++k_) {                                                        \
            row_ += rst_[k_]; if (++c_[k_] < rsh_[k_]) break;                                     \
            row_ -= rsh_[k_] * rst_[k_]; c_[k_] = 0; } } }

// Common prologue: which output / chunk this work-item owns and where its input starts.
#define REDUCE_PROLOGUE                                                                           \
    int gid = get_global_id(0); if (gid >= nout * nchunk) return;                                 \
    int p = gid / nout; int o = gid - p * nout; int j0 = p * chunk; int j1 = IMIN(j0 + chunk, nred); \
    int base = oa + strided_offset(o, knd, ksh, kst);  // output o's first input element

// Summation in blocks: plain adds into `b` (short dependency chain, fast), and every 64 terms `b` joins the
// total with a compensated (Kahan) add, so float32 sums of millions of terms stay accurate. The
// compensation is dropped once the total is inf/NaN so an infinite term gives inf, not inf - inf = NaN.
// Integer sums are exact: plain adds in long.
#define KAHAN_ADD(s, c, v) { T y_ = (v) - c; T t_ = s + y_; c = (t_ - t_ == ZERO) ? (t_ - s) - y_ : ZERO; s = t_; }
#ifdef IS_FLOAT
#define ACC T
#define SUM_DECL(s) T s = ZERO, s##_c = ZERO, s##_b = ZERO; int s##_n = 0;
#define SUM_ADD(s, v) { s##_b += (v); if (++s##_n == 64) { KAHAN_ADD(s, s##_c, s##_b) s##_b = ZERO; s##_n = 0; } }
#define SUM_END(s) KAHAN_ADD(s, s##_c, s##_b)
#define SUM_OUT T_MEM
#define ST_SUM(p, i, v) ST(p, i, v)
#else
#define ACC long
#define SUM_DECL(s) long s = 0;
#define SUM_ADD(s, v) { s += (long)(v); }
#define SUM_END(s)
#define SUM_OUT long
#define ST_SUM(p, i, v) ((p)[i] = (v))
#endif

// ---- sum / mean: out = sum / denom (mean: floating inputs only) ------------------------------------
// One stage writes out; with several chunks each work-item writes its partial sum to part (ACC).
#define SUM_STEP(x, j) SUM_ADD(s, x)

__kernel void sum_r(__global SUM_OUT* out, int oo, __global ACC* part, int op, __global const T_MEM* a, int oa,
                    int nout, int nred, int chunk, int nchunk, ACC denom, KMETA, RMETA) {
    REDUCE_PROLOGUE
    SUM_DECL(s)
    FOR_REDUCED(j0, j1, SUM_STEP)
    SUM_END(s)
    if (nchunk == 1) ST_SUM(out, oo + gid, s / denom);
    else part[op + gid] = s;
}

__kernel void sum_partials(__global SUM_OUT* out, int oo, __global const ACC* part, int op, int nout,
                           int nchunk, ACC denom) {
    int o = get_global_id(0); if (o >= nout) return;
    part += op;
    SUM_DECL(s)
    for (int p = 0; p < nchunk; ++p) SUM_ADD(s, part[p * nout + o])
    SUM_END(s)
    ST_SUM(out, oo + o, s / denom);
}

// ---- max / min with the index of the first occurrence; NaN wins (and stays) ------------------------
// Strict comparisons keep the first of equal values; v == v fails once v is NaN, so the first NaN stays.
// Values keep the input's dtype (partials too: an element is stored exactly); indices are int64.
#define MAX_STEP(x, j) if (v == v && (x > v || x != x)) { v = x; vi = j; }
#define MIN_STEP(x, j) if (v == v && (x < v || x != x)) { v = x; vi = j; }

#define EXTREMUM(NAME, STEP, INIT)                                                                \
__kernel void NAME##_r(__global T_MEM* vals, int ov, __global long* idx, int oi, __global const T_MEM* a, int oa, \
                       int nout, int nred, int chunk, int nchunk, int want_idx, KMETA, RMETA) {   \
    REDUCE_PROLOGUE                                                                               \
    T v = INIT; long vi = j0;                                                                     \
    FOR_REDUCED(j0, j1, STEP)                                                                     \
    ST(vals, ov + gid, v); if (want_idx) idx[oi + gid] = vi;                                      \
}                                                                                                 \
__kernel void NAME##_partials(__global T_MEM* vals, int ov, __global long* idx, int oi, __global const T_MEM* pv, \
                              int opv, __global const long* pi, int opi, int nout, int nchunk,   \
                              int want_idx) {                                                     \
    int o = get_global_id(0); if (o >= nout) return;                                              \
    pi += opi;                                                                                    \
    T v = LD(pv, opv + o); long vi = pi[o];                                                       \
    for (int p = 1; p < nchunk; ++p) { T x = LD(pv, opv + p * nout + o); long j = pi[p * nout + o]; STEP(x, j) } \
    ST(vals, ov + o, v); if (want_idx) idx[oi + o] = vi;                                          \
}

EXTREMUM(max, MAX_STEP, T_LOWEST)  // max_r, max_partials
EXTREMUM(min, MIN_STEP, T_HIGHEST) // min_r, min_partials

#ifdef IS_FLOAT  // the rest: floating dtypes only
// ---- var / std: two passes (mean, then centred squares) per chunk; chunks merge with Chan's formula --
// out = M2 / (n - ddof), square-rooted when take_sqrt. Partials: mean in out, M2 in m2.
#define MEAN_STEP(x, j) SUM_ADD(s, x)
#define M2_STEP(x, j) { T d_ = x - mean; SUM_ADD(sq, d_ * d_) dsum += d_; }

inline T var_finish(T m2, T n, T ddof, int take_sqrt) {
    T v = m2 / (n - ddof);
    return take_sqrt ? sqrt(v) : v;
}

// One stage writes out; with several chunks each work-item writes its chunk's mean and M2 (in T).
__kernel void var_r(__global T_MEM* out, int oo, __global T* pmean, int opm, __global T* pm2, int opm2,
                    __global const T_MEM* a, int oa, int nout, int nred, int chunk, int nchunk, T ddof,
                    int take_sqrt, KMETA, RMETA) {
    REDUCE_PROLOGUE
    T n = (T)(j1 - j0);
    SUM_DECL(s)
    FOR_REDUCED(j0, j1, MEAN_STEP)
    SUM_END(s)
    T mean = s / n;
    T dsum = ZERO;
    SUM_DECL(sq)
    FOR_REDUCED(j0, j1, M2_STEP)
    SUM_END(sq)
    sq -= dsum * dsum / n;  // corrected two-pass: removes the rounding error left in `mean`
    if (nchunk == 1) { ST(out, oo + gid, var_finish(sq, n, ddof, take_sqrt)); }
    else { pmean[opm + gid] = mean; pm2[opm2 + gid] = sq; }
}

__kernel void var_partials(__global T_MEM* out, int oo, __global const T* pmean, int opm,
                           __global const T* pm2, int opm2, int nout, int nchunk, int chunk, int nred, T ddof,
                           int take_sqrt) {
    int o = get_global_id(0); if (o >= nout) return;
    pmean += opm; pm2 += opm2;
    T n = ZERO, mean = ZERO, sq = ZERO;
    for (int p = 0; p < nchunk; ++p) {
        T nb = (T)IMIN(chunk, nred - p * chunk);
        T mb = pmean[p * nout + o];
        T delta = mb - mean;
        T ntot = n + nb;
        mean += delta * (nb / ntot);
        sq += pm2[p * nout + o] + delta * delta * (n * nb / ntot);
        n = ntot;
    }
    ST(out, oo + o, var_finish(sq, n, ddof, take_sqrt));
}

#ifndef IS_HALF  // the softmax family: float and double (float16 goes through float32 on the host)
// ---- row kernels: one work-item per row of length len along one dim ---------------------------------
// META maps a row index to the row's start ia, ib, ic in up to three operands (strides sa, sb, sc, offsets
// oa, ob, oc) over the kept dims.
#define ROW_PROLOGUE                                                                              \
    int r = get_global_id(0); if (r >= nrows) return;                                             \
    int ia = oa, ib = ob, ic = oc;                                                                \
    OFFSETS(r, ia, ib, ic);

// Row max and sum of exp(x - max). An all -inf row has max -inf and gives NaN like PyTorch, except where
// the caller shifts by 0 instead (logsumexp).
#define ROW_MAX(m, A, IA, SA) T m = -INFINITY;                                                    \
    for (int t = 0; t < len; ++t) { T x = A[IA + t * SA]; m = (x > m || x != x) ? x : m; }
#define ROW_SUMEXP(s, m, A, IA, SA) SUM_DECL(s)                                                   \
    for (int t = 0; t < len; ++t) SUM_ADD(s, exp(A[IA + t * SA] - m)) SUM_END(s)

// mode 0: softmax, 1: log_softmax. Output rows start at ib and step by so.
__kernel void softmax_rows(__global T* out, int ob, __global const T* a, int oa, int nrows, int len, int sra,
                           int so, int mode, META) {
    int oc = 0;
    ROW_PROLOGUE
    ROW_MAX(m, a, ia, sra)
    if (mode == 0) {  // one exp per element: store exp(x - m), then scale (a sum of positive terms)
        T s = ZERO;
        for (int t = 0; t < len; ++t) { T e = exp(a[ia + t * sra] - m); out[ib + t * so] = e; s += e; }
        T inv = (T)1 / s;
        for (int t = 0; t < len; ++t) out[ib + t * so] *= inv;
    } else {
        ROW_SUMEXP(s, m, a, ia, sra)
        T ls = log(s);  // (x - m) - log(s): adding m to log(s) first would round away its digits
        for (int t = 0; t < len; ++t) out[ib + t * so] = (a[ia + t * sra] - m) - ls;
    }
}

// ---- contiguous rows: row r at oa + r * len, output row r at r * len ----------------------------------
// The usual case (last dim of a contiguous tensor). PoCL runs a work-group's work-items as a loop, which is
// not vectorised when each work-item loops over its row, so the row loops are written on 8-wide vectors
// (vload8/vstore8 take any element-aligned address): 8 independent lanes (one long dependency chain stalls),
// and no scalar pass that reads the row back.
#define VEC_(t, n) t##n
#define VEC(t, n) VEC_(t, n)
#define T8 VEC(T, 8)
#define MAX_IN(m, x) m = (x > m || x != x) ? x : m;

// m = max of row p[0 .. len), NaN winning: lane k of the vector takes the elements t + k, the tail lane 0.
#define ROW_MAX_C(m, p) T m; {                                                                      \
    T8 m_ = (T8)(-INFINITY); int t = 0;                                                           \
    for (; t + 8 <= len; t += 8) { T8 v_ = vload8(0, (p) + t); m_ = select(m_, v_, (v_ > m_) | (v_ != v_)); } \
    T m0_ = m_.s0, m1_ = m_.s1, m2_ = m_.s2, m3_ = m_.s3, m4_ = m_.s4, m5_ = m_.s5, m6_ = m_.s6, m7_ = m_.s7; \
    for (; t < len; ++t) MAX_IN(m0_, (p)[t])                                                      \
    MAX_IN(m0_, m1_) MAX_IN(m2_, m3_) MAX_IN(m4_, m5_) MAX_IN(m6_, m7_)                           \
    MAX_IN(m0_, m2_) MAX_IN(m4_, m6_) MAX_IN(m0_, m4_) m = m0_; }

// s = sum of the row's terms: 8 lanes per block of 64 terms, blocks joined with KAHAN_ADD so long float32
// rows stay accurate (as SUM_ADD does). TERM8(e, t) sets the vector e to terms t .. t + 7 and TERM(e, t) the
// scalar e to term t (a block's tail, added to lane 0); either may also store what it computed.
#define ROW_SUM_C(s, TERM8, TERM) T s = ZERO; { T c_ = ZERO; int t = 0;                             \
    while (t < len) {                                                                             \
        int end_ = IMIN(len, t + 64); T8 b_ = (T8)(ZERO);                                         \
        for (; t + 8 <= end_; t += 8) { T8 e_; TERM8(e_, t) b_ += e_; }                           \
        T b0_ = b_.s0;                                                                            \
        for (; t < end_; ++t) { T e_; TERM(e_, t) b0_ += e_; }                                    \
        KAHAN_ADD(s, c_, ((b0_ + b_.s1) + (b_.s2 + b_.s3)) + ((b_.s4 + b_.s5) + (b_.s6 + b_.s7))) } }

#define ROWS_C_PROLOGUE int r = get_global_id(0); if (r >= nrows) return; __global T* y = out + r * len;
#define EXP_STORED8(e, t) e = exp(vload8(0, x + (t)) - (T8)(m)); vstore8(e, 0, y + (t));
#define EXP_STORED(e, t) e = exp(x[t] - m); y[t] = e;
#define EXP_SHIFTED8(e, t) e = exp(vload8(0, x + (t)) - (T8)(m));
#define EXP_SHIFTED(e, t) e = exp(x[t] - m);
#define G_AT8(e, t) e = vload8(0, g + (t));
#define G_AT(e, t) e = g[t];
#define GY_AT8(e, t) e = vload8(0, g + (t)) * vload8(0, yv + (t));
#define GY_AT(e, t) e = g[t] * yv[t];

__kernel void softmax_rows_c(__global T* out, int oo, __global const T* a, int oa, int nrows, int len,
                             int mode) {
    out += oo;
    ROWS_C_PROLOGUE
    __global const T* x = a + oa + r * len;
    ROW_MAX_C(m, x)
    ROW_SUM_C(s, EXP_STORED8, EXP_STORED)  // y = exp(x - m), summed as it is stored
    if (mode == 0) {
        T inv = ONE / s;
        for (int t = 0; t < len; ++t) y[t] *= inv;
    } else {
        T ls = log(s);  // (x - m) - log(s), as softmax_rows
        for (int t = 0; t < len; ++t) y[t] = (x[t] - m) - ls;
    }
}

__kernel void logsumexp_rows_c(__global T* out, int oo, __global const T* a, int oa, int nrows, int len) {
    int r = get_global_id(0); if (r >= nrows) return;
    out += oo;
    __global const T* x = a + oa + r * len;
    ROW_MAX_C(m0, x)
    T m = (m0 - m0 == ZERO) ? m0 : ZERO;  // as logsumexp_rows
    ROW_SUM_C(s, EXP_SHIFTED8, EXP_SHIFTED)
    out[r] = m + log(s);
}

// As softmax_grad_rows (mode 0: softmax, 1: log_softmax) for contiguous g, y.
__kernel void softmax_grad_rows_c(__global T* out, int oo, __global const T* ga, int og, __global const T* ya,
                                  int oy, int nrows, int len, int mode) {
    out += oo;
    ROWS_C_PROLOGUE
    __global const T* g = ga + og + r * len;
    __global const T* yv = ya + oy + r * len;
    if (mode == 0) {
        ROW_SUM_C(s, GY_AT8, GY_AT)
        for (int t = 0; t < len; ++t) y[t] = yv[t] * (g[t] - s);
    } else {
        ROW_SUM_C(s, G_AT8, G_AT)
        for (int t = 0; t < len; ++t) y[t] = g[t] - exp(yv[t]) * s;
    }
}

// out[r] = log(sum(exp(row))); an infinite max shifts by 0 so that all -inf rows give -inf.
__kernel void logsumexp_rows(__global T* out, int oo, __global const T* a, int oa, int nrows, int len, int sra,
                             META) {
    int ob = 0, oc = 0;
    ROW_PROLOGUE
    out += oo;
    ROW_MAX(m0, a, ia, sra)
    T m = (m0 - m0 == ZERO) ? m0 : ZERO;
    ROW_SUMEXP(s, m, a, ia, sra)
    out[r] = m + log(s);
}

// Backward of the softmax family; g is the incoming gradient, y the forward output.
// mode 0 (softmax):     out = y * (g - sum(g * y))
// mode 1 (log_softmax): out = g - exp(y) * sum(g)
__kernel void softmax_grad_rows(__global T* out, int oc, __global const T* g, int oa, __global const T* y,
                                int ob, int nrows, int len, int srg, int sry, int so, int mode, META) {
    ROW_PROLOGUE
    T s = ZERO;
    if (mode == 0) {
        for (int t = 0; t < len; ++t) s += g[ia + t * srg] * y[ib + t * sry];
        for (int t = 0; t < len; ++t) { T yv = y[ib + t * sry]; out[ic + t * so] = yv * (g[ia + t * srg] - s); }
    } else {
        for (int t = 0; t < len; ++t) s += g[ia + t * srg];
        for (int t = 0; t < len; ++t) out[ic + t * so] = g[ia + t * srg] - exp(y[ib + t * sry]) * s;
    }
}
#endif  // !IS_HALF
#endif  // IS_FLOAT
