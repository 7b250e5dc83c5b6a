// Fused scaled dot-product attention: out = softmax(scale * q k^T + masks) v, per batch element, with
// causal masking, up to two masks and dropout on the probabilities, without materialising the [L, S] scores.
//
// Forward: one work-item per query row i, a work-group per block of rows of one batch element (a 2-D range:
// dim 0 the row, dim 1 the batch element). The group walks the keys in tiles of BK that its work-items
// load together into local memory; each work-item scores its row against the tile and keeps the running
// row maximum m, the running sum l of exp(s - m) and the accumulated output acc (the online softmax of
// flash attention: a new tile maximum rescales l and acc once). Every work-item runs the same loops (rows
// past L and scores past causality are masked by value, not by branching), so a CPU runtime vectorises the
// group across rows and a GPU reads each tile once per group. It writes out_i = acc / l and the row's
// log-sum-exp (m + log l) for the backward. A row every key of which is masked out gives 0 (PyTorch's
// safe softmax) and an infinite log-sum-exp, so its probabilities are 0 in the backward.
//
// Backward (the probabilities recomputed as exp(s - lse), never stored): sdpa_bwd_q, a work-item per query
// row over tiles of keys, computes D_i = dO_i . O_i and dq_i = scale * sum_j P_ij (dP_ij - D_i) k_j with
// dP_ij = dO_i . v_j; sdpa_bwd_kv, a work-item per key row over tiles of queries (with their dO, lse and
// D), dv_j = sum_i P~_ij dO_i (P~ with dropout) and dk_j = scale * sum_i dS_ij q_i; sdpa_bwd_mask, one
// work-item per score, dS_ij for an additive mask that needs a gradient. Nothing is summed across
// work-items: no atomics.
//
// Tensors are read and written through strides: two batch dims (b0 < B0, b1 < B1), row and column (so a
// MultiheadAttention's [B, L, H, D] buffers serve as [B, H, L, D] without copies); lse and D are
// contiguous [B, L] (b = b0 * B1 + b1). A mask's kind:
// 0 none, 1 added to the scores, 2 keep where non-zero (PyTorch's boolean attn_mask of SDPA), 3 drop where
// non-zero (MultiheadAttention's boolean masks). Dropout keeps a probability with chance `keep` (scaled by
// 1/keep), the draw for score (b, i, j) being Philox block base + (b * L + i) * S + j, so the backward
// regenerates the forward's choices. HE and HV (head sizes of q/k and v) and BK (the tile) are -D defines;
// the work-group size is the launch's (any). T is float or double. Every buffer parameter is followed by its
// element offset.
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

// scale * q_i . k_j plus the masks, or -inf where a mask or causality excludes (i, j). SCORE takes the
// plain dot product; SCORE_SCALED one of rows already multiplied by scale; the _AT forms name the row.
#define MASKED_AT(v, i_)                                                                        \
    (v) + (ma_kind ? mask_term(AT(ma, b0, b1, i_, j), ma_kind) : ZERO)                          \
        + (mb_kind ? mask_term(AT(mb, b0, b1, i_, j), mb_kind) : ZERO)
#define SCORE_SCALED_AT(dot_expr, i_) ((causal && j > (i_)) ? NEG_INF : (MASKED_AT((dot_expr), i_)))
#define SCORE_SCALED(dot_expr) SCORE_SCALED_AT(dot_expr, i)
#define SCORE(dot_expr) SCORE_SCALED((dot_expr) * scale)

// 1/keep if score (b, i, j) survives dropout, else 0 (1 without dropout).
inline T dropout_factor(T keep, uint k0, uint k1, ulong base, int b, int L, int S, int i, int j) {
    if (keep >= ONE) return ONE;
    uint4 r = philox_at(base + ((ulong)b * (ulong)L + (ulong)i) * (ulong)S + (ulong)j, k0, k1);
    return UNIT(r.x, r.y) < keep ? ONE / keep : ZERO;
}


// Fill local tiles with rows r0 + t (t < BK) of view src, zero past `count` rows: tile[t][e] and, when
// wanted, its transpose tileT[e][t]. The products below run their innermost loops over the contiguous,
// independent index of a tile (never a reduction), which compilers vectorise without reassociating sums.
#define LOAD_TILE(tile, src, r0, count, cols)                                                   \
    for (int x_ = get_local_id(0); x_ < BK * (cols); x_ += (int)get_local_size(0)) {            \
        int t_ = x_ / (cols), e_ = x_ - t_ * (cols);                                            \
        tile[t_][e_] = (r0) + t_ < (count) ? AT(src, b0, b1, (r0) + t_, e_) : ZERO; }
