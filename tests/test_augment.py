"""Batch augmentation on the device (clownpiece.utils.data.transforms over cl_kernels/augment.cl): random crop
with padding (every padding mode, pad_if_needed), horizontal flip and normalize against numpy references given
the same random choices, the choices' distribution and seeding, launch counts, layouts and errors."""
import numpy as np
import pytest
from conftest import LAYOUTS, make

import clownpiece as cp
from clownpiece import backend
from clownpiece.utils.data import transforms as T

rng = np.random.default_rng(11)
NP_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def images(shape, dtype=np.float32, layout="contiguous"):
    arr = rng.standard_normal(shape)
    t, ref = make(arr, dtype, layout)
    return t, ref


def np_pad(img, left, top, right, bottom, mode, fill):
    widths = [(0, 0)] * (img.ndim - 2) + [(top, bottom), (left, right)]
    if mode == "constant":
        return np.pad(img, widths, mode="constant", constant_values=fill)
    return np.pad(img, widths, mode=NP_MODES[mode])


def np_random_crop(batch, params, size, padding, pad_if_needed, fill, mode):
    """torchvision's RandomCrop.forward, image by image, with the crop positions of `params`."""
    out = []
    pads = padding * 4 if len(padding) == 1 else padding * 2 if len(padding) == 2 else padding
    for img, (top, left, flip) in zip(batch, params):
        img = np_pad(img, *pads, mode, fill)
        h, w = img.shape[-2:]
        if pad_if_needed and w < size[1]:
            img = np_pad(img, size[1] - w, 0, size[1] - w, 0, mode, fill)
        if pad_if_needed and h < size[0]:
            img = np_pad(img, 0, size[0] - h, 0, size[0] - h, mode, fill)
        assert flip == 0
        out.append(img[..., int(top):int(top) + size[0], int(left):int(left) + size[1]])
    return np.stack(out)


CROPS = [  # (image h, w), size, padding, pad_if_needed, mode, fill
    ((8, 8), 8, [2], False, "constant", 0.0),
    ((8, 8), (6, 7), [1, 2], False, "reflect", 0.0),
    ((7, 9), 5, [1, 2, 3, 0], False, "edge", 0.0),
    ((5, 6), (5, 6), [6, 5, 6, 5], False, "symmetric", 0.0),  # symmetric may pad by the whole size
    ((6, 6), 6, [0], False, "constant", 2.5),  # same size: the only crop is (0, 0)
    ((4, 5), 9, [1], True, "reflect", 0.0),  # pad_if_needed pads the padded image again
    ((3, 3), (7, 4), [0], True, "constant", -1.0),
    ((3, 4), (8, 8), [2], True, "symmetric", 0.0),
]


@pytest.mark.parametrize("hw, size, padding, pad_if_needed, mode, fill", CROPS)
def test_random_crop_matches_numpy_given_the_same_choices(hw, size, padding, pad_if_needed, mode, fill):
    x, ref = images((5, 2) + hw)
    crop = T.RandomCrop(size, padding=padding if padding != [0] else None, pad_if_needed=pad_if_needed,
                        fill=fill, padding_mode=mode)
    params = crop.draw(x)
    out = crop(x, params)
    table = params.numpy()
    size2 = (size, size) if isinstance(size, int) else size
    expected = np_random_crop(ref, table, size2, padding, pad_if_needed, fill, mode)
    assert out.shape == list(expected.shape) and out.dtype == x.dtype and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), expected.astype(np.float32))  # data movement: exact


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_crop_and_flip_of_strided_batches_and_float64(layout, dtype):
    x, ref = images((4, 3, 6, 5), dtype, layout)
    crop = T.RandomCrop((4, 5), padding=(1, 2), padding_mode="reflect")
    params = crop.draw(x)
    expected = np_random_crop(ref, params.numpy(), (4, 5), [1, 2], False, 0, "reflect")
    np.testing.assert_array_equal(crop(x, params).numpy(), expected.astype(dtype))
    flip = T.RandomHorizontalFlip(0.5)
    fparams = flip.draw(x)
    flips = fparams.numpy()[:, 2]
    expected = np.where(flips[:, None, None, None] == 1, ref[..., ::-1], ref)
    got = flip(x, fparams)
    assert got.dtype == dtype and got.is_contiguous()
    np.testing.assert_array_equal(got.numpy(), expected.astype(dtype))


