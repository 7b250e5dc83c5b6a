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
// VISIT runs STEP (defined by each kernel) with `e` pointing at each of the work-item's elements.
#define VISIT(i) { __global T* e_ = b##i + o##i; for (int j_ = w; j_ < n##i; j_ += W) { __global T* e = e_ + j_; STEP } }

// EACH<n>(M, g) applies the slot macro M (SLOT, VISIT, ...) to n slots named g0, g1, ...
#define EACH8(M, g) M(g##0) M(g##1) M(g##2) M(g##3) M(g##4) M(g##5) M(g##6) M(g##7)
#define EACH16(M, g) EACH8(M, g##0) EACH8(M, g##1)
#define EACH32(M, g) EACH16(M, g##0) EACH16(M, g##1)
#define EACH64(M, g) EACH32(M, g##0) EACH32(M, g##1)
#define EACH128(M, g) EACH64(M, g##0) EACH64(M, g##1)

// NBUF = the sum of the powers of two in it: each bit adds its block of slots (names made unique by the
// block's letter). FOR_ALL(M) applies M to every slot, in order.
#if NBUF & 8
#define ALL8(M) EACH8(M, a)
#else
#define ALL8(M)
#endif
#if NBUF & 16
#define ALL16(M) EACH16(M, b)
#else
#define ALL16(M)
#endif
#if NBUF & 32
#define ALL32(M) EACH32(M, c)
#else
#define ALL32(M)
#endif
#if NBUF & 64
#define ALL64(M) EACH64(M, d)
#else
#define ALL64(M)
#endif
#if NBUF & 128
#define ALL128(M) EACH128(M, f)
#else
#define ALL128(M)
#endif
#define FOR_ALL(M) ALL8(M) ALL16(M) ALL32(M) ALL64(M) ALL128(M)
#define BUFFERS FOR_ALL(SLOT)
#define VISIT_ALL FOR_ALL(VISIT)

// ---- vector norms over all the buffers together -----------------------------------------------------
// kind: 0 the inf norm (max |x|), 1 sum |x|, 2 sum x^2, 3 sum |x|^p (any p != 0: for p < 0 a zero adds inf),
// 4 the -inf norm (min |x|), 5 the number of buffers holding a nonzero (NaN counts) element: PyTorch's
// order-0 norm of the per-tensor order-0 norms. Work-item w writes its partial to part[w]; with `first` == 0
// it adds to (or takes the max / min with) what an earlier launch over other buffers left there. The max and
// min keep NaN once seen (PyTorch's propagate NaN; fmax / fmin would drop it). For kind 5 work-item w scans
// the slots s with s % W == w whole, stopping at their first nonzero element.
#define IDENTITY(kind) ((kind) == 4 ? (T)INFINITY : ZERO)
#define COMBINE(acc, v) { T v_ = (v); if (kind == 0) { if (acc == acc && !(v_ <= acc)) acc = v_; } \
                          else if (kind == 4) { if (acc == acc && !(v_ >= acc)) acc = v_; } else acc += v_; }
#define ANY_NONZERO(i) { if (slot_ % W == w) { __global T* e_ = b##i + o##i; int j_ = 0;              \
                                             while (j_ < n##i && e_[j_] == ZERO) ++j_;             \
                                             acc += (T)(j_ < n##i); }                              \
                         ++slot_; }
__kernel void norm_partials(__global T* part, int op, int W, int first, int kind, T p BUFFERS) {
    int w = get_global_id(0);
    if (w >= W) return;
    part += op;
    T acc = first ? IDENTITY(kind) : part[w];
    if (kind == 0 || kind == 4) {
#define STEP COMBINE(acc, fabs(*e))
        VISIT_ALL
#undef STEP
    } else if (kind == 5) {
        int slot_ = 0;
        FOR_ALL(ANY_NONZERO)
    } else {
#define STEP { T x = *e; acc += kind == 2 ? x * x : kind == 1 ? fabs(x) : pow(fabs(x), p); }
        VISIT_ALL
#undef STEP
    }
    part[w] = acc;
}

// One work-group of L work-items (L a power of two, the launch's local size) combines the W partials
// into out[0] = the norm and out[1] = the clip coefficient min(max_norm / (norm + 1e-6), 1) (PyTorch's
// clip_grad_norm_; a NaN coefficient stays NaN, as PyTorch's clamp keeps it). With `check` a non-finite
// norm is reported to the error word err (error_if_nonfinite: raised at the next host read) and the
// coefficient is 1, so the gradients are left as they were (PyTorch raises before scaling them).
__kernel void norm_finish(__global T* out, int oo, __global const T* part, int op, int W, int kind, T p,
                          T max_norm, int check, __global int* err, int code, __local T* scratch) {
    int l = get_local_id(0), L = get_local_size(0);
    out += oo;
    part += op;
    T acc = IDENTITY(kind);
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
        T norm = kind == 2 ? sqrt(total) : kind == 3 ? pow(total, ONE / p) : total;
        T coef = max_norm / (norm + (T)1e-6);
        if (check && !isfinite(norm)) {
            report_error(err, code, FLOAT_BITS(norm), sizeof(T));
            coef = ONE;
        }
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
