"""Device properties and limits: CLOWNPIECE_LIMITS lowers what the device reports, so these tests see what a
smaller GPU, a device without fp64 or a full device would do; set_device switches devices and back."""
import os
import re
import subprocess
import sys

import numpy as np
import pyopencl as cl
import pytest
from conftest import assert_close

import clownpiece as cp
from clownpiece import backend
from clownpiece.backend import discovery, programs
from clownpiece.ops import matmul as matmul_ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(3)


@pytest.fixture
def limited():
    """Switch to the same device with lowered limits; switch back (to the very same Device) afterwards."""
    home = backend.device()
    made = []

    def switch(limits):
        made.append(backend.set_device(f"{home.platform_index}:{home.device_index}", limits))
        return made[-1]

    yield switch
    backend.set_device(home)


# ---- parsing -------------------------------------------------------------------------------------------
def test_limits_parse_sizes_and_flags():
    assert discovery.parse_limits("max_work_group_size=64, max_mem_alloc_size=2M,fp64=0") == {
        "max_work_group_size": 64, "max_mem_alloc_size": 2 * 2**20, "fp64": 0}
    assert discovery.parse_limits("global_mem_size=1g,local_mem_size=16K") == {
        "global_mem_size": 2**30, "local_mem_size": 16 * 2**10}
    assert discovery.parse_limits("") == {}


@pytest.mark.parametrize("text,needle", [
    ("max_wg=64", "not name=value with a known name"),
    ("max_work_group_size", "not name=value with a known name"),
    ("max_work_group_size=big", "not a valid value"),
    ("fp64=2", "expected 0 or 1"),
    ("compute_units=0", "must be positive"),
])
def test_bad_limits_name_what_is_valid(text, needle):
    with pytest.raises(backend.DeviceError) as e:
        discovery.parse_limits(text)
    assert needle in str(e.value)
    if "known name" in needle:
        for name in discovery.LIMITS:
            assert name in str(e.value)


def test_limits_only_lower_and_bad_env_fails_at_startup():
    d = backend.device()
    with pytest.raises(backend.DeviceError, match="can only be lowered"):
        discovery.Device(f"{d.platform_index}:{d.device_index}", f"compute_units={d.compute_units + 1}")
    code = "import clownpiece as cp; cp.ones(2).numpy()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, CLOWNPIECE_LIMITS="max_work_group_sise=64"))
    assert out.returncode != 0 and "max_work_group_size" in out.stderr and "Valid:" in out.stderr


# ---- work-group size -----------------------------------------------------------------------------------
def _recording_local_sizes(monkeypatch):
    sizes = []
    real = cl.Kernel.__call__

    def call(self, queue, global_size, local_size, *args, **kwargs):
        sizes.append((self.function_name, local_size))
        return real(self, queue, global_size, local_size, *args, **kwargs)

    monkeypatch.setattr(cl.Kernel, "__call__", call)
    return sizes


def _workload():
    """Elementwise (fused and not), reductions (two-stage too), softmax, matmul, conv, an optimizer step."""
    x_np = rng.normal(size=(70, 90))
    x = cp.Tensor(x_np)
    w = cp.Tensor(rng.normal(size=(90, 40)), requires_grad=True)
    y = (x @ w).relu()
    loss = y.softmax(-1).sum() + (x.exp() * 0.5 - 1).mean() + cp.Tensor(rng.normal(size=(300, 300))).sum()
    loss.backward()
    conv = cp.nn.functional.conv2d(cp.Tensor(rng.normal(size=(2, 3, 9, 9))), cp.Tensor(rng.normal(size=(4, 3, 3, 3))))
    return x_np, x, w, y, conv


