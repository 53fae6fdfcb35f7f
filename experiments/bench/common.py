"""What the sections share: sizes, the models timed, the Bench (device, data, configs, CSV rows), the
suite's loop timed from inside ``Trainer.run`` and the bare hand-written loop it is compared with."""

from __future__ import annotations

import contextlib
import copy
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

import bnstudy.config  # noqa: F401  (registers the structured configs)
import bnstudy.train as train_mod
from bnstudy.build import build
from bnstudy.config import DataConf
from bnstudy.data import FASHION_SYSTEM_DIR, BatchSampler, TensorData, load_dataset
from bnstudy.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
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
    # make modern's two models at their quick size (tiny: narrower still), normalised and not: SkipInit, since without
    # a norm both diverge at lr 0.1 within a few steps (the suite then stops; a bare loop would time NaN arithmetic)
    resnet = ["model=resnet", "data=fashion_mnist", f"model.width={0.125 if sizes.tiny else 0.25}"]
    vit = ["model=vit", "data=fashion_mnist", "model.patch=7", f"model.dim={16 if sizes.tiny else 32}",
           f"model.depth={2 if sizes.tiny else 6}"]
    cases += [Case(f"resnet_quick/{n}", resnet + [f"norm={n}"], "fmnist") for n in ("skipinit", "batch")]
    cases += [Case(f"vit_quick/{n}", vit + [f"norm={n}"], "fmnist") for n in ("skipinit", "layer")]
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
    out_dir = bench.out_dir()
    trainer = Trainer(cfg, out_dir, data=data)
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
    shutil.rmtree(out_dir, ignore_errors=True)
    return loop, total - loop, steps


def bare_run(bench: Bench, cfg, data: TensorData, steps: int,
             after_backward: Callable[[dict], None] | None = None, layers: list[int] = ()) -> float:
    """Seconds for ``steps`` steps of a hand-written loop doing the same work as the suite's step.

    ``after_backward(captured)``, if given, runs after every backward on the outputs of the probes of
    blocks ``layers`` (kept by forward hooks), for a measurement's floor."""
    t = cfg.train
    parts = build(cfg, data)  # the process-wide switches, model, optimiser and loss the suite's run builds
    model, opt, loss_fn = parts.model, parts.optimizer, parts.loss_fn
    channels_last = t.channels_last and data.x_train.dim() == 4
    captured: dict = {}
    if after_backward is not None:
        for i in (i for i in layers if i <= len(model.blocks)):  # a floor may name every block there may be
            model.block(i).probe.register_forward_hook(lambda m, i_, o, i=i: captured.__setitem__(i, o.detach()))
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



class Timer:
    """``with Timer(bench) as t: ...``; ``t.s`` the seconds, the device synced at both ends."""

    def __init__(self, bench: Bench):
        self.bench = bench

    def __enter__(self):
        self.bench.sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.bench.sync()
        self.s = time.perf_counter() - self.t0

