"""The committed reference and ``make verify`` (issues 14, 24, 27).

Real runs (slow: fig3_dln's sweep, shrunk to a 6-layer DLN for 30 steps): export, redraw from the gzipped
numbers alone, verify a rerun (identical), a run with another learning rate (fails naming the metric and
optim.lr), bad input (one line, nothing written). Fake runs (fast, ``write_fake_run``): the answer comes
first; chaotic per-step metrics are compared by their rule (the median over the later half of the run);
a changed lr, norm or loss fails naming the cause; a missing run is never a match; the sweep compared is
the one figures read; claims are compared verdict by verdict."""

from __future__ import annotations

import gzip
import json
import os
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
from tests.conftest import fake_config, write_fake_run

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_verify_passes_on_a_rerun_of_the_reference(made, capsys):
    root, ref = made
    assert verify_main(["--results", str(root / "mine"), "--reference", str(ref), "--table"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Did you reproduce it? Yes. You ran 1 of the reference's 1 experiments at quick scale "
                          "(2 runs, seed 0; ")
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("fig3_dln batch")]
    assert len(rows) == 2 * 6  # status, train_loss, ics_l2/ics_cos at layers 2 and 4, per run
    assert all(r[5] == "identical" and r[-1] == "identical" for r in rows)  # same environment: same bits


@pytest.mark.slow
def test_verify_fails_on_another_learning_rate_naming_metric_and_cause(made, tmp_path, capsys):
    root, ref = made
    results = tmp_path / "results"
    shutil.copytree(root / "mine", results)
    sweep(results, "2026-01-03_00-00-00_1-a", "optim.lr=1e-5")  # newest: one job at lr 1e-5
    capsys.readouterr()
    assert verify_main(["--results", str(results), "--reference", str(ref), "--table"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Did you reproduce it? No. You ran 1 of the reference's 1 experiments at quick scale "
                          "(3 runs, seed 0; ")
    loss = [r for r in map(str.split, out.splitlines()) if r[:1] == ["fig3_dln"] and r[2:5] == ["lr=1e-05", "seed=0",
                                                                                                "train_loss"]]
    assert len(loss) == 1 and loss[0][:6] == ["fig3_dln", "batch", "lr=1e-05", "seed=0", "train_loss", "final"]
    assert loss[0][-1] == "DIFFERS"
    low, my_loss = float(loss[0][7]), float(loss[0][9])
    assert my_loss < 0.7 * low  # ten times the lr: far lower loss after 30 steps
    assert "- fig3_dln batch lr=1e-05 seed=0 (vs reference batch lr=1e-06 seed=0): the reference has no run of its " \
           "config; " in out
    assert "Likely cause: optim.lr 1e-06 -> 1e-05" in out


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["missing", "partial", "unknown experiment"])
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
    else:
        args += ["--experiments", "fig9"]
        want = f"error: unknown experiment fig9: the reference at {reference} has fig3_dln"
    before = tree(tmp_path)
    assert verify_main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(want) and captured.err.count("\n") == 1 and captured.out == ""
    assert tree(tmp_path) == before


def test_runs_pair_by_their_whole_config_not_only_norm_and_lr(tmp_path):
    """signal_cnn sweeps model.depth at one norm and lr: each run pairs with the reference run of its depth,
    and a band spans only the seeds of that depth (a self-comparison of its reference once failed on this)."""
    import numpy as np

    from bnstudy.verify import Side, compare_run, match

    def side(depth, seed, value, who="ref"):
        s = Side(tmp_path / who / f"d{depth}s{seed}", {"config": {"norm": {"name": "none"}, "optim": {"lr": 0.1},
                                                              "seed": seed, "model": {"depth": depth}}})
        s.series = {"sig_rank@1": (np.array([0.0]), np.array([float(value)]))}
        return s

    refs = [side(d, seed, d * 10 + seed) for d in (11, 13, 16, 19) for seed in (0, 1)]
    for d in (11, 13, 16, 19):
        mine = side(d, 1, 0.0, who="mine")
        ref = match(mine, refs)
        assert ref.summary["config"]["model"]["depth"] == d and ref.summary["config"]["seed"] == 1
        rank = [v for v in compare_run("signal_cnn", mine, refs).values if v.metric == "sig_rank@1"]
        assert (rank[0].low, rank[0].high) == (d * 10, d * 10 + 1)


