// Definitions shared by every kernel file. clownpiece/backend/programs.py pastes this text in place of each
// `#include "common.h"` line before building, so no include path is needed and pyopencl's binary cache,
// which keys on the source text, sees header edits.
#ifdef USE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define ZERO ((T)0)
#define ONE ((T)1)

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
