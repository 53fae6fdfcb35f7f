"""The benchmark (``python -m experiments.bench``) at --tiny sizes: its table and CSV have every row and column.

Timings on a shared machine say nothing at this size, so no time or ratio is checked against a target:
only that each is there, finite and (where it is a time) positive.
"""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bnstudy.measures import MEASURES

ROOT = Path(__file__).resolve().parents[1]
STEP_CASES = [f"{m}/{n}" for m in ("small_cnn", "vgg_quick", "vgg16", "dln") for n in ("none", "batch")]
STEP_CASES += ["resnet_quick/skipinit", "resnet_quick/batch", "vit_quick/skipinit", "vit_quick/layer"]
MEASUREMENTS = list(MEASURES)  # every registered measurement
MAKE_ALL = ["fig1", "fig2", "fig3_cnn", "fig3_dln", "fig4_cnn", "fig4_dln", "fig5_cnn", "fig5_dln", "browser"]


def test_tiny_bench_table_and_csv(tmp_path):
    results = tmp_path / "results"  # fake finished sweeps for --make-all to read
    for job, wall in (("0", 12.5), ("1", 7.5)):  # older summaries: no timestamps, the loops are summed
        run_dir = results / "fig1" / "quick" / "2026-01-01_00-00-00_1-a" / job
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "wall_time_s": wall}))
    for job, (start, end) in (("0", (0, 10)), ("1", (2, 14))):  # two jobs side by side: first start to last end
        run_dir = results / "fig3_dln" / "quick" / "2026-01-01_00-00-00_1-b" / job
        run_dir.mkdir(parents=True)
        stamp = lambda s: f"2026-01-01T00:00:{s:02d}.000+00:00"
        (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "wall_time_s": end - start,
                                                           "started_at": stamp(start), "finished_at": stamp(end)}))
    for exp in ("fig4_cnn", "fig5_cnn"):  # make all trained these two together: their common span counts once
        run_dir = results / exp / "quick" / "2026-01-01_00-00-00_1-c" / "0"
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "wall_time_s": 10,
                                                           "started_at": "2026-01-01T00:00:20.000+00:00",
                                                           "finished_at": "2026-01-01T00:00:30.000+00:00"}))
    out = tmp_path / "bench" / "bench.csv"
    cmd = [sys.executable, "-m", "experiments.bench", "--tiny", "--threads", "2", "--make-all",
           "--results", str(results), "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout

    # the printed table: the machine, every section, the targets with PASS/FAIL
    assert "machine: cpu " in text and "torch " in text and "device cpu" in text
    for section in ("-- step --", "-- data --", "-- measure --", "-- flops --", "-- switches --", "-- make_all --",
                    "-- targets --"):
        assert section in text, section
    for case in STEP_CASES:
        assert case in text

    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["section", "case", "metric", "value", "unit", "target", "status", "note"]
        rows = list(reader)
    machine = {r["case"]: r["note"] for r in rows if r["section"] == "machine"}
    assert {"cpu", "cores", "threads", "torch", "device"} <= set(machine)
    assert machine["threads"] == "2" and machine["device"] == "cpu"
    got = {(r["section"], r["case"], r["metric"]): r for r in rows if r["section"] != "machine"}
    values = {k: float(r["value"]) for k, r in got.items()}

    expected = []
    for case in STEP_CASES:
        expected += [("step", case, m) for m in ("bare_ms_per_step", "suite_ms_per_step", "suite_steps_per_s",
                                                  "suite_outside_loop_ms_per_run", "suite_over_bare")]
    expected += [("data", c, "ms_per_batch") for c in ("suite_in_memory", "dataloader_tensordataset",
                                                       "dataloader_torchvision_fmnist")]
    expected += [("data", "small_cnn/none", "data_share_of_step"), ("data", "small_cnn/none", "torchvision_share_of_step")]
    expected += [("measure", "small_cnn/batch", "step_ms_measurements_off")]
    for m in MEASUREMENTS:
        expected += [("measure", f"small_cnn/batch {m}", "step_ms_measured"),
                     ("measure", f"small_cnn/batch {m}", "cost_step_equivalents")]
    for case in ("vgg_quick/none", "vgg_quick/batch", "vgg16/none", "vgg16/batch"):
        expected += [("flops", case, m) for m in ("gflop_per_step", "achieved_gflops", "percent_of_matmul_peak")]
    expected += [("switches", f"vgg16/{n}", "channels_last_speedup") for n in ("none", "batch")]
    expected += [("make_all", e, "wall_s") for e in MAKE_ALL + ["total"]]
    missing = [k for k in expected if k not in got]
    assert not missing, missing
    assert [k for k in got if k[0] == "flops" and k[2] == "peak_gflops"], "the matmul peak row"

    for key, v in values.items():
        section, case, metric = key
        if section == "make_all":
            continue
        assert math.isfinite(v), key
        if metric not in ("cost_step_equivalents", "floor_step_equivalents"):  # extra costs can read < 0 in noise
            assert v > 0, key

    # targets: a status on exactly the rows that have one, never a threshold checked here
    checked = {k for k, r in got.items() if r["target"]}
    assert checked == ({("step", c, "suite_over_bare") for c in STEP_CASES}
                       | {("data", "small_cnn/none", "data_share_of_step")}
                       | {("measure", f"small_cnn/batch {m}", "cost_step_equivalents") for m in MEASUREMENTS})
    assert all(got[k]["status"] in ("PASS", "FAIL", "LOADED") for k in checked)
    assert all(not r["status"] for k, r in got.items() if k not in checked)
    targets = text.split("-- targets --")[1].splitlines()
    assert sum(line.startswith(("PASS  ", "FAIL  ", "LOADED  ")) for line in targets) == len(checked)

    # make all: the fake sweep's two runs are summed; experiments without runs are NaN
    assert values[("make_all", "fig1", "wall_s")] == 20.0
    assert values[("make_all", "fig3_dln", "wall_s")] == 14.0  # not 10 + 12
    assert values[("make_all", "fig4_cnn", "wall_s")] == values[("make_all", "fig5_cnn", "wall_s")] == 10.0
    assert values[("make_all", "total", "wall_s")] == 44.0  # 20 summed + 0..14 + 20..30 (shared, once)
    assert math.isnan(values[("make_all", "fig2", "wall_s")])


def test_tiny_paper_fig1_times_the_experiment_on_synthetic_cifar(tmp_path):
    """fig1's own sweep at paper scale (shrunk by --tiny) on CIFAR-10 files the bench writes: each run's
    wall time and steps/s, and the sweep's wall time."""
    out = tmp_path / "bench.csv"
    cmd = [sys.executable, "-m", "experiments.bench", "--tiny", "--sections", "paper_fig1", "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["section"] == "paper_fig1"]
    runs = {r["case"] for r in rows if r["metric"] == "run_wall_s"}
    assert runs == {f"vgg16/{n} lr {lr}" for n in ("none", "batch") for lr in ("0.1", "0.5")}
    assert all(r["note"] == "completed at step 4 of 4" for r in rows if r["metric"] == "run_wall_s")
    wall = [float(r["value"]) for r in rows if r["case"] == "fig1" and r["metric"] == "wall_s"]
    run_walls = [float(r["value"]) for r in rows if r["metric"] == "run_wall_s"]
    assert len(wall) == 1 and all(0 < w for w in run_walls) and sum(run_walls) < wall[0]


def test_bench_help_and_bad_section():
    done = subprocess.run([sys.executable, "-m", "experiments.bench", "--sections", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown sections" in done.stderr


def test_make_all_run_times_make_all_against_a_baseline_and_beside_a_busy_process(tmp_path, monkeypatch, capsys):
    """Section make_all_run with --baseline and --busy, make all itself replaced by a stand-in that writes three
    runs' CSVs (the real make all runs end to end in test_together and test_hardening; here the section's
    bookkeeping): each wall, both ratios against their targets, and the CSVs compared with the baseline's and
    between the idle and busy runs, counting a file that differs."""
    from experiments.bench import cli, walls

    calls = []

    def make_all(root: Path, results, make_args):
        where = results if results is not None else root / "results"
        calls.append((root, results, list(make_args)))
        for job in range(3):
            run = where / "fig1" / "tiny" / "bench" / str(job)
            run.mkdir(parents=True, exist_ok=True)
            busy = len(calls) == 3 and job == 2  # the busy run's last CSV differs
            (run / "metrics.csv").write_text(f"step,value\n0,{job + busy}\n")
        return (100.0, 104.0, 130.0)[len(calls) - 1]

    monkeypatch.setattr(walls, "_time_make_all", make_all)
    out, threads = tmp_path / "bench.csv", torch.get_num_threads()
    try:
        assert cli.main(["--tiny", "--sections", "make_all_run", "--baseline", "HEAD", "--busy", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # the bench sets this process's count; the next test gets it back
    (base_root, base_results, base_args), (this_root, this_results, _), (busy_root, busy_results, _) = calls
    assert base_results is None and base_root != ROOT and not base_root.exists()  # a worktree, removed after
    assert this_root == busy_root == ROOT and this_results != busy_results and base_args == ["SCALE=tiny"]
    with open(out, newline="") as f:
        rows = {(r["case"], r["metric"]): r for r in csv.DictReader(f) if r["section"] == "make_all_run"}
    assert float(rows[("baseline HEAD", "wall_s")]["value"]) == 100.0
    assert float(rows[("this checkout", "wall_s")]["value"]) == 104.0
    assert float(rows[("beside a busy process", "wall_s")]["value"]) == 130.0
    refactor, busy = rows[("this / baseline", "ratio")], rows[("busy / idle", "ratio")]
    assert float(refactor["value"]) == pytest.approx(1.04) and refactor["target"] == "<= 1.05"
    assert float(busy["value"]) == pytest.approx(1.25) and busy["target"] == "<= 1.5"
    same_base, same_busy = rows[("this vs baseline CSVs", "identical")], rows[("busy vs idle CSVs", "identical")]
    assert float(same_base["value"]) == 3 and same_base["note"] == "of 3 metrics.csv"
    assert float(same_busy["value"]) == 2 and same_busy["note"] == "of 3 metrics.csv"
    assert "CSVs identical to the baseline's: 3 of 3" in capsys.readouterr().out
