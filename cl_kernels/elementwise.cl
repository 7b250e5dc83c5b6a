// Elementwise kernels. T is float or double (-DT=...). Every buffer parameter is followed by its element
// offset. The op table below (UNARY / BINARY / BINARY_P lines) is also what backend/fusion.py generates
// fused kernels from. The macros make these kernels (grep for the pattern, not the full name):
//   UNARY(NAME)    NAME_c, NAME_s             (unary ops; p0, p1 are by-value parameters)
//   BINARY(NAME)   NAME_c, NAME_s, NAME_cs, NAME_ss
//   BINARY_T(NAME) NAME_c, NAME_s             (two tensor operands only: pow, gradient helpers)
//   BINARY_R(NAME) NAME_cs, NAME_ss           (reflected operators: a number on the left, `2 - t`)
//   BINARY_P(NAME) NAME_c, NAME_s             (binary gradient helpers with parameters p0, p1)
// where
//   NAME_c : all operands contiguous with the output's shape; one element per work-item.
//   NAME_s : strided operands (broadcast = stride 0). The shape and strides arrive innermost-first as
//            int8 vectors (up to 8 dims after the host collapsed mergeable dims); out is contiguous.
//   NAME_cs / NAME_ss : a scalar right operand passed by value.
// backend/fusion.py names its generated kernels fused_<op>_<op>... after the ops they chain.
//
// Built with -DINPLACE, the same op table makes the in-place forms instead (ops/inplace.py: add_, exp_, ...
// through a strided view; a contiguous target uses NAME_c / NAME_cs with out = a):
//   UNARY(NAME)    NAME_i                 BINARY(NAME)   NAME_i, NAME_is (tensor / scalar right operand)
//   BINARY_T(NAME) NAME_i                 BINARY_R(NAME) NAME_is         BINARY_P(NAME) NAME_i
// where a is read and written at the same element by one work-item (the host refuses targets with
// repeated elements), sa: a's strides, sb: b's strides (0 where b is broadcast).
#include "common.h"

#ifdef INPLACE
#define UNARY(NAME, EXPR)                                                                       \
__kernel void NAME##_i(__global T* a, int oa, int n, T p0, T p1, META) {                       \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; a[ia] = (EXPR); }

#define BINARY_T(NAME, EXPR)                                                                    \
__kernel void NAME##_i(__global T* a, int oa, __global const T* b, int ob, int n, META) {       \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; T y = b[ib]; a[ia] = (EXPR); }

#define BINARY_R(NAME, EXPR)                                                                    \
__kernel void NAME##_is(__global T* a, int oa, T y, int n, META) {                              \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; a[ia] = (EXPR); }

#define BINARY(NAME, EXPR) BINARY_T(NAME, EXPR) BINARY_R(NAME, EXPR)

#define BINARY_P(NAME, EXPR)                                                                    \
__kernel void NAME##_i(__global T* a, int oa, __global const T* b, int ob, int n, T p0, T p1, META) { \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; T y = b[ib]; a[ia] = (EXPR); }
#else
#define UNARY(NAME, EXPR)                                                                       \
__kernel void NAME##_c(__global T* out, int oo, __global const T* a, int oa, int n, T p0, T p1) { \
    int i = get_global_id(0); if (i >= n) return; T x = a[oa + i]; out[oo + i] = (EXPR); }      \
__kernel void NAME##_s(__global T* out, int oo, __global const T* a, int oa, int n, T p0, T p1, META) { \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; out[oo + i] = (EXPR); }

#define BINARY_T(NAME, EXPR)                                                                    \
__kernel void NAME##_c(__global T* out, int oo, __global const T* a, int oa, __global const T* b, int ob, \
                       int n) {                                                                 \
    int i = get_global_id(0); if (i >= n) return; T x = a[oa + i]; T y = b[ob + i];             \
    out[oo + i] = (EXPR); }                                                                     \
__kernel void NAME##_s(__global T* out, int oo, __global const T* a, int oa, __global const T* b, int ob, \
                       int n, META) {                                                           \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; T y = b[ib]; out[oo + i] = (EXPR); }

#define BINARY_R(NAME, EXPR)                                                                    \
__kernel void NAME##_cs(__global T* out, int oo, __global const T* a, int oa, T y, int n) {     \
    int i = get_global_id(0); if (i >= n) return; T x = a[oa + i]; out[oo + i] = (EXPR); }      \
