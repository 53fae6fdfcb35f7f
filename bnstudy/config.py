"""Structured configs (dataclasses) for every Hydra config group, registered in the ConfigStore.

Each group's YAML files under ``conf/`` list their schema first in ``defaults:``; a typo in a key or a
wrong type then fails at start with Hydra's own error naming it. Each group maps to one registry in
code: ``model`` -> ``bnstudy.models.MODELS``, ``norm`` -> ``bnstudy.norms.NORMS``, ``data`` ->
``bnstudy.data.DATASETS``, ``optim`` -> ``bnstudy.train.OPTIMIZERS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class ConfigError(ValueError):
    """A config value that cannot work; the message says what to change (the entry point prints it alone)."""


# --------------------------------------------------------------------------------------------- model
@dataclass
class ModelConf:
    """Fields shared by every model. ``name`` is the key in ``bnstudy.models.MODELS``."""

    name: str = MISSING
    activation: str = "relu"  # relu | identity
    init: str = "glorot"  # glorot | default (PyTorch's own)
    bias: bool = True


@dataclass
class SmallCNNConf(ModelConf):
    """Seed 001's CNN: conv 5x5 (8) -> pool -> conv 5x5 (16) -> pool -> linear."""

    name: str = "small_cnn"
    channels: list[int] = field(default_factory=lambda: [8, 16])
    kernel_size: int = 5


@dataclass
class VGGConf(ModelConf):
    """CIFAR VGG: 3x3 convs with max-pools, one linear classifier. depth in {11, 13, 16, 19}."""

    name: str = "vgg"
    depth: int = 16
    width: float = 1.0  # channel multiplier (quick scale uses narrow nets)


@dataclass
class DLNConf(ModelConf):
    """Deep linear network: ``num_layers`` square ``dim`` x ``dim`` linear layers, no non-linearity."""

    name: str = "dln"
    num_layers: int = 25
    dim: int = 10
    activation: str = "identity"
    norm_last: bool = False  # [open] normalise after the output layer too (default: hidden layers only)


# ---------------------------------------------------------------------------------------------- norm
@dataclass
class NormConf:
    """One switch for every model. ``name`` is the key in ``bnstudy.norms.NORMS``."""

    name: str = "none"  # none | batch | noisy_batch | noise | l1 | l2 | linf | layer | group | instance
    position: str = "before"  # before | after the activation
    eps: float = 1e-5
    momentum: float = 0.1  # running-statistics momentum (PyTorch convention)
    affine: bool = True
    groups: int = 8  # GroupNorm groups (clipped to divide the channels)
    # Algorithm 1 (noisy BatchNorm) constants
    noise_mu: float = 0.5  # n_mu: mu_j ~ U(-n_mu, n_mu)
    noise_sigma: float = 1.25  # n_sigma: sigma_j ~ U(1, n_sigma)
    noise_r_mu: float = 0.1  # r_mu: m_ij ~ U(mu_j - r_mu, mu_j + r_mu)
    noise_r_sigma: float = 0.1  # r_sigma: s_ij ~ N(sigma_j, r_sigma)   (a standard deviation)
    noise_where: str = "after_affine"  # [open] after_affine | before_affine


# ---------------------------------------------------------------------------------------------- data
@dataclass
class DataConf:
    """A dataset loaded once into memory. ``name`` is the key in ``bnstudy.data.DATASETS``."""

    name: str = "fashion_mnist"  # fashion_mnist | mnist | cifar10 | gaussian
    root: Optional[str] = None  # None: the dataset's default location (see README)
    download: bool = False  # torchvision download where there is internet
    train_size: Optional[int] = None  # keep the first N training samples (None: all)
    test_size: Optional[int] = None
    normalize: bool = True  # per-channel standardisation with training-set statistics
    # gaussian (the DLN's regression): x ~ N(0, I), y = A x, A_ij ~ N(0, 1)
    dim: int = 10
    num_train: int = 1000
    num_test: int = 1000
    data_seed: int = 0  # [open] seed of A and x, separate from the run seed


