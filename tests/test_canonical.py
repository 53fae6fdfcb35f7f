"""Which runs a verdict is about: canonical runs (the experiment as conf/ composes it) against exploratory ones,
and the committed reference kept apart from your runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bnstudy import canonical
from bnstudy.runs import RunSet, is_reference, iter_run_dirs
from conftest import CONF, ROOT, write_fake_run

pytestmark = pytest.mark.conf_spec
REFERENCE = ROOT / "results" / "reference" / "quick"


def composed(*overrides: str) -> dict:
    """A run's config exactly as ``bnstudy.train`` records it in summary.json."""
    import bnstudy.config  # noqa: F401

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return OmegaConf.to_container(OmegaConf.structured(OmegaConf.to_object(cfg)))


def test_every_committed_reference_run_is_canonical():
    summaries = sorted(REFERENCE.glob("*/quick/*/*/summary.json"))
    assert len(summaries) > 100
    for path in summaries:
        config = json.loads(path.read_text())["config"]
        spec = canonical.spec(config["name"], config["scale"])
        assert spec.differences(canonical.flat_settings(config)) == [], path


def test_a_changed_setting_or_an_lr_outside_the_sweep_is_named():
    spec = canonical.spec("fig1", "quick")
    run = composed("experiment=fig1", "scale=quick", "norm=batch", "optim.lr=0.5", "seed=3")
    assert spec.differences(canonical.flat_settings(run)) == []  # the seed is not a setting
    run["train"]["steps"], run["optim"]["lr"] = 300, 0.3
    assert spec.differences(canonical.flat_settings(run)) == [
        "train.steps 300 (not 800)", "optim.lr 0.3 not in the experiment (0.1, 0.5)"]
    free = composed("experiment=fig1", "scale=quick", "train.threads=2", "progress=false", "data.root=/elsewhere")
    assert spec.differences(canonical.flat_settings(free)) == []  # settings that change no number


def test_another_norm_is_named_once_not_by_each_of_its_settings():
    spec = canonical.spec("fig1", "quick")
    run = composed("experiment=fig1", "scale=quick", "norm=noisy_batch")
    assert spec.differences(canonical.flat_settings(run)) == ["norm noisy_batch not in the experiment (none, batch)"]
    tweaked = composed("experiment=fig2", "scale=quick", "norm=noisy_batch", "norm.noise_mu=1.0")
    diff = canonical.spec("fig2", "quick").differences(canonical.flat_settings(tweaked))
    assert diff == ["norm.noise_mu 1 (not 0.5)"]


@pytest.mark.parametrize("experiment", ["signal_cnn", "tut_momentum", "tut_init", "tut_batch", "fig3_dln"])
def test_substituted_sweep_values_equal_a_full_compose(experiment):
    """A swept value that no interpolation reads is substituted, not composed: the result must be what Hydra
    composes (tut_momentum's lr and steps read train.batch_size, so its points are composed whole)."""
    spec = canonical.spec(experiment, "quick")
    for point in list(spec.points)[:: max(1, len(spec.points) // 3)]:
        overrides = [f"{k}={v}" for k, v in zip(spec.keys, point)]
        full = canonical.flat_settings(composed(f"experiment={experiment}", "scale=quick", *overrides))
        assert spec.points[point] == full, (experiment, point)


def test_no_such_experiment_has_no_spec():
    assert canonical.spec("not_an_experiment", "quick") is None


def _run(root: Path, name: str, config: dict, sweep: str, job: int) -> Path:
    rows = [(s, "train_acc", None, None, None, 0.5) for s in range(10, 101, 10)]
    return write_fake_run(root / name / "quick" / sweep / str(job), rows, config)


def test_runs_of_other_settings_are_exploratory_and_the_reference_is_not_yours(tmp_path):
    results = tmp_path / "results"
    ref = results / "reference" / "quick"
    ref.mkdir(parents=True)
    (results / "reference" / ".bnstudy-reference").write_text("the committed reference\n")
    canon = [composed("experiment=fig1", "scale=quick", f"norm={n}", f"optim.lr={lr}", "seed=0")
             for n in ("none", "batch") for lr in (0.1, 0.5)]
    for j, cfg in enumerate(canon):
        _run(ref, "fig1", cfg, "2020-01-01_ref", j)  # the reference: 4 canonical runs
        _run(results, "fig1", cfg, "2024-01-01_mine", j)  # yours: the same 4
    short = [composed("experiment=fig1", "scale=quick", f"norm={n}", "optim.lr=0.3", "train.steps=300") for n in
             ("none", "batch")]
    for j, cfg in enumerate(short):
        _run(results, "fig1", cfg, "2024-02-01_explore", j)

    assert is_reference(ref / "fig1") and not is_reference(results / "fig1")
    assert all("reference" not in str(p) for p in iter_run_dirs(results))
    R = RunSet(results, "quick")
    e = R.experiment("fig1")
    assert e.canonical and len(e.runs) == 4 and all("2024-01-01_mine" in str(r.path) for r in e.runs)
    (other,) = e.others
    assert len(other.runs) == 2 and other.exploratory == (
        "train.steps 300 (not 800), optim.lr 0.3 not in the experiment (0.1, 0.5)")
    assert "exploratory" in e.describe() or "judged apart" in " ".join(e.notes)
    # only the exploratory sweep: it is what the experiment draws, labelled
    shutil.rmtree(results / "fig1" / "quick" / "2024-01-01_mine")
    e = RunSet(results, "quick").experiment("fig1")
    assert not e.canonical and len(e.runs) == 2 and "exploratory: train.steps 300 (not 800)" in e.describe()
    # the reference is read when named, and only then
    assert len(RunSet(ref, "quick").runs("fig1")) == 4


def test_clean_results_never_touches_the_reference(tmp_path, capsys):
    from experiments.clean_results import main

    results = tmp_path / "results"
    (results / "reference").mkdir(parents=True)
    (results / "reference" / ".bnstudy-reference").write_text("the committed reference\n")
    cfg = {"name": "fig1", "scale": "quick", "seed": 0, "norm": {"name": "none"}, "optim": {"lr": 0.1}}
    ref = _run(results / "reference" / "quick", "fig1", cfg, "2020-01-01_ref", 0)
    mine = _run(results, "fig1", cfg, "2024-01-01_mine", 0)
    assert main([str(results / "reference"), "--yes"]) == 0  # named: refused, nothing deleted
    assert "the committed reference; bnstudy never deletes it" in capsys.readouterr().out
    assert (ref / "summary.json").exists()
    assert main([str(results), "--yes"]) == 0  # the results folder: yours go, the reference stays
    assert not mine.exists() and (ref / "summary.json").exists() and (ref / "metrics.csv").exists()


def test_no_run_trains_or_resumes_inside_the_reference(tmp_path):
    from bnstudy.records import RunError, RunFolder

    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "reference.json").write_text("{}")
    with pytest.raises(RunError, match="inside the committed reference"):
        RunFolder(tmp_path / "reference" / "fig1" / "quick" / "s" / "0").check({"seed": 0}, resume=True)
    assert RunFolder(tmp_path / "mine" / "0").check({"seed": 0}, resume=True) is None
