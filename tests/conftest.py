"""Shared fixtures: composed configs (``compose_config``) and fake runs written through the suite's own
writers (``write_fake_run``: ``MetricsWriter`` and ``write_json_atomic``, so a fake run's files are exactly
what a real run's are, rows in step order as the loop writes them).

    def test_x(fake_run, tmp_path):
        fake_run(tmp_path / "fig1/quick/sweep/0", [(10, "train_acc", None, None, None, 0.9)],
                 fake_config("fig1", norm="batch", lr=0.1))
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Iterable, Optional

import pytest

import experiments.train as entry
from bnstudy.records import MetricsWriter, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.pop("BNSTUDY_RESUME", None)  # set by make targets for their resume line: never by the tests' caller


def fake_config(name: str = "fig1", *, scale: str = "quick", norm: str = "none", lr: float = 0.1, seed: int = 0,
                model: str = "vgg_quick", data: str = "fashion_mnist", steps: int = 100, **train) -> dict:
    """The identity part of a run's config as ``summary.json`` holds it (nested, like the composed config)."""
    return {"name": name, "scale": scale, "seed": seed, "model": {"name": model}, "norm": {"name": norm},
            "data": {"name": data}, "optim": {"name": "sgd", "lr": lr}, "train": {"steps": steps, **train}}


def write_fake_run(run_dir: Path, rows: Iterable[tuple], config: dict, *, status: str = "completed",
                   step: Optional[int] = None, final: Optional[dict] = None) -> Path:
    """A run dir as ``bnstudy.train`` leaves it: ``metrics.csv`` (rows ``(step, metric, layer, unit, eta,
    value)``, written in step order by ``MetricsWriter``) and ``summary.json`` (``write_json_atomic``).
    ``step``: where the run stopped (default: the last row's step)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r[0])  # stable: the loop writes a step's rows together
    writer = MetricsWriter(run_dir / "metrics.csv", truncate_to=0)
    writer.write(rows)
    writer.close()
    stop = step if step is not None else (rows[-1][0] if rows else 0)
    summary = {"status": status, "step": stop, "config": copy.deepcopy(config), "out_dir": str(run_dir),
               "resumed_from": None, "wall_time_s": 1.0, "final": final or {}}
    write_json_atomic(run_dir / "summary.json", summary)
    return run_dir


def pytest_configure(config):
    config.addinivalue_line("markers", "conf_spec: judge runs against the experiments as conf/ composes them "
                            "(bnstudy.canonical.spec) instead of taking every run as canonical")


@pytest.fixture(autouse=True)
def _every_run_canonical(request, monkeypatch):
    """Fake runs hold only the identity part of a config (``fake_config``), which no composed experiment
    equals; tests of claims, figures and readers take every run as canonical. Tests of the canonical/
    exploratory split itself are marked ``conf_spec`` and compare with conf/ as the suite does."""
    if request.node.get_closest_marker("conf_spec") is None:
        import bnstudy.canonical

        anything = lambda experiment, scale, conf_dir=None: bnstudy.canonical.Spec(experiment, scale, {}, {(): {}})
        monkeypatch.setattr(bnstudy.canonical, "spec", anything)


def sweeping(monkeypatch, swept: dict[str, dict[str, tuple]]) -> None:
    """Fake runs of the named experiments are canonical at every value their sweep lists (``{experiment: {key:
    values}}``; other experiments sweep nothing), as the autouse fixture takes them, but told apart by those
    keys as conf/'s sweep tells its points apart (signal_cnn's depths, tut_init's init scales)."""
    import collections

    import bnstudy.canonical

    spec = lambda experiment, scale, conf_dir=None: bnstudy.canonical.Spec(
        experiment, scale, dict(swept.get(experiment, {})), collections.defaultdict(dict))
    monkeypatch.setattr(bnstudy.canonical, "spec", spec)


@pytest.fixture
def one_thread(monkeypatch):
    """torch on one thread for the test (tiny tensors; the CPU is shared), also for runs with
    ``train.threads=0`` (PyTorch's default, ``bnstudy.build.PYTORCH_THREADS``); the count put back after."""
    import torch

    import bnstudy.build

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(bnstudy.build, "PYTORCH_THREADS", 1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fake_run():
    """``write_fake_run``: a finished run written through the suite's writers."""
    return write_fake_run


@pytest.fixture
def compose_config():
    """``compose_config(*overrides)``: the composed config (Hydra's compose API, the suite's conf/)."""
    from hydra import compose, initialize_config_dir

    import bnstudy.config  # noqa: F401  (registers the schemas)

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


def call_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """The training entry point in-process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["train", *args])
    try:
        entry.main()
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def one_line(err: str) -> bool:
    """An error the suite reports: one line, no traceback."""
    return err.count("\n") == 1 and "Traceback" not in err


def killed_after_checkpoint(monkeypatch, make) -> None:
    """Run ``make()`` (a Trainer) until its first checkpoint is saved, then stop it as Ctrl-C would."""
    from bnstudy.train import Trainer

    save = Trainer.save_checkpoint

    def save_then_die(self, *a, **k):
        save(self, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        make().run()
    monkeypatch.undo()
