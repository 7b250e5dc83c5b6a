// Elementwise kernels, built once per dtype (-DT, -DT_MEM and the kind flags of common.h). Every buffer
// parameter is followed by its element offset. The op table below is also what backend/fusion.py generates
// fused kernels from. Each line names the dtype kinds it is built for: F (float16, float32, float64),
// I (int32, int64), B (bool), or a combination (FI, IB, FIB); an op may have one line per kind with a
// different body. T is the type arithmetic happens in, so a float16 op is computed in float and rounded
// once when stored. The macros make these kernels (grep for the pattern, not the full name):
//   UNARY(K, NAME)    NAME_c, NAME_s             (unary ops; p0, p1 are by-value parameters)
//   BINARY(K, NAME)   NAME_c, NAME_s, NAME_cs, NAME_ss
//   BINARY_T(K, NAME) NAME_c, NAME_s             (two tensor operands only: pow, gradient helpers)
//   BINARY_R(K, NAME) NAME_cs, NAME_ss           (reflected operators: a number on the left, `2 - t`)
//   BINARY_P(K, NAME) NAME_c, NAME_s             (binary gradient helpers with parameters p0, p1)
//   TEST(K, NAME)     NAME_c, NAME_s             (unary predicates: the output is bool)
//   COMPARE(K, NAME)  NAME_c, NAME_s, NAME_cs, NAME_ss   (binary predicates: the output is bool)
// where
//   NAME_c : all operands contiguous with the output's shape; one element per work-item.
//   NAME_s : strided operands (broadcast = stride 0). The shape and strides arrive innermost-first as
//            int8 vectors (up to 8 dims after the host collapsed mergeable dims); out is contiguous.
//   NAME_cs / NAME_ss : a scalar right operand passed by value (a T).
// backend/fusion.py names its generated kernels fused_<op>_<op>... after the ops they chain.
//
// Built with -DINPLACE, the same op table makes the in-place forms instead (ops/inplace.py: add_, exp_, ...
// through a strided view; a contiguous target uses NAME_c / NAME_cs with out = a):
//   UNARY(K, NAME)    NAME_i                 BINARY(K, NAME)   NAME_i, NAME_is (tensor / scalar right operand)
//   BINARY_T(K, NAME) NAME_i                 BINARY_R(K, NAME) NAME_is         BINARY_P(K, NAME) NAME_i
// (predicates change the dtype, so they have no in-place form) where a is read and written at the same
// element by one work-item (the host refuses targets with repeated elements), sa: a's strides, sb: b's
// strides (0 where b is broadcast).
#include "common.h"

// WHEN_<kinds>(x) is x when this build's dtype is of one of the kinds, else nothing.
#if defined(IS_FLOAT)
#define WHEN_F(x) x
#define WHEN_I(x)
#define WHEN_B(x)
#define WHEN_FI(x) x
#define WHEN_IB(x)
#define WHEN_FIB(x) x
#elif defined(IS_INT)
#define WHEN_F(x)
#define WHEN_I(x) x
#define WHEN_B(x)
#define WHEN_FI(x) x
#define WHEN_IB(x) x
#define WHEN_FIB(x) x
#else
#define WHEN_F(x)
#define WHEN_I(x)
#define WHEN_B(x) x
#define WHEN_FI(x)
#define WHEN_IB(x) x
#define WHEN_FIB(x) x
#endif

// Kernel names are pasted here, before anything expands NAME: OpenCL implementations may define builtin
// names (sin, abs, remainder...) as macros.
#ifdef INPLACE
#define UNARY(K, NAME, EXPR) WHEN_##K(UNARY_I(NAME##_i, EXPR))
#define BINARY_T(K, NAME, EXPR) WHEN_##K(BINARY_I(NAME##_i, EXPR))
#define BINARY_R(K, NAME, EXPR) WHEN_##K(SCALAR_I(NAME##_is, EXPR))
#define BINARY(K, NAME, EXPR) WHEN_##K(BINARY_I(NAME##_i, EXPR) SCALAR_I(NAME##_is, EXPR))
#define BINARY_P(K, NAME, EXPR) WHEN_##K(BINARY_P_I(NAME##_i, EXPR))
#define TEST(K, NAME, EXPR)
#define COMPARE(K, NAME, EXPR)

