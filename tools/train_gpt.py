#!/usr/bin/env python
"""Train a character-level GPT with clownpiece on whatever OpenCL device is selected, then sample from it.

    python tools/train_gpt.py                         # on this repository's own source files, 500 steps
    python tools/train_gpt.py --max-steps 2000 --n-layer 6 --n-embd 192
    python tools/train_gpt.py --text some_file.txt    # any UTF-8 text
    python tools/train_gpt.py --no-jit                # every step eagerly (default: clownpiece.jit replays it)

The model is a small GPT-2-style decoder: token and position embeddings, --n-layer pre-norm blocks
(LayerNorm, causal self-attention through nn.functional.scaled_dot_product_attention(is_causal=True),
LayerNorm, a 4x MLP with GPT-2's tanh-approximated GELU, both residual), a final LayerNorm and a linear
head over the characters.
Training: random --block-size windows of the text (the last 10% held out for validation), AdamW (weight
decay on matrices only) with a linear warmup and cosine decay to 10% of --lr, clip_grad_norm_ at 1.0.
At the end it prints --sample-chars characters sampled on the device (Gumbel-max: argmax of logits /
temperature plus Gumbel noise, an exact draw from the softmax), then, last, `val loss: N.NNNN (N.NN bits
per character)`."""
import argparse
import glob
import math
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout

from example_utils import Progress, plot_curves  # noqa: E402  (tools/, the script's folder)

import clownpiece  # noqa: E402
from clownpiece import nn  # noqa: E402
from clownpiece.autograd import no_grad  # noqa: E402
from clownpiece.nn import functional as F  # noqa: E402
from clownpiece.utils.optim import AdamW, lr_scheduler  # noqa: E402

SOURCE_PATTERNS = ("clownpiece/**/*.py", "cl_kernels/*.cl", "cl_kernels/*.h", "tools/*.py", "tests/*.py",
                   "docs/*.md", "README.md")
LOG_EVERY = 10


# ---- data -------------------------------------------------------------------------------------------------

def repository_text(root=ROOT):
    """This checkout's source files, concatenated in a fixed order (one file after another)."""
    paths = sorted({p for pattern in SOURCE_PATTERNS for p in glob.glob(os.path.join(root, pattern), recursive=True)})
    if not paths:
        raise SystemExit(f"no source files found under {root} (patterns {', '.join(SOURCE_PATTERNS)})")
    parts = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
    return "\n".join(parts), f"{len(paths)} source files of {root}"


class CharData:
    """The text as character ids, split 90/10 into train and validation; windows drawn at random."""

    def __init__(self, text, block_size, seed=0):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        ids = np.array([self.index[c] for c in text], dtype=np.int64)
        cut = int(0.9 * len(ids))
        self.train, self.val = ids[:cut], ids[cut:]
        if len(self.val) <= block_size:
            raise SystemExit(f"the text ({len(ids)} characters) is too short for --block-size {block_size}: its "
                             f"last 10% must hold more than one window")
        self.block_size = block_size
        self.rng = np.random.default_rng(seed)

    @property
    def vocab_size(self):
        return len(self.chars)

    def batch(self, split, batch_size):
        """(x, y) float tensors [B, T] of ids, y shifted one character ahead of x."""
        ids = self.train if split == "train" else self.val
        starts = self.rng.integers(0, len(ids) - self.block_size - 1, size=batch_size)
        rows = starts[:, None] + np.arange(self.block_size + 1)
        window = ids[rows].astype(np.float32)
        return clownpiece.Tensor(window[:, :-1]), clownpiece.Tensor(window[:, 1:])

    def encode(self, text):
        return [self.index[c] for c in text if c in self.index]

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)


# ---- model ------------------------------------------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(n_embd), CausalSelfAttention(n_embd, n_head, dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(approximate="tanh"),  # GPT-2's GELU
                                 nn.Linear(4 * n_embd, n_embd), nn.Dropout(dropout))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0):
        super().__init__()
        self.block_size = block_size
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size)
        for name, p in self.named_parameters():  # GPT-2's initialisation
            if name.endswith("weight") and p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias") and "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.tok(ids) + self.pos(clownpiece.arange(t))
        return self.head(self.ln_f(self.blocks(x)))


def draw(logits, temperature=1.0):
    """One id per row of logits [N, V], drawn from softmax(logits / temperature) on the device: the argmax of
    logits / temperature + Gumbel noise (-log(-log(u)), u uniform) is distributed exactly so. [N, 1] ids."""
    u = clownpiece.rand(*logits.shape).clamp(1e-12, 1.0)  # rand is [0, 1): the clamp keeps log(u) finite
    return (logits / temperature - (-u.log()).log()).argmax(-1, keepdim=True)


def sample(model, prompt_ids, n, temperature=0.8):
    """n ids drawn one after another on the device, each from softmax(logits / temperature) by Gumbel-max;
    the context is the last block_size ids. Read back once, at the end."""
    model.eval()
    context = clownpiece.Tensor(np.asarray([prompt_ids], np.float32))
    drawn = []
    with no_grad():
        for _ in range(n):
            logits = model(context[:, -model.block_size:])[:, -1, :]
            token = draw(logits, temperature)
            drawn.append(token)
            context = clownpiece.cat([context, token], dim=1)
    model.train()
    return [int(i) for i in clownpiece.cat(drawn, dim=1).numpy()[0]]


# ---- training ---------------------------------------------------------------------------------------------

