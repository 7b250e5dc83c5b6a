"""Build each cl_kernels/<family>.cl (and each generated source, see fusion.py) once per (dtype, defines) and
hand out reused cl.Kernel objects; built binaries are kept on disk for the next process.

The first program a process asks for (per dtype) also starts building the other families a training step
uses (PREFETCH), on background threads: pyopencl releases the GIL while the driver compiles, so they build
in parallel with each other and with the caller. A build that no cached result will speed up (first run on
this machine) announces itself once on stderr."""
import concurrent.futures
import hashlib
import os
import re
import sys
import warnings

import numpy as np
import pyopencl as cl

from . import stats as _stats
from .dtypes import check_family, resolve, type_defines

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
    """The kernel file's text with each `#include "name"` line replaced by that file (from the same folder)."""
    if family not in _sources:
        path = kernel_path(family)
        with open(path) as f:
            _sources[family] = paste_includes(f.read(), os.path.dirname(path), family + ".cl")
    return _sources[family]


def paste_includes(text, folder, name):
    """Replace each `#include "header"` line of `text` by that file from `folder`. Pasting rather than
    passing -I keeps kernel paths with spaces working (pyopencl splits options at spaces) and lets
    pyopencl's binary cache, which keys on the source text, see header edits. #line directives keep
    compiler messages pointing at the right file (`name`) and line."""
    def paste(m):
        with open(os.path.join(folder, m.group(1))) as f:
            header = f.read()
        next_line = text.count("\n", 0, m.start()) + 2
        return f'#line 1 "{m.group(1)}"\n{header}\n#line {next_line} "{name}"'

    return _INCLUDE.sub(paste, text)


def _check_fp64(device, options, what):
    """A device without fp64 must never be handed a program that enables it (its compiler would refuse)."""
    if not device.has_fp64 and "-DUSE_FP64=1" in options:
        raise TypeError(f"{what} needs float64, which device {device.name} does not support "
                        f"(no cl_khr_fp64); use float32 tensors")


class Kernel:
    """A built cl.Kernel with what launches need to know of it: its name (for profiles and the kernel-coverage
    log), the family it came from, and the largest work-group the device runs it with."""
    __slots__ = ("cl", "name", "family", "max_local", "local")

    def __init__(self, knl, family, device):
        self.cl = knl
        self.name = knl.function_name
        self.family = family
        # the device's limit (possibly lowered by CLOWNPIECE_LIMITS) and the kernel's own (register pressure)
        self.max_local = min(device.max_work_group_size,
                             knl.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device.device))
        # 1-D launches: 64 work-items a group (a multiple of every GPU's SIMD width), fewer where not allowed
        self.local = 1 << (min(64, self.max_local).bit_length() - 1)
        knl.set_scalar_arg_dtypes(_scalar_arg_dtypes(knl))

    def __repr__(self):
        return f"<kernel {self.name} from {self.family}>"


