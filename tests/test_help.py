"""Help that tells: what --help lists, the DLN's data error, an interrupted run's step and accuracy,
and the make variables the targets honour."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bnstudy.runs as runs
from bnstudy.config import (ActivationsConf, Config, DataConf, DLNConf, ICSConf, LandscapeConf, LossChangeConf,
                            MeasureConf, NormConf, OptimConf, SmallCNNConf, TrainConf)
from bnstudy.data import TensorData
from bnstudy.models import build_model
from bnstudy.train import Trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_help_lists_options_not_schemas():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "experiments.train", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    groups = dict(line.split(": ", 1) for line in out.stdout.split("== Config ==")[0].splitlines()
                  if ": " in line and not line.startswith(("Compose", "train is")))
    assert groups["model"].split(", ")[:3] == ["dln", "resnet", "small_cnn"] and "fig1" in groups["experiment"]
    assert "batch" in groups["norm"].split(", ") and "sgd" in groups["optim"]
    assert not any(o.endswith("_schema") or o.startswith("_") for v in groups.values() for o in v.split(", "))
    assert "== Config ==" in out.stdout and "lr: 0.1" in out.stdout  # the rest of Hydra's help stays


def test_dln_on_images_names_the_data_to_use():
    with pytest.raises(ValueError, match=r"model=dln needs vector data.*add data=gaussian, or run a DLN "
                                         r"experiment \(experiment=fig3_dln"):
        build_model(DLNConf(), NormConf(), (1, 28, 28), 10)
    with pytest.raises(ValueError, match=r"set data.dim=10 or model.dim=7"):
        build_model(DLNConf(), NormConf(), (7,), None)


def _tiny(steps: int) -> Config:
    off = dict(every=0)
    return Config(
        model=SmallCNNConf(channels=[3, 4], kernel_size=3), norm=NormConf(name="batch"), data=DataConf(),
        optim=OptimConf(lr=0.05),
        measure=MeasureConf(activations=ActivationsConf(**off), ics=ICSConf(**off), landscape=LandscapeConf(**off),
                            loss_change=LossChangeConf(**off)),
        train=TrainConf(steps=steps, batch_size=12, log_every=5, eval_every=10, eval_size=16, eval_batch_size=16,
                        checkpoint_every=10, device="cpu"),
        progress="false", name="tiny")


def test_an_interrupted_run_shows_its_checkpoint_step_and_accuracy(tmp_path, monkeypatch, capsys):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 1, 10, 10, generator=g), torch.randint(0, 3, (48,), generator=g)
    data = TensorData("synthetic", x, y, x[:16].clone(), y[:16].clone(), 3)
    trainer = Trainer(_tiny(40), tmp_path / "tiny" / "none" / "run", data=data)
    evals = trainer.eval_rows

    def eval_then_stop(step):  # Ctrl-C at step 30, after the checkpoints at 10, 20 and 30
        if step == 30:
            raise KeyboardInterrupt
        return evals(step)

    monkeypatch.setattr(trainer, "eval_rows", eval_then_stop)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    runs.main([str(tmp_path), "--all"])
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    assert "final_test_acc" in header and "interrupted" in row
    cells = dict(zip(header.split(), row.split()))
    assert int(cells["step"]) == 30  # where a resume starts, not 0
    assert 0.0 <= float(cells["final_test_acc"]) <= 1.0  # the eval at step 20, the last before the checkpoint


def test_make_quick_honours_seeds():
    out = subprocess.run(["make", "-n", "quick", "SEEDS=3"], cwd=ROOT, capture_output=True, text=True)
    train = [line for line in out.stdout.splitlines() if "experiments.train" in line]
    assert len(train) == 1 and "seed=0,1,2" in train[0], out.stdout


def test_make_help_lists_the_variables():
    out = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True)
    for var in ("SCALE", "SEEDS", "ARGS", "LAUNCHER"):
        assert re.search(rf"^\s+{var}\s+\S", out.stdout, re.M), out.stdout


@pytest.mark.parametrize("target, make_vars, launcher", [
    ("fig1", [], True),  # quick: single-thread CNN runs, two at a time
    ("fig1", ["SCALE=paper"], False),  # paper: every core for one run
    ("fig1", ["LAUNCHER="], False),
    ("fig1", ["ARGS=train.threads=2"], False),  # two 2-thread runs would share 2 cores badly
    ("fig3_dln", ["SCALE=paper"], True),  # the DLN is single-threaded at every scale
    ("fig3_dln", ["ARGS=train.threads=2"], False),
])
def test_make_runs_single_thread_runs_side_by_side(target, make_vars, launcher):
    out = subprocess.run(["make", "-n", target, *make_vars], cwd=ROOT, capture_output=True, text=True)
    train = [line for line in out.stdout.splitlines() if "experiments.train" in line]
    assert len(train) == 1 and ("hydra/launcher=parallel" in train[0]) == launcher, out.stdout


def test_quick_and_tiny_runs_are_single_threaded():
    """One fixed thread count below paper scale: the same numbers on any core count."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        threads = {scale: compose("config", overrides=[f"scale={scale}"]).train.threads
                   for scale in ("quick", "tiny", "paper")}
    assert threads == {"quick": 1, "tiny": 1, "paper": 0}
