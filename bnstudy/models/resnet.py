"""The CIFAR residual networks of He et al. (2016, Section 4.2), ResNet-(6n+2), with the norm switched by config.

Stem: a 3x3 conv block (16 x width channels); three stages of n basic units at 16, 32, 64 (x width) channels,
the first unit of stages 2 and 3 halving the resolution; global average pooling and one linear classifier. A
basic unit is ``relu(skip(x) + branch(x))``, its branch two conv blocks (conv -> norm -> ReLU, conv -> norm) and
its skip the identity, or, where the shape changes, the parameter-free "option A" shortcut (subsample, zero-pad
the new channels), so that every parameter of the network is in a block (gradient ICS moves whole blocks).

The norm (``bnstudy.norms``) goes in each block's slot (BatchNorm: the original network); two schemes replace it
(their registration's ``residual``):

- ``fixup`` (Zhang, Dauphin & Ma 2019): "Initialize the classification layer and the last layer of each residual
  branch to 0", the other branch layers rescaled by L^(-1/(2m-2)) (L branches of m = 2 layers: L^-1/2) after the
  standard (He) init, and "Add a scalar multiplier (initialized at 1) in every branch and a scalar bias
  (initialized at 0) before each convolution, linear, and element-wise activation layer".
- ``skipinit`` (De & Smith 2020): a learnable scalar alpha at the end of each branch, initialised to 0.

The blocks are numbered in forward order: 1 the stem, then two per unit (``depth - 1`` blocks; the classifier is
the head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bnstudy.models.base import BlockNet, ModelConf, ResidualProbes, block, model
from bnstudy.norms import NormConf, residual_scheme
from bnstudy.schema import ConfigError, ranged


@dataclass
class ResNetConf(ModelConf):
    """CIFAR ResNet-(6n+2): depth in {8, 14, 20, 32, 44, 56, 110, ...}; width multiplies the 16/32/64 channels."""

    name: str = "resnet"
    depth: int = ranged(20, ge=8)  # 6n + 2
    width: float = ranged(1.0, gt=0)  # channel multiplier (quick scale uses narrow nets)
    init: str = "he"  # He et al.'s own init (Fixup's "standard method")
    bias: bool = False  # convs followed by a norm have none (He et al.); Fixup adds its scalar biases


class ScalarBias(nn.Module):
    """One learnable scalar added to every element (Fixup's biases), initialised to 0."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class InputBiased(nn.Module):
    """A conv or linear layer with Fixup's scalar bias on its input: ``layer(x + b)``. ``weight`` is the layer's
    (the W_i the measurements address)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.bias_in = ScalarBias()
        self.inner = layer

    @property
    def weight(self) -> torch.Tensor:
        return self.inner.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.bias_in(x))


class BranchScale(nn.Module):
    """The end of a branch: Fixup's multiplier (init 1) and scalar bias (init 0), or SkipInit's alpha (init 0)."""

    def __init__(self, scheme: str):
        super().__init__()
        self.scale = nn.Parameter(torch.full((), 1.0 if scheme == "fixup" else 0.0))
        self.bias = nn.Parameter(torch.zeros(())) if scheme == "fixup" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale
        return x if self.bias is None else x + self.bias


def option_a(x: torch.Tensor, out_channels: int, stride: int) -> torch.Tensor:
    """He et al.'s option A shortcut: subsample by ``stride``, zero-pad the channels up to ``out_channels``."""
    x = x[:, :, ::stride, ::stride]
    pad = out_channels - x.shape[1]
    return F.pad(x, (0, 0, 0, 0, 0, pad)) if pad else x


class BasicUnit(nn.Module):
    """``relu(skip(x) + scale(conv2_block(conv1_block(x))))``; ``scale`` only under Fixup and SkipInit."""

    def __init__(self, cfg: ResNetConf, norm: NormConf, c_in: int, c_out: int, stride: int, scheme: str | None):
        super().__init__()
        fixup = scheme == "fixup"
        conv = lambda c, s: nn.Conv2d(c, c_out, 3, stride=s, padding=1, bias=cfg.bias)
        wrap = InputBiased if fixup else (lambda layer: layer)
        self.conv1 = block(wrap(conv(c_in, stride)), cfg, norm, c_out, True, residual=True)
        self.conv2 = block(wrap(conv(c_out, 1)), cfg, norm, c_out, True, act="identity", residual=True)
        if fixup:  # the scalar bias before the branch's ReLU, in the norm's slot
            self.conv1.norm = ScalarBias()
        self.scale = BranchScale(scheme) if scheme in ("fixup", "skipinit") else nn.Identity()
        self.c_out, self.stride = c_out, stride
        self.residual = ResidualProbes()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.scale(self.conv2(self.conv1(x)))
        skip = option_a(x, self.c_out, self.stride) if self.stride > 1 or x.shape[1] != self.c_out else x
        return F.relu(self.residual.add(skip, branch))


class ResNet(BlockNet):
    """A BlockNet whose ``after_init`` applies Fixup's rescaling and zeros (a no-op for the other norms)."""

    def __init__(self, body: list[nn.Module], head: nn.Module, scheme: str | None):
        super().__init__(body, head)
        self.scheme = scheme

    def after_init(self) -> None:
        if self.scheme != "fixup":
            return
        units = [m for m in self.modules() if isinstance(m, BasicUnit)]
        with torch.no_grad():
            for u in units:
                u.conv1.layer.weight.mul_(len(units) ** (-1 / (2 * 2 - 2)))  # L^(-1/(2m-2)), m = 2 layers
                u.conv2.layer.weight.zero_()
            classifier = self.head[-1].inner
            classifier.weight.zero_()
            if classifier.bias is not None:
                classifier.bias.zero_()


@model("resnet", schema=ResNetConf)
def resnet(cfg: ResNetConf, norm: NormConf, input_shape: tuple, num_classes: int) -> ResNet:
    """CIFAR ResNet-(6n+2) at ``cfg.width``: stem block, 3 x n basic units, average pool, linear classifier."""
    if (cfg.depth - 2) % 6:
        raise ConfigError(f"model.depth={cfg.depth}: a CIFAR ResNet has depth 6n + 2 (8, 14, 20, 32, 44, 56, 110)")
    if len(input_shape) != 3:
        raise ConfigError(f"model=resnet needs images, not inputs of shape {input_shape}")
    scheme = residual_scheme(norm.name)
    if scheme == "post":
        raise ConfigError(f"norm={norm.name} places the norm after the residual addition, a transformer's "
                          f"option (model=vit); a ResNet's norms sit in its branches: norm=batch, layer, group, ...")
    n, widths = (cfg.depth - 2) // 6, [max(1, round(c * cfg.width)) for c in (16, 32, 64)]
    stem = block(nn.Conv2d(input_shape[0], widths[0], 3, padding=1, bias=cfg.bias), cfg, norm, widths[0], True,
                 residual=True)
    if scheme == "fixup":
        stem.norm = ScalarBias()
    body: list[nn.Module] = [stem]
    c = widths[0]
    for stage, width in enumerate(widths):
        for i in range(n):
            body.append(BasicUnit(cfg, norm, c, width, 2 if stage and not i else 1, scheme))
            c = width
    classifier = nn.Linear(c, num_classes)
    last = InputBiased(classifier) if scheme == "fixup" else classifier
    return ResNet(body, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), last), scheme)
