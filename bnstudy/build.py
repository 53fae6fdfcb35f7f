"""Building a run from its config: the checks, the process settings, the parts the loop trains.

One place for what the training loop (``bnstudy.train``), the preflight (``experiments.preflight``), post-hoc
measures (``bnstudy.posthoc``) and the bench (``experiments.bench``) build the same way.

A config is checked once, where it comes in: ``checked`` turns Hydra's composed config into a ``Config``
(``check_keys`` then ``validate``) in the preflight, for every job before anything is written; a ``Config``
handed in from Python is validated by ``bnstudy.train.run``. What needs the data and the model (the batch
size against the training set, a measurement's layers against the model's blocks) is checked by ``build``
once they exist (``check_fits``).

``build`` sets the process-wide switches a run depends on (threads, denormals, TF32, determinism, the seed),
each set both ways, so that a process training several runs gives each what it would have alone; then makes
the data, model, loss, optimiser, batch sampler and eval subsets (``Parts``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from bnstudy.config import Config, ConfigError, OptimConf, check_ranges
from bnstudy.data import BatchSampler, TensorData, load_dataset
from bnstudy.measures.registry import Context
from bnstudy.measures.registry import checks as measure_checks
from bnstudy.measures.schedule import Probes, ProbeSet, SharedEntries
from bnstudy.models import BlockNet, build_model
from bnstudy.norms import uses_batch_statistics
from bnstudy.progress import SETTINGS as PROGRESS_SETTINGS
from bnstudy.registry import Registry
from bnstudy.threads import resolve_threads

log = logging.getLogger("bnstudy")

# optim.name and train.loss: registries like the others (bnstudy.registry), filled here
OPTIMIZERS: Registry[Callable[[list, OptimConf], torch.optim.Optimizer]] = Registry("optimizer")
OPTIMIZERS.add("sgd", lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum,
                                                        weight_decay=c.weight_decay))
OPTIMIZERS.add("adam", lambda params, c: torch.optim.Adam(params, lr=c.lr, betas=tuple(c.betas),
                                                          weight_decay=c.weight_decay))


def lr_at(optim: OptimConf, step: int) -> float:
    """The lr of training step ``step`` (0-based): ``optim.lr`` x (step + 1) / warmup during the linear warm-up's
    first ``optim.warmup`` steps, then ``optim.lr``. A function of the step alone, so a resumed run goes on alike."""
    return optim.lr * min(1.0, (step + 1) / optim.warmup) if optim.warmup else optim.lr

LOSSES: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("loss")
LOSSES.add("cross_entropy", F.cross_entropy)
LOSSES.add("mse_sum", lambda out, y: (out - y).pow(2).sum())  # ||W x - A x||^2 summed over the batch
# half the sum, as TensorFlow's l2_loss: gradients exactly half of mse_sum's, so an SGD step at lr is
# mse_sum's step at lr/2 (the DLN's loss reduction is not stated by the paper: an [open] choice)
LOSSES.add("mse_half_sum", lambda out, y: 0.5 * (out - y).pow(2).sum())
LOSSES.add("mse_mean", lambda out, y: (out - y).pow(2).sum(1).mean())

# a run's name is one folder of its path (results/<name>/<scale>/...): never a path that leads elsewhere
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# train.threads=0: PyTorch's own intra-op count in this process, read before any run sets one; each run sets
# its count, so a process that trains several runs (a sweep's basic launcher, make all's workers, a notebook)
# gives each the count it would have alone
PYTORCH_THREADS = torch.get_num_threads()

TRAJECTORY_FREE = ("name", "measure", "progress")  # settings that do not change how a run trains


# ------------------------------------------------------------------------------------------ checks
def check_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not know and values left unset, listing what is valid.

    Hydra's append syntax (``+model.depht=3``) adds a key to a typed node, and ``OmegaConf.to_object``
    then drops it without a word; comparing each typed node's keys with its dataclass's fields catches it.
    """

    def walk(node: DictConfig, prefix: str) -> None:
        schema = OmegaConf.get_type(node)
        valid = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else None
        for key in node.keys():
            key = str(key)
            if valid is not None and key not in valid:
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"did you mean {prefix}{close[0]}? " if close else ""
                where = f" of {prefix[:-1]}" if prefix else ""
                raise ConfigError(f"unknown key {prefix}{key}: {hint}valid keys{where}: {', '.join(valid)}")
            if OmegaConf.is_missing(node, key):
                raise ConfigError(f"{prefix}{key} has no value: set it, e.g. {prefix}{key}=...")
            child = node._get_node(key)
            if isinstance(child, DictConfig) and not child._is_none():
                walk(child, f"{prefix}{key}.")

    walk(cfg, "")


