"""Signal propagation: per-layer gradient norms and the effective rank of each layer's batch activations.

Bjorck et al. 2018 trace BN's benefit to gradients that neither explode nor vanish with depth;
Daneshmand et al. 2020 show BN keeps a batch's representations from collapsing towards rank one.
De & Smith 2020 show BatchNorm downscales a residual network's branches relative to their skip paths at
initialisation: for each residual unit (``BlockNet.residual_units``), the RMS of what its branch adds over the RMS
of what its skip path carries. All are read off the training step: forward hooks keep each block's output (and
each unit's two sides), the weight gradients are already in ``.grad``: zero extra passes (one N x N
eigendecomposition per layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from bnstudy.schema import ranged
from bnstudy.measures.registry import EVERY_BLOCK, Cost, Measurement, Row, Step, register

SIG_GRAD_NORM = "sig_grad_norm"  # per layer: ||dL/dW||
SIG_RANK = "sig_rank"  # per layer: the effective rank of the batch's outputs
SIG_ACT_NORM = "sig_act_norm"  # per layer: the RMS of the batch's outputs
SIGNAL_METRICS = (SIG_GRAD_NORM, SIG_RANK, SIG_ACT_NORM)
SIG_BRANCH = "sig_branch_ratio"  # per residual unit (the layer column: its 1-based index): RMS(branch) / RMS(skip)


@dataclass
class SignalConf:
    every: int = ranged(0, ge=0)  # 0 = off; step 0 (initialisation) is always among the measured steps when on


def effective_rank(h: torch.Tensor) -> torch.Tensor:
    """Roy & Vetterli's (2007) effective rank exp(H(p)), p_i = s_i / sum(s), s the singular values of the
    (N, d) matrix whose rows are the N samples' activations (flattened). 1 for a batch collapsed onto
    one direction, N (or d) for equal singular values. Uncentred: a common direction is the collapse.
    From the N x N Gram matrix, in float64.
    """
    m = h.detach().reshape(h.shape[0], -1).double()
    s = torch.linalg.eigvalsh(m @ m.T).clamp(min=0).sqrt()
    total = s.sum()
    if total == 0:
        return torch.zeros((), dtype=torch.float64, device=h.device)
    p = s / total
    entropy = -(p[p > 0] * torch.log(p[p > 0])).sum()
    return torch.exp(entropy)


def rms(t: torch.Tensor) -> torch.Tensor:
    return t.detach().double().pow(2).mean().sqrt()


class SignalHooks:
    """Forward hooks that keep each block's output, and each residual unit's skip and branch RMS, on one training
    forward (``attach``, then ``collect`` or ``rows``)."""

    def __init__(self, blocks: list[nn.Module], units: list[nn.Module] = ()):
        self.blocks, self.units = blocks, list(units)
        self._handles: list = []
        self._outs: dict[object, torch.Tensor] = {}

    def attach(self) -> None:
        """Hook the next forward of each block (and unit side) only (the training forward), not later probe passes."""
        handles: dict[object, object] = {}
        targets = [(i, b, lambda out: out.detach()) for i, b in enumerate(self.blocks, 1)]
        for j, unit in enumerate(self.units, 1):
            targets += [(("skip", j), unit.skip, rms), (("branch", j), unit.branch, rms)]
        for key, module, keep_what in targets:
            def keep(_module, _inputs, output, key=key, keep_what=keep_what):
                handles[key].remove()
                self._outs[key] = keep_what(output)
            handles[key] = module.register_forward_hook(keep)
            self._handles.append(handles[key])

    def collect(self) -> dict[int, list[torch.Tensor]]:
        """Per layer (1-based): [||dL/dW||, effective rank, RMS activation], after the backward."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        out = {}
        for i, block in enumerate(self.blocks, 1):
            if i not in self._outs:
                continue
            grad = block.layer.weight.grad
            gnorm = torch.linalg.vector_norm(grad).double() if grad is not None else torch.tensor(float("nan"))
            act = self._outs[i]
            out[i] = [gnorm, effective_rank(act), rms(act)]
        self._outs.clear()
        return out

    def rows(self) -> list[tuple[str, int, torch.Tensor]]:
        """After the backward, (metric, layer, value): :meth:`collect`'s per layer, then per residual unit (1-based)
        RMS(branch) / RMS(skip) on the hooked forward (``sig_branch_ratio``). The training step and post hoc both
        log these."""
        ratios = [(SIG_BRANCH, j, self._outs[("branch", j)] / self._outs[("skip", j)])
                  for j in range(1, len(self.units) + 1) if ("skip", j) in self._outs and ("branch", j) in self._outs]
        return [(name, i, v) for i, vals in self.collect().items() for name, v in zip(SIGNAL_METRICS, vals)] + ratios


@register
class Signal(Measurement):
    """Per block (``sig_*``): ||dL/dW||, the effective rank and RMS of its batch outputs; per residual unit, its
    branch's RMS over its skip path's; on the training step."""

    name = "signal"
    Conf = SignalConf
    order = 72
    phases = ("before_forward", "after_backward")

    def __init__(self, conf: SignalConf, ctx):
        super().__init__(conf, ctx)
        self.hooks = SignalHooks(list(ctx.model.blocks), ctx.model.residual_units)

    @classmethod
    def cost(cls, conf: SignalConf) -> Cost:
        return Cost(0, "0 passes: forward hooks keep each block's output; one N x N eigendecomposition per layer")

    @classmethod
    def metrics(cls, conf: SignalConf) -> list[str]:
        return [*SIGNAL_METRICS, SIG_BRANCH]

    @classmethod
    def bench_floor(cls, conf: SignalConf):
        """The arithmetic it cannot avoid: each layer's effective rank (an N x N Gram matrix and its
        eigenvalues, in float64) and RMS."""
        def arithmetic(captured: dict) -> None:
            for h in captured.values():
                effective_rank(h)
                h.double().pow(2).mean().sqrt()
        return arithmetic

    @classmethod
    def bench_layers(cls, conf: SignalConf) -> list[int]:
        return list(EVERY_BLOCK)

    def before_forward(self, step: int) -> None:
        self.hooks.attach()

    def after_backward(self, s: Step) -> list[Row]:
        return [Row(s.step, name, v, layer=i) for name, i, v in self.hooks.rows()]