class Programs:
    """The one program and kernel cache of a device: (family, dtype, defines) -> built program, and
    (family, name, dtype, defines) or a generated kernel's key -> Kernel."""

    def __init__(self, device):
        self.device = device
        self._programs = {}
        self._building = {}  # key -> Future of a program being built on a background thread
        self._prefetched = set()  # dtypes whose usual families were started
        self.kernels = {}
        self.builds = []  # (what, options) of every program built or loaded and used, in order

    def program(self, family, dtype, defines=()):
        dtype = np.dtype(dtype)
        key = (family, dtype.str, defines)
        prg = self._programs.get(key)
        if prg is None:
            if dtype.str not in self._prefetched:
                self._prefetch(dtype)
            future = self._building.pop(key, None)
            if future is None:
                prg, options = self._build(_source(family), dtype, defines, f"cl_kernels/{family}.cl")
            else:
                prg, options = future.result()
            _stats.counters["builds"] += 1
            self.builds.append((f"cl_kernels/{family}.cl", options))
            self._programs[key] = prg
        return prg

    def _prefetch(self, dtype):
        """Start building the PREFETCH families for `dtype` at once, in parallel (see the module docstring)."""
        self._prefetched.add(dtype.str)
        if dtype.kind != "f" or dtype.itemsize == 2 or os.environ.get("CLOWNPIECE_PREFETCH", "1") == "0" \
                or not _threads_safe(self.device):
            return
        todo = []
        for family, defines in PREFETCH.items():
            defines = defines(dtype) if callable(defines) else defines
            key = (family, dtype.str, defines)
            if key in self._programs or key in self._building:
                continue
            options = _options(dtype, defines)
            if "-DUSE_FP64=1" in options and not self.device.has_fp64:
                continue
            todo.append((key, _source(family), dtype, defines))
        cold = [t for t in todo if not _built_before(self.device, t[1], _options(t[2], t[3]))]
        if cold:
            _announce(self.device, len(cold))
        for key, src, dt, defines in todo:
            self._building[key] = _executor().submit(self._build, src, dt, defines, f"cl_kernels/{key[0]}.cl",
                                                     True)

    def kernel(self, family, name, dtype, defines=()):
        key = (family, name, dtype, defines)
        k = self.kernels.get(key)
        if k is None:
            check_family(family, name, resolve(dtype))
            try:
                knl = cl.Kernel(self.program(family, dtype, defines), name)
            except cl.LogicError:
                raise KernelBuildError(f"cl_kernels/{family}.cl has no kernel named {name!r} (dtype "
                                       f"{np.dtype(dtype).name}, defines {list(defines)})") from None
            k = self.kernels[key] = Kernel(knl, family, self.device)
        return k

    def generated_kernel(self, key, source, name, dtype):
        """Kernel `name` of generated OpenCL C `source` (its `#include "common.h"` pasted like a family's),
        built with `dtype`'s defines (fusion's code names its types itself; jit's merged kernels also hold
        family kernels' bodies, written in T), cached under `key`."""
        k = self.kernels.get(key)
        if k is None:
            text = paste_includes(source, os.path.dirname(kernel_path("elementwise")), "generated.cl")
            what = f"generated kernel {name}:\n{source}\n"
            prg, options = self._build(text, dtype, (), what, binary=True)
            _stats.counters["builds"] += 1
            self.builds.append((what, options))
            k = self.kernels[key] = Kernel(cl.Kernel(prg, name), "generated", self.device)
        return k

    def _build(self, src, dtype, defines, what, background=False, binary=False):
        """(program, options): loaded from the on-disk cache or built from source. `binary`: save the built
        program's binary (one-kernel programs only: for the driver that means compiling every kernel of the
        program, ~0.15 s each on PoCL; families leave that to the driver's own cache and keep a marker)."""
        options = _options(dtype, defines)
        _check_fp64(self.device, options, what)
        cached = _binary_path(self.device, src, options)
        prg = _load_binary(self.device, cached, options)
        if prg is None:
            if not background and not _built_before(self.device, src, options):
                _announce(self.device, 1)
            try:
                if background:
                    prg = _build_quietly(self.device, src, options)
                else:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # pyopencl warns about non-empty build logs
                        prg = cl.Program(self.device.context, src).build(options=options)
            except cl.Error as e:
                raise KernelBuildError(f"building {what} with options {options} failed on "
                                       f"{self.device.name}:\n{e}") from None
            if binary:
                _save_binary(prg, cached)
            else:
                _mark_built(cached)
        return prg, options


# Families a training step uses, started together by the first program asked for: family -> defines, or a
# function of the dtype giving them (ops/matmul.py registers its own).
PREFETCH = {"elementwise": (), "reduce": (), "nn": (), "random": ()}


def _options(dtype, defines):
    # -w: compiler warnings (PoCL: the ABI of float16 vectors without AVX-512) would only reach pyopencl as
    # warnings of its own, which background builds cannot filter
    return list(type_defines(dtype)) + [f"-D{d}" for d in defines] + ["-cl-std=CL1.2", "-cl-kernel-arg-info", "-w"]