def checked(cfg: DictConfig) -> Config:
    """A composed config (Hydra's, less its ``hydra`` node) as a validated ``Config``: the one way in."""
    check_keys(cfg)
    config = OmegaConf.to_object(cfg)
    validate(config)
    return config


def validate(cfg: Config, n_train: int | None = None, n_layers: int | None = None) -> None:
    """Impossible values fail before anything runs, with one line saying what to change: every numeric
    field's range (``check_ranges``), then what ties fields together; given the training set's size and
    the model's block count, what depends on them too (``check_fits``)."""
    check_ranges(cfg)
    t, m = cfg.train, cfg.measure
    _first_failure([
        (NAME.fullmatch(str(cfg.name)) is not None,
         f"name={cfg.name!r}: a run's name is a folder name (letters, digits, '_', '.', '-'; not starting with "
         f"'.' or '-'), not a path: results/<name>/... must stay inside results/"),
        (cfg.optim.name in OPTIMIZERS, f"optim.name={cfg.optim.name!r} is unknown; valid: {sorted(OPTIMIZERS)}"),
        (len(cfg.optim.betas) == 2, f"optim.betas={list(cfg.optim.betas)}: give two values, [beta1, beta2]"),
        (cfg.optim.name != "adam" or cfg.optim.momentum == 0,
         f"optim.momentum={cfg.optim.momentum} is SGD's: Adam's momentum is optim.betas (now {list(cfg.optim.betas)})"),
        (m.landscape.eta_min <= m.landscape.eta_max,
         f"measure.landscape.eta_min={m.landscape.eta_min} exceeds eta_max={m.landscape.eta_max}"),
        (not t.eval_batch_stats or t.eval_size >= t.batch_size,
         f"train.eval_batch_stats=true needs train.eval_size={t.eval_size} >= train.batch_size={t.batch_size}"),
        (str(t.threads).strip().lower() == "auto" or str(t.threads).strip().isdigit(),
         f"train.threads={t.threads!r}: use a count >= 0 (0 = PyTorch's default) or auto"),
        (str(cfg.progress).strip().lower() in PROGRESS_SETTINGS,
         f"progress={cfg.progress!r} is unknown; valid: {list(PROGRESS_SETTINGS)}"),
    ])
    check_fits(cfg, n_train, n_layers)


def check_fits(cfg: Config, n_train: int | None, n_layers: int | None) -> None:
    """What a validated config must also satisfy once the data and model exist: the batch size against the
    ``n_train`` training samples, each measurement's checks against the model's ``n_layers`` blocks."""
    fits = [] if n_train is None else [(cfg.train.batch_size <= n_train, f"train.batch_size={cfg.train.batch_size} "
                                        f"exceeds the {n_train} training samples: lower it")]
    _first_failure(fits + measure_checks(cfg.measure, n_layers))  # each registered measurement's own


