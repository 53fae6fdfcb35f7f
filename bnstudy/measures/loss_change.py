"""Loss change between successive training steps, |L_t - L_{t-1}| (the browser reproduction's Fig. 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from bnstudy.schema import ranged
from bnstudy.measures.registry import Cost, Measurement, Row, Step, is_due, register

LOSS_CHANGE = "loss_change"


@dataclass
class LossChangeConf:
    every: int = ranged(0, ge=0)  # 0 = off; N = at every N-th step (1 = every step)


@register
class LossChange(Measurement):
    """|L_t - L_{t-1}| of the training batches' losses, read off the training forward (no extra pass).

    At step t it keeps L_t (a device scalar, no read-back) when step t+1 is due, so the schedule costs
    nothing in between; the row carries step t.
    """

    name = LOSS_CHANGE
    Conf = LossChangeConf
    order = 10

    def __init__(self, conf: LossChangeConf, ctx):
        super().__init__(conf, ctx)
        self.prev: Optional[torch.Tensor] = None

    @classmethod
    def cost(cls, conf: LossChangeConf) -> Cost:
        return Cost(0, "0 passes: read off the training forward")

    @classmethod
    def metrics(cls, conf: LossChangeConf) -> list[str]:
        return [LOSS_CHANGE]

    def due(self, step: int) -> bool:
        return is_due(self.conf.every, step) or is_due(self.conf.every, step + 1)  # L_t needs L_{t-1}

    def after_backward(self, s: Step) -> list[Row]:
        rows = []
        if is_due(self.conf.every, s.step) and self.prev is not None:
            rows.append(Row(s.step, LOSS_CHANGE, (s.loss.detach() - self.prev).abs()))
        self.prev = s.loss.detach() if is_due(self.conf.every, s.step + 1) else None
        return rows

    def state_dict(self) -> dict:
        return {"prev_loss": self.prev}

    def load_state_dict(self, state: dict) -> None:
        self.prev = state["prev_loss"]
