"""DistributedSampler: each rank's share of a dataset's indices, as torch.utils.data.DistributedSampler."""
from __future__ import annotations

import math
import numbers
from typing import Iterator, Optional, Sized

import numpy as np


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"DistributedSampler: {name} must be an int >= {low}, got {value!r}")
    return int(value)


class DistributedSampler:
    """The indices rank `rank` of `num_replicas` reads in an epoch (pass it as a Dataloader's `sampler`).

    Every rank gets the same number of indices, `len(sampler)`: the dataset's indices (a permutation drawn
    from `seed + epoch` when `shuffle`, the same on every rank) are padded by repeating the first ones up
    to a multiple of num_replicas, or, with `drop_last`, cut to one; rank r then takes every
    num_replicas-th index from position r. So an epoch reads every sample exactly once across ranks (a few
    twice when padding). Call `set_epoch(epoch)` before each epoch to reshuffle. num_replicas and rank
    default to clownpiece.distributed's world size and rank. The permutation is numpy's, so shuffled
    orders differ from PyTorch's (the partitioning rule is PyTorch's)."""

    def __init__(self, dataset: Sized, num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from ... import distributed
            if not distributed.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or call "
                                   "clownpiece.distributed.init() first")
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        self.num_replicas = _check_int("num_replicas", num_replicas, 1)
        rank = _check_int("rank", rank, 0)
        if rank >= self.num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {self.num_replicas}), got {rank}")
        self.rank = rank
        self.seed = _check_int("seed", seed, 0)
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use `epoch` for the next shuffle (every rank must pass the same value)."""
        self.epoch = _check_int("epoch", epoch, 0)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if self.total_size > n:  # pad by repeating from the start (several times over for tiny data sets)
            indices = np.resize(indices, self.total_size)
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples
