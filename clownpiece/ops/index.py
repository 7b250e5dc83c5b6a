"""IndexOps: raw ops on TensorBase (kernels in cl_kernels/index.cl)."""


class IndexOps:
    __slots__ = ()
