"""Normalisation layers, their config schema ``NormConf`` and their registry ``NORMS`` (the ``norm`` group).

A norm is one factory registered with ``@norm(name, label=..., colour=...)``:
``factory(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module``; ``spatial=True`` means conv
activations ``(N, C, H, W)``, ``False`` linear ones ``(N, C)``. A "unit" is a channel: batch-statistic norms
pool over N (linear) or N x H x W (conv). What the suite needs to know about a norm comes from its
registration: its figure label and colour (optional: its name, and a colour of its own), and, derived from
the module it builds unless given, whether it normalises with batch statistics and whether it divides out a
positive rescaling of its input (scale invariance: ``bnstudy.measures.scale_invariance`` measures exactly the
blocks whose norm does). A new norm is its registration here and ``conf/norm/<name>.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnstudy.registry import Registry
from bnstudy.schema import Choice, ConfigError, ranged

NOISE_WHERE = ("after_affine", "before_affine")
Position = Choice("Position", {"before": "before", "after": "after"})
NoiseWhere = Choice("NoiseWhere", {"after_affine": "after_affine", "before_affine": "before_affine"})


@dataclass
class NormConf:
    """One switch for every model. ``name`` is the key in :data:`NORMS`."""

    name: str = "none"  # none | batch | noisy_batch | noise | l1 | l2 | linf | layer | group | instance | rms
    #                     | post_layer | fixup | skipinit (the last three: residual networks only, RESIDUAL)
    position: Position = Position.before  # the norm before or after the activation
    eps: float = ranged(1e-5, gt=0)
    momentum: float = ranged(0.1, ge=0, le=1)  # running-statistics momentum (PyTorch convention)
    affine: bool = True
    groups: int = ranged(8, ge=1)  # GroupNorm groups (clipped to divide the channels)
    # Algorithm 1 (noisy BatchNorm) constants
    noise_mu: float = ranged(0.5, ge=0)  # n_mu: mu_j ~ U(-n_mu, n_mu)
    noise_sigma: float = ranged(1.25, ge=1)  # n_sigma: sigma_j ~ U(1, n_sigma)
    noise_r_mu: float = ranged(0.1, ge=0)  # r_mu: m_ij ~ U(mu_j - r_mu, mu_j + r_mu)
    noise_r_sigma: float = ranged(0.1, ge=0)  # r_sigma: s_ij ~ N(sigma_j, r_sigma)   (a standard deviation)
    noise_where: NoiseWhere = NoiseWhere.after_affine  # [open] after_affine | before_affine


def _unit_view(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a per-unit vector ``(C,)`` to broadcast against an ``ndim`` activation ``(N, C, ...)``."""
    return t.view(1, -1, *([1] * (ndim - 2)))


