// Definitions shared by every kernel file. clownpiece/backend/programs.py pastes this text in place of each
// `#include "common.h"` line before building, so no include path is needed and pyopencl's binary cache,
// which keys on the source text, sees header edits.
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

// ---- element types (clownpiece/backend/dtypes.py makes the -D defines) ----------------------------------
// T_MEM is how an element is stored in a buffer, T the type arithmetic on it happens in: bool is stored as
// uchar 0/1, float16 as half (T = float: vload_half/vstore_half are core OpenCL C, no cl_khr_fp16 needed);
// for every other dtype T_MEM = T. Kind flags: IS_BOOL, IS_INT (int32, int64), IS_FLOAT (half, float, double),
// IS_HALF, IS_DOUBLE. A second element type (casts: SRC_T/SRC_T_MEM/SRC_IS_HALF; indices: IDX_...) uses the
// same names with a prefix. Buffers are __global T_MEM*; LD(p, i) reads element i as a T and ST(p, i, v)
// stores v, rounded to half (float16) or made 0/1 (bool).
#define ZERO ((T)0)
#define ONE ((T)1)

#ifdef IS_HALF
#define LD(p, i) vload_half((i), (p))
#define ST(p, i, v) vstore_half_rte((v), (i), (p))
#elif defined(IS_BOOL)
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (uchar)((v) != 0))
#else
#define LD(p, i) ((p)[i])
#define ST(p, i, v) ((p)[i] = (T)(v))
#endif

#ifdef SRC_IS_HALF
#define LD_SRC(p, i) vload_half((i), (p))
#else
#define LD_SRC(p, i) ((p)[i])
#endif

// The lowest and highest values of T (the identities of max and min).
#ifdef IS_FLOAT
#define T_LOWEST (-INFINITY)
#define T_HIGHEST INFINITY
#elif defined(IS_BOOL)
#define T_LOWEST ((uchar)0)
#define T_HIGHEST ((uchar)1)
#endif
#if defined(IS_INT)
#define T_LOWEST (sizeof(T) == 4 ? (T)INT_MIN : (T)LONG_MIN)
#define T_HIGHEST (sizeof(T) == 4 ? (T)INT_MAX : (T)LONG_MAX)
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

// v rounded to the nearest float16 value (ties to even; 65520 and beyond to infinity), as a float: what
// storing it with vstore_half_rte and loading it back gives. Generated (fused) kernels round every float16
// intermediate with it, as the eager kernels do by storing. Arithmetic, not a round trip through private
// memory (oclgrind does not track vstore_half into private memory), on the float's bits: a normal float16
// keeps 10 of float's 23 fraction bits, so the low 13 are rounded off to even (a carry into the exponent is
// right: it is the next binade); below 2^-14 (float16's subnormals, quantum 2^-24) adding 0.5, whose float
// quantum is 2^-24, rounds |v| to even, and subtracting it is exact. Bit-identical to numpy's astype(float16)
// on 17M values (random bit patterns, every float16, every midpoint and its neighbours) and 4x faster on
// PoCL than scaling by the quantum with ldexp/rint. half_round_d rounds a double straight to float16 (one
// rounding, as numpy's astype).
inline float half_round(float v) {
    uint u = as_uint(v), a = u & 0x7fffffffu;
    if (a >= 0x477ff000u) return a > 0x7f800000u ? v : as_float((u & 0x80000000u) | 0x7f800000u);  // NaN, inf
    if (a < 0x38800000u) return copysign((fabs(v) + 0.5f) - 0.5f, v);
    return as_float((u + 0xfffu + ((u >> 13) & 1u)) & 0xffffe000u);
}
#ifdef USE_FP64
inline float half_round_d(double v) {
    double a = fabs(v);
    if (!(a < 65520.0)) return a == a ? copysign(INFINITY, (float)v) : (float)v;
    double q = a < 6.103515625e-05 ? 5.9604644775390625e-08 : ldexp(1.0, ilogb(a) - 10);
    return (float)(rint(v / q) * q);
}
#endif

