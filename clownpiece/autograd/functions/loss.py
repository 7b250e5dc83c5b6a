"""Gradients of the fused losses (clownpiece/ops/loss.py, kernels in cl_kernels/loss.cl). Classes: each
forward keeps intermediates of its raw op (log-sum-exps, the 'mean' divisor).

The entry functions are what nn.functional calls, with arguments already checked: tensor inputs positional
(one gradient edge each, None for an absent weight), hyper-parameters as keywords. A class weight is not
differentiated (as in PyTorch)."""
from ...ops import loss as _loss
from ..formula import Op
from ..methods import differentiable


def _reduced(loss, reduction, divisor):
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / divisor if reduction == "mean" else total


def _grad_rows(grad, reduction, divisor):
    """(gradient per position or 0-dim, per_position) for a loss reduced by `reduction`."""
    if reduction == "none":
        return grad, True
    return (grad / divisor if reduction == "mean" else grad), False


@differentiable()
class ClassLoss(Op):
    """cross_entropy (nll=False) and nll_loss (nll=True) with class-index targets; 'mean' divides by the sum
    of the weights of the targets that are not ignore_index (one launch sums the losses and the weights)."""

    @staticmethod
    def forward(ctx, x, target, weight, bcd=None, reduction="mean", ignore_index=-100, label_smoothing=0.0,
                nll=False):
        weight = _loss.operand(weight, x.dtype)
        loss, rows, lse, xc, tc = _loss.class_loss(x, target, weight, ignore_index, label_smoothing, nll, bcd)
        divisor = None
        if reduction == "mean":
            sums = rows.sum(1)
            loss, divisor = sums[0] / sums[1], sums[1]
        elif reduction == "sum":
            loss = loss.sum()
        wsum = weight.sum() if weight is not None and label_smoothing else None
        ctx.save_for_backward(*(v for v in (xc, tc, lse, weight, divisor, wsum) if v is not None))
        ctx.present = (lse is not None, weight is not None, divisor is not None, wsum is not None)
        ctx.args = (bcd, reduction, ignore_index, label_smoothing, nll, x._shape)
        return loss

    @staticmethod
    def backward(ctx, grad):
        saved = iter(ctx.get_saved_tensors())
        xc, tc = next(saved), next(saved)
        lse, weight, divisor, wsum = (next(saved) if p else None for p in ctx.present)
        bcd, reduction, ignore_index, eps, nll, shape = ctx.args
        dx = _loss.class_loss_backward(xc, lse, tc, weight, wsum, grad, reduction == "none", divisor, ignore_index,
                                       eps, nll, bcd)
        return dx.view(shape), None, None


@differentiable()
class ProbCrossEntropy(Op):
    """cross_entropy against class probabilities; 'mean' divides by the number of positions."""

    @staticmethod
    def forward(ctx, x, target, weight, bcd=None, reduction="mean", label_smoothing=0.0):
        weight = _loss.operand(weight, x.dtype)
        loss, saved = _loss.prob_loss(x, target, weight, label_smoothing, bcd)
        ctx.save_for_backward(*saved, *([weight] if weight is not None else []))
        ctx.args = (bcd, reduction, label_smoothing, x._shape, target._shape)
        return _reduced(loss, reduction, bcd[0] * bcd[2])

    @staticmethod
    def backward(ctx, grad):
        lse, qw, xc, tc, *weight = ctx.get_saved_tensors()
        bcd, reduction, eps, shape, tshape = ctx.args
        g, per_position = _grad_rows(grad, reduction, bcd[0] * bcd[2])
        need = ctx.needs_input_grad
        dx, dt = _loss.prob_loss_backward((lse, qw, xc, tc), weight[0] if weight else None, g, per_position,
                                          bool(need) and need[1], eps, bcd)
        return dx.view(shape), None if dt is None else dt.view(tshape), None


@differentiable()
class BinaryCrossEntropy(Op):
    """Elementwise binary cross-entropy on probabilities (unreduced; nn.functional weights and reduces)."""

    @staticmethod
    def forward(ctx, x, target):
        out, xc, tc = _loss.bce(x, target)
        ctx.save_for_backward(xc, tc)
        ctx.shape = x._shape
        return out

    @staticmethod
    def backward(ctx, grad):
        xc, tc = ctx.get_saved_tensors()
        need = ctx.needs_input_grad
        dx, dt = _loss.bce_backward(grad, xc, tc, bool(need) and need[1])
        return dx.view(ctx.shape), None if dt is None else dt.view(ctx.shape)


@differentiable()
class BinaryCrossEntropyWithLogits(Op):
    """Elementwise binary cross-entropy on logits with an optional pos_weight (unreduced)."""

    @staticmethod
    def forward(ctx, x, target, pos_weight):
        out, xc, tc, pc = _loss.bce_logits(x, target, pos_weight)
        ctx.save_for_backward(xc, tc, *([pc] if pc is not None else []))
        ctx.shape, ctx.p_shape = x._shape, None if pos_weight is None else pos_weight._shape
        return out

    @staticmethod
    def backward(ctx, grad):
        xc, tc, *pc = ctx.get_saved_tensors()
        need = ctx.needs_input_grad or (True, True, True)
        dx, dt, dp = _loss.bce_logits_backward(grad, xc, tc, pc[0] if pc else None, need[1], need[2])
        return (dx.view(ctx.shape), None if dt is None else dt.view(ctx.shape),
                None if dp is None else dp.sum_to(*ctx.p_shape))


def class_loss(x, target, weight, bcd, reduction, ignore_index, label_smoothing, nll):
    return ClassLoss.record(x, target, weight, bcd=bcd, reduction=reduction, ignore_index=ignore_index,
                            label_smoothing=label_smoothing, nll=nll)


def prob_cross_entropy(x, target, weight, bcd, reduction, label_smoothing):
    return ProbCrossEntropy.record(x, target, weight, bcd=bcd, reduction=reduction,
                                   label_smoothing=label_smoothing)


def binary_cross_entropy(x, target):
    return BinaryCrossEntropy.record(x, target)


def binary_cross_entropy_with_logits(x, target, pos_weight=None):
    return BinaryCrossEntropyWithLogits.record(x, target, pos_weight)