def algorithm1_noise(
    shape: Sequence[int], n_mu: float, n_sigma: float, r_mu: float, r_sigma: float,
    device: torch.device | None = None, dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1's additive ``m`` and multiplicative ``s`` for an activation of ``shape`` (units on dim 1).

    Drawn from torch's global generator in the fixed order mu, sigma, m, s (replayable from its state).
    """
    ndim, c = len(shape), shape[1]
    kw = dict(device=device, dtype=dtype)
    mu = (2 * torch.rand(c, **kw) - 1) * n_mu
    sigma = 1 + (n_sigma - 1) * torch.rand(c, **kw)
    m = _unit_view(mu, ndim) + (2 * torch.rand(shape, **kw) - 1) * r_mu
    s = _unit_view(sigma, ndim) + r_sigma * torch.randn(shape, **kw)
    return m, s


class NoiseOnly(nn.Module):
    """Algorithm 1's noise without any normalisation: "the same noise in the standard network" (Fig. 2)."""

    def __init__(self, n_mu: float, n_sigma: float, r_mu: float, r_sigma: float) -> None:
        super().__init__()
        self.constants = (n_mu, n_sigma, r_mu, r_sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        m, s = algorithm1_noise(x.shape, *self.constants, device=x.device, dtype=x.dtype)
        return s * x + m


class NoisyBatchNorm(_BatchNorm):
    """BatchNorm followed by the non-stationary noise of the paper's Algorithm 1 (training only).

    At every training forward, per unit j: ``mu_j ~ U(-n_mu, n_mu)``, ``sigma_j ~ U(1, n_sigma)``; per
    sample i of that unit (every position of N x H x W for conv): ``m_ij ~ U(mu_j - r_mu, mu_j + r_mu)``,
    ``s_ij ~ N(sigma_j, r_sigma)`` (``r_sigma`` a standard deviation), and ``a_ij <- s_ij * a_ij + m_ij``.

    ``where="after_affine"``: ``a`` is the ordinary BN output (after gamma/beta). ``"before_affine"``: the
    noise hits the normalised x-hat and gamma/beta come after it. Either way the parameters and buffers
    are named as in ``nn.BatchNorm*d`` (state dicts are interchangeable) and eval mode is exactly plain
    BN with running statistics.

    The noise comes from torch's global generator for ``x.device`` (the CUDA generator on GPU), drawn
    in the fixed order mu, sigma, m, s, so restoring that generator's state replays the same noise.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        noise_mu: float = 0.5,
        noise_sigma: float = 1.25,
        noise_r_mu: float = 0.1,
        noise_r_sigma: float = 0.1,
        where: str = "after_affine",
    ) -> None:
        if where not in NOISE_WHERE:
            raise ValueError(f"noise_where must be one of {NOISE_WHERE}, got {where!r}")
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine)
        self.noise_mu, self.noise_sigma = noise_mu, noise_sigma
        self.noise_r_mu, self.noise_r_sigma = noise_r_mu, noise_r_sigma
        self.where = where

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected (N, C) or (N, C, H, W) input, got {x.dim()}D")

    def sample_noise(
        self, shape: Sequence[int], device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw Algorithm 1's additive ``m`` and multiplicative ``s``, both of ``shape`` (unit dim 1)."""
        return algorithm1_noise(shape, self.noise_mu, self.noise_sigma, self.noise_r_mu, self.noise_r_sigma,
                                device, dtype)

    def _add_noise(self, a: torch.Tensor) -> torch.Tensor:
        m, s = self.sample_noise(a.shape, device=a.device, dtype=a.dtype)
        return s * a + m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        if self.where == "after_affine":
            return self._add_noise(super().forward(x))
        # before_affine: BN without gamma/beta (same running-stat update as nn.BatchNorm), noise, affine.
        self._check_input_dim(x)
        self.num_batches_tracked.add_(1)
        y = F.batch_norm(x, self.running_mean, self.running_var, None, None, True, self.momentum, self.eps)
        y = self._add_noise(y)
        if self.affine:
            y = y * _unit_view(self.weight, y.dim()) + _unit_view(self.bias, y.dim())
        return y

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, noise_mu={self.noise_mu}, noise_sigma={self.noise_sigma}, "
            f"noise_r_mu={self.noise_r_mu}, noise_r_sigma={self.noise_r_sigma}, where={self.where}"
        )


class LpNorm(nn.Module):
    """BatchNorm's centring, but scaling by an lp power mean of the deviations (paper, Section 3.3).

    Per unit j over its n batch values (N, or N x H x W for conv)::

        mu_j = mean_i(a_ij);  c_ij = a_ij - mu_j
        s_j  = ((1/n) * sum_i |c_ij|^p)^(1/p)   p = 1: mean absolute deviation; p = 2: biased std
        s_j  = max_i |c_ij|                     p = inf (the p -> inf limit of the power mean)
        out_ij = gamma_j * c_ij / (s_j + eps) + beta_j

    ``eps`` is added to the scale, not inside a root (for p = 2 this is the one difference from BN's
    ``sqrt(var + eps)``). Gradients flow through mu and s, as in BN. Running estimates of mu and s
    (``running = (1 - momentum) * running + momentum * batch``) replace them in eval mode.
    """

    def __init__(
        self, num_features: int, p: float, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ) -> None:
        super().__init__()
        if p not in (1, 2, math.inf):
            raise ValueError(f"p must be 1, 2 or inf, got {p}")
        self.num_features, self.p, self.eps, self.momentum = num_features, p, eps, momentum
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_scale", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected (N, C) or (N, C, H, W) input, got {x.dim()}D")
        if self.training:
            dims = [0, *range(2, x.dim())]
            n = x.numel() // x.shape[1]
            mean = x.mean(dims)
            c = x - _unit_view(mean, x.dim())
            # ||c||_p / n^(1/p) is the power mean; vector_norm gives p = inf (max) and a zero gradient at 0.
            scale = torch.linalg.vector_norm(c, ord=self.p, dim=dims) / n ** (1 / self.p)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_scale.lerp_(scale.detach(), self.momentum)
        else:
            mean, scale = self.running_mean, self.running_scale
            c = x - _unit_view(mean, x.dim())
        y = c / (_unit_view(scale, x.dim()) + self.eps)
        if self.affine:
            y = y * _unit_view(self.weight, x.dim()) + _unit_view(self.bias, x.dim())
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, p={self.p}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        )