#define UNARY_I(C, EXPR)                                                                        \
__kernel void C(__global T_MEM* a, int oa, int n, T p0, T p1, META) {                           \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); ST(a, ia, (EXPR)); }
#define BINARY_I(C, EXPR)                                                                       \
__kernel void C(__global T_MEM* a, int oa, __global const T_MEM* b, int ob, int n, META) {      \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); T y = LD(b, ib); ST(a, ia, (EXPR)); }
#define SCALAR_I(C, EXPR)                                                                       \
__kernel void C(__global T_MEM* a, int oa, T y, int n, META) {                                  \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); ST(a, ia, (EXPR)); }
#define BINARY_P_I(C, EXPR)                                                                     \
__kernel void C(__global T_MEM* a, int oa, __global const T_MEM* b, int ob, int n, T p0, T p1, META) { \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); T y = LD(b, ib); ST(a, ia, (EXPR)); }
#else
#define UNARY(K, NAME, EXPR) WHEN_##K(UNARY_KERNELS(NAME##_c, NAME##_s, T_MEM, ST, EXPR))
#define TEST(K, NAME, EXPR) WHEN_##K(UNARY_KERNELS(NAME##_c, NAME##_s, uchar, ST_PLAIN, EXPR))
#define BINARY_T(K, NAME, EXPR) WHEN_##K(BINARY_KERNELS(NAME##_c, NAME##_s, T_MEM, ST, EXPR))
#define BINARY_R(K, NAME, EXPR) WHEN_##K(SCALAR_KERNELS(NAME##_cs, NAME##_ss, T_MEM, ST, EXPR))
#define BINARY(K, NAME, EXPR) WHEN_##K(BINARY_KERNELS(NAME##_c, NAME##_s, T_MEM, ST, EXPR) \
                                       SCALAR_KERNELS(NAME##_cs, NAME##_ss, T_MEM, ST, EXPR))
#define COMPARE(K, NAME, EXPR) WHEN_##K(BINARY_KERNELS(NAME##_c, NAME##_s, uchar, ST_PLAIN, EXPR) \
                                        SCALAR_KERNELS(NAME##_cs, NAME##_ss, uchar, ST_PLAIN, EXPR))
#define BINARY_P(K, NAME, EXPR) WHEN_##K(BINARY_P_KERNELS(NAME##_c, NAME##_s, EXPR))
#define ST_PLAIN(p, i, v) ((p)[i] = (v))

// OUT/STORE: the output's element type and how a value is stored (bool results of predicates are 0/1)
#define UNARY_KERNELS(C, STRIDED, OUT, STORE, EXPR)                                             \
__kernel void C(__global OUT* out, int oo, __global const T_MEM* a, int oa, int n, T p0, T p1) { \
    int i = get_global_id(0); if (i >= n) return; T x = LD(a, oa + i); STORE(out, oo + i, (EXPR)); } \
__kernel void STRIDED(__global OUT* out, int oo, __global const T_MEM* a, int oa, int n, T p0, T p1, META) { \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); STORE(out, oo + i, (EXPR)); }

#define BINARY_KERNELS(C, STRIDED, OUT, STORE, EXPR)                                            \
__kernel void C(__global OUT* out, int oo, __global const T_MEM* a, int oa, __global const T_MEM* b, int ob, \
                int n) {                                                                        \
    int i = get_global_id(0); if (i >= n) return; T x = LD(a, oa + i); T y = LD(b, ob + i);     \
    STORE(out, oo + i, (EXPR)); }                                                               \
__kernel void STRIDED(__global OUT* out, int oo, __global const T_MEM* a, int oa, __global const T_MEM* b, \
                      int ob, int n, META) {                                                    \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); T y = LD(b, ib); STORE(out, oo + i, (EXPR)); }

