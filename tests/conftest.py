"""Shared test helpers: both dtypes, numpy float64 references, and non-contiguous layouts of the same data."""
import contextlib
import gc
import os

import numpy as np
import pytest

import clownpiece as cp

DTYPES = [np.float32, np.float64]
TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5), np.dtype(np.float64): dict(rtol=1e-11, atol=1e-11),
       # float16 keeps 11 significant bits: one rounding is a relative error of up to 2^-11
       np.dtype(np.float16): dict(rtol=2e-3, atol=1e-3),
       **{np.dtype(t): dict(rtol=0, atol=0) for t in (np.bool_, np.int32, np.int64)}}  # exact


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


def to_np(t):
    """A tensor's values as float64 numpy (tests only)."""
    return np.asarray(t.numpy(), dtype=np.float64)


def assert_close(t, ref, dtype=None, rtol=None, atol=None):
    """Compare a tensor with a numpy float64 reference, tolerance by dtype."""
    dtype = np.dtype(dtype or t.dtype)
    tol = dict(TOL[dtype])
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    ref = np.asarray(ref, dtype=np.float64)
    got = to_np(t)
    assert list(got.shape) == list(ref.shape), f"shape {list(got.shape)} != reference {list(ref.shape)}"
    np.testing.assert_allclose(got, ref, equal_nan=True, **tol)


def pool_bytes_in_use():
    """Device bytes held by live tensors, once cyclic garbage (e.g. from earlier tests) has been collected:
    the collector may otherwise free old buffers in the middle of a measurement."""
    gc.collect()
    return cp.backend.stats()["pool_bytes_in_use"]


@contextlib.contextmanager
def no_launch():
    """Fails unless the block launches no kernel: views, and errors that must raise before any launch
    (nest pytest.raises inside it)."""
    before = cp.backend.stats()["launches"]
    yield
    assert cp.backend.stats()["launches"] == before, "the block launched a kernel"


def make(arr, dtype=np.float32, layout="contiguous", cls=cp.Tensor):
    """A tensor holding `arr`'s values laid out as asked, with the numpy array it equals.

    layout: 'contiguous'; 'transposed' (built from arr.T, then transposed back: same values, permuted
    strides); 'sliced' (a strided window of a bigger buffer); 'expanded' is done by callers via
    broadcast_to since it changes the shape."""
    arr = np.asarray(arr, dtype=np.float64)
    if layout == "contiguous" or arr.ndim == 0:  # a 0-dim tensor has one layout
        return cls(arr.astype(dtype), dtype=dtype), arr
    if layout == "transposed":
        if arr.ndim < 2:
            return make(arr, dtype, "sliced", cls)
        base = cls(np.ascontiguousarray(np.swapaxes(arr, -1, -2)).astype(dtype), dtype=dtype)
        return base.transpose(-1, -2), arr
    if layout == "sliced":
        big = np.zeros(tuple(s + 2 for s in arr.shape), dtype=np.float64) - 7.0
        window = tuple(slice(1, 1 + s) for s in arr.shape)
        big[window] = arr
        base = cls(big.astype(dtype), dtype=dtype)
        t = base
        for d, s in enumerate(arr.shape):
            t = t.narrow(d, 1, s)
        return t, arr
    raise ValueError(layout)


LAYOUTS = ["contiguous", "transposed", "sliced"]


# ---- the strict pass (tools/oclgrind_check.sh runs `-m strict` under oclgrind) ------------------------------
# oclgrind runs kernels about a thousand times slower than PoCL, so the pass takes these modules whole except
# the tests listed as too large for it, plus a few tests of other modules; tools/kernel_coverage.py then
# checks that every kernel ran. A new kernel needs a test here (a new small test in a strict module, or an
# entry in STRICT_TESTS).
STRICT_MODULES = {"test_elementwise_kernels", "test_elementwise", "test_index", "test_reduce", "test_factories",
                  "test_random", "test_optim", "test_fusion", "test_matmul", "test_nn_functional", "test_nn_layers",
                  "test_nn_module", "test_autograd", "test_inplace", "test_clip_grad", "test_optimizers",
                  "test_devices", "test_inplace_autograd", "test_nn_activations", "test_nn_attention", "test_nn_conv",
                  "test_nn_norm", "test_nn_pool", "test_nn_small_layers", "test_nn_transformer", "test_nn_upsample",
                  "test_nn_module_api", "test_data_splits", "test_array_interop",
                  "test_sort", "test_scan", "test_remap", "test_linalg", "test_nn_loss", "test_dtypes",
                  "test_elementwise_ops",
                  "test_indexing", "test_nn_half"}
