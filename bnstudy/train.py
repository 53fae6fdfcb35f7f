"""The training loop: steps, the measurement schedule, checkpoint/resume, divergence, device.

``run(cfg, out_dir)`` is everything a Hydra job does; it can be called from a notebook too. Per step it
does what a bare PyTorch loop does (index the in-memory data, forward, backward, step) and keeps a
reference to the step's loss and logits (no kernel, no read-back); they are reduced and read back to
the host once per ``log_every`` steps, so a GPU's queue never waits on the loop between log rows.

Runs that differ only in what they measure (and their names) follow one trajectory: measurements never
change training (``bnstudy.measures.registry``). ``Trainer(cfg, out_dir, also=[(cfg2, dir2), ...])``
trains it once and writes each run's folder as that run alone would (the same metrics.csv, byte for byte;
each folder its own checkpoint, resumable alone); ``experiments.together`` uses it for ``make all``.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import errno
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from bnstudy.config import Config, ConfigError, OptimConf, check_ranges
from bnstudy.data import BatchSampler, TensorData, load_dataset
from bnstudy.measures.functional import RNGState, forward_at
from bnstudy.measures.registry import Row
from bnstudy.measures.registry import checks as measure_checks
from bnstudy.measures.registry import Context
from bnstudy.measures.schedule import Probes, SharedEntries
from bnstudy.models import BlockNet, build_model
from bnstudy.norms import uses_batch_statistics
from bnstudy.progress import SETTINGS as PROGRESS_SETTINGS
from bnstudy.progress import Sweep, progress_enabled, tqdm
from bnstudy.provenance import environment, resume_differences
from bnstudy.records import (CHECKPOINT, FINAL, FINISHED, METRICS, RESUME_FREE, SUMMARY, MetricsWriter,  # noqa: F401
                             RunError, RunFolder, config_diff, write_atomic)
from bnstudy.threads import load_warning, resolve_threads

log = logging.getLogger("bnstudy")

OPTIMIZERS: dict[str, Callable[[list, OptimConf], torch.optim.Optimizer]] = {
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
}

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse_sum": lambda out, y: (out - y).pow(2).sum(),  # ||W x - A x||^2 summed over the batch
    # half the sum, as TensorFlow's l2_loss: gradients exactly half of mse_sum's, so an SGD step at lr is
    # mse_sum's step at lr/2 (the DLN's loss reduction is not stated by the paper: an [open] choice)
    "mse_half_sum": lambda out, y: 0.5 * (out - y).pow(2).sum(),
    "mse_mean": lambda out, y: (out - y).pow(2).sum(1).mean(),
}

# The loop's own metrics (the measurements' are defined in their modules: bnstudy.measures.metric_names())
TRAIN_LOSS, TRAIN_ACC = "train_loss", "train_acc"  # mean over the log window's training batches
TRAIN_EVAL_LOSS, TRAIN_EVAL_ACC = "train_eval_loss", "train_eval_acc"  # eval mode, fixed training subset
TEST_LOSS, TEST_ACC = "test_loss", "test_acc"  # eval mode, test subset
EVAL_METRICS = {"train_eval": (TRAIN_EVAL_LOSS, TRAIN_EVAL_ACC), "test": (TEST_LOSS, TEST_ACC)}  # by eval set
LOOP_METRICS = (TRAIN_LOSS, TRAIN_ACC, TRAIN_EVAL_LOSS, TRAIN_EVAL_ACC, TEST_LOSS, TEST_ACC)

# train.threads=0: PyTorch's own intra-op count in this process, read before any run sets one; each run sets
# its count, so a process that trains several runs (a sweep's basic launcher, make all's workers, a notebook)
# gives each the count it would have alone
PYTORCH_THREADS = torch.get_num_threads()

# a run's name is one folder of its path (results/<name>/<scale>/...): never a path that leads elsewhere
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# errors of a write that the user can fix (a full disk or quota, a read-only or forbidden folder)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class CheckpointError(RunError):
    """A checkpoint that cannot be loaded safely."""


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


def validate(cfg: Config, n_train: int | None = None, n_layers: int | None = None) -> None:
    """Impossible values fail before anything runs, with one line saying what to change: every numeric
    field's range (``check_ranges``), then what ties fields together, the data and the model."""
    check_ranges(cfg)
    t, m = cfg.train, cfg.measure
    checks = [
        (NAME.fullmatch(str(cfg.name)) is not None,
         f"name={cfg.name!r}: a run's name is a folder name (letters, digits, '_', '.', '-'; not starting with "
         f"'.' or '-'), not a path: results/<name>/... must stay inside results/"),
        (cfg.optim.name in OPTIMIZERS, f"optim.name={cfg.optim.name!r} is unknown; valid: {sorted(OPTIMIZERS)}"),
        (m.landscape.eta_min <= m.landscape.eta_max,
         f"measure.landscape.eta_min={m.landscape.eta_min} exceeds eta_max={m.landscape.eta_max}"),
        (not t.eval_batch_stats or t.eval_size >= t.batch_size,
         f"train.eval_batch_stats=true needs train.eval_size={t.eval_size} >= train.batch_size={t.batch_size}"),
        (str(t.threads).strip().lower() == "auto" or str(t.threads).strip().isdigit(),
         f"train.threads={t.threads!r}: use a count >= 0 (0 = PyTorch's default) or auto"),
        (str(cfg.progress).strip().lower() in PROGRESS_SETTINGS,
         f"progress={cfg.progress!r} is unknown; valid: {list(PROGRESS_SETTINGS)}"),
    ]
    if n_train is not None:
        checks.append((t.batch_size <= n_train,
                       f"train.batch_size={t.batch_size} exceeds the {n_train} training samples: lower it"))
    checks += measure_checks(cfg.measure, n_layers)  # each registered measurement's own
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def _iso(t: float) -> str:
    """A time.time() as local ISO 8601 with milliseconds (summary.json: when the loop ran)."""
    return datetime.datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


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