#define SCALAR_KERNELS(C, STRIDED, OUT, STORE, EXPR)                                            \
__kernel void C(__global OUT* out, int oo, __global const T_MEM* a, int oa, T y, int n) {       \
    int i = get_global_id(0); if (i >= n) return; T x = LD(a, oa + i); STORE(out, oo + i, (EXPR)); } \
__kernel void STRIDED(__global OUT* out, int oo, __global const T_MEM* a, int oa, T y, int n, META) { \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); STORE(out, oo + i, (EXPR)); }

// Binary ops with two scalar parameters (gradient helpers, add_scaled): NAME_c / NAME_s only.
#define BINARY_P_KERNELS(C, STRIDED, EXPR)                                                      \
__kernel void C(__global T_MEM* out, int oo, __global const T_MEM* a, int oa, __global const T_MEM* b, int ob, \
                int n, T p0, T p1) {                                                            \
    int i = get_global_id(0); if (i >= n) return; T x = LD(a, oa + i); T y = LD(b, ob + i);     \
    ST(out, oo + i, (EXPR)); }                                                                  \
__kernel void STRIDED(__global T_MEM* out, int oo, __global const T_MEM* a, int oa, __global const T_MEM* b, \
                      int ob, int n, T p0, T p1, META) {                                        \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = LD(a, ia); T y = LD(b, ib); ST(out, oo + i, (EXPR)); }
#endif

UNARY(FI, neg, -x)
UNARY(F, abs, fabs(x))
UNARY(I, abs, x < ZERO ? -x : x)
UNARY(FIB, sign, (T)((x > ZERO) - (x < ZERO)))
UNARY(F, sin, sin(x))
UNARY(F, cos, cos(x))
UNARY(F, tanh, tanh(x))
UNARY(F, log, log(x))
UNARY(F, exp, exp(x))
UNARY(F, log1p, log1p(x))
UNARY(F, expm1, expm1(x))
UNARY(F, sqrt, sqrt(x))
UNARY(F, floor, floor(x))
UNARY(F, round, rint(x))
UNARY(FI, relu, (x > ZERO || x != x) ? x : ZERO)  // NaN stays NaN (PyTorch)
UNARY(F, sigmoid, ONE / (ONE + exp(-x)))
UNARY(F, gelu, (T)0.5 * x * (ONE + erf(x * (T)0.70710678118654752)))
UNARY(F, leaky_relu, x > ZERO ? x : x * p0)
UNARY(F, gelu_tanh, x / (ONE + exp((T)-1.5957691216057307118 * (x + (T)0.044715 * x * x * x))))  // 0.5x(1+tanh(u)) = x sigmoid(2u)
UNARY(F, silu, x / (ONE + exp(-x)))
UNARY(F, elu, x > ZERO ? x : p0 * expm1(x))
UNARY(F, selu, (T)1.0507009873554804934 * (x > ZERO ? x : (T)1.6732632423543772848 * expm1(x)))
UNARY(F, softplus, x * p0 > p1 ? x : log1p(exp(x * p0)) / p0)
UNARY(F, mish, x * tanh(log1p(exp(x))))
UNARY(F, hardswish, x * clamp(x + (T)3, ZERO, (T)6) / (T)6)
UNARY(F, hardsigmoid, clamp(x + (T)3, ZERO, (T)6) / (T)6)
UNARY(F, pow_scalar, p0 == (T)2 ? x * x : (p0 == floor(p0) && fabs(p0) < (T)1e9 ? pown(x, (int)p0) : pow(x, p0)))
UNARY(I, pow_scalar, IPOW(x, p0))
UNARY(FI, clamp, x < p0 ? p0 : (x > p1 ? p1 : x))
UNARY(F, affine, x * p0 + p1)
UNARY(F, log2, log2(x))
UNARY(F, log10, log10(x))
UNARY(F, erf, erf(x))
UNARY(F, erfinv, ERFINV(x))
UNARY(F, rsqrt, rsqrt(x))
UNARY(F, reciprocal, ONE / x)
UNARY(FI, square, x * x)
UNARY(F, nan_to_num_inf, isinf(x) ? (x > ZERO ? p0 : p1) : x)  // nan_to_num: +inf -> p0, -inf -> p1
UNARY(F, nan_to_num_nan, x != x ? p0 : x)                        // then NaN -> p0
UNARY(I, bitwise_not, ~x)
UNARY(B, bitwise_not, !x)
TEST(FIB, logical_not, x == ZERO)
TEST(F, isnan, x != x)
TEST(F, isinf, isinf(x))
TEST(F, isfinite, isfinite(x))

