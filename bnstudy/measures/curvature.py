"""Second-order curvature: the Hessian's top eigenvalue (sharpness) and the curvature along the gradient.

The function whose Hessian is taken is the training objective averaged over equal chunks of a sample,
``L(w) = mean_k loss_fn(f_w(x_k), y_k)``, each chunk the size of a training batch. In **train** mode
BatchNorm normalises each chunk with its own batch statistics (the function SGD descends, as in the
edge-of-stability code of Cohen et al. 2021); in **eval** mode it uses the running statistics (the
function PyHessian and loss-landscape measure). For a BN network these are different functions with
different Hessians; for a network without batch statistics they coincide.

Every Hessian-vector product is an exact double backward through ``forward_at`` (copies of the
buffers, so running statistics never move); noisy BN's noise is replayed from one RNG state in every
product, so each Lanczos run sees one fixed function. Nothing accumulates into ``.grad``.

Cost, in passes of one chunk (a training batch): an HVP is, per chunk, 1 forward + 1 backward that
keeps its graph + 1 double backward (about 2 backwards); the top eigenvalue takes ``iters`` HVPs at
most (Lanczos stops early once its residual bound is below ``tol``). ``gradient_curvature`` is one
HVP on one batch.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import torch
from torch import nn
from bnstudy.measures.functional import trainable_params
from bnstudy.schema import ranged
from bnstudy.measures.registry import Cost, Measurement, Row, Step, register

from bnstudy.measures.functional import LossFn, Params, RNGState, forward_at

MODES = ("train", "eval")
HESS_LMAX = {m: f"hess_lmax_{m}" for m in MODES}  # lambda_max of each mode's Hessian
HESS_LMIN = {m: f"hess_lmin_{m}" for m in MODES}  # the smallest Ritz value found
HESS_RESIDUAL = {m: f"hess_residual_{m}" for m in MODES}  # error bound on lambda_max
BATCH_SHARPNESS = "batch_sharpness"  # g^T H g / ||g||^2 on the step's batch
BETA_LIMIT = "beta_limit"  # ||H g|| / ||g|| on the step's batch


@dataclass
class HessianConf:
    """lambda_max of the Hessian on a fixed subset of the training data, in train and/or eval mode."""

    every: int = ranged(0, ge=0)  # 0 = off
    samples: int = ranged(4096, ge=1)  # the fixed subset (a 128-sample Hessian swings lambda_max by 10x between batches)
    chunk: int = ranged(0, ge=0)  # samples per chunk: batch statistics in train mode (0 = train.batch_size)
    modes: list[str] = field(default_factory=lambda: ["train", "eval"])
    iters: int = ranged(20, ge=1)  # most Lanczos steps (HVPs) per mode
    tol: float = ranged(1e-3, gt=0)  # stop once the residual bound is below tol * lambda_max
    seed: int = ranged(0, ge=0)  # Lanczos start vector and the subset (with the run's seed)


@dataclass
class GradCurvatureConf:
    """batch_sharpness and beta_limit on the step's batch, from one HVP with the step's gradient."""

    every: int = ranged(0, ge=0)


def fixed_subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training samples (all of them if fewer), picked once by ``seed``, in a fixed order."""
    if n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].to(x.device)
    return x[idx], y[idx]


