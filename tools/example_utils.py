"""What the example scripts share: a progress bar with the loss and a throughput, and a PNG of the curves.

The PNG writer is a few lines of numpy and zlib (a 3x5 pixel font for the labels) rather than matplotlib, so
every run writes its curves, the test suite included, with nothing to install; the plots are deliberately
plain. Plotting is host work on a handful of logged numbers: it computes nothing the training needs."""
import os
import struct
import tempfile
import time
import zlib

import numpy as np


class Progress:
    """A tqdm bar (when tqdm is installed) showing the loss and `unit`s per second, or a plain line per
    update otherwise: `step 10/100  loss 2.3026  1234 images/s`."""

    def __init__(self, total_steps, unit="images", bar=True):
        self.total, self.unit, self.start = total_steps, unit, time.perf_counter()
        self.done = 0  # units processed
        self.bar = None
        if bar:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total_steps, unit="step", dynamic_ncols=True)
            except ImportError:
                pass

    def rate(self):
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def update(self, step, units, loss=None):
        """One step of `units` (images or tokens) done; loss: the latest mean loss read back, or None."""
        self.done += units
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix_str(f"loss {loss:.4f}, {self.rate():.0f} {self.unit}/s", refresh=False)
        elif loss is not None:
            print(f"step {step}/{self.total}  loss {loss:.4f}  {self.rate():.0f} {self.unit}/s", flush=True)

    def restart_clock(self):
        """Count throughput from now on (after the first steps, which build kernels and capture the jit)."""
        self.start, self.done = time.perf_counter(), 0

    def write(self, line):
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---- a small PNG line-chart writer ---------------------------------------------------------------------------

# 3x5 glyphs, one octal digit (3 pixels, left bit first) per row; text is drawn upper-case
_FONT = dict(zip("0123456789.-%/():,=+ ABCDEFGHIJKLMNOPQRSTUVWXYZ", (
    "75557", "26227", "71747", "71717", "55711", "74717", "74757", "71111", "75757", "75717", "00002", "00700",
    "51245", "11244", "24442", "21112", "02020", "00024", "07070", "02720", "00000", "25755", "65656", "34443",
    "65556", "74647", "74644", "34553", "55755", "72227", "11152", "55655", "44447", "57755", "65555", "25552",
    "65644", "25563", "65655", "34216", "72222", "55557", "55552", "55775", "55255", "55222", "71247")))
_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
_PANEL_W, _PANEL_H, _MARGIN, _SCALE = 420, 300, 44, 2  # pixels; _SCALE: font magnification


def _text(img, x, y, text, colour=(0, 0, 0)):
    for i, ch in enumerate(text.upper()):
        rows = _FONT.get(ch, _FONT[" "])
        for r, digit in enumerate(rows):
            bits = int(digit, 8)
            for c in range(3):
                if bits & (4 >> c):
                    x0, y0 = x + (4 * i + c) * _SCALE, y + r * _SCALE
                    img[y0:y0 + _SCALE, x0:x0 + _SCALE] = colour


def _line(img, x0, y0, x1, y1, colour):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.clip(np.rint(np.linspace(x0, x1, n)).astype(int), 0, img.shape[1] - 2)
    ys = np.clip(np.rint(np.linspace(y0, y1, n)).astype(int), 0, img.shape[0] - 2)
    for dx in (0, 1):  # 2 pixels thick
        for dy in (0, 1):
            img[ys + dy, xs + dx] = colour


def _number(v):
    return f"{v:.3g}"


def _panel(img, left, title, series):
    """One chart at x offset `left`: series is a list of (label, xs, ys)."""
    top, m = 0, _MARGIN
    x_lo, x_hi, y_lo, y_hi = (min(min(s[1]) for s in series), max(max(s[1]) for s in series),
                              min(min(s[2]) for s in series), max(max(s[2]) for s in series))
    if x_hi == x_lo:
        x_hi = x_lo + 1
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    px0, px1, py0, py1 = left + m + 20, left + _PANEL_W - 12, top + m, top + _PANEL_H - m

    def to_px(x, y):
        return (px0 + (x - x_lo) / (x_hi - x_lo) * (px1 - px0), py1 - (y - y_lo) / (y_hi - y_lo) * (py1 - py0))
    for k in range(5):  # grid lines and y labels
        y = y_lo + (y_hi - y_lo) * k / 4
        _, yy = to_px(x_lo, y)
        img[int(yy), px0:px1] = (225, 225, 225)
        _text(img, left + 4, int(yy) - 5, _number(y))
    img[py0:py1 + 1, px0] = img[py0:py1 + 1, px1] = 0
    img[py0, px0:px1 + 1] = img[py1, px0:px1 + 1] = 0
    _text(img, px0, py1 + 8, _number(x_lo))
    hi = _number(x_hi)
    _text(img, px1 - len(hi) * 4 * _SCALE, py1 + 8, hi)
    _text(img, px0, 10, title)
    for i, (label, xs, ys) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [to_px(x, y) for x, y in zip(xs, ys)]
        for (xa, ya), (xb, yb) in zip(points, points[1:]):
            _line(img, xa, ya, xb, yb, colour)
        if len(points) == 1:
            _line(img, points[0][0] - 2, points[0][1], points[0][0] + 2, points[0][1], colour)
        _text(img, px0 + 140 * i, _PANEL_H - 16, label, colour)


def png_bytes(rgb):
    """A uint8 [H, W, 3] image as PNG bytes (8-bit RGB, no filtering)."""
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def plot_curves(path, panels):
    """Write side-by-side line charts to `path` (PNG, through a temporary file renamed into place).
    panels: a list of (title, [(label, xs, ys), ...]); a panel whose series are all empty is left out.
    Returns the path, or None when there was nothing to plot."""
    panels = [(title, [s for s in series if len(s[1])]) for title, series in panels]
    panels = [(title, series) for title, series in panels if series]
    if not panels:
        return None
    img = np.full((_PANEL_H, _PANEL_W * len(panels), 3), 255, np.uint8)
    for i, (title, series) in enumerate(panels):
        _panel(img, i * _PANEL_W, title, series)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".png.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png_bytes(img))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
