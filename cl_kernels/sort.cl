// Sorting along the last dim of a contiguous [rows, len] input: sort, argsort, topk (clownpiece/ops/sort.py).
// Every dtype (common.h: T_MEM stored, T computed); indices are int64.
//
// Each element becomes an unsigned key whose integer order is the wanted order: a float's bits with the
// sign handled (so -x < x), -0 made +0 (equal values stay ties), every NaN the largest key; an integer's with
// its sign bit flipped; all bits inverted for a descending sort. With PACK (elements of at most 4 bytes) the
// key is (key << 32 | position), so ties fall back on the input position; otherwise (double, int64) the
// position travels in a second array and the merges are stable.
//
// The sort is a merge sort: sort_runs sorts runs per work-item by insertion in private memory, then each
// merge_pass merges pairs of runs, every work-item writing up to `per` consecutive outputs of one merged run
// after finding where they start with a binary search (the merge path), so a pass is parallel however long
// the rows are. A run keeps at most `cap` elements (topk: k; sort: the row length), so topk's passes shrink
// once runs reach k. sort_out decodes the values from the keys (zeros and NaN are read back from x, for
// their sign and payload). Ties keep their input order in both directions; NaN sorts last ascending, first
// descending, as in PyTorch.
#include "common.h"

#define RUN 32

// make_key(x, pos, desc) / key_value(key, desc): the key of a value and back. PACK (elements of 4 bytes or
// less: the key is 32 bits) puts the position in the low 32 bits.
#if defined(IS_DOUBLE)
inline ulong key_bits(T x) {
    ulong b = as_ulong(x == ZERO ? ZERO : x);
    return x != x ? 0xFFFFFFFFFFFFFFFFul : ((b & 0x8000000000000000ul) ? ~b : b | 0x8000000000000000ul);
}
inline T bits_value(ulong b) { return as_double((b & 0x8000000000000000ul) ? b & 0x7FFFFFFFFFFFFFFFul : ~b); }
#define KEY_MASK 0xFFFFFFFFFFFFFFFFul
#elif defined(IS_FLOAT)  // float, and float16 (loaded as float: the same order)
inline uint key_bits(T x) {
    uint b = as_uint(x == ZERO ? ZERO : x);
    return x != x ? 0xFFFFFFFFu : ((b & 0x80000000u) ? ~b : b | 0x80000000u);
}
inline T bits_value(uint b) { return as_float((b & 0x80000000u) ? b & 0x7FFFFFFFu : ~b); }
#define KEY_MASK 0xFFFFFFFFu
#elif defined(IS_BOOL)
inline uint key_bits(T x) { return x; }
inline T bits_value(uint b) { return (T)b; }
#define KEY_MASK 0xFFFFFFFFu
#else  // int32 and int64: the sign bit flipped
inline ulong key_bits(T x) {
    return sizeof(T) == 4 ? (ulong)((uint)x ^ 0x80000000u) : (ulong)x ^ 0x8000000000000000ul;
}
inline T bits_value(ulong b) {
    return sizeof(T) == 4 ? (T)(int)((uint)b ^ 0x80000000u) : (T)(b ^ 0x8000000000000000ul);
}
#define KEY_MASK (sizeof(T) == 4 ? 0xFFFFFFFFul : 0xFFFFFFFFFFFFFFFFul)
#endif

#define KEY ulong
#ifdef PACK
inline KEY make_key(T x, int pos, int desc) {
    uint b = (uint)key_bits(x);
    return ((ulong)(desc ? ~b : b) << 32) | (uint)pos;
}
inline T key_value(KEY k, int desc) { uint b = (uint)(k >> 32); return bits_value(desc ? ~b : b); }
#define KEY_POS(k, p) ((int)((k) & 0xFFFFFFFFul))
#define MOVE_POS(dst, src)
#else
inline KEY make_key(T x, int pos, int desc) { ulong b = key_bits(x); return desc ? ~b & KEY_MASK : b; }
inline T key_value(KEY k, int desc) { return bits_value(desc ? ~k & KEY_MASK : k); }
#define KEY_POS(k, p) (p)
#define MOVE_POS(dst, src) dst = src;
#endif

#ifdef IS_FLOAT
#define EXACT(v) ((v) != ZERO && (v) == (v))  // zeros and NaN come back from x, for their sign and payload
#else
#define EXACT(v) 1
#endif