BINARY(FIB, add, x + y)
BINARY_P(FI, add_scaled, x + p0 * y)  // add(other, alpha=p0), sub(other, alpha) = add_scaled(-alpha)
BINARY(FI, sub, x - y)
BINARY_R(FI, rsub, y - x)
BINARY(FIB, mul, x * y)
BINARY(F, div, x / y)
BINARY_R(F, rdiv, y / x)
BINARY(FI, floor_divide, FLOORDIV(x, y))
BINARY_R(FI, rfloor_divide, FLOORDIV(y, x))
BINARY(FI, remainder, REMAINDER(x, y))
BINARY(F, fmod, fmod(x, y))
BINARY(I, fmod, (y == ZERO || y == (T)-1) ? ZERO : x % y)  // C's remainder (the dividend's sign); / 0 gives 0
BINARY_R(FI, rremainder, REMAINDER(y, x))
BINARY_T(F, pow, y == (T)2 ? x * x : (y == floor(y) && fabs(y) < (T)1e9 ? pown(x, (int)y) : pow(x, y)))
BINARY_R(F, rpow, x == floor(x) && fabs(x) < (T)1e9 ? pown(y, (int)x) : pow(y, x))
BINARY_T(I, pow, IPOW(x, y))
BINARY_R(I, rpow, IPOW(y, x))
BINARY(FIB, maximum, (x != x || x > y) ? x : y)
BINARY(FIB, minimum, (x != x || x < y) ? x : y)
BINARY(IB, bitwise_and, x & y)
BINARY(IB, bitwise_or, x | y)
BINARY(IB, bitwise_xor, x ^ y)
BINARY(I, lshift, LSHIFT(x, y))
BINARY(I, rshift, RSHIFT(x, y))
BINARY_R(I, rlshift, LSHIFT(y, x))
BINARY_R(I, rrshift, RSHIFT(y, x))
COMPARE(FIB, eq, x == y)
COMPARE(FIB, ne, x != y)
COMPARE(FIB, lt, x < y)
COMPARE(FIB, le, x <= y)
COMPARE(FIB, gt, x > y)
COMPARE(FIB, ge, x >= y)
COMPARE(FIB, logical_and, x != ZERO && y != ZERO)
COMPARE(FIB, logical_or, x != ZERO || y != ZERO)
COMPARE(FIB, logical_xor, (x != ZERO) != (y != ZERO))
// gradient helpers: x is the incoming gradient, y what the forward saved
BINARY_T(F, relu_grad, y > ZERO ? x : ZERO)
BINARY_T(F, tanh_grad, x * (ONE - y * y))
BINARY_T(F, sigmoid_grad, x * y * (ONE - y))
BINARY_T(F, sign_mul, y > ZERO ? x : (y < ZERO ? -x : ZERO))
BINARY_P(F, clamp_grad, (y > p0 && y < p1) ? x : ZERO)  // course rule: strictly inside the bounds
BINARY_P(F, leaky_relu_grad, y > ZERO ? x : x * p0)
BINARY_T(F, gelu_tanh_grad, x / (ONE + exp((T)-1.5957691216057307118 * (y + (T)0.044715 * y * y * y))) * (ONE + y * (ONE - ONE / (ONE + exp((T)-1.5957691216057307118 * (y + (T)0.044715 * y * y * y)))) * (T)1.5957691216057307118 * (ONE + (T)0.134145 * y * y)))
BINARY_T(F, silu_grad, x / (ONE + exp(-y)) * (ONE + y * (ONE - ONE / (ONE + exp(-y)))))
BINARY_P(F, elu_grad, y > ZERO ? x : x * p0 * exp(y))
BINARY_T(F, selu_grad, (T)1.0507009873554804934 * (y > ZERO ? x : x * (T)1.6732632423543772848 * exp(y)))
BINARY_P(F, softplus_grad, y * p0 > p1 ? x : x / (ONE + exp(-y * p0)))
BINARY_T(F, mish_grad, x * (tanh(log1p(exp(y))) + y * (ONE - tanh(log1p(exp(y))) * tanh(log1p(exp(y)))) / (ONE + exp(-y))))
BINARY_T(F, hardswish_grad, y < (T)-3 ? ZERO : (y <= (T)3 ? x * (y / (T)3 + (T)0.5) : x))
BINARY_T(F, hardsigmoid_grad, (y > (T)-3 && y < (T)3) ? x / (T)6 : ZERO)
BINARY_T(F, gelu_grad, x * ((T)0.5 * (ONE + erf(y * (T)0.70710678118654752)) + y * exp((T)-0.5 * y * y) * (T)0.39894228040143268))

