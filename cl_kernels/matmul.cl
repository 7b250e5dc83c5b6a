// Matrix multiplication: out[b] = A[b] @ B[b] (+ bias), out contiguous [batch, M, N].
// Operands are strided views: A[b][i][k] = a[oa + batch_off_a(b) + i*sam + k*sak], likewise B with sbk/sbn,
// so transposed, sliced and broadcast (stride 0) operands are read in place. Batch dims arrive collapsed and
// innermost-first in int8 vectors (shape sh, strides sa for A and sb for B), as in common.h.
// bias (optional, has_bias != 0) is added per column: bias[obias + j*sbias].
//
// Every buffer parameter is followed by its element offset (out's is `oo`).
//
// Four strategies, chosen on the host (ops/matmul.py) by size and by what the device reports (dedicated
// local memory or not, work-group and local-memory limits):
//   mm_direct       GPU, small problems: one work-item per output, neighbours on neighbouring columns.
//   mm_block<R>x<W> CPU, small problems: one work-item per block of R rows x W columns, one launch
//                   (BLOCK(R, W) below makes mm_block1x4, mm_block1x8, mm_block4x4, mm_block4x8,
//                   mm_block8x4 and mm_block8x8).
//   pack_panels + mm_packed
//                   CPU: A and B are copied into MR-row / NR-column micro-panels (k-major, zero padded) and
//                   each work-item computes an MR x NR block over the whole K in private vector accumulators.
//   mm_tiled        GPU: 32x32 output tiles staged through local memory, 4x4 outputs per work-item.
#include "common.h"

#define BATCH_META int nd, int8 sh, int8 sa, int8 sb
#define BIAS_ARGS __global const T* bias, int obias, int sbias, int has_bias

// Adds to ia, ib the offsets of batch element bt; a batch collapsed to one dim (the usual case) costs two
// multiplications instead of strided_offset's divisions.
#define ADD_BATCH_OFFSETS(bt, ia, ib)                                                           \
    if (nd == 1) {                                                                              \
        ia += (bt) * sa.s0;                                                                     \
        ib += (bt) * sb.s0;                                                                     \
    } else if (bt) {                                                                            \
        ia += strided_offset(bt, nd, sh, sa);                                                   \
        ib += strided_offset(bt, nd, sh, sb);                                                   \
    }

// GPU: one work-item per output; neighbouring work-items take neighbouring columns, so B reads coalesce
// when B is row-major. Grid: batch * M * N work-items.
__kernel void mm_direct(__global T* out, int oo,
                        __global const T* a, int oa, int sam, int sak,
                        __global const T* b, int ob, int sbk, int sbn,
                        BIAS_ARGS, int M, int N, int K, int total, BATCH_META) {
    int g = get_global_id(0);
    if (g >= total) return;
    int j = g % N, r = g / N;
    int i = r % M, bt = r / M;
    int ia = oa + i * sam, ib = ob + j * sbn;
    ADD_BATCH_OFFSETS(bt, ia, ib)
    T acc = ZERO;
    for (int k = 0; k < K; ++k) acc = a[ia + k * sak] * b[ib + k * sbk] + acc;
    out[oo + g] = acc + (has_bias ? bias[obias + j * sbias] : ZERO);
}

// CPU: small products (in the seed model K = 4..49 and N = 4 or 49) spend their time on per-work-item
// setup and on the latency of a single accumulator chain, not on memory. Each work-item computes R rows x
// W adjacent columns: the W-wide strip of B is loaded once per k for all R rows (one vloadW, which takes
// any element-aligned address, when B's columns are contiguous and the strip is whole, else a gather), and
// the R accumulators are
// independent FMA chains. Accumulators are vector variables with rows unrolled by macro, not private
// arrays, which PoCL keeps in memory. Rows and columns past the edge re-read the last row or column (no
// branches in the k loop) and are not stored.
// Grid: (batch * ceil(M / R) rounded up to 64, ceil(N / W)); one division per work-item.
#define VEC_(t, n) t##n
#define VEC(t, n) VEC_(t, n)
#define IOTA4 ((int4)(0, 1, 2, 3))
#define IOTA8 ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#define GATHER4(p, c) ((VEC(T, 4))((p)[c.s0], (p)[c.s1], (p)[c.s2], (p)[c.s3]))
// eight scalars, not two GATHER4 halves: oclgrind's uninitialised-value checker crashes on a vector built
// from vectors
#define GATHER8(p, c) ((VEC(T, 8))((p)[c.s0], (p)[c.s1], (p)[c.s2], (p)[c.s3], (p)[c.s4], (p)[c.s5], (p)[c.s6], \
                                   (p)[c.s7]))
