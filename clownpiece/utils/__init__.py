"""Training utilities: `clownpiece.utils.optim` (optimizers, schedulers) and `clownpiece.utils.data`
(datasets, transforms, the Dataloader)."""
from . import data, optim

__all__ = ["optim", "data"]
