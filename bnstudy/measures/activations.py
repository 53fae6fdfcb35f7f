"""Activation distributions (Figs. 1c, 2, 6, 9) and moment shifts (Fig. 8, the browser reproduction)."""

from __future__ import annotations

import random
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
    """Up to ``samples`` values of each unit (a seeded random subset of its N[xHxW] values).

    Python's ``random.sample`` picks k of n positions in O(k) (a permutation of all N x H x W positions
    would cost O(n) per measured step), independently of torch's global RNG.
    """
    out = {}
    rng = random.Random(seed)
    for u in units:
        v = unit_values(h, u)
        if v.numel() > samples:
            v = v[torch.tensor(rng.sample(range(v.numel()), samples), device=v.device)]
        out[u] = v
    return out


@dataclass
class LayerMoments:
    """Per-unit mean and (biased) variance of a layer's activations over the batch, stacked as one
    (2, units) float64 tensor so that shifts, averages and read-backs are one operation each."""

    stats: torch.Tensor  # (2, units): row 0 the means, row 1 the variances

    @property
    def mean(self) -> torch.Tensor:
        return self.stats[0]

    @property
    def var(self) -> torch.Tensor:
        return self.stats[1]


def layer_moments(h: torch.Tensor) -> LayerMoments:
    """Moments of every unit over N (and H x W for conv), in float64.

    Two passes (mean, then the mean of squared deviations) reduced in place over the non-unit dims:
    as accurate as a one-pass ``var_mean`` and several times faster on the CPU, with no transposed copy.
    """
    h = h.detach()
    dims = [d for d in range(h.dim()) if d != 1]
    mean = h.mean(dims, keepdim=True)
    centred = h - mean
    var = torch.mul(centred, centred).mean(dims)
    return LayerMoments(torch.stack([mean.reshape(-1), var]).double())


def moment_shift(prev: LayerMoments, cur: LayerMoments) -> LayerMoments:
    """|mu_t - mu_prev| and |var_t - var_prev| per unit (also the drift from step 0 when prev is step 0)."""
    return LayerMoments((cur.stats - prev.stats).abs())
