// Indexing kernels: gather (rows / index_select / gather), per-destination scatter (scatter_, scatter_add_,
// index_add_, tensor-index setitem), masked_fill, one_hot. Built per (data dtype: common.h's T and T_MEM;
// index dtype: IDX_T, -DIDX_... from backend/dtypes.index_defines: int32, int64, float32 or float64).
// Integer ids are used as they are and float ids (the course's index tensors) are rounded; negatives wrap
// (Python style), and an id outside the dim is never dereferenced: gathers write MISSING for it (NaN for
// floating data, 0 otherwise), scatters skip it.
#include "common.h"

#ifdef IS_FLOAT
#define MISSING ((T)NAN)
#else
#define MISSING ZERO
#endif

// Position along a dim of size n named by the id v, or -1 when v is outside [-n, n) (or NaN).
#ifdef IDX_IS_FLOAT
inline int row_id(IDX_T v, int n) {
    if (!(v > -(IDX_T)n - (IDX_T)0.5 && v < (IDX_T)n - (IDX_T)0.5)) return -1;
    int id = (int)rint(v);
    return id < 0 ? id + n : id;
}
#else
inline int row_id(IDX_T v, int n) {
    if (v < -(IDX_T)n || v >= (IDX_T)n) return -1;
    return (int)(v < 0 ? v + n : v);
}
#endif

// out[p] = src[p with coordinate `dim` replaced by idx[p]], p running over out's (contiguous) shape.
// sa: idx strides over out's shape; sb: src strides over out's shape with the gathered dim's stride 0.
// take_rows, index_select and gather all reduce to this by viewing idx/src with stride-0 dims.
__kernel void gather_s(__global T_MEM* out, int oo, __global const T_MEM* src, int osrc, __global const IDX_T* idx,
                       int oidx, int n, int dim_size, int dim_stride, __global int* err, int code, META) {
    int i = get_global_id(0); if (i >= n) return;
    int ii = oidx, is = osrc, unused = 0;
    OFFSETS(i, ii, is, unused);
    IDX_T v = idx[ii];
    int id = row_id(v, dim_size);
    if (id < 0) report_error(err, code, CAST(IDX_T, long, v), dim_size);
    ST(out, oo + i, id < 0 ? MISSING : LD(src, is + id * dim_stride));
}

// Scatters, deterministic without atomics: one work-item per destination owns it and visits the sources
// that can land on it in source order. accumulate=0: the last match wins (untouched when none);
// accumulate=1: matches are added in source order. META is the reduced shape (the scattered dim removed)
// with sa/sb/sc the strides of dst/src/idx; *_dim_stride step along the scattered dim (K sources).
#define SCATTER_ARGS int n, int dim_size, int inner, int k_count, int dst_dim_stride, int src_dim_stride, \
                     int idx_dim_stride, int accumulate, __global int* err, int code, META

// General form: one work-item per destination element (outer o, position jd, inner r) scans the K
// sources idx/src[o, 0..K-1, r] and keeps those whose id is jd.
#define SCATTER_BODY(SRC_AT)                                                                    \
    int i = get_global_id(0); if (i >= n) return;                                               \
    int r = i % inner; int jd = (i / inner) % dim_size; int o = i / (inner * dim_size);         \
    int id_ = odst, is = 0, ii = oidx;                                                          \
    OFFSETS(o * inner + r, id_, is, ii);                                                        \
    id_ += jd * dst_dim_stride;                                                                 \
    T acc = accumulate ? LD(dst, id_) : ZERO; int found = 0;                                        \
    for (int k = 0; k < k_count; ++k) {                                                         \
        IDX_T raw = idx[ii + k * idx_dim_stride]; int at = row_id(raw, dim_size);               \
        if (at < 0 && jd == 0) report_error(err, code, CAST(IDX_T, long, raw), dim_size);       \
        if (at != jd) continue;                                                                 \
        T v = (SRC_AT); acc = accumulate ? acc + v : v; found = 1;                              \
    }                                                                                           \
    if (found) ST(dst, id_, acc);

__kernel void scatter_s(__global T_MEM* dst, int odst, __global const IDX_T* idx, int oidx, __global const T_MEM* src,
                        int osrc, SCATTER_ARGS) {
    SCATTER_BODY(LD(src, osrc + is + k * src_dim_stride))
}
__kernel void scatter_value_s(__global T_MEM* dst, int odst, __global const IDX_T* idx, int oidx, T value,
                              SCATTER_ARGS) {
    SCATTER_BODY(value)
}

