"""Models: the ``MODELS`` registry (``base``) and every module of this package, each registering its own (``plain``:
the paper's small CNN, VGG and DLN; ``resnet``: the CIFAR residual networks; ``vit``: a small vision transformer)."""

from bnstudy.models.base import (ACTIVATIONS, INITS, MODELS, Block, BlockNet, Model, ModelConf, ResidualProbes,
                                 activation, block, build_model, glorot_init, he_init, model, scale_weights)
from bnstudy.registry import collect

collect(__name__, __path__)  # every module: its @model registrations run

from bnstudy.models.plain import VGG_LAYOUTS, DLNConf, SmallCNNConf, VGGConf  # noqa: E402
from bnstudy.models.resnet import ResNetConf  # noqa: E402
from bnstudy.models.vit import ViTConf  # noqa: E402

__all__ = ["ACTIVATIONS", "INITS", "MODELS", "VGG_LAYOUTS", "Block", "BlockNet", "DLNConf", "Model", "ModelConf",
           "ResNetConf", "ResidualProbes", "SmallCNNConf", "VGGConf", "ViTConf", "activation", "block", "build_model",
           "glorot_init", "he_init", "model", "scale_weights"]
