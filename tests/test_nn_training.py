"""End-to-end: the seed notebook's model (classes copied verbatim from shared/seed/mnist_notebook.txt)
trains on synthetic MNIST-shaped batches with the notebook's manual SGD update, and a small CNN trains
with Conv2d + MaxPool2d + Flatten + Linear. Both must show a decreasing loss."""
import numpy as np

from clownpiece import Tensor
from clownpiece.autograd import no_grad
from clownpiece.nn import Module, Linear, ReLU, Sequential, CrossEntropyLoss, MultiheadAttention, LayerNorm
from clownpiece.ops.random import manual_seed
import clownpiece.nn as nn

# ---- copied verbatim from the notebook ----------------------------------------------------------------
img_dim = 28
input_features = img_dim ** 2  # 28x28 images flattened

num_classes = 10

hidden_dim = 4
kernel_size = 4

num_patches = (img_dim // kernel_size) ** 2

class ImageEmbedding(Module):
    # split image into (kernel_size x kernel_size) non-interleaving patches and project them to hidden_states
    # if you are familiar with LLM but not ViT, consider: 
    #   patches in CV <=> tokens in NLP 
    #     num_patches <=> sequence_length
    
    def __init__(self, img_dim, hidden_dim, kernel_size = 2):
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
        
        # Reshape to (batch_size, H, W) to properly extract patches
        images = x.reshape([batch_size, img_dim, img_dim])
        
        # Create patches
        # (batch_size, num_patches_h, patch_h, num_patches_w, patch_w)
        patches = images.reshape([batch_size, img_dim // patch_h, patch_h, img_dim // patch_w, patch_w])
        # Transpose to (batch_size, num_patches_h, num_patches_w, patch_h, patch_w)
        patches = patches.transpose(2, 3)
        # Reshape to (batch_size, num_patches, patch_size)
        patches = patches.reshape([batch_size, self.num_patches, self.patch_size])
        
        # Project patches to embeddings
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

        ## hidden dim is too small to use LayerNorm
        # self.layer_norm1 = LayerNorm(hidden_dim, affine=False)
        # self.layer_norm2 = LayerNorm(hidden_dim, affine=False)

    # (batch_size, num_patches, hidden_dim) -> (batch_size, num_patches, hidden_dim)
    def forward(self, x):
        x = x + self.attention(x)
        # x = self.layer_norm1(x)
        x = x + self.mlp(x)
        # x = self.layer_norm2(x)
        return x
    
class ClampAndReduce(Module): 
    # reduce hidden_dims by mean pooling
    def __init__(self, bound = 2.0):
        super().__init__()
        self.bound = bound
        
    # (batch_size, num_patches, hidden_dim) -> (batch_size, num_patches)
    def forward(self, x): 
        x = x.clamp(-self.bound, self.bound) 
        return x.mean(dim=-1) 

# ---- end of the notebook's code --------------------------------------------------------------------------


def make_notebook_model():
    return Sequential(
        ImageEmbedding(img_dim=img_dim, hidden_dim=hidden_dim, kernel_size=kernel_size),
        ReLU(),
        TransformerBlock(hidden_dim, num_heads=1, ffn_dim=2*hidden_dim),
        ReLU(),
        ClampAndReduce(),
        Linear(num_patches, num_classes)
    )


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
