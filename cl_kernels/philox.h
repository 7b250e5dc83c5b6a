// Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11), the counter-based
// generator of random.cl's fills and attention.cl's dropout: a block of four random words per (counter, key).
// Pasted into a kernel file by `#include "philox.h"` after common.h.

inline uint4 philox4x32_10(uint4 c, uint2 k) {
    for (int r = 0; r < 10; ++r) {
        ulong p0 = (ulong)0xD2511F53u * c.x;  // 32x32 -> 64-bit products give mulhi/mullo in one go
        ulong p1 = (ulong)0xCD9E8D57u * c.z;
        c = (uint4)((uint)(p1 >> 32) ^ c.y ^ k.x, (uint)p1, (uint)(p0 >> 32) ^ c.w ^ k.y, (uint)p0);
        k += (uint2)(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// The block of a 64-bit counter.
inline uint4 philox_at(ulong ctr, uint k0, uint k1) {
    return philox4x32_10((uint4)((uint)ctr, (uint)(ctr >> 32), 0u, 0u), (uint2)(k0, k1));
}

// A uniform in [0, 1) of type U with its full mantissa: 24 bits from one word for float, 53 from two for
// double (U is double in float64 builds, the only ones that define USE_FP64; else float, also for the
// integer and float16 builds of random.cl).
#ifdef USE_FP64
#define U double
#define UNIT(a, b) ((U)((((ulong)(a) >> 5) << 26) | ((ulong)(b) >> 6)) * (U)1.1102230246251565404e-16)
#else
#define U float
#define UNIT(a, b) ((U)((a) >> 8) * (U)5.9604644775390625e-8)
#endif
