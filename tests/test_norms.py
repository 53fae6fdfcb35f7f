"""Values of every normalisation layer in ``bnstudy.norms`` against torch or hand-computed numbers."""

import math

import pytest
import torch
from torch import nn

from bnstudy.config import NormConf
from bnstudy.norms import NORMS, LpNorm, NoisyBatchNorm, make_norm, uses_batch_statistics


def _randomise_affine(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=g))
        module.bias.copy_(torch.randn(module.bias.shape, generator=g))


def _batch_inputs(spatial: bool, steps: int = 3, c: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    shape = (8, c, 4, 4) if spatial else (16, c)
    return [3 * torch.randn(shape, generator=g) + i for i in range(steps)]


# --------------------------------------------------------------------------------------------- batch
@pytest.mark.parametrize("spatial", [False, True])
def test_batch_equals_torch_batchnorm(spatial):
    cfg = NormConf(name="batch", eps=1e-3, momentum=0.2)
    ours = make_norm(cfg, 5, spatial)
    ref = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(5, eps=1e-3, momentum=0.2)
    _randomise_affine(ours)
    _randomise_affine(ref)
    for x in _batch_inputs(spatial):
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=0, atol=0)
    ours.eval(), ref.eval()
    x = _batch_inputs(spatial)[0]
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_batch_options_propagate():
    bn = make_norm(NormConf(name="batch", eps=0.01, momentum=0.3, affine=False), 4, False)
    assert isinstance(bn, nn.BatchNorm1d)
    assert (bn.eps, bn.momentum, bn.weight) == (0.01, 0.3, None)


# --------------------------------------------------------------------------------------- noisy_batch
CFG = NormConf(name="noisy_batch")  # paper constants: n_mu=0.5, n_sigma=1.25, r_mu=0.1, r_sigma=0.1


