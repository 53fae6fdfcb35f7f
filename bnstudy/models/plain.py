"""The paper's three plain networks: the small CNN, the CIFAR VGG and the deep linear network (DLN)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bnstudy.models.base import BlockNet, ModelConf, block, model
from bnstudy.norms import NormConf
from bnstudy.schema import ConfigError, ranged


@dataclass
class SmallCNNConf(ModelConf):
    """Seed 001's CNN: conv 5x5 (8) -> pool -> conv 5x5 (16) -> pool -> linear."""

    name: str = "small_cnn"
    channels: list[int] = ranged(factory=lambda: [8, 16], ge=1)
    kernel_size: int = ranged(5, ge=1)


@dataclass
class VGGConf(ModelConf):
    """CIFAR VGG: 3x3 convs with max-pools, one linear classifier. depth in {11, 13, 16, 19}."""

    name: str = "vgg"
    depth: int = ranged(16, ge=11, le=19)  # 11, 13, 16 or 19 (VGG_LAYOUTS)
    width: float = ranged(1.0, gt=0)  # channel multiplier (quick scale uses narrow nets)


@dataclass
class DLNConf(ModelConf):
    """Deep linear network: ``num_layers`` square ``dim`` x ``dim`` linear layers, no non-linearity."""

    name: str = "dln"
    num_layers: int = ranged(25, ge=1)
    dim: int = ranged(10, ge=1)
    activation: str = "identity"
    norm_last: bool = False  # [open] normalise after the output layer too (default: hidden layers only)


@model("small_cnn", schema=SmallCNNConf)
def small_cnn(cfg: SmallCNNConf, norm: NormConf, input_shape: tuple, num_classes: int) -> BlockNet:
    """Seed 001's MNIST CNN: [conv 5x5 -> norm -> ReLU -> max-pool 2] x 2 -> linear."""
    c, h, w = input_shape
    body: list[nn.Module] = []
    for out in cfg.channels:
        body += [block(nn.Conv2d(c, out, cfg.kernel_size, bias=cfg.bias), cfg, norm, out, True), nn.MaxPool2d(2)]
        c, h, w = out, (h - cfg.kernel_size + 1) // 2, (w - cfg.kernel_size + 1) // 2
    return BlockNet(body, nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes)))


VGG_LAYOUTS = {  # channels per conv, "M" = 2x2 max-pool (the CIFAR forms of VGG-11/13/16/19)
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


@model("vgg", schema=VGGConf)
def vgg(cfg: VGGConf, norm: NormConf, input_shape: tuple, num_classes: int) -> BlockNet:
    """CIFAR VGG: 3x3 convs, norm before ReLU, max-pools, one linear classifier."""
    if cfg.depth not in VGG_LAYOUTS:
        raise ConfigError(f"model.depth={cfg.depth} is unknown; valid: {sorted(VGG_LAYOUTS)}")
    c, h = input_shape[0], input_shape[1]
    body: list[nn.Module] = []
    for item in VGG_LAYOUTS[cfg.depth]:
        if item == "M":
            if h >= 2:  # small inputs (28x28) run out of resolution before the last pools
                body.append(nn.MaxPool2d(2))
                h //= 2
            continue
        out = max(1, round(item * cfg.width))
        body.append(block(nn.Conv2d(c, out, 3, padding=1, bias=cfg.bias), cfg, norm, out, True))
        c = out
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
    return BlockNet(body, head)


@model("dln", schema=DLNConf)
def dln(cfg: DLNConf, norm: NormConf, input_shape: tuple, num_classes: int | None) -> BlockNet:
    """Deep linear network: W_L ... W_1 x. Hidden layers are Blocks; the output layer is the head."""
    d = cfg.dim
    if len(input_shape) != 1:  # images: the DLN is a regression on Gaussian vectors
        raise ConfigError(f"model=dln needs vector data, not images of shape {input_shape}: add data=gaussian, "
                          f"or run a DLN experiment (experiment=fig3_dln, fig4_dln or fig5_dln)")
    if input_shape != (d,):
        raise ConfigError(f"the DLN needs inputs of shape ({d},), got {input_shape}: set data.dim={d} "
                          f"or model.dim={input_shape[0]}")
    hidden = cfg.num_layers if cfg.norm_last else cfg.num_layers - 1
    body = [block(nn.Linear(d, d, bias=cfg.bias), cfg, norm, d, False) for _ in range(hidden)]
    head = nn.Identity() if cfg.norm_last else nn.Linear(d, d, bias=cfg.bias)
    return BlockNet(body, head)
