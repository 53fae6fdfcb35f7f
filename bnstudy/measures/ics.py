"""Gradient-based internal covariate shift, Definition 2.1 of the paper (Fig. 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from bnstudy.measures.functional import LossFn, Params, RNGState, loss_and_grads


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
