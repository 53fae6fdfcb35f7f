"""Benchmarks (issue 5): what the suite costs beyond a bare PyTorch loop, and where the time goes.

    python -m experiments.bench                   # default sizes: < 5 min on 2 CPU cores
    python -m experiments.bench --full            # longer runs, more repeats, VGG-16 at batch 128 on CPU
    python -m experiments.bench --device cuda     # device-resident data, timed with torch.cuda.synchronize
    python -m experiments.bench --make-all        # also: wall time of `make all` (quick) from the runs' summaries

Sections, all in one process, printed as tables and written to one long-format CSV (``--out``):

1. ``step``: the suite's training step (the real ``Trainer.run``, measurements, eval, checkpoints and the
   progress bar off, ``log_every`` at its default) against a bare hand-written loop (the same model from
   ``build_model``, the same data tensors on the same device, the same SGD, batches indexed from the
   in-memory tensors with precomputed permutations, nothing logged). Suite and bare repeats alternate
   (AB BA AB ...) so machine noise hits both; the table shows medians, and the ratio is the median of
   the per-repeat ratios of each back-to-back (suite, bare) pair, which a load that comes and goes
   between pairs does not bias.
   The suite's time is that of its step loop (every iteration of ``_train``'s ``for step in bar``, taken
   by wrapping the progress bar; read-back and CSV writes on the log schedule included); what ``run()``
   spends outside the loop (summary/CSV files, the final metrics) is shown apart, in ms per run.
2. ``data``: the suite's in-memory batching (``BatchSampler.indices`` + tensor indexing, one epoch,
   its permutation included) against ``torch.utils.data.DataLoader`` over a ``TensorDataset`` and over
   torchvision's ``FashionMNIST`` per-sample path (uint8 -> PIL -> ToTensor -> Normalize), ms per batch;
   and the share of a small-CNN training step spent on data.
3. ``measure``: each measurement's cost in training-step equivalents: a run with just that measurement
   due at every step against one with none, (t_on - t_off) / t_off (median over back-to-back pairs),
   next to the pass count stated in ``bnstudy.measures``' docstring. One extra pass = one forward and
   one backward = one training step's worth (the optimiser's update is the difference).
4. ``flops``: achieved FLOP/s of the VGG training steps (FLOPs of one forward+backward counted with
   ``torch.utils.flop_counter.FlopCounterMode``; convolutions and matmuls only) against a large float32
   matmul timed in the same run.
5. ``switches``: the effect of ``train.channels_last`` (and, on CUDA, ``train.tf32``) on the suite's VGG
   step (VGG-16 on a GPU, the quick VGG on a CPU): each off and on back to back, speed-up = off / on.
6. ``paper_fig1`` (only with ``--sections paper_fig1``): wall time of fig1 at paper scale on this device
   (VGG-16, 4 runs x 15,000 steps) on synthetic CIFAR-10-sized data written in CIFAR-10's own format.
7. ``make_all`` (``--make-all``): per experiment of ``make all``, the wall time (first loop start to last
   loop end, so parallel DLN jobs count once; older summaries: the summed ``wall_time_s``) of the runs
   of its latest quick sweep under ``results/<exp>/quick/`` (training loops only; process start-up, data
   loading and figures are not in it). Nothing is run.

Targets (PASS/FAIL in the table; the bench never fails on them): suite/bare <= 1.05 for every model;
data <= 5% of a small-CNN step; each measurement within 1.2x its stated passes (a 0-pass measurement
within 0.2 step, the same 20% of one step). Activation sampling does no extra pass but must read its
layers and sort the chosen units' N x H x W values for exact quantiles: its budget is 1.2x that bare
arithmetic ("floor": the bare loop doing it after every backward, against the bare loop, back to back)
when the floor is above 0.2 step.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import glob
import json
import math
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

import bnstudy.config  # noqa: F401  (registers the structured configs)
import bnstudy.train as train_mod
from bnstudy.config import DataConf
from bnstudy.data import CIFAR_TEST_FILE, CIFAR_TRAIN_FILES, FASHION_SYSTEM_DIR, BatchSampler, TensorData, load_dataset
from bnstudy.measures.activations import layer_moments, sample_units, units_matrix
from bnstudy.models import build_model
from bnstudy.train import LOSSES, OPTIMIZERS, Trainer, loss_name

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
CSV_COLUMNS = ["section", "case", "metric", "value", "unit", "target", "status", "note"]
RATIO_TARGET = 1.05
DATA_SHARE_TARGET = 5.0  # percent of a small-CNN step
MEASURE_SLACK = 1.2  # a measurement may cost 1.2x its stated passes
ZERO_PASS_BUDGET = 0.2  # ... and a 0-pass one 0.2 step (20% of one step, as for the others), or 1.2x its floor
MAKE_ALL = ["fig1", "fig2", "fig3_cnn", "fig3_dln", "fig4_cnn", "fig4_dln", "fig5_cnn", "fig5_dln", "browser"]


# ------------------------------------------------------------------------------------------ sizes
@dataclass
class Sizes:
    """How long each timed run lasts and how often it is repeated."""

    target_s: float  # a timed run lasts about this long (steps are set from a calibration step)
    min_steps: int
    max_steps: int
    repeats: int
    vgg16_batch_cpu: int  # VGG-16 on CPU: ~1 s per step at batch 32 on 2 cores, ~4 s at 128
    vgg16_steps_cpu: int
    vgg16_repeats_cpu: int
    measure_target_s: float  # baseline run of the measurement section
    measure_repeats: int
    data_batches: int  # DataLoader batches timed per repeat
    matmul_n_cpu: int
    tiny: bool = False


SIZES = {
    "tiny": Sizes(0.0, 2, 2, 1, 8, 2, 1, 0.0, 1, 4, 256, tiny=True),
    "default": Sizes(0.3, 20, 400, 9, 32, 2, 5, 0.2, 3, 60, 4096),
    "full": Sizes(1.0, 50, 3000, 15, 128, 3, 5, 0.5, 5, 300, 4096),
}


@dataclass
class Case:
    """One model of section 1: its config overrides and the data it trains on."""

    name: str
    overrides: list[str]
    data: str  # fmnist | cifar | gaussian
    threads: int | None = None  # None: the bench's --threads
    slow: bool = False  # seconds per step: fixed small step count and repeats


def model_cases(args, sizes: Sizes) -> list[Case]:
    cpu = args.device == "cpu"
    vgg16 = ["model=vgg", "model.depth=16", "data=cifar10"]
    if sizes.tiny:
        vgg16 += ["model.width=0.125", "train.batch_size=16"]
    elif cpu:
        vgg16 += [f"train.batch_size={sizes.vgg16_batch_cpu}"]
    dln = ["model=dln", "data=gaussian", "train.batch_size=1000", "optim.lr=1e-6"]  # the DLN experiments' lr
    norms = ("none", "batch")
    cases = [Case(f"small_cnn/{n}", ["model=small_cnn", "data=fashion_mnist", f"norm={n}"], "fmnist") for n in norms]
    cases += [Case(f"vgg_quick/{n}", ["model=vgg_quick", "data=fashion_mnist", f"norm={n}"], "fmnist") for n in norms]
    cases += [Case(f"vgg16/{n}", vgg16 + [f"norm={n}"], "cifar", slow=cpu and not sizes.tiny) for n in norms]
    cases += [Case(f"dln/{n}", dln + [f"norm={n}"], "gaussian", threads=1) for n in norms]
    if args.models:
        keep = set(args.models.split(","))
        cases = [c for c in cases if c.name.split("/")[0] in keep or c.name in keep]
    return cases


# ------------------------------------------------------------------------------------------ helpers
class Bench:
    """State shared by the sections: device, threads, data, configs, rows of the CSV."""

    def __init__(self, args, sizes: Sizes):
        self.args, self.sizes = args, sizes
        self.device = torch.device(args.device)
        self.threads = args.threads
        self.rows: list[dict] = []
        self.checks: list[tuple[str, str, str]] = []  # (what, value vs target, PASS/FAIL)
        self._data: dict[str, TensorData] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="bnstudy-bench-"))
        self._runs = 0
        self.step_ms: dict[str, dict] = {}  # section 1 results by case
        self._configs: dict[tuple, Any] = {}  # composed configs by overrides (composing takes ~0.1 s)

    # ---------------------------------------------------------------- rows
    def row(self, section: str, case: str, metric: str, value: Any, unit: str = "", target: str = "",
            status: str = "", note: str = "") -> None:
        self.rows.append(dict(section=section, case=case, metric=metric, value=value, unit=unit,
                              target=target, status=status, note=note))

    def check(self, section: str, case: str, metric: str, value: float, unit: str, limit: float,
              note: str = "") -> str:
        status = "PASS" if value <= limit else "FAIL"
        self.row(section, case, metric, value, unit, f"<= {limit:g}", status, note)
        self.checks.append((f"{section}: {case} {metric}", f"{value:.4g} {unit} (target <= {limit:g})", status))
        return status

    # ---------------------------------------------------------------- timing
    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def set_threads(self, threads: int | None) -> None:
        torch.set_num_threads(threads or self.threads)

    # ---------------------------------------------------------------- data
    def data(self, kind: str) -> TensorData:
        if kind not in self._data:
            self._data[kind] = make_data(kind, self.sizes, self.args.data_root).to(self.device)
        return self._data[kind]

    # ---------------------------------------------------------------- configs
    def config(self, overrides: list[str], steps: int, threads: int | None = None, set: dict | None = None):
        """The composed config (cached: composing takes ~0.1 s) with ``train.steps`` and the dotted keys of
        ``set`` assigned on a copy."""
        base = ["measure=basic", "train.eval_every=0", "train.checkpoint_every=0", "progress=false",
                f"train.device={self.device.type}", f"train.threads={threads or self.threads}",
                f"train.channels_last={self.args.channels_last}", f"train.tf32={self.args.tf32}"]
        if self.sizes.tiny:
            base.append("train.batch_size=32")
        key = tuple(base + overrides)
        if key not in self._configs:
            self._configs[key] = compose(list(key))
        cfg = copy.deepcopy(self._configs[key])
        for dotted, value in {"train.steps": steps, **(set or {})}.items():
            *path, last = dotted.split(".")
            node = cfg
            for part in path:
                node = getattr(node, part)
            if not hasattr(node, last):
                raise AttributeError(f"no config key {dotted}")
            setattr(node, last, value)
        return cfg

    def out_dir(self) -> Path:
        self._runs += 1
        return self._tmp / f"run{self._runs}"

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return OmegaConf.to_object(hydra_compose("config", overrides=overrides))


def make_data(kind: str, sizes: Sizes, root: str | None = None) -> TensorData:
    """Fashion-MNIST (the real one when installed or under ``root``, else random tensors of its shape),
    random CIFAR-sized tensors, or the DLN's Gaussian regression. ``--tiny`` uses small random sets."""
    g = torch.Generator().manual_seed(0)

    def random(name, shape, n_train, n_test):
        return TensorData(name, torch.randn(n_train, *shape, generator=g), torch.randint(0, 10, (n_train,), generator=g),
                          torch.randn(n_test, *shape, generator=g), torch.randint(0, 10, (n_test,), generator=g), 10)

    if kind == "fmnist":
        if not sizes.tiny and (root or FASHION_SYSTEM_DIR.is_dir()):
            return load_dataset(DataConf(name="fashion_mnist", root=root))
        return random("fashion_mnist_random", (1, 28, 28), 512 if sizes.tiny else 10_000, 256)
    if kind == "cifar":
        return random("cifar_random", (3, 32, 32), 256 if sizes.tiny else 4096, 256)
    if kind == "gaussian":
        return load_dataset(DataConf(name="gaussian"))
    raise ValueError(kind)


# ------------------------------------------------------------------------------------------ the two loops
_LOOP_TIMES: list[tuple[float, int]] = []


@contextlib.contextmanager
def timed_suite_loop(sync: Callable[[], None]) -> Iterator[None]:
    """Time ``Trainer._train``'s step loop: its ``for step in bar`` iterates a tqdm, which this wraps.

    The time runs from just before the first step to just after the last (after a device sync).
    """
    base = train_mod.tqdm

    class TimedBar(base):  # type: ignore[misc, valid-type]
        def __iter__(self):
            sync()
            t0, n = time.perf_counter(), 0
            for item in super().__iter__():
                yield item
                n += 1
            sync()
            _LOOP_TIMES.append((time.perf_counter() - t0, n))

    train_mod.tqdm = TimedBar
    try:
        yield
    finally:
        train_mod.tqdm = base


def suite_run(bench: Bench, cfg, data: TensorData) -> tuple[float, float, int]:
    """(loop seconds, seconds of run() outside the loop, steps done) of one fresh ``Trainer(cfg).run()``."""
    trainer = Trainer(cfg, bench.out_dir(), data=data)
    _LOOP_TIMES.clear()
    with timed_suite_loop(bench.sync):
        bench.sync()
        t0 = time.perf_counter()
        summary = trainer.run()
        bench.sync()
        total = time.perf_counter() - t0
    if _LOOP_TIMES:
        loop, steps = _LOOP_TIMES[-1]
    else:  # the loop ended early (a diverged run breaks out of it): count the whole run
        loop, steps = total, int(summary.get("step", cfg.train.steps))
    shutil.rmtree(trainer.out_dir, ignore_errors=True)
    return loop, total - loop, steps