#ifndef INPLACE
// where(cond, a, b): a bool cond picks a.
__kernel void where_s(__global T_MEM* out, int oo, __global const uchar* c, int oc, __global const T_MEM* a, int oa,
                      __global const T_MEM* b, int ob, int n, META) {
    int i = get_global_id(0); if (i >= n) return; int ia = oc, ib = oa, ic = ob;
    OFFSETS(i, ia, ib, ic); ST(out, oo + i, c[ia] ? LD(a, ib) : LD(b, ic)); }

// Strided write: out (a view) receives a (broadcast view) or a value; sa = out's strides, sb = a's.
__kernel void assign_c(__global T_MEM* out, int oo, __global const T_MEM* a, int oa, int n) {
    int i = get_global_id(0); if (i >= n) return; ST(out, oo + i, LD(a, oa + i)); }
// Each work-item of assign_s copies `run` consecutive (row-major) elements: it locates the first one
// with OFFSETS' divisions and steps through the rest like an odometer over the two innermost dims, locating
// afresh only when dim 1 wraps (per-element divisions made strided copies ~10x slower than contiguous ones).
__kernel void assign_s(__global T_MEM* out, int oo, __global const T_MEM* a, int oa, int n, int run, META) {
    int i = get_global_id(0) * run; if (i >= n) return;
    int end = min(i + run, n);
    int io = oo, ia = oa, ic = 0;
    OFFSETS(i, io, ia, ic);
    int c0 = i % sh.s0, c1 = i / sh.s0 % sh.s1;
    int wrap_o = sa.s1 - sh.s0 * sa.s0, wrap_a = sb.s1 - sh.s0 * sb.s0;  // dim 0 back to 0, dim 1 up by one
    for (;;) {
        ST(out, io, LD(a, ia));
        if (++i >= end) break;
        io += sa.s0; ia += sb.s0;
        if (++c0 < sh.s0) continue;
        c0 = 0; io += wrap_o; ia += wrap_a;
        if (++c1 < sh.s1) continue;
        c1 = 0; io = oo; ia = oa;
        OFFSETS(i, io, ia, ic);
    }
}
__kernel void assign_value_s(__global T_MEM* out, int oo, T v, int n, META) {
    int i = get_global_id(0); if (i >= n) return; int io = oo, ib = 0, ic = 0;
    OFFSETS(i, io, ib, ic); ST(out, io, v); }
#endif  // INPLACE