// Row form, when the ids do not vary outside the scattered dim (index_add_, t[ids] = v): one work-item
// per destination row (o, jd) scans the K ids once and copies/adds each matching source row, so the
// cost is K per row instead of K per element. sc (idx strides) is unused.
#define SCATTER_ROWS_BODY(SRC_AT)                                                               \
    int i = get_global_id(0); if (i >= n) return;                                               \
    int jd = i % dim_size; int o = i / dim_size;                                                \
    for (int k = 0; k < k_count; ++k) {                                                         \
        IDX_T raw = idx[oidx + k * idx_dim_stride]; int at = row_id(raw, dim_size);             \
        if (at < 0 && jd == 0) report_error(err, code, CAST(IDX_T, long, raw), dim_size);       \
        if (at != jd) continue;                                                                 \
        for (int r = 0; r < inner; ++r) {                                                       \
            int id_ = odst + jd * dst_dim_stride, is = k * src_dim_stride, unused = 0;          \
            OFFSETS(o * inner + r, id_, is, unused);                                            \
            T v = (SRC_AT); ST(dst, id_, accumulate ? LD(dst, id_) + v : v);                     \
        }                                                                                       \
    }

__kernel void scatter_rows_s(__global T_MEM* dst, int odst, __global const IDX_T* idx, int oidx,
                             __global const T_MEM* src, int osrc, SCATTER_ARGS) {
    SCATTER_ROWS_BODY(LD(src, osrc + is))
}
__kernel void scatter_rows_value_s(__global T_MEM* dst, int odst, __global const IDX_T* idx, int oidx, T value,
                                   SCATTER_ARGS) {
    SCATTER_ROWS_BODY(value)
}

// out = mask ? value : x over out's (contiguous) shape; sa: x strides, sb: mask strides. The mask is read in
// its own dtype (IDX_T: bool, or the course's 0/1 floats), true where nonzero.
__kernel void masked_fill_s(__global T_MEM* out, int oo, __global const T_MEM* x, int ox, __global const IDX_T* mask,
                            int om, T value, int n, META) {
    int i = get_global_id(0); if (i >= n) return;
    int ix = ox, im = om, unused = 0;
    OFFSETS(i, ix, im, unused);
    ST(out, oo + i, mask[im] != 0 ? value : LD(x, ix));
}

// x.masked_fill_(mask, value) through a strided view: sa: x strides, sb: mask strides (broadcast).
__kernel void masked_fill_i(__global T_MEM* x, int ox, __global const IDX_T* mask, int om, T value, int n, META) {
    int i = get_global_id(0); if (i >= n) return;
    int ix = ox, im = om, unused = 0;
    OFFSETS(i, ix, im, unused);
    if (mask[im] != 0) ST(x, ix, value);
}

// out[p, c] = (idx[p] == c) for c < num_classes, in the ids' dtype; a row whose id is not in
// [0, num_classes) is MISSING and its first work-item reports the id. META describes idx's shape and
// strides (sa).
__kernel void one_hot_s(__global T_MEM* out, int oo, __global const IDX_T* idx, int oidx, int n, int num_classes,
                        __global int* err, int code, META) {
    int i = get_global_id(0); if (i >= n) return;
    int c = i % num_classes; int ii = oidx, u1 = 0, u2 = 0;
    OFFSETS(i / num_classes, ii, u1, u2);
    IDX_T v = idx[ii];
    int id = row_id(v, num_classes);
#ifdef IDX_IS_FLOAT
    int nonnegative = v > (IDX_T)-0.5;
#else
    int nonnegative = v >= 0;
#endif
    int ok = nonnegative && id >= 0;
    if (!ok && c == 0) report_error(err, code, CAST(IDX_T, long, v), num_classes);
    ST(out, oo + i, ok ? (T)(id == c) : MISSING);
}

// ---- advanced indexing (clownpiece/ops/indexing.py) --------------------------------------------------------
// off[p] = (first ? 0 : off[p]) + (position along a dim of `size` named by idx[p]) * mult, p over off's
// contiguous shape, idx broadcast to it (sa: its strides). An id outside [-size, size) reports and leaves
// LONG_MIN, which stays negative through later blocks, so gathers and scatters take it as out of range.
__kernel void index_offsets_s(__global long* off, int oo, __global const IDX_T* idx, int oidx, int n, int size,
                              long mult, int first, __global int* err, int code, META) {
    int i = get_global_id(0); if (i >= n) return;
    int ii = oidx, u1 = 0, u2 = 0;
    OFFSETS(i, ii, u1, u2);
    IDX_T v = idx[ii];
    int id = row_id(v, size);
    long prev = first ? 0 : off[oo + i];
    if (id < 0) report_error(err, code, CAST(IDX_T, long, v), size);
    off[oo + i] = (id < 0 || prev < 0) ? LONG_MIN : prev + (long)id * mult;
}
