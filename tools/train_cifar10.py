#!/usr/bin/env python
"""Train a ResNet-20-style network on CIFAR-10 with clownpiece on whatever OpenCL device is selected.

    python tools/train_cifar10.py                       # CIFAR-10 from ./data (downloaded there when missing)
    python tools/train_cifar10.py --synthetic           # generated CIFAR-shaped data (offline)
    python tools/train_cifar10.py --synthetic --width 8 --blocks 1 --epochs 3   # a quick look on a CPU
    python tools/train_cifar10.py --no-jit              # every step eagerly (default: clownpiece.jit replays it)

The network is He et al.'s CIFAR ResNet-(6n+2) (n = --blocks per stage; n=3 is ResNet-20): a 3x3 stem, three
stages of basic blocks (conv3x3-BatchNorm2d-ReLU-conv3x3-BatchNorm2d plus the shortcut, ReLU) at --width,
2x and 4x channels, the second and third starting with stride 2 and a 1x1 conv + BatchNorm2d shortcut,
then global average pooling and a linear classifier. Training: random crop with 4 pixels of padding,
horizontal flip and normalisation as device kernels inside the training step, SGD with Nesterov momentum
and weight decay, OneCycleLR (or cosine annealing), cross-entropy with label smoothing.

Data: CIFAR-10 (torchvision's layout) in --data-dir, downloaded there when missing; when it is neither there
nor downloadable the script says so and stops: `--synthetic` trains on generated CIFAR-shaped images instead
(10 classes, each a smooth random colour pattern, shown shifted, mirrored, re-lit and noisy: a network has to
learn it, chance is 10%). The last line printed is always `test accuracy: NN.NN%`."""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from example_utils import Progress, plot_curves  # noqa: E402  (tools/, the script's folder)

import clownpiece  # noqa: E402
from clownpiece import nn  # noqa: E402
from clownpiece.autograd import no_grad  # noqa: E402
from clownpiece.utils.data import DataLoader, TensorDataset, transforms as T  # noqa: E402
from clownpiece.utils.data.datasets import CIFAR10  # noqa: E402
from clownpiece.utils.optim import SGD, lr_scheduler  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # CIFAR-10's per-channel statistics
LOG_EVERY = 10  # steps between reads of the accumulated loss


# ---- data -------------------------------------------------------------------------------------------------

def load_cifar10(data_dir, download=True):
    """(train_x, train_y, test_x, test_y, description): float32 [N, 3, 32, 32] in [0, 1], int64 labels.
    Raises SystemExit with what to do when CIFAR-10 is neither in data_dir nor downloadable."""
    try:
        splits = [CIFAR10(data_dir, train=train, download=download) for train in (True, False)]
    except (FileNotFoundError, RuntimeError) as e:
        if type(e).__name__ == "CorruptDatasetError":
            raise
        why = f"could not be downloaded: {e}" if download else f"--no-download was given ({e})"
        raise SystemExit(f"CIFAR-10 is not in {os.path.abspath(data_dir)} and {why}\n"
                         f"Put cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/) there, or run with "
                         f"--synthetic to train on generated CIFAR-shaped data.") from None
    (train_x, train_y), (test_x, test_y) = ((np.moveaxis(s.data, -1, 1) / np.float32(255),
                                             np.asarray(s.targets, np.int64)) for s in splits)
    return train_x, train_y, test_x, test_y, f"CIFAR-10 from {os.path.abspath(data_dir)}"


