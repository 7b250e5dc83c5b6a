"""clownpiece.distributed, DistributedDataParallel and DistributedSampler.

The multi-rank checks run for real: `mpirun -n 2` on tests/mpi_worker.py (once for all its scenarios, each
reported as its own test here), on the abort path and on tools/train_mnist.py --distributed. Open MPI and
mpi4py come from `bash tools/setup.sh test`; without them these tests fail, they are never skipped."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import clownpiece as cp
from clownpiece import distributed as dist
from clownpiece.utils.data import Dataloader, DistributedSampler, TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_worker  # noqa: E402
from test_train_mnist import tiny_mnist  # noqa: E402

ROOT = os.path.dirname(HERE)


def mpirun(n, *args, timeout=120, cwd=None):
    """Run `python args...` on n ranks; returns the CompletedProcess. The venv's mpirun (PyPI's Open MPI,
    setup.sh's fallback) comes first, then the system's."""
    bin_dir = os.path.dirname(sys.executable)
    venv_mpirun = os.path.join(bin_dir, "mpirun")
    launcher = venv_mpirun if os.path.exists(venv_mpirun) else shutil.which("mpirun")
    assert launcher, "mpirun not found: `bash tools/setup.sh test` installs Open MPI (openmpi-bin) and mpi4py"
    cmd = [launcher, "-n", str(n), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(cmd + [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env, stdin=subprocess.DEVNULL)  # mpirun forwards stdin to rank 0


@pytest.fixture(scope="module")
def scenario_outcomes(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpi") / "outcomes.json"
    proc = mpirun(2, os.path.join(HERE, "mpi_worker.py"), str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    with open(out) as f:
        return json.load(f)


@pytest.mark.parametrize("name", list(mpi_worker.SCENARIOS))
def test_two_ranks(scenario_outcomes, name):
    assert scenario_outcomes[name] == ["ok", "ok"]  # both ranks finished it


def test_a_rank_raising_ends_the_job_within_seconds_with_its_message():
    start = time.perf_counter()
    proc = mpirun(2, os.path.join(HERE, "mpi_worker.py"), "abort", timeout=60)
    elapsed = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ValueError: rank 1 gives up" in output, output
    assert "uncaught exception on rank 1 of 2; aborting the job" in output, output
    assert elapsed < 20, f"the job took {elapsed:.1f} s to end"


def test_train_mnist_distributed_rank_0_reports(tmp_path):
    tiny_mnist(str(tmp_path / "data"))
    proc = mpirun(2, os.path.join(ROOT, "tools", "train_mnist.py"), "--distributed", "--model", "mlp",
                  "--max-steps", "12", "--data-dir", str(tmp_path / "data"), "--no-download",
                  "--plot", str(tmp_path / "curves.png"), timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "ranks: 2, 20 images per rank and step"
    assert len([line for line in lines if line.startswith("device: ")]) == 1  # rank 1 is quiet
    # 400 images over 2 ranks of 20: 10 steps an epoch, so step 11 is epoch 1's first
    assert any(line.startswith("Train Epoch: 0 [0/400]") for line in lines), proc.stdout
    assert any(line.startswith("Train Epoch: 1 [0/400]") for line in lines), proc.stdout
    assert re.fullmatch(r"test accuracy: \d+\.\d\d%", lines[-1]), proc.stdout
    assert len([line for line in lines if line.startswith("test accuracy")]) == 1


# ---- without mpirun ---------------------------------------------------------------------------------------

def test_uninitialized_use_says_to_call_init():
    assert not dist.is_initialized()
    for fn in (dist.get_rank, dist.get_world_size, dist.barrier, lambda: dist.all_reduce(cp.ones(2))):
        with pytest.raises(RuntimeError, match=r"call clownpiece.distributed.init\(\) first"):
            fn()
    with pytest.raises(RuntimeError, match=r"call clownpiece.distributed.init\(\) first"):
        cp.nn.parallel.DistributedDataParallel(cp.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="pass num_replicas and rank"):
        DistributedSampler(range(10))
    assert dist.is_available()  # CI installs mpi4py


def test_each_local_rank_gets_its_device():
    gpus = ["0:0", "0:1", "1:0"]
    assert [dist._device_spec("", r, gpus) for r in range(4)] == ["0:0", "0:1", "1:0", "0:0"]  # round-robin
    assert dist._device_spec("", 1, []) == ""  # no GPU: the usual default (CPU ranks share it)
    assert dist._device_spec(" cpu ", 1, gpus) == "cpu"  # one value: every rank
    assert [dist._device_spec("0:1, pocl", r, gpus) for r in range(3)] == ["0:1", "pocl", "0:1"]
    with pytest.raises(ValueError, match="an empty entry"):
        dist._device_spec("0:0,,0:1", 0, gpus)


def partitions(n, replicas, **kwargs):
    samplers = [DistributedSampler(range(n), replicas, r, **kwargs) for r in range(replicas)]
    return samplers, [list(s) for s in samplers]


@pytest.mark.parametrize("n", [0, 1, 7, 12, 13])
@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sampler_padding_covers_every_index_once_plus_the_fewest_repeats(n, replicas, shuffle):
    samplers, parts = partitions(n, replicas, shuffle=shuffle, seed=4)
    per_rank = -(-n // replicas)
    assert all(len(p) == len(s) == per_rank for p, s in zip(parts, samplers))
    everything = sum(parts, [])
    if n:
        assert sorted(set(everything)) == list(range(n))
        counts = np.bincount(everything, minlength=n)
        assert counts.min() >= 1 and counts.sum() == per_rank * replicas
        assert counts.max() == -(-per_rank * replicas // n)  # repeats spread evenly (the pad cycles)
    else:
        assert everything == []
    if not shuffle:  # PyTorch's rule: rank r takes positions r, r + replicas, ... of the padded order
        padded = [i % n for i in range(per_rank * replicas)] if n else []
        assert parts == [padded[r::replicas] for r in range(replicas)]


@pytest.mark.parametrize("n,replicas", [(12, 2), (13, 2), (13, 5), (3, 5), (10, 3)])
def test_sampler_drop_last_covers_a_subset_exactly_once(n, replicas):
    samplers, parts = partitions(n, replicas, shuffle=True, drop_last=True)
    per_rank = n // replicas
    assert all(len(p) == len(s) == per_rank for p, s in zip(parts, samplers))
    everything = sum(parts, [])
    assert len(set(everything)) == len(everything) == per_rank * replicas
    assert set(everything) <= set(range(n))


def test_sampler_shuffles_by_seed_and_epoch_the_same_on_every_rank():
    def epoch_order(epoch, seed=0):
        samplers = [DistributedSampler(range(20), 2, r, seed=seed) for r in range(2)]
        for s in samplers:
            s.set_epoch(epoch)
        return [list(s) for s in samplers]

    first = epoch_order(0)
    assert sorted(first[0] + first[1]) == list(range(20))
    assert epoch_order(0) == first  # deterministic: every rank computes the same permutation
    assert epoch_order(1) != first and sorted(sum(epoch_order(1), [])) == list(range(20))
    assert epoch_order(0, seed=1) != first
    assert list(DistributedSampler(range(6), 2, 1, shuffle=False)) == [1, 3, 5]


def test_sampler_drives_a_dataloader():
    x = np.arange(10, dtype=np.float32)[:, None]
    sampler = DistributedSampler(TensorDataset(x), num_replicas=2, rank=1, shuffle=False)
    batches = [b[0].numpy().ravel().tolist() for b in Dataloader(TensorDataset(x), batch_size=2, sampler=sampler)]
    assert batches == [[1.0, 3.0], [5.0, 7.0], [9.0]]


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_replicas=0, rank=0), "num_replicas must be an int >= 1"),
    (dict(num_replicas=2, rank=2), r"rank must be in \[0, 2\)"),
    (dict(num_replicas=2, rank=-1), "rank must be an int >= 0"),
    (dict(num_replicas=2.0, rank=0), "num_replicas must be an int"),
    (dict(num_replicas=2, rank=True), "rank must be an int"),
    (dict(num_replicas=2, rank=0, seed=-1), "seed must be an int >= 0"),
])
def test_sampler_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistributedSampler(range(4), **kwargs)


def test_sampler_epoch_must_be_a_non_negative_int():
    for epoch in (-1, 1.5, None):
        with pytest.raises(ValueError, match="epoch must be an int >= 0"):
            DistributedSampler(range(4), 2, 0).set_epoch(epoch)
