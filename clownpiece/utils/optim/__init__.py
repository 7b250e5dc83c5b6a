"""Optimizers and learning-rate schedulers (the course's `clownpiece.utils.optim`)."""
from .optimizer import Optimizer, SGD, Adam, AdamW, RMSprop, Adagrad
from .lr_scheduler import (LRScheduler, LambdaLR, MultiplicativeLR, ExponentialLR, StepLR, MultiStepLR, ConstantLR,
                           LinearLR, PolynomialLR, CosineAnnealingLR, CosineAnnealingWarmRestarts, OneCycleLR,
                           SequentialLR, ChainedScheduler, ReduceLROnPlateau)
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LRScheduler", "LambdaLR", "MultiplicativeLR",
           "ExponentialLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "PolynomialLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "OneCycleLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau",
           "lr_scheduler"]