def synthetic_cifar(n_train, n_test, seed=0, num_classes=10):
    """CIFAR-shaped images with learnable structure: class k is a smooth random colour pattern (an 8x8x3
    grid of random colours, upsampled), shown shifted by up to 4 pixels, mirrored at random, with a random
    brightness and contrast and pixel noise, clipped to [0, 1]. Returns arrays as load_cifar10 does."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, size=(num_classes, 3, 8, 8)).astype(np.float32)
    templates = coarse.repeat(4, axis=2).repeat(4, axis=3)  # [K, 3, 32, 32], blocky
    kernel = np.array([1, 4, 6, 4, 1], np.float32) / 16  # smooth the blocks' edges (separable blur)
    for axis in (2, 3):
        templates = np.apply_along_axis(lambda v: np.convolve(np.pad(v, 2, mode="wrap"), kernel, "valid"),
                                        axis, templates)

    def draw(n):
        labels = rng.integers(0, num_classes, size=n)
        images = templates[labels]
        shifts = rng.integers(-4, 5, size=(n, 2))
        for i, (dy, dx) in enumerate(shifts):
            images[i] = np.roll(images[i], (dy, dx), axis=(1, 2))
        flip = rng.random(n) < 0.5
        images[flip] = images[flip][..., ::-1]
        gain = rng.uniform(0.6, 1.2, size=(n, 1, 1, 1))
        offset = rng.uniform(-0.2, 0.2, size=(n, 1, 1, 1))
        images = (images - 0.5) * gain + 0.5 + offset + rng.normal(0, 0.25, size=images.shape)
        return np.clip(images, 0, 1).astype(np.float32), labels.astype(np.int64)
    (train_x, train_y), (test_x, test_y) = draw(n_train), draw(n_test)
    return train_x, train_y, test_x, test_y, f"synthetic CIFAR-shaped data ({num_classes} classes)"


# ---- model ------------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (identity, or 1x1 conv + BN where the shape changes), ReLU."""

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet-(6 * blocks + 2): blocks=3, width=16 is ResNet-20."""

    def __init__(self, blocks=3, width=16, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, in_channels = [], width
        for stage, channels in enumerate((width, 2 * width, 4 * width)):
            for i in range(blocks):
                layers.append(BasicBlock(in_channels, channels, stride=2 if stage > 0 and i == 0 else 1))
                in_channels = channels
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


# ---- training ---------------------------------------------------------------------------------------------

def make_train_step(model, loss_fn, optimizer, augment):
    """Augment on the device, forward, backward, SGD update. The learning rate and momentum are arguments, so
    a jitted step re-reads them every call (OneCycleLR changes both)."""
    def train_step(x, y, lr, momentum):
        for group in optimizer.param_groups:
            group["lr"], group["momentum"] = lr, momentum
        loss = loss_fn(model(augment(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()
    return train_step


def make_counter(model, normalize):
    def count_correct(x, y):
        return (model(normalize(x)).argmax(-1) == y).sum()
    return count_correct


def evaluate(count, loader, model):
    """Accuracy in percent over loader, counted on the device and read back once."""
    model.eval()
    correct, total = None, 0
    with no_grad():
        for x, y in loader:
            c = count(x, y)
            correct = c if correct is None else correct + c
            total += len(y)
    model.train()
    return 100.0 * correct.item() / max(total, 1) if total else 0.0


def make_scheduler(name, optimizer, lr, total_steps):
    if name == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=0.25)
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)


def train(args, model, train_loader, test_loader, total_steps):
    """Returns the curves: (steps, losses) logged every LOG_EVERY steps, (epochs, test accuracies)."""
    normalize = T.Normalize(MEAN, STD)
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), normalize])
    optimizer = SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                    nesterov=args.momentum > 0)
    scheduler = make_scheduler(args.schedule, optimizer, args.lr, total_steps)
    train_step = make_train_step(model, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), optimizer,
                                 augment)
    count = make_counter(model, normalize)
    if not args.no_jit:
        train_step, count = clownpiece.jit(train_step), clownpiece.jit(count)
    progress = Progress(total_steps, "images")
    loss_steps, losses, eval_epochs, accuracies = [], [], [], []
    step, window, window_steps = 0, None, 0
    model.train()
    try:
        for epoch in range(args.epochs):
            for batch, (x, y) in enumerate(train_loader):
                group = optimizer.param_groups[0]
                loss = train_step(x, y, group["lr"], group["momentum"])
                scheduler.step()
                window = loss if window is None else window + loss
                window_steps += 1
                step += 1
                mean = None
                if window_steps == LOG_EVERY or step == total_steps or batch == len(train_loader) - 1:
                    mean = window.item() / window_steps  # the one read back, every LOG_EVERY steps
                    window, window_steps = None, 0
                    loss_steps.append(step)
                    losses.append(mean)
                    if math.isnan(mean):
                        progress.write(f"Training stopped: NaN loss at step {step}")
                        return (loss_steps, losses), (eval_epochs, accuracies)
                progress.update(step, len(y), mean)
                if step == 3:  # kernel builds and the jit's capture are behind us: time from here
                    progress.restart_clock()
                if step == total_steps:
                    break
            accuracy = evaluate(count, test_loader, model)
            eval_epochs.append(epoch + 1)
            accuracies.append(accuracy)
            progress.write(f"epoch {epoch + 1}: train loss {losses[-1]:.4f}, test accuracy {accuracy:.2f}%, "
                           f"{progress.rate():.1f} images/s")
            if step == total_steps:
                break
    except KeyboardInterrupt:
        progress.write(f"Interrupted at step {step}; evaluating the model as it is")
        eval_epochs.append(step / len(train_loader))
        accuracies.append(evaluate(count, test_loader, model))
    finally:
        progress.close()
    return (loss_steps, losses), (eval_epochs, accuracies)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--no-download", action="store_true", help="never try to download CIFAR-10")
    parser.add_argument("--synthetic", action="store_true", help="generated CIFAR-shaped data (no download)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (synthetic: generate N; default 10,000)")
    parser.add_argument("--test-size", type=int, default=None, help="evaluate on N test images (synthetic: 2,000)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many training steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--blocks", type=int, default=3, help="basic blocks per stage: 3 is ResNet-20")
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    parser.add_argument("--schedule", choices=("onecycle", "cosine"), default="onecycle")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader threads preparing batches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="cifar10_curves.png", help="PNG of the loss/accuracy curves")
    parser.add_argument("--no-jit", action="store_true", help="run every training step eagerly")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "max_steps", "blocks", "width", "train_size", "test_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")

    print(f"device: {clownpiece.backend.device()}", flush=True)
    if args.synthetic:
        data = synthetic_cifar(args.train_size or 10000, args.test_size or 2000, seed=args.seed)
    else:
        data = load_cifar10(args.data_dir, download=not args.no_download)
    train_x, train_y, test_x, test_y, source = data
    train_x, train_y = train_x[:args.train_size], train_y[:args.train_size]
    test_x, test_y = test_x[:args.test_size], test_y[:args.test_size]
    if len(train_x) < args.batch_size:
        parser.error(f"--batch-size {args.batch_size} is larger than the {len(train_x)} training images")
    print(f"data: {source}: {len(train_x)} train / {len(test_x)} test images", flush=True)

    clownpiece.manual_seed(args.seed)
    model = ResNet(args.blocks, args.width)
    print(f"model: ResNet-{6 * args.blocks + 2}, width {args.width}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; jit {'off' if args.no_jit else 'on'}",
          flush=True)
    # drop_last: every step has the same shapes, so the jit captures one program
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True,
                              drop_last=True, num_workers=args.num_workers, seed=args.seed)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=500)
    total_steps = args.epochs * len(train_loader)
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    (loss_steps, losses), (eval_epochs, accuracies) = train(args, model, train_loader, test_loader, total_steps)

    accuracy = accuracies[-1] if accuracies else evaluate(make_counter(model, T.Normalize(MEAN, STD)),
                                                          test_loader, model)
    if plot_curves(args.plot, [("train loss", [("train", loss_steps, losses)]),
                               ("test accuracy % per epoch", [("test", eval_epochs, accuracies)])]):
        print(f"curves written to {args.plot}")
    print(f"test accuracy: {accuracy:.2f}%")


if __name__ == "__main__":
    main()