#define LOAD_TILE_T(tileT, src, r0, count, cols)                                                \
    for (int x_ = get_local_id(0); x_ < BK * (cols); x_ += (int)get_local_size(0)) {            \
        int t_ = x_ / (cols), e_ = x_ - t_ * (cols);                                            \
        tileT[e_][t_] = (r0) + t_ < (count) ? AT(src, b0, b1, (r0) + t_, e_) : ZERO; }

// out[t] = sum_e a[e] * tileT[e][t] for the BK rows of a tile (a row's products with the tile's rows).
#define ROW_TIMES_TILE(out, a, tileT, cols)                                                     \
    for (int t = 0; t < BK; ++t) out[t] = ZERO;                                                 \
    for (int e = 0; e < (cols); ++e) { T a_ = a[e]; for (int t = 0; t < BK; ++t) out[t] += a_ * tileT[e][t]; }
// acc[e] += sum_t w[t] * tile[t][e].
#define ACCUMULATE(acc, w, tile, cols)                                                          \
    for (int t = 0; t < BK; ++t) { T w_ = w[t]; for (int e = 0; e < (cols); ++e) acc[e] += w_ * tile[t][e]; }

#define GROUP_ROWS                                                                              \
    int b = get_global_id(1), b1 = b % B1, b0 = b / B1;                                         \
    int row = get_global_id(0);                                                                 \
    int first = get_group_id(0) * get_local_size(0), last = first + (int)get_local_size(0) - 1;

__kernel void sdpa_fwd(OUT_VIEW(out), __global T* lse, int o_lse, VIEW(q), VIEW(k), VIEW(v), SCORE_ARGS) {
    GROUP_ROWS
    __local T kT[HE][BK], vs[BK][HV];
    int i = min(row, L - 1);  // rows past L compute a copy of the last one and write nothing
    T qi[HE], acc[HV], s[BK];
    for (int e = 0; e < HE; ++e) qi[e] = AT(q, b0, b1, i, e) * scale;
    for (int e = 0; e < HV; ++e) acc[e] = ZERO;
    T m = NEG_INF, l = ZERO;
    int end = causal ? min(S, min(last, L - 1) + 1) : S;  // the group's keys
    for (int j0 = 0; j0 < end; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        LOAD_TILE_T(kT, k, j0, S, HE)
        LOAD_TILE(vs, v, j0, S, HV)
        barrier(CLK_LOCAL_MEM_FENCE);
        ROW_TIMES_TILE(s, qi, kT, HE)
        T bm = NEG_INF;
        for (int t = 0; t < BK; ++t) {
            int j = j0 + t;
            s[t] = j >= S ? NEG_INF : SCORE_SCALED(s[t]);
            bm = s[t] > bm ? s[t] : bm;
        }
        T mn = bm > m ? bm : m;
        T corr = mn > NEG_INF ? exp(m - mn) : ONE;
        l *= corr;
        for (int e = 0; e < HV; ++e) acc[e] *= corr;
        for (int t = 0; t < BK; ++t) {
            T p = mn > NEG_INF ? exp(s[t] - mn) : ZERO;
            l += p;
            s[t] = p * dropout_factor(keep, k0, k1, base, b, L, S, i, j0 + t);
        }
        ACCUMULATE(acc, s, vs, HV)
        m = mn;
    }
    if (row >= L) return;
    T inv = l > ZERO ? ONE / l : ZERO;
    for (int e = 0; e < HV; ++e) AT(out, b0, b1, i, e) = acc[e] * inv;
    lse[o_lse + b * L + i] = l > ZERO ? m + log(l) : (T)INFINITY;
}

