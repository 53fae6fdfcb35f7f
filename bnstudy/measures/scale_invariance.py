"""Scale invariance of weights followed by a normalisation, and the effective learning rate it implies.

If L(c w) = L(w) for every c > 0 (w: a layer's weight and bias, followed by BN or another
normalisation), Euler's theorem gives <w, grad L> = 0, so plain SGD grows the norm:
``||w - eta g||^2 = ||w||^2 + eta^2 ||g||^2``; the step moves w by an angle, and the effective
learning rate on the sphere is eta / ||w||^2 (van Laarhoven 2017; Arora et al. 2019). BN's eps breaks
the invariance slightly. The weight and the bias are taken together: with the norm after the
activation (ReLU(c (W x + b)) = c ReLU(W x + b)) only their joint scaling is invariant.
Read off w_t, g_t and w_{t+1}, which the step has anyway: zero extra passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bnstudy.measures.registry import Cost, Measurement, Row, Step, register
from bnstudy.schema import ranged

SI_DOT = "si_dot"  # <w_t, g_t>
SI_COS = "si_cos"  # <w_t, g_t> / (||w_t|| ||g_t||)
SI_WNORM = "si_wnorm"  # ||w_t||
SI_GNORM = "si_gnorm"  # ||g_t||
SI_EFF_LR = "si_eff_lr"  # eta / ||w_t||^2
SI_ANGLE = "si_angle"  # the angle between w_t and w_{t+1}
SI_DNORM2 = "si_dnorm2"  # ||w_{t+1}||^2 - ||w_t||^2
SI_DNORM2_PRED = "si_dnorm2_pred"  # eta^2 ||g_t||^2
SCALE_METRICS = (SI_DOT, SI_COS, SI_WNORM, SI_GNORM, SI_EFF_LR, SI_ANGLE, SI_DNORM2, SI_DNORM2_PRED)


def is_scale_invariant(block: nn.Module) -> bool:
    """A Block whose normalisation divides out a positive rescaling of its layer's output: its norm's
    registration says so (``bnstudy.norms.Norm.scale_invariant``, derived from the module unless given)."""
    return bool(getattr(block, "scale_invariant", False))


@dataclass
class ScaleInvarianceConf:
    every: int = ranged(0, ge=0)  # 0 = off; every scale-invariant block (its norm's registration says so) is measured


@dataclass
class ScaleStep:
    """One layer's w = (weight, bias) over one optimiser step."""

    dot: torch.Tensor  # <w_t, g_t>: 0 for an exactly scale-invariant loss
    cos: torch.Tensor  # <w_t, g_t> / (||w_t|| ||g_t||)
    w_norm: torch.Tensor  # ||w_t||
    g_norm: torch.Tensor  # ||g_t||
    eff_lr: torch.Tensor  # eta / ||w_t||^2
    angle: torch.Tensor  # the angle between w_t and w_{t+1}, in radians
    dnorm2: torch.Tensor  # ||w_{t+1}||^2 - ||w_t||^2, as the optimiser moved it
    dnorm2_pred: torch.Tensor  # eta^2 ||g_t||^2: the same, predicted for plain SGD and exact invariance

    def values(self) -> list[torch.Tensor]:
        """In the order of ``SCALE_METRICS``."""
        return [self.dot, self.cos, self.w_norm, self.g_norm, self.eff_lr, self.angle, self.dnorm2, self.dnorm2_pred]


def _flat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).double() for t in ts])


def scale_step(w_before: list[torch.Tensor], grads: list[torch.Tensor], w_after: list[torch.Tensor],
               lr: float) -> ScaleStep:
    """The numbers of one layer from its tensors before and after the step (in float64)."""
    w, g, w1 = _flat(w_before), _flat(grads), _flat(w_after)
    wn, gn, w1n = (torch.linalg.vector_norm(t) for t in (w, g, w1))
    dot = torch.dot(w, g)
    u, v = w / wn, w1 / w1n
    angle = 2 * torch.atan2(torch.linalg.vector_norm(u - v), torch.linalg.vector_norm(u + v))  # exact for tiny angles
    return ScaleStep(dot, dot / (wn * gn), wn, gn, lr / wn ** 2, angle, w1n ** 2 - wn ** 2, lr ** 2 * gn ** 2)


@register
class ScaleInvariance(Measurement):
    """Per scale-invariant block (``si_*``): <w, g>, ||w||, eta/||w||^2, the step's angle and norm growth."""

    name = "scale_invariance"
    Conf = ScaleInvarianceConf
    order = 71
    phases = ("after_step",)
    needs_snapshot = True

    def __init__(self, conf: ScaleInvarianceConf, ctx):
        super().__init__(conf, ctx)
        names = {id(p): n for n, p in ctx.model.named_parameters()}
        self.layers = {i: [names[id(p)] for p in b.layer.parameters()]
                       for i, b in enumerate(ctx.model.blocks, 1) if is_scale_invariant(b)}

    @classmethod
    def cost(cls, conf: ScaleInvarianceConf) -> Cost:
        return Cost(0, "0 passes: w_t and g_t from the step's snapshot, w_{t+1} after it")

    @classmethod
    def metrics(cls, conf: ScaleInvarianceConf) -> list[str]:
        return list(SCALE_METRICS)

    def after_step(self, s: Step) -> list[Row]:
        w_before, g_before = s.before
        now = dict(self.ctx.model.named_parameters())
        rows = []
        for i, names in self.layers.items():
            if not all(n in g_before for n in names):
                continue
            res = scale_step([w_before[n] for n in names], [g_before[n] for n in names], [now[n] for n in names],
                             self.ctx.lr)
            rows += [Row(s.step, m, v, layer=i) for m, v in zip(SCALE_METRICS, res.values())]
        return rows
