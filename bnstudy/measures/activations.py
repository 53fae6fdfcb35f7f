"""Activation distributions (Figs. 1c, 2, 6, 9) and moment shifts (Fig. 8, the browser reproduction)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import torch

from bnstudy.schema import Choice, ranged
from bnstudy.measures.registry import Cost, Measurement, Row, Step, is_due, layer_check, register

ACT_MEAN = "act_mean"  # per chosen unit: mean over the batch (N[xHxW] values)
ACT_VAR = "act_var"  # per chosen unit: biased variance over the batch
ACT_SAMPLE = "act_sample"  # per chosen unit: up to ``samples`` of its values (one row each)
MOMENT_SHIFT_MEAN = "moment_shift_mean"  # |mean_t - mean_prev| (prev: ``shift``'s step before t);
MOMENT_SHIFT_VAR = "moment_shift_var"  # unit None: the average over all the layer's units
MOMENT_DRIFT_MEAN = "moment_drift_mean"  # mean_t - mean_0 (0: the first measured step), |.| unless ``drift``
MOMENT_DRIFT_VAR = "moment_drift_var"  # is "signed"; unit None: the average |drift| over the layer's units


def quantile_metric(q: float) -> str:
    """``act_q05`` for the 5% quantile of a chosen unit's values (two digits of percent)."""
    return f"act_q{round(q * 100):02d}"


Shift = Choice("Shift", {"measured": "measured", "successive": "successive"})
Drift = Choice("Drift", {"abs": "abs", "signed": "signed"})


@dataclass
class ActivationsConf:
    every: int = ranged(0, ge=0)  # 0 = off; N = every N steps (1 = every step)
    layers: list[int] = ranged(factory=lambda: [1, 2], ge=1)  # 1-based block indices
    units: int = ranged(1, ge=1)  # how many units (channels) per layer, picked once at random (seeded)
    samples: int = ranged(128, ge=1)  # values kept per unit and step for histograms
    quantiles: list[float] = ranged(factory=lambda: [0.05, 0.25, 0.5, 0.75, 0.95], ge=0, le=1)
    # [open] the moment shift at a measured step t is against: "measured" the previous measured step (the
    # browser reproduction's "between measurements"); "successive" step t-1 (Fig. 8: between successive
    # training steps; the layer's moments are then also taken, on the training forward, at each step before
    # a measured one)
    shift: Shift = Shift.measured
    drift: Drift = Drift.abs  # abs: |m_t - m_0| | signed: m_t - m_0 per unit, as Fig. 8's drift axis


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


SHIFTS = ("measured", "successive")
DRIFTS = ("abs", "signed")


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


def moment_shift(prev: LayerMoments, cur: LayerMoments, signed: bool = False) -> LayerMoments:
    """|mu_t - mu_prev| and |var_t - var_prev| per unit (also the drift from step 0 when prev is step 0);
    ``signed``: mu_t - mu_prev and var_t - var_prev."""
    d = cur.stats - prev.stats
    return LayerMoments(d if signed else d.abs())