def _threads_safe(device):
    """Whether the driver may build on other threads: OpenCL requires it, but the Oclgrind simulator crashes
    when two threads build at once."""
    return "oclgrind" not in device.device.platform.name.lower()


_pool = None


def _executor():
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1),
                                                      thread_name_prefix="clownpiece-build")
    return _pool


def _build_quietly(device, src, options):
    """Build on a background thread: pyopencl's own Program.build warns about non-empty build logs through
    the warnings module, whose filters cannot be changed safely off the main thread; its core program type
    builds the same without that. A failure raises cl.Error with the build log."""
    prg = cl._cl._Program(device.context, src)
    try:
        prg.build(" ".join(options).encode(), [device.device])
    except cl.Error as e:
        log = prg.get_build_info(device.device, cl.program_build_info.LOG)
        raise cl.Error(f"{e}\n{log}") from None
    return prg


_announced = False


def _announce(device, n):
    """Say once per process that programs are being compiled (seconds each on a CPU driver, first run only)."""
    global _announced
    if _announced:
        return
    _announced = True
    what = f"{n} OpenCL programs" if n > 1 else "OpenCL programs"
    print(f"clownpiece: building {what} for {device.name} (first run only; kept in "
          f"{_cache_dir() or 'the driver cache'})...", file=sys.stderr, flush=True)


# ---- on-disk binaries -----------------------------------------------------------------------------------
# Building from source costs 30-150 ms per program even when PoCL finds it in its own cache (it still runs
# the front end), and pyopencl does not cache PoCL builds; loading a saved binary takes ~2 ms. That matters
# for fusion, which builds a small program per expression structure: those binaries are saved. A family
# program's binary is not: asking the driver for it compiles every kernel in it (PoCL: ~0.15 s each, 20 s
# for elementwise.cl's 114), where a process launches a few; the driver caches the ones it compiles, and a
# `.built` marker records that the next build will find them. The key covers the source text, options,
# device and driver, so an edit or a driver update builds afresh.
# CLOWNPIECE_CACHE_DIR moves the cache; PYOPENCL_NO_CACHE (what cold-build measurements set) bypasses it.

def _cache_dir():
    if os.environ.get("PYOPENCL_NO_CACHE"):
        return None
    return os.environ.get("CLOWNPIECE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "clownpiece")


def _binary_path(device, src, options):
    folder = _cache_dir()
    if folder is None:
        return None
    d = device.device
    key = "\0".join([src, " ".join(options), d.name, d.vendor, d.version, d.driver_version,
                     d.platform.version, cl.VERSION_TEXT])
    return os.path.join(folder, hashlib.sha256(key.encode()).hexdigest() + ".bin")


def _built_before(device, src, options):
    """Whether this machine built the program before (a saved binary, or the marker of one the driver caches);
    unknown (False) without a cache folder."""
    path = _binary_path(device, src, options)
    return path is not None and (os.path.exists(path) or os.path.exists(path[:-4] + ".built"))


def _mark_built(path):
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path[:-4] + ".built", "w").close()
    except OSError:
        pass


def _load_binary(device, path, options):
    if path is None or not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            binary = f.read()
        prg = cl._cl._Program(device.context, [device.device], [binary])  # quiet on any thread (_build_quietly)
        prg.build(" ".join(options).encode(), [device.device])
        return prg
    except (OSError, cl.Error):  # unreadable or stale: build from source and overwrite it
        return None


def _save_binary(prg, path):
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(prg.binaries[0])
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    except (OSError, cl.Error):
        pass  # a read-only home only loses the speed-up


_SCALARS = {"int": np.int32, "uint": np.uint32, "float": np.float32, "double": np.float64,
            "long": np.int64, "ulong": np.uint64, "uchar": np.uint8, "char": np.int8, "int8": cl.cltypes.int8,
            "int4": cl.cltypes.int4}


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
