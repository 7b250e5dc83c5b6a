// Matrix multiplication: out[b] = A[b] @ B[b] (+ bias), out contiguous [batch, M, N].
// Operands are strided views: A[b][i][k] = a[oa + batch_off_a(b) + i*sam + k*sak], likewise B with sbk/sbn,
// so transposed, sliced and broadcast (stride 0) operands are read in place. Batch dims arrive collapsed and
// innermost-first in int8 vectors (shape sh, strides sa for A and sb for B), as in common.h.
// bias (optional, has_bias != 0) is added per column: bias[obias + j*sbias].
//
// Three strategies, chosen on the host by size and device type:
//   mm_direct(8)    one work-item per output (or strip of 8 outputs); small problems, one launch.
//   pack_mr/pack_nr + mm_packed
//                   CPU: A and B are copied into MR-row / NR-column micro-panels (k-major, zero padded) and
//                   each work-item computes an MR x NR block over the whole K in private vector accumulators.
//   mm_tiled        GPU: 32x32 output tiles staged through local memory, 4x4 outputs per work-item.
#include "common.h"

#define BATCH_META int nd, int8 sh, int8 sa, int8 sb
#define BIAS_ARGS __global const T* bias, int obias, int sbias, int has_bias

// One work-item per strip of DW adjacent outputs of a row (DW = 8 on CPUs, where a strip shares the index
// arithmetic and the A loads; 1 on GPUs, where neighbouring work-items then read neighbouring columns). Columns past N re-read column N-1 so the k loop has no branches.
// Grid: batch * M * ceil(N / DW) work-items.
#define DIRECT(NAME, DW)                                                                        \
__kernel void NAME(__global T* out,                                                             \
                   __global const T* a, int oa, int sam, int sak,                               \
                   __global const T* b, int ob, int sbk, int sbn,                               \
                   BIAS_ARGS, int M, int N, int K, int total, BATCH_META) {                     \
    int g = get_global_id(0);                                                                   \
    if (g >= total) return;                                                                     \
    int strips = (N + DW - 1) / DW;                                                             \
    int j0 = g % strips * DW, r = g / strips;                                                   \
    int i = r % M, bt = r / M;                                                                  \
    int ia = oa + i * sam, ib = ob;                                                             \
    if (bt) {                                                                                   \
        ia += strided_offset(bt, nd, sh, sa);                                                     \
        ib += strided_offset(bt, nd, sh, sb);                                                     \
    }                                                                                           \
    int col[DW];                                                                                \
    T acc[DW];                                                                                  \
    for (int c = 0; c < DW; ++c) {                                                              \
        col[c] = min(j0 + c, N - 1) * sbn;                                                      \
        acc[c] = (T)0;                                                                          \
    }                                                                                           \
    __global const T* pa = a + ia;                                                              \
    __global const T* pb = b + ib;                                                              \
    for (int k = 0; k < K; ++k) {                                                               \
        T x = *pa;                                                                              \
        for (int c = 0; c < DW; ++c) acc[c] = x * pb[col[c]] + acc[c];                          \
        pa += sak;                                                                              \
        pb += sbk;                                                                              \
    }                                                                                           \
    __global T* o = out + (size_t)r * N + j0;                                                   \
    for (int c = 0; c < DW && j0 + c < N; ++c)                                                  \
        o[c] = acc[c] + (has_bias ? bias[obias + (j0 + c) * sbias] : (T)0);                     \
}

DIRECT(mm_direct, 1)
DIRECT(mm_direct8, 8)

// ---- CPU: packed panels + register-blocked micro-kernel -------------------------------------------
// Panels of width W along the row (A) or column (B) dim, laid out [batch][panel][k][W]; rows/columns
// past the matrix edge are zero. One work-item packs KC consecutive k of one panel (fewer, fuller
// work-groups: PoCL's cost per work-group is comparable to copying a few hundred floats).
// Grid: (ceil(K / KC) rounded up to 64, panels, batch).
#define KC 8
#define PACK(NAME, W)                                                                           \
__kernel void NAME(__global T* dst, __global const T* x, int ox, int s_w, int s_k,               \
                   int extent, int K, int nd, int8 sh, int8 sx) {                                \
    int k0 = get_global_id(0) * KC, p = get_global_id(1), bt = get_global_id(2);                \
    if (k0 >= K) return;                                                                        \
    int k1 = min(k0 + KC, K), w0 = p * W, wn = min(W, extent - w0);                             \
    __global T* d = dst + (((size_t)bt * get_global_size(1) + p) * K + k0) * W;                 \
    __global const T* src = x + ox + (bt ? strided_offset(bt, nd, sh, sx) : 0) + w0 * s_w;        \
    for (int k = k0; k < k1; ++k, d += W) {                                                     \
        if (wn == W) {                                                                          \
            for (int w = 0; w < W; ++w) d[w] = src[k * s_k + w * s_w];                          \
        } else {                                                                                \
            for (int w = 0; w < W; ++w) d[w] = w < wn ? src[k * s_k + w * s_w] : (T)0;          \
        }                                                                                       \
    }                                                                                           \
}

