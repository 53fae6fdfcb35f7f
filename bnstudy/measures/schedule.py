"""The training loop's one interface to the measurements: what is due at a step, and its CSV rows.

Every probe here is evaluation only. It works on copies of the buffers (``forward_at``), gets its
gradients from ``torch.autograd.grad`` (``.grad`` untouched), and puts torch's RNG back where the
training step left it, so training with measurements on is bit-for-bit training with them off.
With ``fix_noise`` each probe replays the RNG state captured before the step's forward, so noisy
BN's noise is the step's own and differences between probes come from the weights alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from bnstudy.config import MeasureConf
from bnstudy.measures.activations import (LayerMoments, layer_moments, moment_shift, pick_units, sample_units,
                                          units_matrix)
from bnstudy.measures.functional import LossFn, Params, RNGState, trainable_params
from bnstudy.measures.ics import gradient_ics
from bnstudy.measures.landscape import activation_beta, eta_grid, landscape
from bnstudy.models import BlockNet

Row = tuple  # (step, metric, layer, unit, eta, value)


def is_due(every: int, step: int) -> bool:
    return every > 0 and step % every == 0


@dataclass
class Due:
    """What the loop must prepare before the step's forward."""

    hooks: bool = False  # activation hooks on this forward
    rng: bool = False  # capture the RNG state before the forward
    snapshot: bool = False  # keep w_t for after the optimiser step (ICS)
    after_backward: bool = False


@dataclass
class _ActivationState:
    units: dict[int, list[int]] = field(default_factory=dict)
    first: dict[int, LayerMoments] = field(default_factory=dict)
    prev: dict[int, LayerMoments] = field(default_factory=dict)