#define STORE4(o, v, n) { o[0] = v.s0; if (n > 1) o[1] = v.s1; if (n > 2) o[2] = v.s2; if (n > 3) o[3] = v.s3; }
#define STORE8(o, v, n) { STORE4(o, v.lo, n); if (n > 4) { __global T* o4_ = o + 4; STORE4(o4_, v.hi, n - 4); } }
#define STORE16(o, v, n) { STORE8(o, v.lo, n); if (n > 8) { __global T* o8_ = o + 8; STORE8(o8_, v.hi, n - 8); } }
#define STORE_N_(W) STORE##W
#define STORE_N(W) STORE_N_(W)
#define ROWS1(X, W) X(0, W)
#define ROWS4(X, W) X(0, W) X(1, W) X(2, W) X(3, W)
#define ROWS8(X, W) ROWS4(X, W) X(4, W) X(5, W) X(6, W) X(7, W)
#define ROW_INIT(r, W) int row##r = min(i0 + r, M - 1) * sam; VEC(T, W) acc##r = ZERO;
#define ROW_FMA(r, W) acc##r = pa[row##r] * bv + acc##r;
#define ROW_STORE(r, W)                                                                         \
    if (i0 + r < M) {                                                                           \
        __global T* o = out + ((size_t)bt * M + i0 + r) * N + j0;                               \
        VEC(T, W) v = acc##r + bias_v;                                                          \
        if (n_left >= W) VSTORE(W)(v, 0, o);                                                    \
        else STORE##W(o, v, n_left);                                                            \
    }

// W adjacent elements at any element offset: vloadW/vstoreW (core OpenCL C; a cast to a vector pointer
// would require W-element alignment).
#define VLOAD_(W) vload##W
#define VLOAD(W) VLOAD_(W)
#define VSTORE_(W) vstore##W
#define VSTORE(W) VSTORE_(W)
#define K_LOOP(R, W, LOAD_B)                                                                    \
    for (int k = 0; k < K; ++k) {                                                               \
        VEC(T, W) bv = LOAD_B;                                                                  \
        ROWS##R(ROW_FMA, W)                                                                     \
        pa += sak;                                                                              \
        pb += sbk;                                                                              \
    }

