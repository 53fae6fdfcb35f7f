"""Theorem 4.1 of the paper, measured per BatchNorm layer on the training step's own backward.

For one unit with m batch values (N, or N x H x W for conv), input y, output z = gamma * y_hat + beta,
y_hat = (y - mu) / sqrt(sigma^2 + eps) and g = dL/dz, the proof (eqs. 5-9) gives::

    ||dL/dy||^2 = (gamma^2 / sigma^2) * (||g||^2 - <1, g>^2 / m - <g, y_hat>^2 / m)      (1/m form)

an equality for eps = 0 (with eps: gamma^2 / (sigma^2 + eps) and a last-term factor 2 - sigma^2 / (sigma^2
+ eps), so the two sides differ by O(eps / sigma^2) of that term). The theorem as printed (arXiv v3) has
1/sqrt(m) on its last term: it subtracts more, so its "<=" fails whenever <g, y_hat> != 0.
Everything here is read off tensors the training step computes anyway: zero extra passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from bnstudy.schema import ranged
from bnstudy.measures.registry import EVERY_BLOCK, Cost, Measurement, Row, Step, layer_check, register

THM41_LHS = "thm41_lhs"  # ||dL/dy||^2 (the theorem's left side)
THM41_RHS = "thm41_rhs"  # its right side in the proof's form (1/m)
THM41_RHS_PRINTED = "thm41_rhs_printed"  # its right side as printed (1/sqrt m)
THM41_GAIN = "thm41_gain"  # gamma^2 / sigma^2, mean over units
THM41_SHARE_MEAN, THM41_SHARE_SCALE, THM41_G_SQ = "thm41_share_mean", "thm41_share_scale", "thm41_g_sq"
THM41_METRICS = (THM41_LHS, THM41_RHS, THM41_RHS_PRINTED, THM41_GAIN, THM41_SHARE_MEAN, THM41_SHARE_SCALE, THM41_G_SQ)


@dataclass
class Theorem41Conf:
    every: int = ranged(0, ge=0)  # 0 = off
    layers: list[int] = ranged(factory=list, ge=1)  # 1-based blocks; empty: every BN layer


@dataclass
class Theorem41:
    """One BN layer at one step, summed over its units (``gain`` is the mean over units)."""

    lhs: torch.Tensor  # ||dL/dy||^2, the gradient at the BN input
    rhs: torch.Tensor  # (gamma^2/sigma^2)(||g||^2 - <1,g>^2/m - <g,y_hat>^2/m): the proof's form
    rhs_printed: torch.Tensor  # the same with <g,y_hat>^2/sqrt(m): the printed statement
    gain: torch.Tensor  # gamma^2 / (sigma^2 + eps), mean over units
    share_mean: torch.Tensor  # share of ||g||^2 removed by the projection on 1: sum <1,g>^2/m / sum ||g||^2
    share_scale: torch.Tensor  # share removed by the projection on y_hat: sum <g,y_hat>^2/m / sum ||g||^2
    g_sq: torch.Tensor  # ||g||^2, the gradient at the BN output

    def values(self) -> list[torch.Tensor]:
        """In the order of ``THM41_METRICS``."""
        return [self.lhs, self.rhs, self.rhs_printed, self.gain, self.share_mean, self.share_scale, self.g_sq]


def _by_unit(t: torch.Tensor) -> torch.Tensor:
    """(N, C) or (N, C, H, W) -> (C, m): each unit's m batch values in a row."""
    return t.transpose(0, 1).reshape(t.shape[1], -1)


def theorem41(y: torch.Tensor, g: torch.Tensor, dy: torch.Tensor, gamma: torch.Tensor | None,
              eps: float) -> Theorem41:
    """Both sides of Theorem 4.1 for one BN layer from its input ``y``, ``g`` = dL/dz, ``dy`` = dL/dy.

    In float64 whatever the training dtype (sums of squares over N x H x W values).
    """
    Y, G, D = (_by_unit(t.detach()).double() for t in (y, g, dy))
    m = Y.shape[1]
    var = Y.var(dim=1, unbiased=False)
    y_hat = (Y - Y.mean(dim=1, keepdim=True)) / torch.sqrt(var + eps)[:, None]
    gam = torch.ones_like(var) if gamma is None else gamma.detach().double()
    gain = gam ** 2 / (var + eps)
    g_sq = (G * G).sum(1)
    on_one = G.sum(1) ** 2 / m
    on_hat = (G * y_hat).sum(1) ** 2
    rhs = (gain * (g_sq - on_one - on_hat / m)).sum()
    printed = (gain * (g_sq - on_one - on_hat / math.sqrt(m))).sum()
    total = g_sq.sum()
    return Theorem41((D * D).sum(), rhs, printed, gain.mean(), on_one.sum() / total, (on_hat / m).sum() / total,
                     total)


