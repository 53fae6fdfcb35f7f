"""The training loop: build, step, the measurement phases, eval, the log window; rows to one sink.

``run(cfg, out_dir)`` is everything a Hydra job does; it can be called from a notebook too. Per step it
does what a bare PyTorch loop does (index the in-memory data, forward, backward, step) and keeps a
reference to the step's loss and logits (no kernel, no read-back); they are reduced and read back to
the host once per ``log_every`` steps, so a GPU's queue never waits on the loop between log rows.

What the loop trains is built by ``bnstudy.build``; where its rows go is ``bnstudy.outputs`` (``Outputs``:
one run folder, or several). Runs that differ only in what they measure (and their names) follow one
trajectory: measurements never change training (``bnstudy.measures.registry``).
``Trainer(cfg, out_dir, also=[(cfg2, dir2, sweep2), ...])`` trains it once and writes each run's folder as
that run alone would (the same metrics.csv, byte for byte; each folder its own checkpoint, resumable
alone); ``experiments.together`` uses it for ``make all``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from bnstudy.build import build, build_probes, check_one_trajectory, keep_threads, lr_at, validate
from bnstudy.config import Config
from bnstudy.data import TensorData
from bnstudy.measures.functional import RNGState, forward_at
from bnstudy.measures.registry import Row
from bnstudy.models import BlockNet
from bnstudy.norms import uses_batch_statistics
from bnstudy.outputs import Outputs, RunOutput, checkpoint_error
from bnstudy.progress import Sweep, progress_enabled, tqdm
from bnstudy.provenance import environment
from bnstudy.threads import load_warning

log = logging.getLogger("bnstudy")

# The loop's own metrics (the measurements' are defined in their modules: bnstudy.measures.metric_names())
TRAIN_LOSS, TRAIN_ACC = "train_loss", "train_acc"  # mean over the log window's training batches
TRAIN_EVAL_LOSS, TRAIN_EVAL_ACC = "train_eval_loss", "train_eval_acc"  # eval mode, fixed training subset
TEST_LOSS, TEST_ACC = "test_loss", "test_acc"  # eval mode, test subset
EVAL_METRICS = {"train_eval": (TRAIN_EVAL_LOSS, TRAIN_EVAL_ACC), "test": (TEST_LOSS, TEST_ACC)}  # by eval set
LOOP_METRICS = (TRAIN_LOSS, TRAIN_ACC, TRAIN_EVAL_LOSS, TRAIN_EVAL_ACC, TEST_LOSS, TEST_ACC)


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


class Trainer:
    """One trajectory: its parts built from ``cfg`` (``bnstudy.build``), trained into the folders of ``cfg``
    and of ``also`` (runs whose configs differ from ``cfg`` only in ``TRAJECTORY_FREE``) as one sink.
    ``checked``: the configs were validated on their way in (a Hydra job's, by the preflight)."""

    def __init__(self, cfg: Config, out_dir: Path, data: TensorData | None = None, sweep: Sweep | None = None,
                 also: Sequence[tuple[Config, Path, Sweep | None]] = (), checked: bool = False):
        runs = [RunOutput(cfg, out_dir, sweep), *(RunOutput(c, d, s) for c, d, s in also)]
        if not checked:
            for o in runs:
                validate(o.cfg)
        check_one_trajectory([o.cfg for o in runs], [o.out_dir for o in runs])
        self.cfg, self.outputs = cfg, Outputs(runs)
        self.parts = build(cfg, data, [o.cfg for o in runs[1:]])

    def run(self) -> dict:
        """Train, resuming from the folders' checkpoints; a finished folder with this config is left as is.

        Holds every folder's lock throughout (``Outputs.open``: a failure is recorded in each summary). The
        summary's status ends as "completed" or "diverged". Returns the first folder's summary
        (``self.summaries``: every folder's); folders whose checkpoints are not at one step go on one at a
        time, each from a fresh build.
        """
        with self.outputs.open() as todo:
            for i, sink in enumerate(todo.trajectories(self.parts.device)):
                if i:
                    self.parts = build(sink.runs[0].cfg, self.parts.data)
                self.train(sink)
        self.summaries = self.outputs.summaries()
        return self.summaries[0]

    def train(self, sink: Outputs) -> None:
        """The loop: from the folders' checkpoint if they have one, to ``train.steps`` or divergence."""
        p, first = self.parts, sink.runs[0]
        cfg, t = first.cfg, first.cfg.train
        model, optimizer, loss_fn, x_all, y_all = p.model, p.optimizer, p.loss_fn, p.data.x_train, p.data.y_train
        keep_threads(first.previous, cfg, first.out_dir)
        sink.check_environment(environment(p.device, p.data.files, t.flush_denormal))
        self.sink = sink
        self.probes = probes = build_probes([o.cfg for o in sink.runs], p)
        self.chance_evals, self.train_latest, self.eval_latest = 0, {}, {}
        start, window, offsets = self.load_checkpoint() if first.resumes else (0, None, None)
        window = LogWindow(p.classify, window)
        sink.start(start, offsets)
        t0, status, step = time.time(), "completed", start
        channels_last = t.channels_last and x_all.dim() == 4
        warmup = cfg.optim.warmup
        bar = tqdm(range(start, t.steps), initial=start, total=t.steps, disable=not progress_enabled(cfg.progress),
                   label=self.label(sink), sweep=first.sweep, leave=False)
        for step in bar:
            if t.eval_every and step % t.eval_every == 0:
                sink.add(self.eval_rows(step))
            idx = p.sampler.indices(step)
            x, y = x_all[idx], y_all[idx]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            due = probes.due(step)
            rng = RNGState.capture() if due.rng else None
            probes.before_forward(step)
            out = model(x)
            probes.after_forward()
            loss = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if due.after_backward:
                sink.add_each(probes.after_backward(step, x, y, loss, rng))
            before = probes.snapshot() if due.snapshot else None
            if warmup and step <= warmup:  # a linear warm-up's lr (its last step sets optim.lr for good)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(cfg.optim, step)
            optimizer.step()
            if due.after_step:
                sink.add_each(probes.after_step(step, x, y, before, rng))
            window.add(loss, out, y)
            if (step + 1) % t.log_every == 0 or step + 1 == t.steps:  # the loop's only read-back
                mean_loss, acc = window.reduce()
                self.train_latest = {TRAIN_LOSS: mean_loss, **({TRAIN_ACC: acc} if acc is not None else {})}
                sink.add([Row(step + 1, metric, value) for metric, value in self.train_latest.items()])
                sink.flush()
                if not mean_loss == mean_loss or abs(mean_loss) > t.divergence_loss:  # NaN, inf or huge
                    status = "diverged"
                    break
            if self.chance_evals and t.chance_patience and self.chance_evals >= t.chance_patience:
                status = "diverged"
                break
            if t.checkpoint_every and (step + 1) % t.checkpoint_every == 0 and step + 1 < t.steps:
                sink.flush()
                self.save_checkpoint(step + 1, window.state_dict())
        bar.close()
        if status == "completed" and t.eval_every:
            sink.add(self.eval_rows(t.steps))
        latest = self.latest()
        sink.finish(status, step + 1, t0, {k: latest[k] for k in LOOP_METRICS if k in latest},
                    model.state_dict() if t.save_final else None)

    def eval_rows(self, step: int) -> list[Row]:
        """Loss and accuracy on each eval set in eval mode (and, asked for, the test set with batch statistics)."""
        p, t = self.parts, self.cfg.train
        rows = []
        for split, (x, y) in p.eval_sets.items():
            loss, acc = evaluate(p.model, x, y, t.eval_batch_size, p.classify)
            loss_metric, acc_metric = EVAL_METRICS[split]
            rows.append(Row(step, loss_metric, loss))
            if p.classify:
                rows.append(Row(step, acc_metric, acc))
                if split == "test" and t.eval_batch_stats and p.batch_stats:
                    bs_loss, bs_acc = evaluate_batch_stats(p.model, x, y, t.batch_size)
                    rows += [Row(step, "test_batchstat_loss", bs_loss), Row(step, "test_batchstat_acc", bs_acc)]
                if split == "test" and t.chance_patience:
                    at_chance = acc.item() <= 1.0 / p.data.num_classes + 0.02
                    self.chance_evals = self.chance_evals + 1 if at_chance else 0
        self.eval_latest = {row.metric: row.value for row in rows}
        return rows

    def latest(self) -> dict:
        """The last logged training and eval values (read back here: at each checkpoint, and once at the end)."""
        return {**self.train_latest, **{metric: float(v) for metric, v in self.eval_latest.items()}}

    def label(self, sink: Outputs) -> str:
        """The run in progress lines: experiment(s), norm, lr, seed (and its place in the sweep)."""
        c, sweep = self.cfg, sink.runs[0].sweep
        names = "+".join(dict.fromkeys(o.cfg.name for o in sink.runs))
        job = f" [job {sweep.num + 1}/{sweep.jobs or '?'}]" if sweep else ""
        return f"{names}{job} {c.norm.name} lr={c.optim.lr:g} seed={c.seed}"

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, step: int, window: dict) -> None:
        """Each folder gets a whole checkpoint of its own (its measurements' state, its CSV's offset)."""
        p, latest = self.parts, self.latest()
        state = {"step": step, "model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                 "rng_cpu": torch.get_rng_state(),
                 "rng_cuda": torch.cuda.get_rng_state_all() if p.device.type == "cuda" else None,
                 "window": window, "chance_evals": self.chance_evals, "latest": latest}
        self.sink.save_checkpoint(state, self.probes.state_dicts(), latest)

    def load_checkpoint(self) -> tuple[int, dict, list[int]]:
        """The folders' checkpoints (all at one step): the first sets the model, optimiser, RNG and the last
        logged values, each its own measurements' state. Returns the step, the log window's state and each
        folder's CSV offset."""
        p, runs = self.parts, self.sink.runs
        states = self.sink.checkpoints(p.device)
        state, path = states[0], runs[0].folder.checkpoint
        try:
            p.model.load_state_dict(state["model"])
            p.optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng_cpu"].cpu())
            if state["rng_cuda"] is not None:
                torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
            for o, probes, own in zip(runs, self.probes.probes, states):
                path = o.folder.checkpoint
                probes.load_state_dict(own["probes"])
            self.chance_evals = state["chance_evals"]
            latest = state.get("latest", {})  # absent in a checkpoint of an older version
            self.train_latest = {k: v for k, v in latest.items() if k in (TRAIN_LOSS, TRAIN_ACC)}
            self.eval_latest = {k: v for k, v in latest.items() if k not in self.train_latest}
        except Exception as e:
            raise checkpoint_error(path, e) from e
        return state["step"], state["window"], [own["csv_offset"] for own in states]


def run(cfg: Config, out_dir: Path, data: TensorData | None = None, sweep: Sweep | None = None,
        checked: bool = False) -> dict:
    """Train one configuration into ``out_dir`` (metrics.csv, summary.json); returns the summary.

    On a CPU it warns first when the machine is busier than its cores (``bnstudy.threads``)."""
    global _load_warned
    trainer = Trainer(cfg, out_dir, data, sweep, checked=checked)
    if trainer.parts.device.type == "cpu" and not _load_warned and (warning := load_warning(torch.get_num_threads())):
        log.warning(warning)
        _load_warned = True  # once per process (a sweep's jobs share it)
    return trainer.run()


_load_warned = False
