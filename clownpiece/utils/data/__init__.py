"""Datasets, transforms and the Dataloader (the course's `clownpiece.utils.data`); MNIST, FashionMNIST and
CIFAR10 live in `clownpiece.utils.data.datasets`."""
from .dataset import (Dataset, TensorDataset, Subset, ConcatDataset, random_split, CSVDataset, ImageDataset,
                      sequential_transform, resize_transform, normalize_transform, to_tensor_transform)
from .dataloader import Dataloader, DataLoader, default_collate
from .sampler import DistributedSampler
from . import datasets, transforms

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "CSVDataset", "ImageDataset",
           "sequential_transform", "resize_transform", "normalize_transform", "to_tensor_transform", "Dataloader",
           "DataLoader", "default_collate", "DistributedSampler", "datasets", "transforms"]
