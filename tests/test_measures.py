"""Known-answer tests of every measurement in ``bnstudy.measures``, and of the probe's neutrality.

Closed forms: a quadratic loss 1/2 w^T H w (loss landscape, gradient predictiveness, effective beta);
a deep linear network with hand-written matrix gradients (gradient ICS, Definition 2.1); a linear head
on the probed activations (the browser reproduction's beta); literal activations (moments, shifts).
End to end: a run with every measurement on every step trains bit-for-bit like the same run with them off.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bnstudy.config import (ActivationsConf, Config, DLNConf, ICSConf, LandscapeConf, MeasureConf,
                            NormConf, OptimConf, SmallCNNConf, TrainConf, DataConf)
from bnstudy.data import TensorData
from bnstudy.measures import eta_grid, landscape, layer_moments, moment_shift, sample_units
from bnstudy.measures.activations import pick_units, unit_values, units_matrix
from bnstudy.measures.functional import RNGState, loss_and_grads, trainable_params
from bnstudy.measures.ics import gradient_ics
from bnstudy.measures.landscape import activation_beta
from bnstudy.measures.registry import Context, enabled, node_of, schemas
from bnstudy.measures.schedule import Probes
from bnstudy.models import Block, BlockNet, build_model
from bnstudy.records import read_metrics
from bnstudy.build import LOSSES
from bnstudy.train import Trainer

DT = torch.float64
MSE_SUM = LOSSES["mse_sum"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors; the CPU is shared


# --------------------------------------------------------------------------------------------- eta grid
def test_eta_grid_log_hand_checked():
    # [1/2, 4] x lr in 4 log-spaced points: a geometric sequence with ratio (4 / 0.5)^(1/3) = 2
    assert eta_grid(0.1, 0.5, 4.0, 4) == pytest.approx([0.05, 0.1, 0.2, 0.4], rel=1e-14, abs=0)
    # DLN range [1/100, 30] x lr, 3 points: the middle one is the geometric mean sqrt(0.01 * 30)
    grid = eta_grid(2.0, 0.01, 30.0, 3)
    assert grid == pytest.approx([0.02, 2 * math.sqrt(0.3), 60.0], rel=1e-14, abs=0)
    assert grid[0] == 2.0 * 0.01 and grid[-1] == 2.0 * 30.0  # endpoints exact (no float32 detour)


def test_eta_grid_linear_and_edge_cases():
    assert eta_grid(0.1, 0.5, 4.0, 8, "linear") == pytest.approx(
        [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4], rel=1e-14, abs=0)
    assert eta_grid(0.5, 2.0, 2.0, 3, "log") == [1.0, 1.0, 1.0]
    assert eta_grid(0.5, 2.0, 8.0, 1) == [1.0]
    for bad in [(0.1, 0.0, 1.0, 3), (0.1, 2.0, 1.0, 3), (0.1, 0.5, 1.0, 0)]:
        with pytest.raises(ValueError):
            eta_grid(*bad)
    with pytest.raises(ValueError, match="spacing"):
        eta_grid(0.1, 0.5, 4.0, 3, "cubic")


# ---------------------------------------------------------------------- landscape on a quadratic loss
class Quadratic(nn.Module):
    """Its "output" is the loss 1/2 w^T H w itself (``loss_fn(out, y) = out``): g(w) = H w."""

    def __init__(self, h: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.register_buffer("h", h)
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.w @ self.h @ self.w


def _spd(eigenvalues: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=DT))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=DT)) @ q.T, q


def _landscape_of(model: Quadratic, etas: list[float], with_grads: bool):
    params = {n: p.detach() for n, p in trainable_params(model).items()}
    grads = {"w": model.h @ model.w.detach()} if with_grads else None
    dummy = torch.zeros(1, dtype=DT)
    return landscape(model, lambda out, y: out, dummy, dummy, etas, params, grads)


@pytest.mark.parametrize("with_grads", [False, True])
def test_landscape_quadratic_closed_form(with_grads):
    lams = [0.5, 2.0, 5.0]
    h, _ = _spd(lams)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    model = Quadratic(h, w)
    etas = eta_grid(0.1, 0.5, 4.0, 5)
    res = _landscape_of(model, etas, with_grads)
    g = h @ w
    hg = torch.linalg.vector_norm(h @ g).item()
    ratio = hg / torch.linalg.vector_norm(g).item()
    for eta, loss, diff, beta in zip(res.etas, res.losses, res.grad_diffs, res.betas):
        moved = w - eta * g
        assert loss == pytest.approx(0.5 * (moved @ h @ moved).item(), rel=1e-12)  # 1/2 (w-eta g)^T H (w-eta g)
        assert diff == pytest.approx(eta * hg, rel=1e-12)  # ||g(w) - g(w - eta g)|| = eta ||H g||
        assert beta == pytest.approx(ratio, rel=1e-12)  # ||H g|| / ||g||
    assert res.etas == etas
    assert min(lams) - 1e-12 <= res.beta <= max(lams) + 1e-12
    assert res.beta == pytest.approx(ratio, rel=1e-12)
    assert model.w.grad is None  # nothing accumulated into .grad


def test_effective_beta_equals_lambda_max_on_top_eigenvector():
    lams = [0.5, 2.0, 5.0]
    h, q = _spd(lams, seed=3)
    for k, lam in enumerate(lams):
        res = _landscape_of(Quadratic(h, 3.0 * q[:, k]), eta_grid(0.1, 0.5, 4.0, 3), True)
        assert res.betas == pytest.approx([lam] * 3, rel=1e-12)
    # any other direction stays strictly below lambda_max
    res = _landscape_of(Quadratic(h, q[:, 0] + q[:, 2]), [0.1], True)
    assert lams[0] < res.beta < lams[2]


# ------------------------------------------------------------------------ beta w.r.t. activations
def test_activation_beta_linear_head_closed_form():
    """loss = 1/2 ||h A^T - Y||^2 in the probed activations h: g(h) = (h A^T - Y) A, Hessian A^T A."""
    torch.manual_seed(0)
    block = Block(nn.Linear(3, 4).double(), nn.Identity(), nn.Identity(), norm_after=False)
    head = nn.Linear(4, 2, bias=False).double()
    model = BlockNet([block], head)
    x, y = torch.randn(5, 3, dtype=DT), torch.randn(5, 2, dtype=DT)
    a = head.weight.detach()
    loss_fn = lambda out, t: 0.5 * (out - t).pow(2).sum()
    etas = [0.05, 0.2, 1.0]
    params = {n: p.detach() for n, p in model.named_parameters()}
    with torch.no_grad():  # works from a no_grad context too (the weights never need a gradient)
        res = activation_beta(model, loss_fn, x, y, model.block(1).probe, etas, params)
    h = block.layer(x).detach()
    g = (h @ a.T - y) @ a
    gaa = torch.linalg.vector_norm(g @ a.T @ a).item()
    for eta, loss, diff, beta in zip(etas, res.losses, res.grad_diffs, res.betas):
        assert loss == pytest.approx(0.5 * ((h - eta * g) @ a.T - y).pow(2).sum().item(), rel=1e-12)
        assert diff == pytest.approx(eta * gaa, rel=1e-12)
        assert beta == pytest.approx(gaa / torch.linalg.vector_norm(g).item(), rel=1e-12)
    assert res.beta <= torch.linalg.eigvalsh(a.T @ a).max().item() + 1e-12
    assert all(p.grad is None for p in model.parameters())
    assert not model.block(1).probe._forward_hooks  # its hook is gone


# ------------------------------------------------------------------------------------- gradient ICS
def _hand_grads(ws: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """d/dW_k of ||x W_1^T ... W_L^T - y||^2 (summed): delta_L = 2 R, delta_{k-1} = delta_k W_k, G_k = delta_k^T h_{k-1}."""
    hs = [x]
    for w in ws:
        hs.append(hs[-1] @ w.T)
    delta = 2 * (hs[-1] - y)
    grads = [None] * len(ws)
    for k in reversed(range(len(ws))):
        grads[k] = delta.T @ hs[k]
        delta = delta @ ws[k]
    return grads


def _dln(layers: int = 4, dim: int = 3, norm: str = "none") -> BlockNet:
    torch.manual_seed(0)
    return build_model(DLNConf(num_layers=layers, dim=dim, bias=False), NormConf(name=norm), (dim,), None).double()


def _ics_step(model: BlockNet, opt: torch.optim.Optimizer, x, y, layers: list[int]):
    probes = Probes(MeasureConf(ics=ICSConf(every=1, layers=layers)), model, MSE_SUM, lr=0.0, seed=0)
    loss = MSE_SUM(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    before = probes.snapshot()
    opt.step()
    rows = probes.after_step(0, x, y, before, None)
    return {(m, layer): float(v) for _, m, layer, _, _, v in rows}


def test_gradient_ics_linear_network_by_hand():
    model = _dln(layers=4)  # 3 Blocks W_1..W_3 and the head W_4
    ws = [model.block(i).layer.weight.detach().clone() for i in (1, 2, 3)] + [model.head.weight.detach().clone()]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=DT), torch.randn(6, 3, generator=g, dtype=DT)
    lr = 0.01
    got = _ics_step(model, torch.optim.SGD(model.parameters(), lr=lr), x, y, [1, 2, 3])

    grads = _hand_grads(ws, x, y)
    new = [w - lr * gw for w, gw in zip(ws, grads)]  # plain SGD
    for i in (1, 2, 3):
        mixed = new[: i - 1] + ws[i - 1 :]  # W_1^{t+1}..W_{i-1}^{t+1}, W_i^t..W_L^t
        gi, gi_shift = grads[i - 1], _hand_grads(mixed, x, y)[i - 1]
        l2 = torch.linalg.vector_norm(gi - gi_shift).item()
        cos = (gi * gi_shift).sum().item() / (torch.linalg.vector_norm(gi) * torch.linalg.vector_norm(gi_shift)).item()
        if i == 1:
            assert got[("ics_l2", 1)] == 0.0 and l2 == 0.0
            assert got[("ics_cos", 1)] == pytest.approx(1.0, abs=1e-15)
        else:
            assert l2 > 1e-3  # a real shift, so the comparison below means something
            assert got[("ics_l2", i)] == pytest.approx(l2, rel=1e-9)
            assert got[("ics_cos", i)] == pytest.approx(cos, rel=1e-12)
            assert got[("ics_cos", i)] < 1 - 1e-6


def test_gradient_ics_is_zero_when_earlier_layers_do_not_move():
    model = _dln(layers=4)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(6, 3, generator=g, dtype=DT), torch.randn(6, 3, generator=g, dtype=DT)
    frozen = [model.block(1).layer.weight, model.block(2).layer.weight]
    rest = [model.block(3).layer.weight, model.head.weight]
    opt = torch.optim.SGD([{"params": frozen, "lr": 0.0}, {"params": rest, "lr": 0.05}])
    got = _ics_step(model, opt, x, y, [1, 2, 3])
    for i in (1, 2, 3):
        assert got[("ics_l2", i)] == 0.0
        assert got[("ics_cos", i)] == pytest.approx(1.0, abs=1e-15)
    assert not torch.equal(rest[0], rest[0].detach() + 0.05 * rest[0].grad)  # the later layers did move


def test_gradient_ics_counts_the_norms_affine_as_its_layer():
    model = _dln(layers=3, norm="batch")
    probes = Context.of(model, MSE_SUM, lr=0.1, seed=0)  # the blocks' parameter names every measurement sees
    assert probes.layer_params[1] == ["body.0.layer.weight", "body.0.norm.weight", "body.0.norm.bias"]
    assert probes.weight_of == {1: "body.0.layer.weight", 2: "body.1.layer.weight"}
    # moving only layer 1's gamma (unevenly: layer 2's BN would absorb a uniform scale, and any shift) moves G_2
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 3, generator=g, dtype=DT), torch.randn(8, 3, generator=g, dtype=DT)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    gamma = params["body.0.norm.weight"] * torch.tensor([1.0, 2.0, 0.5], dtype=DT)
    after = dict(params, **{"body.0.norm.weight": gamma})
    res = gradient_ics(model, MSE_SUM, x, y, params, after, probes.layer_params, [1, 2], probes.weight_of)
    assert res[0].l2 == 0.0 and res[1].l2 > 1e-3


# ------------------------------------------------------------------------ activations and moments
def test_layer_moments_and_shift_literal_numbers():
    h0 = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # N = 2, units 0 and 1
    m0 = layer_moments(h0)
    assert m0.mean.tolist() == [2.0, 4.0] and m0.var.tolist() == [1.0, 4.0]  # biased variance
    h1 = torch.tensor([[2.0, 0.0], [4.0, 0.0]])
    m1 = layer_moments(h1)
    d = moment_shift(m0, m1)
    assert d.mean.tolist() == [1.0, 4.0] and d.var.tolist() == [0.0, 4.0]
    conv = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]]])  # N=1, C=2, 2x2: over N x H x W
    mc = layer_moments(conv)
    assert mc.mean.tolist() == [2.5, 2.0] and mc.var.tolist() == [1.25, 12.0]
    assert unit_values(conv, 1).tolist() == [0.0, 0.0, 0.0, 8.0]


def test_sampler_same_units_and_subset_of_values():
    assert pick_units(16, 3, seed=5) == pick_units(16, 3, seed=5)
    torch.manual_seed(0)
    a = pick_units(16, 3, seed=5)
    torch.manual_seed(1)
    assert pick_units(16, 3, seed=5) == a  # independent of torch's global RNG
    assert pick_units(2, 5, seed=0) == [0, 1]
    h = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)  # every value distinct
    values = units_matrix(h, [0, 2])
    assert [values[j].tolist() for j in (0, 1)] == [unit_values(h, u).tolist() for u in (0, 2)]
    s = sample_units(values, samples=7, seed=0)
    for j, u in enumerate((0, 2)):
        assert len(set(s[j].tolist())) == 7 and set(s[j].tolist()) <= set(unit_values(h, u).tolist())
    assert torch.equal(sample_units(values, samples=7, seed=0), s)  # seeded
    assert not torch.equal(sample_units(values, samples=7, seed=1), s)
    assert sample_units(units_matrix(h, [1]), samples=100, seed=0)[0].tolist() == unit_values(h, 1).tolist()


def test_probes_activation_rows_from_the_training_forward():
    torch.manual_seed(0)
    model = build_model(SmallCNNConf(channels=[6, 4], kernel_size=3), NormConf(name="batch"), (1, 10, 10), 3)
    cfg = MeasureConf(activations=ActivationsConf(every=1, layers=[1, 2], units=2, samples=5, quantiles=[0.5]))
    probes = Probes(cfg, model, LOSSES["cross_entropy"], lr=0.1, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen, units, means = {}, {}, {}
    spy = [model.block(i).probe.register_forward_hook(lambda m, i_, o, i=i: seen.__setitem__(i, o.detach().clone()))
           for i in (1, 2)]
    for step in range(3):
        x, y = torch.randn(4, 1, 10, 10), torch.randint(0, 3, (4,))
        due = probes.due(step)
        probes.before_forward(step, due)
        loss = LOSSES["cross_entropy"](model(x), y)
        opt.zero_grad()
        loss.backward()
        rows = probes.after_backward(step, x, y, loss, None)
        opt.step()
        assert all(not model.block(i).probe._forward_hooks.keys() - {h.id for h in spy} for i in (1, 2))
        for i in (1, 2):
            samples = [(r[3], float(r[5])) for r in rows if r[1] == "act_sample" and r[2] == i]
            units.setdefault(i, sorted({u for u, _ in samples}))
            assert sorted({u for u, _ in samples}) == units[i] and len(units[i]) == 2  # the same units every step
            for u in units[i]:
                vals = [v for uu, v in samples if uu == u]
                full = unit_values(seen[i], u).double().tolist()
                assert len(vals) == 5 and set(vals) <= set(full)  # a subset of the unit's N x H x W values
                get = lambda m: [float(r[5]) for r in rows if r[1] == m and r[2] == i and r[3] == u][0]
                mean = unit_values(seen[i], u).double().mean().item()
                f32 = dict(rel=1e-5, abs=1e-6)  # moments and quantiles are taken in the activations' float32
                assert get("act_mean") == pytest.approx(mean, **f32)
                assert get("act_var") == pytest.approx(unit_values(seen[i], u).double().var(unbiased=False).item(), **f32)
                assert get("act_q50") == pytest.approx(unit_values(seen[i], u).double().quantile(0.5).item(), **f32)
                if step > 0:
                    assert get("moment_shift_mean") == pytest.approx(abs(mean - means[i, u, step - 1]), **f32)
                    assert get("moment_drift_mean") == pytest.approx(abs(mean - means[i, u, 0]), **f32)
                means[i, u, step] = mean


# ------------------------------------------------------------------------- evaluation only
def test_landscape_on_bn_leaves_model_rng_and_grads_untouched():
    torch.manual_seed(0)
    model = build_model(SmallCNNConf(channels=[3, 4], kernel_size=3), NormConf(name="noisy_batch"), (1, 10, 10), 3)
    x, y = torch.randn(6, 1, 10, 10), torch.randint(0, 3, (6,))
    rng = RNGState.capture()
    LOSSES["cross_entropy"](model(x), y).backward()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    cpu = torch.get_rng_state()
    params = {n: p.detach() for n, p in model.named_parameters()}
    rng.restore()  # replaying the step's noise reproduces its gradient exactly
    _, again = loss_and_grads(model, LOSSES["cross_entropy"], params, x, y)
    assert all(torch.equal(again[n], grads[n]) for n in grads)
    torch.set_rng_state(cpu)
    res = landscape(model, LOSSES["cross_entropy"], x, y, [1e-30, 0.1], params, grads, rng)
    assert res.grad_diffs[0] == pytest.approx(0.0, abs=1e-6)  # same noise: g(w - 0 g) = g(w)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # running stats included
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert model.training


def _synthetic(n: int = 48, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 10, 10, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return TensorData("synthetic", x, y, x[:16].clone(), y[:16].clone(), 3)


def _every(measure: MeasureConf, every: int) -> MeasureConf:
    """Every registered measurement's schedule set to ``every`` (the registry's nodes, not a hand list)."""
    for node in schemas():
        getattr(measure, node).every = every
    return measure


def _config(norm: str, measure: bool, fix_noise: bool = True, beta_wrt: str = "activations", device: str = "cpu") -> Config:
    every = 1 if measure else 0
    return Config(
        model=SmallCNNConf(channels=[3, 4], kernel_size=3),
        norm=NormConf(name=norm),
        data=DataConf(),
        optim=OptimConf(lr=0.05, momentum=0.9, weight_decay=1e-3),
        measure=_every(MeasureConf(
            activations=ActivationsConf(layers=[1, 2], units=2, samples=4, quantiles=[0.5]),
            ics=ICSConf(layers=[1, 2]),
            landscape=LandscapeConf(points=2, beta_wrt=beta_wrt, beta_layer=2),
            fix_noise=fix_noise,
        ), every),
        train=TrainConf(steps=4, batch_size=12, log_every=1, eval_every=2, eval_size=16, eval_batch_size=16,
                        checkpoint_every=0, device=device),
        progress=False,
    )


def _train(cfg: Config, out_dir):
    trainer = Trainer(cfg, out_dir, data=_synthetic())
    trainer.run()
    rng = torch.cuda.get_rng_state() if trainer.parts.device.type == "cuda" else torch.get_rng_state()
    return trainer, read_metrics(out_dir / "metrics.csv"), rng


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("norm, fix_noise, beta_wrt, device", [
    ("none", True, "activations", "cpu"), ("batch", True, "activations", "cpu"),
    ("noisy_batch", True, "activations", "cpu"), ("noisy_batch", False, "weights", "cpu"), ("l2", True, "weights", "cpu"),
    pytest.param("batch", True, "activations", "cuda", marks=CUDA),
    pytest.param("noisy_batch", True, "activations", "cuda", marks=CUDA),
    pytest.param("noisy_batch", False, "weights", "cuda", marks=CUDA),
])
def test_measurements_leave_training_bit_for_bit(tmp_path, norm, fix_noise, beta_wrt, device):
    on, rows_on, rng_on = _train(_config(norm, True, fix_noise, beta_wrt, device), tmp_path / "on")
    off, rows_off, rng_off = _train(_config(norm, False, device=device), tmp_path / "off")
    measured = set(rows_on["metric"]) - set(rows_off["metric"])
    expected = {"act_sample", "act_mean", "act_var", "act_q50", "moment_shift_mean", "moment_drift_var", "ics_l2",
                "ics_cos", "landscape_loss", "grad_pred", "beta_ratio", "beta", "loss_change"}
    assert expected <= measured and ("beta_act" in measured) == (beta_wrt == "activations")
    declared = {m for c in enabled(on.cfg.measure) for m in c.metrics(node_of(on.cfg.measure, c))}
    # each registered measurement writes only the metrics it declares, and all of them but the per-layer ones of
    # layers this model lacks (Theorem 4.1 needs plain BN layers, scale invariance normalised ones, the branch ratio
    # residual units)
    assert measured <= declared and all(m.startswith(("thm41_", "si_", "sig_branch")) for m in declared - measured)
    plain = rows_on[~rows_on["metric"].isin(measured)].reset_index(drop=True)
    assert {"train_loss", "test_loss", "train_eval_acc"} <= set(plain["metric"])
    assert plain.equals(rows_off)  # training loss/accuracy and evaluations, every value bit-for-bit
    s_on, s_off = on.parts.model.state_dict(), off.parts.model.state_dict()
    assert s_on.keys() == s_off.keys() and all(torch.equal(s_on[k], s_off[k]) for k in s_on)  # BN running stats too
    o_on, o_off = on.parts.optimizer.state_dict()["state"], off.parts.optimizer.state_dict()["state"]
    assert all(torch.equal(o_on[k]["momentum_buffer"], o_off[k]["momentum_buffer"]) for k in o_off)
    assert torch.equal(rng_on, rng_off)  # the RNG stream (noisy BN's noise) is where training left it
    ics1 = rows_on[(rows_on["metric"] == "ics_l2") & (rows_on["layer"] == 1)]["value"]
    assert len(ics1) == 4
    if norm != "noisy_batch" or fix_noise:
        assert (ics1 == 0.0).all()  # G' of layer 1 is G itself: the step's noise is replayed exactly
    else:
        assert (ics1 > 0).all()  # fresh noise in the probe: G' differs from G even for layer 1


HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


@pytest.mark.parametrize("norm, measured", [("none", False), ("batch", False), ("noisy_batch", False),
                                            ("l2", False), ("noisy_batch", True)])
def test_loop_reads_tensors_back_only_on_its_schedules(tmp_path, monkeypatch, norm, measured):
    """No device-to-host read (a host sync on a GPU) in a step unless it logs or measures."""
    cfg = _config(norm, measured)
    cfg.train = TrainConf(steps=11, batch_size=12, log_every=4, eval_every=0, checkpoint_every=0)
    if measured:
        _every(cfg.measure, 5)
    trainer = Trainer(cfg, tmp_path, data=_synthetic())
    now: dict = {"step": None}
    indices = trainer.parts.sampler.indices
    monkeypatch.setattr(trainer.parts.sampler, "indices", lambda step: (now.update(step=step), indices(step))[1])
    reads: list[tuple] = []
    for name in HOST_READS:
        def read(self, *a, _orig=getattr(torch.Tensor, name), _name=name, **k):
            reads.append((now["step"], _name))
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, read)
    trainer.run()
    monkeypatch.undo()
    logged = {3, 7, 10}  # (step + 1) % log_every == 0, and the last step
    due = {0, 5, 10} if measured else set()  # every 5
    steps = {s for s, _ in reads if s is not None}
    assert steps <= logged | due, sorted(steps - logged - due)
    assert logged <= steps  # the patch sees reads: each log row reads the window back
