// Indexing kernels: gather (rows / index_select / gather), per-destination scatter (scatter_, scatter_add_,
// index_add_, tensor-index setitem), masked_fill, one_hot. T is float or double (-DT=...).
// Index tensors hold floats of integral value: they are rounded, negatives wrap (Python style), and an id
// outside the dim is never dereferenced: gathers write NaN for it, scatters skip it.
#include "common.h"

// Position along a dim of size n named by the float id v, or -1 when v is outside [-n, n) or NaN.
inline int row_id(T v, int n) {
    if (!(v > -(T)n - (T)0.5 && v < (T)n - (T)0.5)) return -1;
    int id = (int)rint(v);
    return id < 0 ? id + n : id;
}

// out[p] = src[p with coordinate `dim` replaced by idx[p]], p running over out's (contiguous) shape.
// sa: idx strides over out's shape; sb: src strides over out's shape with the gathered dim's stride 0.
// take_rows, index_select and gather all reduce to this by viewing idx/src with stride-0 dims.
__kernel void gather_s(__global T* out, int oo, __global const T* src, int osrc, __global const T* idx,
                       int oidx, int n, int dim_size, int dim_stride, META) {
    int i = get_global_id(0); if (i >= n) return;
    int ii = oidx, is = osrc, unused = 0;
    OFFSETS(i, ii, is, unused);
    int id = row_id(idx[ii], dim_size);
    out[oo + i] = id < 0 ? (T)NAN : src[is + id * dim_stride];
}

// Scatters, deterministic without atomics: one work-item per destination owns it and visits the sources
// that can land on it in source order. accumulate=0: the last match wins (untouched when none);
// accumulate=1: matches are added in source order. META is the reduced shape (the scattered dim removed)
// with sa/sb/sc the strides of dst/src/idx; *_dim_stride step along the scattered dim (K sources).
#define SCATTER_ARGS int n, int dim_size, int inner, int k_count, int dst_dim_stride, int src_dim_stride, \
                     int idx_dim_stride, int accumulate, META

// General form: one work-item per destination element (outer o, position jd, inner r) scans the K
// sources idx/src[o, 0..K-1, r] and keeps those whose id is jd.
#define SCATTER_BODY(SRC_AT)                                                                    \
    int i = get_global_id(0); if (i >= n) return;                                               \
    int r = i % inner; int jd = (i / inner) % dim_size; int o = i / (inner * dim_size);         \
    int id_ = odst, is = 0, ii = oidx;                                                          \
    OFFSETS(o * inner + r, id_, is, ii);                                                        \
    id_ += jd * dst_dim_stride;                                                                 \
    T acc = accumulate ? dst[id_] : (T)0; int found = 0;                                        \
    for (int k = 0; k < k_count; ++k) {                                                         \
        if (row_id(idx[ii + k * idx_dim_stride], dim_size) != jd) continue;                     \
        T v = (SRC_AT); acc = accumulate ? acc + v : v; found = 1;                              \
    }                                                                                           \
    if (found) dst[id_] = acc;

__kernel void scatter_s(__global T* dst, int odst, __global const T* idx, int oidx, __global const T* src,
                        int osrc, SCATTER_ARGS) {
    SCATTER_BODY(src[osrc + is + k * src_dim_stride])
}
__kernel void scatter_value_s(__global T* dst, int odst, __global const T* idx, int oidx, T value,
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
        if (row_id(idx[oidx + k * idx_dim_stride], dim_size) != jd) continue;                   \
        for (int r = 0; r < inner; ++r) {                                                       \
            int id_ = odst + jd * dst_dim_stride, is = k * src_dim_stride, unused = 0;          \
            OFFSETS(o * inner + r, id_, is, unused);                                            \
            T v = (SRC_AT); dst[id_] = accumulate ? dst[id_] + v : v;                           \
        }                                                                                       \
    }

__kernel void scatter_rows_s(__global T* dst, int odst, __global const T* idx, int oidx,
                             __global const T* src, int osrc, SCATTER_ARGS) {
    SCATTER_ROWS_BODY(src[osrc + is])
}
__kernel void scatter_rows_value_s(__global T* dst, int odst, __global const T* idx, int oidx, T value,
                                   SCATTER_ARGS) {
    SCATTER_ROWS_BODY(value)
}

// out = mask != 0 ? value : x over out's (contiguous) shape; sa: x strides, sb: mask strides (broadcast).
__kernel void masked_fill_s(__global T* out, int oo, __global const T* x, int ox, __global const T* mask,
                            int om, T value, int n, META) {
    int i = get_global_id(0); if (i >= n) return;
    int ix = ox, im = om, unused = 0;
    OFFSETS(i, ix, im, unused);
    out[oo + i] = mask[im] != (T)0 ? value : x[ix];
}

// x.masked_fill_(mask, value) through a strided view: sa: x strides, sb: mask strides (broadcast).
__kernel void masked_fill_i(__global T* x, int ox, __global const T* mask, int om, T value, int n, META) {
    int i = get_global_id(0); if (i >= n) return;
    int ix = ox, im = om, unused = 0;
    OFFSETS(i, ix, im, unused);
    if (mask[im] != (T)0) x[ix] = value;
}

// out[p, c] = (idx[p] == c) for c < num_classes; a row whose id is not in [0, num_classes) is NaN.
// META describes idx's shape and strides (sa).
__kernel void one_hot_s(__global T* out, int oo, __global const T* idx, int oidx, int n, int num_classes,
                        META) {
    int i = get_global_id(0); if (i >= n) return;
    int c = i % num_classes; int ii = oidx, u1 = 0, u2 = 0;
    OFFSETS(i / num_classes, ii, u1, u2);
    T v = idx[ii];
    int ok = v > (T)-0.5 && v < (T)num_classes - (T)0.5;
    out[oo + i] = ok ? (T)((int)rint(v) == c) : (T)NAN;
}