def bare_run(bench: Bench, cfg, data: TensorData, steps: int,
             after_backward: Callable[[dict], None] | None = None) -> float:
    """Seconds for ``steps`` steps of a hand-written loop doing the same work as the suite's step.

    ``after_backward(captured)``, if given, runs after every backward on the outputs of the probes of
    ``cfg.measure.activations.layers`` (kept by forward hooks), for the activation measurement's floor."""
    t = cfg.train
    bench.set_threads(t.threads)  # the process-wide switches Trainer.__init__ sets, set the same way
    torch.set_flush_denormal(t.flush_denormal)
    train_mod.set_tf32(t.tf32)
    train_mod.seed_everything(cfg.seed, t.deterministic)
    model = build_model(cfg.model, cfg.norm, data.input_shape, data.num_classes).to(bench.device)
    channels_last = t.channels_last and data.x_train.dim() == 4
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    captured: dict = {}
    if after_backward is not None:
        for i in cfg.measure.activations.layers:
            model.block(i).probe.register_forward_hook(lambda m, i_, o, i=i: captured.__setitem__(i, o.detach()))
    opt = OPTIMIZERS[cfg.optim.name](list(model.parameters()), cfg.optim)
    loss_fn = LOSSES[loss_name(cfg, data)]
    x_all, y_all = data.x_train, data.y_train
    n, b = len(x_all), t.batch_size
    per_epoch = n // b
    epochs = -(-steps // per_epoch)
    sampler = BatchSampler(n, b, cfg.seed)  # its permutations, computed before the clock starts
    order = torch.cat([sampler.permutation(e)[: per_epoch * b] for e in range(epochs)]).to(bench.device)
    bench.sync()
    t0 = time.perf_counter()
    for step in range(steps):
        idx = order[step * b : (step + 1) * b]
        x, y = x_all[idx], y_all[idx]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward(captured)
        opt.step()
    bench.sync()
    return time.perf_counter() - t0


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def alternate(repeats: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], list[float]]:
    """``repeats`` back-to-back pairs of runs of ``a`` and ``b``, which one first alternating (AB BA AB ...)
    so that a load that comes and goes hits both; their results, pair by pair."""
    got_a, got_b = [], []
    for r in range(repeats):
        for run in ((a, b) if r % 2 == 0 else (b, a)):
            (got_a if run is a else got_b).append(run())
    return got_a, got_b


