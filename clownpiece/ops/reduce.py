"""ReduceOps: raw ops on TensorBase (kernels in cl_kernels/reduce.cl)."""


class ReduceOps:
    __slots__ = ()
