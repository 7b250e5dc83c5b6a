// Fused optimizer updates: one launch per parameter per step, one work-item per element. Each kernel
// reads the gradient and the optimizer state, and writes the parameter (and state) in place through
// its storage. p, g and the state buffers are contiguous runs starting at their element offsets.
// `first` is 1 on a parameter's first step: state buffers are then uninitialised and treated as zero,
// which saves a separate zero-fill launch. Floating dtypes only: a float16 parameter and its state are
// stored as float16 and updated in float (common.h's LD/ST).
#include "common.h"

// Plain SGD (course semantics: velocity starts at zero, so every step uses (1 - damping) * g):
//   p -= lr * scale * (g + wd * p),  scale = 1 - damping
__kernel void sgd_step(__global T_MEM* p, int po, __global const T_MEM* g, int go, int n, T lr, T scale, T wd) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = LD(p, po + i);
    T d = LD(g, go + i) + wd * x;
    ST(p, po + i, x - lr * (scale * d));
}

// SGD with momentum: v = momentum * v + scale * d; p -= lr * (nesterov ? d + momentum * v : v)
__kernel void sgd_momentum_step(__global T_MEM* p, int po, __global const T_MEM* g, int go, __global T_MEM* buf, int bo,
                                int n, T lr, T momentum, T scale, T wd, int nesterov, int first) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = LD(p, po + i);
    T d = LD(g, go + i) + wd * x;
    T v = (first ? (T)0 : momentum * LD(buf, bo + i)) + scale * d;
    ST(buf, bo + i, v);
    T u = nesterov ? d + momentum * v : v;
    ST(p, po + i, x - lr * u);
}

// Adam and AdamW (PyTorch's rules). d = gsign * g + wd * p: gsign is -1 to maximize, wd the coupled (L2)
// decay (Adam); decay multiplies the parameter before the update (AdamW: 1 - lr * weight_decay; Adam: 1).
// bc1 = 1 - beta1^t and bc2 = 1 - beta2^t come from the host, which knows the step count. With amsgrad
// vmax keeps the running maximum of v (NaN propagates, as torch.maximum does) and replaces v in the
// denominator; without it vmax may alias v and is never touched.
//   m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;  p = decay p - lr (m / bc1) / (sqrt(v / bc2) + eps)
__kernel void adam_step(__global T_MEM* p, int po, __global const T_MEM* g, int go, __global T_MEM* m, int mo,
                        __global T_MEM* v, int vo, __global T_MEM* vmax, int vmo, int n, T lr, T beta1, T beta2, T eps,
                        T bc1, T bc2, T wd, T decay, T gsign, int amsgrad, int first) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = LD(p, po + i);
    T d = gsign * LD(g, go + i) + wd * x;
    T mi = ((T)1 - beta1) * d;
    T vi = ((T)1 - beta2) * (d * d);
    if (!first) {
        mi += beta1 * LD(m, mo + i);
        vi += beta2 * LD(v, vo + i);
    }
    ST(m, mo + i, mi);
    ST(v, vo + i, vi);
    T vhat = vi;
    if (amsgrad) {
        if (!first) {
            T old = LD(vmax, vmo + i);
            vhat = (old > vi || old != old) ? old : vi;
        }
        ST(vmax, vmo + i, vhat);
    }
    ST(p, po + i, decay * x - lr * (mi / bc1) / (sqrt(vhat / bc2) + eps));
}

// RMSprop (PyTorch's rule). d = gsign * g + wd * p; sq = alpha sq + (1 - alpha) d^2; centered:
// ga = ga + (1 - alpha) (d - ga) and avg = sqrt(sq - ga^2) + eps, else avg = sqrt(sq) + eps;
// momentum > 0: buf = momentum buf + d / avg, p -= lr buf; else p -= lr d / avg.
// `fresh` has bit 1 for sq, 2 for ga, 4 for buf when that buffer is new (read as zero). Buffers a
// configuration does not use may alias sq and are never touched.
__kernel void rmsprop_step(__global T_MEM* p, int po, __global const T_MEM* g, int go, __global T_MEM* sq, int so,
                           __global T_MEM* ga, int gao, __global T_MEM* buf, int bo, int n, T lr, T alpha, T eps, T wd,
                           T momentum, int centered, T gsign, int fresh) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = LD(p, po + i);
    T d = gsign * LD(g, go + i) + wd * x;
    T s = ((fresh & 1) ? ZERO : alpha * LD(sq, so + i)) + ((T)1 - alpha) * (d * d);
    ST(sq, so + i, s);
    T avg;
    if (centered) {
        T a = (fresh & 2) ? ZERO : LD(ga, gao + i);
        a += ((T)1 - alpha) * (d - a);
        ST(ga, gao + i, a);
        avg = sqrt(s - a * a) + eps;
    } else {
        avg = sqrt(s) + eps;
    }
    if (momentum > ZERO) {
        T b = ((fresh & 4) ? ZERO : momentum * LD(buf, bo + i)) + d / avg;
        ST(buf, bo + i, b);
        ST(p, po + i, x - lr * b);
    } else {
        ST(p, po + i, x - lr * (d / avg));
    }
}

// Adagrad (PyTorch's rule): d = gsign * g + wd * p; sum += d^2 (sum starts at `init` on the first step);
// p -= clr * d / (sqrt(sum) + eps), clr = lr / (1 + (t - 1) lr_decay) from the host.
__kernel void adagrad_step(__global T_MEM* p, int po, __global const T_MEM* g, int go, __global T_MEM* sum, int so, int n,
                           T clr, T wd, T eps, T gsign, T init, int first) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = LD(p, po + i);
    T d = gsign * LD(g, go + i) + wd * x;
    T s = (first ? init : LD(sum, so + i)) + d * d;
    ST(sum, so + i, s);
    ST(p, po + i, x - clr * (d / (sqrt(s) + eps)));
}