def make_optimizer(model, lr, weight_decay):
    """AdamW with weight decay on the 2-D weights (matmuls, embeddings) only, as GPT-2 trains."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                 lr=lr, betas=(0.9, 0.95))


def warmup_cosine(warmup, total, floor=0.1):
    """The multiplier of the learning rate at a step: linear warmup, then cosine decay to `floor`."""
    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def make_train_step(model, optimizer, grad_clip):
    loss_fn = nn.CrossEntropyLoss()

    def train_step(x, y, lr):
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return loss.detach()
    return train_step


def make_eval_loss(model):
    loss_fn = nn.CrossEntropyLoss()

    def eval_loss(x, y):
        logits = model(x)
        return loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return eval_loss


def estimate_loss(eval_loss, data, model, batch_size, batches):
    """Mean validation loss over `batches` random windows, summed on the device and read once."""
    model.eval()
    total = None
    with no_grad():
        for _ in range(batches):
            loss = eval_loss(*data.batch("val", batch_size))
            total = loss if total is None else total + loss
    model.train()
    return total.item() / batches


def train(args, model, data):
    """Returns the curves, (steps, train losses) every LOG_EVERY steps and (steps, val losses), and the
    (jitted) validation loss function."""
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    scheduler = lr_scheduler.LambdaLR(optimizer, warmup_cosine(args.warmup, args.max_steps))
    train_step, eval_loss = make_train_step(model, optimizer, args.grad_clip), make_eval_loss(model)
    if not args.no_jit:
        train_step, eval_loss = clownpiece.jit(train_step), clownpiece.jit(eval_loss)
    progress = Progress(args.max_steps, "tokens")
    tokens = args.batch_size * args.block_size
    train_curve, val_curve = ([], []), ([], [])
    window, window_steps = None, 0
    model.train()
    try:
        for step in range(1, args.max_steps + 1):
            loss = train_step(*data.batch("train", args.batch_size), optimizer.param_groups[0]["lr"])
            scheduler.step()
            window = loss if window is None else window + loss
            window_steps += 1
            mean = None
            evaluate_now = step % args.eval_every == 0 or step == args.max_steps
            if window_steps == LOG_EVERY or evaluate_now:
                mean = window.item() / window_steps  # the one read back, every LOG_EVERY steps
                window, window_steps = None, 0
                train_curve[0].append(step)
                train_curve[1].append(mean)
                if math.isnan(mean):
                    progress.write(f"Training stopped: NaN loss at step {step}")
                    break
            progress.update(step, tokens, mean)
            if step == 3:  # kernel builds and the jit's capture are behind us: time from here
                progress.restart_clock()
            if evaluate_now:
                val = estimate_loss(eval_loss, data, model, args.batch_size, args.eval_batches)
                val_curve[0].append(step)
                val_curve[1].append(val)
                progress.write(f"step {step}: train loss {train_curve[1][-1]:.4f}, val loss {val:.4f}, "
                               f"{progress.rate():.0f} tokens/s")
    except KeyboardInterrupt:
        progress.write("Interrupted; sampling from the model as it is")
    finally:
        progress.close()
    return train_curve, val_curve, eval_loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", help="train on this UTF-8 file instead of the repository's source files")
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=64, help="context length in characters")
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=50, help="steps of linear warmup")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--sample-chars", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--prompt", default="def ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="gpt_curves.png", help="PNG of the loss curves")
    parser.add_argument("--no-jit", action="store_true", help="run every training step eagerly")
    args = parser.parse_args(argv)
    for name in ("max_steps", "batch_size", "block_size", "n_layer", "n_head", "n_embd", "eval_every",
                 "eval_batches", "temperature", "grad_clip"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup < 0 or args.sample_chars < 0 or not 0 <= args.dropout < 1:
        parser.error("--warmup and --sample-chars must be non-negative, --dropout in [0, 1)")

    print(f"device: {clownpiece.backend.device()}", flush=True)
    if args.text:
        with open(args.text, encoding="utf-8") as f:
            text, source = f.read(), args.text
    else:
        text, source = repository_text()
    data = CharData(text, args.block_size, seed=args.seed)
    print(f"data: {source}: {len(text):,} characters, {data.vocab_size} distinct; "
          f"{len(data.train):,} train / {len(data.val):,} val", flush=True)
    clownpiece.manual_seed(args.seed)
    model = GPT(data.vocab_size, args.block_size, args.n_layer, args.n_head, args.n_embd, args.dropout)
    print(f"model: GPT, {args.n_layer} layers, {args.n_head} heads, d {args.n_embd}, context {args.block_size}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; jit {'off' if args.no_jit else 'on'}",
          flush=True)
    train_curve, val_curve, eval_loss = train(args, model, data)

    if plot_curves(args.plot, [("loss per character (nats)", [("train", *train_curve), ("val", *val_curve)])]):
        print(f"curves written to {args.plot}")
    prompt = data.encode(args.prompt) or [0]
    if args.sample_chars:
        print(f"--- sample (temperature {args.temperature}) ---")
        print(data.decode(prompt) + data.decode(sample(model, prompt, args.sample_chars, args.temperature)))
        print("---")
    trained_to = train_curve[0][-1] if train_curve[0] else None
    val = val_curve[1][-1] if val_curve[0] and val_curve[0][-1] == trained_to else \
        estimate_loss(eval_loss, data, model, args.batch_size, args.eval_batches)
    print(f"val loss: {val:.4f} ({val / math.log(2):.2f} bits per character)")


if __name__ == "__main__":
    main()