def uses_batch_statistics(module: nn.Module) -> bool:
    """True for layers whose training output for one sample depends on the rest of the batch."""
    return isinstance(module, (_BatchNorm, LpNorm))


# ------------------------------------------------------------------------------------------ registry
Factory = Callable[["NormConf", int, bool], nn.Module]


@dataclass(frozen=True)
class Norm:
    """A registered norm: its factory and what figures and measurements need to know about it. ``label`` and
    ``colour`` None: its name, and a colour of its own (:func:`norm_look`); ``scale_invariant`` and
    ``batch_statistics`` None: derived from the module it builds (:func:`derived`). ``residual``: None for a
    norm that sits where a plain network has it (in a residual network: inside each branch), else how a residual
    network uses it (:data:`RESIDUAL`); such a norm means nothing without a residual branch."""

    name: str
    build: Factory
    label: Optional[str] = None
    colour: Optional[str] = None
    invariant: Optional[bool] = None
    batch_stats: Optional[bool] = None
    residual: Optional[str] = None

    def __call__(self, cfg: "NormConf", num_features: int, spatial: bool) -> nn.Module:
        return self.build(cfg, num_features, spatial)

    @property
    def scale_invariant(self) -> bool:
        """Whether it divides out a positive rescaling of its input in training: n(c x) = n(x) for c > 0."""
        return self.invariant if self.invariant is not None else derived(self.name, self.build)[0]

    @property
    def batch_statistics(self) -> bool:
        """Whether its training output for one sample depends on the rest of the batch (eval mode differs)."""
        return self.batch_stats if self.batch_stats is not None else derived(self.name, self.build)[1]


NORMS: Registry[Norm] = Registry("norm")
"""Every norm by name (the ``norm`` config group's options), in registration order."""


RESIDUAL = {"post": "the norm after the residual addition (post-LN), not inside the branch",
            "fixup": "no normalisation: Fixup's initialisation, scalar biases and multiplier (Zhang et al. 2019)",
            "skipinit": "no normalisation: a learnable scalar on each residual branch, initialised to 0 (De & Smith "
                        "2020)"}
"""How a residual network uses a norm registered with ``residual=`` (``bnstudy.models`` reads it)."""


def norm(name: str, *, label: Optional[str] = None, colour: Optional[str] = None,
         scale_invariant: Optional[bool] = None, batch_statistics: Optional[bool] = None,
         residual: Optional[str] = None):
    """Decorator: register ``factory(cfg, num_features, spatial) -> nn.Module`` as norm ``name``. Optional:
    ``label`` and ``colour`` (how figures draw it), ``scale_invariant`` and ``batch_statistics`` (default:
    derived from the module it builds), ``residual`` (a key of :data:`RESIDUAL`: a residual network's scheme)."""
    if residual is not None and residual not in RESIDUAL:
        raise ValueError(f"norm {name!r}: residual={residual!r}; valid: {', '.join(RESIDUAL)}")

    def register(factory: Factory) -> Factory:
        NORMS.add(name, Norm(name, factory, label, colour, scale_invariant, batch_statistics, residual))
        return factory
    return register