# ------------------------------------------------------------------------------ fake runs (fast)
STEPS = range(0, 101, 10)


def fake_rows(acc: float, beta_at) -> list[tuple]:
    """A run's rows: train acc/loss near ``acc``; beta (one batch, one step: chaotic) as ``beta_at(step)``."""
    return [(s, m, None, None, None, v) for s in STEPS
            for m, v in (("train_loss", 2.0 - acc), ("train_acc", acc), ("beta", beta_at(s)))]


STAMPS = ("2026-01-01_00-00-00_1-a", "2026-01-02_00-00-00_1-a")


def fake_sweep(results: Path, stamp: str, seeds=(0, 1, 2), skip=(), loss="cross_entropy", lr=0.1, norms=("none", "batch"),
               last_beta=None, acc_shift=0.0) -> Path:
    """fig1's sweep of fake runs: one job per (norm, seed); beta swings between 4 and 8 from step to step and
    ends at 5 + seed (or ``last_beta``)."""
    sweep = results / "fig1" / "quick" / stamp
    for job, (norm, seed) in enumerate((n, s) for n in norms for s in seeds):
        if (norm, seed) in skip:
            continue
        end = 5.0 + seed if last_beta is None else last_beta
        beta = lambda s, seed=seed, end=end: end if s == STEPS[-1] else (4.0 + seed if (s // 10) % 2 else 8.0 - seed)
        write_fake_run(sweep / str(job), fake_rows(0.8 + 0.01 * seed + 0.05 * (norm == "batch") + acc_shift, beta),
                       fake_config("fig1", norm=norm, lr=lr, seed=seed, loss=loss))
    return sweep


@pytest.fixture
def fake_ref(tmp_path, capsys):
    """A reference of fig1's fake sweep, seeds 0, 1, 2."""
    fake_sweep(tmp_path / "theirs", STAMPS[0])
    ref = tmp_path / "ref"
    assert reference_main(["--results", str(tmp_path / "theirs"), "--out", str(ref), "--experiments", "fig1"]) == 0
    capsys.readouterr()
    return ref


def run_verify(results: Path, ref: Path, capsys, *extra: str) -> tuple[int, str]:
    code = verify_main(["--results", str(results), "--reference", str(ref), *extra])
    out, err = capsys.readouterr()
    assert err == "" or code != 0, err
    return code, out


def test_the_answer_comes_first_and_chaotic_metrics_use_their_rule(fake_ref, tmp_path, capsys):
    """A rerun on another CPU: beta's last value (a chaotic per-step quantity) lands far outside the reference
    seeds' last values (5..7) while its run swings as theirs do: it matches by the rule for its kind."""
    fake_sweep(tmp_path / "mine", STAMPS[1], seeds=(0,), last_beta=12.0, acc_shift=0.01)
    code, out = run_verify(tmp_path / "mine", fake_ref, capsys, "--table")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == (f"Did you reproduce it? Yes. You ran 1 of the reference's 1 experiments at quick scale "
                        f"(2 runs, seed 0; under {tmp_path / 'mine'}): fig1.")
    assert lines[1].startswith("Every value is within its rule, and the verdict of each of the")
    rows = {(r[1], r[4]): r for r in (line.split() for line in lines) if r and r[0] == "fig1" and len(r) > 9}
    beta = rows[("none", "beta")]
    assert beta[5] == "run" and beta[-1] == "ok"
    assert float(beta[6]) == 5.0 and float(beta[9]) == 6.0  # the reference's last value; your median (4..8 swings)
    assert (float(beta[7]), float(beta[8])) == (4.0, 8.0)  # every value the reference's seeds took, later half
    assert rows[("none", "train_acc")][5] == "final" and rows[("none", "status")][5] == "status"


def test_the_short_output_is_short_and_the_table_is_behind_a_flag(fake_ref, tmp_path, capsys):
    fake_sweep(tmp_path / "mine", STAMPS[1], seeds=(0,))
    code, short = run_verify(tmp_path / "mine", fake_ref, capsys)
    code_table, table = run_verify(tmp_path / "mine", fake_ref, capsys, "--table")
    assert code == code_table == 0
    assert " beta " not in short and "the same command with --table" in short
    assert len(table.splitlines()) == len(short.splitlines()) + 1 + 1 + 2 * 4  # blank, header, 2 runs x 4 values, legend
    for rule in ("final     accuracy and loss: the last value in the band of the reference seeds' last values",
                 "run       every other metric (one batch, one step: chaotic): the median over the later half",
                 "status    completed or diverged, as one of the reference's seeds"):
        assert f"  {rule}" in short


@pytest.mark.parametrize("shift", [0.0, -0.3])
@pytest.mark.parametrize("change", ["lr", "norm", "loss"])
def test_a_changed_setting_fails_naming_the_cause(fake_ref, tmp_path, capsys, change, shift):
    """Whether or not its numbers land in the reference's bands (shift 0: they do), a run of a config the
    reference has not run is no reproduction of it."""
    kw = {"lr": {"lr": 0.3}, "norm": {"norms": ("none", "l1")}, "loss": {"loss": "mse_sum"}}[change]
    fake_sweep(tmp_path / "mine", STAMPS[1], seeds=(0,), acc_shift=shift, **kw)
    code, out = run_verify(tmp_path / "mine", fake_ref, capsys)
    cause = {"lr": "optim.lr 0.1 -> 0.3", "norm": "-> 'l1'", "loss": "train.loss 'cross_entropy' -> "
             "'mse_sum'"}[change]
    assert code == 1 and out.startswith("Did you reproduce it? No.")
    assert f"Likely cause: {cause}" in out or (change == "norm" and "Likely cause: norm.name 'none' -> 'l1'" in out)
    assert "the reference has no run of its config" in out
    assert ("train_acc 0.5" in out or "train_acc 0.55" in out) == (shift != 0)


def test_outcomes_are_judged_against_the_seeds_spread(tmp_path):
    """Where the reference's seeds agree, the band is tight; where they do not (Fig. 2's noisy standard network
    leaves chance at a chaotic step: 0.16, 0.57, 0.68), a rerun may land as far from them as they lie apart."""
    import numpy as np

    from bnstudy.verify import Side, compare_run

    def side(seed, acc, who="ref", norm="noise"):
        s = Side(tmp_path / who / f"{norm}{seed}", {"status": "completed", "config": {
            "norm": {"name": norm}, "optim": {"lr": 0.1}, "seed": seed}})
        s.series = {"test_acc": (np.array([800.0]), np.array([acc]))}
        return s

    refs = [side(s, a) for s, a in enumerate((0.16, 0.57, 0.68))] + \
        [side(s, a, norm="batch") for s, a in enumerate((0.88, 0.885, 0.89))]
    verdict = lambda acc, norm: [v.verdict for v in compare_run("fig2", side(0, acc, "mine", norm), refs).values
                                 if v.metric == "test_acc"][0]
    assert verdict(0.75, "noise") == verdict(0.15, "noise") == "ok"
    assert verdict(1.21, "noise") == "DIFFERS"  # beyond 0.68 + 0.52
    assert verdict(0.80, "batch") == "ok" and verdict(0.78, "batch") == "DIFFERS"  # 0.88 - 8.9% of 0.89


def test_a_chaotic_metric_is_judged_by_its_later_half(tmp_path):
    """Rule run: the median of your later half against every value the reference's seeds took in theirs
    (4..8 here), widened by that band's width: 6 and 11 pass whatever the last value, a run at 15 does not."""
    import numpy as np

    from bnstudy.verify import Side, compare_run

    def side(seed, values, who="ref"):
        s = Side(tmp_path / who / str(seed), {"status": "completed", "config": {"norm": {"name": "none"}, "seed": seed}})
        s.series = {"beta": (np.arange(len(values)) * 10.0, np.array(values, dtype=float))}
        return s

    refs = [side(0, [50, 50, 4, 6, 5]), side(1, [0, 0, 8, 5, 7])]  # the first half (50s, 0s) is not compared
    beta = lambda values: [v for v in compare_run("fig4_cnn", side(0, values, "mine"), refs).values
                           if v.metric == "beta"][0]
    assert (beta([1, 1, 5, 7, 30]).low, beta([1, 1, 5, 7, 30]).high) == (4.0, 8.0)
    assert beta([1, 1, 5, 7, 30]).yours == 7.0 and beta([1, 1, 5, 7, 30]).verdict == "ok"
    assert beta([1, 1, 11, 11, 11]).verdict == "ok" and beta([1, 1, 15, 15, 1]).verdict == "DIFFERS"


def test_a_missing_run_is_never_a_match(fake_ref, tmp_path, capsys):
    fake_sweep(tmp_path / "mine", STAMPS[1], seeds=(0,), skip=[("batch", 0)])
    code, out = run_verify(tmp_path / "mine", fake_ref, capsys)
    assert code == 1 and out.startswith("Did you reproduce it? No.")
    assert "1 run(s) of the reference's configs are missing from yours (fig1 1)" in out.splitlines()[1]
    assert "fig1: 1 run(s) of the reference's configs missing from yours: batch lr=0.1 seed=0" in out


def test_a_run_left_out_as_unreadable_is_named_and_missing(fake_ref, tmp_path, capsys):
    sweep = fake_sweep(tmp_path / "mine", STAMPS[1], seeds=(0,))
    (sweep / "1" / "summary.json").write_text('{"status": "compl')
    from bnstudy.runs import RunWarning

    with pytest.warns(RunWarning, match=f"skipped {sweep / '1'}: .*summary.json: unreadable"):
        code = verify_main(["--results", str(tmp_path / "mine"), "--reference", str(fake_ref)])
    out = capsys.readouterr().out
    assert code == 1 and "missing from yours: batch lr=0.1 seed=0" in out
    assert f"left out of yours: {sweep / '1'}: broken" in out


def test_verify_compares_the_sweep_figures_read(fake_ref, tmp_path, capsys):
    """Figures and the report read the newest sweep by time; verify the same (it once took the largest name)."""
    mine = tmp_path / "mine"
    fake_sweep(mine, "2026-02-01_00-00-00_1-a", seeds=(0,))
    later_name = fake_sweep(mine, "2026-03-01_00-00-00_1-a", seeds=(0,), loss="mse_sum", acc_shift=-0.3)
    for summary in later_name.rglob("summary.json"):
        os.utime(summary, (1e9, 1e9))  # finished long before the other sweep
    code, out = run_verify(mine, fake_ref, capsys)
    assert code == 0, out


def test_claims_are_compared_verdict_by_verdict(fake_ref, tmp_path, capsys, monkeypatch):
    """Yours against the reference's on your seeds; a verdict one of the reference's seeds gives alone is a
    seed-sensitive claim (no failure), one none gives is a difference (exit 1)."""
    from types import SimpleNamespace

    def check_claims(runset, scale):
        seeds = {r.seed for r in runset.runs("fig1")}
        mine = str(runset.root) == str(tmp_path / "mine")
        verdicts = {"1a": "holds" if mine else "does not hold",
                    "3b": "does not hold" if mine or seeds == {1} else "holds",
                    "5d": "holds", "6b": "not run"}
        return [SimpleNamespace(id=k, verdict=v) for k, v in verdicts.items()]

    monkeypatch.setattr("experiments.verify.check_claims", check_claims)
    fake_sweep(tmp_path / "mine", STAMPS[1], seeds=(0,))
    code, out = run_verify(tmp_path / "mine", fake_ref, capsys)
    assert code == 1 and out.splitlines()[1] == "The verdict of claim 1a differs from the reference's."
    claims = [line.split(maxsplit=1) for line in out.splitlines() if line.startswith("  ")]
    claims = {c[0]: " ".join(c[1].split()) for c in claims if c[0] in ("1a", "3b", "5d", "6b")}
    assert claims == {"1a": "holds does not hold DIFFERS",
                      "3b": "does not hold holds as one of the reference's seeds (the reference gives it on seed 1 alone)",
                      "5d": "holds holds same",
                      "6b": "not run not run not run (not compared: you did not run it)"}
    assert "your verdict, and the reference's on seed 0:" in out
