"""Loss landscape (Fig. 4a), gradient predictiveness (Fig. 4b) and effective beta-smoothness (Fig. 4c).

All three walk the same line w - eta * g(w) and share its passes: one forward+backward per eta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from bnstudy.measures.functional import LossFn, Params, RNGState, flat_norm, forward_at, loss_and_grads, trainable_params
from bnstudy.schema import BetaWrt, Spacing, ranged
from bnstudy.measures.registry import Cost, Measurement, Row, Step, register

LANDSCAPE_LOSS = "landscape_loss"  # per eta: L(w - eta g(w))
GRAD_PRED = "grad_pred"  # per eta: ||g(w) - g(w - eta g(w))||, gradient predictiveness
BETA_RATIO = "beta_ratio"  # per eta: GRAD_PRED / ||eta g(w)||
LANDSCAPE_LOSS_MIN = "landscape_loss_min"  # over the eta grid: the band of Fig. 4a
LANDSCAPE_LOSS_MAX = "landscape_loss_max"
GRAD_PRED_MAX = "grad_pred_max"
BETA = "beta"  # effective beta-smoothness: max of BETA_RATIO over the grid


@dataclass
class LandscapeConf:
    """Loss band, gradient predictiveness and effective beta share one eta grid and one pass per eta."""

    every: int = ranged(0, ge=0)
    eta_min: float = ranged(0.5, gt=0)  # multiples of the learning rate ([1/2, 4] x lr for CNNs)
    eta_max: float = ranged(4.0, gt=0)
    points: int = ranged(8, ge=1)
    spacing: Spacing = Spacing.log  # log | linear
    beta_wrt: BetaWrt = BetaWrt.weights  # weights | activations (the browser reproduction's variant, bnstudy.measures.beta_act)
    beta_layer: int = ranged(1, ge=1)  # block whose activations are used when beta_wrt=activations


def eta_grid(lr: float, eta_min: float, eta_max: float, points: int, spacing: str = "log") -> list[float]:
    """Step sizes ``lr * [eta_min .. eta_max]`` (multiples of the learning rate), log- or evenly spaced.

    In float64 with exact endpoints: log spacing is ``eta_min * (eta_max / eta_min) ** (k / (points - 1))``
    (a geometric sequence), linear ``eta_min + (eta_max - eta_min) * k / (points - 1)``; one point is eta_min.
    """
    if points < 1 or eta_min <= 0 or eta_max < eta_min:
        raise ValueError(f"need points >= 1 and 0 < eta_min <= eta_max, got {points}, {eta_min}, {eta_max}")
    if spacing not in ("log", "linear"):
        raise ValueError(f"measure.landscape.spacing={spacing!r} is unknown; valid: ['linear', 'log']")
    lo, hi = float(eta_min), float(eta_max)
    fractions = [k / (points - 1) for k in range(points)] if points > 1 else [0.0]
    if spacing == "log":
        grid = [lo * (hi / lo) ** f for f in fractions]
    else:
        grid = [lo + (hi - lo) * f for f in fractions]
    grid[-1] = hi if points > 1 else lo  # the endpoints exactly, whatever the rounding in between
    return [lr * v for v in grid]


@dataclass
class LandscapeResult:
    """Per eta: loss L(w - eta g), predictiveness ||g(w) - g(w - eta g)||, and their beta ratio."""

    etas: list[float]
    losses: list[float]
    grad_diffs: list[float]
    betas: list[float]  # ||g(w) - g(w - eta g)|| / ||eta g(w)||

    @property
    def beta(self) -> float:
        """Effective beta-smoothness: the max of the ratio over the eta grid."""
        return max(self.betas)


def landscape(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    etas: list[float],
    params: Params,
    grads: Optional[Params] = None,
    rng: Optional[RNGState] = None,
) -> LandscapeResult:
    """Walk w - eta * g(w) for each eta; evaluation only (the model and its buffers are untouched).

    ``grads`` is g(w) on the same batch (the training step's gradient); computed here if not given.
    """
    if grads is None:
        _, grads = loss_and_grads(model, loss_fn, params, x, y, rng=rng)
    names = list(grads)
    g_norm = flat_norm(grads)
    losses, diffs, betas = [], [], []
    # torch.func.vmap over eta (batched buffer copies, randomness="same") agrees but was slower on CPU (small CNN,
    # batch 128, 8 etas, 2 threads): loop 44 / 57 / 108 ms vs vmap 69 / 116 / 128 ms (norm none / batch / noisy_batch).
    for eta in etas:
        moved = dict(params)
        for n in names:
            moved[n] = params[n].detach() - eta * grads[n]
        loss, g_eta = loss_and_grads(model, loss_fn, moved, x, y, wrt=names, rng=rng)
        diff = flat_norm([grads[n] - g_eta[n] for n in names])
        losses.append(loss)
        diffs.append(diff)
        betas.append(diff / (eta * g_norm))
    to_list = lambda ts: torch.stack(ts).double().cpu().tolist()  # one host sync for the whole grid
    return LandscapeResult(list(etas), to_list(losses), to_list(diffs), to_list(betas))


def activation_beta(
    model: nn.Module,
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    probe: nn.Module,
    etas: list[float],
    params: Params,
    rng: Optional[RNGState] = None,
) -> LandscapeResult:
    """The browser reproduction's beta: gradients w.r.t. one layer's activations h (the ``probe``'s output).

    max over eta of ||g(h) - g(h - eta g(h))|| / ||eta g(h)||, the layers below h held fixed; g(h) is
    the gradient of the batch loss w.r.t. h (all N[xHxW] values of the layer), so ``losses`` are
    L(h - eta g(h)). The probe's output enters as a leaf: backward stops at h, never reaches a weight.
    One forward+backward for g(h), then one per eta.
    """
    fixed = {n: p.detach() for n, p in params.items()}
    state: dict[str, torch.Tensor] = {}

    def replace(_module, _inputs, output):
        if "moved" in state:  # a probe pass: substitute the moved activations
            return state["moved"]
        state["h"] = output.detach().requires_grad_(True)
        return state["h"]

    def grad_at(moved: Optional[torch.Tensor]):
        if moved is not None:
            state["moved"] = moved.requires_grad_(True)
        loss = loss_fn(forward_at(model, fixed, x, rng), y)
        return loss.detach(), torch.autograd.grad(loss, state["moved" if moved is not None else "h"])[0]

    handle = probe.register_forward_hook(replace)
    try:
        with torch.enable_grad():
            _, g = grad_at(None)
            h = state["h"].detach()
            g_norm = torch.linalg.vector_norm(g)
            losses, diffs, betas = [], [], []
            for eta in etas:
                loss, g_eta = grad_at((h - eta * g).detach())
                diff = torch.linalg.vector_norm(g - g_eta)
                losses.append(loss)
                diffs.append(diff)
                betas.append(diff / (eta * g_norm))
    finally:
        handle.remove()
    to_list = lambda ts: torch.stack(ts).double().cpu().tolist()
    return LandscapeResult(list(etas), to_list(losses), to_list(diffs), to_list(betas))


@register
class Landscape(Measurement):
    """Fig. 4: walk w - eta g(w) on the step's batch, g(w) the training step's own gradient (in ``.grad``),
    with the noise of the step's forward replayed (``measure.fix_noise``)."""

    name = "landscape"
    Conf = LandscapeConf
    order = 30
    needs_rng = True

    def __init__(self, conf: LandscapeConf, ctx):
        super().__init__(conf, ctx)
        self.etas = eta_grid(ctx.lr, conf.eta_min, conf.eta_max, conf.points, conf.spacing)

    @classmethod
    def cost(cls, conf: LandscapeConf) -> Cost:
        p = conf.points
        return Cost(p, f"P={p} forward + P backward, shared by landscape, predictiveness, beta", "eta", p)

    @classmethod
    def metrics(cls, conf: LandscapeConf) -> list[str]:
        return [LANDSCAPE_LOSS, GRAD_PRED, BETA_RATIO, LANDSCAPE_LOSS_MIN, LANDSCAPE_LOSS_MAX, GRAD_PRED_MAX, BETA]

    @classmethod
    def checks(cls, conf: LandscapeConf, n_layers):
        return [(conf.beta_wrt in ("weights", "activations"),
                 f"measure.landscape.beta_wrt={conf.beta_wrt!r} is unknown; valid: ['activations', 'weights']")]

    @classmethod
    def bench_settings(cls, tiny: bool) -> dict:
        return {"landscape.every": 1, "landscape.points": 2 if tiny else 8}

    def after_backward(self, s: Step) -> list[Row]:
        params = {n: p.detach() for n, p in trainable_params(self.ctx.model).items()}
        grads = {n: p.grad for n, p in trainable_params(self.ctx.model).items() if p.grad is not None}
        res = landscape(self.ctx.model, self.ctx.loss_fn, s.x, s.y, self.etas, params, grads, s.rng)
        return landscape_rows(s.step, res)


def landscape_rows(step: int, res: LandscapeResult) -> list[Row]:
    rows: list[Row] = []
    for eta, loss, diff, beta in zip(res.etas, res.losses, res.grad_diffs, res.betas):
        rows += [Row(step, LANDSCAPE_LOSS, loss, eta=eta), Row(step, GRAD_PRED, diff, eta=eta),
                 Row(step, BETA_RATIO, beta, eta=eta)]
    rows += [Row(step, LANDSCAPE_LOSS_MIN, min(res.losses)), Row(step, LANDSCAPE_LOSS_MAX, max(res.losses)),
             Row(step, GRAD_PRED_MAX, max(res.grad_diffs)), Row(step, BETA, res.beta)]
    return rows
