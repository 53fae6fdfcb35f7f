"""The loop's shape (issue 25): a summary's final values come from what the loop logged, not from its CSV read
back; a resume keeps the values logged before its checkpoint; folders that resume one at a time do not re-enter
the trainer; a Hydra job's config is checked once on its way in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import bnstudy.build
import bnstudy.records
import bnstudy.train
import experiments.train as entry
from bnstudy.config import ActivationsConf, Config, DataConf, MeasureConf, NormConf, OptimConf, SmallCNNConf, TrainConf
from bnstudy.data import TensorData
from bnstudy.records import read_metrics
from bnstudy.train import LOOP_METRICS, Trainer
from conftest import killed_after_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _data() -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 10, 10, generator=g)
    y = torch.randint(0, 3, (48,), generator=g)
    return TensorData("synthetic", x, y, x[:16].clone(), y[:16].clone(), 3)


def _config(name: str = "run", measure: MeasureConf | None = None, **train) -> Config:
    return Config(
        model=SmallCNNConf(channels=[3, 4], kernel_size=3), norm=NormConf(name="batch"), data=DataConf(),
        optim=OptimConf(lr=0.05, momentum=0.9), measure=measure or MeasureConf(), name=name, progress="false",
        train=TrainConf(**{**dict(steps=8, batch_size=12, log_every=2, eval_every=4, eval_size=16, eval_batch_size=16,
                                  checkpoint_every=0, device="cpu"), **train}))


def _last_logged(run_dir: Path) -> dict:
    df = read_metrics(run_dir / "metrics.csv")
    last = df.sort_values("step", kind="stable").groupby("metric")["value"].last()
    return {k: float(last[k]) for k in LOOP_METRICS if k in last}


def test_final_values_are_the_last_logged_ones_and_the_csv_is_not_read_back(tmp_path, monkeypatch):
    read = bnstudy.records.read_metrics

    def refuse(*a, **k):
        raise AssertionError("the loop read its CSV back")

    monkeypatch.setattr(bnstudy.records, "read_metrics", refuse)
    summary = Trainer(_config(), tmp_path, data=_data()).run()
    monkeypatch.setattr(bnstudy.records, "read_metrics", read)
    assert list(summary["final"]) == list(LOOP_METRICS)  # every loop metric, in this order
    assert summary["final"] == _last_logged(tmp_path)  # exactly the values in the CSV


def test_a_resumed_run_keeps_the_values_logged_before_its_checkpoint(tmp_path, monkeypatch):
    """Evaluated at step 0 only, checkpointed at step 2, diverged at the log row of step 4: the resumed process
    logs no eval, yet its final values are the uninterrupted run's (the eval's come with the checkpoint)."""
    cfg = _config(eval_every=100, log_every=4, checkpoint_every=2, divergence_loss=1e-9)
    alone = Trainer(cfg, tmp_path / "alone", data=_data()).run()
    assert alone["status"] == "diverged" and alone["step"] == 4 and "test_loss" in alone["final"]
    killed_after_checkpoint(monkeypatch, lambda: Trainer(cfg, tmp_path / "resumed", data=_data()))
    resumed = Trainer(cfg, tmp_path / "resumed", data=_data()).run()
    assert resumed["resumed_from"] == 2 and resumed["status"] == "diverged"
    assert resumed["final"] == alone["final"] == _last_logged(tmp_path / "alone")
    assert (tmp_path / "resumed" / "metrics.csv").read_bytes() == (tmp_path / "alone" / "metrics.csv").read_bytes()


def test_folders_resumed_one_at_a_time_do_not_reenter_the_trainer(tmp_path, monkeypatch):
    """Two folders of one trajectory, killed after their checkpoint, one checkpoint lost: each goes on alone,
    from a fresh build in the same ``run()`` (it used to construct and run a Trainer per folder), as its run
    alone would."""
    measures = [MeasureConf(), MeasureConf(activations=ActivationsConf(every=2, layers=[1], units=2, samples=4))]
    cfgs = [_config(f"exp{i}", m, checkpoint_every=3) for i, m in enumerate(measures)]
    for i, cfg in enumerate(cfgs):
        Trainer(cfg, tmp_path / "alone" / str(i), data=_data()).run()
    dirs = [tmp_path / "shared" / str(i) for i in range(2)]
    make = lambda: Trainer(cfgs[0], dirs[0], data=_data(), also=[(cfgs[1], dirs[1], None)])
    killed_after_checkpoint(monkeypatch, make)
    (dirs[0] / "checkpoint.pt").unlink()
    trainer = make()
    runs = []
    real_run = Trainer.run
    monkeypatch.setattr(Trainer, "run", lambda self: runs.append(self) or real_run(self))
    trainer.run()
    assert runs == [trainer]
    assert [s["resumed_from"] for s in trainer.summaries] == [None, 3]
    for i, d in enumerate(dirs):
        assert (d / "metrics.csv").read_bytes() == (tmp_path / "alone" / str(i) / "metrics.csv").read_bytes()


DLN = ["model=dln", "model.num_layers=3", "data=gaussian", "data.num_train=64", "data.num_test=64",
       "train.batch_size=16", "train.steps=4", "train.log_every=2", "train.eval_every=2", "train.threads=1",
       "progress=false", "optim.lr=1e-4", "train.deterministic=false"]


def test_a_hydra_jobs_config_is_checked_once(tmp_path, monkeypatch, capsys):
    """The preflight checks every job's config before Hydra writes anything; the job trusts that check (it was
    checked twice more on its way in: check_keys in the task function, validate in the trainer)."""
    calls = {"check_keys": 0, "validate": 0}

    def counted(name, module, original):
        def spy(*a, **k):
            calls[name] += 1
            return original(*a, **k)

        monkeypatch.setattr(module, name, spy)

    counted("check_keys", bnstudy.build, bnstudy.build.check_keys)
    counted("validate", bnstudy.build, bnstudy.build.validate)
    counted("validate", bnstudy.train, bnstudy.train.validate)
    monkeypatch.setattr(sys, "argv", ["train", "-m", *DLN, "seed=0,1", f"hydra.sweep.dir={tmp_path}"])
    entry.main()
    assert calls == {"check_keys": 2, "validate": 2}  # once per job
    assert all((tmp_path / job / "summary.json").is_file() for job in ("0", "1"))
