"""A small vision transformer (Dosovitskiy et al. 2021) on image patches, with the norm's place switched by config.

Patches of ``patch`` x ``patch`` pixels are embedded by one strided conv (block 1, with the class token and the
learned position embeddings); then ``depth`` transformer layers, each two residual units (multi-head
self-attention, then a two-layer MLP of ``mlp_ratio`` x ``dim`` hidden units with GELU); the class token's output
goes to one linear classifier. Each residual unit is one Block (``blocks[1 + 2 l]``: layer l's attention,
``blocks[2 + 2 l]``: its MLP), its ``layer`` the branch's last linear (the attention's output projection, the MLP's
second layer: Xiong et al.'s W^O and W^2), its ``probe`` right after its norm. Where the norm goes:

- pre (``norm=layer``, ``norm=rms``): ``x + branch(norm(x))``, and one more norm before the classifier (pre-LN,
  pre-RMSNorm);
- post (``norm=post_layer``): ``norm(x + branch(x))`` (post-LN, the original transformer's);
- ``norm=none``: ``x + branch(x)``; ``norm=skipinit``: ``x + alpha * branch(x)``, alpha initialised to 0.

Attention is written out (softmax(q k' / sqrt(d_head)) v) rather than a fused kernel: the curvature measures take
its second derivatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bnstudy.models.base import Block, BlockNet, ModelConf, ResidualProbes, activation, model
from bnstudy.norms import NormConf, make_norm, residual_scheme
from bnstudy.schema import ConfigError, ranged


@dataclass
class ViTConf(ModelConf):
    """depth transformer layers of width dim, heads heads, on patch x patch patches (the image side a multiple)."""

    name: str = "vit"
    depth: int = ranged(6, ge=1)
    dim: int = ranged(64, ge=1)
    heads: int = ranged(4, ge=1)  # must divide dim
    patch: int = ranged(4, ge=1)
    mlp_ratio: float = ranged(2.0, gt=0)
    activation: str = "gelu"


class PatchEmbed(Block):
    """Block 1: the strided conv that embeds each patch (its ``layer``), then the class token and position
    embeddings (N, C, H, W) -> (N, 1 + patches, dim). No norm."""

    def __init__(self, channels: int, dim: int, patch: int, patches: int):
        super().__init__(nn.Conv2d(channels, dim, patch, stride=patch), nn.Identity(), nn.Identity(), False)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 1 + patches, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.layer(x).flatten(2).transpose(1, 2)
        return self.probe(torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1) + self.pos)


class Attention(nn.Module):
    """The attention branch's first part: q, k, v from one linear, softmax(q k' / sqrt(d)) v per head, heads
    concatenated (the output projection is the unit's ``layer``)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        return (weights @ v).transpose(1, 2).reshape(n, t, d)


class Unit(Block):
    """One residual unit: ``first`` (attention, or the MLP's first layer and activation) then ``layer`` (the last
    linear) make the branch; ``placement`` pre / post / none says where ``norm`` goes; SkipInit's alpha ends the
    branch."""

    def __init__(self, first: nn.Module, layer: nn.Linear, norm: nn.Module, placement: str, skipinit: bool,
                 dropout: float):
        # not scale invariant, whatever the norm: the skip path carries the unscaled input past it
        super().__init__(layer, norm, nn.Identity(), False, dropout, False)
        self.first, self.placement = first, placement
        self.alpha = nn.Parameter(torch.zeros(())) if skipinit else None
        self.residual = ResidualProbes()

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(self.first(x))
        out = out if self.dropout is None else self.dropout(out)
        return out if self.alpha is None else self.alpha * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "pre":
            return self.residual.add(x, self.branch(self.probe(self.norm(x))))
        if self.placement == "post":
            return self.probe(self.norm(self.residual.add(x, self.branch(x))))
        return self.residual.add(x, self.branch(self.probe(x)))


class Tokenwise(nn.Module):
    """A norm built for linear inputs ``(N, C)`` applied to tokens ``(N, T, C)``: on the ``N x T`` token vectors as
    one batch. LayerNorm and RMSNorm normalise each token alike either way; a batch-statistic norm (``batch``,
    ``l2``, ...) then pools each unit over the batch's samples and tokens."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class ClassToken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


@model("vit", schema=ViTConf)
def vit(cfg: ViTConf, norm: NormConf, input_shape: tuple, num_classes: int) -> BlockNet:
    """Patch embedding, depth x (attention unit, MLP unit), the final norm (pre placements), the class token's
    linear classifier."""
    if len(input_shape) != 3:
        raise ConfigError(f"model=vit needs images, not inputs of shape {input_shape}")
    c, h, w = input_shape
    if h % cfg.patch or w % cfg.patch:
        raise ConfigError(f"model.patch={cfg.patch} must divide the image side ({h}x{w}): e.g. 7 or 4 for 28x28, "
                          f"4 or 8 for 32x32")
    if cfg.dim % cfg.heads:
        raise ConfigError(f"model.heads={cfg.heads} must divide model.dim={cfg.dim}")
    scheme = residual_scheme(norm.name)
    if scheme == "fixup":
        raise ConfigError("norm=fixup is the residual CNN's initialisation (model=resnet); a transformer's "
                          "normalisation-free option here is norm=skipinit (or none)")
    normed = scheme in (None, "post") and norm.name != "none"
    placement = "post" if scheme == "post" else "pre" if normed else "none"
    slot = lambda: Tokenwise(make_norm(norm, cfg.dim, False)) if normed else nn.Identity()
    hidden = max(1, round(cfg.mlp_ratio * cfg.dim))
    body: list[nn.Module] = [PatchEmbed(c, cfg.dim, cfg.patch, (h // cfg.patch) * (w // cfg.patch))]
    for _ in range(cfg.depth):
        for first, last in ((Attention(cfg.dim, cfg.heads), nn.Linear(cfg.dim, cfg.dim)),
                            (nn.Sequential(nn.Linear(cfg.dim, hidden), activation(cfg.activation)),
                             nn.Linear(hidden, cfg.dim))):
            body.append(Unit(first, last, slot(), placement, scheme == "skipinit", cfg.dropout))
    final = slot() if placement == "pre" else nn.Identity()
    return BlockNet(body, nn.Sequential(final, ClassToken(), nn.Linear(cfg.dim, num_classes)))
