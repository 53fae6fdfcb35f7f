"""Oscillation: the cosine between successive training steps' gradients, cos(g_{t-1}, g_t).

A run at the edge of stability flips its gradient every step (cos near -1, a period-2 oscillation: the
standard DLN at lr 1e-6 with the summed loss for its first ~2,500 steps); told apart this way, it is not
mistaken for internal covariate shift. No extra pass: g_t is the training step's own gradient in
``.grad``. g is the whole trainable gradient as one vector ([open]: all parameters the optimiser updates,
weights, biases and norm gamma/beta, the g(w) of the landscape measures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from bnstudy.measures.functional import trainable_params
from bnstudy.schema import ranged
from bnstudy.measures.registry import Cost, Measurement, Row, Step, is_due, register

GRAD_COS_PREV = "grad_cos_prev"  # at step t: cos(g_{t-1}, g_t) of the training gradients


def flat_grad(model: torch.nn.Module) -> torch.Tensor:
    """The trainable parameters' ``.grad`` as one vector (a copy; zeros where a parameter has none)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in trainable_params(model).values()])


def grad_cosine(prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """cos(prev, cur) as a device scalar (float64 arithmetic; 0 where a gradient is zero)."""
    return torch.nn.functional.cosine_similarity(prev.double(), cur.double(), dim=0, eps=1e-150)


@dataclass
class GradCosPrevConf:
    every: int = ranged(0, ge=0)  # 0 = off; N = at every N-th step (1 = every step), against the step before it


@register
class GradCosPrev(Measurement):
    """At a due step t: cos(g_{t-1}, g_t). g_{t-1} is kept on the device at step t-1 (one copy of the
    gradient, no read-back) and only there; the value is read back with the log rows."""

    name = GRAD_COS_PREV
    Conf = GradCosPrevConf
    order = 50

    def __init__(self, conf: GradCosPrevConf, ctx):
        super().__init__(conf, ctx)
        self.prev: Optional[torch.Tensor] = None

    @classmethod
    def cost(cls, conf: GradCosPrevConf) -> Cost:
        return Cost(0, "0 passes: the training gradient, one copy of it kept from the step before")

    @classmethod
    def metrics(cls, conf: GradCosPrevConf) -> list[str]:
        return [GRAD_COS_PREV]

    def due(self, step: int) -> bool:
        return is_due(self.conf.every, step) or is_due(self.conf.every, step + 1)  # g_t needs g_{t-1}

    def after_backward(self, s: Step) -> list[Row]:
        g = flat_grad(self.ctx.model)
        rows = []
        if is_due(self.conf.every, s.step) and self.prev is not None:
            rows.append(Row(s.step, GRAD_COS_PREV, grad_cosine(self.prev, g)))
        self.prev = g if is_due(self.conf.every, s.step + 1) else None
        return rows

    def state_dict(self) -> dict:
        return {"prev": self.prev}

    def load_state_dict(self, state: dict) -> None:
        self.prev = state["prev"]