def is_plain_batchnorm(module: nn.Module) -> bool:
    """Exactly BN (not noisy BN, whose output is not gamma * y_hat + beta): the theorem's layer."""
    return type(module) in (nn.BatchNorm1d, nn.BatchNorm2d)


class Theorem41Hooks:
    """Tensor hooks on the training forward that collect (y, dL/dz, dL/dy) of each chosen BN layer.

    ``attach`` before the forward; after ``loss.backward()``, ``collect`` returns each layer's
    ``Theorem41`` and removes the hooks. Tensor hooks only observe: the step computes what it would.
    """

    def __init__(self, norms: dict[int, nn.Module]):
        self.norms = {i: m for i, m in norms.items() if is_plain_batchnorm(m)}
        self._handles: list = []
        self._seen: dict[int, dict[str, torch.Tensor]] = {}

    def attach(self) -> None:
        """Hook the next forward of each chosen layer only (the training forward): a probe pass that runs
        before ``collect`` (another measurement's) is not seen."""
        handles: dict[int, object] = {}
        for i, norm in self.norms.items():
            def forward_hook(module, inputs, output, i=i):
                handles[i].remove()
                if not module.training:
                    return
                seen = self._seen[i] = {"y": inputs[0].detach()}
                if inputs[0].requires_grad:
                    inputs[0].register_hook(lambda grad: seen.__setitem__("dy", grad.detach()))
                if output.requires_grad:
                    output.register_hook(lambda grad: seen.__setitem__("g", grad.detach()))
            handles[i] = norm.register_forward_hook(forward_hook)
            self._handles.append(handles[i])

    def collect(self) -> dict[int, Theorem41]:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        out = {}
        for i, seen in self._seen.items():
            if "dy" in seen and "g" in seen:
                norm = self.norms[i]
                out[i] = theorem41(seen["y"], seen["g"], seen["dy"], norm.weight, norm.eps)
        self._seen.clear()
        return out


@register
class Theorem41Measure(Measurement):
    """Both sides of Theorem 4.1 per BN layer (``thm41_*``), from tensor hooks on the training step."""

    name = "theorem41"
    Conf = Theorem41Conf
    order = 70
    phases = ("before_forward", "after_backward")

    def __init__(self, conf: Theorem41Conf, ctx):
        super().__init__(conf, ctx)
        blocks = ctx.model.blocks
        chosen = conf.layers or range(1, len(blocks) + 1)
        self.hooks = Theorem41Hooks({i: blocks[i - 1].norm for i in chosen})

    @classmethod
    def cost(cls, conf: Theorem41Conf) -> Cost:
        return Cost(0, "0 passes: tensor hooks on the training forward/backward, then sums over each BN layer")

    @classmethod
    def metrics(cls, conf: Theorem41Conf) -> list[str]:
        return list(THM41_METRICS)

    @classmethod
    def checks(cls, conf: Theorem41Conf, n_layers):
        return layer_check("measure.theorem41.layers", list(conf.layers), n_layers)

    @classmethod
    def bench_floor(cls, conf: Theorem41Conf):
        """The arithmetic it cannot avoid: both sides of the theorem from three tensors of each BN layer's
        shape, per unit in float64 (the layer's output stands in for its input and both gradients)."""
        def arithmetic(captured: dict) -> None:
            for h in captured.values():
                theorem41(h, h, h, None, 1e-5)
        return arithmetic

    @classmethod
    def bench_layers(cls, conf: Theorem41Conf) -> list[int]:
        return list(conf.layers or EVERY_BLOCK)  # empty: every BN layer

    def before_forward(self, step: int) -> None:
        self.hooks.attach()

    def after_backward(self, s: Step) -> list[Row]:
        return [Row(s.step, name, v, layer=i) for i, t in self.hooks.collect().items()
                for name, v in zip(THM41_METRICS, t.values())]