class Probes:
    """Scheduled measurements of one run."""

    def __init__(self, cfg: MeasureConf, model: BlockNet, loss_fn: LossFn, lr: float, seed: int):
        self.cfg, self.model, self.loss_fn, self.seed = cfg, model, loss_fn, seed
        lc = cfg.landscape
        self.etas = eta_grid(lr, lc.eta_min, lc.eta_max, lc.points, lc.spacing) if lc.every else []
        names = {id(p): n for n, p in model.named_parameters()}
        self.layer_params = {i: [names[id(p)] for p in b.parameters()] for i, b in enumerate(model.blocks, 1)}
        self.weight_of = {i: names[id(b.layer.weight)] for i, b in enumerate(model.blocks, 1)}
        self.acts = _ActivationState()
        self._captured: dict[int, torch.Tensor] = {}
        self._handles: list = []
        self._prev_loss: Optional[torch.Tensor] = None

    # ------------------------------------------------------------------ schedule
    def due(self, step: int) -> Due:
        c = self.cfg
        acts, ics, land = is_due(c.activations.every, step), is_due(c.ics.every, step), is_due(c.landscape.every, step)
        lc = is_due(c.loss_change.every, step) or is_due(c.loss_change.every, step + 1)  # L_t needs L_{t-1}
        return Due(hooks=acts, rng=(ics or land) and c.fix_noise, snapshot=ics, after_backward=acts or land or lc)

    def before_forward(self, step: int, due: Due) -> None:
        """Hook the chosen layers' probes so the training forward itself yields the activations."""
        if not due.hooks:
            return
        for i in self.cfg.activations.layers:
            def keep(_m, _inp, out, i=i):
                self._captured[i] = out.detach()
            self._handles.append(self.model.block(i).probe.register_forward_hook(keep))

    # ------------------------------------------------------------------ measurements
    def after_backward(self, step: int, x, y, loss: torch.Tensor, rng: Optional[RNGState]) -> list[Row]:
        """Measurements at w_t with the step's gradient g(w_t) in ``.grad`` (before the update)."""
        rows: list[Row] = []
        c = self.cfg
        if is_due(c.loss_change.every, step) and self._prev_loss is not None:
            rows.append((step, "loss_change", None, None, None, (loss.detach() - self._prev_loss).abs()))
        self._prev_loss = loss.detach() if is_due(c.loss_change.every, step + 1) else None
        if self._handles:
            for h in self._handles:
                h.remove()
            self._handles.clear()
            rows += self._activation_rows(step)
        if is_due(c.landscape.every, step):
            post = RNGState.capture()
            params = {n: p.detach() for n, p in trainable_params(self.model).items()}
            grads = {n: p.grad for n, p in trainable_params(self.model).items() if p.grad is not None}
            res = landscape(self.model, self.loss_fn, x, y, self.etas, params, grads, rng)
            rows += _landscape_rows(step, res)
            if c.landscape.beta_wrt == "activations":
                probe = self.model.block(c.landscape.beta_layer).probe
                act = activation_beta(self.model, self.loss_fn, x, y, probe, self.etas, params, rng)
                rows.append((step, "beta_act", c.landscape.beta_layer, None, None, act.beta))
            elif c.landscape.beta_wrt != "weights":
                raise ValueError(f"measure.landscape.beta_wrt={c.landscape.beta_wrt!r}; valid: ['activations', 'weights']")
            post.restore()
        return rows

    def snapshot(self) -> tuple[Params, Params]:
        """w_t and g(w_t), kept for the ICS probe that runs after the optimiser's step."""
        params = trainable_params(self.model)
        return ({n: p.detach().clone() for n, p in params.items()},
                {n: p.grad.clone() for n, p in params.items() if p.grad is not None})

    def after_step(self, step: int, x, y, before: tuple[Params, Params], rng: Optional[RNGState]) -> list[Row]:
        """Gradient ICS (Definition 2.1), with w_{t+1} from the step the optimiser actually took."""
        post = RNGState.capture()
        after = {n: p.detach() for n, p in trainable_params(self.model).items()}
        res = gradient_ics(self.model, self.loss_fn, x, y, before[0], after, self.layer_params,
                           list(self.cfg.ics.layers), self.weight_of, before[1], rng)
        post.restore()
        rows: list[Row] = []
        for r in res:
            rows += [(step, "ics_l2", r.layer, None, None, r.l2), (step, "ics_cos", r.layer, None, None, r.cosine)]
        return rows

    # ------------------------------------------------------------------ helpers
    def _activation_rows(self, step: int) -> list[Row]:
        """Samples, moments and quantiles of the chosen units, moment shift/drift of each captured layer.

        Each layer's numbers are gathered into one float64 tensor and read back with one transfer.
        """
        a = self.cfg.activations
        rows: list[Row] = []
        for i, h in self._captured.items():
            if i not in self.acts.units:
                self.acts.units[i] = pick_units(h.shape[1], a.units, self.seed * 1000 + i)
            units = self.acts.units[i]
            moments = layer_moments(h)
            labels = [(m, u) for m in ("act_mean", "act_var") for u in units]  # one per value, in order
            blocks = [moments.stats[:, units].reshape(-1)]
            values = units_matrix(h, units)  # (units, N[xHxW])
            if a.quantiles:
                q = torch.quantile(values, torch.tensor(a.quantiles, dtype=h.dtype, device=h.device), dim=1)
                labels += [(f"act_q{round(p * 100):02d}", u) for p in a.quantiles for u in units]
                blocks.append(q.double().reshape(-1))
            samples = sample_units(values, a.samples, self.seed * 1_000_003 + step)  # (units, samples)
            labels += [("act_sample", u) for u in units for _ in range(samples.shape[1])]
            blocks.append(samples.double().reshape(-1))
            prev = self.acts.prev.get(i)
            first = self.acts.first.setdefault(i, moments)
            for name, ref in (("shift", prev), ("drift", first)):
                if ref is not None:
                    d = moment_shift(ref, moments).stats  # (2, units)
                    labels += [(f"moment_{name}_{stat}", u) for stat in ("mean", "var") for u in [None, *units]]
                    blocks.append(torch.cat([d.mean(1, keepdim=True), d[:, units]], dim=1).reshape(-1))
            self.acts.prev[i] = moments
            numbers = torch.cat(blocks).tolist()
            rows += [(step, metric, i, u, None, v) for (metric, u), v in zip(labels, numbers, strict=True)]
        self._captured.clear()
        return rows

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        s = self.acts
        pack = lambda d: {i: m.stats for i, m in d.items()}
        return {"units": s.units, "first": pack(s.first), "prev": pack(s.prev), "prev_loss": self._prev_loss}

    def load_state_dict(self, state: dict) -> None:
        unpack = lambda d: {int(i): LayerMoments(t) for i, t in d.items()}
        self.acts = _ActivationState({int(i): list(u) for i, u in state["units"].items()},
                                     unpack(state["first"]), unpack(state["prev"]))
        self._prev_loss = state["prev_loss"]


def _landscape_rows(step: int, res) -> list[Row]:
    rows: list[Row] = []
    for eta, loss, diff, beta in zip(res.etas, res.losses, res.grad_diffs, res.betas):
        rows += [(step, "landscape_loss", None, None, eta, loss), (step, "grad_pred", None, None, eta, diff),
                 (step, "beta_ratio", None, None, eta, beta)]
    rows += [(step, "landscape_loss_min", None, None, None, min(res.losses)),
             (step, "landscape_loss_max", None, None, None, max(res.losses)),
             (step, "grad_pred_max", None, None, None, max(res.grad_diffs)),
             (step, "beta", None, None, None, res.beta)]
    return rows
