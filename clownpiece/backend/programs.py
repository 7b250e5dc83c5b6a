"""Build each cl_kernels/<family>.cl once per (dtype, defines) and hand out reused cl.Kernel objects."""
import os
import re
import warnings

import numpy as np
import pyopencl as cl

from . import stats as _stats

KERNEL_DIRS = [
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cl_kernels"),  # installed wheel
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "cl_kernels"),
]


class KernelBuildError(RuntimeError):
    pass


def kernel_path(family):
    for d in KERNEL_DIRS:
        path = os.path.join(d, family + ".cl")
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"kernel source {family}.cl not found in any of {KERNEL_DIRS}")


_sources = {}
_INCLUDE = re.compile(r'^#include "([^"]+)"[ \t]*$', re.MULTILINE)


def _source(family):
    """The kernel file's text with each `#include "name"` line replaced by that file (from the same folder).
    Pasting the header here rather than passing -I keeps kernel paths with spaces working (pyopencl splits
    options at spaces) and lets pyopencl's binary cache, which keys on the source text, see header edits.
    #line directives keep compiler messages pointing at the right file and line."""
    if family not in _sources:
        path = kernel_path(family)
        with open(path) as f:
            text = f.read()

        def paste(m):
            with open(os.path.join(os.path.dirname(path), m.group(1))) as f:
                header = f.read()
            next_line = text.count("\n", 0, m.start()) + 2
            return f'#line 1 "{m.group(1)}"\n{header}\n#line {next_line} "{family}.cl"'

        _sources[family] = _INCLUDE.sub(paste, text)
    return _sources[family]


def type_defines(dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return ["-DT=float"]
    if dtype == np.float64:
        return ["-DT=double", "-DUSE_FP64=1"]
    raise TypeError(f"unsupported dtype {dtype}")


class Programs:
    """Per-context cache: (family, dtype, defines) -> built program; (that key, name) -> cl.Kernel."""

    def __init__(self, device):
        self.device = device
        self._programs = {}
        self._kernels = {}

    def program(self, family, dtype, defines=()):
        key = (family, np.dtype(dtype).str, defines)
        prg = self._programs.get(key)
        if prg is None:
            options = type_defines(dtype) + [f"-D{d}" for d in defines] + ["-cl-std=CL1.2", "-cl-kernel-arg-info"]
            src = _source(family)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # pyopencl warns about non-empty build logs
                    prg = cl.Program(self.device.context, src).build(options=options)
            except cl.Error as e:
                raise KernelBuildError(
                    f"building cl_kernels/{family}.cl with options {options} failed on "
                    f"{self.device.name}:\n{e}") from None
            _stats.counters["builds"] += 1
            self._programs[key] = prg
        return prg

    def kernel(self, family, name, dtype, defines=()):
        key = (family, name, np.dtype(dtype).char, defines)
        k = self._kernels.get(key)
        if k is None:
            k = cl.Kernel(self.program(family, dtype, defines), name)
            k.set_scalar_arg_dtypes(_scalar_arg_dtypes(k))
            self._kernels[key] = k
        return k


_SCALARS = {"int": np.int32, "uint": np.uint32, "float": np.float32, "double": np.float64,
            "long": np.int64, "ulong": np.uint64, "int8": cl.cltypes.int8, "int4": cl.cltypes.int4}


def _scalar_arg_dtypes(k):
    """pyopencl's fast invoker packs by-value arguments from these dtypes (None = buffer/local)."""
    out = []
    for i in range(k.num_args):
        if k.get_arg_info(i, cl.kernel_arg_info.ADDRESS_QUALIFIER) != cl.kernel_arg_address_qualifier.PRIVATE:
            out.append(None)
            continue
        type_name = k.get_arg_info(i, cl.kernel_arg_info.TYPE_NAME).strip()
        if type_name not in _SCALARS:
            raise TypeError(f"kernel {k.function_name}: unsupported by-value argument type {type_name}")
        out.append(_SCALARS[type_name])
    return out
