"""Device discovery and selection (CLOWNPIECE_DEVICE), one context and one in-order queue."""
import os

import pyopencl as cl


class DeviceError(RuntimeError):
    pass


def list_devices():
    """All (platform_index, device_index, platform, device) the OpenCL ICD loader can see."""
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    found = []
    for pi, p in enumerate(platforms):
        try:
            devices = p.get_devices()
        except cl.Error:
            continue
        for di, d in enumerate(devices):
            found.append((pi, di, p, d))
    return found


def describe(pi, di, p, d):
    kind = next((k for k in ("GPU", "CPU", "ACCELERATOR") if d.type & getattr(cl.device_type, k)), "OTHER")
    fp64 = "fp64" if d.double_fp_config else "no fp64"
    return (f"{pi}:{di} [{p.name.strip()}] {d.name.strip()} ({kind}, {d.max_compute_units} compute units, "
            f"{d.global_mem_size // 2**20} MiB, {fp64})")


def _no_platform_error():
    return DeviceError(
        "clownpiece found no OpenCL platform. Install one: `pip install clownpiece[pocl]` (PoCL, a CPU "
        "OpenCL runtime from PyPI), or Debian/Ubuntu's `apt-get install pocl-opencl-icd`, or your GPU vendor's "
        "OpenCL driver.")


def choose(spec=None):
    """Pick a device: `spec` (or $CLOWNPIECE_DEVICE) is a `P:D` index pair or a case-insensitive substring of
    the platform or device name or type (`pocl`, `nvidia`, `gpu`, `cpu`); unset means the first GPU, else the
    first CPU device."""
    found = list_devices()
    if not found:
        raise _no_platform_error()
    spec = os.environ.get("CLOWNPIECE_DEVICE", "") if spec is None else spec
    spec = spec.strip()
    if not spec:
        gpus = [f for f in found if f[3].type & cl.device_type.GPU]
        return (gpus or found)[0]
    if ":" in spec and all(part.strip().isdigit() for part in spec.split(":", 1)):
        pi, di = (int(part) for part in spec.split(":", 1))
        for f in found:
            if f[0] == pi and f[1] == di:
                return f
    else:
        needle = spec.lower()
        for f in found:
            words = f"{f[2].name} {f[2].vendor} {f[3].name} {cl.device_type.to_string(f[3].type)}".lower()
            if needle in words:
                return f
    listing = "\n  ".join(describe(*f) for f in found)
    raise DeviceError(f"CLOWNPIECE_DEVICE={spec!r} matches no OpenCL device. Devices found:\n  {listing}\n"
                      f"Use a name substring (e.g. 'cpu', 'pocl', 'nvidia') or a 'platform:device' index.")


class Device:
    """The selected device with its context and single in-order queue."""

    def __init__(self, spec=None):
        self.platform_index, self.device_index, self.platform, self.device = choose(spec)
        self.context = cl.Context([self.device])
        # CLOWNPIECE_PROFILE=1: record device timestamps (tools/bench.py --profile reads them)
        profiling = os.environ.get("CLOWNPIECE_PROFILE", "") not in ("", "0")
        props = cl.command_queue_properties.PROFILING_ENABLE if profiling else 0
        self.queue = cl.CommandQueue(self.context, self.device, properties=props)
        self.is_cpu = bool(self.device.type & cl.device_type.CPU)
        self.has_fp64 = bool(self.device.double_fp_config)
        self.name = self.device.name.strip()

    def __repr__(self):
        return describe(self.platform_index, self.device_index, self.platform, self.device)
