// Copies whose source coordinate is a function of the output coordinate, one dim at a time: flip, roll,
// repeat / tile, repeat_interleave (clownpiece/ops/remap.py); tril / triu. Every dtype (common.h).
#include "common.h"

// remap_s: out (contiguous) [i] = x[sum_k src_k(c_k) * ist_k] where c_k is output coordinate k (innermost
// first, up to 8 dims: osh sizes) and, with input size ish_k and parameter par_k, by mode_k:
//   0 copy: c      1 wrap: (c - par) mod ish (roll, repeat, tile)      2 flip: ish - 1 - c
//   3 divide: c / par (repeat_interleave)
inline int remap_coord(int c, int n, int par, int mode) {
    if (mode == 1) { int r = (c - par) % n; return r < 0 ? r + n : r; }
    if (mode == 2) return n - 1 - c;
    if (mode == 3) return c / par;
    return c;
}

__kernel void remap_s(__global T_MEM* out, int oo, __global const T_MEM* x, int ox, int n, int nd, int8 osh, int8 ish,
                      int8 ist, int8 par, int8 mode) {
    int i = get_global_id(0); if (i >= n) return;
    LOAD8(osh); LOAD8(ish); LOAD8(ist); LOAD8(par); LOAD8(mode);
    int r = i, off = ox;
    for (int k = 0; k < nd; ++k) {
        int c = r % osh_[k]; r /= osh_[k];
        off += remap_coord(c, ish_[k], par_[k], mode_[k]) * ist_[k];
    }
    ST(out, oo + i, LD(x, off));
}

// tri_s: out (contiguous, [..., R, C]) = x where (col - row) <= diagonal (lower: tril) or >= diagonal
// (upper: triu), else 0. META: x's strides over out's shape (sa).
__kernel void tri_s(__global T_MEM* out, int oo, __global const T_MEM* x, int ox, int n, int R, int C, int diagonal,
                    int upper, META) {
    int i = get_global_id(0); if (i >= n) return;
    int col = i % C, row = (i / C) % R;
    int ia = ox, ib = 0, ic = 0;
    OFFSETS(i, ia, ib, ic);
    int keep = upper ? col - row >= diagonal : col - row <= diagonal;
    ST(out, oo + i, keep ? LD(x, ia) : ZERO);
}

// repeat_ids (built for int64): the source position of each of the n outputs of repeat_interleave with
// per-element counts: the first j with cum[j] > i (cum: the inclusive running sum of the counts, len entries).
__kernel void repeat_ids(__global long* ids, int oi, __global const long* cum, int oc, int len, int n) {
    int i = get_global_id(0); if (i >= n) return;
    int lo = 0, hi = len;
    while (lo < hi) { int mid = (lo + hi) / 2; if (cum[oc + mid] > i) hi = mid; else lo = mid + 1; }
    ids[oi + i] = lo;
}