@torch.no_grad()
def evaluate(model: BlockNet, x: torch.Tensor, y: torch.Tensor, batch: int, classify: bool):
    """Per-sample mean loss (cross-entropy, or squared error) and accuracy in eval mode, as device tensors.

    Eval mode: BN uses running statistics and noisy BN adds no noise; no RNG is drawn.
    """
    model.eval()
    total_loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.float64)
    for i in range(0, len(x), batch):
        out, target = model(x[i : i + batch]), y[i : i + batch]
        if classify:
            total_loss += F.cross_entropy(out, target, reduction="sum").double()
            correct += (out.argmax(1) == target).sum()
        else:
            total_loss += (out - target).pow(2).sum().double()
    model.train()
    return total_loss / len(x), correct / len(x)


@torch.no_grad()
def evaluate_batch_stats(model: BlockNet, x: torch.Tensor, y: torch.Tensor, batch: int):
    """Per-sample mean cross-entropy and accuracy with the norms in train mode: each batch of ``batch``
    test samples is normalised with its own statistics, as in training (the train/inference discrepancy).

    Everything else (dropout) stays in eval mode; running statistics are not updated (``forward_at``
    works on copies of the buffers) and torch's RNG is put back, so training is unaffected.
    """
    params = dict(model.named_parameters())
    rng = RNGState.capture()
    model.eval()
    for m in model.modules():
        if uses_batch_statistics(m):
            m.train()
    total_loss = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.float64)
    n = len(x) - len(x) % batch  # whole batches only, as the training sampler draws them
    for i in range(0, n, batch):
        out, target = forward_at(model, params, x[i : i + batch]), y[i : i + batch]
        total_loss += F.cross_entropy(out, target, reduction="sum").double()
        correct += (out.argmax(1) == target).sum()
    model.train()
    rng.restore()
    return total_loss / n, correct / n