def _first_failure(checks: Iterable[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def trajectory_key(cfg: Config) -> str:
    """What decides a run's training trajectory: its config less ``TRAJECTORY_FREE`` (as canonical JSON).
    Runs with equal keys train identically, whatever they measure."""
    config = OmegaConf.to_container(OmegaConf.structured(cfg))
    return json.dumps({k: v for k, v in config.items() if k not in TRAJECTORY_FREE}, sort_keys=True, default=str)


def check_one_trajectory(cfgs: Sequence[Config], where: Sequence[object]) -> None:
    """Refuse runs that cannot share the first's trajectory (``where``: their folders, for the message)."""
    key = trajectory_key(cfgs[0])
    for cfg, folder in zip(cfgs[1:], where[1:]):
        if trajectory_key(cfg) != key:
            raise ConfigError(f"{folder} cannot share the trajectory of {where[0]}: their configs differ in "
                              f"more than {', '.join(TRAJECTORY_FREE)}")


# ------------------------------------------------------------------------------------------ process settings
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"train.device={name!r} is unknown; valid: ['auto', 'cpu', 'cuda']")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is available: use train.device=auto or cpu")
    return torch.device(str(name))


def loss_name(cfg: Config, data: TensorData) -> str:
    name = cfg.train.loss
    if name == "auto":
        return "cross_entropy" if data.num_classes else "mse_sum"
    if name not in LOSSES:
        raise ConfigError(f"train.loss={name!r} is unknown; valid: {sorted(LOSSES) + ['auto']}")
    return name


def set_tf32(on: bool) -> None:
    """TF32 tensor cores for float32 matmuls and cuDNN convolutions, both ways (process-wide).

    PyTorch's own default allows TF32 in cuDNN convolutions but not in matmuls; ``train.tf32=false``
    switches both off so that a float32 run is float32 throughout. The legacy flags are used on purpose:
    mixing them with the newer ``fp32_precision`` API makes later reads of either raise.
    """
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed torch; deterministic algorithms on or off as the run says, whatever an earlier run of this
    process set (its summary records the switch in force)."""
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif torch.are_deterministic_algorithms_enabled():  # switching off costs a second: only when on
        torch.use_deterministic_algorithms(False)


def process_settings(cfg: Config) -> None:
    """The process-wide switches of a run: its thread count (never the count an earlier run of this process
    set), flush-denormal and TF32."""
    threads = resolve_threads(cfg.train.threads)  # 0: PyTorch's default
    torch.set_num_threads(threads or PYTORCH_THREADS)
    if str(cfg.train.threads) == "auto":
        log.info("train.threads=auto: %d thread(s)", threads)
    torch.set_flush_denormal(cfg.train.flush_denormal)
    set_tf32(cfg.train.tf32)


def keep_threads(previous: dict | None, cfg: Config, where: object) -> None:
    """A resumed run keeps the intra-op thread count it started with: another count can change the order
    of float sums and so the numbers; a differing ``train.threads`` is ignored with a warning."""
    threads = ((previous or {}).get("environment") or {}).get("threads", {}).get("intra_op")
    if threads and threads != torch.get_num_threads():
        log.warning("%s: resuming with the %d thread(s) this run started with, not %d (train.threads=%s): "
                    "another thread count can change its numbers", where, threads, torch.get_num_threads(),
                    cfg.train.threads)
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ parts
@dataclass
class Parts:
    """What the loop trains, built from one config: on ``device``, the data, the model and its loss, the
    optimiser, the batch sampler and the eval subsets (by split name: ``train_eval`` and ``test``)."""

    cfg: Config
    device: torch.device
    data: TensorData
    model: BlockNet
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    sampler: BatchSampler
    eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]]
    batch_stats: bool  # some norm of the model normalises with batch statistics

    @property
    def classify(self) -> bool:
        return self.data.num_classes is not None


def build(cfg: Config, data: TensorData | None = None, others: Sequence[Config] = ()) -> Parts:
    """A run's parts, in the order that fixes its numbers: process settings, seed, data, model, optimiser.
    Once the data and the model exist, ``cfg`` and ``others`` (runs on its trajectory) must fit them."""
    process_settings(cfg)
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.seed, cfg.train.deterministic)
    data = (data or load_dataset(cfg.data)).to(device)
    loss_fn = LOSSES[loss_name(cfg, data)]
    model = build_model(cfg.model, cfg.norm, data.input_shape, data.num_classes).to(device)
    if cfg.train.channels_last and data.x_train.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
    for c in (cfg, *others):
        check_fits(c, len(data.x_train), len(model.blocks))
    optimizer = OPTIMIZERS[cfg.optim.name](list(model.parameters()), cfg.optim)
    sampler = BatchSampler(len(data.x_train), cfg.train.batch_size, cfg.seed, device)
    g = torch.Generator().manual_seed(cfg.seed + 12345)
    n_eval = min(cfg.train.eval_size, len(data.x_train))
    idx = torch.randperm(len(data.x_train), generator=g)[:n_eval].to(device)
    eval_sets = {"train_eval": (data.x_train[idx], data.y_train[idx]),
                 "test": (data.x_test[: cfg.train.eval_size], data.y_test[: cfg.train.eval_size])}
    batch_stats = any(uses_batch_statistics(m) for m in model.modules())
    return Parts(cfg, device, data, model, loss_fn, optimizer, sampler, eval_sets, batch_stats)


def build_probes(cfgs: Sequence[Config], parts: Parts) -> ProbeSet:
    """The measurements of runs on the trajectory ``parts`` trains, one ``Probes`` each; an entry with one
    config in several runs is built once (``SharedEntries``)."""
    c, shared = parts.cfg, SharedEntries()
    ctx = Context.of(parts.model, parts.loss_fn, c.optim.lr, c.seed, parts.data, c.train.batch_size)
    return ProbeSet([Probes(cfg.measure, parts.model, parts.loss_fn, c.optim.lr, c.seed, parts.data,
                            c.train.batch_size, shared=shared, ctx=ctx) for cfg in cfgs])
