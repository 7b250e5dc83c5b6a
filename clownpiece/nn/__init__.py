"""clownpiece.nn: modules, layers, losses, initialisers and nn.functional (docs/api.md, nn; the PyTorch aliases
and the layers beyond the course: docs/api.md, Decisions D6 and D7).

`from clownpiece.nn import *` is used by course code: it must not export a different `Tensor`."""
from .module import Parameter, Buffer, Module
from .activations import (Sigmoid, Tanh, ReLU, GELU, LeakyReLU, Softmax, LogSoftmax, SiLU, ELU, SELU, Softplus, Mish,
                          Hardswish, Hardsigmoid)
from .containers import Sequential, ModuleList, ModuleDict
from .layers import (Linear, Embedding, MultiheadAttention, Identity, Flatten, Unflatten, Dropout, Dropout1d,
                     Dropout2d)
from .norm import LayerNorm, BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, RMSNorm
from .loss import (MSELoss, CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss, L1Loss, SmoothL1Loss, HuberLoss,
                   KLDivLoss, MarginRankingLoss, CosineEmbeddingLoss)
from .conv import Conv1d, Conv2D, Conv2d, ConvTranspose1d, ConvTranspose2d
from .pooling import (MaxPool1d, MaxPool2D, MaxPool2d, AvgPool1d, AvgPool2D, AvgPool2d, AdaptiveAvgPool1d,
                      AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d, Upsample, UpsamplingNearest2d,
                      UpsamplingBilinear2d)
from .transformer import TransformerEncoderLayer, TransformerEncoder, generate_square_subsequent_mask
from . import init, functional, parallel, utils
from .init import (calcuate_gain, calculate_gain, constants_, constant_, zeros_, ones_, uniform_, normal_,
                   xavier_uniform_, xavier_normal_, kaiming_uniform_, kaiming_normal_)

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