// One work-item per run of `run` elements: the first width = min(run, cap) of them sorted (width <= RUN), at
// keys[row * out_stride + r * width] (and pos). An element that would not be kept is skipped, so topk with a
// small k (cap) scans long runs at about one comparison per element.
__kernel void sort_runs(__global KEY* keys, __global int* pos, __global const T_MEM* x, int ox, int len,
                        int run, int cap, int runs_per_row, int out_stride, int nruns, int desc) {
    int g = get_global_id(0); if (g >= nruns) return;
    int row = g / runs_per_row, r = g % runs_per_row, start = r * run;
    int count = min(run, len - start), width = min(min(run, RUN), cap);
    x += ox + row * len + start;
    keys += row * out_stride + r * width;
    KEY k[RUN];
#ifndef PACK
    int p[RUN];
    pos += row * out_stride + r * width;
#endif
    int filled = 0;
    for (int i = 0; i < count; ++i) {
        KEY v = make_key(LD(x, i), start + i, desc);
        if (filled == width && !(v < k[width - 1])) continue;
        int j = filled < width ? filled++ : width - 1;
        while (j > 0 && v < k[j - 1]) { k[j] = k[j - 1]; MOVE_POS(p[j], p[j - 1]) --j; }
        k[j] = v; MOVE_POS(p[j], start + i)
    }
    for (int i = 0; i < filled; ++i) { keys[i] = k[i]; MOVE_POS(pos[i], p[i]) }
}

// Runs of width w (the last one may be shorter) fill [0, in_len) of each input row (row stride in_stride);
// pair p merges runs 2p and 2p+1 into output run p at p * w_out (w_out = min(2w, cap)), keeping its first
// min(|A| + |B|, cap) elements. Work-item g: row, output run p, and its chunk c of `per` outputs.
__kernel void merge_pass(__global KEY* okeys, __global int* opos, __global const KEY* keys, __global const int* pos,
                         int in_len, int in_stride, int out_stride, int w, int w_out, int cap, int chunks_per_run,
                         int items_per_row, int nitems, int per) {
    int g = get_global_id(0); if (g >= nitems) return;
    int row = g / items_per_row, rest = g % items_per_row;
    int p = rest / chunks_per_run, c = rest % chunks_per_run;
    int a0 = 2 * p * w;
    int m = min(w, in_len - a0), nb = max(0, min(w, in_len - a0 - w));
    int total = min(m + nb, cap);
    int k = c * per; if (k >= total) return;
    int kend = min(k + per, total);
    __global const KEY* A = keys + row * in_stride + a0; __global const KEY* B = A + m;
    okeys += row * out_stride + p * w_out;
#ifndef PACK
    __global const int* PA = pos + row * in_stride + a0; __global const int* PB = PA + m;
    opos += row * out_stride + p * w_out;
#endif
    // i: how many of the first k outputs come from A (a tie takes A first: stable)
    int lo = max(0, k - nb), hi = min(k, m);
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (!(B[k - mid - 1] < A[mid])) lo = mid + 1; else hi = mid;
    }
    int i = lo, j = k - lo;
    if (nb == 0) {  // a lone last run: copied
        for (int t = k; t < kend; ++t) { okeys[t] = A[t]; MOVE_POS(opos[t], PA[t]) }
        return;
    }
    // branch-free: both heads are read (clamped into their runs) and the taken one is selected
    for (int t = k; t < kend; ++t) {
        int ia = min(i, m - 1), jb = min(j, nb - 1);
        KEY a = A[ia], b = B[jb];
        int take_a = (j >= nb) | ((i < m) & !(b < a));
        okeys[t] = take_a ? a : b;
        MOVE_POS(opos[t], take_a ? PA[ia] : PB[jb])
        i += take_a; j += 1 - take_a;
    }
}

// The first k sorted elements of each row (row stride `stride` in keys/pos) as values (read from x [rows,
// len]) and indices, contiguous [rows, k].
__kernel void sort_out(__global T_MEM* vals, int ov, __global long* idx, int oi, __global const T_MEM* x,
                       int ox, __global const KEY* keys, __global const int* pos, int len, int stride, int k,
                       int n, int desc) {
    int g = get_global_id(0); if (g >= n) return;
    int row = g / k, at = row * stride + g % k;
    KEY key = keys[at];
    int src = KEY_POS(key, pos[at]);
    T v = key_value(key, desc);
    ST(vals, ov + g, EXACT(v) ? v : LD(x, ox + row * len + src));
    idx[oi + g] = src;
}

// The gradient of taking k sorted elements per row: out[row, idx[row, t]] = g[row, t] into a zeroed
// [rows, len] (the indices of a row are distinct: no two work-items write one element).
__kernel void sort_grad(__global T_MEM* out, int oo, __global const T_MEM* g, int og, __global const long* idx,
                        int oi, int len, int k, int n) {
    int t = get_global_id(0); if (t >= n) return;
    ST(out, oo + (t / k) * len + (int)idx[oi + t], LD(g, og + t));
}
