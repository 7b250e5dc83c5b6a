// Sorting along the last dim of a contiguous [rows, len] input: sort, argsort, topk (clownpiece/ops/sort.py).
// T is float or double (-DT=...); IDX_T is the element type of index outputs and inputs (default T: the
// float index convention of the other index ops).
//
// A stable merge sort: sort_runs sorts runs of `run` elements per work-item (insertion sort), then each
// merge_pass merges pairs of runs, every work-item writing up to `per` consecutive outputs of one merged run
// after finding where they start with a binary search (the merge path), so a pass is parallel however long
// the rows are. A merged run keeps at most `cap` elements (topk: k; sort: the row length), so topk's passes
// shrink the data once runs reach k. Ties keep their input order in both directions; NaN counts as larger
// than every number (last ascending, first descending), as in PyTorch.
#include "common.h"

#ifndef IDX_T
#define IDX_T T
#endif

inline int greater(T a, T b) { return a > b || (a != a && b == b); }
#define BEFORE(a, b) (desc ? greater(a, b) : greater(b, a))

// One work-item per run of at most RUN (32) elements: keys/pos[row * len + i] for i in the run, sorted (an
// insertion sort in private memory); pos holds the source position.
#define RUN 32
__kernel void sort_runs(__global T* keys, __global int* pos, __global const T* x, int ox, int len, int run,
                        int runs_per_row, int nruns, int desc) {
    int g = get_global_id(0); if (g >= nruns) return;
    int row = g / runs_per_row, start = (g % runs_per_row) * run;
    int count = min(min(run, RUN), len - start);
    x += ox + row * len + start; keys += row * len + start; pos += row * len + start;
    T k[RUN]; int p[RUN];
    for (int i = 0; i < count; ++i) {
        T v = x[i]; int j = i;
        while (j > 0 && BEFORE(v, k[j - 1])) { k[j] = k[j - 1]; p[j] = p[j - 1]; --j; }
        k[j] = v; p[j] = start + i;
    }
    for (int i = 0; i < count; ++i) { keys[i] = k[i]; pos[i] = p[i]; }
}

// Runs of width w (the last one may be shorter) fill [0, in_len) of each input row (row stride in_stride);
// pair p merges runs 2p and 2p+1 into output run p at p * w_out (w_out = min(2w, cap)), keeping its first
// min(|A| + |B|, cap) elements. Work-item g: row, output run p, and its chunk c of `per` outputs.
__kernel void merge_pass(__global T* okeys, __global int* opos, __global const T* keys, __global const int* pos,
                         int in_len, int in_stride, int out_stride, int w, int w_out, int cap, int chunks_per_run,
                         int items_per_row, int nitems, int per, int desc) {
    int g = get_global_id(0); if (g >= nitems) return;
    int row = g / items_per_row, rest = g % items_per_row;
    int p = rest / chunks_per_run, c = rest % chunks_per_run;
    int a0 = 2 * p * w;
    int m = min(w, in_len - a0), nb = max(0, min(w, in_len - a0 - w));
    int total = min(m + nb, cap);
    int k = c * per; if (k >= total) return;
    int kend = min(k + per, total);
    __global const T* A = keys + row * in_stride + a0; __global const T* B = A + m;
    __global const int* PA = pos + row * in_stride + a0; __global const int* PB = PA + m;
    okeys += row * out_stride + p * w_out; opos += row * out_stride + p * w_out;
    // i: how many of the first k outputs come from A (a tie takes A first: stable)
    int lo = max(0, k - nb), hi = min(k, m);
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (!BEFORE(B[k - mid - 1], A[mid])) lo = mid + 1; else hi = mid;
    }
    int i = lo, j = k - lo;
    for (int t = k; t < kend; ++t) {
        if (j >= nb || (i < m && !BEFORE(B[j], A[i]))) { okeys[t] = A[i]; opos[t] = PA[i]; ++i; }
        else { okeys[t] = B[j]; opos[t] = PB[j]; ++j; }
    }
}

// The first k sorted elements of each row (row stride `stride`) as values and indices, contiguous [rows, k].
__kernel void sort_out(__global T* vals, int ov, __global IDX_T* idx, int oi, __global const T* keys,
                       __global const int* pos, int stride, int k, int n) {
    int g = get_global_id(0); if (g >= n) return;
    int at = (g / k) * stride + g % k;
    vals[ov + g] = keys[at];
    idx[oi + g] = (IDX_T)pos[at];
}

// The gradient of taking k sorted elements per row: out[row, idx[row, t]] = g[row, t] into a zeroed
// [rows, len] (the indices of a row are distinct: no two work-items write one element).
__kernel void sort_grad(__global T* out, int oo, __global const T* g, int og, __global const IDX_T* idx, int oi,
                        int len, int k, int n) {
    int t = get_global_id(0); if (t >= n) return;
    out[oo + (t / k) * len + (int)idx[oi + t]] = g[og + t];
}