def test_nhwc_batches_as_a_permuted_view():
    """A uint8-style HWC batch viewed as NCHW (a permute, no copy) is read in place."""
    hwc = rng.integers(0, 256, (3, 5, 5, 3)).astype(np.float32)
    x = cp.Tensor(hwc).permute(0, 3, 1, 2)
    crop = T.RandomCrop(5, padding=2)
    params = crop.draw(x)
    expected = np_random_crop(hwc.transpose(0, 3, 1, 2), params.numpy(), (5, 5), [2], False, 0, "constant")
    np.testing.assert_array_equal(crop(x, params).numpy(), expected)


def test_single_images_and_grayscale():
    img, ref = images((3, 6, 6))
    crop = T.RandomCrop(4, padding=1)
    params = crop.draw(img)
    assert params.shape == [1, 3]
    out = crop(img, params)
    assert out.shape == [3, 4, 4]
    np.testing.assert_array_equal(out.numpy(), np_random_crop(ref[None], params.numpy(), (4, 4), [1], False, 0,
                                                              "constant")[0].astype(np.float32))
    gray, gref = images((6, 7))
    flipped = T.RandomHorizontalFlip(1.0)(gray)
    assert flipped.shape == [6, 7]
    np.testing.assert_array_equal(flipped.numpy(), gref[:, ::-1].astype(np.float32))


def test_normalize_matches_torchvisions_formula():
    for dtype in (np.float32, np.float64):
        x, ref = images((4, 3, 5, 6), dtype, "transposed")
        mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
        out = T.Normalize(mean, std)(x)
        # in x's dtype, as torchvision's tensor.sub(mean).div(std)
        m, s = np.asarray(mean, dtype)[:, None, None], np.asarray(std, dtype)[:, None, None]
        expected = (ref.astype(dtype) - m) / s
        assert out.dtype == dtype and out.shape == [4, 3, 5, 6]
        np.testing.assert_array_equal(out.numpy(), expected)
    one, ref = images((3, 4, 4))
    np.testing.assert_array_equal(T.Normalize(0.5, [2.0])(one).numpy(),
                                  ((ref.astype(np.float32) - np.float32(0.5)) / np.float32(2.0)))


def test_choices_follow_manual_seed_and_change_between_calls():
    x, _ = images((16, 1, 6, 6))
    aug = T.Compose([T.RandomCrop(4, padding=2), T.RandomHorizontalFlip()])
    cp.manual_seed(5)
    a, b = aug(x).numpy(), aug(x).numpy()
    cp.manual_seed(5)
    np.testing.assert_array_equal(aug(x).numpy(), a)
    assert not np.array_equal(a, b)
    crop = T.RandomCrop(4, padding=2)
    cp.manual_seed(8)
    drawn = crop(x).numpy()
    cp.manual_seed(8)
    np.testing.assert_array_equal(crop(x, crop.draw(x)).numpy(), drawn)  # __call__ draws what draw() draws


def test_choices_cover_their_ranges_uniformly():
    x, _ = images((4000, 1, 4, 4))
    cp.manual_seed(1)
    table = T.RandomCrop(4, padding=(3, 1)).draw(x).numpy()  # 7 positions across, 3 down
    assert set(np.unique(table[:, 1])) == set(range(7)) and set(np.unique(table[:, 0])) == set(range(3))
    assert (table[:, 2] == 0).all()
    counts = np.bincount(table[:, 1].astype(int), minlength=7)
    assert np.abs(counts - 4000 / 7).max() < 5 * np.sqrt(4000 / 7)
    for p in (0.0, 0.3, 1.0):
        flips = T.RandomHorizontalFlip(p).draw(x).numpy()
        assert (flips[:, :2] == 0).all() and np.isin(flips[:, 2], (0, 1)).all()
        assert abs(flips[:, 2].mean() - p) < 4 * np.sqrt(p * (1 - p) / 4000) + 1e-9


def test_each_transform_is_one_or_two_launches_whatever_the_batch():
    for n in (1, 64):
        x, _ = images((n, 3, 8, 8))
        for transform, launches in ((T.RandomCrop(8, padding=4, padding_mode="reflect"), 2),
                                    (T.RandomHorizontalFlip(), 2), (T.Normalize([0.5] * 3, [0.2] * 3), 1)):
            transform(x)  # uploads Normalize's constants once
            cp.synchronize()
            backend.reset_stats()
            transform(x)
            stats = backend.stats()
            assert stats["launches"] == launches and stats["h2d_count"] == 0 and stats["d2h_count"] == 0