__kernel void NAME##_ss(__global T* out, int oo, __global const T* a, int oa, T y, int n, META) { \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;                  \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; out[oo + i] = (EXPR); }

#define BINARY(NAME, EXPR) BINARY_T(NAME, EXPR) BINARY_R(NAME, EXPR)

// Binary ops with two scalar parameters (gradient helpers): NAME_c / NAME_s only.
#define BINARY_P(NAME, EXPR)                                                                    \
__kernel void NAME##_c(__global T* out, int oo, __global const T* a, int oa, __global const T* b, int ob, \
                       int n, T p0, T p1) {                                                     \
    int i = get_global_id(0); if (i >= n) return; T x = a[oa + i]; T y = b[ob + i];             \
    out[oo + i] = (EXPR); }                                                                     \
__kernel void NAME##_s(__global T* out, int oo, __global const T* a, int oa, __global const T* b, int ob, \
                       int n, T p0, T p1, META) {                                               \
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = ob, ic = 0;                 \
    OFFSETS(i, ia, ib, ic); T x = a[ia]; T y = b[ib]; out[oo + i] = (EXPR); }
#endif

UNARY(neg, -x)
UNARY(abs, fabs(x))
UNARY(sign, (T)((x > ZERO) - (x < ZERO)))
UNARY(sin, sin(x))
UNARY(cos, cos(x))
UNARY(tanh, tanh(x))
UNARY(log, log(x))
UNARY(exp, exp(x))
UNARY(log1p, log1p(x))
UNARY(expm1, expm1(x))
UNARY(sqrt, sqrt(x))
UNARY(floor, floor(x))
UNARY(round, rint(x))
UNARY(relu, (x > ZERO || x != x) ? x : ZERO)  // NaN stays NaN (PyTorch)
UNARY(sigmoid, ONE / (ONE + exp(-x)))
UNARY(gelu, (T)0.5 * x * (ONE + erf(x * (T)0.70710678118654752)))
UNARY(leaky_relu, x > ZERO ? x : x * p0)
UNARY(gelu_tanh, x / (ONE + exp((T)-1.5957691216057307118 * (x + (T)0.044715 * x * x * x))))  // 0.5x(1+tanh(u)) = x sigmoid(2u)
UNARY(silu, x / (ONE + exp(-x)))
UNARY(elu, x > ZERO ? x : p0 * expm1(x))
UNARY(selu, (T)1.0507009873554804934 * (x > ZERO ? x : (T)1.6732632423543772848 * expm1(x)))
UNARY(softplus, x * p0 > p1 ? x : log1p(exp(x * p0)) / p0)
UNARY(mish, x * tanh(log1p(exp(x))))
UNARY(hardswish, x * clamp(x + (T)3, ZERO, (T)6) / (T)6)
UNARY(hardsigmoid, clamp(x + (T)3, ZERO, (T)6) / (T)6)
UNARY(pow_scalar, p0 == (T)2 ? x * x : (p0 == floor(p0) && fabs(p0) < (T)1e9 ? pown(x, (int)p0) : pow(x, p0)))
UNARY(clamp, x < p0 ? p0 : (x > p1 ? p1 : x))
UNARY(affine, x * p0 + p1)

