"""RandomOps: raw ops on TensorBase (kernels in cl_kernels/random.cl)."""


class RandomOps:
    __slots__ = ()
