"""float16 in the layers whose kernels compute in float32 (clownpiece/ops/half.py): convolution, padding,
pooling, batch/group/RMS/layer norm, resampling, attention, embedding, dropout, the activations, image
augmentation. A float16 input gives a float16 result and float16 gradients, each the float32 result
rounded once; a float16 input with a float32 weight raises PyTorch's dtype mismatch where PyTorch does (conv,
attention) and computes where PyTorch's mixed-type layers do (the norms); Module.half() models train.

References: the numpy float64 formulas of the layers' own test modules, evaluated at the float16 values of
the inputs (the same values the tensors hold), and their float64 central finite differences for gradients.

Tolerance (assert_rounded_once): |got - ref| <= 2^-11 |ref| + 2^-14 max|ref|. 2^-11 is exactly the largest
relative error of one rounding to float16 (11 significant bits, round to nearest); the 2^-14 (6e-5) of the
result's magnitude leaves room for float32 arithmetic (sums of up to a few hundred terms, libm's exp/erf:
~1e-6 of the magnitude of the terms) and float16's subnormal step near zero. A result rounded twice (a
float16 intermediate, e.g. a product rounded before its bias is added) is off by up to 1.5 half-units and
fails the 2^-11 term, so these tests see the "rounded once" promise, not only "about right"."""
import collections
import math

import numpy as np
import pytest
from conftest import LAYOUTS, assert_close, make, no_launch, to_np
from test_nn_activations import REFS as ACTIVATIONS, _away_from_kinks
from test_nn_attention import np_sdpa
from test_nn_conv import np_conv2d, np_conv_transpose2d, np_pad
from test_nn_norm import np_bn, np_gn
from test_nn_pool import np_adaptive, np_avg_pool, np_max_pool
from test_nn_upsample import np_interp

import clownpiece as cp
import clownpiece.nn as nn
from clownpiece import Tensor
from clownpiece.backend.dtypes import DTypeMismatchError
from clownpiece.nn import functional as F
from clownpiece.utils.data import transforms as T

rng = np.random.default_rng(16)
f64, H = np.float64, np.dtype(np.float16)
ONE_ROUNDING, ARITHMETIC = 2.0 ** -11, 2.0 ** -14


def halves(shape, scale=1.0, distinct=False):
    """float16 values (as float64) of the given shape: normal, or distinct (a shuffled grid: max pooling
    needs no ties for its finite differences)."""
    if distinct:
        n = int(np.prod(shape))
        return (rng.permutation(n).reshape(shape) - n / 2) / 16.0  # multiples of 1/16: exact in float16
    return (rng.standard_normal(shape) * scale).astype(H).astype(f64)


def half_leaf(arr):
    return Tensor(arr, dtype=H, requires_grad=True)


def assert_rounded_once(t, ref, slack=0.0):
    """t is float16 and holds the float64 `ref` rounded once to float16 (module docstring), give or take
    `slack` more."""
    assert t.dtype is cp.float16, f"dtype {t.dtype}, expected float16"
    got, ref = to_np(t), np.asarray(ref, f64)
    assert got.shape == ref.shape, f"shape {got.shape} != reference {ref.shape}"
    bound = ONE_ROUNDING * np.abs(ref) + ARITHMETIC * np.abs(ref).max(initial=0.0) + slack
    err = np.abs(got - ref)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert (err <= bound).all(), (f"off by {err[worst]:.3g} at {worst} (value {ref[worst]:.6g}, bound "
                                  f"{bound[worst]:.3g}): more than one float16 rounding")


