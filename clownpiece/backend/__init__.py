"""The OpenCL backend: device choice and limits, the program/kernel cache, the buffer pool, the one launch
path, transfers and counters. Knows nothing about tensors' autograd.

    discovery.py  devices, CLOWNPIECE_DEVICE / CLOWNPIECE_LIMITS, the Device and its properties
    programs.py   cl_kernels/ sources -> built programs (on-disk binary cache) -> cached Kernels
    memory.py     the buffer pool and Storage
    runtime.py    the current device, kernel(), launch(), alloc(), upload/download, synchronize
    fusion.py     lazy elementwise fusion (deferred ops run as generated kernels)
    checks.py     device-side checks: errors kernels find, raised at the next host read
    stats.py      counters"""
from . import fusion  # noqa: F401  (registers its flush hook with memory)
from .checks import DeviceAssertError
from .discovery import DeviceError, describe, list_devices
from .memory import DeviceMemoryError, HostOnlyThreadError, Storage, host_only_thread
from .programs import KernelBuildError
from .runtime import (
                      DeviceMismatchError,
                      LaunchError,
                      alloc,
                      alloc_on,
                      count_kernels,
                      device,
                      download,
                      empty_cache,
                      kernel,
                      kernel_number,
                      launch,
                      program_cache,
                      replayable,
                      resolve_device,
                      set_device,
                      synchronize,
                      upload,
                      using_device,
)
from .stats import counters, reset_stats, stats

__all__ = ["device", "set_device", "program_cache", "kernel", "launch", "alloc", "upload", "download",
           "synchronize", "empty_cache", "count_kernels", "stats", "reset_stats", "counters", "list_devices",
           "describe", "Storage", "DeviceError", "DeviceMemoryError", "DeviceMismatchError", "KernelBuildError",
           "LaunchError", "kernel_number", "replayable", "resolve_device", "using_device", "alloc_on",
           "HostOnlyThreadError", "host_only_thread", "DeviceAssertError"]
