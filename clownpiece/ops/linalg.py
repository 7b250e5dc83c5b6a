"""LinalgOps: raw ops on TensorBase (kernels in cl_kernels/linalg.cl)."""


class LinalgOps:
    __slots__ = ()
