#!/usr/bin/env python
"""tools/train_gpt.py's recipe in PyTorch, for comparing learning curves (needs torch; not a test).

    python tools/parity_gpt.py --max-steps 300 --n-layer 2 --n-embd 64
    python tools/train_gpt.py  --max-steps 300 --n-layer 2 --n-embd 64 --sample-chars 0

Same text, same character windows (train_gpt.CharData with the same seed draws the same batches), the same
model, initialisation scheme, AdamW groups, warmup + cosine schedule and gradient clipping; it prints the
train loss every 10 steps and the validation loss every --eval-every steps as train_gpt.py does. The
initial weights differ (each library's own generator), so the curves agree statistically, not bit for bit."""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import train_gpt  # noqa: E402  (tools/, the script's folder)
from bench_examples import torch_gpt, torch_gpt_optimizer  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, value in (("max-steps", 500), ("batch-size", 16), ("block-size", 64), ("n-layer", 4), ("n-head", 4),
                        ("n-embd", 128), ("warmup", 50), ("eval-every", 100), ("eval-batches", 8), ("seed", 0)):
        parser.add_argument(f"--{name}", type=int, default=value)
    for name, value in (("lr", 2e-3), ("weight-decay", 0.1), ("grad-clip", 1.0)):
        parser.add_argument(f"--{name}", type=float, default=value)
    parser.add_argument("--text")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    if args.text:
        with open(args.text, encoding="utf-8") as f:
            text = f.read()
    else:
        text, _ = train_gpt.repository_text()
    data = train_gpt.CharData(text, args.block_size, seed=args.seed)
    model = torch_gpt(data.vocab_size, args.block_size, args.n_layer, args.n_head, args.n_embd)
    opt = torch_gpt_optimizer(model, args.lr, args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, train_gpt.warmup_cosine(args.warmup, args.max_steps))
    loss_fn = torch.nn.CrossEntropyLoss()

    def batch(split):  # CharData.batch's draws, as torch tensors
        ids = data.train if split == "train" else data.val
        starts = data.rng.integers(0, len(ids) - args.block_size - 1, size=args.batch_size)
        window = torch.from_numpy(ids[starts[:, None] + np.arange(args.block_size + 1)])
        return window[:, :-1], window[:, 1:]

    def loss_of(x, y):
        return loss_fn(model(x).reshape(-1, data.vocab_size), y.reshape(-1))
    total = 0.0
    for step in range(1, args.max_steps + 1):
        loss = loss_of(*batch("train"))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        sched.step()
        total += loss.item()
        if step % 10 == 0:
            print(f"step {step}/{args.max_steps}  loss {total / 10:.4f}", flush=True)
            total = 0.0
        if step % args.eval_every == 0 or step == args.max_steps:
            model.eval()
            with torch.no_grad():
                val = sum(loss_of(*batch("val")).item() for _ in range(args.eval_batches)) / args.eval_batches
            model.train()
            print(f"step {step}: val loss {val:.4f}", flush=True)


if __name__ == "__main__":
    main()
