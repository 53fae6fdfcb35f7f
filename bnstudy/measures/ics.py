"""Gradient-based internal covariate shift, Definition 2.1 of the paper (Fig. 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from bnstudy.measures.functional import LossFn, Params, RNGState, loss_and_grads, trainable_params
from bnstudy.schema import ranged
from bnstudy.measures.registry import Cost, Measurement, Row, Step, layer_check, register

ICS_L2 = "ics_l2"  # per layer: ||G - G'||_2
ICS_COS = "ics_cos"  # per layer: cos(G, G')


@dataclass
class ICSConf:
    every: int = ranged(0, ge=0)
    layers: list[int] = ranged(factory=lambda: [1, 2], ge=1)


@dataclass
class ICSResult:
    layer: int
    l2: float  # ||G - G'||_2
    cosine: float  # cos(G, G')


def gradient_ics(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    before: Params,
    after: Params,
    layer_params: dict[int, list[str]],
    layers: list[int],
    weight_of: dict[int, str],
    grads_before: Optional[Params] = None,
    rng: Optional[RNGState] = None,
) -> list[ICSResult]:
    """For each layer i: G = grad_{W_i} L(w_t; B_t), G' = grad_{W_i} L(w_1^{t+1}..w_{i-1}^{t+1}, w_i^t..; B_t).

    ``before``/``after`` are all trainable parameters at steps t and t+1 (after the optimiser's actual
    step); ``layer_params[j]`` names the parameters of layer j's block (its weight, bias and norm
    gamma/beta: [open] a block's gamma/beta count as part of that layer); ``weight_of[i]`` names W_i.
    One forward+backward per layer (G comes from ``grads_before``, the training step's gradient).
    """
    results = []
    for i in layers:
        w = weight_of[i]
        if grads_before is not None and w in grads_before:
            g = grads_before[w]
        else:
            g = loss_and_grads(model, loss_fn, before, x, y, wrt=[w], rng=rng)[1][w]
        mixed = dict(before)
        for j in range(1, i):
            for n in layer_params[j]:
                mixed[n] = after[n]
        g_shift = loss_and_grads(model, loss_fn, mixed, x, y, wrt=[w], rng=rng)[1][w]
        l2 = torch.linalg.vector_norm(g - g_shift)
        cos = torch.nn.functional.cosine_similarity(g.flatten(), g_shift.flatten(), dim=0, eps=1e-30)
        results.append((i, l2, cos))
    values = torch.stack([torch.stack([l2, c]) for _, l2, c in results]).double().cpu().tolist() if results else []
    return [ICSResult(i, v[0], v[1]) for (i, _, _), v in zip(results, values)]


@register
class GradientICS(Measurement):
    """Definition 2.1 after the optimiser's step: w_{t+1} is the step it actually took (momentum and weight
    decay included), G the training step's own gradient kept in the snapshot."""

    name = "ics"
    Conf = ICSConf
    order = 40
    phases = ("after_step",)
    needs_rng = True
    needs_snapshot = True

    @classmethod
    def cost(cls, conf: ICSConf) -> Cost:
        n = len(conf.layers)
        return Cost(n, f"1 forward + 1 backward per layer (layers {','.join(map(str, conf.layers))})", "layer", n)

    @classmethod
    def metrics(cls, conf: ICSConf) -> list[str]:
        return [ICS_L2, ICS_COS]

    @classmethod
    def checks(cls, conf: ICSConf, n_layers):
        return layer_check("measure.ics.layers", conf.layers, n_layers) if conf.every else []

    def after_step(self, s: Step) -> list[Row]:
        c = self.ctx
        after = {n: p.detach() for n, p in trainable_params(c.model).items()}
        res = gradient_ics(c.model, c.loss_fn, s.x, s.y, s.before[0], after, c.layer_params, list(self.conf.layers),
                           c.weight_of, s.before[1], s.rng)
        rows: list[Row] = []
        for r in res:
            rows += [Row(s.step, ICS_L2, r.l2, layer=r.layer), Row(s.step, ICS_COS, r.cosine, layer=r.layer)]
        return rows