// ---- conversions: CAST(from, to, x) converts a value of C type `from` (a T) to what is stored as `to` (an
// T_MEM: uchar means bool). The one definition of every dtype conversion, used by cast.cl and by the fused
// kernels (backend/fusion.py), so both give the same bits. To bool: x != 0 (NaN is true). Floating to
// integer: truncation toward zero, saturated, NaN gives 0 (tested explicitly: oclgrind's convert_int_sat
// does not): defined for every input, where C leaves out-of-range conversions undefined. Integer to integer wraps. To float16: rounded to nearest even.
#define CAST(from, to, x) CAST_(from, to, x)
#define CAST_(from, to, x) CAST_##from##_##to(x)
#define TO_BOOL(x) ((uchar)((x) != 0))
#define CAST_uchar_uchar(x) TO_BOOL(x)
#define CAST_int_uchar(x) TO_BOOL(x)
#define CAST_long_uchar(x) TO_BOOL(x)
#define CAST_float_uchar(x) TO_BOOL(x)
#define CAST_uchar_int(x) ((int)(x))
#define CAST_int_int(x) ((int)(x))
#define CAST_long_int(x) ((int)(x))
#define CAST_float_int(x) ((x) != (x) ? 0 : convert_int_sat(x))
#define CAST_uchar_long(x) ((long)(x))
#define CAST_int_long(x) ((long)(x))
#define CAST_long_long(x) ((long)(x))
#define CAST_float_long(x) ((x) != (x) ? 0L : convert_long_sat(x))
#define CAST_uchar_float(x) ((float)(x))
#define CAST_int_float(x) ((float)(x))
#define CAST_long_float(x) ((float)(x))
#define CAST_float_float(x) ((float)(x))
#define CAST_uchar_half(x) ((float)(x))
#define CAST_int_half(x) half_round((float)(x))
#define CAST_long_half(x) half_round((float)(x))
#define CAST_float_half(x) half_round(x)
#ifdef USE_FP64
#define CAST_double_uchar(x) TO_BOOL(x)
#define CAST_double_int(x) ((x) != (x) ? 0 : convert_int_sat(x))
#define CAST_double_long(x) ((x) != (x) ? 0L : convert_long_sat(x))
#define CAST_double_float(x) ((float)(x))
#define CAST_uchar_double(x) ((double)(x))
#define CAST_int_double(x) ((double)(x))
#define CAST_long_double(x) ((double)(x))
#define CAST_float_double(x) ((double)(x))
#define CAST_double_double(x) ((double)(x))
#define CAST_double_half(x) half_round_d(x)
#endif

// ---- device-side checks (clownpiece/backend/checks.py) ------------------------------------------------
// A kernel that meets a value it must refuse (an index out of range) calls report_error with the error word
// `err` and the host's `code` for the check: the first failure on the device is kept (code, value as two
// 32-bit halves, bound) and raised by the next host read. The kernel goes on with a defined result.
inline void report_error(__global int* err, int code, long value, int bound) {
    if (atomic_cmpxchg((volatile __global int*)err, 0, code) == 0) {
        err[1] = (int)value; err[2] = (int)(value >> 32); err[3] = bound;
    }
}
// A float value of a check registered with float_value=True goes as its bits, bound sizeof(T).
#ifdef IS_DOUBLE
#define FLOAT_BITS(v) as_long(v)
#else
#define FLOAT_BITS(v) ((long)as_int((float)(v)))
#endif

// ---- integer and floor arithmetic with Python's rules ----------------------------------------------------
// FLOORDIV / REMAINDER / IPOW / LSHIFT / RSHIFT call the helper for T (float for float16). Integer division
// by zero gives 0 (numpy's result: a device cannot raise), and INT_MIN / -1 wraps instead of trapping.
#define FLOORDIV(a, b) CAT(floordiv_, T)(a, b)
#define REMAINDER(a, b) CAT(remainder_, T)(a, b)
#define IPOW(a, b) CAT(ipow_, T)(a, b)
#define LSHIFT(a, b) CAT(lshift_, T)(a, b)
#define RSHIFT(a, b) CAT(rshift_, T)(a, b)

#define INTEGER_HELPERS(TY, UTY, BITS)                                                           \
inline TY floordiv_##TY(TY a, TY b) {                                                           \
    if (b == 0) return 0;                                                                       \
    if (b == -1) return (TY)((UTY)0 - (UTY)a);                                                  \
    TY q = a / b;                                                                               \
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q; }                                  \
inline TY remainder_##TY(TY a, TY b) {                                                          \
    if (b == 0 || b == -1) return 0;                                                            \
    TY r = a % b;                                                                               \
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }                                      \
inline TY ipow_##TY(TY a, TY b) {  /* PyTorch's powi: negative exponents give 0 unless |a| == 1 */ \
    if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);                          \
    UTY r = 1, base = (UTY)a;                                                                   \
    while (b) { if (b & 1) r *= base; base *= base; b >>= 1; }                                  \
    return (TY)r; }                                                                             \