#ifdef MR
PACK(pack_mr, MR)
PACK(pack_nr, NR)

#define VEC_(t, n) t##n
#define VEC(t, n) VEC_(t, n)
typedef VEC(T, NR) TV;

// Work-group g (64 work-items) covers an 8x8 square of MR x NR blocks so that the 8 A panels and 8 B
// panels it reads stay in cache while each is reused 8 times. Grid: (tiles_m * tiles_n * 64, batch).
__kernel void mm_packed(__global T* out, __global const T* ap, __global const T* bp, BIAS_ARGS,
                        int M, int N, int K, int mb, int nb, int tiles_n) {
    int g = get_group_id(0), l = get_local_id(0), bt = get_global_id(1);
    int bi = (g / tiles_n) * 8 + l / 8;
    int bj = (g % tiles_n) * 8 + l % 8;
    if (bi >= mb || bj >= nb) return;
    __global const T* pa = ap + ((size_t)bt * mb + bi) * K * MR;
    __global const T* pb = bp + ((size_t)bt * nb + bj) * K * NR;
    TV acc[MR];
    #pragma unroll
    for (int r = 0; r < MR; ++r) acc[r] = (TV)0;
    for (int k = 0; k < K; ++k) {
        TV bv = *(__global const TV*)pb;  // aligned: buffers start 128-byte aligned (CL spec)
        #pragma unroll
        for (int r = 0; r < MR; ++r) acc[r] = pa[r] * bv + acc[r];
        pa += MR;
        pb += NR;
    }
    int i0 = bi * MR, j0 = bj * NR;
    __global T* o = out + ((size_t)bt * M + i0) * N + j0;
    T bias_j[NR];
    #pragma unroll
    for (int c = 0; c < NR; ++c) bias_j[c] = has_bias && j0 + c < N ? bias[obias + (j0 + c) * sbias] : (T)0;
    #pragma unroll
    for (int r = 0; r < MR; ++r) {
        if (i0 + r < M) {
            union { TV v; T s[NR]; } row;
            row.v = acc[r];
            for (int c = 0; c < NR && j0 + c < N; ++c) o[r * N + c] = row.s[c] + bias_j[c];
        }
    }
}
#endif

// ---- GPU: local-memory tiles ------------------------------------------------------------------------
// Work-group 8x8, tile 32x32 of the output, each work-item computes rows ly+8*r, cols lx+8*c (r, c < 4),
// K staged 16 at a time. Grid: (ceil(N/32)*8, ceil(M/32)*8, batch).
#define TS 32
#define TK 16
__kernel void mm_tiled(__global T* out,
                       __global const T* a, int oa, int sam, int sak,
                       __global const T* b, int ob, int sbk, int sbn,
                       BIAS_ARGS, int M, int N, int K, BATCH_META) {
    __local T as[TK][TS + 1];
    __local T bs[TK][TS + 1];
    int lx = get_local_id(0), ly = get_local_id(1), lid = ly * 8 + lx;
    int i0 = get_group_id(1) * TS, j0 = get_group_id(0) * TS, bt = get_group_id(2);
    int ia = oa + strided_offset(bt, nd, sh, sa), ib = ob + strided_offset(bt, nd, sh, sb);
    T acc[4][4];
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) acc[r][c] = (T)0;
    for (int k0 = 0; k0 < K; k0 += TK) {
        for (int q = 0; q < TS * TK / 64; ++q) {
            int e = lid + 64 * q;
            int ak = e % TK, am = e / TK;  // consecutive work-items read along k (row-major A)
            int gi = i0 + am, gk = k0 + ak;
            as[ak][am] = gi < M && gk < K ? a[ia + gi * sam + gk * sak] : (T)0;
            int bn = e % TS, bk = e / TS;  // consecutive work-items read along n (row-major B)
            int gj = j0 + bn;
            gk = k0 + bk;
            bs[bk][bn] = gj < N && gk < K ? b[ib + gk * sbk + gj * sbn] : (T)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TK; ++k) {
            T av[4], bv[4];
            for (int r = 0; r < 4; ++r) av[r] = as[k][ly + 8 * r];
            for (int c = 0; c < 4; ++c) bv[c] = bs[k][lx + 8 * c];
            for (int r = 0; r < 4; ++r)
                for (int c = 0; c < 4; ++c) acc[r][c] = av[r] * bv[c] + acc[r][c];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int r = 0; r < 4; ++r) {
        int i = i0 + ly + 8 * r;
        if (i >= M) continue;
        for (int c = 0; c < 4; ++c) {
            int j = j0 + lx + 8 * c;
            if (j < N) out[((size_t)bt * M + i) * N + j] = acc[r][c] + (has_bias ? bias[obias + j * sbias] : (T)0);
        }
    }
}