# ------------------------------------------------------------------------------------------ 1. step
def section_step(bench: Bench) -> None:
    s = bench.sizes
    for case in model_cases(bench.args, s):
        data = bench.data(case.data)
        slow = case.slow
        repeats = s.vgg16_repeats_cpu if slow else s.repeats
        cfg1 = bench.config(case.overrides, 1, case.threads)
        if not s.tiny:
            bare_run(bench, cfg1, data, 1)  # warm-up: kernels, allocator
        if s.tiny:
            steps = s.min_steps
        elif slow:
            steps = s.vgg16_steps_cpu
        else:
            per_step = bare_run(bench, cfg1, data, 3) / 3
            steps = int(min(s.max_steps, max(s.min_steps, round(s.target_s / per_step))))
        cfg = bench.config(case.overrides, steps, case.threads)
        if not (slow or s.tiny):
            suite_run(bench, bench.config(case.overrides, 2, case.threads), data)  # warm-up of the suite's path
        fixed, done = [], steps

        def suite_ms() -> float:
            nonlocal done
            loop, outside, done = suite_run(bench, cfg, data)
            fixed.append(1000 * outside)
            return 1000 * loop / done

        suite, bare = alternate(repeats, suite_ms, lambda: 1000 * bare_run(bench, cfg, data, steps) / steps)
        b_ms, s_ms = med(bare), med(suite)
        ratio = med([a / b for a, b in zip(suite, bare)])  # each pair ran back to back: load drifts cancel
        note = (f"steps={steps} batch={cfg.train.batch_size} repeats={repeats} threads={case.threads or bench.threads}"
                f" data={data.name}" + (f" (suite stopped at {done})" if done != steps else ""))
        bench.step_ms[case.name] = dict(bare_ms=b_ms, suite_ms=s_ms, cfg=cfg, data=data)
        bench.row("step", case.name, "bare_ms_per_step", b_ms, "ms", note=note)
        bench.row("step", case.name, "suite_ms_per_step", s_ms, "ms", note=note)
        bench.row("step", case.name, "suite_steps_per_s", 1000 / s_ms, "steps/s", note=note)
        bench.row("step", case.name, "suite_outside_loop_ms_per_run", med(fixed), "ms",
                  note="run() beyond the loop: summary/CSV files, final metrics")
        bench.check("step", case.name, "suite_over_bare", ratio, "x", RATIO_TARGET,
                    note=f"median of {repeats} back-to-back pairs; ratio of medians {s_ms / b_ms:.3f}, of minima "
                         f"{min(suite) / min(bare):.3f}; spread suite {min(suite):.3g}..{max(suite):.3g} "
                         f"bare {min(bare):.3g}..{max(bare):.3g} ms")
        print(f"  step {case.name:16s} bare {b_ms:9.3f} ms  suite {s_ms:9.3f} ms  ratio {ratio:.3f}  "
              f"({note})", flush=True)


# ------------------------------------------------------------------------------------------ 2. data
class _Timer:
    def __init__(self, bench: Bench):
        self.bench = bench

    def __enter__(self):
        self.bench.sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.bench.sync()
        self.s = time.perf_counter() - self.t0


def torchvision_fmnist(data: TensorData):
    """torchvision's own FashionMNIST dataset object (its __getitem__: uint8 -> PIL -> transforms) over
    uint8 images; the real files when installed, else the random tensors mapped back to 0..255."""
    import torchvision.transforms as T
    from torchvision.datasets import FashionMNIST

    x = data.x_train.detach().cpu()
    images = ((x - x.amin()) / (x.amax() - x.amin()) * 255).round().to(torch.uint8)[:, 0]
    ds = FashionMNIST.__new__(FashionMNIST)  # without its __init__, which wants the files in its own layout
    ds.data, ds.targets = images, data.y_train.detach().cpu()
    ds.transform, ds.target_transform = T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))]), None
    ds[0]  # fails here, not in the timing, if torchvision's internals changed
    return ds