@pytest.mark.parametrize("limit", [16, 32])
def test_launches_respect_a_small_max_work_group_size(limit, limited, monkeypatch):
    dev = limited(f"max_work_group_size={limit}")
    assert dev.max_work_group_size == limit and f"max_work_group_size={limit}" in repr(dev)
    sizes = _recording_local_sizes(monkeypatch)
    x_np, x, w, y, conv = _workload()
    assert_close(x @ w, x_np @ w.detach().numpy().astype(np.float64), rtol=1e-4, atol=1e-4)
    conv.numpy()
    assert sizes and all(int(np.prod(local)) <= limit for _, local in sizes), sizes
    big = cp.Tensor(rng.normal(size=(400, 330))) @ cp.Tensor(rng.normal(size=(330, 257)))
    assert matmul_ops._choose_path(400, 257, 330, dev) == "block"  # packed needs 64-wide groups
    big.numpy()
    assert all(int(np.prod(local)) <= limit for _, local in sizes)


def test_a_strategy_that_needs_wider_groups_raises_before_launch(limited, monkeypatch):
    limited("max_work_group_size=32")
    monkeypatch.setattr(matmul_ops, "_choose_path", lambda *args: "tiled")
    monkeypatch.setattr(matmul_ops, "_plans", {})
    a, b = cp.ones(40, 40), cp.ones(40, 40)
    a.numpy(), b.numpy()
    before = backend.stats()["launches"]
    with pytest.raises(backend.LaunchError, match=r"mm_tiled: work-group of 64 work-items .* exceeds the 32"):
        a @ b
    assert backend.stats()["launches"] == before


def test_gpu_strategies_follow_local_memory_and_group_limits():
    class Dev:
        local_mem_dedicated, max_work_group_size, local_mem_size = True, 256, 32768
    f32 = np.dtype(np.float32)
    assert matmul_ops._choose_path(256, 256, 256, Dev, f32) == "tiled"
    assert matmul_ops._choose_path(8, 8, 8, Dev, f32) == "direct"
    Dev.local_mem_size = 1024  # tiles do not fit
    assert matmul_ops._choose_path(256, 256, 256, Dev, f32) == "direct"
    Dev.local_mem_size, Dev.max_work_group_size = 32768, 32
    assert matmul_ops._choose_path(256, 256, 256, Dev, f32) == "direct"
    Dev.local_mem_dedicated, Dev.max_work_group_size = False, 256
    assert matmul_ops._choose_path(512, 512, 512, Dev, f32) == "packed"
    assert matmul_ops._choose_path(64, 64, 64, Dev, f32) == "block"


# ---- memory ------------------------------------------------------------------------------------------
def test_allocation_above_max_mem_alloc_size_names_size_limit_and_device(limited):
    dev = limited("max_mem_alloc_size=64K")
    before = backend.stats()["launches"]
    with pytest.raises(backend.DeviceMemoryError) as e:
        cp.zeros(20000)  # 80,000 bytes
    msg = str(e.value)
    assert "80000 bytes" in msg and "65536 bytes" in msg and dev.name in msg and "max_mem_alloc_size" in msg
    assert isinstance(e.value, MemoryError) and backend.stats()["launches"] == before
    # just below the limit works, even where the pool's size bucket would cross it
    assert cp.ones(16000).sum().item() == 16000.0


def test_out_of_memory_frees_the_cache_retries_then_raises(limited):
    limited("global_mem_size=1M")
    a = cp.zeros(150000)  # 600,000 bytes
    del a  # its buffer waits in the pool's cache
    assert backend.runtime._pool.cached >= 600000
    b = cp.ones(160000)  # a different bucket: fits only after the cached buffer is freed
    assert backend.runtime._pool.cached == 0
    assert b.sum().item() == 160000.0
    with pytest.raises(backend.DeviceMemoryError) as e:
        cp.ones(120000)  # 480,000 more bytes with 640,000 in use
    msg = str(e.value)
    assert "out of device memory" in msg and "480000 bytes" in msg and "1048576 bytes" in msg
    assert "in use by live tensors" in msg
    del b
    assert cp.ones(120000).sum().item() == 120000.0  # the device works on afterwards


# ---- fp64 ----------------------------------------------------------------------------------------------
def test_without_fp64_float64_raises_naming_the_device(limited):
    dev = limited("fp64=0")
    assert not dev.has_fp64
    for make in (lambda: cp.zeros(3, dtype=np.float64), lambda: cp.Tensor([1.0], dtype="float64"),
                 lambda: cp.ones(2).double()):
        with pytest.raises(TypeError, match=f"float64.*{re.escape(dev.name)}"):
            make()


