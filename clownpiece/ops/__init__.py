"""Raw op families mixed into TensorBase, one module per cl_kernels/ file."""
