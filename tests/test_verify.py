"""The committed reference and ``make verify`` (issue 14): export, redraw from the gzipped numbers alone,
verify a rerun (identical), a run with another learning rate (fails naming the metric and optim.lr),
and bad input (one line, nothing written). Runs: fig3_dln's sweep, shrunk to a 6-layer DLN for 30 steps."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

import experiments.train as entry
from bnstudy.claims import Results
from bnstudy.figures import load_experiment
from bnstudy.records import read_metrics
from bnstudy.reference import MANIFEST, SIZE_BUDGET, folder_size
from experiments.reference import main as reference_main
from experiments.verify import main as verify_main

pytestmark = pytest.mark.slow
TINY = ["experiment=fig3_dln", "scale=quick", "norm=batch", "model.num_layers=6", "data.num_train=256", "data.num_test=64",
        "train.batch_size=256", "train.steps=30", "train.log_every=5", "train.measure_every=10",
        "measure.ics.layers=[2,4]", "train.checkpoint_every=0", "progress=false"]


def sweep(results: Path, stamp: str, *extra: str) -> Path:
    """fig3_dln's sweep (norm=batch: its two lrs) into ``results/fig3_dln/quick/<stamp>``, in-process."""
    out = results / "fig3_dln" / "quick" / stamp
    argv = sys.argv
    sys.argv = ["train", "-m", *TINY, *extra, f"hydra.sweep.dir={out}"]
    try:
        entry.main()
    except SystemExit as e:
        assert not e.code, e
    finally:
        sys.argv = argv
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A reference exported from one sweep, and a results folder holding a rerun of that sweep."""
    root = tmp_path_factory.mktemp("verify")
    sweep(root / "first", "2026-01-01_00-00-00_1-a")
    ref = root / "reference"
    assert reference_main(["--results", str(root / "first"), "--out", str(ref), "--experiments", "fig3_dln"]) == 0
    sweep(root / "mine", "2026-01-02_00-00-00_1-a")  # the same sweep again, later
    return root, ref


def tree(path: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def test_reference_holds_gzipped_numbers_and_redraws_without_training(made):
    root, ref = made
    manifest = json.loads((ref / MANIFEST).read_text())
    assert manifest["seeds"] == [0] and len(manifest["experiments"]["fig3_dln"]) == 2
    run = ref / manifest["experiments"]["fig3_dln"][0]
    assert sorted(p.name for p in run.iterdir()) == ["metrics.csv.gz", "summary.json"]
    original = root / "first" / manifest["experiments"]["fig3_dln"][0]
    assert gzip.decompress((run / "metrics.csv.gz").read_bytes()) == (original / "metrics.csv").read_bytes()
    assert json.loads((run / "summary.json").read_text())["environment"]["code"]["commit"]
    # what make figures / make report read: the same frames as the original CSVs
    runs = load_experiment(ref, "fig3_dln", "quick")
    assert len(runs) == 2
    for r in runs:
        pd.testing.assert_frame_equal(r.metrics, read_metrics(root / "first" / r.path.relative_to(ref) / "metrics.csv"))
    claims_runs = Results(ref, "quick").runs("fig3_dln")  # what make report reads
    assert len(claims_runs) == 2 and all(len(r.metrics) == len(read_metrics(r.path / "metrics.csv")) > 10
                                         for r in claims_runs)
    assert (ref / "figures" / "fig3_quick.png").stat().st_size > 1000 and (ref / "REPORT.md").exists()
    assert "| 2 | fig3_dln |" in (ref / "REPORT.md").read_text()  # the provenance table
    assert folder_size(ref) < SIZE_BUDGET


def test_verify_passes_on_a_rerun_of_the_reference(made, capsys):
    root, ref = made
    assert verify_main(["--results", str(root / "mine"), "--reference", str(ref)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["experiment", "run", "metric", "reference", "yours", "difference", "verdict"]
    rows = [line.split() for line in out.splitlines()[1:] if line.strip().startswith("fig3_dln")]
    assert len(rows) == 2 * 6  # status, train_loss, ics_l2/ics_cos at layers 2 and 4, per run
    assert all(r[-1] in ("ok", "identical") for r in rows)
    assert "12 values in 2 runs match the reference (10 identical" in out


def test_verify_fails_on_another_learning_rate_naming_metric_and_cause(made, tmp_path, capsys):
    root, ref = made
    results = tmp_path / "results"
    shutil.copytree(root / "mine", results)
    sweep(results, "2026-01-03_00-00-00_1-a", "optim.lr=1e-5")  # newest: one job at lr 1e-5
    assert verify_main(["--results", str(results), "--reference", str(ref)]) == 1
    out = capsys.readouterr().out
    loss = [line.split() for line in out.splitlines() if " train_loss " in line]
    assert len(loss) == 1 and loss[0][:3] == ["fig3_dln", "batch", "lr=1e-05"] and loss[0][-1] == "DIFFERS"
    ref_loss, my_loss = float(loss[0][5]), float(loss[0][6])
    assert my_loss < 0.7 * ref_loss  # ten times the lr: far lower loss after 30 steps
    assert "fig3_dln batch lr=1e-05 seed=0 (vs reference batch lr=1e-06 seed=0): optim.lr 1e-06 -> 1e-05" in out


@pytest.mark.parametrize("bad", ["missing", "partial", "unknown experiment", "corrupt summary"])
def test_bad_input_is_one_line_and_writes_nothing(made, tmp_path, capsys, bad):
    root, ref = made
    results, reference = tmp_path / "results", tmp_path / "reference"
    shutil.copytree(root / "mine", results)
    shutil.copytree(ref, reference)
    args = ["--results", str(results), "--reference", str(reference)]
    if bad == "missing":
        shutil.rmtree(reference)
        want = f"error: no reference at {reference} (reference.json missing): restore it with git checkout"
    elif bad == "partial":
        gone = next(reference.rglob("metrics.csv.gz"))
        gone.unlink()
        want = f"error: reference {reference} is incomplete: {gone} is missing"
    elif bad == "unknown experiment":
        args += ["--experiments", "fig9"]
        want = f"error: unknown experiment fig9: the reference at {reference} has fig3_dln"
    else:
        broken = next(results.rglob("summary.json"))
        broken.write_text('{"status": "compl')
        want = f"error: {broken} is corrupt or unreadable (JSONDecodeError"
    before = tree(tmp_path)
    assert verify_main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(want) and captured.err.count("\n") == 1 and captured.out == ""
    assert tree(tmp_path) == before


def test_runs_pair_by_their_whole_config_not_only_norm_and_lr(tmp_path):
    """signal_cnn sweeps model.depth at one norm and lr: each run pairs with the reference run of its depth,
    and a band spans only the seeds of that depth (a self-comparison of its reference once failed on this)."""
    from experiments.verify import Side, band, match

    def side(depth, seed, value, who="ref"):
        s = Side(tmp_path / who / f"d{depth}s{seed}", {"config": {"norm": {"name": "none"}, "optim": {"lr": 0.1},
                                                              "seed": seed, "model": {"depth": depth}}})
        cache[s.path] = {"sig_rank@1": value}
        return s

    cache: dict = {}
    refs = [side(d, seed, d * 10 + seed) for d in (11, 13, 16, 19) for seed in (0, 1)]
    for d in (11, 13, 16, 19):
        mine = side(d, 1, 0.0, who="mine")
        ref = match(mine, refs)
        assert ref.summary["config"]["model"]["depth"] == d and ref.summary["config"]["seed"] == 1
        assert band(ref, refs, "sig_rank@1", cache) == (d * 10, d * 10 + 1)
