"""Structured configs (dataclasses) for every Hydra config group, registered in the ConfigStore.

Each group's YAML files under ``conf/`` list their schema first in ``defaults:``; a typo in a key or a
wrong type then fails at start with Hydra's own error naming it. Options with a few fixed names are Enums
(Hydra lists the valid names itself); every numeric field carries its valid range in its metadata
(``ranged``), checked in one place (``check_ranges``) before anything is written. Each group maps to one registry in
code: ``model`` -> ``bnstudy.models.MODELS``, ``norm`` -> ``bnstudy.norms.NORMS`` (the model and norm schemas
live beside those registries and are re-exported here), ``data`` ->
``bnstudy.data.DATASETS``, ``optim`` -> ``bnstudy.build.OPTIMIZERS``, ``measure`` -> one node per entry of
``bnstudy.measures.MEASURES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from bnstudy.measures import MeasureConf
from bnstudy.models import MODELS, DLNConf, ModelConf, ResNetConf, SmallCNNConf, VGGConf, ViTConf  # noqa: F401
from bnstudy.norms import NoiseWhere, NormConf, Position  # noqa: F401  (re-exported)
from bnstudy.measures.activations import ActivationsConf  # noqa: F401  (the measure schemas, re-exported)
from bnstudy.measures.ics import ICSConf  # noqa: F401
from bnstudy.measures.landscape import LandscapeConf  # noqa: F401
from bnstudy.measures.loss_change import LossChangeConf  # noqa: F401
from bnstudy.schema import BetaWrt, Choice, ConfigError, Range, Spacing, check_ranges, ranged  # noqa: F401


Device = Choice("Device", {"auto": "auto", "cpu": "cpu", "cuda": "cuda"})
Scale = Choice("Scale", {"quick": "quick", "paper": "paper", "tiny": "tiny", "none": "none"})  # conf/scale options
ResumeMismatch = Choice("ResumeMismatch", {"refuse": "refuse", "allow": "allow"})
SEED_LIMIT = 2**32  # seeds (times 1,000,003 in the batch sampler) stay inside torch's 64-bit seeds


# model and norm: their schemas live beside their registries (bnstudy.models, bnstudy.norms), imported above.


# ---------------------------------------------------------------------------------------------- data
@dataclass
class DataConf:
    """A dataset loaded once into memory. ``name`` is the key in ``bnstudy.data.DATASETS``."""

    name: str = "fashion_mnist"  # fashion_mnist | mnist | cifar10 | gaussian
    root: Optional[str] = None  # None: the dataset's default location (see README)
    download: bool = False  # torchvision download where there is internet
    train_size: Optional[int] = ranged(None, ge=1)  # keep the first N training samples (None: all)
    test_size: Optional[int] = ranged(None, ge=1)
    normalize: bool = True  # per-channel standardisation with training-set statistics
    # gaussian (the DLN's regression): x ~ N(0, I), y = A x, A_ij ~ N(0, 1)
    dim: int = ranged(10, ge=1)
    num_train: int = ranged(1000, ge=1)
    num_test: int = ranged(1000, ge=1)
    data_seed: int = ranged(0, ge=0, lt=SEED_LIMIT)  # [open] seed of A and x, separate from the run seed


# --------------------------------------------------------------------------------------------- optim
@dataclass
class OptimConf:
    name: str = "sgd"  # key in bnstudy.build.OPTIMIZERS: sgd | adam
    lr: float = ranged(0.1, gt=0)  # the lr after any warm-up (measurements read this one: 2/lr, the landscape's eta)
    momentum: float = ranged(0.0, ge=0, lt=1)  # SGD's
    weight_decay: float = ranged(0.0, ge=0)
    betas: list[float] = ranged(factory=lambda: [0.9, 0.999], ge=0, lt=1)  # Adam's (beta1, beta2)
    warmup: int = ranged(0, ge=0)  # steps of linear lr warm-up: lr x (step + 1) / warmup, then lr (0 = none)


# ------------------------------------------------------------------------------------------- measure
# MeasureConf: one node per registered measurement, built from bnstudy.measures.MEASURES (plus fix_noise);
# each node's schema lives next to its measurement (ActivationsConf, ... are imported above for old callers).


# --------------------------------------------------------------------------------------------- train
@dataclass
class TrainConf:
    steps: int = ranged(1000, gt=0)
    batch_size: int = ranged(128, gt=0)
    loss: str = "auto"  # auto | cross_entropy | mse_sum | mse_half_sum | mse_mean   (auto: mse_sum for regression)
    log_every: int = ranged(10, gt=0)  # training loss/accuracy on the step's batch
    eval_every: int = ranged(100, ge=0)  # eval on a fixed train subset and on the test set (0 = off)
    measure_every: int = ranged(100, gt=0)  # the schedule experiments give their measurements (set by the scale)
    eval_size: int = ranged(2000, gt=0)  # size of the fixed train subset and of the test subset used
    eval_batch_size: int = ranged(1000, gt=0)
    eval_batch_stats: bool = False  # also test in train mode: norms use each test batch's statistics (batch_size)
    checkpoint_every: int = ranged(500, ge=0)  # 0 = off
    device: Device = Device.auto
    deterministic: bool = True
    channels_last: bool = False
    tf32: bool = False
    divergence_loss: float = ranged(1e6, gt=0)  # a loss above this (or NaN/inf) marks the run diverged
    chance_patience: int = ranged(0, ge=0)  # evals in a row at chance accuracy before "diverged" (0 = never)
    threads: Any = 0  # torch intra-op threads: N, 0 = PyTorch's default, auto = the free cores (bnstudy/threads.py)
    flush_denormal: bool = True  # CPU: flush denormal floats to zero (unnormalised deep nets slow ~10x without)
    save_final: bool = True  # final.pt: the final weights (state_dict only), for post-hoc measures


@dataclass
class Config:
    model: Any = MISSING
    norm: NormConf = MISSING
    data: DataConf = MISSING
    optim: OptimConf = MISSING
    measure: MeasureConf = MISSING
    train: TrainConf = field(default_factory=TrainConf)
    seed: int = ranged(0, ge=0, lt=SEED_LIMIT)
    name: str = "run"  # experiment name, used in output paths
    scale: Scale = Scale.quick
    resume: bool = True  # continue from a checkpoint in the run dir when there is one
    resume_mismatch: ResumeMismatch = ResumeMismatch.refuse  # allow: resume a run started with other code or libraries
    progress: str = "auto"  # auto | true | false: progress lines (auto: on a terminal; bnstudy/progress.py)


MODEL_SCHEMAS = {name: entry.schema for name, entry in MODELS.items()}
"""Derived from ``MODELS`` (each model's registration carries its schema), for ``bnstudy.posthoc``, which reads
it by this name; new code reads ``MODELS[name].schema``."""


def register_configs() -> None:
    """Register the schemas; YAML options under conf/<group>/ name them in their defaults list (a model's:
    ``<name>_schema``, from its registration in ``bnstudy.models.MODELS``)."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for key, entry in MODELS.items():
        cs.store(group="model", name=f"{key}_schema", node=entry.schema)
    cs.store(group="norm", name="norm_schema", node=NormConf)
    cs.store(group="data", name="data_schema", node=DataConf)
    cs.store(group="optim", name="optim_schema", node=OptimConf)
    cs.store(group="measure", name="measure_schema", node=MeasureConf)


def steps_for_samples(samples: int, batch_size: int) -> int:
    """``${steps_for_samples:S,${train.batch_size}}``: the steps that show S training samples (at least 1),
    so that a batch-size sweep trains every job on the same number of samples."""
    return max(1, int(samples) // int(batch_size))


def lr_for_batch(lr: float, ref_batch: int, batch_size: int) -> float:
    """``${lr_for_batch:LR,B0,${train.batch_size}}``: the linear scaling rule, LR x batch_size / B0."""
    return float(lr) * int(batch_size) / int(ref_batch)


def register_resolvers() -> None:
    """The two resolvers a batch-size sweep uses (idempotent)."""
    for name, fn in (("steps_for_samples", steps_for_samples), ("lr_for_batch", lr_for_batch)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_configs()
register_resolvers()
