// Fused optimizer updates: one launch per parameter per step, one work-item per element. Each kernel
// reads the gradient and the optimizer state, and writes the parameter (and state) in place through
// its storage. p, g and the state buffers are contiguous runs starting at their element offsets.
// `first` is 1 on a parameter's first step: state buffers are then uninitialised and treated as zero,
// which saves a separate zero-fill launch.
#include "common.h"

// Plain SGD (course semantics: velocity starts at zero, so every step uses (1 - damping) * g):
//   p -= lr * scale * (g + wd * p),  scale = 1 - damping
__kernel void sgd_step(__global T* p, int po, __global const T* g, int go, int n, T lr, T scale, T wd) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = p[po + i];
    T d = g[go + i] + wd * x;
    p[po + i] = x - lr * (scale * d);
}

// SGD with momentum: v = momentum * v + scale * d; p -= lr * (nesterov ? d + momentum * v : v)
__kernel void sgd_momentum_step(__global T* p, int po, __global const T* g, int go, __global T* buf, int bo,
                                int n, T lr, T momentum, T scale, T wd, int nesterov, int first) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = p[po + i];
    T d = g[go + i] + wd * x;
    T v = (first ? (T)0 : momentum * buf[bo + i]) + scale * d;
    buf[bo + i] = v;
    T u = nesterov ? d + momentum * v : v;
    p[po + i] = x - lr * u;
}

// Adam and AdamW. wd is the coupled (L2) decay added to the gradient (Adam); decay multiplies the
// parameter before the update (AdamW: 1 - lr * weight_decay; Adam: 1). bc1 = 1 - beta1^t and
// bc2 = 1 - beta2^t come from the host, which knows the step count.
//   m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;  p = decay p - lr (m / bc1) / (sqrt(v / bc2) + eps)
__kernel void adam_step(__global T* p, int po, __global const T* g, int go, __global T* m, int mo,
                        __global T* v, int vo, int n, T lr, T beta1, T beta2, T eps, T bc1, T bc2, T wd, T decay, int first) {
    int i = get_global_id(0);
    if (i >= n) return;
    T x = p[po + i];
    T d = g[go + i] + wd * x;
    T mi = ((T)1 - beta1) * d;
    T vi = ((T)1 - beta2) * (d * d);
    if (!first) {
        mi += beta1 * m[mo + i];
        vi += beta2 * v[vo + i];
    }
    m[mo + i] = mi;
    v[vo + i] = vi;
    p[po + i] = decay * x - lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
}