def section_data(bench: Bench) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    s, dev = bench.sizes, bench.device
    data = bench.data("fmnist")
    b, n = 128 if not s.tiny else 64, len(data.x_train)
    bench.set_threads(None)
    per_epoch = n // b
    results: dict[str, list[float]] = {"suite_in_memory": [], "dataloader_tensordataset": [],
                                       "dataloader_torchvision_fmnist": []}
    cpu_x, cpu_y = data.x_train.cpu(), data.y_train.cpu()
    loaders = {
        "dataloader_tensordataset": DataLoader(TensorDataset(cpu_x, cpu_y), batch_size=b, shuffle=True,
                                               drop_last=True, pin_memory=dev.type == "cuda"),
        "dataloader_torchvision_fmnist": DataLoader(torchvision_fmnist(data), batch_size=b, shuffle=True,
                                                    drop_last=True, pin_memory=dev.type == "cuda"),
    }
    k = min(s.data_batches, per_epoch)
    for r in range(s.repeats):
        sampler = BatchSampler(n, b, seed=r, device=dev)
        with _Timer(bench) as t:  # one epoch: its permutation and every batch
            for step in range(per_epoch):
                idx = sampler.indices(step)
                x, y = data.x_train[idx], data.y_train[idx]
        results["suite_in_memory"].append(1000 * t.s / per_epoch)
        for name, loader in loaders.items():
            with _Timer(bench) as t:
                for i, (x, y) in enumerate(loader):
                    x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                    if i + 1 == k:
                        break
            results[name].append(1000 * t.s / k)
    notes = {"suite_in_memory": f"BatchSampler.indices + indexing, {per_epoch} batches (one epoch)",
             "dataloader_tensordataset": f"num_workers=0, {k} batches",
             "dataloader_torchvision_fmnist": f"torchvision FashionMNIST.__getitem__ (PIL, ToTensor, Normalize), "
                                              f"num_workers=0, {k} batches"}
    for name, ms in results.items():
        bench.row("data", name, "ms_per_batch", med(ms), "ms", note=f"batch={b} data={data.name} " + notes[name])
    step_ms = _small_cnn_step_ms(bench)
    in_memory = med(results["suite_in_memory"])
    bench.check("data", "small_cnn/none", "data_share_of_step", 100 * in_memory / step_ms, "%", DATA_SHARE_TARGET,
                note=f"suite in-memory batch {in_memory:.4g} ms / suite step {step_ms:.4g} ms")
    tv = med(results["dataloader_torchvision_fmnist"])
    bench.row("data", "small_cnn/none", "torchvision_share_of_step", 100 * tv / (step_ms - in_memory + tv), "%",
              note="the same step fed by the torchvision per-sample DataLoader instead")
    for name, ms in results.items():
        print(f"  data {name:32s} {med(ms):8.4f} ms/batch", flush=True)


def _small_cnn_step_ms(bench: Bench) -> float:
    got = bench.step_ms.get("small_cnn/none")
    if got:
        return got["suite_ms"]
    cfg = bench.config(["model=small_cnn", "data=fashion_mnist", "norm=none"], 20)
    data = bench.data("fmnist")
    suite_run(bench, bench.config(["model=small_cnn", "data=fashion_mnist"], 2), data)
    return med([1000 * (lambda r: r[0] / r[2])(suite_run(bench, cfg, data)) for _ in range(3)])


# ------------------------------------------------------------------------------------------ 3. measure
@dataclass
class Measurement:
    name: str
    set: dict  # config keys set on the composed config
    passes: float  # stated extra passes (forward+backward pairs = training-step equivalents)
    per: str  # what the per-unit cost is per ("layer", "eta", "")
    units: int  # how many layers / eta points the passes cover
    stated: str


def measurements(points: int) -> list[Measurement]:
    p = points
    return [
        Measurement("loss_change", {"measure.loss_change.every": 1}, 0, "", 1, "0 passes: read off the training forward"),
        Measurement("activations", {"measure.activations.every": 1, "measure.activations.samples": 128}, 0, "", 1,
                    "0 passes: hooks on the training forward (samples, moments, quantiles, shift/drift)"),
        Measurement("ics", {"measure.ics.every": 1, "measure.ics.layers": [1, 2]}, 2, "layer", 2,
                    "1 forward + 1 backward per layer (layers 1,2)"),
        Measurement("landscape", {"measure.landscape.every": 1, "measure.landscape.points": p}, p, "eta", p,
                    f"P={p} forward + P backward, shared by landscape, predictiveness, beta"),
        Measurement("landscape_beta_act", {"measure.landscape.every": 1, "measure.landscape.points": p,
                                           "measure.landscape.beta_wrt": "activations"}, p + 1 + p, "eta", p,
                    f"P + (1 + P) forward and backward (P={p}; beta w.r.t. layer-1 activations)"),
    ]


def activation_arithmetic(cfg) -> Callable[[dict], None]:
    """The arithmetic an activation measurement cannot avoid, with bnstudy's own functions and nothing
    else: the moments of every unit of each captured layer, and the chosen units' values, quantiles and
    samples (no rows, no shift bookkeeping, no CSV)."""
    a = cfg.measure.activations
    units = list(range(a.units))

    def arithmetic(captured: dict) -> None:
        for h in captured.values():
            layer_moments(h)
            values = units_matrix(h, units)
            torch.quantile(values, torch.tensor(a.quantiles, dtype=h.dtype, device=h.device), dim=1)
            sample_units(values, a.samples, seed=0)

    return arithmetic


def activation_floor(bench: Bench, cfg, data: TensorData, steps: int, repeats: int) -> float:
    """The bare loop with :func:`activation_arithmetic` after every backward against the bare loop, in
    steps: the activation measurement's minimum, paid where the suite pays it (after the backward, with
    the caches the step left), median over back-to-back pairs."""
    off, on = alternate(repeats, lambda: bare_run(bench, cfg, data, steps),
                        lambda: bare_run(bench, cfg, data, steps, activation_arithmetic(cfg)))
    return med([t_on / t_off - 1 for t_on, t_off in zip(on, off)])