def finite_differences(fn, arrays, upstream, h=1e-6):
    """d sum(fn(*arrays) * upstream) / d arrays[i], central differences in float64."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            moved = [b.copy() for b in arrays]
            moved[i][idx] = a[idx] + h
            plus = (fn(*moved) * upstream).sum()
            moved[i][idx] = a[idx] - h
            g[idx] = (plus - (fn(*moved) * upstream).sum()) / (2 * h)
        grads.append(g)
    return grads


EPS32 = float(np.finfo(np.float32).eps)  # rms_norm's default eps for float16 (PyTorch's: the float32 one)
MASK = halves((5, 5))  # an additive attention mask (float16 values)
IDS = np.array([[3, 0, 4], [1, 1, 2]])

# fn: the clownpiece call on float16 tensors; ref: its numpy float64 formula; shapes: of the inputs; data:
# "normal" values, "distinct" ones (no ties for max pooling's finite differences) or "kinks" (activations:
# away from their kinks); from_result: the backward takes the float16 result, as PyTorch's tanh_backward and
# sigmoid_backward do (its rounding, up to 2^-11 of it, moves the gradient by up to 2^-10 of the upstream one)
Case = collections.namedtuple("Case", "fn ref shapes data from_result", defaults=("normal", False))
LAYERS = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1),
               lambda x, w, b: np_conv2d(x, w, b, pads=(1, 1, 1, 1)), [(2, 3, 5, 5), (4, 3, 3, 3), (4,)]),
    "conv2d_grouped_strided": (
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
        lambda x, w, b: np_conv2d(x, w, b, (2, 1), (1, 1, 0, 0), (1, 2), 2), [(1, 4, 6, 7), (6, 2, 3, 2), (6,)]),
    "conv1d": (lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1),
               lambda x, w, b: np_conv2d(x[:, :, None], w[:, :, None], b, (1, 2), (0, 0, 1, 1))[:, :, 0],
               [(2, 3, 9), (4, 3, 3), (4,)]),
    "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1,
                                                            groups=2),
                         lambda x, w, b: np_conv_transpose2d(x, w, b, 2, 1, 1, 2), [(1, 4, 3, 3), (4, 3, 3, 3), (6,)]),
    "pad_constant": (lambda x: F.pad(x, (2, 1, -1, 2), value=0.5), lambda x: np_pad(x, (2, 1, -1, 2), "constant", 0.5),
                     [(2, 3, 4, 5)]),
    "pad_reflect": (lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect"), lambda x: np_pad(x, (2, 1, 1, 2), "reflect"),
                    [(2, 3, 4, 5)]),
    "pad_replicate": (lambda x: F.pad(x, (1, 2, 3, 0), mode="replicate"),
                      lambda x: np_pad(x, (1, 2, 3, 0), "replicate"), [(2, 3, 4, 5)]),
    "pad_circular": (lambda x: F.pad(x, (2, 3, 1, 1), mode="circular"), lambda x: np_pad(x, (2, 3, 1, 1), "circular"),
                     [(2, 3, 4, 5)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: np_max_pool(x, 3, 2, 1)[0], [(2, 3, 7, 6)],
                   "distinct"),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                   lambda x: np_avg_pool(x, 3, 2, 1, True, False), [(2, 3, 7, 6)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 4)), lambda x: np_adaptive(x, 3, 4, np.mean),
                            [(2, 3, 7, 6)]),
    "adaptive_max_pool2d": (lambda x: F.adaptive_max_pool2d(x, (3, 4)), lambda x: np_adaptive(x, 3, 4, np.max),
                            [(2, 3, 7, 6)], "distinct"),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                   lambda x, w, b: np_bn(x, x.mean((0, 2, 3)), x.var((0, 2, 3)), w, b), [(4, 3, 2, 3), (3,), (3,)]),
    "group_norm": (lambda x, w, b: F.group_norm(x, 2, w, b), lambda x, w, b: np_gn(x, 2, w, b),
                   [(2, 4, 3, 3), (4,), (4,)]),
    "rms_norm": (lambda x, w: F.rms_norm(x, [6], w),
                 lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS32) * w, [(3, 4, 6), (6,)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, [6], w, b),
                   lambda x, w, b: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * w + b,
                   [(3, 4, 6), (6,), (6,)]),
    "interpolate_nearest": (lambda x: F.interpolate(x, size=(5, 7)), lambda x: np_interp(x, (5, 7), "nearest"),
                            [(2, 3, 4, 5)]),
    "interpolate_bilinear": (lambda x: F.interpolate(x, size=(7, 9), mode="bilinear"),
                             lambda x: np_interp(x, (7, 9), "bilinear"), [(2, 3, 4, 5)]),
    "interpolate_bilinear_corners": (lambda x: F.interpolate(x, size=(7, 3), mode="bilinear", align_corners=True),
                                     lambda x: np_interp(x, (7, 3), "bilinear", True), [(2, 3, 4, 5)]),
    "attention_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                         lambda q, k, v: np_sdpa(q, k, v, causal=True), [(2, 5, 4), (2, 5, 4), (2, 5, 6)]),
    "attention_mask": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, Tensor(MASK, dtype=H)),
                       lambda q, k, v: np_sdpa(q, k, v, MASK), [(2, 5, 4), (2, 5, 4), (2, 5, 6)]),
    "embedding": (lambda w: F.embedding(Tensor(IDS, dtype=cp.int64), w), lambda w: w[IDS], [(5, 4)]),
}
LAYERS = {name: Case(*case) for name, case in LAYERS.items()}
LAYERS.update({f"activation_{name}": Case(lambda x, fn=fn: fn(x), lambda x, ref=ref: ref(x), [(4, 6)], "kinks")
               for name, (fn, ref) in ACTIVATIONS.items()})
LAYERS.update({
    "activation_relu": Case(F.relu, lambda x: np.maximum(x, 0), [(4, 6)], "kinks"),
    "activation_leaky_relu": Case(lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x), [(4, 6)],
                                  "kinks"),
    "activation_gelu": Case(F.gelu, lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))), [(4, 6)]),
    "activation_sigmoid": Case(F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), [(4, 6)], from_result=True),
    "activation_tanh": Case(F.tanh, np.tanh, [(4, 6)], from_result=True),
})


def _inputs(case):
    if case.data == "kinks":
        return [_away_from_kinks(case.shapes[0]).astype(H).astype(f64)]
    return [halves(s, distinct=case.data == "distinct" and i == 0) for i, s in enumerate(case.shapes)]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_in_float16_is_the_float32_result_rounded_once(name):
    case = LAYERS[name]
    arrays = _inputs(case)
    assert_rounded_once(case.fn(*[Tensor(a, dtype=H) for a in arrays]), case.ref(*arrays))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_gradients_in_float16(name):
    """Each float16 input's gradient is float16: the float64 finite-difference gradient at the float16 values,
    for a float16 upstream gradient, rounded once."""
    case = LAYERS[name]
    arrays = _inputs(case)
    leaves = [half_leaf(a) for a in arrays]
    y = case.fn(*leaves)
    upstream = halves(tuple(y.shape))
    y.backward(Tensor(upstream, dtype=H))
    slack = 2.0 ** -10 * np.abs(upstream).max() if case.from_result else 0.0
    for leaf, want in zip(leaves, finite_differences(case.ref, arrays, upstream)):
        assert leaf.grad.dtype is cp.float16
        assert_rounded_once(leaf.grad, want, slack)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["conv2d", "max_pool2d", "batch_norm", "interpolate_bilinear", "attention_causal"])
def test_strided_float16_inputs(name, layout):
    """Non-contiguous float16 views (transposed, sliced) convert like contiguous ones."""
    case = LAYERS[name]
    arrays = _inputs(case)
    x, _ = make(arrays[0], H, layout)
    assert_rounded_once(case.fn(x, *[Tensor(a, dtype=H) for a in arrays[1:]]), case.ref(*arrays))


def test_empty_float16_batches():
    x = Tensor(np.zeros((0, 3, 5, 5)), dtype=H)
    for y, shape in ((F.conv2d(x, Tensor(halves((4, 3, 3, 3)), dtype=H)), [0, 4, 3, 3]),
                     (F.max_pool2d(x, 2), [0, 3, 2, 2]), (F.group_norm(x, 3), [0, 3, 5, 5]),
                     (F.interpolate(x, size=(2, 3)), [0, 3, 2, 3])):
        assert y.dtype is cp.float16 and y.shape == shape


def test_dropout_variants_in_float16():
    x = half_leaf(halves((3, 4, 5, 6)) + 4.0)  # no zeros among the inputs
    for fn, channels in ((lambda t: F.dropout(t, 0.25), False), (lambda t: F.dropout2d(t, 0.25), True),
                         (lambda t: F.dropout1d(t.reshape(3, 4, 30), 0.25).reshape(3, 4, 5, 6), True)):
        x.grad = None
        y = fn(x)
        kept = to_np(y) != 0
        if channels:  # whole channels kept or dropped
            per_channel = kept.reshape(3, 4, 30)
            assert (per_channel == per_channel[..., :1]).all()
        assert 0.3 < kept.mean() < 1.0
        scale = float(np.float16(1 / 0.75))  # the mask holds 1/(1-p) in x's dtype, as PyTorch's CPU dropout
        assert_rounded_once(y, np.where(kept, to_np(x) * scale, 0.0))
        y.backward(Tensor(np.ones(y.shape), dtype=H))
        assert_rounded_once(x.grad, np.where(kept, scale, 0.0))


# ---- mixed dtypes ------------------------------------------------------------------------------------------
def test_float16_input_with_a_float32_weight_raises_like_pytorch():
    """conv and attention: PyTorch's RuntimeError (a TypeError too, as clownpiece's other dtype errors),
    naming both dtypes, before anything runs."""
    x = Tensor(halves((1, 3, 4, 4)), dtype=H)
    w16, w32 = Tensor(halves((2, 3, 3, 3)), dtype=H), Tensor(halves((2, 3, 3, 3)))
    q, k32 = Tensor(halves((2, 3, 4)), dtype=H), Tensor(halves((2, 3, 4)))
    conv32 = nn.Conv2d(3, 2, 3)
    calls = [lambda: F.conv2d(x, w32), lambda: F.conv2d(Tensor(halves((1, 3, 4, 4))), w16),
             lambda: F.conv2d(x, w16, Tensor([0.0, 1.0])), lambda: F.conv_transpose2d(x, Tensor(halves((3, 2, 3, 3)))),
             lambda: conv32(x), lambda: F.conv1d(x[:, :, 0], w32[:, :, 0]),
             lambda: F.scaled_dot_product_attention(q, k32, q)]
    for call in calls:
        with no_launch(), pytest.raises(DTypeMismatchError, match="expected .* same dtype") as e:
            call()
        assert isinstance(e.value, RuntimeError) and isinstance(e.value, TypeError)
        assert "float16" in str(e.value) and "float32" in str(e.value)


def test_norms_take_float32_parameters_with_a_float16_input_like_pytorch():
    """PyTorch's mixed-type normalisation: a float32 module on a float16 input gives float16, computed in float32;
    its float32 running statistics and parameter gradients stay float32."""
    x = halves((4, 3, 2, 3))
    m = nn.BatchNorm2d(3, momentum=0.5)
    xt = half_leaf(x)
    y = m(xt)
    assert_rounded_once(y, np_bn(x, x.mean((0, 2, 3)), x.var((0, 2, 3))))
    assert m.running_mean.dtype is cp.float32
    assert_close(m.running_mean, 0.5 * x.mean((0, 2, 3)), rtol=1e-6, atol=1e-7)
    assert_close(m.running_var, 0.5 + 0.5 * x.var((0, 2, 3), ddof=1), rtol=1e-6, atol=1e-7)
    y.sum().backward()
    assert xt.grad.dtype is cp.float16 and m.weight.grad.dtype is cp.float32
    for module, ref in ((nn.GroupNorm(3, 3), lambda a: np_gn(a, 3)), (nn.RMSNorm([3]), None),
                        (nn.LayerNorm(3), None)):
        out = module(Tensor(x, dtype=H))
        want = ref(x) if ref else (x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS32) if isinstance(
            module, nn.RMSNorm) else (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5))
        assert_rounded_once(out, want)


# ---- modules -----------------------------------------------------------------------------------------------
def test_batch_norm_half_module_keeps_half_running_statistics():
    """module.half() makes the running statistics float16 too (PyTorch); they move towards the batch statistics
    in float32 and are rounded once; eval mode normalises with them; num_batches_tracked stays int64."""
    m = nn.BatchNorm2d(3, momentum=0.25).half()
    assert m.running_mean.dtype is cp.float16 and m.weight.dtype is cp.float16
    assert m.num_batches_tracked.dtype is cp.int64
    for _ in range(2):
        held = to_np(m.running_mean), to_np(m.running_var)  # each update starts from the float16 values held
        x = halves((4, 3, 2, 3), scale=2.0)
        m(Tensor(x, dtype=H))
        assert_rounded_once(m.running_mean, 0.75 * held[0] + 0.25 * x.mean((0, 2, 3)))
        assert_rounded_once(m.running_var, 0.75 * held[1] + 0.25 * x.var((0, 2, 3), ddof=1))
    assert m.num_batches_tracked.item() == 2
    rm, rv = to_np(m.running_mean), to_np(m.running_var)
    m.eval()
    x = halves((2, 3, 2, 2))
    assert_rounded_once(m(Tensor(x, dtype=H)), np_bn(x, rm, rv, np.ones(3), np.zeros(3)))
    assert to_np(m.running_mean).tolist() == rm.tolist()  # eval mode leaves them alone


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def bars(n, seed):
    """Images [n, 1, 8, 8] whose class c is a bright horizontal bar in row band c."""
    r = np.random.default_rng(seed)
    labels = r.integers(0, 3, n)
    images = r.normal(0, 0.5, (n, 1, 8, 8))
    for i, c in enumerate(labels):
        images[i, 0, 1 + 2 * c:3 + 2 * c, 1:7] += 2.0
    return images, labels


@pytest.mark.parametrize("convert", ["half", "to"])
def test_small_cnn_trains_in_float16(convert):
    cp.manual_seed(3)
    model = small_cnn()
    model = model.half() if convert == "half" else model.to(cp.float16)
    assert all(t.dtype is cp.float16 for t in list(model.parameters()) + [model[1].running_mean, model[1].running_var])
    opt = cp.utils.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images, labels = bars(24, 1)
    x, y = Tensor(images, dtype=H), Tensor(labels, dtype=cp.int64)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        assert loss.dtype is cp.float16
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype is cp.float16 and p.grad.dtype is cp.float16 for p in model.parameters())
    assert losses[-1] < 0.7 * losses[0], losses
    model.eval()
    assert model(x).dtype is cp.float16


def test_float16_step_matches_the_float32_step_within_half_precision():
    """One forward and backward of the same model (the float16 weights) in float16 and in float32: the float16
    loss and gradients are the float32 ones to float16 accuracy (several roundings deep). A smooth model: ReLU
    and max pooling would send a gradient elsewhere wherever float16 rounding flips a near tie."""
    cp.manual_seed(4)

    def smooth_cnn():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.SiLU(), nn.AvgPool2d(2),
                             nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    m16, m32 = smooth_cnn().half(), smooth_cnn()
    m32.load_state_dict(m16.state_dict())
    images, labels = bars(8, 2)
    images = images.astype(H).astype(f64)
    losses, grads = [], []
    for m, dt in ((m32, np.float32), (m16, H)):
        loss = nn.CrossEntropyLoss()(m(Tensor(images, dtype=dt)), Tensor(labels, dtype=cp.int64))
        loss.backward()
        losses.append(loss.item())
        grads.append([to_np(p.grad) for p in m.parameters()])
    assert abs(losses[0] - losses[1]) < 5e-3 * abs(losses[0])
    largest = max(np.abs(g).max() for g in grads[0])  # the conv bias's is ~0 (batch norm follows): noise
    for g32, g16 in zip(*grads):
        np.testing.assert_allclose(g16, g32, rtol=3e-2, atol=3e-3 * largest)


def test_tensor_pool_methods_take_float16_without_recording():
    x = halves((2, 3, 4, 4), distinct=True)
    t = Tensor(x, dtype=H)
    assert_rounded_once(t.max_pool2d(2), np_max_pool(x, 2)[0])
    assert_rounded_once(t.avg_pool2d(2), np_avg_pool(x, 2))
    y, idx = F.max_pool2d(t, 2, return_indices=True)
    assert idx.dtype is cp.float32 and to_np(idx).tolist() == np_max_pool(x, 2)[1].tolist()  # exact positions


def test_augmentations_of_float16_images():
    x = halves((2, 3, 5, 6))
    t = Tensor(x, dtype=H)
    out = T.RandomCrop(4, padding=1, fill=0.25)(t, params=Tensor([[0, 2, 0], [1, 0, 0]], dtype=np.float32))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=0.25)
    assert_rounded_once(out, np.stack([padded[0, :, 0:4, 2:6], padded[1, :, 1:5, 0:4]]))
    flipped = T.RandomHorizontalFlip(1.0)(t)
    assert_rounded_once(flipped, x[..., ::-1])
    mean, std = [0.5, -0.25, 1.0], [2.0, 0.5, 3.0]
    m16, s16 = np.array(mean, H).astype(f64), np.array(std, H).astype(f64)  # PyTorch: mean and std in x's dtype
    assert_rounded_once(T.Normalize(mean, std)(t), (x - m16[:, None, None]) / s16[:, None, None])


def test_jitted_float16_training_steps_replay_the_eager_ones_bit_for_bit():
    """Under clownpiece.jit the casts, the float32 layers and batch norm's write-back of its float16 running
    statistics replay as recorded."""
    def run(use_jit):
        cp.manual_seed(3)
        model = small_cnn().half()
        opt = cp.utils.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            loss = nn.CrossEntropyLoss()(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        fn = cp.jit(step) if use_jit else step
        images, labels = bars(8, 5)
        x, y = Tensor(images, dtype=H), Tensor(labels, dtype=cp.int64)
        losses = [fn(x, y).item() for _ in range(3)]
        return losses, [to_np(t) for t in list(model.parameters()) + list(model.buffers())]
    eager, jitted = run(False), run(True)
    assert eager[0] == jitted[0]
    for a, b in zip(eager[1], jitted[1]):
        np.testing.assert_array_equal(a, b)
