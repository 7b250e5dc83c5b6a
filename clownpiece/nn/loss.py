"""Losses (docs/api.md, nn): 0-dim results for 'mean'/'sum', per-position values for 'none'. The
functional forms: nn/loss_functions.py."""
from __future__ import annotations

from typing import Literal, Optional, Sequence, Union

import numpy as np

from .._tensor import Tensor
from ..ops.nn import check_reduction
from . import functional as F, loss_functions as LF
from .module import Module


class _Loss(Module):
    def __init__(self, reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__()
        check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Squared error of same-shaped input and target (a shape mismatch raises ValueError)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


# ---- PyTorch's losses (nn.functional forms in nn/loss_functions.py) --------------------------------------
class _PyTorchLoss(_Loss):
    """A loss with PyTorch's constructor: the deprecated size_average/reduce map to `reduction`."""

    def __init__(self, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        Module.__init__(self)
        self.reduction = LF.legacy_reduction(size_average, reduce, reduction, type(self).__name__)


class _WeightedLoss(_PyTorchLoss):
    """A loss with a class (or element) weight, registered as a buffer as in PyTorch."""

    def __init__(self, weight: Optional[Tensor] = None, size_average: Optional[bool] = None,
                 reduce: Optional[bool] = None, reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of logits against class indices or probabilities (F.cross_entropy): PyTorch's
    [N, C, d1, ...] and the course's [..., C] layouts, weight, ignore_index, label_smoothing. The course's
    CrossEntropyLoss("sum") passes the reduction first."""

    def __init__(self, weight: Union[Tensor, str, None] = None, size_average: Optional[bool] = None,
                 ignore_index: int = -100, reduce: Optional[bool] = None,
                 reduction: Literal["mean", "sum", "none"] = "mean", label_smoothing: float = 0.0) -> None:
        if isinstance(weight, str):  # the course's positional reduction
            weight, reduction = None, weight
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Union[Tensor, Sequence[int], np.ndarray]) -> Tensor:
        return LF.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                                reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities [N, C, d1, ...] against class indices [N, d1, ...]."""

    def __init__(self, weight: Optional[Tensor] = None, size_average: Optional[bool] = None, ignore_index: int = -100,
                 reduce: Optional[bool] = None, reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities against same-shaped targets; weight broadcasts to the input."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Binary cross-entropy on logits (stable for large logits), with an optional pos_weight."""

    def __init__(self, weight: Optional[Tensor] = None, size_average: Optional[bool] = None,
                 reduce: Optional[bool] = None, reduction: Literal["mean", "sum", "none"] = "mean",
                 pos_weight: Optional[Tensor] = None) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                   pos_weight=self.pos_weight)


class L1Loss(_PyTorchLoss):
    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_PyTorchLoss):
    def __init__(self, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: Literal["mean", "sum", "none"] = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction: Literal["mean", "sum", "none"] = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(Module):
    """reduction: 'mean' (PyTorch's default: every element), 'batchmean' (the KL divergence), 'sum', 'none'."""

    def __init__(self, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: Literal["mean", "sum", "none", "batchmean"] = "mean", log_target: bool = False) -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = LF.legacy_reduction(size_average, reduce, "mean", "KLDivLoss")
        elif reduction not in LF.KL_REDUCTIONS:
            raise ValueError(f"KLDivLoss: reduction must be one of {LF.KL_REDUCTIONS}, got {reduction!r}")
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return LF.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class _MarginLoss(_PyTorchLoss):
    """A loss of two inputs and a +-1 target with a margin."""

    def __init__(self, margin: float = 0.0, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                 reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


class MarginRankingLoss(_MarginLoss):
    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return LF.margin_ranking_loss(input1, input2, target, self.margin, reduction=self.reduction)


class CosineEmbeddingLoss(_MarginLoss):
    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return LF.cosine_embedding_loss(input1, input2, target, self.margin, reduction=self.reduction)
