// dtype conversion: out (contiguous, dtype T/T_MEM) = a (a strided SRC view) converted by CAST (common.h).
// Built per (source, destination) pair: -DT/-DTS... for the destination, -DSRC_T/-DSRC_TS... for the source.
#include "common.h"

__kernel void cast_c(__global T_MEM* out, int oo, __global const SRC_T_MEM* a, int oa, int n) {
    int i = get_global_id(0); if (i >= n) return; ST(out, oo + i, CAST(SRC_T, T_MEM, LD_SRC(a, oa + i))); }

__kernel void cast_s(__global T_MEM* out, int oo, __global const SRC_T_MEM* a, int oa, int n, META) {
    int i = get_global_id(0); if (i >= n) return; int ia = oa, ib = 0, ic = 0;
    OFFSETS(i, ia, ib, ic); ST(out, oo + i, CAST(SRC_T, T_MEM, LD_SRC(a, ia))); }
