"""Known answers for Theorem 4.1 (measured), scale invariance and signal propagation at init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bnstudy.config import DLNConf, NormConf, SmallCNNConf
from bnstudy.measures.scale_invariance import is_scale_invariant, scale_step
from bnstudy.measures.signal import SignalHooks, effective_rank
from bnstudy.measures.theorem41 import Theorem41Hooks, is_plain_batchnorm, theorem41
from bnstudy.models import build_model
from bnstudy.build import LOSSES

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors; the CPU is shared


def _bn_layer_grads(shape, eps: float, seed: int = 0):
    """A BN layer on random inputs under a random linear-quadratic loss: (y, g = dL/dz, dL/dy, gamma)."""
    g = torch.Generator().manual_seed(seed)
    bn = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(shape[1], eps=eps).to(DT)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(shape[1], generator=g, dtype=DT) + 0.5)
        bn.bias.copy_(torch.randn(shape[1], generator=g, dtype=DT))
    y = (3 * torch.randn(shape, generator=g, dtype=DT) + 1).requires_grad_(True)
    a, b = torch.randn(shape, generator=g, dtype=DT), torch.randn(shape, generator=g, dtype=DT)
    z = bn(y)
    z.retain_grad()
    ((a * z).sum() + (b * z * z).sum()).backward()
    return y.detach(), z.grad, y.grad, bn.weight.detach()


@pytest.mark.parametrize("shape", [(7, 3), (4, 2, 3, 3)])
def test_theorem41_identity_with_one_over_m(shape):
    y, g, dy, gamma = _bn_layer_grads(shape, eps=1e-300)  # torch refuses eps = 0; sigma^2 + 1e-300 == sigma^2 in float64
    t = theorem41(y, g, dy, gamma, eps=0.0)
    assert float(t.lhs) == pytest.approx(float(t.rhs), rel=1e-12)  # the proof's 1/m form: an equality
    assert float(t.rhs_printed) < float(t.lhs)  # the printed 1/sqrt(m) form subtracts more: "<=" fails


def test_theorem41_by_hand_on_one_unit():
    """m = 4 values of one unit, gamma = 2: every term written out."""
    y = torch.tensor([[1.0], [2.0], [4.0], [5.0]], dtype=DT)  # mean 3, biased variance 2.5
    g = torch.tensor([[1.0], [0.0], [-1.0], [2.0]], dtype=DT)
    y_hat = (y - 3) / math.sqrt(2.5)
    gain = 4 / 2.5
    dy = gain ** 0.5 * (g - g.mean() - y_hat * (g * y_hat).mean())  # dL/dy of z = 2 y_hat + beta
    t = theorem41(y, g, dy, torch.tensor([2.0], dtype=DT), eps=0.0)
    g_sq, one, hat = 6.0, 4.0 / 4, float((g * y_hat).sum()) ** 2 / 4
    assert float(t.rhs) == pytest.approx(gain * (g_sq - one - hat), rel=1e-12)
    assert float(t.rhs_printed) == pytest.approx(gain * (g_sq - one - float((g * y_hat).sum()) ** 2 / 2), rel=1e-12)
    assert float(t.lhs) == pytest.approx(float(t.rhs), rel=1e-12)
    assert float(t.share_mean) == pytest.approx(one / g_sq) and float(t.share_scale) == pytest.approx(hat / g_sq)
    assert float(t.gain) == pytest.approx(gain)


def test_theorem41_with_eps_and_the_printed_form_on_a_64_sample_layer():
    """With BN's eps the 1/m form holds up to O(eps/sigma^2); the printed form is violated, not loose."""
    y, g, dy, gamma = _bn_layer_grads((64, 8), eps=1e-5, seed=3)
    t = theorem41(y, g, dy, gamma, eps=1e-5)
    assert abs(float(t.lhs) / float(t.rhs) - 1) < 1e-5  # sigma^2 ~ 9 here: eps/sigma^2 ~ 1e-6
    assert float(t.lhs) > 1.1 * float(t.rhs_printed)  # 392 vs 334 here


def test_theorem41_hooks_on_the_training_backward_match_autograd():
    torch.manual_seed(0)
    model = build_model(SmallCNNConf(channels=[3, 4], kernel_size=3), NormConf(name="batch"), (1, 10, 10), 3).to(DT)
    x, y = torch.randn(6, 1, 10, 10, dtype=DT), torch.randint(0, 3, (6,))
    hooks = Theorem41Hooks({i: b.norm for i, b in enumerate(model.blocks, 1)})
    hooks.attach()
    LOSSES["cross_entropy"](model(x), y).backward()
    got = hooks.collect()
    assert sorted(got) == [1, 2]
    for t in got.values():  # an equality up to eps on real layers
        assert abs(float(t.lhs) / float(t.rhs) - 1) < 1e-3 and float(t.rhs_printed) < float(t.lhs)
    # the same layer recomputed independently: its input's gradient by autograd
    block = model.blocks[0]
    a = block.layer(x).detach().requires_grad_(True)
    z = block.norm(a)
    z.retain_grad()
    out = model.head(model.body[2:](model.body[1](block.activation(block.probe(z)))))
    LOSSES["cross_entropy"](out, y).backward()
    assert float(got[1].lhs) == pytest.approx(float((a.grad ** 2).sum()), rel=1e-10)
    assert float(got[1].g_sq) == pytest.approx(float((z.grad ** 2).sum()), rel=1e-10)
    assert not model.blocks[0].norm._forward_hooks  # hooks removed
    assert not is_plain_batchnorm(build_model(SmallCNNConf(channels=[3, 4], kernel_size=3),
                                              NormConf(name="noisy_batch"), (1, 10, 10), 3).blocks[0].norm)


