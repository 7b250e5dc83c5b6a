"""End-to-end: the seed notebook's model (its classes, unchanged, live in tools/train_mnist.py) trains on
synthetic MNIST-shaped batches with the notebook's manual SGD update, and a small CNN trains with Conv2d +
MaxPool2d + Flatten + Linear. Both must show a decreasing loss."""
import os
import sys

import numpy as np
from conftest import pool_bytes_in_use

import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.autograd import no_grad
from clownpiece.nn import CrossEntropyLoss, Sequential
from clownpiece.ops.random import manual_seed

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from train_mnist import seed_model as make_notebook_model  # noqa: E402  (28x28 input, 4x4 patches, 10 classes)

img_dim, num_classes = 28, 10


def synthetic_mnist(rng, n_batches, batch_size=20):
    """Class c lights up a class-specific block of pixels, plus noise; labels are float tensors."""
    templates = np.zeros((num_classes, img_dim, img_dim), np.float32)
    for c in range(num_classes):
        r, q = divmod(c, 4)
        templates[c, 2 + 7 * r:8 + 7 * r, 1 + 7 * q:7 + 7 * q] = 2.5
    batches = []
    for _ in range(n_batches):
        labels = rng.integers(0, num_classes, batch_size)
        images = templates[labels] + rng.normal(0, 0.3, (batch_size, img_dim, img_dim)).astype(np.float32)
        batches.append((images.reshape(batch_size, -1), labels.astype(np.float32)))
    return batches


def to_CT_tensor(array, requires_grad=False):
    return Tensor(array.tolist(), requires_grad=requires_grad)


def notebook_sgd_step(model, lr, grad_clip=1.0):
    with no_grad():
        for param in model.parameters():
            if param.grad is not None:
                grad = param.grad.clamp(-grad_clip, grad_clip)  # Gradient clipping for stability
                param.copy_(param - grad * lr)
    for param in model.parameters():
        if param.grad is not None:
            param.grad = None


def test_notebook_model_repr():
    text = repr(make_notebook_model())
    assert text.startswith("Sequential(\n  (0): ImageEmbedding(\n    (kernel): Linear(in_features=16, "
                           "out_features=4, bias=True)\n  )\n  (1): ReLU()\n  (2): TransformerBlock(\n")
    assert "    (attention): MultiheadAttention(\n" in text
    assert "      (q_proj): Linear(in_features=4, out_features=4, bias=True)\n" in text
    assert "    (mlp): Sequential(\n      (0): Linear(in_features=4, out_features=8, bias=True)\n" in text
    assert "  (4): ClampAndReduce()\n  (5): Linear(in_features=49, out_features=10, bias=True)\n)" in text


def test_notebook_model_trains():
    manual_seed(0)
    rng = np.random.default_rng(0)
    model = make_notebook_model()
    print(model)
    loss_fn = CrossEntropyLoss()
    data = synthetic_mnist(rng, 4)
    model.train()
    epoch_losses = []
    for epoch in range(6):
        total = 0.0
        for images, labels in data:
            X, y = to_CT_tensor(images), to_CT_tensor(labels, requires_grad=False)
            logits = model(X)
            assert logits.shape == [20, 10]
            loss = loss_fn(logits, y)
            total += loss.item()
            loss.backward()
            notebook_sgd_step(model, lr=5e-2)
        epoch_losses.append(total / len(data))
    print("epoch losses", epoch_losses)
    assert all(np.isfinite(epoch_losses))
    assert epoch_losses[-1] < epoch_losses[0] - 0.05
    model.eval()
    with no_grad():
        logits = model(to_CT_tensor(data[0][0]))
    assert logits.grad_fn is None and np.argmax(np.array(logits.tolist()), axis=1).shape == (20,)


def test_small_cnn_trains():
    manual_seed(1)
    rng = np.random.default_rng(1)
    model = Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    loss_fn = CrossEntropyLoss()
    labels = rng.integers(0, 3, 24)
    images = rng.normal(0, 0.5, (24, 1, 8, 8))
    for i, c in enumerate(labels):  # class c: a bright horizontal bar in row band c
        images[i, 0, 1 + 2 * c:3 + 2 * c, 1:7] += 2.0
    X, y = Tensor(images), Tensor(labels.astype(np.float64))
    losses = []
    for _ in range(8):
        loss = loss_fn(model(X), y)
        losses.append(loss.item())
        loss.backward()
        notebook_sgd_step(model, lr=0.1)
    print("cnn losses", losses)
    assert losses[-1] < 0.8 * losses[0]
    assert all(b < a + 1e-3 for a, b in zip(losses[:4], losses[1:5]))  # steadily down at first


def test_training_step_reads_nothing_back_and_keeps_memory_flat():
    """Issue 6: a seed training step on device data transfers nothing either way, with a steady launch
    count and a flat pool."""
    from clownpiece import backend
    rng = np.random.default_rng(3)
    model, loss_fn = make_notebook_model(), CrossEntropyLoss()
    images, labels = synthetic_mnist(rng, 1)[0]
    x, y = Tensor(images), Tensor(labels)

    def step():
        loss = loss_fn(model(x), y)
        loss.backward()
        notebook_sgd_step(model, lr=0.05)
        return loss

    for _ in range(3):
        step()
    backend.synchronize()
    backend.reset_stats()
    in_use = pool_bytes_in_use()
    step()
    first = backend.stats()
    for _ in range(5):
        step()
    s = backend.stats()
    assert s["d2h_count"] == 0 and s["h2d_count"] == 0
    assert s["launches"] == 6 * first["launches"]
    assert pool_bytes_in_use() == in_use
