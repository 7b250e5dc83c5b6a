"""Device discovery and selection (CLOWNPIECE_DEVICE), one context and one in-order queue per device, and the
device properties that strategies are chosen from (CLOWNPIECE_LIMITS lowers them to simulate a smaller
device)."""
import os
import re

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


# ---- limits -----------------------------------------------------------------------------------------------
# The properties strategies depend on. CLOWNPIECE_LIMITS="max_work_group_size=64,fp64=0,..." lowers them, so
# that tests (and users) can see what a smaller device would do; sizes take K/M/G suffixes (powers of 1024).
LIMITS = {
    "max_work_group_size": "work-items per work-group",
    "max_mem_alloc_size": "bytes in one buffer",
    "global_mem_size": "device memory in bytes (the pool raises MemoryError beyond it)",
    "local_mem_size": "local memory per work-group in bytes",
    "compute_units": "compute units",
    "fp64": "0 or 1: whether float64 is available",
}
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")


def parse_limits(text):
    """{name: int} from "name=value,name=value"; raises DeviceError naming the valid names and forms."""
    out = {}
    valid = "; ".join(f"{k} ({v})" for k, v in LIMITS.items())
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        name, eq, value = item.partition("=")
        name = name.strip()
        if name not in LIMITS or not eq:
            raise DeviceError(f"CLOWNPIECE_LIMITS: {item!r} is not name=value with a known name. Valid: {valid}")
        m = _SIZE.match(value)
        if not m or (name == "fp64" and value.strip() not in ("0", "1")):
            raise DeviceError(f"CLOWNPIECE_LIMITS: {name}={value.strip()!r} is not a valid value; expected "
                              f"{'0 or 1' if name == 'fp64' else 'a positive integer, optionally with K, M or G'}")
        n = int(m.group(1)) * 1024 ** " kmg".index(m.group(2).lower() or " ")
        if n <= 0 and name != "fp64":
            raise DeviceError(f"CLOWNPIECE_LIMITS: {name} must be positive, got {value.strip()!r}")
        out[name] = n
    return out


class Device:
    """The selected device with its context, its single in-order queue and its (possibly lowered) limits.
    `type` is "opencl" and `index` its position among all OpenCL devices (list_devices()): the N of the
    "opencl:N" device strings that `to(device)` and `device=` accept (runtime.resolve_device)."""
    type = "opencl"

    def __init__(self, spec=None, limits=None):
        self.platform_index, self.device_index, self.platform, self.device = choose(spec)
        self.index = next(i for i, f in enumerate(list_devices())
                          if f[0] == self.platform_index and f[1] == self.device_index)
        d = self.device
        real = dict(max_work_group_size=d.max_work_group_size, max_mem_alloc_size=d.max_mem_alloc_size,
                    global_mem_size=d.global_mem_size, local_mem_size=d.local_mem_size,
                    compute_units=d.max_compute_units, fp64=int(bool(d.double_fp_config)))
        wanted = parse_limits(os.environ.get("CLOWNPIECE_LIMITS", "") if limits is None else limits)
        for name, value in wanted.items():
            if value > real[name]:
                raise DeviceError(f"CLOWNPIECE_LIMITS: {name}={value} exceeds what {d.name.strip()} has "
                                  f"({real[name]}); limits can only be lowered")
        lim = {**real, **wanted}
        self.limited = sorted(wanted)
        self.max_work_group_size = lim["max_work_group_size"]
        self.max_mem_alloc_size = lim["max_mem_alloc_size"]
        self.global_mem_size = lim["global_mem_size"]
        self.local_mem_size = lim["local_mem_size"]
        self.compute_units = lim["compute_units"]
        self.has_fp64 = bool(lim["fp64"])
        # reported, not used: float16 is computed in float32 everywhere (backend/dtypes.py, docs/api.md)
        self.has_fp16 = "cl_khr_fp16" in d.extensions.split()
        # dedicated local memory (GPUs) makes staging tiles through it pay; CPUs emulate it in global memory
        self.local_mem_dedicated = d.local_mem_type == cl.device_local_mem_type.LOCAL
        self.name = d.name.strip()
        self.context = cl.Context([d])
        # CLOWNPIECE_PROFILE=1: record device timestamps (tools/bench.py --profile reads them)
        profiling = os.environ.get("CLOWNPIECE_PROFILE", "") not in ("", "0")
        props = cl.command_queue_properties.PROFILING_ENABLE if profiling else 0
        self.queue = cl.CommandQueue(self.context, d, properties=props)

    def __repr__(self):
        text = describe(self.platform_index, self.device_index, self.platform, self.device)
        if self.limited:
            text += " limited to " + ", ".join(f"{k}={getattr(self, _ATTR.get(k, k))}" for k in self.limited)
        return text


_ATTR = {"fp64": "has_fp64"}
