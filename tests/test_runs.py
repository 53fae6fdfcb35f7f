"""The run reader (``bnstudy.runs``): one bad run is skipped with one line naming it while figures, the
report and the runs index go on; a CSV cut short is flagged; duplicate rows resolve by one rule."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

from bnstudy.figures import FIGURES  # noqa: E402
from bnstudy.records import MetricsWriter  # noqa: E402
from bnstudy.runs import RunSet, RunWarning, load_metrics, run_status  # noqa: E402
from conftest import fake_config, write_fake_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rows(stop: int = 100, acc: float = 0.8) -> list[tuple]:
    out = [(s, m, None, None, None, acc) for s in range(10, stop + 1, 10) for m in ("train_loss", "train_acc")]
    return out + [(s, "test_acc", None, None, None, acc) for s in range(0, stop + 1, 50)]


def bad_tree(root: Path) -> tuple[list[Path], list[Path]]:
    """A fig1 sweep with two good runs and one of each kind of bad one; returns (good, bad) run dirs."""
    sweep = root / "fig1" / "quick" / "2024-01-01_00-00-00_x"
    good = [write_fake_run(sweep / str(i), rows(), fake_config("fig1", norm=n, lr=0.1))
            for i, n in enumerate(("none", "batch"))]
    bad = [write_fake_run(sweep / str(i), rows(), fake_config("fig1", norm="none", lr=0.5, seed=i)) for i in range(2, 7)]
    (bad[0] / "summary.json").write_text('{"status": "completed", "step": 10')  # cut short
    (bad[1] / "summary.json").write_text(json.dumps(["not", "a", "summary"]))  # not what the suite writes
    text = (bad[2] / "metrics.csv").read_text().splitlines()
    text[5] = "60,train_acc,,,,garbage"  # corrupt in the middle
    (bad[2] / "metrics.csv").write_text("\n".join(text) + "\n")
    csv = (bad[3] / "metrics.csv").read_text()
    (bad[3] / "metrics.csv").write_text(csv[: csv.index("\n60,")] + "\n")  # truncated: ends at step 50
    (bad[4] / "metrics.csv").write_text("a,b\n1,2\n")  # another program's CSV
    return good, bad


def test_a_csv_that_ends_before_its_summary_is_flagged(tmp_path):
    _, bad = bad_tree(tmp_path)
    status, summary = run_status(bad[3])
    assert status == "truncated" and "ends at step 50, before the summary's step 100" in summary["error"]
    assert [run_status(b)[0] for b in bad] == ["broken", "broken", "completed", "truncated", "broken"]


def test_figures_and_claims_skip_bad_runs_naming_each(tmp_path):
    good, bad = bad_tree(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        R = RunSet(tmp_path, "quick")
        runs = R.runs("fig1")
        fig = FIGURES["fig1"](R)
    assert sorted(str(r.path) for r in runs) == sorted(map(str, good))
    said = [str(w.message) for w in caught if issubclass(w.category, RunWarning)]
    assert len(said) == len(bad) and all(any(str(b) in s for s in said) for b in bad)
    assert all("\n" not in s for s in said)
    assert "column value holds non-numbers (line 6)" in " ".join(said)
    assert fig.texts[-1].get_text() == "fig1 (quick): sweep 2024-01-01_00-00-00_x; 2 runs, 1 seed, 100 steps; 5 left out"


@pytest.mark.slow
def test_the_command_line_tools_go_on_past_bad_runs(tmp_path):
    good, bad = bad_tree(tmp_path)
    for cmd in (["bnstudy.runs", str(tmp_path)], ["experiments.report", "--results", str(tmp_path)]):
        done = subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        warned = [line for line in done.stderr.splitlines() if line.startswith("warning: skipped")]
        assert "Traceback" not in done.stderr
        named = [b for b in bad if any(str(b) in line for line in warned)]
        assert len(named) == (4 if cmd[0] == "bnstudy.runs" else 5), done.stderr  # the index reads no CSV body
    report = (tmp_path / "REPORT.md").read_text()
    # a subprocess compares with conf/: the fake runs (100 steps, model name vgg_quick) are exploratory, and say so
    assert "## Runs" in report and ("| fig1 | 2024-01-01_00-00-00_x | 2 | 1 | 100 | no: model.name vgg_quick (not vgg), "
                                     "train.steps 100 (not 800) | 0 | 5 |") in report
    assert all(str(b) in report for b in bad)


def test_duplicate_rows_last_written_counts_but_samples_are_all_kept(tmp_path):
    path = tmp_path / "metrics.csv"
    w = MetricsWriter(path)
    w.write([(10, "train_loss", None, None, None, 1.0), (10, "act_sample", 1, 0, None, 0.1),
             (10, "act_sample", 1, 0, None, 0.2)])
    w.write([(10, "train_loss", None, None, None, 2.0), (10, "grad_pred", None, None, 0.5, 3.0)])
    w.close()
    df = load_metrics(path)
    assert df.loc[df.metric == "train_loss", "value"].tolist() == [2.0]
    assert df.loc[df.metric == "act_sample", "value"].tolist() == [0.1, 0.2]
    assert len(df) == 4
