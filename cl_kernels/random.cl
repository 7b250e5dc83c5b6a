// Random fills from a counter-based generator, plus the index fills used by the factories. Built per dtype
// (common.h: T_MEM stored, T computed): uniform_fill and normal_fill for floating dtypes, randint_fill for
// integers, threshold_fill and eye_fill for every dtype, arange_fill for numbers, linspace_fill for floats.
// Outputs are contiguous runs starting at element `oo`; the host routes non-contiguous targets through a
// contiguous temporary.
//
// Philox4x32-10 (philox.h): element i of a call draws the block philox(counter = base + i, key = seed).
// The host hands every call a fresh counter range, so no generator state lives on (or is read back from)
// the device.
#include "common.h"
#include "philox.h"

#define RNG_ARGS __global T_MEM* out, int oo, int n, uint k0, uint k1, ulong base
#define RNG_DRAW(r)                                                                             \
    int i = get_global_id(0); if (i >= n) return;                                               \
    uint4 r = philox_at(base + (ulong)i, k0, k1)

#ifdef IS_FLOAT
__kernel void uniform_fill(RNG_ARGS, T low, T high) {
    RNG_DRAW(r);
    ST(out, oo + i, low + (high - low) * UNIT(r.x, r.y));
}

// Box-Muller; u1 lies in (0, 1] so the log is finite.
__kernel void normal_fill(RNG_ARGS, T mean, T std) {
    RNG_DRAW(r);
    T u1 = ONE - UNIT(r.x, r.y);
    T u2 = UNIT(r.z, r.w);
    ST(out, oo + i, mean + std * (sqrt((T)-2 * log(u1)) * cos((T)6.283185307179586477 * u2)));
}

// As PyTorch: the first half counts up from start, the second half down from end, so both ends are exact.
__kernel void linspace_fill(__global T_MEM* out, int oo, int n, T start, T end, T step) {
    int i = get_global_id(0); if (i >= n) return;
    ST(out, oo + i, i < n / 2 ? start + (T)i * step : end - (T)(n - 1 - i) * step);
}
#endif

#ifdef IS_INT
// Uniform integers in [low, low + span) from 64 random bits (the modulo bias is below 2^-32 for spans up
// to 2^32).
__kernel void randint_fill(RNG_ARGS, long low, ulong span) {
    RNG_DRAW(r);
    ulong bits = ((ulong)r.x << 32) | (ulong)r.y;
    ST(out, oo + i, low + (long)(bits % span));
}
#endif

#ifndef IS_BOOL
// ---- index fills for arange / range (contiguous outputs) ----
__kernel void arange_fill(__global T_MEM* out, int oo, int n, T start, T step) {
    int i = get_global_id(0); if (i >= n) return;
    ST(out, oo + i, start + (T)i * step);
}
#endif

// `value` with probability p, else 0: bernoulli_ (value 1) and the dropout keep-mask (value 1/(1-p)).
__kernel void threshold_fill(RNG_ARGS, U p, T value) {
    RNG_DRAW(r);
    ST(out, oo + i, UNIT(r.x, r.y) < p ? value : ZERO);
}

__kernel void eye_fill(__global T_MEM* out, int oo, int n, int cols) {
    int i = get_global_id(0); if (i >= n) return;
    ST(out, oo + i, i / cols == i % cols ? ONE : ZERO);
}

#ifdef IS_FLOAT
// bernoulli(p): 1 with probability p[i] (a contiguous tensor of probabilities), else 0.
__kernel void bernoulli_draw(RNG_ARGS, __global const T_MEM* p, int op) {
    RNG_DRAW(r);
    ST(out, oo + i, UNIT(r.x, r.y) < LD(p, op + i) ? ONE : ZERO);
}

// multinomial with replacement: draw i (row i / samples) is the first category whose running weight
// (cum, [rows, categories], the rows' inclusive sums) exceeds u * total, so a zero weight is never drawn;
// a u * total rounded up to the total takes the last category with weight.
__kernel void multinomial_draw(__global long* out, int oo, int n, uint k0, uint k1, ulong base,
                               __global const T_MEM* cum, int oc, int categories, int samples) {
    RNG_DRAW(r);
    cum += oc + (i / samples) * categories;
    T total = LD(cum, categories - 1);
    T t = UNIT(r.x, r.y) * total;
    int lo = 0, hi = categories;
    while (lo < hi) { int mid = (lo + hi) / 2; if (LD(cum, mid) > t) hi = mid; else lo = mid + 1; }
    if (lo == categories) {
        lo = categories - 1;
        while (lo > 0 && LD(cum, lo - 1) == total) --lo;
    }
    out[oo + i] = lo;
}
#endif