inline TY lshift_##TY(TY a, TY b) { return (b < 0 || b >= BITS) ? (TY)0 : (TY)((UTY)a << b); }   \
inline TY rshift_##TY(TY a, TY b) { return (b < 0 || b >= BITS) ? (a >> (BITS - 1)) : (a >> b); }
INTEGER_HELPERS(int, uint, 32)
INTEGER_HELPERS(long, ulong, 64)

// Floating floor division and remainder as Python and numpy compute them (npy_divmod): the remainder
// takes the divisor's sign; the quotient is snapped to the nearest integer of (a - fmod(a, b)) / b.
#define FLOAT_HELPERS(TY)                                                                       \
inline TY floordiv_##TY(TY a, TY b) {                                                           \
    if (b == (TY)0) return a / b;                                                               \
    TY mod = fmod(a, b);                                                                        \
    TY div = (a - mod) / b;                                                                     \
    if (mod != (TY)0 && isless(b, (TY)0) != isless(mod, (TY)0)) div -= (TY)1;                    \
    if (div == (TY)0) return copysign((TY)0, a / b);                                            \
    TY fl = floor(div);                                                                         \
    return isgreater(div - fl, (TY)0.5) ? fl + (TY)1 : fl; }                                    \
inline TY remainder_##TY(TY a, TY b) {                                                          \
    TY mod = fmod(a, b);                                                                        \
    if (b == (TY)0) return mod;                                                                 \
    if (mod == (TY)0) return copysign((TY)0, b);                                                \
    return isless(b, (TY)0) != isless(mod, (TY)0) ? mod + b : mod; }
FLOAT_HELPERS(float)
#ifdef USE_FP64
FLOAT_HELPERS(double)
#endif

// ERFINV(y): the inverse error function (OpenCL C has erf, not its inverse). Winitzki's closed form (about
// 2e-3 off) refined by three Newton steps on erf(x) = y, whose error squares each step; +-1 give +-inf and
// |y| > 1 or NaN give NaN (PyTorch's results).
#ifdef IS_FLOAT
inline T erfinv_T(T y) {
    if (!(y > -ONE && y < ONE)) return y == ONE ? (T)INFINITY : (y == -ONE ? (T)-INFINITY : (T)NAN);
    T w = log((ONE - y) * (ONE + y));
    T b = (T)4.3307467508 + w / (T)2;  // 2 / (pi * 0.147) + ln(1 - y^2) / 2
    T x = copysign(sqrt(sqrt(b * b - w / (T)0.147) - b), y);
    for (int k = 0; k < 3; ++k) x -= (erf(x) - y) / ((T)1.1283791670955126 * exp(-x * x));
    return x;
}
#define ERFINV(y) erfinv_T(y)
#endif

// Strided addressing (clownpiece._layout.kernel_meta): a shape and up to three stride sets arrive
// innermost-first as int8 vectors, mergeable dims already collapsed on the host.
#define META int nd, int8 sh, int8 sa, int8 sb, int8 sc
#define LOAD8(v) int v##_[8] = {v.s0, v.s1, v.s2, v.s3, v.s4, v.s5, v.s6, v.s7}

// Adds to ia, ib, ic the offsets of the element with linear (row-major) index i in the three operands of META.
#define OFFSETS(i, ia, ib, ic)                                                                  \
    LOAD8(sh); LOAD8(sa); LOAD8(sb); LOAD8(sc);                                                 \
    { int r_ = (i);                                                                             \
      for (int k_ = 0; k_ < nd; ++k_) {                                                         \
          int c_ = r_ % sh_[k_]; r_ /= sh_[k_];                                                 \
          ia += c_ * sa_[k_]; ib += c_ * sb_[k_]; ic += c_ * sc_[k_]; } }

// Offset of the element with linear (row-major) index i in a single operand of shape sh and strides st.
inline int strided_offset(int i, int nd, int8 sh, int8 st) {
    LOAD8(sh); LOAD8(st);
    int off = 0;
    for (int k = 0; k < nd; ++k) {
        off += i % sh_[k] * st_[k];
        i /= sh_[k];
    }
    return off;
}
