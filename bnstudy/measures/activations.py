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


def units_matrix(h: torch.Tensor, units: list[int]) -> torch.Tensor:
    """The chosen units' values as a (len(units), N[xHxW]) matrix: row j is ``unit_values(h, units[j])``.

    One gather on the (units-first) transposed view, so a conv layer's values are copied once.
    """
    idx = torch.tensor(units, device=h.device)
    return h.detach().transpose(0, 1)[idx].reshape(len(units), -1)


def sample_units(values: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """Up to ``samples`` values of each row of ``values`` (a seeded random subset of its positions).

    Python's ``random.sample`` picks k of n positions in O(k) (a permutation of all N x H x W positions
    would cost O(n) per measured step), independently of torch's global RNG; one gather takes them all.
    """
    n = values.shape[1]
    if n <= samples:
        return values
    rng = random.Random(seed)
    pos = torch.tensor([rng.sample(range(n), samples) for _ in range(len(values))], device=values.device)
    return values.gather(1, pos)


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