def section_measure(bench: Bench) -> None:
    s = bench.sizes
    models = [("small_cnn/batch", ["model=small_cnn", "data=fashion_mnist", "norm=batch"], "fmnist"),
              ("vgg_quick/batch", ["model=vgg_quick", "data=fashion_mnist", "norm=batch"], "fmnist")]
    if bench.args.models:
        keep = set(bench.args.models.split(","))
        models = [m for m in models if m[0].split("/")[0] in keep or m[0] in keep] or models[:1]
    if s.tiny:
        models = models[:1]
    points = 2 if s.tiny else 8
    for case, overrides, kind in models:
        data = bench.data(kind)
        if s.tiny:
            steps = s.min_steps
        else:
            suite_run(bench, bench.config(overrides, 2), data)  # warm-up
            loop, _, done = suite_run(bench, bench.config(overrides, 10), data)
            steps = int(min(s.max_steps, max(5, round(s.measure_target_s / (loop / done)))))
        variants = [("off", {}, None)] + [(m.name, m.set, m) for m in measurements(points)]
        for _, extra, _ in variants[1:] if not s.tiny else []:  # warm-up of each measurement's code path
            suite_run(bench, bench.config(overrides, 2, set=extra), data)
        times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        costs: dict[str, list[float]] = {name: [] for name, _, _ in variants[1:]}
        for r in range(s.measure_repeats):
            for name, extra, _ in variants[1:]:  # each measured run next to its own run with none: off, on, off, on
                for which in (("off", name) if r % 2 == 0 else (name, "off")):
                    more = extra if which == name else {}
                    loop, _, done = suite_run(bench, bench.config(overrides, steps, set=more), data)
                    times[which].append(1000 * loop / done)
                costs[name].append(times[name][-1] / times["off"][-1] - 1)
        base = med(times["off"])
        bench.row("measure", case, "step_ms_measurements_off", base, "ms", note=f"steps={steps} repeats={s.measure_repeats}")
        act_set = next(m.set for m in measurements(points) if m.name == "activations")
        floor = activation_floor(bench, bench.config(overrides, steps, set=act_set), data, steps, s.measure_repeats)
        bench.row("measure", f"{case} activations", "floor_step_equivalents", floor, "steps",
                  note="bare loop + moments of all units, quantiles and samples of the chosen units after each backward")
        for name, _, m in variants[1:]:
            on = med(times[name])
            cost = med(costs[name])  # median over back-to-back (off, on) pairs
            budget = MEASURE_SLACK * m.passes if m.passes else ZERO_PASS_BUDGET
            per = f"; {cost / m.units:.3g} per {m.per}" if m.per else ""
            if name == "activations":
                budget = max(budget, MEASURE_SLACK * floor)
                per = f"; bare floor {floor:.3g} step"
            bench.row("measure", f"{case} {name}", "step_ms_measured", on, "ms", note=f"every=1, steps={steps}")
            bench.check("measure", f"{case} {name}", "cost_step_equivalents", cost, "steps", budget,
                        note=f"stated {m.passes:g}: {m.stated}{per}")
            print(f"  measure {case} {name:20s} {cost:7.3f} step-eq (stated {m.passes:g}, budget {budget:.3g}){per}",
                  flush=True)


# ------------------------------------------------------------------------------------------ 4. flops
def matmul_peak(bench: Bench) -> tuple[float, int]:
    """GFLOP/s of a large float32 matmul (the best of several: a peak, not a typical speed), with the
    run's TF32 setting."""
    n = 8192 if bench.device.type == "cuda" else bench.sizes.matmul_n_cpu
    bench.set_threads(None)
    train_mod.set_tf32(bench.args.tf32)
    a = torch.randn(n, n, device=bench.device)
    b = torch.randn(n, n, device=bench.device)
    a @ b  # warm-up
    times = []
    for _ in range(10 if bench.device.type == "cuda" else 3 if bench.sizes.tiny else 5):
        with _Timer(bench) as t:
            a @ b
        times.append(t.s)
    return 2 * n**3 / min(times) / 1e9, n


def step_flops(bench: Bench, cfg, data: TensorData) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.norm, data.input_shape, data.num_classes).to(bench.device)
    x, y = data.x_train[: cfg.train.batch_size], data.y_train[: cfg.train.batch_size]
    with FlopCounterMode(display=False) as counter:
        LOSSES[loss_name(cfg, data)](model(x), y).backward()
    return float(counter.get_total_flops())


def section_flops(bench: Bench) -> None:
    peak, n = matmul_peak(bench)
    precision = "TF32 allowed" if torch.backends.cuda.matmul.allow_tf32 and bench.device.type == "cuda" else "fp32"
    bench.row("flops", f"matmul_{n}", "peak_gflops", peak, "GFLOP/s", note=f"{n}x{n} float32 @ ({precision})")
    print(f"  flops matmul {n}x{n}: {peak:.1f} GFLOP/s", flush=True)
    for case in ("vgg_quick/none", "vgg_quick/batch", "vgg16/none", "vgg16/batch"):
        got = bench.step_ms.get(case)
        if not got:
            continue
        flops = step_flops(bench, got["cfg"], got["data"])
        achieved = flops / (got["suite_ms"] / 1000) / 1e9
        note = f"batch={got['cfg'].train.batch_size}; conv/matmul FLOPs of forward+backward"
        bench.row("flops", case, "gflop_per_step", flops / 1e9, "GFLOP", note=note)
        bench.row("flops", case, "achieved_gflops", achieved, "GFLOP/s", note="over the suite's step time")
        bench.row("flops", case, "percent_of_matmul_peak", 100 * achieved / peak, "%")
        print(f"  flops {case:16s} {flops / 1e9:8.2f} GFLOP/step  {achieved:8.1f} GFLOP/s  "
              f"{100 * achieved / peak:5.1f}% of matmul", flush=True)