@register
class Activations(Measurement):
    """Samples, moments and quantiles of a few chosen units of some blocks, and each layer's moment shift
    (from the previous measured step) and drift (from the first), read off the training forward by hooks.

    Each layer's numbers are gathered into one float64 tensor and read back with one transfer.
    """

    name = "activations"
    Conf = ActivationsConf
    order = 20

    def __init__(self, conf: ActivationsConf, ctx):
        super().__init__(conf, ctx)
        self.units: dict[int, list[int]] = {}
        self.first: dict[int, LayerMoments] = {}
        self.prev: dict[int, LayerMoments] = {}

    @classmethod
    def cost(cls, conf: ActivationsConf) -> Cost:
        return Cost(0, "0 passes: hooks on the training forward (samples, moments, quantiles, shift/drift)")

    @classmethod
    def metrics(cls, conf: ActivationsConf) -> list[str]:
        return [ACT_MEAN, ACT_VAR, *map(quantile_metric, conf.quantiles), ACT_SAMPLE, MOMENT_SHIFT_MEAN,
                MOMENT_SHIFT_VAR, MOMENT_DRIFT_MEAN, MOMENT_DRIFT_VAR]

    @classmethod
    def checks(cls, conf: ActivationsConf, n_layers):
        if not conf.every:
            return []
        return [*layer_check("measure.activations.layers", conf.layers, n_layers),
                (conf.shift in SHIFTS, f"measure.activations.shift={conf.shift!r}; valid: {list(SHIFTS)}"),
                (conf.drift in DRIFTS, f"measure.activations.drift={conf.drift!r}; valid: {list(DRIFTS)}")]

    def due(self, step: int) -> bool:
        """At each measured step, and (shift "successive") at the step before it, for its moments."""
        return is_due(self.conf.every, step) or (self.conf.shift == "successive" and is_due(self.conf.every, step + 1))

    @classmethod
    def bench_settings(cls, tiny: bool) -> dict:
        return {"activations.every": 1, "activations.samples": 128}

    @classmethod
    def bench_floor(cls, conf: ActivationsConf) -> Callable[[dict], None]:
        """The arithmetic it cannot avoid, with this module's functions and nothing else: the moments of
        every unit of each captured layer, and the chosen units' values, quantiles and samples (no rows,
        no shift bookkeeping, no CSV)."""
        units = list(range(conf.units))

        def arithmetic(captured: dict) -> None:
            for h in captured.values():
                layer_moments(h)
                values = units_matrix(h, units)
                torch.quantile(values, torch.tensor(conf.quantiles, dtype=h.dtype, device=h.device), dim=1)
                sample_units(values, conf.samples, seed=0)

        return arithmetic

    @classmethod
    def hook_layers(cls, conf: ActivationsConf) -> list[int]:
        return list(dict.fromkeys(conf.layers))

    def after_backward(self, s: Step) -> list[Row]:
        a, seed = self.conf, self.ctx.seed
        rows: list[Row] = []
        mine = set(a.layers)
        if not is_due(a.every, s.step):  # shift "successive": the step before a measured one, moments only
            self.prev = {i: layer_moments(h) for i, h in s.captured.items() if i in mine}
            return rows
        for i, h in [(i, h) for i, h in s.captured.items() if i in mine]:  # in forward order
            if i not in self.units:
                self.units[i] = pick_units(h.shape[1], a.units, seed * 1000 + i)
            units = self.units[i]
            moments = layer_moments(h)
            labels = [(m, u) for m in (ACT_MEAN, ACT_VAR) for u in units]  # one per value, in order
            blocks = [moments.stats[:, units].reshape(-1)]
            values = units_matrix(h, units)  # (units, N[xHxW])
            if a.quantiles:
                q = torch.quantile(values, torch.tensor(a.quantiles, dtype=h.dtype, device=h.device), dim=1)
                labels += [(quantile_metric(p), u) for p in a.quantiles for u in units]
                blocks.append(q.double().reshape(-1))
            samples = sample_units(values, a.samples, seed * 1_000_003 + s.step)  # (units, samples)
            labels += [(ACT_SAMPLE, u) for u in units for _ in range(samples.shape[1])]
            blocks.append(samples.double().reshape(-1))
            prev = self.prev.get(i)
            first = self.first.setdefault(i, moments)
            for names, ref, signed in (((MOMENT_SHIFT_MEAN, MOMENT_SHIFT_VAR), prev, False),
                                       ((MOMENT_DRIFT_MEAN, MOMENT_DRIFT_VAR), first, a.drift == "signed")):
                if ref is not None:
                    d = moment_shift(ref, moments, signed).stats  # (2, units)
                    labels += [(name, u) for name in names for u in [None, *units]]
                    blocks.append(torch.cat([d.abs().mean(1, keepdim=True), d[:, units]], dim=1).reshape(-1))
            self.prev[i] = moments
            numbers = torch.cat(blocks).tolist()
            rows += [Row(s.step, metric, v, layer=i, unit=u) for (metric, u), v in zip(labels, numbers, strict=True)]
        return rows

    def state_dict(self) -> dict:
        pack = lambda d: {i: m.stats for i, m in d.items()}
        return {"units": self.units, "first": pack(self.first), "prev": pack(self.prev)}

    def load_state_dict(self, state: dict) -> None:
        unpack = lambda d: {int(i): LayerMoments(t) for i, t in d.items()}
        self.units = {int(i): list(u) for i, u in state["units"].items()}
        self.first, self.prev = unpack(state["first"]), unpack(state["prev"])