BINARY(add, x + y)
BINARY_P(add_scaled, x + p0 * y)  // add(other, alpha=p0), sub(other, alpha) = add_scaled(-alpha)
BINARY(sub, x - y)
BINARY_R(rsub, y - x)
BINARY(mul, x * y)
BINARY(div, x / y)
BINARY_R(rdiv, y / x)
BINARY_T(pow, y == (T)2 ? x * x : (y == floor(y) && fabs(y) < (T)1e9 ? pown(x, (int)y) : pow(x, y)))
BINARY_R(rpow, x == floor(x) && fabs(x) < (T)1e9 ? pown(y, (int)x) : pow(y, x))
BINARY(maximum, (x != x || x > y) ? x : y)
BINARY(minimum, (x != x || x < y) ? x : y)
BINARY(eq, (T)(x == y))
BINARY(ne, (T)(x != y))
BINARY(lt, (T)(x < y))
BINARY(le, (T)(x <= y))
BINARY(gt, (T)(x > y))
BINARY(ge, (T)(x >= y))
// gradient helpers: x is the incoming gradient, y what the forward saved
BINARY_T(relu_grad, y > ZERO ? x : ZERO)
BINARY_T(tanh_grad, x * (ONE - y * y))
BINARY_T(sigmoid_grad, x * y * (ONE - y))
BINARY_T(sign_mul, y > ZERO ? x : (y < ZERO ? -x : ZERO))
BINARY_P(clamp_grad, (y > p0 && y < p1) ? x : ZERO)  // course rule: strictly inside the bounds
BINARY_P(leaky_relu_grad, y > ZERO ? x : x * p0)
BINARY_T(gelu_tanh_grad, x / (ONE + exp((T)-1.5957691216057307118 * (y + (T)0.044715 * y * y * y))) * (ONE + y * (ONE - ONE / (ONE + exp((T)-1.5957691216057307118 * (y + (T)0.044715 * y * y * y)))) * (T)1.5957691216057307118 * (ONE + (T)0.134145 * y * y)))
BINARY_T(silu_grad, x / (ONE + exp(-y)) * (ONE + y * (ONE - ONE / (ONE + exp(-y)))))
BINARY_P(elu_grad, y > ZERO ? x : x * p0 * exp(y))
BINARY_T(selu_grad, (T)1.0507009873554804934 * (y > ZERO ? x : x * (T)1.6732632423543772848 * exp(y)))
BINARY_P(softplus_grad, y * p0 > p1 ? x : x / (ONE + exp(-y * p0)))
BINARY_T(mish_grad, x * (tanh(log1p(exp(y))) + y * (ONE - tanh(log1p(exp(y))) * tanh(log1p(exp(y)))) / (ONE + exp(-y))))
BINARY_T(hardswish_grad, y < (T)-3 ? ZERO : (y <= (T)3 ? x * (y / (T)3 + (T)0.5) : x))
BINARY_T(hardsigmoid_grad, (y > (T)-3 && y < (T)3) ? x / (T)6 : ZERO)
BINARY_T(gelu_grad, x * ((T)0.5 * (ONE + erf(y * (T)0.70710678118654752)) + y * exp((T)-0.5 * y * y) * (T)0.39894228040143268))

#ifndef INPLACE
// where(cond, a, b): cond != 0 picks a.
__kernel void where_s(__global T* out, int oo, __global const T* c, int oc, __global const T* a, int oa,
                      __global const T* b, int ob, int n, META) {
    int i = get_global_id(0); if (i >= n) return; int ia = oc, ib = oa, ic = ob;
    OFFSETS(i, ia, ib, ic); out[oo + i] = c[ia] != ZERO ? a[ib] : b[ic]; }

// Strided write: out (a view) receives a (broadcast view) or a value; sa = out's strides, sb = a's.
__kernel void assign_c(__global T* out, int oo, __global const T* a, int oa, int n) {
    int i = get_global_id(0); if (i >= n) return; out[oo + i] = a[oa + i]; }
// Each work-item of assign_s copies `run` consecutive (row-major) elements: it locates the first one
// with OFFSETS' divisions and steps through the rest like an odometer over the two innermost dims, locating
// afresh only when dim 1 wraps (per-element divisions made strided copies ~10x slower than contiguous ones).
__kernel void assign_s(__global T* out, int oo, __global const T* a, int oa, int n, int run, META) {
    int i = get_global_id(0) * run; if (i >= n) return;
    int end = min(i + run, n);
    int io = oo, ia = oa, ic = 0;
    OFFSETS(i, io, ia, ic);
    int c0 = i % sh.s0, c1 = i / sh.s0 % sh.s1;
    int wrap_o = sa.s1 - sh.s0 * sa.s0, wrap_a = sb.s1 - sh.s0 * sb.s0;  // dim 0 back to 0, dim 1 up by one
    for (;;) {
        out[io] = a[ia];
        if (++i >= end) break;
        io += sa.s0; ia += sb.s0;
        if (++c0 < sh.s0) continue;
        c0 = 0; io += wrap_o; ia += wrap_a;
        if (++c1 < sh.s1) continue;
        c1 = 0; io = oo; ia = oa;
        OFFSETS(i, io, ia, ic);
    }
}
__kernel void assign_value_s(__global T* out, int oo, T v, int n, META) {
    int i = get_global_id(0); if (i >= n) return; int io = oo, ib = 0, ic = 0;
    OFFSETS(i, io, ib, ic); out[io] = v; }

#ifdef SRC_T
// dtype conversion from a strided SRC_T view into a contiguous T output
__kernel void cast_s(__global T* out, int oo, __global const SRC_T* a, int oa, int n, META) {
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;
    OFFSETS(i, ia, ib, ic); out[oo + i] = (T)a[ia]; }
#endif
#endif  // INPLACE
