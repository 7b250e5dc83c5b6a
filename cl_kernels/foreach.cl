// Multi-tensor ("foreach") kernels: one launch works on many separate buffers (a model's gradients), so
// nn.utils.clip_grad_norm_ costs a fixed number of launches instead of a few per parameter.
//
// OpenCL 1.2 has no pointers to buffers in memory (no SVM): a kernel reaches only the buffers passed to
// it as arguments. So the tensors arrive as NBUF argument triples (pointer, element offset, element count),
// NBUF a multiple of 8 given as a -D define (clownpiece/ops/foreach.py picks it from the device's
// max_parameter_size); slots past the last tensor repeat a buffer with count 0. Work-item w of W visits
// elements w, w + W, w + 2W, ... of every buffer, so neighbouring work-items touch neighbouring elements.
// Buffers are contiguous runs of their tensor's elements.
#include "common.h"

#define SLOT(i) , __global T* b##i, int o##i, int n##i
#define SLOTS8(g) SLOT(g##0) SLOT(g##1) SLOT(g##2) SLOT(g##3) SLOT(g##4) SLOT(g##5) SLOT(g##6) SLOT(g##7)
#define SLOTS16(g) SLOTS8(g##0) SLOTS8(g##1)
#define SLOTS32(g) SLOTS16(g##0) SLOTS16(g##1)
#define SLOTS64(g) SLOTS32(g##0) SLOTS32(g##1)
#define SLOTS128(g) SLOTS64(g##0) SLOTS64(g##1)

// VISIT runs STEP (defined by each kernel) with `e` pointing at each of the work-item's elements.
#define VISIT(i) { __global T* e_ = b##i + o##i; for (int j_ = w; j_ < n##i; j_ += W) { __global T* e = e_ + j_; STEP } }
#define VISITS8(g) VISIT(g##0) VISIT(g##1) VISIT(g##2) VISIT(g##3) VISIT(g##4) VISIT(g##5) VISIT(g##6) VISIT(g##7)
#define VISITS16(g) VISITS8(g##0) VISITS8(g##1)
#define VISITS32(g) VISITS16(g##0) VISITS16(g##1)
#define VISITS64(g) VISITS32(g##0) VISITS32(g##1)
#define VISITS128(g) VISITS64(g##0) VISITS64(g##1)

// NBUF = the sum of the powers of two in it: each bit adds its block of slots (names made unique by the
// block's letter).
#if NBUF & 8
#define S8 SLOTS8(a)
#define V8 VISITS8(a)
#else
#define S8
#define V8
#endif
#if NBUF & 16
#define S16 SLOTS16(b)
#define V16 VISITS16(b)
#else
#define S16
#define V16
#endif
#if NBUF & 32
#define S32 SLOTS32(c)
#define V32 VISITS32(c)
#else
#define S32
#define V32
#endif
#if NBUF & 64
#define S64 SLOTS64(d)
#define V64 VISITS64(d)
#else
#define S64
#define V64
#endif
#if NBUF & 128
#define S128 SLOTS128(f)
#define V128 VISITS128(f)
#else
#define S128
#define V128
#endif
#define BUFFERS S8 S16 S32 S64 S128
#define VISIT_ALL V8 V16 V32 V64 V128

// ---- vector norms over all the buffers together -----------------------------------------------------
// kind: 0 the inf norm (max |x|), 1 sum |x|, 2 sum x^2, 3 sum |x|^p. Work-item w writes its partial to
// part[w]; with `first` == 0 it adds to (or takes the max with) what an earlier launch over other buffers
// left there. The max keeps NaN once seen (PyTorch's max propagates NaN; fmax would drop it).
__kernel void norm_partials(__global T* part, int op, int W, int first, int kind, T p BUFFERS) {
    int w = get_global_id(0);
    if (w >= W) return;
    part += op;
    T acc = first ? ZERO : part[w];
    if (kind == 0) {
#define STEP { T a = fabs(*e); if (acc == acc && !(a <= acc)) acc = a; }
        VISIT_ALL
#undef STEP
    } else {
#define STEP { T x = *e; acc += kind == 2 ? x * x : kind == 1 ? fabs(x) : pow(fabs(x), p); }
        VISIT_ALL
#undef STEP
    }
    part[w] = acc;
}

// One work-group of L work-items (L a power of two, the launch's local size) combines the W partials
// into out[0] = the norm and out[1] = the clip coefficient min(max_norm / (norm + 1e-6), 1) (PyTorch's
// clip_grad_norm_; a NaN coefficient stays NaN, as PyTorch's clamp keeps it).
#define COMBINE(acc, v) { T v_ = (v); if (kind == 0) { if (acc == acc && !(v_ <= acc)) acc = v_; } else acc += v_; }
__kernel void norm_finish(__global T* out, int oo, __global const T* part, int op, int W, int kind, T p,
                          T max_norm, __local T* scratch) {
    int l = get_local_id(0), L = get_local_size(0);
    out += oo;
    part += op;
    T acc = ZERO;
    for (int j = l; j < W; j += L) COMBINE(acc, part[j])
    scratch[l] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = L / 2; s > 0; s >>= 1) {
        if (l < s) {
            T mine = scratch[l];
            COMBINE(mine, scratch[l + s])
            scratch[l] = mine;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) {
        T total = scratch[0];
        T norm = kind <= 1 ? total : kind == 2 ? sqrt(total) : pow(total, ONE / p);
        T coef = max_norm / (norm + (T)1e-6);
        out[0] = norm;
        out[1] = coef > ONE ? ONE : coef;
    }
}

// ---- in-place updates of every buffer ---------------------------------------------------------------
// x *= s[0] (the clip coefficient, read from the device: no host round trip)
__kernel void mul_scalar_(__global const T* s, int os, int W BUFFERS) {
    int w = get_global_id(0);
    if (w >= W) return;
    T c = s[os];
#define STEP *e *= c;
    VISIT_ALL
#undef STEP
}

// x = min(max(x, lo), hi), in that order (PyTorch's clamp_min_ then clamp_max_); NaN stays NaN
__kernel void clamp_(int W, T lo, T hi BUFFERS) {
    int w = get_global_id(0);
    if (w >= W) return;
#define STEP { T x = *e; x = x < lo ? lo : x; *e = x > hi ? hi : x; }
    VISIT_ALL
#undef STEP
}
