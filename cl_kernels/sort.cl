// Sorting along the last dim of a contiguous [rows, len] input: sort, argsort, topk (clownpiece/ops/sort.py);
// topk with a large k first selects its k (radix select, the end of this file).
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
// len]) and indices, contiguous [rows, k]. With `mapped` the index is map[row * len + position] (topk's
// candidates: their positions in the input).
__kernel void sort_out(__global T_MEM* vals, int ov, __global long* idx, int oi, __global const T_MEM* x,
                       int ox, __global const KEY* keys, __global const int* pos, __global const int* map,
                       int mapped, int len, int stride, int k, int n, int desc) {
    int g = get_global_id(0); if (g >= n) return;
    int row = g / k, at = row * stride + g % k;
    KEY key = keys[at];
    int src = KEY_POS(key, pos[at]);
    T v = key_value(key, desc);
    ST(vals, ov + g, EXACT(v) ? v : LD(x, ox + row * len + src));
    idx[oi + g] = mapped ? map[row * len + src] : src;
}

// The gradient of taking k sorted elements per row: out[row, idx[row, t]] = g[row, t] into a zeroed
// [rows, len] (the indices of a row are distinct: no two work-items write one element).
__kernel void sort_grad(__global T_MEM* out, int oo, __global const T_MEM* g, int og, __global const long* idx,
                        int oi, int len, int k, int n) {
    int t = get_global_id(0); if (t >= n) return;
    ST(out, oo + (t / k) * len + (int)idx[oi + t], LD(g, og + t));
}

// ---- topk with a large k: radix select, then a sort of the k selected ---------------------------------------
// The k-th key of a row (its threshold) is found a digit of 8 bits at a time from the top: each pass counts
// the digits of the elements that match the digits chosen so far (select_hist, a histogram per work-group)
// and picks the digit where the k-th falls (select_pick). The selected elements are those below the
// threshold and the first `left` (in input order) equal to it: exactly the first k of the stable sort.
// A row is settled (level[row] = the shift of its last digit, else -1) after the last pass, or as soon as
// every element matching its digits is selected (its later passes then return at once: a float row of
// distinct values usually settles after 3 of its 4 passes). select_scatter writes the selected elements out
// in input order, and select_rank (small k) or the merge sort above puts them in order. No atomics decide
// an order, so results are deterministic. Work-group g of a row's `groups`
// covers its elements [g * span, (g + 1) * span); work-item l of it takes a contiguous part, 8 elements at
// a time as vectors (keys8; PoCL runs them in SIMD), the rest one by one (value_key).
#ifdef PACK
#define KEY_BITS 32
#define SKEY uint
#define VKEY uint8
#define VMASK int8
#else
#define KEY_BITS 64
#define SKEY ulong
#define VKEY ulong8
#define VMASK long8
#endif
#define LANES(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)
#define RADIX 256
#define T_MEM8 CAT(T_MEM, 8)

// dst[i] = src[j], bit for bit (half has no arithmetic type without cl_khr_fp16: copied as ushort).
#ifdef IS_HALF
#define COPY_ELEMENT(dst, i, src, j) (((__global ushort*)(dst))[i] = ((__global const ushort*)(src))[j])
#else
#define COPY_ELEMENT(dst, i, src, j) ((dst)[i] = (src)[j])
#endif

// The order key of x without the position (ascending: the order wanted).
inline ulong value_key(T x, int desc) { ulong b = (ulong)key_bits(x); return desc ? ~b & (ulong)KEY_MASK : b; }

// value_key of the 8 elements at x.
inline VKEY keys8(__global const T_MEM* x, int desc) {
#if defined(IS_HALF)
    // one by one: PoCL 3.1 crashes running vload_half8, oclgrind's uninitialised-value check on vload_half4
    float8 v = (float8)(vload_half(0, x), vload_half(1, x), vload_half(2, x), vload_half(3, x), vload_half(4, x),
                        vload_half(5, x), vload_half(6, x), vload_half(7, x));
#else
    T_MEM8 v = vload8(0, x);
#endif
#if defined(IS_DOUBLE)
    ulong8 b = as_ulong8(select(v, (double8)(0.0), v == (double8)(0.0)));
    ulong8 top = (ulong8)(0x8000000000000000ul);
    ulong8 k = select(b | top, ~b, (b & top) != (ulong8)(0ul));
    k = select(k, (ulong8)(0xFFFFFFFFFFFFFFFFul), isnan(v));
#elif defined(IS_FLOAT)
    uint8 b = as_uint8(select(v, (float8)(0.0f), v == (float8)(0.0f)));
    uint8 top = (uint8)(0x80000000u);
    uint8 k = select(b | top, ~b, (b & top) != (uint8)(0u));
    k = select(k, (uint8)(0xFFFFFFFFu), isnan(v));
#elif defined(IS_BOOL)
    uint8 k = convert_uint8(v);
#elif defined(PACK)  // int32
    uint8 k = as_uint8(v) ^ (uint8)(0x80000000u);
#else  // int64
    ulong8 k = as_ulong8(v) ^ (ulong8)(0x8000000000000000ul);
#endif
    return desc ? ~k & (VKEY)(KEY_MASK) : k;
}

