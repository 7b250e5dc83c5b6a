// Random fills from a counter-based generator, plus the index fills used by the factories.
// T is float or double (-DT=...). Outputs are contiguous runs starting at element `oo`; the host routes
// non-contiguous targets through a contiguous temporary.
//
// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11): element i of a
// call draws the block philox(counter = base + i, key = seed). The host hands every call a fresh counter
// range, so no generator state lives on (or is read back from) the device.
#include "common.h"

uint4 philox4x32_10(uint4 c, uint2 k) {
    for (int r = 0; r < 10; ++r) {
        ulong p0 = (ulong)0xD2511F53u * c.x;  // 32x32 -> 64-bit products give mulhi/mullo in one go
        ulong p1 = (ulong)0xCD9E8D57u * c.z;
        c = (uint4)((uint)(p1 >> 32) ^ c.y ^ k.x, (uint)p1, (uint)(p0 >> 32) ^ c.w ^ k.y, (uint)p0);
        k += (uint2)(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// A uniform in [0, 1) with the full mantissa of T: 24 bits from one word for float, 53 from two for double.
#ifdef USE_FP64
#define UNIT(a, b) ((T)((((ulong)(a) >> 5) << 26) | ((ulong)(b) >> 6)) * (T)1.1102230246251565404e-16)
#else
#define UNIT(a, b) ((T)((a) >> 8) * (T)5.9604644775390625e-8)
#endif

#define RNG_ARGS __global T* out, int oo, int n, uint k0, uint k1, ulong base
#define RNG_DRAW(r)                                                                             \
    int i = get_global_id(0); if (i >= n) return;                                               \
    ulong ctr_ = base + (ulong)i;                                                               \
    uint4 r = philox4x32_10((uint4)((uint)ctr_, (uint)(ctr_ >> 32), 0u, 0u), (uint2)(k0, k1))

__kernel void uniform_fill(RNG_ARGS, T low, T high) {
    RNG_DRAW(r);
    out[oo + i] = low + (high - low) * UNIT(r.x, r.y);
}

// Box-Muller; u1 lies in (0, 1] so the log is finite.
__kernel void normal_fill(RNG_ARGS, T mean, T std) {
    RNG_DRAW(r);
    T u1 = ONE - UNIT(r.x, r.y);
    T u2 = UNIT(r.z, r.w);
    out[oo + i] = mean + std * (sqrt((T)-2 * log(u1)) * cos((T)6.283185307179586477 * u2));
}

// `value` with probability p, else 0: bernoulli_ (value 1) and the dropout keep-mask (value 1/(1-p)).
__kernel void threshold_fill(RNG_ARGS, T p, T value) {
    RNG_DRAW(r);
    out[oo + i] = UNIT(r.x, r.y) < p ? value : ZERO;
}

// ---- index fills for arange / range / linspace / eye (contiguous outputs) ----
__kernel void arange_fill(__global T* out, int oo, int n, T start, T step) {
    int i = get_global_id(0); if (i >= n) return;
    out[oo + i] = start + (T)i * step;
}

// As PyTorch: the first half counts up from start, the second half down from end, so both ends are exact.
__kernel void linspace_fill(__global T* out, int oo, int n, T start, T end, T step) {
    int i = get_global_id(0); if (i >= n) return;
    out[oo + i] = i < n / 2 ? start + (T)i * step : end - (T)(n - 1 - i) * step;
}

__kernel void eye_fill(__global T* out, int oo, int n, int cols) {
    int i = get_global_id(0); if (i >= n) return;
    out[oo + i] = i / cols == i % cols ? ONE : ZERO;
}
