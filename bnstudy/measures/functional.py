"""Evaluation-only forward/backward passes at arbitrary parameters, leaving the model untouched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn
from torch.func import functional_call

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Params = dict[str, torch.Tensor]


def trainable_params(model: nn.Module) -> Params:
    """The parameters the optimiser updates, by name (the ``w`` of the landscape measures)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@dataclass
class RNGState:
    """Torch's CPU and (if used) CUDA generator states: replaying them replays noisy BN's noise."""

    cpu: torch.Tensor
    cuda: Optional[list[torch.Tensor]]

    @classmethod
    def capture(cls) -> "RNGState":
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return cls(torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def forward_at(model: nn.Module, params: Params, x: torch.Tensor, rng: Optional[RNGState] = None) -> torch.Tensor:
    """``model(x)`` at ``params`` in the model's current mode, on copies of its buffers.

    BatchNorm in train mode then normalises with batch statistics, as training does, but its running
    statistics (the model's buffers) are not updated. With ``rng`` the generator is set first, so
    noisy BN draws the same noise as the forward that ``rng`` was captured before.
    """
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    if rng is not None:
        rng.restore()
    return functional_call(model, (params, buffers), (x,), strict=False)


def loss_and_grads(
    model: nn.Module,
    loss_fn: LossFn,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    wrt: Optional[list[str]] = None,
    rng: Optional[RNGState] = None,
) -> tuple[torch.Tensor, Params]:
    """Loss at ``params`` on (x, y) and its gradient w.r.t. ``wrt`` (default: all of ``params``).

    One forward and one backward pass; gradients come from ``torch.autograd.grad`` so nothing
    accumulates into ``.grad``. Only the names in ``wrt`` get gradients (backward stops there).
    """
    names = list(params) if wrt is None else wrt
    with torch.enable_grad():  # a probe may be called under no_grad (e.g. from a notebook)
        leaves = {n: p.detach().requires_grad_(n in names) for n, p in params.items()}
        loss = loss_fn(forward_at(model, leaves, x, rng), y)
        grads = torch.autograd.grad(loss, [leaves[n] for n in names])
    return loss.detach(), dict(zip(names, grads))


def flat_norm(tensors: Params | list[torch.Tensor]) -> torch.Tensor:
    """The l2 norm of several tensors taken as one vector."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in values]))
