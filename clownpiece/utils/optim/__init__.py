"""Optimizers and learning-rate schedulers (the course's `clownpiece.utils.optim`)."""
from . import lr_scheduler
from .lr_scheduler import (
                           ChainedScheduler,
                           ConstantLR,
                           CosineAnnealingLR,
                           CosineAnnealingWarmRestarts,
                           ExponentialLR,
                           LambdaLR,
                           LinearLR,
                           LRScheduler,
                           MultiplicativeLR,
                           MultiStepLR,
                           OneCycleLR,
                           PolynomialLR,
                           ReduceLROnPlateau,
                           SequentialLR,
                           StepLR,
)
from .optimizer import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LRScheduler", "LambdaLR", "MultiplicativeLR",
           "ExponentialLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "OneCycleLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau",
           "lr_scheduler"]