# --------------------------------------------------------------------------------------------- optim
@dataclass
class OptimConf:
    name: str = "sgd"  # key in bnstudy.train.OPTIMIZERS
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0


# ------------------------------------------------------------------------------------------- measure
@dataclass
class ActivationsConf:
    every: int = 0  # 0 = off; N = every N steps (1 = every step)
    layers: list[int] = field(default_factory=lambda: [1, 2])  # 1-based block indices
    units: int = 1  # how many units (channels) per layer, picked once at random (seeded)
    samples: int = 128  # values kept per unit and step for histograms
    quantiles: list[float] = field(default_factory=lambda: [0.05, 0.25, 0.5, 0.75, 0.95])


@dataclass
class ICSConf:
    every: int = 0
    layers: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class LandscapeConf:
    """Loss band, gradient predictiveness and effective beta share one eta grid and one pass per eta."""

    every: int = 0
    eta_min: float = 0.5  # multiples of the learning rate ([1/2, 4] x lr for CNNs)
    eta_max: float = 4.0
    points: int = 8
    spacing: str = "log"  # log | linear
    beta_wrt: str = "weights"  # weights | activations (the browser reproduction's variant)
    beta_layer: int = 1  # block whose activations are used when beta_wrt=activations


@dataclass
class LossChangeConf:
    every: int = 0


@dataclass
class MeasureConf:
    activations: ActivationsConf = field(default_factory=ActivationsConf)
    ics: ICSConf = field(default_factory=ICSConf)
    landscape: LandscapeConf = field(default_factory=LandscapeConf)
    loss_change: LossChangeConf = field(default_factory=LossChangeConf)
    fix_noise: bool = True  # replay the step's noise (noisy BN) in every probe of a measurement


# --------------------------------------------------------------------------------------------- train
@dataclass
class TrainConf:
    steps: int = 1000
    batch_size: int = 128
    loss: str = "auto"  # auto | cross_entropy | mse_sum | mse_mean   (auto: mse_sum for regression)
    log_every: int = 10  # training loss/accuracy on the step's batch
    eval_every: int = 100  # eval on a fixed train subset and on the test set (0 = off)
    measure_every: int = 100  # the schedule experiments give their measurements (set by the scale)
    eval_size: int = 2000  # size of the fixed train subset and of the test subset used
    eval_batch_size: int = 1000
    checkpoint_every: int = 500  # 0 = off
    device: str = "auto"  # auto | cpu | cuda
    deterministic: bool = True
    channels_last: bool = False
    tf32: bool = False
    divergence_loss: float = 1e6  # a loss above this (or NaN/inf) marks the run diverged
    chance_patience: int = 0  # evals in a row at chance accuracy before "diverged" (0 = never)
    threads: int = 0  # torch intra-op threads (0 = PyTorch's default; 1 is fastest for the tiny DLN)
    flush_denormal: bool = True  # CPU: flush denormal floats to zero (unnormalised deep nets slow ~10x without)


@dataclass
class Config:
    model: Any = MISSING
    norm: NormConf = MISSING
    data: DataConf = MISSING
    optim: OptimConf = MISSING
    measure: MeasureConf = MISSING
    train: TrainConf = field(default_factory=TrainConf)
    seed: int = 0
    name: str = "run"  # experiment name, used in output paths
    scale: str = "quick"  # quick | paper
    resume: bool = True  # continue from a checkpoint in the run dir when there is one
    resume_mismatch: str = "refuse"  # refuse | allow: resume a run started with other code or libraries
    progress: bool = True  # tqdm bar


MODEL_SCHEMAS = {"small_cnn": SmallCNNConf, "vgg": VGGConf, "dln": DLNConf}


def register_configs() -> None:
    """Register the schemas; YAML options under conf/<group>/ name them in their defaults list."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for key, schema in MODEL_SCHEMAS.items():
        cs.store(group="model", name=f"{key}_schema", node=schema)
    cs.store(group="norm", name="norm_schema", node=NormConf)
    cs.store(group="data", name="data_schema", node=DataConf)
    cs.store(group="optim", name="optim_schema", node=OptimConf)
    cs.store(group="measure", name="measure_schema", node=MeasureConf)


register_configs()
