"""clownpiece.nn: modules, layers, losses, initialisers and nn.functional (docs/api.md, nn; the PyTorch aliases
and the layers beyond the course: docs/api.md, Decisions D6 and D7).

`from clownpiece.nn import *` is used by course code: it must not export a different `Tensor`."""
from . import functional, init, parallel, utils
from .activations import (
                          ELU,
                          GELU,
                          SELU,
                          Hardsigmoid,
                          Hardswish,
                          LeakyReLU,
                          LogSoftmax,
                          Mish,
                          ReLU,
                          Sigmoid,
                          SiLU,
                          Softmax,
                          Softplus,
                          Tanh,
)
from .containers import ModuleDict, ModuleList, Sequential
from .conv import Conv1d, Conv2D, Conv2d, ConvTranspose1d, ConvTranspose2d
from .init import (
                          calcuate_gain,
                          calculate_gain,
                          constant_,
                          constants_,
                          kaiming_normal_,
                          kaiming_uniform_,
                          normal_,
                          ones_,
                          uniform_,
                          xavier_normal_,
                          xavier_uniform_,
                          zeros_,
)
from .layers import Dropout, Dropout1d, Dropout2d, Embedding, Flatten, Identity, Linear, MultiheadAttention, Unflatten
from .loss import (
                          BCELoss,
                          BCEWithLogitsLoss,
                          CosineEmbeddingLoss,
                          CrossEntropyLoss,
                          HuberLoss,
                          KLDivLoss,
                          L1Loss,
                          MarginRankingLoss,
                          MSELoss,
                          NLLLoss,
                          SmoothL1Loss,
)
from .module import Buffer, Module, Parameter
from .norm import BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm
from .pooling import (
                          AdaptiveAvgPool1d,
                          AdaptiveAvgPool2d,
                          AdaptiveMaxPool1d,
                          AdaptiveMaxPool2d,
                          AvgPool1d,
                          AvgPool2D,
                          AvgPool2d,
                          MaxPool1d,
                          MaxPool2D,
                          MaxPool2d,
                          Upsample,
                          UpsamplingBilinear2d,
                          UpsamplingNearest2d,
)
from .transformer import TransformerEncoder, TransformerEncoderLayer, generate_square_subsequent_mask

__all__ = [
    "Parameter", "Buffer", "Module",
    # activations
    "Sigmoid", "Tanh", "ReLU", "GELU", "LeakyReLU", "Softmax", "LogSoftmax", "SiLU", "ELU", "SELU", "Softplus",
    "Mish", "Hardswish", "Hardsigmoid",
    # containers and layers
    "Sequential", "ModuleList", "ModuleDict", "Linear", "Embedding", "MultiheadAttention", "Identity", "Flatten",
    "Unflatten", "Dropout", "Dropout1d", "Dropout2d",
    "LayerNorm", "BatchNorm", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "RMSNorm",
    "MSELoss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
    "KLDivLoss", "MarginRankingLoss", "CosineEmbeddingLoss",
    "Conv1d", "Conv2D", "Conv2d", "ConvTranspose1d", "ConvTranspose2d",
    "MaxPool1d", "MaxPool2D", "MaxPool2d", "AvgPool1d", "AvgPool2D", "AvgPool2d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d",
    "UpsamplingBilinear2d", "TransformerEncoderLayer", "TransformerEncoder", "generate_square_subsequent_mask",
    # submodules and initialisers
    "init", "functional", "parallel", "utils", "calcuate_gain", "calculate_gain", "constants_", "constant_", "zeros_",
    "ones_", "uniform_", "normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]
