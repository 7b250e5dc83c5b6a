// Fused scaled dot-product attention: out = softmax(scale * q k^T + masks) v, per batch element, with
// causal masking, up to two masks and dropout on the probabilities, without materialising the [L, S] scores.
//
// Forward: one work-item per query row i. It streams the keys in blocks of BK, keeping the running row
// maximum m, the running sum l of exp(s - m) and the accumulated output acc (the online softmax of flash
// attention: a new block maximum rescales l and acc once). It writes out_i = acc / l and the row's
// log-sum-exp (m + log l) for the backward. A row every key of which is masked out gives 0 (PyTorch's
// safe softmax) and an infinite log-sum-exp, so its probabilities are 0 in the backward.
//
// Backward (the probabilities recomputed as exp(s - lse), never stored): sdpa_bwd_q, one work-item per
// query row, computes D_i = dO_i . O_i and dq_i = scale * sum_j P_ij (dP_ij - D_i) k_j, dP_ij = dO_i . v_j;
// sdpa_bwd_kv, one work-item per key row, dv_j = sum_i P~_ij dO_i (P~ with dropout) and
// dk_j = scale * sum_i dS_ij q_i; sdpa_bwd_mask, one work-item per score, dS_ij for an additive mask that
// needs a gradient. Nothing is summed across work-items: no atomics.
//
// Tensors are read and written through strides: two batch dims (b0 < B0, b1 < B1), row and column (so a
// MultiheadAttention's [B, L, H, D] buffers serve as [B, H, L, D] without copies); lse and D are
// contiguous [B, L] (b = b0 * B1 + b1). A mask's kind:
// 0 none, 1 added to the scores, 2 keep where non-zero (PyTorch's boolean attn_mask of SDPA), 3 drop where
// non-zero (MultiheadAttention's boolean masks). Dropout keeps a probability with chance `keep` (scaled by
// 1/keep), the draw for score (b, i, j) being Philox block base + (b * L + i) * S + j, so the backward
// regenerates the forward's choices. HE and HV (head sizes of q/k and v) and BK are -D defines; T is float
// or double. Every buffer parameter is followed by its element offset.
#include "common.h"
#include "philox.h"

#define VIEW(t) __global const T* t, int o_##t, int t##_b0, int t##_b1, int t##_r, int t##_c
#define OUT_VIEW(t) __global T* t, int o_##t, int t##_b0, int t##_b1, int t##_r, int t##_c
#define AT(t, b0, b1, row, col) t[o_##t + (b0) * t##_b0 + (b1) * t##_b1 + (row) * t##_r + (col) * t##_c]
#define MASK(m) VIEW(m), int m##_kind
#define SCORE_ARGS int B1, int L, int S, T scale, int causal, MASK(ma), MASK(mb), T keep, uint k0, uint k1, \
                   ulong base
#define NEG_INF ((T)(-INFINITY))

inline T mask_term(T v, int kind) {
    if (kind == 1) return v;
    if (kind == 2) return v != ZERO ? ZERO : NEG_INF;
    return v != ZERO ? NEG_INF : ZERO;
}

// scale * q_i . k_j plus the masks, or -inf where a mask or causality excludes (i, j).
#define SCORE(dot_expr)                                                                         \
    (causal && j > i) ? NEG_INF : ((dot_expr) * scale                                           \
        + (ma_kind ? mask_term(AT(ma, b0, b1, i, j), ma_kind) : ZERO)                            \
        + (mb_kind ? mask_term(AT(mb, b0, b1, i, j), mb_kind) : ZERO))

// 1/keep if score (b, i, j) survives dropout, else 0 (1 without dropout).
inline T dropout_factor(T keep, uint k0, uint k1, ulong base, int b, int L, int S, int i, int j) {
    if (keep >= ONE) return ONE;
    uint4 r = philox_at(base + ((ulong)b * (ulong)L + (ulong)i) * (ulong)S + (ulong)j, k0, k1);
    return UNIT(r.x, r.y) < keep ? ONE / keep : ZERO;
}