# ------------------------------------------------------------------------------------------ 5. switches
def section_switches(bench: Bench) -> None:
    """The performance switches' effect on the suite's step: ``train.channels_last`` (and ``train.tf32`` on
    CUDA), each run off and on back to back (off/on alternating), on the VGG the device trains at scale."""
    s = bench.sizes
    cuda = bench.device.type == "cuda"
    model = "vgg16" if cuda or s.tiny else "vgg_quick"
    switches = ["train.channels_last"] + (["train.tf32"] if cuda else [])
    for case in [c for c in model_cases(bench.args, s) if c.name.split("/")[0] == model]:
        data = bench.data(case.data)
        base = {k: False for k in switches}
        if s.tiny:
            steps = s.min_steps
        else:
            suite_run(bench, bench.config(case.overrides, 2, case.threads, set=base), data)  # warm-up
            loop, _, done = suite_run(bench, bench.config(case.overrides, 5, case.threads, set=base), data)
            steps = int(min(s.max_steps, max(s.min_steps, round(s.target_s / (loop / done)))))
        for switch in switches:
            def step_ms(on: bool) -> float:
                loop, _, done = suite_run(bench, bench.config(case.overrides, steps, case.threads,
                                                              set={**base, switch: on}), data)
                return 1000 * loop / done

            off, on = alternate(s.repeats, lambda: step_ms(False), lambda: step_ms(True))
            speedup = med([t_off / t_on for t_off, t_on in zip(off, on)])
            note = f"steps={steps} repeats={s.repeats}; off {med(off):.4g} ms, on {med(on):.4g} ms per step"
            bench.row("switches", case.name, f"{switch.split('.')[1]}_speedup", speedup, "x", note=note)
            print(f"  switches {case.name:16s} {switch:20s} off {med(off):8.3f} ms  on {med(on):8.3f} ms  "
                  f"speed-up {speedup:.3f}x", flush=True)
    train_mod.set_tf32(bench.args.tf32)  # the process-wide flag back to the bench's own setting


# ------------------------------------------------------------------------------------------ 6. paper fig1
def write_synthetic_cifar10(directory: Path, per_batch: int, seed: int = 0) -> None:
    """CIFAR-10's five training batches and its test batch in the real on-disk format (python pickles)
    with random images whose brightness encodes the label, so the nets learn as they would on CIFAR-10.
    For timing where the real data cannot be downloaded; never for results."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE):
        labels = rng.integers(0, 10, size=per_batch)
        data = np.clip(rng.normal(30 + 20 * labels[:, None], 50, size=(per_batch, 3072)), 0, 255).astype(np.uint8)
        with open(directory / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}, f, protocol=2)


def section_paper_fig1(bench: Bench) -> None:
    """Wall time of fig1 at paper scale (VGG-16, 4 runs of 15,000 steps at batch 128, CIFAR-10-sized
    synthetic data) on this device: the experiment's own command, in a subprocess. Hours on a CPU; meant
    for a GPU (``--device cuda --sections paper_fig1``). ``--tiny`` shrinks it to a few steps."""
    root = bench._tmp / "paper_fig1"
    write_synthetic_cifar10(root / "cifar-10-batches-py", per_batch=64 if bench.sizes.tiny else 10_000)
    tiny = ["model.width=0.125", "train.steps=4", "train.batch_size=16", "train.eval_every=2", "train.eval_size=64",
            "train.measure_every=2"] if bench.sizes.tiny else []
    cmd = [sys.executable, "-m", "experiments.train", "-m", "experiment=fig1", "scale=paper", f"data.root={root}",
           "seed=0", "progress=false", f"train.device={bench.device.type}", f"train.channels_last={bench.args.channels_last}",
           f"train.tf32={bench.args.tf32}", f"hydra.sweep.dir={root / 'sweep'}", *tiny]
    print(f"  paper_fig1: {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"fig1 at paper scale failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    for path in sorted((root / "sweep").glob("*/summary.json")):
        summary = json.loads(path.read_text())
        c = summary["config"]
        case = f"vgg16/{c['norm']['name']} lr {c['optim']['lr']:g}"
        bench.row("paper_fig1", case, "run_wall_s", summary["wall_time_s"], "s",
                  note=f"{summary['status']} at step {summary['step']} of {c['train']['steps']}")
        bench.row("paper_fig1", case, "steps_per_s", summary["step"] / summary["wall_time_s"], "steps/s",
                  note="evals, histograms and checkpoints included")
    bench.row("paper_fig1", "fig1", "wall_s", wall, "s", note="4 runs, one after another, process start-up included; "
              "synthetic CIFAR-10-sized data" + (" (--tiny: a few steps of a narrow VGG-16)" if bench.sizes.tiny else ""))
    print(f"  paper_fig1 wall {wall:.1f} s", flush=True)


# ------------------------------------------------------------------------------------------ 7. make all
def section_make_all(bench: Bench) -> None:
    """Per experiment, the wall time of its latest quick sweep from the runs' summaries: first loop start
    to last loop end (parallel jobs overlap), or the sum of the runs' loop times for older summaries."""
    from datetime import datetime

    results = Path(bench.args.results)
    total = 0.0
    for exp in MAKE_ALL:
        sweeps: dict[Path, list[dict]] = {}
        for path in glob.glob(str(results / exp / "quick" / "**" / "summary.json"), recursive=True):
            path = Path(path)
            try:
                summary = json.loads(path.read_text())
                float(summary["wall_time_s"])
            except (ValueError, TypeError, KeyError, OSError):
                continue
            sweep = path.parent.parent if path.parent.name.isdigit() else path.parent
            sweeps.setdefault(sweep, []).append(summary)
        if not sweeps:
            bench.row("make_all", exp, "wall_s", float("nan"), "s", note="no runs under " + str(results / exp / "quick"))
            print(f"  make_all {exp:10s} (no runs)", flush=True)
            continue
        latest = max(sweeps, key=lambda p: p.name)
        runs = sweeps[latest]
        loops = sum(float(r["wall_time_s"]) for r in runs)
        if all("started_at" in r and "finished_at" in r for r in runs):
            wall = (max(datetime.fromisoformat(r["finished_at"]) for r in runs)
                    - min(datetime.fromisoformat(r["started_at"]) for r in runs)).total_seconds()
            how = "first loop start to last loop end"
        else:
            wall, how = loops, "sum of the runs' loops"
        total += wall
        bench.row("make_all", exp, "wall_s", wall, "s", note=f"{how}; {len(runs)} runs in {latest.relative_to(results)} "
                  f"(of {len(sweeps)} sweeps), their loops {loops:.1f} s in all")
        print(f"  make_all {exp:10s} {wall:9.1f} s over {len(runs)} runs (loops {loops:.1f} s)", flush=True)
    bench.row("make_all", "total", "wall_s", total, "s", note="training only (no process start-up, data loading, figures)")