STRICT_TESTS = {"test_nn_training": {"test_small_cnn_trains"},
                "test_augment": {"test_random_crop_matches_numpy_given_the_same_choices",
                                 "test_crop_and_flip_of_strided_batches_and_float64",
                                 "test_normalize_matches_torchvisions_formula"},
                # merged launches on small tensors (the seed model's merge test takes over 10 minutes there)
                "test_jit": {"test_independent_launches_of_kernels_with_helper_functions_replay",
                             "test_random_ops_draw_fresh_numbers_like_eager"}}
TOO_LARGE_FOR_STRICT = {
    "test_autograd": {"test_unary_gradcheck", "test_binary_gradcheck_with_broadcasting", "test_reduction_gradcheck",
                      "test_shape_op_gradcheck", "test_matmul_gradcheck", "test_matmul_noncontiguous_and_methods",
                      "test_mlp_of_raw_ops_gradcheck", "test_attention_gradcheck",
                      "test_training_loop_holds_flat_memory"},
    "test_sort": {"test_million_elements", "test_small_k_long_rows", "test_topk_large_k_matches_numpy",
                  "test_topk_large_k_every_dtype", "test_topk_large_k_layouts_dims_and_gradient",
                  "test_topk_large_k_rows_settling_at_different_passes"},
    "test_dtypes": {"test_float16_training_step", "test_binary_ops_promote_like_pytorch_for_every_dtype_pair_and_form",
                    "test_float16_rounding_of_every_midpoint_matches_numpy"},
    "test_nn_half": {"test_small_cnn_trains_in_float16",
                     "test_float16_step_matches_the_float32_step_within_half_precision",
                     "test_jitted_float16_training_steps_replay_the_eager_ones_bit_for_bit"},
    "test_elementwise_ops": {"test_nonzero_of_a_long_tensor"},
    "test_scan": {"test_long_lines", "test_float32_cumsum_accuracy", "test_long_line_gradients"},
    "test_fusion": {"test_training_steps_hold_flat_memory_and_short_reader_lists"},
    "test_inplace_autograd": {"test_inplace_gradcheck"},
    "test_nn_attention": {"test_gradients"},
    "test_nn_conv": {"test_conv2d_gradients", "test_conv_padding_modes", "test_conv2d_same_and_valid_padding",
                     "test_conv_transpose2d", "test_pad"},
    "test_nn_pool": {"test_adaptive_pools", "test_avg_pool2d", "test_max_pool2d_gradient"},
    "test_nn_transformer": {"test_gradients_of_both_call_forms", "test_encoder_layer_seq_first_gradients_and_dropout"},
    "test_matmul": {"test_odd_sizes", "test_packed_path_size", "test_linear_strided_weight_and_expanded_bias",
                    "test_random_shapes_match_numpy"},
    "test_nn_functional": {"test_conv2d_grad"},
    "test_nn_layers": {"test_multihead_attention_grad_and_errors"},
    "test_nn_module": {"test_init_statistics"},
    "test_random": {"test_normal_statistics", "test_uniform_statistics", "test_bernoulli_rate",
                    "test_dropout_mask_values_and_keep_rate", "test_randperm", "test_multinomial_with_replacement",
                    "test_multinomial_without_replacement", "test_bernoulli"},
    "test_reduce": {"test_large_reductions_use_two_stages", "test_large_reduction_with_two_outputs",
                    "test_two_stage_over_strided_layouts", "test_column_reductions_far_apart"},
}


