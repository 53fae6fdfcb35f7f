"""Known answers for ``bnstudy.measures.curvature``: a dense Hessian, quadratics, the landscape probe, PyHessian.

The dense Hessian of a tiny BN network comes from ``torch.autograd.functional.hessian`` of the same
chunk-averaged loss written out by hand (batch statistics per chunk in train mode, running statistics in
eval mode); the Lanczos top eigenvalue must match its largest eigenvalue to 1e-4 relative.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from bnstudy.config import NormConf, SmallCNNConf
from bnstudy.measures.curvature import (chunks, gradient_curvature, hessian_top_eigenvalue, hvp, lanczos, mode)
from bnstudy.measures.functional import RNGState, trainable_params
from bnstudy.measures.landscape import landscape
from bnstudy.models import build_model
from bnstudy.build import LOSSES

DT = torch.float64
CE = LOSSES["cross_entropy"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors; the CPU is shared


def _tiny_bn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).to(DT)
    with torch.no_grad():  # running statistics unlike the batch's, so eval mode is a different function
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.3, 0.3)
    return model


def _dense_hessian(model: nn.Module, params, x, y, chunk: int, train: bool) -> torch.Tensor:
    names = list(params)
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    theta = torch.cat([params[n].reshape(-1) for n in names]).detach()
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def f(flat):
        ps = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        model.train(train)
        losses = [CE(functional_call(model, (ps, {k: v.clone() for k, v in buffers.items()}), (xb,)), yb)
                  for xb, yb in chunks(x, y, chunk)]
        return torch.stack(losses).mean()

    h = torch.autograd.functional.hessian(f, theta)
    model.train(True)
    return h


@pytest.mark.parametrize("mode_name", ["train", "eval"])
def test_top_eigenvalue_equals_dense_hessian(mode_name):
    model = _tiny_bn()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 3, generator=g, dtype=DT), torch.randint(0, 3, (24,), generator=g)
    params = {n: p.detach() for n, p in trainable_params(model).items()}
    dim = sum(p.numel() for p in params.values())  # 58
    state = {k: v.clone() for k, v in model.state_dict().items()}
    dense = _dense_hessian(model, params, x, y, chunk=8, train=mode_name == "train")
    evals = torch.linalg.eigvalsh(dense)
    res = hessian_top_eigenvalue(model, CE, params, x, y, mode_name, chunk=8, iters=40, tol=1e-9)
    assert res.iters < dim  # converged before spanning the whole space
    assert res.top == pytest.approx(float(evals[-1]), rel=1e-4)
    # the HVP itself is H v exactly, in this mode
    v = torch.randn(dim, generator=g, dtype=DT)
    like = list(params.values())
    parts = list(v.split([p.numel() for p in like]))
    with mode(model, mode_name):
        hv = hvp(model, CE, params, chunks(x, y, 8), [t.view_as(p) for t, p in zip(parts, like)])
    assert torch.allclose(torch.cat([t.reshape(-1) for t in hv]), dense @ v, rtol=1e-9, atol=1e-12)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # running stats untouched
    assert model.training and all(m.training for m in model.modules())


def test_train_and_eval_mode_hessians_differ_for_bn():
    """Batch statistics vs running statistics: two different functions (why both are logged)."""
    model = _tiny_bn()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 3, generator=g, dtype=DT), torch.randint(0, 3, (24,), generator=g)
    params = {n: p.detach() for n, p in trainable_params(model).items()}
    top = {m: hessian_top_eigenvalue(model, CE, params, x, y, m, chunk=8, iters=40, tol=1e-9).top
           for m in ("train", "eval")}
    assert abs(top["train"] - top["eval"]) > 1e-3 * abs(top["eval"])


def test_lanczos_on_a_known_spectrum_with_negative_eigenvalues():
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=torch.Generator().manual_seed(0), dtype=DT))
    spectrum = torch.cat([torch.tensor([7.0, 3.0, -9.0], dtype=DT), torch.linspace(-1, 1, 27, dtype=DT)])
    a = q @ torch.diag(spectrum) @ q.T
    res = lanczos(lambda v: a @ v, 30, 30, 1e-10, torch.ones(30, dtype=DT))
    assert res.top == pytest.approx(7.0, rel=1e-8)  # the largest algebraic, not the largest magnitude (-9)
    assert res.bottom == pytest.approx(-9.0, rel=1e-8)
    assert res.residual <= 1e-10 * 7.0


class Quadratic(nn.Module):
    """Its output is the loss 1/2 w^T H w itself: g = H w, Hessian H."""

    def __init__(self, h: torch.Tensor, w: torch.Tensor):
        super().__init__()
        self.register_buffer("h", h)
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.w @ self.h @ self.w


IDENTITY_LOSS = lambda out, y: out  # noqa: E731


def test_gradient_curvature_on_quadratics():
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(2), dtype=DT))
    lam = torch.tensor([5.0, 2.0, 1.0, 0.5, -3.0, -0.2], dtype=DT)
    h = q @ torch.diag(lam) @ q.T
    x = torch.zeros(1, dtype=DT)
    for k in range(6):  # w an eigenvector: g = H w is one too, both forms equal its eigenvalue
        model = Quadratic(h, 0.7 * q[:, k])
        res = gradient_curvature(model, IDENTITY_LOSS, trainable_params(model), x, x)
        assert res.batch_sharpness == pytest.approx(float(lam[k]), rel=1e-12)
        assert res.beta_limit == pytest.approx(abs(float(lam[k])), rel=1e-12)
    w = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=DT)
    model = Quadratic(h, w)
    res = gradient_curvature(model, IDENTITY_LOSS, trainable_params(model), x, x)
    g = h @ w
    assert res.batch_sharpness == pytest.approx(float(g @ h @ g / (g @ g)), rel=1e-12)
    assert res.beta_limit == pytest.approx(float(torch.linalg.vector_norm(h @ g) / torch.linalg.vector_norm(g)),
                                           rel=1e-12)
    assert abs(res.batch_sharpness) < res.beta_limit  # strict: this g is not an eigenvector


@pytest.mark.parametrize("norm", ["none", "batch", "noisy_batch"])
def test_beta_limit_is_the_landscape_ratio_as_eta_goes_to_zero(norm):
    torch.manual_seed(0)
    model = build_model(SmallCNNConf(channels=[3, 4], kernel_size=3), NormConf(name=norm), (1, 10, 10), 3).to(DT)
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(12, 1, 10, 10, generator=g, dtype=DT), torch.randint(0, 3, (12,), generator=g)
    params = {n: p.detach() for n, p in trainable_params(model).items()}
    rng = RNGState.capture()  # noisy BN: every probe replays one draw of the noise
    res = gradient_curvature(model, CE, params, x, y, rng)
    assert abs(res.batch_sharpness) <= res.beta_limit
    fd = landscape(model, CE, x, y, [1e-3, 1e-5, 1e-7], params, rng=rng)
    errors = [abs(b - res.beta_limit) / res.beta_limit for b in fd.betas]
    assert errors[2] < 1e-5 and errors[2] < errors[0]  # the finite-difference ratio converges to ||Hg||/||g||


def test_pyhessian_agrees_in_eval_mode():
    """PyHessian (a test-only peer: pip install bnstudy[peers]) measures the eval-mode function."""
    pyhessian = pytest.importorskip("pyhessian", reason="PyHessian not installed: pip install -e '.[peers]'")
    torch.manual_seed(0)
    model = build_model(SmallCNNConf(channels=[3, 4], kernel_size=3), NormConf(name="batch"), (1, 12, 12), 3)
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(32, 1, 12, 12, generator=g), torch.randint(0, 3, (32,), generator=g)
    model.train()
    for _ in range(3):  # running statistics away from their initial 0 / 1
        model(x)
    params = {n: p.detach() for n, p in trainable_params(model).items()}
    ours = hessian_top_eigenvalue(model, CE, params, x, y, "eval", chunk=32, iters=60, tol=1e-6).top
    torch.manual_seed(0)
    theirs = pyhessian.hessian(model, CE, data=(x, y), cuda=False).eigenvalues(maxIter=300, tol=1e-7)[0][0]
    assert ours == pytest.approx(theirs, rel=2e-3)  # float32, PyHessian's power iteration