class LogWindow:
    """The training batches' losses (and logits, for accuracy) since the last log row, on the device.

    ``add`` only appends references, so a step costs no kernel and no host sync for its own logging;
    ``reduce`` turns the window into the mean loss and accuracy with a handful of kernels and one
    read-back, on the log schedule. All batches have the same size (the sampler drops the remainder),
    so the accuracy over the window's samples is the mean of the per-step accuracies.
    """

    def __init__(self, classify: bool, state: dict | None = None):
        self.classify = classify
        self.losses: list[torch.Tensor] = []
        self.outs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        if state and len(state["loss"]):  # a checkpoint's window, resumed: the same values in the same order
            self.losses.append(state["loss"])
            if classify:
                self.outs.append(state["out"])
                self.targets.append(state["y"])

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        self.losses.append(loss.detach().reshape(1))
        if self.classify:
            self.outs.append(out.detach())
            self.targets.append(y)

    def reduce(self) -> tuple[float, float | None]:
        """Mean loss and (classifiers) accuracy over the window, read back in one transfer; then empty."""
        stats = [torch.cat(self.losses).double().mean()]
        if self.classify:
            stats.append((torch.cat(self.outs).argmax(1) == torch.cat(self.targets)).double().mean())
        self.losses, self.outs, self.targets = [], [], []
        values = torch.stack(stats).tolist()
        return values[0], (values[1] if self.classify else None)

    def state_dict(self) -> dict:
        cat = lambda xs: torch.cat(xs) if xs else torch.zeros(0)
        return {"loss": cat(self.losses), "out": cat(self.outs), "y": cat(self.targets)}


TRAJECTORY_FREE = ("name", "measure", "progress")  # settings that do not change how a run trains


def trajectory_key(cfg: Config) -> str:
    """What decides a run's training trajectory: its config less ``TRAJECTORY_FREE`` (as canonical JSON).
    Runs with equal keys train identically, whatever they measure."""
    config = OmegaConf.to_container(OmegaConf.structured(cfg))
    return json.dumps({k: v for k, v in config.items() if k not in TRAJECTORY_FREE}, sort_keys=True, default=str)


@dataclass
class Output:
    """One run folder a trajectory writes: its config (what it measures, its name), its probes, and while
    it trains its summary, CSV writer and pending rows."""

    cfg: Config
    out_dir: Path
    sweep: Sweep | None = None
    probes: Probes | None = None
    previous: dict | None = None
    summary: dict | None = None
    writer: MetricsWriter | None = None
    environment: dict | None = None
    rows: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.folder = RunFolder(self.out_dir)