@contextmanager
def mode(model: nn.Module, name: str) -> Iterator[None]:
    """``model`` in train or eval mode for the block, every submodule's own flag put back after."""
    if name not in MODES:
        raise ValueError(f"mode={name!r} is unknown; valid: {list(MODES)}")
    flags = [(m, m.training) for m in model.modules()]
    model.train(name == "train")
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def chunks(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Equal chunks of ``size`` samples; a remainder smaller than ``size`` is dropped, as the sampler drops it."""
    if size < 1 or size > len(x):
        raise ValueError(f"chunk size {size} must lie in 1..{len(x)} (the number of samples)")
    k = len(x) // size
    return [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in range(k)]


def _flat(ts) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])


def _unflat(v: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for t in like:
        out.append(v[i:i + t.numel()].view_as(t))
        i += t.numel()
    return out


def hvp(
    model: nn.Module,
    loss_fn: LossFn,
    params: Params,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    v: list[torch.Tensor],
    rng: Optional[RNGState] = None,
    with_grad: bool = False,
):
    """H v for L(w) = mean over ``batches`` of loss_fn, in the model's current mode, by double backward.

    ``v`` is one tensor per entry of ``params`` (in order). With ``rng`` the generator is set before the
    first chunk, so noisy BN draws the same noise in every call. With ``with_grad`` also returns g(w).
    """
    names = list(params)
    hv = [torch.zeros_like(t) for t in v]
    g_sum = [torch.zeros_like(t) for t in v] if with_grad else None
    if rng is not None:
        rng.restore()
    with torch.enable_grad():
        for xb, yb in batches:
            leaves = {n: params[n].detach().requires_grad_(True) for n in names}
            loss = loss_fn(forward_at(model, leaves, xb), yb)
            grads = torch.autograd.grad(loss, [leaves[n] for n in names], create_graph=True)
            dot = sum((g * u).sum() for g, u in zip(grads, v))
            parts = torch.autograd.grad(dot, [leaves[n] for n in names], allow_unused=True)
            for acc, part in zip(hv, parts):
                if part is not None:
                    acc += part.detach()
            if g_sum is not None:
                for acc, g in zip(g_sum, grads):
                    acc += g.detach()
    k = len(batches)
    hv = [t / k for t in hv]
    return (hv, [t / k for t in g_sum]) if with_grad else hv


@dataclass
class LanczosResult:
    """Top (and bottom) Ritz values of a symmetric operator after ``iters`` Lanczos steps."""

    top: float  # largest Ritz value: a lower bound on lambda_max, within ``residual`` of an eigenvalue
    bottom: float  # smallest Ritz value (the most negative curvature found)
    residual: float  # ||A u - top u|| for the top Ritz vector u: the error bound on ``top``
    iters: int


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], dim: int, iters: int, tol: float,
            start: torch.Tensor) -> LanczosResult:
    """Lanczos with full reorthogonalisation on a flat operator; stops when the top Ritz pair's residual
    ``beta_k |s_k|`` is at most ``tol * |top|`` (a bound on its distance to an eigenvalue) or after ``iters``.

    Power iteration converges to the largest *magnitude* eigenvalue and slowly when the top two are
    close; Lanczos gives the largest algebraic one in far fewer products.
    """
    q = start / torch.linalg.vector_norm(start)
    basis: list[torch.Tensor] = []
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    for k in range(min(iters, dim)):
        basis.append(q)
        w = matvec(q)
        alpha = torch.dot(w, q)
        alphas.append(alpha)
        Q = torch.stack(basis)
        for _ in range(2):  # twice is enough (Parlett's "twice is enough")
            w = w - Q.T @ (Q @ w)
        beta = torch.linalg.vector_norm(w)
        a = torch.stack(alphas).double().cpu()
        b = torch.stack(betas).double().cpu() if betas else torch.zeros(0, dtype=torch.float64)
        T = torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)
        evals, evecs = torch.linalg.eigh(T)
        top, residual = float(evals[-1]), float(beta) * abs(float(evecs[-1, -1]))
        if residual <= tol * abs(top) or float(beta) <= 1e-12 * max(abs(top), 1e-30) or k + 1 == min(iters, dim):
            return LanczosResult(top, float(evals[0]), residual, k + 1)
        betas.append(beta)
        q = w / beta
    raise AssertionError("unreachable")


def hessian_top_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    mode_name: str,
    chunk: int,
    iters: int = 20,
    tol: float = 1e-3,
    seed: int = 0,
    rng: Optional[RNGState] = None,
) -> LanczosResult:
    """lambda_max of the Hessian of the chunk-averaged loss on (x, y), in ``mode_name`` ("train"/"eval").

    The model, its buffers, ``.grad`` and torch's RNG are left as they were. ``seed`` fixes Lanczos'
    start vector; ``rng`` (train mode) fixes noisy BN's noise (default: the generator's state now).
    """
    names = list(params)
    like = [params[n] for n in names]
    batches = chunks(x, y, chunk)
    post = RNGState.capture()
    fixed = rng if rng is not None else post
    with mode(model, mode_name):
        matvec = lambda v: _flat(hvp(model, loss_fn, params, batches, _unflat(v, like), fixed))
        dim = sum(t.numel() for t in like)
        g = torch.Generator().manual_seed(seed)
        start = torch.randn(dim, generator=g, dtype=like[0].dtype).to(like[0].device)
        try:
            return lanczos(matvec, dim, iters, tol, start)
        finally:
            post.restore()


@dataclass
class GradientCurvature:
    """Curvature along the batch gradient g, from one Hessian-vector product H g."""

    batch_sharpness: float  # g^T H g / ||g||^2: the Rayleigh quotient along g
    beta_limit: float  # ||H g|| / ||g||: the eta -> 0 limit of the paper's effective-beta ratio along g
    grad_norm: float


def gradient_curvature(
    model: nn.Module,
    loss_fn: LossFn,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    rng: Optional[RNGState] = None,
) -> GradientCurvature:
    """Both forms on (x, y) in the model's current mode: one forward, one backward with graph, one double backward.

    |batch_sharpness| <= beta_limit always (Cauchy-Schwarz); they are equal when g is an eigenvector.
    """
    names = list(params)
    post = RNGState.capture()
    if rng is not None:
        rng.restore()
    try:
        with torch.enable_grad():
            leaves = {n: params[n].detach().requires_grad_(True) for n in names}
            loss = loss_fn(forward_at(model, leaves, x), y)
            grads = torch.autograd.grad(loss, [leaves[n] for n in names], create_graph=True)
            g = [t.detach() for t in grads]
            dot = sum((a * b).sum() for a, b in zip(grads, g))
            hg = torch.autograd.grad(dot, [leaves[n] for n in names], allow_unused=True)
    finally:
        post.restore()
    hg = [torch.zeros_like(a) if h is None else h for a, h in zip(g, hg)]
    g_sq = sum((a * a).sum() for a in g)
    ghg = sum((a * h).sum() for a, h in zip(g, hg))
    hg_norm = torch.sqrt(sum((h * h).sum() for h in hg))
    values = torch.stack([ghg / g_sq, hg_norm / g_sq.sqrt(), g_sq.sqrt()]).double().cpu().tolist()
    return GradientCurvature(*values)


# ------------------------------------------------------------------------------ registered measurements
@register
class Hessian(Measurement):
    """lambda_max of the Hessian on a fixed training subset, per mode (``hess_lmax_train``, ``hess_lmax_eval``),
    with the smallest Ritz value and Lanczos' error bound. Its HVPs replay the step's noise (noisy BN)."""

    name = "hessian"
    Conf = HessianConf
    order = 60
    needs_rng = True

    def __init__(self, conf: HessianConf, ctx):
        super().__init__(conf, ctx)
        data = ctx.data
        self.x, self.y = fixed_subset(data.x_train, data.y_train, conf.samples, ctx.seed * 1000 + conf.seed)
        self.chunk = min(conf.chunk or ctx.batch_size, len(self.x))

    @classmethod
    def cost(cls, conf: HessianConf) -> Cost:
        hvps = len(conf.modes) * conf.iters
        chunks = max(1, conf.samples // (conf.chunk or 128))  # chunk 0 = train.batch_size, taken as 128 here
        return Cost(3 * hvps * chunks, f"at most {hvps} HVPs ({len(conf.modes)} modes x {conf.iters} Lanczos steps) "
                    f"on {chunks} chunk(s), each 1 forward + 1 backward with graph + 1 double backward (~3 passes)",
                    "chunk", chunks)

    @classmethod
    def metrics(cls, conf: HessianConf) -> list[str]:
        return [n for m in conf.modes for n in (HESS_LMAX[m], HESS_LMIN[m], HESS_RESIDUAL[m])]

    @classmethod
    def checks(cls, conf: HessianConf, n_layers):
        return [(bool(conf.modes) and set(conf.modes) <= set(MODES),
                 f"measure.hessian.modes={list(conf.modes)}: choose among {list(MODES)}"),
                (conf.samples >= 1 and conf.iters >= 1 and conf.tol > 0 and conf.chunk >= 0,
                 "measure.hessian: samples and iters must be >= 1, tol > 0, chunk >= 0 (0 = train.batch_size)")]

    @classmethod
    def bench_settings(cls, tiny: bool) -> dict:
        return {"hessian.every": 1, "hessian.iters": 2, "hessian.modes": ["train"], "hessian.tol": 1e-12,
                "hessian.samples": 32, "hessian.chunk": 32}

    def after_backward(self, s: Step) -> list[Row]:
        params = {n: p.detach() for n, p in trainable_params(self.ctx.model).items()}
        rows = []
        for m in self.conf.modes:
            res = hessian_top_eigenvalue(self.ctx.model, self.ctx.loss_fn, params, self.x, self.y, m, self.chunk,
                                         self.conf.iters, self.conf.tol, self.conf.seed, s.rng)
            rows += [Row(s.step, HESS_LMAX[m], res.top), Row(s.step, HESS_LMIN[m], res.bottom),
                     Row(s.step, HESS_RESIDUAL[m], res.residual)]
        return rows


@register
class GradCurvature(Measurement):
    """``batch_sharpness`` and ``beta_limit`` on the step's batch in train mode, g its own gradient."""

    name = "grad_curvature"
    Conf = GradCurvatureConf
    order = 61
    needs_rng = True

    @classmethod
    def cost(cls, conf: GradCurvatureConf) -> Cost:
        return Cost(3, "one HVP on the step's batch: 1 forward + 1 backward with graph + 1 double backward")

    @classmethod
    def metrics(cls, conf: GradCurvatureConf) -> list[str]:
        return [BATCH_SHARPNESS, BETA_LIMIT]

    def after_backward(self, s: Step) -> list[Row]:
        params = {n: p.detach() for n, p in trainable_params(self.ctx.model).items()}
        res = gradient_curvature(self.ctx.model, self.ctx.loss_fn, params, s.x, s.y, s.rng)
        return [Row(s.step, BATCH_SHARPNESS, res.batch_sharpness), Row(s.step, BETA_LIMIT, res.beta_limit)]