# Of a parametrized test, the pass takes at most this many cases, spread over its parameter list (kernels
# are the same for every case; the coverage check says when a kernel only one case reaches is missed),
# except in the modules whose every case launches a kernel of its own.
MAX_STRICT_CASES = 6
STRICT_ALL_CASES = {"test_elementwise_kernels"}


# tools/oclgrind_check.sh can split the pass over more cores (oclgrind simulates on one): with
# CLOWNPIECE_STRICT_SHARD=k/n, shard k takes every n-th strict test from the k-th, which spreads the slow
# modules evenly over the shards.
_SHARD = os.environ.get("CLOWNPIECE_STRICT_SHARD")


def _strict_shard():
    try:
        k, n = (int(part) for part in _SHARD.split("/"))
        if not 0 <= k < n:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"CLOWNPIECE_STRICT_SHARD must be k/n with 0 <= k < n, got {_SHARD!r}") from None
    return k, n


def pytest_collection_modifyitems(items):
    cases = {}
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        name = item.originalname or item.name
        if ((module in STRICT_MODULES and name not in TOO_LARGE_FOR_STRICT.get(module, ()))
                or name in STRICT_TESTS.get(module, ())):
            cases.setdefault((module, name), []).append(item)
    strict = []
    for (module, _), group in cases.items():
        step = 1 if module in STRICT_ALL_CASES else -(-len(group) // MAX_STRICT_CASES)
        strict += group[::step]
    if _SHARD:
        k, n = _strict_shard()
        strict = strict[k::n]
    for item in strict:
        item.add_marker(pytest.mark.strict)


# ---- under oclgrind: each test's oclgrind reports fail that test -------------------------------------------
# Under `oclgrind --log FILE`, with CLOWNPIECE_OCLGRIND_LOG=FILE, a test after which the simulator reported an
# invalid access, an uninitialised value, a data race or divergence gets an error naming what it reported.
_OCLGRIND_LOG = os.environ.get("CLOWNPIECE_OCLGRIND_LOG")
_oclgrind_seen = [0]


if _OCLGRIND_LOG:
    import pyopencl as _cl

    backend = cp.backend

    def _upload_the_whole_buffer(storage, host, byte_offset=0, private=False):
        """backend.upload, writing the whole buffer: after a host write of part of a buffer, oclgrind 21.10
        reports kernel-written bytes of that buffer beyond the host write's size as uninitialised when they
        are read (tests/test_dtypes.py's buffers reused by the pool hit it). The rest of the buffer is read
        back first and written again unchanged; the transfer counters count the upload as usual. The write
        blocks, so `private` (whether the caller may change `host` afterwards) does not matter here."""
        if not host.nbytes:
            return
        queue = storage.pool.device.queue
        whole = np.empty(storage.size, np.uint8)
        _cl.enqueue_copy(queue, whole, storage.buf, is_blocking=True)
        whole[byte_offset:byte_offset + host.nbytes] = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
        _cl.enqueue_copy(queue, storage.buf, whole, is_blocking=True)
        backend.counters["h2d_count"] += 1
        backend.counters["h2d_bytes"] += host.nbytes

    backend.upload = backend.runtime.upload = _upload_the_whole_buffer


@pytest.fixture(autouse=bool(_OCLGRIND_LOG))
def _oclgrind_reports():
    yield
    cp.synchronize()
    # oclgrind's race detector works at every launch in proportion to the memory allocated, so the buffers a
    # test leaves in the pool are released (tools/oclgrind_check.sh)
    gc.collect()
    cp.backend.empty_cache()
    size = os.path.getsize(_OCLGRIND_LOG) if os.path.exists(_OCLGRIND_LOG) else 0
    if size > _oclgrind_seen[0]:
        with open(_OCLGRIND_LOG, errors="replace") as f:
            f.seek(_oclgrind_seen[0])
            report = f.read()
        _oclgrind_seen[0] = size
        pytest.fail(f"oclgrind reported errors during this test:\n{report[:4000]}", pytrace=False)
