"""NNOps: raw ops on TensorBase (kernels in cl_kernels/nn.cl)."""


class NNOps:
    __slots__ = ()
