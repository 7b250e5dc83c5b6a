"""Losses (docs/api.md, nn): 0-dim results for 'mean'/'sum', per-position values for 'none'."""
from .module import Module
from . import functional as F
from ..ops.nn import check_reduction


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Squared error of same-shaped input and target (a shape mismatch raises ValueError)."""

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """logits [..., C] against class indices [...] (a float tensor of integral values, or a list/array of
    ints); fused log-sum-exp with the row max subtracted, finite for logits of +-1e4."""

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, self.reduction)
