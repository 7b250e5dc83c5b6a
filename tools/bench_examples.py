"""bench.py --only examples: one training step of each example script, with the scripts' own models and steps.

  - CIFAR: ResNet-20 (tools/train_cifar10.py: 272k parameters) at batch 32: device augmentation (crop,
    flip, normalise), forward, cross-entropy, backward, SGD with Nesterov momentum and weight decay;
  - GPT: tools/train_gpt.py's default model (4 layers, 4 heads, d 128, context 64, 0.8M parameters) at
    batch 16: forward, cross-entropy over every position, backward, clip_grad_norm_, AdamW.

Each eagerly and replayed by clownpiece.jit, in images/s and tokens/s (median of a few steps); PyTorch's
figures for the same models and optimizers when torch is importable (its CIFAR step without augmentation:
torch has none on tensors; here it is two kernels next to ~60 convolution launches)."""
import math
import statistics
import time

import numpy as np

import clownpiece as cp
from clownpiece import backend

try:
    import torch
except ImportError:
    torch = None

CIFAR_BATCH, GPT_BATCH, GPT_BLOCK, GPT_VOCAB = 32, 16, 64, 100


def _median_step_s(step, repeat):
    """Median seconds of one call of step() (which returns the loss tensor), waiting for the device after
    each; three calls first: kernel builds, and the jit's two recordings."""
    for _ in range(3):
        step()
    backend.synchronize()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        backend.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _torch_median_step_s(step, repeat):
    step()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cifar_steps():
    import train_cifar10 as tc

    from clownpiece.utils.data import transforms as T
    from clownpiece.utils.optim import SGD
    rng = np.random.default_rng(0)
    xa = rng.random((CIFAR_BATCH, 3, 32, 32), dtype=np.float32)
    ya = rng.integers(0, 10, CIFAR_BATCH)
    x, y = cp.Tensor(xa), cp.Tensor(ya.astype(np.float32))
    steps = {}
    for name in ("eager", "jit"):
        cp.manual_seed(0)
        model = tc.ResNet(3, 16)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
        augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.Normalize(tc.MEAN, tc.STD)])
        step = tc.make_train_step(model, cp.nn.CrossEntropyLoss(), opt, augment)
        step = cp.jit(step) if name == "jit" else step
        steps[name] = (lambda s=step: s(x, y, 0.1, 0.9))
    return steps, (xa, ya)


def _gpt_steps():
    import train_gpt as tg
    rng = np.random.default_rng(0)
    xa = rng.integers(0, GPT_VOCAB, (GPT_BATCH, GPT_BLOCK))
    ya = rng.integers(0, GPT_VOCAB, (GPT_BATCH, GPT_BLOCK))
    x, y = cp.Tensor(xa.astype(np.float32)), cp.Tensor(ya.astype(np.float32))
    steps = {}
    for name in ("eager", "jit"):
        cp.manual_seed(0)
        model = tg.GPT(GPT_VOCAB, GPT_BLOCK, 4, 4, 128)
        step = tg.make_train_step(model, tg.make_optimizer(model, 1e-3, 0.1), 1.0)
        step = cp.jit(step) if name == "jit" else step
        steps[name] = (lambda s=step: s(x, y, 1e-3))
    return steps, (xa, ya)


def bench_examples(args, record):
    print(f"example training steps: tools/train_cifar10.py's ResNet-20 at batch {CIFAR_BATCH} (images/s), "
          f"tools/train_gpt.py's GPT at batch {GPT_BATCH} x {GPT_BLOCK} tokens (tokens/s); eager and jit")
    for label, make, units, unit, torch_step in (
            ("cifar resnet20 step", _cifar_steps, CIFAR_BATCH, "img", _torch_cifar_step),
            ("gpt step", _gpt_steps, GPT_BATCH * GPT_BLOCK, "tok", _torch_gpt_step)):
        steps, host = make()
        torch_s = None
        if torch is not None:
            torch_s = _torch_median_step_s(torch_step(*host), repeat=5)
        for name, step in steps.items():
            t = _median_step_s(step, repeat=5)
            backend.synchronize()
            backend.reset_stats()
            step()
            backend.synchronize()
            s = backend.stats()
            row = {"clownpiece_ms": t * 1e3, f"{unit}_per_s": units / t, "launches": s["launches"],
                   "d2h": s["d2h_count"]}
            if torch_s is not None:
                row.update({"torch_ms": torch_s * 1e3, f"torch_{unit}_per_s": units / torch_s,
                            "ratio_to_torch": t / torch_s})
            record("examples", f"{label} {name}", **row)


# ---- the same models in PyTorch (only when torch is importable) -------------------------------------------

def _torch_cifar_step(xa, ya):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, c, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
            self.c2, self.b2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
            self.short = (nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
                          if stride != 1 or cin != c else nn.Identity())

        def forward(self, x):
            return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.short(x))
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for stage, c in enumerate((16, 32, 64)):
        for i in range(3):
            layers.append(Block(cin, c, 2 if stage and not i else 1))
            cin = c
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    loss_fn, x, y = nn.CrossEntropyLoss(), torch.from_numpy(xa), torch.from_numpy(ya)

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def torch_gpt(vocab_size, block_size, n_layer=4, n_head=4, n_embd=128):
    """tools/train_gpt.py's GPT in PyTorch: the same layers, parameter shapes and initialisation."""
    nn, d = torch.nn, n_embd

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, n_head, d // n_head).permute(2, 0, 3, 1, 4)
            y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab_size, d), nn.Embedding(block_size, d)
            self.blocks = nn.Sequential(*[Block() for _ in range(n_layer)])
            self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab_size)
            for name, p in self.named_parameters():
                if name.endswith("weight") and p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                    nn.init.normal_(p, 0.0, std)
                elif name.endswith("bias") and "ln" not in name:
                    nn.init.zeros_(p)

        def forward(self, ids):
            return self.head(self.ln_f(self.blocks(self.tok(ids) + self.pos(torch.arange(ids.shape[1])))))
    return GPT()


def torch_gpt_optimizer(model, lr, weight_decay):
    """train_gpt.make_optimizer in PyTorch."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


def _torch_gpt_step(xa, ya):
    nn = torch.nn
    model = torch_gpt(GPT_VOCAB, GPT_BLOCK)
    opt = torch_gpt_optimizer(model, 1e-3, 0.1)
    loss_fn, x, y = nn.CrossEntropyLoss(), torch.from_numpy(xa), torch.from_numpy(ya)

    def step():
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, GPT_VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    return step

