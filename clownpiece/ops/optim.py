"""Fused optimizer updates on TensorBase (kernels in cl_kernels/optim.cl).

Each method updates `self` (a contiguous parameter) and its state buffers in place with exactly one
launch, bypassing autograd: optimizers call them under no_grad with hyper-parameters as Python numbers,
so a step never reads device memory back."""
from .. import backend
from .._layout import ShapeError
from ..backend import dtypes


class OptimOps:
    __slots__ = ()

    def _check_update(self, op, grad, *state):
        if self.dtype not in dtypes.FLOATING:
            raise TypeError(f"{op}: the parameter must be a floating tensor, got {self.dtype.name}")
        if not self._contig:
            raise RuntimeError(f"{op}: the parameter (shape {self.shape}, strides {list(self._strides)}) "
                               f"must be contiguous; optimizers update parameters in place")
        if not isinstance(grad, OptimOps):
            raise TypeError(f"{op}: grad must be a tensor, got {type(grad).__name__}")
        for t, name in ((grad, "grad"),) + tuple((s, "state buffer") for s in state):
            if t._shape != self._shape:
                raise ShapeError(f"{op}: {name} shape {t.shape} does not match the parameter's {self.shape}")
            if t.dtype != self.dtype:
                raise TypeError(f"{op}: {name} dtype {t.dtype} does not match the parameter's {self.dtype}")
        for s in state:
            if not s._contig or s._offset:
                raise RuntimeError(f"{op}: state buffers must be contiguous tensors of their own")
        return grad.contiguous()

    def _launch_step(self, name, grad, state, *hyper):
        """Run optim.cl's `name` over the parameter: (p, g, *state buffers, n, *hyper)."""
        for t in (self, *state):
            t._storage._version += 1
        backend.launch(backend.kernel("optim", name, self.dtype), self._numel, self, grad, *state, self._numel,
                       *hyper)
        return self

    def _sgd_update_(self, grad, lr, damping=0.0, weight_decay=0.0):
        """p -= lr * (1 - damping) * (grad + weight_decay * p)."""
        grad = self._check_update("sgd", grad)
        return self._launch_step("sgd_step", grad, (), lr, 1.0 - damping, weight_decay)

    def _sgd_momentum_update_(self, grad, buf, first, lr, momentum, damping=0.0, weight_decay=0.0,
                              nesterov=False):
        """buf = momentum * buf + (1 - damping) * d (buf read as zero when `first`), d = grad + wd * p;
        p -= lr * (nesterov ? d + momentum * buf : buf)."""
        grad = self._check_update("sgd", grad, buf)
        return self._launch_step("sgd_momentum_step", grad, (buf,), lr, momentum, 1.0 - damping, weight_decay,
                                 int(bool(nesterov)), int(bool(first)))

    def _adam_update_(self, grad, exp_avg, exp_avg_sq, state, lr, betas, eps, weight_decay=0.0,
                      decoupled=False, max_exp_avg_sq=None, maximize=False):
        """One Adam step: advances `state["step"]` (a Python int, 0 before the first step); AdamW when
        `decoupled`; AMSGrad when `max_exp_avg_sq` is given. State buffers are read as zero on step 1."""
        amsgrad = max_exp_avg_sq is not None
        vmax = max_exp_avg_sq if amsgrad else exp_avg_sq  # not touched by the kernel without amsgrad
        grad = self._check_update("adam", grad, exp_avg, exp_avg_sq, vmax)
        beta1, beta2 = betas
        bc1, bc2, first = backend.replayable(_adam_step_count, state, beta1, beta2)
        coupled, decay = (0.0, 1.0 - lr * weight_decay) if decoupled else (weight_decay, 1.0)
        return self._launch_step("adam_step", grad, (exp_avg, exp_avg_sq, vmax), lr, beta1, beta2, eps, bc1, bc2,
                                 coupled, decay, -1.0 if maximize else 1.0, int(amsgrad), first)

    def _rmsprop_update_(self, grad, state, square_avg, grad_avg, momentum_buffer, fresh, lr, alpha, eps,
                         weight_decay, momentum, maximize=False):
        """One RMSprop step (advances `state["step"]`); centered when `grad_avg` is given, with momentum
        when `momentum_buffer` is. `fresh`: bits 1/2/4 mark square_avg/grad_avg/momentum_buffer as new
        (read as zero)."""
        ga = square_avg if grad_avg is None else grad_avg
        buf = square_avg if momentum_buffer is None else momentum_buffer
        grad = self._check_update("rmsprop", grad, square_avg, ga, buf)
        backend.replayable(_count_step, state)
        return self._launch_step("rmsprop_step", grad, (square_avg, ga, buf), lr, alpha, eps, weight_decay,
                                 momentum if momentum_buffer is not None else 0.0, int(grad_avg is not None),
                                 -1.0 if maximize else 1.0, int(fresh))

    def _adagrad_update_(self, grad, state, lr, lr_decay, weight_decay, eps, initial_accumulator_value,
                         maximize=False):
        """One Adagrad step (advances `state["step"]`) at the rate lr / (1 + (step - 1) * lr_decay);
        state["sum"] starts at initial_accumulator_value on the first step."""
        state_sum = state["sum"]
        grad = self._check_update("adagrad", grad, state_sum)
        decay, first = backend.replayable(_adagrad_step_count, state, lr_decay)
        return self._launch_step("adagrad_step", grad, (state_sum,), lr / decay, weight_decay, eps,
                                 -1.0 if maximize else 1.0, initial_accumulator_value, first)


def _count_step(state):
    """Advance a step count that no kernel argument depends on (RMSprop's); replayable like the others."""
    state["step"] += 1
    return ()


def _adagrad_step_count(state, lr_decay):
    """Advance the step count; return the decay divisor 1 + (step - 1) * lr_decay (PyTorch divides lr by
    it) and the first-step flag."""
    state["step"] += 1
    step = state["step"]
    return 1 + (step - 1) * lr_decay, int(step == 1)


def _adam_step_count(state, beta1, beta2):
    """Advance the step count and return its bias corrections (on the host, in double precision) and the
    first-step flag. Host state that changes every step, so it goes through backend.replayable: a
    clownpiece.jit replay counts and corrects here too."""
    state["step"] += 1
    step = state["step"]
    return 1.0 - beta1 ** step, 1.0 - beta2 ** step, int(step == 1)
