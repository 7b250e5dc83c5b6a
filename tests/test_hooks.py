"""Tensor.register_post_accumulate_grad_hook (PyTorch's): when it runs, what it sees, and its errors."""
import numpy as np
import pytest
from conftest import assert_close

import clownpiece as cp


def test_hook_runs_once_per_backward_after_the_grad_is_accumulated():
    w = cp.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append((t is w, t.grad.numpy().copy())))
    x = cp.Tensor([4.0, 5.0, 6.0])
    ((w * x).sum() + (w * w).sum()).backward()  # w reaches the loss twice: one accumulation, one call
    assert len(seen) == 1 and seen[0][0]
    assert_close(cp.Tensor(seen[0][1]), [4 + 2, 5 + 4, 6 + 6])
    (w * x).sum().backward()  # the second pass sees the sum of both passes
    assert len(seen) == 2
    assert_close(cp.Tensor(seen[1][1]), [4 + 2 + 4, 5 + 4 + 5, 6 + 6 + 6])
    handle.remove()
    handle.remove()  # idempotent
    (w * x).sum().backward()
    assert len(seen) == 2


def test_hooks_run_in_registration_order_and_may_replace_the_grad():
    w = cp.Tensor([[1.0, 2.0]], requires_grad=True)
    order = []
    w.register_post_accumulate_grad_hook(lambda t: order.append("first"))

    def halve(t):
        order.append("second")
        t.grad = t.grad * 0.5

    w.register_post_accumulate_grad_hook(halve)
    (w * 4.0).sum().backward()
    assert order == ["first", "second"]
    assert_close(w.grad, np.array([[2.0, 2.0]]))


def test_a_leaf_not_in_the_graph_gets_no_call():
    a = cp.Tensor([1.0], requires_grad=True)
    b = cp.Tensor([1.0], requires_grad=True)
    calls = []
    b.register_post_accumulate_grad_hook(calls.append)
    (a * 2.0).sum().backward()
    assert calls == []


def test_hook_registration_errors():
    w = cp.Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="hook must be callable"):
        w.register_post_accumulate_grad_hook(3)
    with pytest.raises(RuntimeError, match="does not require grad"):
        cp.Tensor([1.0]).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="only leaf tensors"):
        (w * 2.0).register_post_accumulate_grad_hook(lambda t: None)
