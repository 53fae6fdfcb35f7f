"""Loss landscape (Fig. 4a), gradient predictiveness (Fig. 4b) and effective beta-smoothness (Fig. 4c).

All three walk the same line w - eta * g(w) and share its passes: one forward+backward per eta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from bnstudy.measures.functional import LossFn, Params, RNGState, flat_norm, forward_at, loss_and_grads


def eta_grid(lr: float, eta_min: float, eta_max: float, points: int, spacing: str = "log") -> list[float]:
    """Step sizes ``lr * [eta_min .. eta_max]`` (multiples of the learning rate), log- or evenly spaced."""
    if points < 1 or eta_min <= 0 or eta_max < eta_min:
        raise ValueError(f"need points >= 1 and 0 < eta_min <= eta_max, got {points}, {eta_min}, {eta_max}")
    if spacing == "log":
        grid = torch.logspace(torch.log10(torch.tensor(eta_min)), torch.log10(torch.tensor(eta_max)), points, dtype=torch.float64)
    elif spacing == "linear":
        grid = torch.linspace(eta_min, eta_max, points, dtype=torch.float64)
    else:
        raise ValueError(f"measure.landscape.spacing={spacing!r} is unknown; valid: ['linear', 'log']")
    return [lr * float(v) for v in grid]


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

    max over eta of ||g(h) - g(h - eta g(h))|| / ||eta g(h)||, the layers below h held fixed.
    """
    captured: dict[str, torch.Tensor] = {}

    def replace(_module, _inputs, output):
        if "h" in captured:  # a probe pass: substitute the moved activations
            return captured["h_moved"]
        captured["h"] = output
        return output

    def grad_at(h_moved: Optional[torch.Tensor]):
        if h_moved is not None:
            captured["h_moved"] = h_moved.requires_grad_(True)
        loss = loss_fn(forward_at(model, params, x, rng), y)
        target = captured["h_moved"] if h_moved is not None else captured["h"]
        return loss.detach(), torch.autograd.grad(loss, target)[0]

    handle = probe.register_forward_hook(replace)
    try:
        with torch.enable_grad():
            _, g = grad_at(None)
            h = captured["h"].detach()
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
