"""Measurements that need no training: per-layer gradient norms at initialisation; a step's memory and time.

Two of the tutorials' claims need no training: "gradient stability: helps prevent vanishing/exploding
gradients" (per-layer ``||dL/dW_l||`` of a freshly initialised deep ReLU network, against depth) and
"memory overhead" (what a step keeps for its backward pass, its parameters, its time). Both are pure
functions of (model, batch); ``experiments.tutorials`` calls them and writes their CSVs.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bnstudy.config imports this package: no import of models (and config) at load time
    from bnstudy.models import BlockNet


def layer_gradient_norms(model: BlockNet, x: torch.Tensor, y: torch.Tensor,
                         loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> list[float]:
    """``||dL/dW_l||_F`` for every Block's layer weight, in order (layer 1 first), then the head's last
    linear layer; one forward and one backward in train mode (batch statistics), nothing in ``.grad``."""
    weights = [b.layer.weight for b in model.blocks]
    head = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    weights += [head[-1].weight] if head else []
    grads = torch.autograd.grad(loss_fn(model(x), y), weights)
    return [float(g.norm()) for g in grads]


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                           loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> int:
    """Bytes of the tensors autograd keeps for the backward of one training forward (each storage once,
    parameters and buffers left out): the activation memory a step needs on top of the model, on any device."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        seen[(s.data_ptr(), t.device.type)] = s.nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in [*model.parameters(), *model.buffers()]}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(n for (ptr, _), n in seen.items() if ptr not in params)


def step_seconds(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median wall time of one SGD step (forward, backward, update at lr 0) of each model, timed in
    alternation (one step of each per round), so that load from other processes hits every model alike."""
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.0) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(warmup + repeats):
        for key, model in models.items():
            if x.is_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            opts[key].zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opts[key].step()
            if x.is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times[key].append(time.perf_counter() - t0)
    return {k: float(torch.tensor(v).median()) for k, v in times.items()}