@lru_cache(maxsize=None)
def derived(name: str, build: Factory) -> tuple[bool, bool]:
    """(scale invariant, uses batch statistics) of the module ``build`` makes, asked rather than listed: built
    on 4 units of a conv input (every norm accepts one; else a linear input) in training mode, it is run on a
    fixed random batch, on 3.7 times it (scale invariant: the same output) and on the batch with every sample
    but the first changed (batch statistics: the first sample's output changes). Every run draws the same noise
    (noisy BN's comes after the normalisation), inside a fork of torch's CPU generator: a run's stream is
    untouched."""
    with torch.random.fork_rng(devices=[]):
        for spatial, shape in ((True, (16, 4, 3, 3)), (False, (64, 4))):
            try:
                module = build(NormConf(name=name), 4, spatial).double().train()
            except (ConfigError, ValueError, RuntimeError):
                continue
            x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
            others = torch.cat([x[:1], 2 * x[1:] + 1])

            def out(batch: torch.Tensor) -> torch.Tensor:
                torch.default_generator.manual_seed(0)  # the CPU generator only: fork_rng puts it back
                with torch.no_grad():
                    return module(batch)

            same = lambda a, b: bool(torch.linalg.vector_norm(a - b) <= 1e-3 * torch.linalg.vector_norm(a))  # eps aside
            y = out(x)
            return same(y, out(3.7 * x)), not same(y[:1], out(others)[:1])
    return False, False


def residual_scheme(name: str) -> Optional[str]:
    """How a residual network uses norm ``name`` (a key of :data:`RESIDUAL`); None for a norm that sits in the
    branch's slot, or for a name not registered (``make_norm`` names the valid ones)."""
    return NORMS[name].residual if name in NORMS else None


def norm_uses_batch_statistics(name: str) -> bool:
    """Whether the registered norm ``name`` normalises with batch statistics in training (its eval mode is
    then another function); False for a name not registered."""
    return name in NORMS and NORMS[name].batch_statistics


def _largest_divisor_at_most(n: int, k: int) -> int:
    if k < 1:
        raise ValueError(f"groups must be >= 1, got {k}")
    return next(d for d in range(min(n, k), 0, -1) if n % d == 0)


