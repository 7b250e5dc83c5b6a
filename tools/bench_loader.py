"""DataLoader prefetching: how much of the batch preparation worker threads take off the training loop.

    python tools/bench_loader.py          # or: python tools/bench.py --only loader

A CIFAR-shaped pipeline: images fetched one sample at a time and turned into float CHW arrays in [0, 1] on
the host (as CIFAR10's items are), collated, uploaded, augmented on the device (RandomCrop(32, padding=4),
RandomHorizontalFlip, Normalize), and an MLP's training step that reads its loss (the usual per-step sync),
sized to cost about as much as the collation. Three kinds of collation cost: numpy work per sample (Python
holding the GIL), a PNG decode per sample (Pillow's C decoder, which releases the GIL: an ImageFolder), and
the numpy work plus a 0.5 ms wait per sample that releases the GIL (a file read).

Reported per kind: the loader alone (s/batch, no compute), the step alone (s/step, one fixed batch), whole
steps with num_workers=0 and num_workers=2 (medians of alternated epochs), the speedup, and the share of
the serial step time saved. On a CPU OpenCL device the kernels already use every core, so CPU-bound
collation has no spare core to overlap with; the GIL-releasing kinds are where threads pay off there."""
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import clownpiece as cp  # noqa: E402
from clownpiece import nn  # noqa: E402
from clownpiece.utils.data import (  # noqa: E402
    DataLoader,
    Dataset,
    transforms as T,  # noqa: E402
)
from clownpiece.utils.optim import SGD  # noqa: E402


class CifarLike(Dataset):
    """uint8 [N, 32, 32, 3] images and labels; item i as CIFAR10 makes it, plus `wait` seconds of I/O."""

    def __init__(self, n, wait=0.0):
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, n).tolist()
        self.wait = wait

    def __getitem__(self, i):
        if self.wait:
            time.sleep(self.wait)
        img = np.ascontiguousarray(np.moveaxis(self.data[i], -1, -3), dtype=np.float32) / np.float32(255)
        return img, self.targets[i]

    def __len__(self):
        return len(self.data)


class PngLike(CifarLike):
    """The images stored as PNG files in memory, decoded by Pillow per item (an ImageFolder-style dataset:
    the decoder is C code that releases the GIL)."""

    def __init__(self, n, wait=0.0):
        super().__init__(n, wait)
        import io

        from PIL import Image
        self.files = []
        for img in self.data:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            self.files.append(buf.getvalue())

    def __getitem__(self, i):
        import io

        from PIL import Image
        with Image.open(io.BytesIO(self.files[i])) as im:
            img = np.asarray(im.convert("RGB"))
        return np.ascontiguousarray(np.moveaxis(img, -1, -3), dtype=np.float32) / np.float32(255), self.targets[i]


def model_for_bench():
    """A step of tens of milliseconds on a CPU OpenCL device, comparable to the collation measured."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 256), nn.ReLU(), nn.Linear(256, 10))


def measure(batch=64, batches=24, record=None, repeats=3):
    cp.manual_seed(0)
    model = model_for_bench()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                         T.Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])])

    def step(x, y):
        loss = loss_fn(model(augment(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def epoch(loader):
        t = time.perf_counter()
        for x, y in loader:
            step(x, y)
        return (time.perf_counter() - t) / batches

    rows = []
    kinds = [("per-sample numpy (CPU)", lambda n: CifarLike(n)),
             ("+0.5 ms I/O wait/sample", lambda n: CifarLike(n, 5e-4))]
    try:
        import PIL  # noqa: F401
        kinds.insert(1, ("PNG decode/sample (Pillow)", lambda n: PngLike(n)))
    except ImportError:
        print("  (Pillow not installed: no PNG row)")
    for name, make in kinds:
        ds = make(batch * batches)
        x, y = next(iter(DataLoader(ds, batch_size=batch)))
        step(x, y)  # builds every kernel
        t = time.perf_counter()
        for _ in range(batches // 3):
            step(x, y)
        compute = (time.perf_counter() - t) / (batches // 3)
        t = time.perf_counter()
        for _ in DataLoader(ds, batch_size=batch):
            pass
        cp.synchronize()
        load = (time.perf_counter() - t) / batches
        serial, threaded = [], []
        for _ in range(repeats):  # alternated, so that load from elsewhere on the machine hits both alike
            serial.append(epoch(DataLoader(ds, batch_size=batch, shuffle=True, seed=0)))
            threaded.append(epoch(DataLoader(ds, batch_size=batch, shuffle=True, seed=0, num_workers=2)))
        serial, threaded = float(np.median(serial)), float(np.median(threaded))
        row = dict(loader_s=load, step_s=compute, workers0_s=serial, workers2_s=threaded, speedup=serial / threaded,
                   saved=(serial - threaded) / serial)
        rows.append(row)
        if record is not None:
            record("loader", name, **row)
        else:
            print(f"  {name:<34} loader {load * 1e3:7.1f} ms/batch  step {compute * 1e3:7.1f} ms  "
                  f"workers=0 {serial * 1e3:7.1f} ms/step  workers=2 {threaded * 1e3:7.1f} ms/step  "
                  f"speedup {serial / threaded:.2f}x  saved {row['saved']:.0%}", flush=True)
    return rows


def bench_loader(args=None, record=None):
    print("DataLoader prefetching: CIFAR-shaped batches of 64, an MLP training step with device augmentation "
          "(num_workers 0 vs 2)")
    return measure(record=record)


if __name__ == "__main__":
    print(f"device: {cp.backend.device()}")
    bench_loader()
