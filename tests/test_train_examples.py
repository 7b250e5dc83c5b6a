"""tools/train_cifar10.py and tools/train_gpt.py end to end at small sizes (seconds), plus their pieces:
the PNG writer, the synthetic data, Gumbel-max sampling, the learning-rate schedule, the offline message."""
import math
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import example_utils  # noqa: E402
import train_cifar10  # noqa: E402
import train_gpt  # noqa: E402

import clownpiece  # noqa: E402


def run_script(name, args, cwd):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", name)] + args, capture_output=True,
                          text=True, timeout=600, cwd=str(cwd))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


def read_png(path):
    """(width, height, rgb array) of an 8-bit RGB PNG without filtering, as png_bytes writes it."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert not rows[:, 0].any()  # filter type 0 on every row
    return w, h, rows[:, 1:].reshape(h, w, 3)


def test_png_bytes_round_trip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3)).astype(np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(example_utils.png_bytes(rgb))
    w, h, back = read_png(path)
    assert (w, h) == (5, 7)
    np.testing.assert_array_equal(back, rgb)


def test_plot_curves_draws_each_series_in_its_colour(tmp_path):
    path = str(tmp_path / "curves.png")
    assert example_utils.plot_curves(path, [("loss", [("train", [1, 2, 3], [3.0, 2.0, 1.0])]),
                                            ("acc", [("a", [1, 2], [10, 20]), ("b", [1, 2], [15, 30])]),
                                            ("empty", [("none", [], [])])]) == path
    w, h, img = read_png(path)
    assert (w, h) == (2 * 420, 300)  # the empty panel is left out
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert {tuple(c) for c in example_utils._COLOURS[:2]} <= colours
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert example_utils.plot_curves(str(tmp_path / "none.png"), [("x", [("y", [], [])])]) is None
    assert not os.path.exists(tmp_path / "none.png")


def test_synthetic_cifar_is_cifar_shaped_and_balanced():
    train_x, train_y, test_x, test_y, _ = train_cifar10.synthetic_cifar(500, 100, seed=1)
    assert train_x.shape == (500, 3, 32, 32) and train_x.dtype == np.float32
    assert test_x.shape == (100, 3, 32, 32) and train_y.dtype == np.int64
    assert 0.0 <= train_x.min() and train_x.max() <= 1.0
    assert set(np.unique(train_y)) == set(range(10))
    # the classes differ: images of one class are closer to their class mean than to another class's
    means = np.stack([train_x[train_y == k].mean(0) for k in range(10)])
    d = ((test_x[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4))
    assert (d.argmin(1) == test_y).mean() > 0.5


def test_cifar_without_data_says_so_and_names_synthetic(tmp_path, capsys):
    with pytest.raises(SystemExit, match="--synthetic") as e:
        train_cifar10.main(["--data-dir", str(tmp_path), "--no-download"])
    assert "CIFAR-10 is not in" in str(e.value)


def test_cifar_files_in_data_dir_are_what_the_script_trains_on(tmp_path, monkeypatch):
    from test_cifar import PER_FILE, TRAIN, fake_batches, write_binary_version

    from clownpiece.utils.data.datasets import CIFAR10
    monkeypatch.setattr(CIFAR10, "records_per_file", PER_FILE)
    batches = fake_batches()
    write_binary_version(tmp_path, batches)
    train_x, train_y, test_x, test_y, source = train_cifar10.load_cifar10(str(tmp_path), download=False)
    rows = np.concatenate([batches[n][0] for n in TRAIN])  # channel-planar rows: already [N, 3, 32, 32]
    np.testing.assert_array_equal(train_x, rows.reshape(-1, 3, 32, 32) / np.float32(255))
    assert train_x.dtype == test_x.dtype == np.float32 and train_y.dtype == np.int64
    np.testing.assert_array_equal(train_y, sum((batches[n][1] for n in TRAIN), []))
    np.testing.assert_array_equal(test_y, batches["test_batch"][1])
    assert str(tmp_path) in source


def test_cifar_resnet20_shapes_and_parameter_count():
    model = train_cifar10.ResNet(3, 16)
    # ResNet-20 with 1x1-conv projection shortcuts (He et al.'s option B): 272,474 parameters
    assert sum(p.numel() for p in model.parameters()) == 272474
    assert sum(isinstance(m, clownpiece.nn.BatchNorm2d) for m in model.modules()) == 21
    model.eval()
    assert model(clownpiece.randn(2, 3, 32, 32)).shape == [2, 10]


def test_cifar_script_trains_above_chance(tmp_path):
    plot = tmp_path / "c.png"
    lines = run_script("train_cifar10.py", ["--synthetic", "--train-size", "640", "--test-size", "200",
                                            "--batch-size", "32", "--blocks", "1", "--width", "8", "--epochs", "3",
                                            "--lr", "0.4", "--num-workers", "1", "--plot", str(plot)], tmp_path)
    assert lines[0].startswith("device: ")
    epochs = [re.match(r"epoch (\d+): train loss (\d+\.\d+), test accuracy (\d+\.\d+)%, (\d+\.\d) images/s", line)
              for line in lines]
    epochs = [(float(m[2]), float(m[3])) for m in epochs if m]
    assert len(epochs) == 3, lines
    assert epochs[-1][0] < epochs[0][0] - 0.3, epochs  # the loss falls
    assert re.fullmatch(r"test accuracy: \d+\.\d\d%", lines[-1])
    accuracy = float(lines[-1].split()[-1][:-1])
    assert accuracy == epochs[-1][1] and accuracy > 40.0, lines  # chance is 10%
    read_png(plot)


def test_gumbel_max_draws_follow_the_softmax():
    clownpiece.manual_seed(0)
    logits = np.array([2.0, 1.0, 0.0, -1.0, 0.5], np.float32)
    n, temperature = 20000, 0.7
    ids = train_gpt.draw(clownpiece.Tensor(np.tile(logits, (n, 1))), temperature)
    assert ids.shape == [n, 1]
    counts = np.bincount(ids.numpy().astype(np.int64).ravel(), minlength=5)
    p = np.exp(logits / temperature) / np.exp(logits / temperature).sum()
    assert np.all(np.abs(counts / n - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-3), (counts / n, p)


def test_warmup_cosine_schedule():
    f = train_gpt.warmup_cosine(warmup=10, total=110, floor=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)


def test_gpt_data_windows_are_shifted_by_one():
    data = train_gpt.CharData("abcdefghij" * 30, block_size=8, seed=0)
    x, y = data.batch("train", 4)
    x, y = x.numpy(), y.numpy()
    assert x.shape == y.shape == (4, 8)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert data.decode(data.encode("cab")) == "cab"
    with pytest.raises(SystemExit, match="too short"):
        train_gpt.CharData("abc" * 10, block_size=8)


def test_gpt_trains_on_the_repositorys_sources_by_default():
    text, source = train_gpt.repository_text()
    assert "def test_gpt_trains_on_the_repositorys_sources_by_default" in text  # this file is part of it
    assert "__kernel" in text and "source files" in source


def learnable_text(n_lines=3000, seed=0):
    """Lines of a tiny language: a few words in a fixed grammar, so that characters predict each other."""
    rng = np.random.default_rng(seed)
    names, verbs = ["tensor", "kernel", "buffer", "queue", "device"], ["reads", "writes", "builds", "frees"]
    return "".join(f"the {rng.choice(names)} {rng.choice(verbs)} {rng.integers(10)} {rng.choice(names)}s.\n"
                   for _ in range(n_lines))


def test_gpt_script_learns_and_samples(tmp_path):
    plot, text = tmp_path / "g.png", tmp_path / "text.txt"
    text.write_text(learnable_text())
    lines = run_script("train_gpt.py", ["--text", str(text), "--max-steps", "60", "--eval-every", "20",
                                        "--n-layer", "1",
                                        "--n-embd", "32", "--n-head", "2", "--block-size", "32", "--batch-size",
                                        "8", "--warmup", "5", "--lr", "3e-3", "--sample-chars", "40", "--prompt",
                                        "the ", "--plot", str(plot)], tmp_path)
    assert lines[0].startswith("device: ") and str(text) in lines[1]
    vals = [float(m[1]) for m in (re.match(r"step \d+: train loss \d+\.\d+, val loss (\d+\.\d+), \d+ tokens/s", s)
                                  for s in lines) if m]
    assert len(vals) == 3, lines
    assert vals[-1] < vals[0] - 0.3 and vals[-1] < 0.6 * math.log(32), vals  # 32 characters: uniform is log 32
    start = lines.index("--- sample (temperature 0.8) ---")
    sample = "\n".join(lines[start + 1:lines.index("---", start)])
    assert sample.startswith("the ") and len(sample) >= len("the ") + 30
    assert re.fullmatch(r"val loss: (\d+\.\d{4}) \(\d+\.\d\d bits per character\)", lines[-1])
    assert float(lines[-1].split()[2]) == vals[-1]
    read_png(plot)


def test_gpt_jitted_training_prints_what_eager_training_prints(tmp_path):
    """The jit's replays are bit-identical to eager steps: every loss, and the sampled text, match."""
    text = tmp_path / "text.txt"
    text.write_text(learnable_text(1000))
    args = ["--text", str(text), "--max-steps", "20", "--eval-every", "10", "--n-layer", "1", "--n-embd", "16",
            "--n-head", "2", "--block-size", "16", "--batch-size", "4", "--sample-chars", "30", "--plot",
            str(tmp_path / "g.png")]
    runs = [[re.sub(r"\s+\d+ tokens/s", "", line) for line in run_script("train_gpt.py", args + extra, tmp_path)
             if not line.startswith("model: ")] for extra in ([], ["--no-jit"])]
    assert runs[0] == runs[1]
    assert any(line.startswith("step 20: train loss") for line in runs[0])