#define BLOCK(R, W)                                                                             \
__kernel void mm_block##R##x##W(__global T* out, int oo,                                        \
                                __global const T* a, int oa, int sam, int sak,                  \
                                __global const T* b, int ob, int sbk, int sbn,                  \
                                BIAS_ARGS, int M, int N, int K, int blocks, BATCH_META) {       \
    int g = get_global_id(0);                                                                   \
    if (g >= blocks) return;                                                                    \
    int row_blocks = (M + R - 1) / R;                                                           \
    int bt = g / row_blocks, i0 = (g - bt * row_blocks) * R, j0 = get_global_id(1) * W;         \
    int ia = oa, ib = ob;                                                                       \
    out += oo;                                                                                  \
    ADD_BATCH_OFFSETS(bt, ia, ib)                                                               \
    VEC(int, W) cols = min(j0 + IOTA##W, (VEC(int, W))(N - 1));                                 \
    ROWS##R(ROW_INIT, W)                                                                        \
    __global const T* pa = a + ia;                                                              \
    __global const T* pb = b + ib;                                                              \
    VEC(int, W) cols_b = cols * sbn;                                                            \
    if (sbn == 1 && j0 + W <= N) {                                                              \
        K_LOOP(R, W, VLOAD(W)(0, pb + j0))                                                      \
    } else {                                                                                    \
        K_LOOP(R, W, GATHER##W(pb, cols_b))                                                     \
    }                                                                                           \
    VEC(T, W) bias_v = ZERO;                                                                    \
    if (has_bias) {                                                                             \
        __global const T* pbias = bias + obias;                                                 \
        VEC(int, W) cols_bias = cols * sbias;                                                   \
        bias_v = GATHER##W(pbias, cols_bias);                                                   \
    }                                                                                           \
    int n_left = N - j0;                                                                        \
    ROWS##R(ROW_STORE, W)                                                                       \
}

BLOCK(1, 4)
BLOCK(1, 8)
BLOCK(4, 4)
BLOCK(4, 8)
BLOCK(8, 4)
BLOCK(8, 8)

// ---- CPU: packed panels + register-blocked micro-kernel -------------------------------------------
// Panels of width W along the row (A) or column (B) dim, laid out [batch][panel][k][W]; rows/columns
// past the matrix edge are zero. One work-item packs KC consecutive k of one panel (fewer, fuller
// work-groups: PoCL's cost per work-group is comparable to copying a few hundred floats). One launch
// packs both operands: panels [0, mb) are A's (MR rows each), [mb, mb + nb) B's (NR columns each).
// Grid: (ceil(K / KC) rounded up to 64, mb + nb, batch).
#define KC 8
#define PACK(NAME, W)                                                                           \
inline void NAME(int k0, int p, int bt, __global T* dst, __global const T* x, int s_w, int s_k,  \
                 int extent, int K, int panels, int nd, int8 sh, int8 sx) {                      \
    int k1 = min(k0 + KC, K), w0 = p * W, wn = min(W, extent - w0);                             \
    __global T* d = dst + (((size_t)bt * panels + p) * K + k0) * W;                             \
    __global const T* src = x + (bt ? strided_offset(bt, nd, sh, sx) : 0) + w0 * s_w;             \
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

__kernel void pack_panels(__global T* ap, int oap, __global const T* a, int oa, int sam, int sak, int M, int mb,
                          __global T* bp, int obp, __global const T* b, int ob, int sbn, int sbk, int N, int nb,
                          int K, int nd, int8 sh, int8 sa, int8 sb) {
    int k0 = get_global_id(0) * KC, p = get_global_id(1), bt = get_global_id(2);
    if (k0 >= K) return;
    if (p < mb) pack_mr(k0, p, bt, ap + oap, a + oa, sam, sak, M, K, mb, nd, sh, sa);
    else if (p < mb + nb) pack_nr(k0, p - mb, bt, bp + obp, b + ob, sbn, sbk, N, K, nb, nd, sh, sb);
}

typedef VEC(T, NR) TV;

// Work-group g (64 work-items) covers an 8x8 square of MR x NR blocks so that the 8 A panels and 8 B
// panels it reads stay in cache while each is reused 8 times. Consecutive work-items take consecutive
// blocks of a row of blocks (sharing its A panel): timed alternately on PoCL against the transposed order
// (consecutive items sharing a B panel), median GFLOP/s 103 vs 88 at 512^3 and 128 vs 119 at 1024^3.
// Grid: (tiles_m * tiles_n * 64, batch).
__kernel __attribute__((reqd_work_group_size(64, 1, 1)))
void mm_packed(__global T* out, int oo, __global const T* ap, int oap, __global const T* bp, int obp,
                        BIAS_ARGS, int M, int N, int K, int mb, int nb, int tiles_n) {
    int g = get_group_id(0), l = get_local_id(0), bt = get_global_id(1);
    out += oo; ap += oap; bp += obp;
    int bi = (g / tiles_n) * 8 + l / 8;
    int bj = (g % tiles_n) * 8 + l % 8;
    if (bi >= mb || bj >= nb) return;
    __global const T* pa = ap + ((size_t)bt * mb + bi) * K * MR;
    __global const T* pb = bp + ((size_t)bt * nb + bj) * K * NR;
    TV acc[MR];
    #pragma unroll
    for (int r = 0; r < MR; ++r) acc[r] = (TV)0;
    for (int k = 0; k < K; ++k) {
        TV bv = VLOAD(NR)(0, pb);
        #pragma unroll
        for (int r = 0; r < MR; ++r) acc[r] = pa[r] * bv + acc[r];
        pa += MR;
        pb += NR;
    }
    int i0 = bi * MR, j0 = bj * NR;
    __global T* o = out + ((size_t)bt * M + i0) * N + j0;
    // whole rows of the block: one vstore each; at the right edge, component by component
    T bias_j[NR];
    #pragma unroll
    for (int c = 0; c < NR; ++c) bias_j[c] = has_bias && j0 + c < N ? bias[obias + (j0 + c) * sbias] : (T)0;
    TV bias_v = VLOAD(NR)(0, bias_j);
    int n_left = N - j0;
    #pragma unroll
    for (int r = 0; r < MR; ++r) {
        if (i0 + r < M) {
            TV v = acc[r] + bias_v;
            if (n_left >= NR) {
                VSTORE(NR)(v, 0, o + r * N);
            } else {
                __global T* o_r = o + r * N;
                STORE_N(NR)(o_r, v, n_left)
            }
        }
    }
}
#endif

// ---- GPU: local-memory tiles ------------------------------------------------------------------------
// Work-group 8x8, tile 32x32 of the output, each work-item computes rows ly+8*r, cols lx+8*c (r, c < 4),
// K staged 16 at a time. Grid: (ceil(N/32)*8, ceil(M/32)*8, batch).
#define TS 32
#define TK 16
__kernel void mm_tiled(__global T* out, int oo,
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
            if (j < N) out[oo + ((size_t)bt * M + i) * N + j] = acc[r][c] + (has_bias ? bias[obias + j * sbias] : (T)0);
        }
    }
}
