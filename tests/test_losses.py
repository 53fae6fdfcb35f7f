"""The regression losses against hand-computed values, and mse_half_sum's documented equivalence:
an SGD step on ½·sum at lr is the step on the summed loss at lr/2."""

from __future__ import annotations

import pytest
import torch

from bnstudy.config import DLNConf, NormConf
from bnstudy.models import build_model
from bnstudy.build import LOSSES

OUT = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
Y = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
# residuals (1, 2), (2, -2): squared 1 + 4 + 4 + 4 = 13 in all, 5 and 8 per sample


@pytest.mark.parametrize("name, expected", [("mse_sum", 13.0), ("mse_half_sum", 6.5), ("mse_mean", 6.5)])
def test_losses_hand_computed(name, expected):
    assert LOSSES[name](OUT, Y).item() == expected


def test_half_sum_gradient_is_half():
    out = OUT.clone().requires_grad_(True)
    LOSSES["mse_half_sum"](out, Y).backward()
    assert torch.equal(out.grad, OUT - Y)  # d/d out of ½||out - y||^2 = out - y


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_half_sum_at_lr_is_sum_at_half_lr(norm):
    """Ten SGD steps of a small DLN: identical weights (gradients differ by an exact factor of 2)."""
    weights = []
    for loss, lr in (("mse_half_sum", 1e-2), ("mse_sum", 5e-3)):
        torch.manual_seed(0)
        model = build_model(DLNConf(num_layers=4, dim=3), NormConf(name=norm), (3,), None)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(16, 3, generator=g), torch.randn(16, 3, generator=g)
        for _ in range(10):
            opt.zero_grad()
            LOSSES[loss](model(x), y).backward()
            opt.step()
        weights.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