def _forward_noise(bn: NoisyBatchNorm, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Recover (m, s) from the forward: BN output a=0 (gamma=beta=0) gives m; a=1 (beta=1) gives s+m."""
    state = torch.get_rng_state()
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()
        m = bn(x)
        bn.bias.fill_(1.0)
        torch.set_rng_state(state)
        s = bn(x) - m
    return m, s


def test_noisy_forward_uses_sample_noise():
    torch.manual_seed(0)
    bn = make_norm(CFG, 3, True)
    x = torch.randn(4, 3, 5, 5)
    state = torch.get_rng_state()
    m, s = _forward_noise(bn, x)
    torch.set_rng_state(state)
    m_ref, s_ref = bn.sample_noise(x.shape)
    torch.testing.assert_close(m, m_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("spatial", [True, False])
def test_noisy_moments_match_algorithm_1(spatial):
    torch.manual_seed(0)
    c = 512
    bn = make_norm(CFG, c, spatial)
    x = torch.randn((64, c, 8, 8) if spatial else (4096, c))
    m, s = _forward_noise(bn, x)
    dims = [0, 2, 3] if spatial else [0]
    n_mu, n_sigma, r_mu, r_sigma = 0.5, 1.25, 0.1, 0.1

    # m_ij ~ U(mu_j - r_mu, mu_j + r_mu), mu_j ~ U(-n_mu, n_mu)
    m_mean, m_std = m.mean(dims), m.std(dims)
    assert m_mean.abs().max() <= n_mu + r_mu
    assert m_mean.mean().abs() < 0.05
    assert m_mean.var().item() == pytest.approx(n_mu**2 / 3, rel=0.15)
    assert m_mean.min() < -0.45 and m_mean.max() > 0.45  # spread over the whole (-n_mu, n_mu)
    torch.testing.assert_close(m_std, torch.full((c,), r_mu / math.sqrt(3)), rtol=0.05, atol=0)
    spread = m - m.amin(dims, keepdim=True)
    assert spread.max() <= 2 * r_mu + 1e-6  # each unit's m lies in an interval of width 2 r_mu

    # s_ij ~ N(sigma_j, r_sigma), sigma_j ~ U(1, n_sigma)
    s_mean, s_std = s.mean(dims), s.std(dims)
    assert s_mean.min() > 1 - 0.01 and s_mean.max() < n_sigma + 0.01
    assert s_mean.var().item() == pytest.approx((n_sigma - 1) ** 2 / 12, rel=0.15)
    torch.testing.assert_close(s_std, torch.full((c,), r_sigma), rtol=0.05, atol=0)


@pytest.mark.parametrize("where", ["after_affine", "before_affine"])
def test_noisy_running_stats_and_eval_equal_plain_bn(where):
    torch.manual_seed(0)
    noisy = make_norm(NormConf(name="noisy_batch", noise_where=where, momentum=0.2), 5, True)
    ref = nn.BatchNorm2d(5, momentum=0.2)
    _randomise_affine(noisy)
    _randomise_affine(ref)
    for x in _batch_inputs(True):
        assert not torch.allclose(noisy(x), ref(x))  # noise in training
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(noisy, name), getattr(ref, name), rtol=0, atol=0)
    noisy.eval(), ref.eval()
    x = _batch_inputs(True)[0]
    torch.testing.assert_close(noisy(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("where", ["after_affine", "before_affine"])
def test_noisy_replays_with_restored_rng(where):
    bn = make_norm(NormConf(name="noisy_batch", noise_where=where), 4, True)
    x = torch.randn(3, 4, 5, 5)
    state = torch.get_rng_state()
    y1 = bn(x)
    torch.set_rng_state(state)
    y2 = bn(x)
    y3 = bn(x)
    assert torch.equal(y1, y2)
    assert not torch.allclose(y1, y3)


def test_noisy_before_vs_after_affine_hand_computed():
    # one unit, batch [-1, 1]: mean 0, biased var 1; eps = 0.5625 gives x_hat = x / sqrt(1.5625) = x / 1.25
    x = torch.tensor([[-1.0], [1.0]])
    x_hat = torch.tensor([[-0.8], [0.8]])
    gamma, beta = 2.0, 0.5
    outs = {}
    for where in ("after_affine", "before_affine"):
        bn = make_norm(NormConf(name="noisy_batch", eps=0.5625, noise_where=where), 1, False)
        with torch.no_grad():
            bn.weight.fill_(gamma)
            bn.bias.fill_(beta)
        torch.manual_seed(3)
        outs[where] = bn(x)
    torch.manual_seed(3)
    m, s = bn.sample_noise((2, 1))
    torch.testing.assert_close(outs["after_affine"], s * (gamma * x_hat + beta) + m)
    torch.testing.assert_close(outs["before_affine"], gamma * (s * x_hat + m) + beta)
    assert not torch.allclose(outs["after_affine"], outs["before_affine"])


def test_noisy_rejects_unknown_where():
    with pytest.raises(ValueError, match="after_affine"):
        make_norm(NormConf(name="noisy_batch", noise_where="middle"), 4, True)


# ------------------------------------------------------------------------------------ l1 / l2 / linf
# x columns: unit 0 = [1, 2, 3, 6] (mean 3, deviations [-2, -1, 0, 3]),
#            unit 1 = [0, 0, 4, 4] (mean 2, deviations [-2, -2, 2, 2])
X = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 4.0], [6.0, 4.0]])
DEV = torch.tensor([[-2.0, -2.0], [-1.0, -2.0], [0.0, 2.0], [3.0, 2.0]])
SCALES = {  # per unit, by hand
    "l1": [(2 + 1 + 0 + 3) / 4, (2 + 2 + 2 + 2) / 4],  # [1.5, 2]
    "l2": [math.sqrt((4 + 1 + 0 + 9) / 4), math.sqrt((4 + 4 + 4 + 4) / 4)],  # [sqrt(3.5), 2]
    "linf": [3.0, 2.0],
}


@pytest.mark.parametrize("name", ["l1", "l2", "linf"])
def test_lp_matches_formula_by_hand(name):
    eps = 0.5  # large, to check it is added to the scale
    norm = make_norm(NormConf(name=name, eps=eps, momentum=0.1), 2, False)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, -1.0]))
        norm.bias.copy_(torch.tensor([0.5, 1.0]))
    scale = torch.tensor(SCALES[name])
    expected = DEV / (scale + eps) * torch.tensor([2.0, -1.0]) + torch.tensor([0.5, 1.0])
    torch.testing.assert_close(norm(X), expected)
    torch.testing.assert_close(norm.running_mean, torch.tensor([0.3, 0.2]))  # 0.9 * 0 + 0.1 * [3, 2]
    torch.testing.assert_close(norm.running_scale, 0.9 + 0.1 * scale)  # from 1


def test_l1_literal_output():
    # unit 0: deviations / (1.5 + 0.5); unit 1: deviations / (2 + 0.5)
    norm = make_norm(NormConf(name="l1", eps=0.5, affine=False), 2, False)
    expected = torch.tensor([[-1.0, -0.8], [-0.5, -0.8], [0.0, 0.8], [1.5, 0.8]])
    torch.testing.assert_close(norm(X), expected)


@pytest.mark.parametrize("name", ["l1", "l2", "linf"])
def test_lp_conv_pools_over_n_h_w(name):
    norm = make_norm(NormConf(name=name), 3, True)
    flat = make_norm(NormConf(name=name), 3, False)
    _randomise_affine(norm)
    _randomise_affine(flat)
    x = torch.randn(4, 3, 5, 6) * 2 + 1
    as_batch = x.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = flat(as_batch).reshape(4, 5, 6, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)
    torch.testing.assert_close(norm.running_mean, flat.running_mean)
    torch.testing.assert_close(norm.running_scale, flat.running_scale)


@pytest.mark.parametrize("name", ["l1", "l2", "linf"])
def test_lp_eval_uses_running_stats(name):
    norm = make_norm(NormConf(name=name, eps=0.5), 2, False)
    _randomise_affine(norm)
    for x in _batch_inputs(False, c=2):
        norm(x)
    norm.eval()
    rm, rs = norm.running_mean.clone(), norm.running_scale.clone()
    expected = (X - rm) / (rs + 0.5) * norm.weight + norm.bias
    torch.testing.assert_close(norm(X), expected)
    torch.testing.assert_close(norm.running_mean, rm, rtol=0, atol=0)  # eval does not update


@pytest.mark.parametrize("spatial", [False, True])
def test_l2_is_batchnorm_up_to_eps_placement(spatial):
    l2 = make_norm(NormConf(name="l2", eps=1e-5), 5, spatial)
    bn = make_norm(NormConf(name="batch", eps=1e-5), 5, spatial)
    _randomise_affine(l2)
    _randomise_affine(bn)
    x = _batch_inputs(spatial)[0].requires_grad_()
    y_l2, y_bn = l2(x), bn(x)
    torch.testing.assert_close(y_l2, y_bn, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(l2.running_mean, bn.running_mean)
    # gradients flow through the batch mean and scale, as in BN
    w = torch.randn_like(y_l2)
    (g_l2,) = torch.autograd.grad((y_l2 * w).sum(), x)
    (g_bn,) = torch.autograd.grad((y_bn * w).sum(), x)
    torch.testing.assert_close(g_l2, g_bn, rtol=1e-3, atol=1e-4)


def test_lp_constant_unit_has_finite_gradient():
    x = torch.tensor([[1.0, 0.0], [1.0, 2.0]], requires_grad=True)
    for name in ("l1", "l2", "linf"):
        (g,) = torch.autograd.grad(make_norm(NormConf(name=name), 2, False)(x).sum(), x)
        assert torch.isfinite(g).all()


def test_lp_rejects_other_p():
    with pytest.raises(ValueError, match="p must be"):
        LpNorm(3, p=3)


# ----------------------------------------------------------------------------- layer/group/instance
def test_layer_norm():
    x = torch.randn(4, 6, 3, 3) * 3 + 2
    ln = make_norm(NormConf(name="layer", eps=1e-5), 6, True)
    assert isinstance(ln, nn.GroupNorm) and ln.num_groups == 1
    mean = x.mean((1, 2, 3), keepdim=True)
    var = x.var((1, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(ln(x), (x - mean) / torch.sqrt(var + 1e-5))
    flat = make_norm(NormConf(name="layer"), 6, False)
    assert isinstance(flat, nn.LayerNorm)
    assert flat(x[:, :, 0, 0]).shape == (4, 6)


@pytest.mark.parametrize(
    "channels, groups, expected", [(16, 8, 8), (12, 8, 6), (10, 8, 5), (7, 8, 7), (7, 4, 1)]
)
def test_group_clips_to_a_divisor(channels, groups, expected):
    gn = make_norm(NormConf(name="group", groups=groups), channels, True)
    assert gn.num_groups == expected and channels % gn.num_groups == 0
    assert gn(torch.randn(2, channels, 3, 3)).shape == (2, channels, 3, 3)
    flat = make_norm(NormConf(name="group", groups=groups), channels, False)
    assert flat(torch.randn(2, channels)).shape == (2, channels)


def test_instance_norm():
    inorm = make_norm(NormConf(name="instance"), 5, True)
    assert isinstance(inorm, nn.GroupNorm) and inorm.num_groups == 5
    y = inorm(torch.randn(2, 5, 4, 4) * 3 + 1)
    torch.testing.assert_close(y.mean((2, 3)), torch.zeros(2, 5), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="spatial"):
        make_norm(NormConf(name="instance"), 5, False)


# -------------------------------------------------------------------------------------------- registry
def test_none_is_identity():
    assert isinstance(make_norm(NormConf(name="none"), 5, True), nn.Identity)


def test_unknown_name_lists_options():
    with pytest.raises(ValueError) as err:
        make_norm(NormConf(name="bogus"), 4, True)
    assert "bogus" in str(err.value)
    assert ", ".join(sorted(NORMS)) in str(err.value)


@pytest.mark.parametrize("name", sorted(NORMS))
def test_uses_batch_statistics(name):
    module = make_norm(NormConf(name=name), 4, True)
    assert uses_batch_statistics(module) == (name in {"batch", "noisy_batch", "l1", "l2", "linf"})