# ------------------------------------------------------------------------------------------ machine, output
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine(bench: Bench) -> dict[str, str]:
    info = {"cpu": cpu_model(), "cores": str(usable_cores()), "threads": str(bench.threads),
            "torch": torch.__version__, "python": platform.python_version(), "device": str(bench.device),
            "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    if bench.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(bench.device)
        info["cuda"] = str(torch.version.cuda)
    info["switches"] = (f"channels_last={bench.args.channels_last} tf32={bench.args.tf32} "
                        f"deterministic=true flush_denormal=true (the suite's defaults, process-wide)")
    return info


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.4e}"
    return str(v)


def print_table(rows: list[dict], columns: list[str]) -> None:
    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def report(bench: Bench, info: dict[str, str], out: Path) -> None:
    print("\n== bnstudy bench ==")
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    for section in ("step", "data", "measure", "flops", "switches", "paper_fig1", "make_all"):
        rows = [r for r in bench.rows if r["section"] == section]
        if rows:
            print(f"\n-- {section} --")
            print_table(rows, ["case", "metric", "value", "unit", "target", "status", "note"])
    if bench.checks:
        print("\n-- targets --")
        for what, value, status in bench.checks:
            print(f"{status}  {what}: {value}")
        failed = sum(s == "FAIL" for _, _, s in bench.checks)
        print(f"{len(bench.checks) - failed} PASS, {failed} FAIL")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for k, v in info.items():
            w.writerow(dict(section="machine", case=k, metric="info", value="", unit="", target="", status="", note=v))
        for r in bench.rows:
            w.writerow({**r, "value": repr(float(r["value"]))})
    print(f"\nwrote {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="longer runs and more repeats")
    size.add_argument("--tiny", action="store_true", help="a few steps of everything (for tests)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=usable_cores(), help="torch intra-op threads (DLN: always 1)")
    p.add_argument("--channels-last", action="store_true", help="train.channels_last=true (both loops)")
    p.add_argument("--tf32", action="store_true", help="train.tf32=true (both loops, and the matmul peak)")
    p.add_argument("--sections", default="step,data,measure,flops,switches", help="comma-separated subset")
    p.add_argument("--models", default="", help="only these models (small_cnn,vgg_quick,vgg16,dln)")
    p.add_argument("--repeats", type=int, default=0, help="override the repeats of sections 1-3")
    p.add_argument("--make-all", action="store_true", help="add the make-all wall times read from --results")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--data-root", default=None, help="Fashion-MNIST IDX files here instead of "
                   f"{FASHION_SYSTEM_DIR} (without either: random tensors of its shape)")
    p.add_argument("--out", default="results/bench/bench.csv")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    sizes = SIZES["tiny" if args.tiny else "full" if args.full else "default"]
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats, "measure_repeats": args.repeats,
                         "vgg16_repeats_cpu": args.repeats})
    torch.set_num_threads(args.threads)
    bench = Bench(args, sizes)
    info = machine(bench)
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    sections = {"step": section_step, "data": section_data, "measure": section_measure, "flops": section_flops,
                "switches": section_switches, "paper_fig1": section_paper_fig1}  # paper_fig1 only when asked
    wanted = [s for s in args.sections.split(",") if s]
    unknown = set(wanted) - set(sections) - {"make_all"}
    if unknown:
        print(f"error: unknown sections {sorted(unknown)}; valid: {sorted(sections) + ['make_all']}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        for name in sections:
            if name in wanted:
                sections[name](bench)
        if args.make_all or "make_all" in wanted:
            section_make_all(bench)
    finally:
        bench.close()
    info["load_avg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["bench_wall_s"] = f"{time.perf_counter() - t0:.1f}"
    report(bench, info, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
