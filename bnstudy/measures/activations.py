"""Activation distributions (Figs. 1c, 2, 6, 9) and moment shifts (Fig. 8, the browser reproduction)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def unit_values(h: torch.Tensor, unit: int) -> torch.Tensor:
    """All values of one unit (channel) over the batch: N for linear layers, N x H x W for conv."""
    return h[:, unit].reshape(-1)


def pick_units(num_units: int, count: int, seed: int) -> list[int]:
    """A fixed random set of units, the same at every step (seeded, independent of torch's global RNG)."""
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(num_units, generator=g)[: min(count, num_units)].tolist())


def sample_units(h: torch.Tensor, units: list[int], samples: int, seed: int) -> dict[int, torch.Tensor]:
    """Up to ``samples`` values of each unit (a seeded random subset of its N[xHxW] values)."""
    out = {}
    g = torch.Generator().manual_seed(seed)
    for u in units:
        v = unit_values(h, u)
        if v.numel() > samples:
            v = v[torch.randperm(v.numel(), generator=g)[:samples].to(v.device)]
        out[u] = v
    return out


@dataclass
class LayerMoments:
    """Per-unit mean and (biased) variance of a layer's activations over the batch."""

    mean: torch.Tensor  # (units,)
    var: torch.Tensor  # (units,)


def layer_moments(h: torch.Tensor) -> LayerMoments:
    """Moments of every unit over N (and H x W for conv)."""
    flat = h.detach().transpose(0, 1).reshape(h.shape[1], -1)
    var, mean = torch.var_mean(flat, dim=1, correction=0)  # one pass, in the activations' precision
    return LayerMoments(mean.double(), var.double())


def moment_shift(prev: LayerMoments, cur: LayerMoments) -> LayerMoments:
    """|mu_t - mu_prev| and |var_t - var_prev| per unit (also the drift from step 0 when prev is step 0)."""
    return LayerMoments((cur.mean - prev.mean).abs(), (cur.var - prev.var).abs())