#define ROW_INDEX(n)                                                                            \
    int gid = get_global_id(0); if (gid >= total) return;                                       \
    int n = gid % (n##_count); int b = gid / (n##_count);                                       \
    int b1 = b % B1, b0 = b / B1;

__kernel void sdpa_fwd(OUT_VIEW(out), __global T* lse, int o_lse, VIEW(q), VIEW(k), VIEW(v),
                       SCORE_ARGS, int total) {
    const int i_count = L;
    ROW_INDEX(i)
    T qi[HE], acc[HV], s[BK];
    for (int e = 0; e < HE; ++e) qi[e] = AT(q, b0, b1, i, e);
    for (int e = 0; e < HV; ++e) acc[e] = ZERO;
    T m = NEG_INF, l = ZERO;
    int end = causal ? min(S, i + 1) : S;
    for (int j0 = 0; j0 < end; j0 += BK) {
        int n = min(BK, end - j0);
        T bm = NEG_INF;
        for (int t = 0; t < n; ++t) {
            int j = j0 + t;
            T d = ZERO;
            for (int e = 0; e < HE; ++e) d += qi[e] * AT(k, b0, b1, j, e);
            s[t] = SCORE(d);
            bm = s[t] > bm ? s[t] : bm;
        }
        if (!(bm > NEG_INF)) continue;  // every key of the block masked out
        T mn = bm > m ? bm : m;
        T corr = exp(m - mn);
        l *= corr;
        for (int e = 0; e < HV; ++e) acc[e] *= corr;
        for (int t = 0; t < n; ++t) {
            T p = exp(s[t] - mn);
            l += p;
            T pd = p * dropout_factor(keep, k0, k1, base, b, L, S, i, j0 + t);
            if (pd != ZERO)
                for (int e = 0; e < HV; ++e) acc[e] += pd * AT(v, b0, b1, j0 + t, e);
        }
        m = mn;
    }
    T inv = l > ZERO ? ONE / l : ZERO;
    for (int e = 0; e < HV; ++e) AT(out, b0, b1, i, e) = acc[e] * inv;
    lse[o_lse + gid] = l > ZERO ? m + log(l) : (T)INFINITY;
}

// dq like q; D_i = dO_i . O_i (o: the forward's output, dout: its gradient).
__kernel void sdpa_bwd_q(OUT_VIEW(dq), __global T* D, int o_D, VIEW(q), VIEW(k), VIEW(v), VIEW(o), VIEW(dout),
                         __global const T* lse, int o_lse, SCORE_ARGS, int total) {
    const int i_count = L;
    ROW_INDEX(i)
    T qi[HE], dqi[HE], doi[HV];
    for (int e = 0; e < HE; ++e) { qi[e] = AT(q, b0, b1, i, e); dqi[e] = ZERO; }
    T di = ZERO;
    for (int e = 0; e < HV; ++e) { doi[e] = AT(dout, b0, b1, i, e); di += doi[e] * AT(o, b0, b1, i, e); }
    D[o_D + gid] = di;
    T li = lse[o_lse + gid];
    int end = causal ? min(S, i + 1) : S;
    for (int j = 0; j < end; ++j) {
        T d = ZERO;
        for (int e = 0; e < HE; ++e) d += qi[e] * AT(k, b0, b1, j, e);
        T p = exp((SCORE(d)) - li);
        if (p == ZERO) continue;
        T f = dropout_factor(keep, k0, k1, base, b, L, S, i, j);
        T dp = ZERO;
        if (f != ZERO)
            for (int e = 0; e < HV; ++e) dp += doi[e] * AT(v, b0, b1, j, e);
        T ds = p * (dp * f - di);
        for (int e = 0; e < HE; ++e) dqi[e] += ds * AT(k, b0, b1, j, e);
    }
    for (int e = 0; e < HE; ++e) AT(dq, b0, b1, i, e) = dqi[e] * scale;
}

// dk like k, dv like v; one key row j per work-item.
__kernel void sdpa_bwd_kv(OUT_VIEW(dk), OUT_VIEW(dv), VIEW(q), VIEW(k), VIEW(v), VIEW(dout), __global const T* lse,
                          int o_lse, __global const T* D, int o_D, SCORE_ARGS, int total) {
    const int j_count = S;
    ROW_INDEX(j)
    T kj[HE], vj[HV], dkj[HE], dvj[HV];
    for (int e = 0; e < HE; ++e) { kj[e] = AT(k, b0, b1, j, e); dkj[e] = ZERO; }
    for (int e = 0; e < HV; ++e) { vj[e] = AT(v, b0, b1, j, e); dvj[e] = ZERO; }
    for (int i = causal ? j : 0; i < L; ++i) {
        int row = b * L + i;
        T d = ZERO;
        for (int e = 0; e < HE; ++e) d += AT(q, b0, b1, i, e) * kj[e];
        T p = exp((SCORE(d)) - lse[o_lse + row]);
        if (p == ZERO) continue;
        T f = dropout_factor(keep, k0, k1, base, b, L, S, i, j);
        T dp = ZERO;
        if (f != ZERO)
            for (int e = 0; e < HV; ++e) {
                T g = AT(dout, b0, b1, i, e);
                dp += g * vj[e];
                dvj[e] += p * f * g;
            }
        T ds = p * (dp * f - D[o_D + row]);
        for (int e = 0; e < HE; ++e) dkj[e] += ds * AT(q, b0, b1, i, e);
    }
    for (int e = 0; e < HE; ++e) AT(dk, b0, b1, j, e) = dkj[e] * scale;
    for (int e = 0; e < HV; ++e) AT(dv, b0, b1, j, e) = dvj[e];
}

// dscores [B, L, S] contiguous: the gradient of the scores (and so of an additive mask), one per work-item.
__kernel void sdpa_bwd_mask(__global T* dmask, int o_dm, VIEW(q), VIEW(k), VIEW(v), VIEW(dout),
                            __global const T* lse, int o_lse, __global const T* D, int o_D, SCORE_ARGS, int total) {
    int gid = get_global_id(0); if (gid >= total) return;
    int j = gid % S; int row = gid / S;
    int i = row % L; int b = row / L;
    int b1 = b % B1, b0 = b / B1;
    T d = ZERO;
    for (int e = 0; e < HE; ++e) d += AT(q, b0, b1, i, e) * AT(k, b0, b1, j, e);
    T p = exp((SCORE(d)) - lse[o_lse + row]);
    T ds = ZERO;
    if (p != ZERO) {
        T f = dropout_factor(keep, k0, k1, base, b, L, S, i, j);
        T dp = ZERO;
        for (int e = 0; e < HV; ++e) dp += AT(dout, b0, b1, i, e) * AT(v, b0, b1, j, e);
        ds = p * (dp * f - D[o_D + row]);
    }
    dmask[o_dm + gid] = ds;
}