# ------------------------------------------------------------------------------ scale invariance
@pytest.mark.parametrize("position", ["before", "after"])
def test_sgd_norm_growth_is_eta_squared_grad_squared_for_weights_followed_by_bn(position):
    torch.manual_seed(0)
    norm = NormConf(name="batch", eps=1e-12, position=position)
    model = build_model(SmallCNNConf(channels=[3, 4], kernel_size=3), norm, (1, 10, 10), 3).to(DT)
    x, y = torch.randn(8, 1, 10, 10, dtype=DT), torch.randint(0, 3, (8,))
    lr = 0.3
    LOSSES["cross_entropy"](model(x), y).backward()
    blocks = [b for b in model.blocks if is_scale_invariant(b)]
    assert len(blocks) == 2
    before = [[p.detach().clone() for p in b.layer.parameters()] for b in blocks]
    grads = [[p.grad.clone() for p in b.layer.parameters()] for b in blocks]
    torch.optim.SGD(model.parameters(), lr=lr).step()
    for w0, g0, b in zip(before, grads, blocks):
        s = scale_step(w0, g0, [p.detach() for p in b.layer.parameters()], lr)
        assert abs(float(s.cos)) < 1e-8  # <w, grad L> = 0 (Euler)
        assert float(s.dnorm2) == pytest.approx(float(s.dnorm2_pred), rel=1e-6)  # ||w'||^2 - ||w||^2 = eta^2 ||g||^2
        assert float(s.eff_lr) == pytest.approx(lr / float(s.w_norm) ** 2)
        # the angle of the step: w' = w - eta g with g orthogonal to w, so tan(angle) = eta ||g|| / ||w||
        assert float(s.angle) == pytest.approx(math.atan(lr * float(s.g_norm) / float(s.w_norm)), rel=1e-6)


def test_without_a_norm_the_weights_are_not_scale_invariant():
    torch.manual_seed(0)
    model = build_model(SmallCNNConf(channels=[3, 4], kernel_size=3), NormConf(name="none"), (1, 10, 10), 3).to(DT)
    assert not any(is_scale_invariant(b) for b in model.blocks)
    x, y = torch.randn(8, 1, 10, 10, dtype=DT), torch.randint(0, 3, (8,))
    LOSSES["cross_entropy"](model(x), y).backward()
    b = model.blocks[0]
    s = scale_step(list(b.layer.parameters()), [p.grad for p in b.layer.parameters()],
                   [p.detach() - 0.3 * p.grad for p in b.layer.parameters()], 0.3)
    assert abs(float(s.cos)) > 1e-4  # a test that can fail: the same numbers without BN are not ~0


# ------------------------------------------------------------------------------ signal propagation
def test_effective_rank_known_answers():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(20, generator=g)
    collapsed = torch.randn(8, 1, generator=g) * v  # every sample on one direction
    assert float(effective_rank(collapsed)) == pytest.approx(1.0, abs=1e-6)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=DT))
    assert float(effective_rank(3 * q[:5])) == pytest.approx(5.0, rel=1e-10)  # equal singular values
    s = torch.tensor([3.0, 1.0], dtype=DT)  # p = (3/4, 1/4): exp(H) by hand
    assert float(effective_rank(torch.diag(s) @ q[:2])) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert float(effective_rank(torch.randn(4, 2, 3, 3, generator=g))) <= 4.0  # conv: rows are flattened samples


def test_signal_hooks_read_the_training_step():
    torch.manual_seed(0)
    model = build_model(DLNConf(num_layers=5, dim=4), NormConf(name="batch"), (4,), None).to(DT)
    x = torch.randn(16, 4, dtype=DT)
    hooks = SignalHooks(model.blocks)
    hooks.attach()
    LOSSES["mse_sum"](model(x), x).backward()
    got = hooks.collect()
    assert sorted(got) == [1, 2, 3, 4]
    h = x
    for i, b in enumerate(model.blocks, 1):
        h = b(h)
        assert float(got[i][0]) == pytest.approx(float(torch.linalg.vector_norm(b.layer.weight.grad)), rel=1e-12)
        assert float(got[i][1]) == pytest.approx(float(effective_rank(h)), rel=1e-10)
    assert not model.blocks[0]._forward_hooks