def test_without_fp64_float32_programs_never_enable_it(limited):
    limited("fp64=0")
    _workload()[-1].numpy()
    cp.manual_seed(0)
    cp.randn(10).numpy()
    built = backend.runtime._programs.builds
    assert built and all("-DUSE_FP64=1" not in options and "-DT=double" not in options for _, options in built)
    with pytest.raises(TypeError, match="needs float64"):
        backend.kernel("elementwise", "add_c", np.dtype(np.float64))


def _outside_fp64_guards(text):
    """The text of a kernel source outside comments and `#ifdef USE_FP64` ... `#else`/`#endif` blocks."""
    text = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
    kept, _depth, guard = [], 0, []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#if"):
            guard.append(s.startswith("#ifdef USE_FP64"))
            continue
        if s.startswith("#else") and guard:
            guard[-1] = False if guard[-1] else guard[-1]
            continue
        if s.startswith("#endif") and guard:
            guard.pop()
            continue
        if not any(guard):
            kept.append(line)
    return "\n".join(kept)


def test_kernel_sources_mention_double_only_under_the_fp64_guard():
    folder = os.path.dirname(programs.kernel_path("elementwise"))
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            text = _outside_fp64_guards(f.read())
        assert not re.search(r"\bdouble\b|cl_khr_fp64", text), name
    src = backend.fusion.source(("add", "ff", ("exp", "ff", 0), None), 1, 1)[1]
    assert "double" not in src


# ---- several devices ------------------------------------------------------------------------------------
def test_set_device_switches_and_old_tensors_raise_clearly(limited):
    home = backend.device()
    t = cp.Tensor([1.0, 2.0, 3.0])
    pending = t * 2  # deferred: runs on its own device before the switch
    other = limited("compute_units=1")
    assert backend.device() is other and other is not home
    assert pending.tolist() == [2.0, 4.0, 6.0] and t.tolist() == [1.0, 2.0, 3.0]  # reading still works
    for op in (lambda: t + 1, lambda: (t * 3).numpy(), lambda: t @ t, lambda: t.sum()):
        with pytest.raises(backend.DeviceMismatchError, match=f"on device .* used on device {re.escape(other.name)}"):
            op()
    u = cp.Tensor([4.0, 5.0])
    assert (u * 2).tolist() == [8.0, 10.0]
    backend.set_device(home)
    assert (t + 1).tolist() == [2.0, 3.0, 4.0]  # back on its own device
    with pytest.raises(backend.DeviceMismatchError):
        (u + 1).numpy()


def _full_device_error():
    return cl.MemoryError(cl._cl._ErrorRecord("clEnqueueNDRangeKernel",
                                              cl.status_code.MEM_OBJECT_ALLOCATION_FAILURE, "simulated"))


class _FailingKernel:
    """Stands in for a cl.Kernel whose launch finds the (lazily allocating) device full `failures` times."""

    def __init__(self, real, failures):
        self.real, self.failures, self.calls = real, failures, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls <= self.failures:
            raise _full_device_error()
        return self.real(*args)


def test_a_launch_that_finds_the_device_full_frees_the_cache_and_retries_once(monkeypatch):
    k = backend.kernel("elementwise", "affine_c", np.dtype(np.float32))
    out, src = cp.empty(5), cp.zeros(5)
    cp.zeros(4096).numpy()  # leaves a buffer in the pool's cache
    assert backend.runtime._pool.cached > 0
    monkeypatch.setattr(k, "cl", _FailingKernel(k.cl, 1))
    backend.launch(k, 5, out, src, 5, 1.0, 7.0)  # affine_c(out, a, n, p0, p1): out = a * p0 + p1
    assert out.tolist() == [7.0] * 5 and k.cl.calls == 2 and backend.runtime._pool.cached == 0
    monkeypatch.setattr(k, "cl", _FailingKernel(k.cl.real, 2))
    with pytest.raises(backend.DeviceMemoryError, match="out of device memory .* launching a kernel"):
        backend.launch(k, 5, out, src, 5, 1.0, 8.0)
