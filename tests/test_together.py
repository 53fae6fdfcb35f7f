"""One trajectory, several run folders (``Trainer(also=...)``, ``experiments.together``): each folder must be
byte for byte what its run alone writes, resume as one, and no measurement may be computed twice."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bnstudy.config import (ActivationsConf, Config, ConfigError, DataConf, ICSConf, LandscapeConf, LossChangeConf,
                            MeasureConf, NormConf, OptimConf, SmallCNNConf, TrainConf)
from bnstudy.data import TensorData
from bnstudy.measures import schedule
from bnstudy.build import trajectory_key
from bnstudy.train import Trainer
from conftest import killed_after_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _data() -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 1, 10, 10, generator=g)
    y = torch.randint(0, 3, (48,), generator=g)
    return TensorData("synthetic", x, y, x[:16].clone(), y[:16].clone(), 3)


def _config(name: str, measure: MeasureConf, norm: str = "noisy_batch", steps: int = 6, **train) -> Config:
    return Config(
        model=SmallCNNConf(channels=[3, 4], kernel_size=3), norm=NormConf(name=norm), data=DataConf(),
        optim=OptimConf(lr=0.05, momentum=0.9), measure=measure, name=name, progress="false",
        train=TrainConf(**{**dict(steps=steps, batch_size=12, log_every=1, eval_every=2, eval_size=16,
                                  eval_batch_size=16, checkpoint_every=0, device="cpu"), **train}))


# Three runs of one trajectory, as fig1 / fig3 / fig4 measure it: activations on some layers, gradient ICS,
# the landscape (twice with one config: computed once) and the loss change; noisy BN draws from torch's RNG.
def _measures(fix_noise: bool = True) -> list[MeasureConf]:
    return [
        MeasureConf(activations=ActivationsConf(every=2, layers=[1], units=2, samples=4, quantiles=[0.5]),
                    fix_noise=fix_noise),
        MeasureConf(ics=ICSConf(every=3, layers=[1, 2]), landscape=LandscapeConf(every=2, points=2),
                    fix_noise=fix_noise),
        MeasureConf(landscape=LandscapeConf(every=2, points=2), loss_change=LossChangeConf(every=1),
                    activations=ActivationsConf(every=1, layers=[2], units=1, samples=4, shift="successive"),
                    fix_noise=fix_noise),
    ]


def _alone_and_together(tmp_path: Path, measures: list[MeasureConf], **train) -> tuple[list[Path], list[Path]]:
    cfgs = [_config(f"exp{i}", m, **train) for i, m in enumerate(measures)]
    alone = [tmp_path / "alone" / str(i) for i in range(len(cfgs))]
    for cfg, out in zip(cfgs, alone):
        Trainer(cfg, out, data=_data()).run()
    shared = [tmp_path / "together" / str(i) for i in range(len(cfgs))]
    Trainer(cfgs[0], shared[0], data=_data(), also=[(c, d, None) for c, d in zip(cfgs[1:], shared[1:])]).run()
    return alone, shared


@pytest.mark.parametrize("fix_noise", [True, False])
def test_each_folder_is_byte_for_byte_its_run_alone(tmp_path, fix_noise):
    alone, shared = _alone_and_together(tmp_path, _measures(fix_noise))
    for a, s in zip(alone, shared):
        assert (s / "metrics.csv").read_bytes() == (a / "metrics.csv").read_bytes()
        assert (s / "metrics.csv").stat().st_size > 1000  # measurements' rows, not just the loop's
        ref, got = torch.load(a / "final.pt"), torch.load(s / "final.pt")
        assert all(torch.equal(ref[k], got[k]) for k in ref)
    import json

    summary = json.loads((shared[1] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["config"]["name"] == "exp1"
    assert summary["trained_with"] == [str(shared[0]), str(shared[2])]
    assert "trained_with" not in json.loads((alone[1] / "summary.json").read_text())


def test_an_entry_with_one_config_in_several_runs_is_computed_once(tmp_path, monkeypatch):
    from bnstudy.measures.landscape import Landscape

    calls = []
    original = Landscape.after_backward

    def counted(self, s):
        calls.append(s.step)
        return original(self, s)

    monkeypatch.setattr(Landscape, "after_backward", counted)
    measures = _measures()
    cfgs = [_config(f"exp{i}", m) for i, m in enumerate(measures)]
    Trainer(cfgs[1], tmp_path / "1", data=_data(), also=[(cfgs[2], tmp_path / "2", None)]).run()
    assert calls == [0, 2, 4]  # every 2 of 6 steps, once though two runs measure it


def test_runs_of_other_trajectories_are_refused(tmp_path):
    a = _config("a", MeasureConf())
    b = dataclasses.replace(_config("b", MeasureConf()), optim=OptimConf(lr=0.1, momentum=0.9))
    assert trajectory_key(a) == trajectory_key(_config("c", _measures()[1]))
    with pytest.raises(ConfigError, match="cannot share the trajectory"):
        Trainer(a, tmp_path / "a", data=_data(), also=[(b, tmp_path / "b", None)])


@pytest.mark.parametrize("lose_one", [False, True])
def test_a_killed_shared_run_resumes_byte_for_byte(tmp_path, monkeypatch, lose_one):
    """Killed after its checkpoint at step 3 (and, lose_one: one folder's checkpoint gone, as if killed
    between two folders' writes): resumed together, or each folder on its own, the CSVs are the runs'."""
    measures = _measures()
    cfgs = [_config(f"exp{i}", m, checkpoint_every=3) for i, m in enumerate(measures)]
    alone = tmp_path / "alone"
    for i, cfg in enumerate(cfgs):
        Trainer(cfg, alone / str(i), data=_data()).run()
    dirs = [tmp_path / "shared" / str(i) for i in range(3)]

    def make():
        return Trainer(cfgs[0], dirs[0], data=_data(), also=[(c, d, None) for c, d in zip(cfgs[1:], dirs[1:])])

    killed_after_checkpoint(monkeypatch, make)
    if lose_one:
        (dirs[1] / "checkpoint.pt").unlink()
    trainer = make()
    trainer.run()
    assert [s["resumed_from"] for s in trainer.summaries] == ([3, None, 3] if lose_one else [3, 3, 3])
    for i, d in enumerate(dirs):
        assert (d / "metrics.csv").read_bytes() == (alone / str(i) / "metrics.csv").read_bytes()
        assert not (d / "checkpoint.pt").exists()


def test_a_finished_folder_is_left_alone(tmp_path):
    measures = _measures()
    cfgs = [_config(f"exp{i}", m) for i, m in enumerate(measures)]
    Trainer(cfgs[0], tmp_path / "0", data=_data()).run()
    before = (tmp_path / "0" / "metrics.csv").stat().st_mtime_ns
    trainer = Trainer(cfgs[0], tmp_path / "0", data=_data(), also=[(cfgs[1], tmp_path / "1", None)])
    trainer.run()
    assert (tmp_path / "0" / "metrics.csv").stat().st_mtime_ns == before
    assert [s["status"] for s in trainer.summaries] == ["completed", "completed"]
    assert "trained_with" not in trainer.summaries[1]  # it trained alone


def test_shared_entries_never_share_an_entry_that_draws_unreplayed_noise():
    from bnstudy.measures.ics import GradientICS

    pool = schedule.SharedEntries()
    conf = ICSConf(every=1, layers=[1])
    assert pool.get(GradientICS, conf, None, fix_noise=True) is pool.get(GradientICS, ICSConf(every=1, layers=[1]), None, True)
    assert pool.get(GradientICS, conf, None, fix_noise=False) is not pool.get(GradientICS, conf, None, False)
    assert pool.get(GradientICS, conf, None, True) is not pool.get(GradientICS, ICSConf(every=2, layers=[1]), None, True)


@pytest.mark.slow
def test_together_lays_out_and_writes_what_make_fig_targets_write(tmp_path):
    """experiments.together on two tiny DLN experiments (4 jobs, 3 trajectories) against the entry point run
    per experiment: the same folders, the same CSVs byte for byte, the sweeps' records."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    args = ["--scale", "tiny", "--seeds", "0", "--run-id", "r"]
    out = subprocess.run([sys.executable, "-m", "experiments.together", "fig3_dln", "fig4_dln", *args,
                          "--results", str(tmp_path / "together"), "--", "train.steps=60"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "6 jobs of 2 experiment(s) follow 4 training trajectories" in out.stderr
    for e in ("fig3_dln", "fig4_dln"):
        subprocess.run([sys.executable, "-m", "experiments.train", "-m", f"experiment={e}", "scale=tiny", "seed=0",
                        f"hydra.sweep.dir={tmp_path / 'alone' / e / 'tiny' / 'r'}", "train.steps=60"],
                       cwd=ROOT, env=env, capture_output=True, check=True)
    csvs = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone").rglob("metrics.csv"))
    assert len(csvs) == 6
    for rel in csvs:
        assert (tmp_path / "together" / rel).read_bytes() == (tmp_path / "alone" / rel).read_bytes()
    # Hydra's records (multirun.yaml, each job's .hydra/): the same text but for the results folder's path
    records = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone").rglob("*.yaml"))
    assert len(records) == 2 + 6 * 3
    assert records == sorted(p.relative_to(tmp_path / "together") for p in (tmp_path / "together").rglob("*.yaml"))
    for rel in records:
        text = {side: (tmp_path / side / rel).read_text().replace(str(tmp_path / side), "RESULTS")
                for side in ("together", "alone")}
        assert text["together"] == text["alone"], rel


def test_together_refuses_a_launcher(tmp_path):
    from experiments.together import main

    assert main(["fig1", "--run-id", "x", "--results", str(tmp_path), "--", "hydra/launcher=parallel"]) == 2
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_group_that_fails_does_not_stop_the_others(tmp_path):
    """No Fashion-MNIST where data.root points: the CNN groups fail with the loader's one-line fix, the DLN
    groups (Gaussian data) finish, the exit status is 1 and the summary names the failed folders."""
    out = subprocess.run([sys.executable, "-m", "experiments.together", "fig4_cnn", "fig4_dln", "--scale", "tiny",
                          "--run-id", "x", "--results", str(tmp_path), "--", f"data.root={tmp_path / 'none'}",
                          "train.steps=20"], cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"},
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "4 job(s)" in out.stderr and "2 finished" in out.stderr
    assert f"{tmp_path / 'fig4_cnn' / 'tiny' / 'x' / '0'}: Fashion-MNIST not found" in out.stderr
    assert "resume: the same command (--run-id x)" in out.stderr
    import json

    for job in ("0", "1"):
        assert json.loads((tmp_path / "fig4_dln/tiny/x" / job / "summary.json").read_text())["status"] == "completed"
        assert not (tmp_path / "fig4_cnn/tiny/x" / job / "summary.json").exists()


def test_run_groups_multi_thread_here_then_single_thread_longest_first(monkeypatch):
    """Multi-thread groups (paper scale) run one by one in this process; single-thread groups (every run below
    paper scale) go to the workers, the costliest first (here one worker: in this process, in that order)."""
    from types import SimpleNamespace

    import experiments.together as together

    ran = []
    monkeypatch.setattr(together, "train_group", lambda g: ran.append(g[0][1]) or ([(g[0][1], "boom")] if g[0][1] == "short" else []))
    monkeypatch.setattr(together, "estimated_cost", lambda g: g[0][0].cost)
    job = lambda threads, cost, name: [(SimpleNamespace(train=SimpleNamespace(threads=threads), cost=cost), name, None)]
    groups = [job(1, 1.0, "short"), job(0, 9.0, "multi"), job(1, 5.0, "long"), job(1, 3.0, "middle")]
    assert together.run_groups(groups, workers=1) == [("short", "boom")]
    assert ran == ["multi", "long", "middle", "short"]
