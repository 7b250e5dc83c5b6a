import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import pool_bytes_in_use

import clownpiece as cp
from clownpiece import backend
from clownpiece.backend import discovery as devmod, programs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_device_selection_by_index_and_name():
    found = devmod.list_devices()
    assert found
    pi, di, p, d = found[0]
    assert devmod.choose(f"{pi}:{di}")[3] == d
    assert devmod.choose(d.name[:6].lower())[3].name == found[[f[3].name[:6].lower() for f in found].index(
        d.name[:6].lower())][3].name
    kind = "gpu" if any(f[3].type & 4 for f in found) else "cpu"
    assert devmod.choose(kind) is not None


def test_bad_device_name_lists_devices():
    with pytest.raises(devmod.DeviceError) as e:
        devmod.choose("no-such-device-xyz")
    msg = str(e.value)
    assert "no-such-device-xyz" in msg
    for pi, di, p, d in devmod.list_devices():
        assert f"{pi}:{di}" in msg and d.name.strip() in msg


def test_no_platform_says_how_to_install(monkeypatch):
    monkeypatch.setattr(devmod, "list_devices", lambda: [])
    with pytest.raises(devmod.DeviceError, match=r"pip install clownpiece\[pocl\]"):
        devmod.choose("")


def test_devices_cli_marks_selected():
    out = subprocess.run([sys.executable, "-m", "clownpiece.devices"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    marked = [line for line in out.stdout.splitlines() if line.startswith("* ")]
    pi, di = devmod.choose()[:2]
    assert len(marked) == 1 and marked[0].startswith(f"* {pi}:{di} ") and "compute units" in marked[0]
    bad = subprocess.run([sys.executable, "-m", "clownpiece.devices"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, CLOWNPIECE_DEVICE="no-such-device-xyz"))
    assert bad.returncode != 0 and "matches no OpenCL device" in bad.stderr


def test_build_failure_names_file_defines_and_log(tmp_path, monkeypatch):
    (tmp_path / "broken.cl").write_text("__kernel void k(__global T* x) { x[0] = undefined_thing; }\n")
    monkeypatch.setattr(programs, "KERNEL_DIRS", [str(tmp_path)] + programs.KERNEL_DIRS)
    monkeypatch.setattr(programs, "_sources", {})
    progs = programs.Programs(backend.device())
    with pytest.raises(programs.KernelBuildError) as e:
        progs.kernel("broken", "k", np.float32, ("EXTRA=1",))
    msg = str(e.value)
    assert "broken.cl" in msg and "-DEXTRA=1" in msg and "undefined_thing" in msg


def _tiny_family(tmp_path, monkeypatch, name="tiny"):
    (tmp_path / f"{name}.cl").write_text("__kernel void k(__global T* x, int ox) { x[ox] = (T)1; }\n")
    monkeypatch.setattr(programs, "KERNEL_DIRS", [str(tmp_path)] + programs.KERNEL_DIRS)
    monkeypatch.setattr(programs, "_sources", {})
    monkeypatch.setenv("CLOWNPIECE_CACHE_DIR", str(tmp_path / "cache"))


def test_a_first_build_is_announced_once_and_not_on_later_runs(tmp_path, monkeypatch, capsys):
    _tiny_family(tmp_path, monkeypatch)
    monkeypatch.setattr(programs, "PREFETCH", {})
    monkeypatch.setattr(programs, "_announced", False)
    programs.Programs(backend.device()).kernel("tiny", "k", np.float32)
    err = capsys.readouterr().err
    assert err.count("building OpenCL programs for") == 1 and "first run only" in err
    monkeypatch.setattr(programs, "_announced", False)  # a new process, same caches: silent
    programs.Programs(backend.device()).kernel("tiny", "k", np.float32)
    assert "building" not in capsys.readouterr().err


def test_the_first_program_starts_the_usual_families_in_parallel(tmp_path, monkeypatch):
    _tiny_family(tmp_path, monkeypatch)
    _tiny_family(tmp_path, monkeypatch, "other")
    monkeypatch.setattr(programs, "PREFETCH", {"other": (), "tiny": ()})
    progs = programs.Programs(backend.device())
    before = backend.stats()["builds"]
    progs.kernel("tiny", "k", np.float32)
    assert list(progs._building) == [("other", np.dtype(np.float32).str, ())]  # started, not yet used
    assert backend.stats()["builds"] == before + 1
    x = cp.Tensor(np.zeros(2, np.float32))
    backend.launch(progs.kernel("other", "k", np.float32), 1, x)
    assert x.tolist() == [1.0, 0.0] and not progs._building and backend.stats()["builds"] == before + 2


def test_programs_and_kernels_are_cached():
    a = cp.Tensor(np.arange(6.0))
    (a + a).numpy()  # read, so it runs (elementwise fusion launches nothing for a result dropped unread)
    before = backend.stats()["builds"]
    k1 = backend.kernel("elementwise", "add_c", a.dtype)
    for _ in range(5):
        a + a
    assert backend.kernel("elementwise", "add_c", a.dtype) is k1
    assert backend.stats()["builds"] == before


def test_pool_returns_memory_of_dropped_tensors():
    x = cp.Tensor(np.ones((256, 256), np.float32))
    backend.synchronize()
    base = pool_bytes_in_use()
    for _ in range(50):
        y = x * 2 + 1
        del y
    assert pool_bytes_in_use() == base
    allocations = backend.stats()["allocations"]
    for _ in range(20):
        (x * 3).exp()
    assert backend.stats()["allocations"] == allocations  # served from the pool


def test_ops_on_device_data_read_nothing_back():
    x = cp.Tensor(np.linspace(-1, 1, 1000).reshape(10, 100))
    backend.reset_stats()
    y = ((x * 2).exp() - x.T.T).clamp(-1, 1)
    z = y.transpose(0, 1).contiguous() + 1
    s = backend.stats()
    # elementwise fusion may defer and merge the chains: at least the strided copy's input and the copy ran
    assert s["d2h_count"] == 0 and s["h2d_count"] == 0 and s["launches"] >= 2
    z.numpy()
    assert backend.stats()["d2h_count"] == 1


def test_sync_env_runs_each_kernel_to_completion():
    code = ("import clownpiece as cp, numpy as np; a = cp.Tensor(np.arange(4.0)); "
            "print((a * 2 + 1).tolist(), cp.backend.runtime._SYNC_EACH)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, CLOWNPIECE_SYNC="1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1.0, 3.0, 5.0, 7.0] True"


def test_kernels_found_from_installed_wheel(tmp_path):
    """Build a wheel, install it into a scratch directory and run an op from there (outside the checkout)."""
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(wheel_dir), ROOT], check=True, capture_output=True)
    wheel = next(wheel_dir.glob("clownpiece-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "clownpiece/cl_kernels/elementwise.cl" in names
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    code = ("import clownpiece as cp, clownpiece.backend.programs as p; "
            "print(p.kernel_path('elementwise')); print((cp.Tensor([1.0, 2.0]) * 3).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path),
                         env=dict(os.environ, PYTHONPATH=str(target)))
    assert out.returncode == 0, out.stderr
    path, values = out.stdout.strip().splitlines()
    assert path.startswith(str(target)) and values == "[3.0, 6.0]"


def test_uploads_copy_the_host_array_so_callers_may_change_it_at_once():
    """An upload runs when the queue reaches it, after the call returns: the host values are those at the
    call, whatever the caller writes into its array afterwards (with a busy queue, so the copy is late)."""
    busy = cp.Tensor(np.ones((384, 384), np.float32))
    made = []
    for make in (cp.Tensor, cp.tensor, cp.from_numpy, lambda a: cp.Tensor(a[::2])):
        for _ in range(3):
            busy = busy @ busy * 0.001
        a = np.arange(64, dtype=np.float32)
        made.append((make(a), make(a.copy())))
        a[:] = -1.0
    for t, expected in made:
        np.testing.assert_array_equal(t.numpy(), expected.numpy())
        assert t.numpy().min() >= 0