// dq like q; D_i = dO_i . O_i (o: the forward's output, dout: its gradient).
__kernel void sdpa_bwd_q(OUT_VIEW(dq), __global T* D, int o_D, VIEW(q), VIEW(k), VIEW(v), VIEW(o), VIEW(dout),
                         __global const T* lse, int o_lse, SCORE_ARGS) {
    GROUP_ROWS
    __local T kT[HE][BK], ks[BK][HE], vT[HV][BK];
    int i = min(row, L - 1);
    T qi[HE], dqi[HE], doi[HV], sc[BK], dp[BK];
    for (int e = 0; e < HE; ++e) { qi[e] = AT(q, b0, b1, i, e) * scale; dqi[e] = ZERO; }
    T di = ZERO;
    for (int e = 0; e < HV; ++e) { doi[e] = AT(dout, b0, b1, i, e); di += doi[e] * AT(o, b0, b1, i, e); }
    T li = lse[o_lse + b * L + i];
    int end = causal ? min(S, min(last, L - 1) + 1) : S;
    for (int j0 = 0; j0 < end; j0 += BK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        LOAD_TILE_T(kT, k, j0, S, HE)
        LOAD_TILE(ks, k, j0, S, HE)
        LOAD_TILE_T(vT, v, j0, S, HV)
        barrier(CLK_LOCAL_MEM_FENCE);
        ROW_TIMES_TILE(sc, qi, kT, HE)
        ROW_TIMES_TILE(dp, doi, vT, HV)
        for (int t = 0; t < BK; ++t) {
            int j = j0 + t;
            T p = j >= S ? ZERO : exp(SCORE_SCALED(sc[t]) - li);
            sc[t] = p * (dp[t] * dropout_factor(keep, k0, k1, base, b, L, S, i, j) - di);  // dS
        }
        ACCUMULATE(dqi, sc, ks, HE)
    }
    if (row >= L) return;
    D[o_D + b * L + i] = di;
    for (int e = 0; e < HE; ++e) AT(dq, b0, b1, i, e) = dqi[e] * scale;
}

// dk like k, dv like v; a work-item per key row j, over tiles of BK query rows.
__kernel void sdpa_bwd_kv(OUT_VIEW(dk), OUT_VIEW(dv), VIEW(q), VIEW(k), VIEW(v), VIEW(dout), __global const T* lse,
                          int o_lse, __global const T* D, int o_D, SCORE_ARGS) {
    GROUP_ROWS
    __local T qT[HE][BK], qs[BK][HE], doT[HV][BK], dos[BK][HV], ls[BK], Ds[BK];
    int j = min(row, S - 1);
    T kj[HE], vj[HV], dkj[HE], dvj[HV], sc[BK], dp[BK];
    for (int e = 0; e < HE; ++e) { kj[e] = AT(k, b0, b1, j, e) * scale; dkj[e] = ZERO; }
    for (int e = 0; e < HV; ++e) { vj[e] = AT(v, b0, b1, j, e); dvj[e] = ZERO; }
    __global const T* lse_b = lse + o_lse + b * L;
    __global const T* D_b = D + o_D + b * L;
    for (int i0 = causal ? first / BK * BK : 0; i0 < L; i0 += BK) {  // causal: queries from the group's first key
        barrier(CLK_LOCAL_MEM_FENCE);
        LOAD_TILE_T(qT, q, i0, L, HE)
        LOAD_TILE(qs, q, i0, L, HE)
        LOAD_TILE_T(doT, dout, i0, L, HV)
        LOAD_TILE(dos, dout, i0, L, HV)
        for (int x_ = get_local_id(0); x_ < BK; x_ += (int)get_local_size(0)) {
            ls[x_] = i0 + x_ < L ? lse_b[i0 + x_] : (T)INFINITY;  // rows past L: probability 0
            Ds[x_] = i0 + x_ < L ? D_b[i0 + x_] : ZERO;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        ROW_TIMES_TILE(sc, kj, qT, HE)
        ROW_TIMES_TILE(dp, vj, doT, HV)
        for (int t = 0; t < BK; ++t) {
            int i = min(i0 + t, L - 1);
            T p = i0 + t >= L ? ZERO : exp(SCORE_SCALED(sc[t]) - ls[t]);
            T f = dropout_factor(keep, k0, k1, base, b, L, S, i, j);
            dp[t] = p * (dp[t] * f - Ds[t]);  // dS
            sc[t] = p * f;                     // the dropped probability
        }
        ACCUMULATE(dvj, sc, dos, HV)
        ACCUMULATE(dkj, dp, qs, HE)
    }
    if (row >= S) return;
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