// The sum of the lanes of a comparison's result (-1 where true) as a count.
inline int count8(int8 m) { int4 a = m.lo + m.hi; int2 b = a.lo + a.hi; return -(b.x + b.y); }
#ifdef PACK
#define COUNT8(m) count8(m)
#else
#define COUNT8(m) count8(convert_int8(m))
#endif

// Work-item l's part [lo, hi) of its group's span [start, end): a multiple of 8 elements but for the last.
#define ITEM_PART                                                                                       \
    int part = (((span + L - 1) / L) + 7) & ~7;                                                         \
    int lo = min(start + l * part, end), hi = min(lo + part, end);

// hist[(row * groups + g) * RADIX + d]: how many elements of group g have digit d at `shift` and match
// prefix[row] above it (every element on the first pass). Nothing for a settled row. On the first pass
// every element is counted: with PRIVATE_HIST (CPUs: private memory is cache there) each work-item counts
// in a private array added to the group's counts once, else with an atomic per element (GPUs).
__kernel void select_hist(__global int* hist, __global const ulong* prefix, __global const int* level,
                          __global const T_MEM* x, int ox, int len, int groups, int span, int shift, int first,
                          int desc, __local int* counts) {
    int l = get_local_id(0), L = get_local_size(0), grp = get_group_id(0);
    int row = grp / groups, start = (grp % groups) * span, end = min(start + span, len);
    if (!first && level[row] >= 0) return;  // the whole work-group: one row
    for (int d = l; d < RADIX; d += L) counts[d] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    x += ox + row * len;
    ITEM_PART
    int i = lo;
    VKEY vshift = (VKEY)(shift), vmask = (VKEY)(RADIX - 1);
    if (first) {
#ifdef PRIVATE_HIST
        int mine[RADIX];
        for (int d = 0; d < RADIX; ++d) mine[d] = 0;
#define ADD(d) mine[d] += 1
#else
#define ADD(d) atomic_inc(&counts[d])
#endif
        for (; i + 8 <= hi; i += 8) {
            VKEY d = (keys8(x + i, desc) >> vshift) & vmask;
#define COUNT_LANE(j) ADD((int)d.s##j);
            LANES(COUNT_LANE)
#undef COUNT_LANE
        }
        for (; i < hi; ++i) ADD((int)(value_key(LD(x, i), desc) >> shift) & (RADIX - 1));
#undef ADD
#ifdef PRIVATE_HIST
        for (int d = 0; d < RADIX; ++d) if (mine[d]) atomic_add(&counts[d], mine[d]);
#endif
    } else {
        ulong want = prefix[row] >> (shift + 8);
        VKEY vabove = (VKEY)(shift + 8), vwant = (VKEY)(want);
        for (; i + 8 <= hi; i += 8) {
            VKEY k = keys8(x + i, desc);
            VMASK m = (k >> vabove) == vwant;
            if (any(m)) {
                VKEY d = (k >> vshift) & vmask;
#define COUNT_LANE(j) if (m.s##j) atomic_inc(&counts[(int)d.s##j]);
                LANES(COUNT_LANE)
#undef COUNT_LANE
            }
        }
        for (; i < hi; ++i) {
            ulong key = value_key(LD(x, i), desc);
            if (key >> (shift + 8) == want) atomic_inc(&counts[(int)(key >> shift) & (RADIX - 1)]);
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    hist += grp * RADIX;
    for (int d = l; d < RADIX; d += L) hist[d] = counts[d];
}

// One work-group per unsettled row: the digit at `shift` of the k-th key among those matching prefix[row]
// (left[row] of them still to find; k on the first pass) goes into prefix[row], and left[row] becomes how
// many of the matching elements with that digit are selected. below[row * groups + g] adds the elements of
// group g with a smaller digit (all selected). When the row settles, equal[...] gets those with the digit
// and both become exclusive sums over the groups (where each group's selected elements go).
__kernel void select_pick(__global ulong* prefix, __global int* left, __global int* level, __global int* below,
                          __global int* equal, __global const int* hist, int groups, int shift, int first,
                          int last, int k, __local int* totals) {
    int l = get_local_id(0), L = get_local_size(0), row = get_group_id(0);
    if (!first && level[row] >= 0) return;
    hist += row * groups * RADIX;
    below += row * groups; equal += row * groups;
    for (int d = l; d < RADIX; d += L) {
        int sum = 0;
        for (int g = 0; g < groups; ++g) sum += hist[g * RADIX + d];
        totals[d] = sum;
    }
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);  // level[row] was read by all before it is written
    if (l == 0) {
        int want = first ? k : left[row], d = 0, before = 0;
        while (d < RADIX - 1 && before + totals[d] < want) before += totals[d++];
        int settled = last || want - before == totals[d];
        prefix[row] = (first ? 0 : prefix[row]) | ((ulong)d << shift);
        left[row] = want - before;
        level[row] = settled ? shift : -1;
        totals[RADIX] = d;
        totals[RADIX + 1] = settled;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int digit = totals[RADIX], settled = totals[RADIX + 1];
    for (int g = l; g < groups; g += L) {
        int sum = 0;
        for (int d = 0; d < digit; ++d) sum += hist[g * RADIX + d];
        below[g] = (first ? 0 : below[g]) + sum;
        if (settled) equal[g] = hist[g * RADIX + digit];
    }
    if (!settled) return;
    barrier(CLK_GLOBAL_MEM_FENCE);
    if (l == 0) {
        int b = 0, e = 0;
        for (int g = 0; g < groups; ++g) {
            int nb = below[g], ne = equal[g];
            below[g] = b; equal[g] = e;
            b += nb; e += ne;
        }
    }
}

// Each row's k selected elements in input order, below the threshold first: values cand[row * k + j] (x's
// bits) and positions cpos[...]. Keys are compared above the row's level. `scan` (2 L ints) gives each
// work-item the number of selected elements before its part.
#define TAKE(key, i)                                                                                    \
    { int at = key < threshold ? nb++ : key == threshold && ne < need ? k - need + ne++ : -1;          \
      if (at >= 0) { COPY_ELEMENT(cand, at, x, i); cpos[at] = i; ckey[at] = value_key(LD(x, i), desc); } }
__kernel void select_scatter(__global T_MEM* cand, int oc, __global int* cpos, __global SKEY* ckey,
                             __global const T_MEM* x, int ox,
                             int len, __global const ulong* prefix, __global const int* left,
                             __global const int* level, __global const int* below, __global const int* equal,
                             int groups, int span, int k, int desc, __local int* scan) {
    int l = get_local_id(0), L = get_local_size(0), grp = get_group_id(0);
    int row = grp / groups, start = (grp % groups) * span, end = min(start + span, len);
    ITEM_PART
    int at_level = level[row], need = left[row];
    ulong threshold = prefix[row] >> at_level;
    VKEY vlevel = (VKEY)(at_level), vthreshold = (VKEY)(threshold);
    x += ox + row * len;
    int nb = 0, ne = 0, i = lo;
    for (; i + 8 <= hi; i += 8) {
        VKEY v = keys8(x + i, desc) >> vlevel;
        nb += COUNT8(v < vthreshold);
        ne += COUNT8(v == vthreshold);
    }
    for (; i < hi; ++i) {
        ulong key = value_key(LD(x, i), desc) >> at_level;
        nb += key < threshold; ne += key == threshold;
    }
    scan[l] = nb; scan[L + l] = ne;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (l == 0) {
        int b = below[grp], e = equal[grp];
        for (int j = 0; j < L; ++j) {
            int tb = scan[j], te = scan[L + j];
            scan[j] = b; scan[L + j] = e;
            b += tb; e += te;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    nb = scan[l]; ne = scan[L + l];
    cand += oc + row * k; cpos += row * k; ckey += row * k;
    for (i = lo; i + 8 <= hi; i += 8) {
        VKEY v = keys8(x + i, desc) >> vlevel;
        if (any(v <= vthreshold)) {
            SKEY kk[8];
            vstore8(v, 0, kk);
            for (int j = 0; j < 8; ++j) TAKE((ulong)kk[j], i + j)
        }
    }
    for (; i < hi; ++i) {
        ulong key = value_key(LD(x, i), desc) >> at_level;
        TAKE(key, i)
    }
}

// The k candidates of each row in order: candidate j goes to its rank, the number of candidates of the row
// with a smaller key or an equal one before it (equal keys are in input order among the candidates), as
// values and input positions [rows, k]. k^2 comparisons a row: sort.py uses it for small k.
__kernel void select_rank(__global T_MEM* vals, int ov, __global long* idx, int oi, __global const T_MEM* cand,
                          int oc, __global const int* cpos, __global const SKEY* ckey, int k, int n) {
    int g = get_global_id(0); if (g >= n) return;
    int row = g / k, j = g - row * k;
    ckey += row * k;
    SKEY key = ckey[j];
    VKEY vkey = (VKEY)(key);
    int rank = 0, i = 0;
    for (; i + 8 <= j; i += 8) rank += COUNT8(vload8(0, ckey + i) <= vkey);
    for (; i < j; ++i) rank += ckey[i] <= key;
    for (i = j + 1; i + 8 <= k; i += 8) rank += COUNT8(vload8(0, ckey + i) < vkey);
    for (; i < k; ++i) rank += ckey[i] < key;
    COPY_ELEMENT(vals, ov + row * k + rank, cand, oc + row * k + j);
    idx[oi + row * k + rank] = cpos[row * k + j];
}
