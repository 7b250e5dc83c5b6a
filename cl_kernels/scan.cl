// Running sums and products along a dim, and the product reduction: cumsum, cumprod, prod
// (clownpiece/ops/scan.py), and nonzero's kernels (at the end). T is the data's dtype.
//
// Inputs are contiguous and seen as (outer, len, inner): line l = (o, r) holds x[o * len * inner + t * inner + r]
// for t < len. mul = 1 multiplies (cumprod/prod), else adds; reverse = 1 scans from the end (cumsum's
// gradient). Few long lines are split in blocks: block_totals, then a scan of the totals, then scan_blocks
// rescans each block from its neighbours' total, so a single 10^6-element line runs on every core.
#include "common.h"

#define OP(a, b) (mul ? (a) * (b) : (a) + (b))
#define IDENTITY (mul ? ONE : ZERO)
#define LINE_BASE(l) (((l) / inner) * len * inner + (l) % inner)

__kernel void scan_lines(__global T* out, int oo, __global const T* x, int ox, int len, int inner, int nlines,
                         int mul, int reverse) {
    int l = get_global_id(0); if (l >= nlines) return;
    int base = LINE_BASE(l);
    out += oo + base; x += ox + base;
    T acc = IDENTITY;
    for (int s = 0; s < len; ++s) {
        int t = (reverse ? len - 1 - s : s) * inner;
        acc = OP(acc, x[t]);
        out[t] = acc;
    }
}

__kernel void reduce_lines(__global T* out, int oo, __global const T* x, int ox, int len, int inner, int nlines,
                           int mul) {
    int l = get_global_id(0); if (l >= nlines) return;
    x += ox + LINE_BASE(l);
    T acc = IDENTITY;
    for (int t = 0; t < len; ++t) acc = OP(acc, x[t * inner]);
    out[oo + l] = acc;
}

// tot[l * nblocks + b] = the sum (product) of block b (elements [b * block, (b + 1) * block)) of line l.
__kernel void block_totals(__global T* tot, __global const T* x, int ox, int len, int inner, int block, int nblocks,
                           int nitems, int mul) {
    int g = get_global_id(0); if (g >= nitems) return;
    int l = g / nblocks, b = g % nblocks;
    x += ox + LINE_BASE(l);
    int end = min(len, (b + 1) * block);
    T acc = IDENTITY;
    for (int t = b * block; t < end; ++t) acc = OP(acc, x[t * inner]);
    tot[g] = acc;
}

// Block b of line l scanned from the running total of the blocks before it (after it, reverse): cum holds
// the totals of tot scanned in the same direction.
__kernel void scan_blocks(__global T* out, int oo, __global const T* x, int ox, __global const T* cum, int len,
                          int inner, int block, int nblocks, int nitems, int mul, int reverse) {
    int g = get_global_id(0); if (g >= nitems) return;
    int l = g / nblocks, b = g % nblocks;
    int base = LINE_BASE(l);
    out += oo + base; x += ox + base;
    int first = b * block, end = min(len, first + block);
    T acc = IDENTITY;
    if (!reverse && b > 0) acc = cum[g - 1];
    if (reverse && b + 1 < nblocks) acc = cum[g + 1];
    for (int s = first; s < end; ++s) {
        int t = (reverse ? first + end - 1 - s : s) * inner;
        acc = OP(acc, x[t]);
        out[t] = acc;
    }
}

// The gradient of cumprod without dividing by x (zeros in x are fine): with Q_t = g_t + x_{t+1} Q_{t+1}
// (Q_{len-1} = g_{len-1}), dx_t = (x_0 ... x_{t-1}) Q_t. One work-item per line, two passes.
__kernel void cumprod_grad(__global T* out, int oo, __global const T* g, int og, __global const T* x, int ox,
                           int len, int inner, int nlines) {
    int l = get_global_id(0); if (l >= nlines) return;
    int base = LINE_BASE(l);
    out += oo + base; g += og + base; x += ox + base;
    T q = ZERO;
    for (int t = len - 1; t >= 0; --t) {
        q = g[t * inner] + (t + 1 < len ? x[(t + 1) * inner] * q : ZERO);
        out[t * inner] = q;
    }
    T p = ONE;
    for (int t = 0; t < len; ++t) {
        out[t * inner] *= p;
        p *= x[t * inner];
    }
}

// nonzero (built for int64; also indexing's bool masks): the set elements of a contiguous bool mask of n
// elements, in blocks of `block` elements. nonzero_count counts each block's set elements, nonzero_scan
// (one work-item) turns the counts into exclusive prefix sums with the total after them (what the host
// reads: the result's shape), nonzero_write writes the coordinates of each set element (sizes sh, innermost
// first, nd dims) to its row of out [count, nd], from its block's prefix on. Deterministic, no atomics,
// O(n) work.
__kernel void nonzero_count(__global int* counts, int oc, __global const uchar* m, int om, int n, int block) {
    int b = get_global_id(0); int start = b * block; if (start >= n) return;
    int end = min(start + block, n), c = 0;
    for (int i = start; i < end; ++i) c += m[om + i] != 0;
    counts[oc + b] = c;
}
__kernel void nonzero_scan(__global int* counts, int oc, int nblocks) {
    if (get_global_id(0) != 0) return;
    int s = 0;
    for (int b = 0; b < nblocks; ++b) { int c = counts[oc + b]; counts[oc + b] = s; s += c; }
    counts[oc + nblocks] = s;
}
__kernel void nonzero_write(__global long* out, int oo, __global const int* counts, int oc, __global const uchar* m,
                            int om, int n, int block, int nd, int8 sh) {
    int b = get_global_id(0); int start = b * block; if (start >= n) return;
    LOAD8(sh);
    int end = min(start + block, n);
    long row = counts[oc + b];
    for (int i = start; i < end; ++i) {
        if (!m[om + i]) continue;
        int r = i;
        for (int k = 0; k < nd; ++k) {
            out[oo + row * nd + (nd - 1 - k)] = r % sh_[k];
            r /= sh_[k];
        }
        ++row;
    }
}
