"""Optimizers and learning-rate schedulers (the course's `clownpiece.utils.optim`)."""
from .optimizer import Optimizer, SGD, Adam, AdamW, RMSprop, Adagrad
from .lr_scheduler import LRScheduler, LambdaLR, ExponentialLR, StepLR, CosineAnnealingLR

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LRScheduler", "LambdaLR", "ExponentialLR",
           "StepLR", "CosineAnnealingLR"]
