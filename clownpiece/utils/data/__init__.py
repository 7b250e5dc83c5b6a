"""Datasets, transforms and the Dataloader (the course's `clownpiece.utils.data`); MNIST, FashionMNIST and
CIFAR10 live in `clownpiece.utils.data.datasets`."""
from . import datasets, transforms
from .dataloader import DataLoader, Dataloader, default_collate
from .dataset import (
                      ConcatDataset,
                      CSVDataset,
                      Dataset,
                      ImageDataset,
                      Subset,
                      TensorDataset,
                      normalize_transform,
                      random_split,
                      resize_transform,
                      sequential_transform,
                      to_tensor_transform,
)
from .sampler import DistributedSampler

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "CSVDataset", "ImageDataset",
           "sequential_transform", "resize_transform", "normalize_transform", "to_tensor_transform", "Dataloader",
           "DataLoader", "default_collate", "DistributedSampler", "datasets", "transforms"]