def test_an_empty_batch():
    x = cp.Tensor(np.zeros((0, 3, 8, 8), np.float32))
    assert T.RandomCrop(6, padding=1)(x).shape == [0, 3, 6, 6]
    assert T.Normalize(0.0, 1.0)(x).shape == [0, 3, 8, 8]


def test_bad_arguments_and_inputs_raise_clearly():
    x, _ = images((2, 3, 8, 8))
    cases = [
        (lambda: T.RandomCrop((1, 2, 3)), ValueError, "only two dimensions"),
        (lambda: T.RandomCrop(0), ValueError, "positive ints"),
        (lambda: T.RandomCrop(4, padding=(1, 2, 3)), ValueError, "not a 3 element tuple"),
        (lambda: T.RandomCrop(4, padding="2"), TypeError, "inappropriate padding"),
        (lambda: T.RandomCrop(4, padding=-1), ValueError, "non-negative"),
        (lambda: T.RandomCrop(4, padding_mode="wrap"), ValueError, "constant, edge, reflect or symmetric"),
        (lambda: T.RandomCrop(4, fill=(1, 2)), TypeError, "fill must be a number"),
        (lambda: T.RandomCrop(9)(x), ValueError, r"required crop size \(9, 9\) is larger than input image size "
                                                 r"\(8, 8\)"),
        (lambda: T.RandomCrop(8, padding=8, padding_mode="reflect")(x), ValueError, "reflect padding of 8 on the "
                                                                                    "left must be less than"),
        (lambda: T.RandomCrop(8, padding=9, padding_mode="symmetric")(x), ValueError, "must be at most"),
        (lambda: T.RandomHorizontalFlip(1.5), ValueError, r"probability in \[0, 1\]"),
        (lambda: T.Normalize([0.5, 0.5], [1.0, 1.0])(x), ValueError, "mean has 2 values for an image of 3 channels"),
        (lambda: T.Normalize(0.5, [1.0, 0.0, 1.0])(x), ValueError, "std evaluated to zero"),
        (lambda: T.Normalize([], 1.0), ValueError, "mean is empty"),
        (lambda: T.Normalize(0.5, 1.0, inplace=True), NotImplementedError, "inplace"),
        (lambda: T.Normalize(0.5, 1.0)(cp.Tensor(np.ones((4, 4)))), ValueError, r"expected images \[N, C, H, W\] or "
                                                                              r"\[C, H, W\], got shape \[4, 4\]"),
        (lambda: T.RandomCrop(2)(cp.Tensor(np.ones((1, 1, 1, 4, 4)))), ValueError, "got shape"),
        (lambda: T.RandomCrop(2)(np.ones((1, 1, 4, 4))), TypeError, "expected a clownpiece tensor"),
        (lambda: T.RandomHorizontalFlip()(cp.Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)), RuntimeError,
         "requires grad"),
        (lambda: T.RandomCrop(4)(x, cp.Tensor(np.zeros((3, 3), np.float32))), ValueError, r"shape \[2, 3\]"),
        (lambda: T.RandomCrop(4)(x, cp.Tensor(np.array([[0, 5, 0], [0, 0, 0]], np.float32))), ValueError,
         r"left in \[0, 5\)"),
        (lambda: T.RandomHorizontalFlip()(x, cp.Tensor(np.array([[0, 0, 0.5], [0, 0, 1]], np.float32))), ValueError,
         "flip 0 or 1"),
    ]
    for fn, error, message in cases:
        with pytest.raises(error, match=message):
            fn()


def test_replays_under_jit_draw_fresh_choices_like_eager():
    aug = T.Compose([T.RandomCrop(6, padding=2, padding_mode="reflect"), T.RandomHorizontalFlip(),
                     T.Normalize([0.5], [0.25])])
    x, _ = images((8, 1, 6, 6))
    cp.manual_seed(4)
    eager = [aug(x).numpy() for _ in range(6)]
    cp.manual_seed(4)
    fn = cp.jit(aug)
    jitted = [fn(x).numpy() for _ in range(6)]
    for a, b in zip(eager, jitted):
        np.testing.assert_array_equal(a, b)
    assert fn.captured == 1 and not np.array_equal(jitted[4], jitted[5])