class Trainer:
    """One trajectory: builds data, model, optimiser and probes from a Config, then steps, writing one run
    folder, or several (``also``: runs whose configs differ from ``cfg`` only in ``TRAJECTORY_FREE``)."""

    def __init__(self, cfg: Config, out_dir: Path, data: TensorData | None = None, sweep: Sweep | None = None,
                 also: Sequence[tuple[Config, Path, Sweep | None]] = ()):
        self.cfg, self.out_dir, self.sweep = cfg, Path(out_dir), sweep
        validate(cfg)
        key = trajectory_key(cfg)
        for other, other_dir, _ in also:
            validate(other)
            if trajectory_key(other) != key:
                raise ConfigError(f"{other_dir} cannot share the trajectory of {out_dir}: their configs differ in "
                                  f"more than {', '.join(TRAJECTORY_FREE)}")
        self.show_progress = progress_enabled(cfg.progress)
        threads = resolve_threads(cfg.train.threads)  # 0: PyTorch's default
        torch.set_num_threads(threads or PYTORCH_THREADS)  # never the count an earlier run of this process set
        if str(cfg.train.threads) == "auto":
            log.info("train.threads=auto: %d thread(s)", threads)
        torch.set_flush_denormal(cfg.train.flush_denormal)
        set_tf32(cfg.train.tf32)
        self.device = resolve_device(cfg.train.device)
        seed_everything(cfg.seed, cfg.train.deterministic)
        self.data = (data or load_dataset(cfg.data)).to(self.device)
        self.classify = self.data.num_classes is not None
        self.loss_fn = LOSSES[loss_name(cfg, self.data)]
        self.model = build_model(cfg.model, cfg.norm, self.data.input_shape, self.data.num_classes).to(self.device)
        if cfg.train.channels_last and self.data.x_train.dim() == 4:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.outputs = [Output(cfg, out_dir, sweep), *(Output(c, d, s) for c, d, s in also)]
        for o in self.outputs:
            validate(o.cfg, len(self.data.x_train), len(self.model.blocks))
        self.batch_stats = any(uses_batch_statistics(m) for m in self.model.modules())
        self.optimizer = OPTIMIZERS[cfg.optim.name](list(self.model.parameters()), cfg.optim)
        self.sampler = BatchSampler(len(self.data.x_train), cfg.train.batch_size, cfg.seed, self.device)
        shared = SharedEntries()
        ctx = Context.of(self.model, self.loss_fn, cfg.optim.lr, cfg.seed, self.data, cfg.train.batch_size)
        for o in self.outputs:
            o.probes = Probes(o.cfg.measure, self.model, self.loss_fn, cfg.optim.lr, cfg.seed, self.data,
                              cfg.train.batch_size, shared=shared, ctx=ctx)
        self.probes = self.outputs[0].probes
        self.active = list(self.outputs)  # the folders this run() trains (not those already finished)
        self._checkpoints: list[dict] = []  # their checkpoints, once read to decide how to resume
        g = torch.Generator().manual_seed(cfg.seed + 12345)
        n_eval = min(cfg.train.eval_size, len(self.data.x_train))
        idx = torch.randperm(len(self.data.x_train), generator=g)[:n_eval].to(self.device)
        self.eval_sets = {
            "train_eval": (self.data.x_train[idx], self.data.y_train[idx]),
            "test": (self.data.x_test[: cfg.train.eval_size], self.data.y_test[: cfg.train.eval_size]),
        }

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, step: int, window: dict) -> None:
        """Each folder gets a whole checkpoint of its own (its measurements' state, its CSV's offset)."""
        common = {
            "step": step, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "window": window, "chance_evals": self.chance_evals,
        }
        for o in self.active:
            state = {**common, "csv_offset": o.writer.offset, "probes": o.probes.state_dict()}
            o.writer.sync()  # the rows the checkpoint counts are on disk before it names their offset
            o.folder.save_checkpoint(lambda f, state=state: torch.save(state, f))

    def save_final(self, out_dirs: Sequence[Path]) -> None:
        """``final.pt`` in each folder: the model's state_dict alone (tensors only: it loads with
        ``weights_only=True``), copied to the CPU once."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        for out_dir in out_dirs:
            write_atomic(Path(out_dir) / FINAL, lambda f: torch.save(state, f))

    def read_checkpoint(self, path: Path) -> dict:
        """A checkpoint's state, loaded as data only: a tampered or truncated file is refused, never run."""
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
            state["step"], state["csv_offset"], state["probes"]
        except Exception as e:
            raise self._checkpoint_error(path, e) from e
        return state

    def load_checkpoint(self) -> dict:
        """The active folders' checkpoints (all at one step): the first sets the model, optimiser and RNG,
        each its own measurements' state. Returns the first's state with ``csv_offsets`` per folder."""
        states = self._checkpoints or [self.read_checkpoint(o.folder.checkpoint) for o in self.active]
        state, path = states[0], self.active[0].folder.checkpoint
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng_cpu"].cpu())
            if state["rng_cuda"] is not None:
                torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
            for o, st in zip(self.active, states):
                path = o.folder.checkpoint
                o.probes.load_state_dict(st["probes"])
            self.chance_evals = state["chance_evals"]
        except Exception as e:
            raise self._checkpoint_error(path, e) from e
        state["csv_offsets"] = [st["csv_offset"] for st in states]
        return state

    @staticmethod
    def _checkpoint_error(path: Path, e: Exception) -> "CheckpointError":
        lines = [s.strip() for s in str(e).splitlines() if s.strip()] or [""]
        reason = next((s for s in lines if "GLOBAL" in s), lines[0])  # torch names the refused global
        return CheckpointError(f"checkpoint {path} cannot be loaded safely ({type(e).__name__}: {reason}); "
                               f"delete it to restart this run from step 0, or delete {path.parent} "
                               f"to start over")

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        """Train, resuming from the run dir's checkpoint; a finished run with this config is returned as is.

        Holds the dir's lock throughout; ``RunFolder.check`` refuses what the dir's rules forbid. The
        summary's status ends as "completed" or "diverged"; an exception leaves "failed" (Ctrl-C:
        "interrupted") and the last checkpoint, to resume from. A failed write (full disk, read-only
        folder) becomes a one-line ``RunError``. With ``also``, every folder is handled so (those already
        finished are left alone) and the first's summary is returned (``self.summaries``: all of them);
        folders whose checkpoints are not at one step are resumed one at a time.
        """
        self.summary: dict | None = None
        locks, separately = [], False
        try:
            for o in self.outputs:
                o.out_dir.mkdir(parents=True, exist_ok=True)
                locks.append(o.folder.lock().__enter__())
        except BaseException as e:
            for lock in locks:
                lock.__exit__()
            raise self._write_error(e) if isinstance(e, OSError) else e
        try:
            for o in self.outputs:
                config = OmegaConf.to_container(OmegaConf.structured(o.cfg))
                o.previous = o.folder.check(config, o.cfg.resume, holding_lock=True)
                if o.previous is not None and o.previous.get("status") in FINISHED:
                    log.info("%s: already %s at step %s; nothing to do", o.out_dir, o.previous["status"],
                             o.previous.get("step"))
            self.active = [o for o in self.outputs if not (o.previous and o.previous.get("status") in FINISHED)]
            if not self.active:
                return self._result()
            separately = not self._resumable_together()
            if not separately:
                self._keep_threads(self.active[0].previous)
                env = environment(self.device, self.data.files, self.cfg.train.flush_denormal)
                for o in self.active:
                    o.environment = self._check_environment(o, env)
                self._train()
                return self._result()
        except BaseException as e:
            for o in self.active:
                if o.summary is not None and o.summary["status"] == "running":
                    interrupted = isinstance(e, (KeyboardInterrupt, SystemExit))
                    o.summary.update(status="interrupted" if interrupted else "failed",
                                     error=f"{type(e).__name__}: {e}")
                    try:
                        o.folder.write_summary(o.summary)
                    except OSError as again:  # the disk is still full: the lock's release marks it interrupted
                        log.warning("%s: could not record the failure in %s (%s)", o.out_dir, SUMMARY, again)
            if isinstance(e, OSError):
                raise self._write_error(e) from e
            raise
        finally:
            for lock in locks:
                lock.__exit__()
        for o in self.active:  # checkpoints at different steps (a kill between two of them): one at a time
            log.info("%s: resuming on its own (its checkpoint is not at its companions' step)", o.out_dir)
            o.summary = Trainer(o.cfg, o.out_dir, self.data, o.sweep).run()
        return self._result()

    def _result(self) -> dict:
        self.summaries = [o.summary or o.previous for o in self.outputs]
        self.summary = self.summaries[0]
        return self.summary

    def _resumable_together(self) -> bool:
        """Whether the active folders can go on as one trajectory: none has a checkpoint, or all have one
        at the same step."""
        if len(self.active) == 1:
            return True
        have = [o.cfg.resume and o.folder.checkpoint.exists() for o in self.active]
        if not any(have):
            return True
        if not all(have):
            return False
        self._checkpoints = [self.read_checkpoint(o.folder.checkpoint) for o in self.active]  # load_checkpoint's
        return len({state["step"] for state in self._checkpoints}) == 1

    def _write_error(self, e: OSError) -> BaseException:
        """A write the user can fix as one line saying how to go on; any other OSError as it is."""
        if e.errno not in WRITE_ERRNOS:
            return e
        return RunError(f"cannot write in {self.out_dir} ({e.strerror}: {e.filename or self.out_dir}): free some "
                        f"space or pick a writable folder, then resume: the same command with hydra.run.dir={self.out_dir}")

    def _keep_threads(self, previous: dict | None) -> None:
        """A resumed run keeps the intra-op thread count it started with: another count can change the
        order of float sums and so the numbers; a differing ``train.threads`` is ignored with a warning."""
        threads = ((previous or {}).get("environment") or {}).get("threads", {}).get("intra_op")
        if threads and threads != torch.get_num_threads():
            log.warning("%s: resuming with the %d thread(s) this run started with, not %d (train.threads=%s): "
                        "another thread count can change its numbers", self.active[0].out_dir, threads,
                        torch.get_num_threads(), self.cfg.train.threads)
            torch.set_num_threads(threads)

    def _check_environment(self, o: Output, env: dict) -> dict:
        """A resume runs the code and libraries the run started with, or says so (``resume_mismatch``);
        returns the folder's environment record."""
        previous = o.previous
        if previous is None or not o.folder.checkpoint.exists():
            return env
        diff = resume_differences(previous.get("environment"), env)
        if diff and o.cfg.resume_mismatch != "allow":
            raise RunError(f"{o.out_dir} was started with other code or libraries ({'; '.join(diff)}): "
                           f"resume it where it started, or pass resume_mismatch=allow to resume anyway "
                           f"(recorded in summary.json), or pick another hydra.run.dir")
        before = dict(previous.get("environment") or {})
        return {**env, "earlier": [*before.pop("earlier", []), before],
                "resume_mismatch": {"allowed": True, "differences": diff} if diff else None}

    def _train(self) -> None:
        cfg, t, outputs = self.cfg, self.cfg.train, self.active
        self.chance_evals = 0
        self._latest_train, self._latest_eval = {}, []
        start, window = 0, None
        resumed = cfg.resume and outputs[0].folder.checkpoint.exists()
        if resumed:
            state = self.load_checkpoint()
            start, window = state["step"], state["window"]
        window = LogWindow(self.classify, window)
        for i, o in enumerate(outputs):
            o.summary = {"status": "running", "step": start,
                         "config": OmegaConf.to_container(OmegaConf.structured(o.cfg)),
                         "out_dir": str(o.out_dir), "resumed_from": start if resumed else None,
                         "environment": o.environment}
            if len(outputs) > 1:  # one trajectory, several folders: each names the others
                o.summary["trained_with"] = [str(other.out_dir) for other in outputs if other is not o]
            o.folder.write_summary(o.summary)  # before metrics.csv: a CSV with no summary is never the suite's
            if resumed:
                try:
                    o.writer = o.folder.metrics_writer(truncate_to=state["csv_offsets"][i])
                except (ValueError, FileNotFoundError) as e:
                    raise CheckpointError(f"{e}: delete {o.folder.checkpoint} to restart this run from step 0") from e
                log.info("%s: resuming from step %d", o.out_dir, start)
            else:
                o.writer = o.folder.metrics_writer(truncate_to=0)
            o.rows = []
        self.summary = outputs[0].summary

        def to_all(rows: list[Row]) -> None:
            for o in outputs:
                o.rows += rows

        def flush() -> None:
            for o in outputs:
                o.writer.write(o.rows)
                o.rows = []

        t0, status = time.time(), "completed"
        x_all, y_all = self.data.x_train, self.data.y_train
        bar = tqdm(range(start, t.steps), initial=start, total=t.steps, disable=not self.show_progress,
                   label=self.label(), sweep=outputs[0].sweep, leave=False)
        step = start
        for step in bar:
            if t.eval_every and step % t.eval_every == 0:
                to_all(self._eval_rows(step))
            idx = self.sampler.indices(step)
            x, y = x_all[idx], y_all[idx]
            if t.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            dues = [o.probes.due(step) for o in outputs]
            rng = RNGState.capture() if any(d.rng for d in dues) else None
            for o, due in zip(outputs, dues):
                o.probes.before_forward(step, due)
            out = self.model(x)
            if len(outputs) > 1:  # one run's probe passes must not reach another's hooks
                for o in outputs:
                    o.probes.detach_hooks()
            loss = self.loss_fn(out, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for o, due in zip(outputs, dues):
                if due.after_backward:
                    o.rows += o.probes.after_backward(step, x, y, loss, rng if due.rng else None)
            before = self.probes.snapshot() if any(d.snapshot for d in dues) else None
            self.optimizer.step()
            for o, due in zip(outputs, dues):
                if due.after_step:
                    o.rows += o.probes.after_step(step, x, y, before if due.snapshot else None,
                                                  rng if due.rng else None)
            window.add(loss, out, y)
            if (step + 1) % t.log_every == 0 or step + 1 == t.steps:  # the loop's only read-back
                mean_loss, acc = window.reduce()
                to_all([Row(step + 1, TRAIN_LOSS, mean_loss)])
                self._latest_train = {"train_loss": mean_loss, **({"train_acc": acc} if acc is not None else {})}
                if acc is not None:
                    to_all([Row(step + 1, TRAIN_ACC, acc)])
                flush()
                if not mean_loss == mean_loss or abs(mean_loss) > t.divergence_loss:  # NaN, inf or huge
                    status = "diverged"
                    break
            if self.chance_evals and t.chance_patience and self.chance_evals >= t.chance_patience:
                status = "diverged"
                break
            if t.checkpoint_every and (step + 1) % t.checkpoint_every == 0 and step + 1 < t.steps:
                flush()
                self.save_checkpoint(step + 1, window.state_dict())
                # the summary names the step a resume starts from, and the values reached by then
                latest = self._latest()
                for o in outputs:
                    o.summary.update(step=step + 1, final=latest)
                    o.folder.write_summary(o.summary)
        bar.close()
        if status == "completed" and t.eval_every:
            to_all(self._eval_rows(t.steps))
        flush()
        for o in outputs:
            o.writer.close()
        if t.save_final:
            self.save_final([o.out_dir for o in outputs])
        final = self._final_metrics(outputs[0].out_dir)
        end = time.time()
        for o in outputs:
            o.summary.update(status=status, step=step + 1, wall_time_s=round(end - t0, 3), started_at=_iso(t0),
                             finished_at=_iso(end), final=final)
            o.folder.write_summary(o.summary)
            o.folder.checkpoint.unlink(missing_ok=True)

    def label(self) -> str:
        """The run in progress lines: experiment(s), norm, lr, seed (and its place in the sweep)."""
        c, sweep = self.cfg, self.active[0].sweep
        names = "+".join(dict.fromkeys(o.cfg.name for o in self.active))
        job = f" [job {sweep.num + 1}/{sweep.jobs or '?'}]" if sweep else ""
        return f"{names}{job} {c.norm.name} lr={c.optim.lr:g} seed={c.seed}"

    def _latest(self) -> dict:
        """The last logged training and eval values (a checkpoint's summary; read back on its schedule)."""
        evals = {row.metric: float(row.value) for row in self._latest_eval}
        return {**self._latest_train, **evals}

    def _eval_rows(self, step: int) -> list[Row]:
        rows = []
        for split, (x, y) in self.eval_sets.items():
            loss, acc = evaluate(self.model, x, y, self.cfg.train.eval_batch_size, self.classify)
            loss_metric, acc_metric = EVAL_METRICS[split]
            rows.append(Row(step, loss_metric, loss))
            if self.classify:
                rows.append(Row(step, acc_metric, acc))
                if split == "test" and self.cfg.train.eval_batch_stats and self.batch_stats:
                    bs_loss, bs_acc = evaluate_batch_stats(self.model, x, y, self.cfg.train.batch_size)
                    rows += [Row(step, "test_batchstat_loss", bs_loss), Row(step, "test_batchstat_acc", bs_acc)]
                if split == "test" and self.cfg.train.chance_patience:
                    at_chance = acc.item() <= 1.0 / self.data.num_classes + 0.02
                    self.chance_evals = self.chance_evals + 1 if at_chance else 0
        self._latest_eval = rows
        return rows

    def _final_metrics(self, out_dir: Path) -> dict:
        from bnstudy.records import read_metrics

        df = read_metrics(Path(out_dir) / METRICS)
        plain = df[df["layer"].isna() & df["unit"].isna() & df["eta"].isna()]
        last = plain.sort_values("step").groupby("metric")["value"].last()
        return {k: float(last[k]) for k in LOOP_METRICS if k in last}


def run(cfg: Config, out_dir: Path, data: TensorData | None = None, sweep: Sweep | None = None) -> dict:
    """Train one configuration into ``out_dir`` (metrics.csv, summary.json); returns the summary.

    On a CPU it warns first when the machine is busier than its cores (``bnstudy.threads``)."""
    global _load_warned
    trainer = Trainer(cfg, out_dir, data, sweep)
    if trainer.device.type == "cpu" and not _load_warned and (warning := load_warning(torch.get_num_threads())):
        log.warning(warning)
        _load_warned = True  # once per process (a sweep's jobs share it)
    return trainer.run()


_load_warned = False