@norm("none", label="Standard", colour="#1f77b4")
def _none(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    return nn.Identity()


@norm("batch", label="Standard + BatchNorm", colour="#d62728")
def _batch(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    """torch's own BN (cuDNN): normalises with the biased batch variance; running_var is unbiased."""
    cls = nn.BatchNorm2d if spatial else nn.BatchNorm1d
    return cls(num_features, eps=cfg.eps, momentum=cfg.momentum, affine=cfg.affine)


@norm("noisy_batch", label="Standard + \"Noisy\" BatchNorm", colour="#ff7f0e")
def _noisy_batch(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    return NoisyBatchNorm(
        num_features,
        eps=cfg.eps,
        momentum=cfg.momentum,
        affine=cfg.affine,
        noise_mu=cfg.noise_mu,
        noise_sigma=cfg.noise_sigma,
        noise_r_mu=cfg.noise_r_mu,
        noise_r_sigma=cfg.noise_r_sigma,
        where=cfg.noise_where,
    )


@norm("noise", label="Standard + noise", colour="#7f7f7f")
def _noise(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    return NoiseOnly(cfg.noise_mu, cfg.noise_sigma, cfg.noise_r_mu, cfg.noise_r_sigma)


def _lp(p: float) -> Factory:
    def factory(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
        return LpNorm(num_features, p=p, eps=cfg.eps, momentum=cfg.momentum, affine=cfg.affine)

    factory.__qualname__ = factory.__name__ = f"lp_{p}"
    return factory


norm("l1", label="l1 norm", colour="#2ca02c")(_lp(1))
norm("l2", label="l2 norm", colour="#9467bd")(_lp(2))
norm("linf", label="linf norm", colour="#8c564b")(_lp(math.inf))


@norm("layer", label="LayerNorm", colour="#e377c2")
def _layer(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    """Spatial: one group = LayerNorm over (C, H, W) with a per-channel (not per-position) affine."""
    if spatial:
        return nn.GroupNorm(1, num_features, eps=cfg.eps, affine=cfg.affine)
    return nn.LayerNorm(num_features, eps=cfg.eps, elementwise_affine=cfg.affine)


@norm("group", label="GroupNorm", colour="#17becf")
def _group(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    """cfg.groups is clipped down to a divisor of C so one config fits every layer width."""
    groups = _largest_divisor_at_most(num_features, cfg.groups)
    return nn.GroupNorm(groups, num_features, eps=cfg.eps, affine=cfg.affine)


@norm("instance", label="InstanceNorm", colour="#bcbd22")
def _instance(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    if not spatial:
        raise ConfigError(
            "instance norm needs spatial (N, C, H, W) inputs: on (N, C) each unit would be normalised "
            "over a single value (e.g. it cannot be used with the DLN)"
        )
    return nn.GroupNorm(num_features, num_features, eps=cfg.eps, affine=cfg.affine)


class RMSNorm(nn.Module):
    """Root mean square layer normalisation (Zhang & Sennrich 2019): ``g * a / sqrt(mean(a^2) + eps)``, no
    centring. Linear inputs ``(..., C)``: the mean over the last dimension (a transformer's tokens); spatial
    ``(N, C, H, W)``: over C x H x W per sample, with a per-channel gain (as ``layer`` uses GroupNorm(1))."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True, spatial: bool = False):
        super().__init__()
        self.num_features, self.eps, self.spatial = num_features, eps, spatial
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(1, x.dim())) if self.spatial else (-1,)
        y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + self.eps)
        if self.weight is None:
            return y
        return y * (_unit_view(self.weight, x.dim()) if self.spatial else self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}, spatial={self.spatial}"


@norm("rms", label="RMSNorm", colour="#6b6ecf")
def _rms(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    return RMSNorm(num_features, eps=cfg.eps, affine=cfg.affine, spatial=spatial)


@norm("post_layer", label="Post-LN", colour="#ad494a", residual="post")
def _post_layer(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    """LayerNorm after each residual addition (the original transformer's place); ``layer`` is pre-LN there."""
    return _layer(cfg, num_features, spatial)


@norm("fixup", label="Fixup", colour="#e6a700", residual="fixup")
def _fixup(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    """No normalisation in the layer's slot: the residual network adds Fixup's scalars and initialisation."""
    return nn.Identity()


@norm("skipinit", label="SkipInit", colour="#00a087", residual="skipinit")
def _skipinit(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    """No normalisation in the layer's slot: the residual network scales each branch by alpha (init 0)."""
    return nn.Identity()


SPARE_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
                 "#756bb1", "#636363", "#9c9ede", "#cedb9c", "#e7cb94", "#e7969c", "#de9ed6")
"""The colours of norms registered without one, in registration order (each distinct from every given one)."""


def norm_look(name: str) -> tuple[str, str]:
    """(label, colour) of norm ``name`` for figures: those of its registration, else its name and the first
    colour of :data:`SPARE_COLOURS` no registered norm gives (in registration order, while they last)."""
    entry = NORMS.get(name)
    label = entry.label if entry is not None and entry.label else name
    if entry is not None and entry.colour:
        return label, entry.colour
    taken = {n.colour for n in NORMS.values() if n.colour}
    spare = [c for c in SPARE_COLOURS if c not in taken]
    others = [n for n, e in NORMS.items() if not e.colour]
    i = others.index(name) if name in others else len(others) + sum(map(ord, name))
    return label, spare[i % len(spare)]


def make_norm(cfg: NormConf, num_features: int, spatial: bool) -> nn.Module:
    """Build the normalisation layer ``cfg.name`` for ``num_features`` units."""
    if cfg.name not in NORMS:
        raise ConfigError(f"unknown norm {cfg.name!r}; valid names: {', '.join(sorted(NORMS))}")
    return NORMS[cfg.name].build(cfg, num_features, spatial)
