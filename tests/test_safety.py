"""Safe by default (issue 15): no write through a symbolic link, nothing foreign overwritten, failed
writes are one line and leave no temp file, a resume keeps its thread count.

Runs are tiny deep linear networks on the synthetic ``gaussian`` data, through the Hydra entry point
in-process. A marker file stands for what a planted link points at: it must never appear or change.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest
import torch

import bnstudy.train
import experiments.train as entry
from conftest import call_main, one_line
from bnstudy.records import LinkRefusedError, MetricsWriter, RunFolder, write_atomic, write_json_atomic

DLN = ["model=dln", "model.num_layers=3", "data=gaussian", "norm=batch", "data.num_train=64",
       "data.num_test=64", "train.batch_size=16", "train.log_every=5", "train.eval_every=10",
       "train.threads=1", "progress=false", "optim.lr=1e-4", "train.deterministic=false", "train.steps=10"]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------- symlinks
@pytest.mark.parametrize("name", ["metrics.csv", "summary.json", ".lock", "checkpoint.pt", "summary-tmp"])
@pytest.mark.parametrize("target_exists", [True, False])
def test_no_write_follows_a_symlink(tmp_path, monkeypatch, capsys, name, target_exists):
    """A link planted at any file the run writes is refused: its target is neither changed nor created."""
    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    run_dir.mkdir()
    if target_exists:
        marker.write_text("precious\n")
    if name == "summary-tmp":  # the temp file summary.json is first written to (in this process)
        name = f".summary.json.{os.getpid()}.tmp"
    (run_dir / name).symlink_to(marker)
    code, err = call_main(monkeypatch, capsys, *DLN, f"hydra.run.dir={run_dir}")
    assert code == 2 and one_line(err), err
    assert f"{run_dir / name} is a symbolic link: bnstudy never writes through a link" in err
    assert marker.read_text() == "precious\n" if target_exists else not marker.exists()


def test_write_helpers_refuse_links(tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("precious\n")
    for name in ("out.json", ".out.json.tmp"):
        (tmp_path / name).symlink_to(marker)
    (tmp_path / f".out.json.{os.getpid()}.tmp").symlink_to(marker)
    with pytest.raises(LinkRefusedError, match="out.json is a symbolic link"):
        write_json_atomic(tmp_path / "out.json", {"a": 1})
    (tmp_path / "out.json").unlink()
    with pytest.raises(LinkRefusedError, match=r"\.out\.json\.\d+\.tmp is a symbolic link"):
        write_json_atomic(tmp_path / "out.json", {"a": 1})
    (tmp_path / "m.csv").symlink_to(marker)
    with pytest.raises(LinkRefusedError, match="m.csv is a symbolic link"):
        MetricsWriter(tmp_path / "m.csv")
    assert marker.read_text() == "precious\n" and not (tmp_path / "out.json").exists()


def test_foreign_metrics_csv_without_summary_is_refused(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("my,own,data\n")
    code, err = call_main(monkeypatch, capsys, *DLN, f"hydra.run.dir={run_dir}")
    assert code == 2 and one_line(err)
    assert f"{run_dir} holds metrics.csv or checkpoint.pt but no summary.json: not a run bnstudy wrote" in err
    assert (run_dir / "metrics.csv").read_text() == "my,own,data\n"
    assert RunFolder(tmp_path / "new").check({}, resume=True) is None


# ------------------------------------------------------------------------------------- failed writes
def test_atomic_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def full_disk(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, full_disk)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
    write_atomic(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("where", ["metrics", "checkpoint"])
def test_full_disk_mid_run_is_one_line_and_the_summary_says_failed(tmp_path, monkeypatch, capsys, where):
    run_dir = tmp_path / "run"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "x"))

    if where == "metrics":
        writes = {"n": 0}
        real = MetricsWriter._write_all

        def write_all(self, data):
            writes["n"] += 1
            if writes["n"] == 3:  # the header, one flush, then the disk is full
                full_disk()
            real(self, data)

        monkeypatch.setattr(MetricsWriter, "_write_all", write_all)
    else:
        monkeypatch.setattr(torch, "save", lambda obj, f: (f.write(b"partial"), full_disk()))
    code, err = call_main(monkeypatch, capsys, *DLN, "train.checkpoint_every=5", f"hydra.run.dir={run_dir}")
    assert code == 2 and one_line(err), err
    assert f"error: cannot write in {run_dir} (No space left on device" in err
    assert f"then resume: the same command with hydra.run.dir={run_dir}" in err
    s = summary(run_dir)
    assert s["status"] == "failed" and "No space left on device" in s["error"]
    assert not tmp_files(tmp_path)
    assert (run_dir / "checkpoint.pt").exists() == (where == "metrics")  # the last whole checkpoint stays
    monkeypatch.undo()  # space freed: the message's fix works
    code, err = call_main(monkeypatch, capsys, *DLN, "train.checkpoint_every=5", f"hydra.run.dir={run_dir}")
    assert code == 0 and summary(run_dir)["status"] == "completed", err


# ------------------------------------------------------------------------------------- resume
def test_resume_keeps_the_thread_count_the_run_started_with(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    args = [*DLN, "train.steps=20", "train.checkpoint_every=5", f"hydra.run.dir={run_dir}"]
    write = MetricsWriter.write

    def write_or_stop(self, rows):  # Ctrl-C once a checkpoint exists
        write(self, rows)
        if (run_dir / "checkpoint.pt").exists():
            raise KeyboardInterrupt

    monkeypatch.setattr(MetricsWriter, "write", write_or_stop)
    code, _ = call_main(monkeypatch, capsys, *args)
    assert code != 0 and summary(run_dir)["status"] == "interrupted"
    assert summary(run_dir)["environment"]["threads"]["intra_op"] == 1
    monkeypatch.setattr(MetricsWriter, "write", write)
    seen, warned = [], []
    monkeypatch.setattr(MetricsWriter, "sync", lambda self: seen.append(torch.get_num_threads()))
    monkeypatch.setattr(bnstudy.train.log, "warning", lambda msg, *args: warned.append(msg % args))
    before = torch.get_num_threads()
    try:
        code, err = call_main(monkeypatch, capsys, *args[:-1], "train.threads=2", args[-1])
    finally:
        torch.set_num_threads(before)
    assert code == 0, err
    s = summary(run_dir)
    assert s["status"] == "completed" and s["resumed_from"] == 5
    assert s["environment"]["threads"]["intra_op"] == 1
    assert seen and set(seen) == {1}  # the resumed steps ran on the run's own thread count
    assert len(warned) == 1 and "resuming with the 1 thread(s) this run started with, not 2 (train.threads=2)" in warned[0]


# ------------------------------------------------------------------------------------- code under hydra
@pytest.mark.parametrize("override", [
    "+hydra.callbacks.x._target_=builtins.open +hydra.callbacks.x.file={marker} +hydra.callbacks.x.mode=w",
    "hydra={{callbacks:{{x:{{_target_:builtins.open,file:'{marker}',mode:w}}}}}}",
    "+hydra.job_logging.handlers.x.class=logging.FileHandler +hydra.job_logging.handlers.x.filename={marker}",
])
def test_code_under_hydra_is_refused_before_it_runs(tmp_path, monkeypatch, capsys, override):
    marker, run_dir = tmp_path / "marker", tmp_path / "run"
    code, err = call_main(monkeypatch, capsys, *DLN, *override.format(marker=marker).split(), f"hydra.run.dir={run_dir}")
    assert code == 2 and one_line(err), err
    assert "overrides under hydra may not name code to run" in err
    assert not marker.exists() and not run_dir.exists()


def test_hydra_node_allows_only_the_shipped_launchers():
    from hydra import compose, initialize_config_dir

    from experiments.preflight import Refused, check_hydra_node

    conf = str(Path(entry.CONF_DIR))
    with initialize_config_dir(version_base="1.3", config_dir=conf):
        for launcher in ("basic", "parallel", "submitit", "slurm"):
            check_hydra_node(compose("config", [f"hydra/launcher={launcher}"], return_hydra_config=True).hydra)
        hydra = compose("config", ["hydra.launcher._target_=builtins.exec"], return_hydra_config=True).hydra
    with pytest.raises(Refused, match="hydra.launcher._target_=builtins.exec: bnstudy instantiates only its own"):
        check_hydra_node(hydra)


# ------------------------------------------------------------------------------------- .hydra records
def hydra_records(*dirs: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for d in dirs for p in sorted(d.rglob("*.yaml"))}


def test_a_refused_run_leaves_the_run_record_untouched(tmp_path, monkeypatch, capsys):
    from bnstudy.records import RunLock

    run_dir = tmp_path / "run"
    args = [*DLN, f"hydra.run.dir={run_dir}"]
    assert call_main(monkeypatch, capsys, *args)[0] == 0
    before = hydra_records(run_dir)
    assert len(before) == 3
    code, err = call_main(monkeypatch, capsys, *args, "optim.lr=2e-4")
    assert code == 2 and "holds a run with another config (optim.lr: 0.0001 -> 0.0002)" in err
    with RunLock(run_dir):  # a second process into a live run
        code, err = call_main(monkeypatch, capsys, *args)
    assert code == 2 and "is in use by another run" in err
    assert call_main(monkeypatch, capsys, *args, "progress=true")[0] == 0  # accepted: nothing to do
    assert hydra_records(run_dir) == before


def test_a_sweep_resumed_in_another_order_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    args = ["-m", *DLN, f"hydra.sweep.dir={sweep}"]
    assert call_main(monkeypatch, capsys, *args, "optim.lr=1e-4,2e-4")[0] == 0
    before = hydra_records(sweep)
    assert sweep / "multirun.yaml" in before and len(before) == 7
    code, err = call_main(monkeypatch, capsys, *args, "optim.lr=2e-4,1e-4")
    assert code == 2 and one_line(err), err
    assert f"job #0 (optim.lr=0.0002): {sweep / '0'} holds a run with another config" in err
    assert "(and 1 more job(s)); no job of the sweep was started" in err
    assert hydra_records(sweep) == before
    code, err = call_main(monkeypatch, capsys, *args, "optim.lr=1e-4,2e-4", "progress=true")  # accepted resume
    assert code == 0, err
    assert hydra_records(sweep) == before


# ------------------------------------------------------------------------------------- sweeps
def test_a_bad_value_refuses_the_whole_sweep_before_its_first_job(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code, err = call_main(monkeypatch, capsys, "-m", *DLN, "optim.lr=1e-4,-1,2e-4", f"hydra.sweep.dir={sweep}")
    assert code == 2 and one_line(err), err
    assert "error: job #1 (optim.lr=-1): optim.lr=-1.0 must be > 0; no job of the sweep was started" in err
    assert not sweep.exists()


def check_sweep_went_on(sweep: Path, code: int, err: str) -> None:
    assert code == 1, err
    assert [summary(sweep / j)["status"] for j in ("0", "2")] == ["completed", "completed"]
    assert "data.train_size=1000, but the split has 64 samples" in err  # the job's own line
    assert f"sweep {sweep}: 3 job(s): 2 completed, 1 not started" in err
    assert "job #1 (data.train_size=1000) not started" in err
    assert f"error: 1 of 3 job(s) did not finish (#1); fix the cause and resume the sweep: the same command " \
           f"with hydra.sweep.dir={sweep}" in err
    assert "Traceback" not in err


def test_a_job_failing_at_run_time_does_not_stop_the_sweep(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code, err = call_main(monkeypatch, capsys, "-m", *DLN, "data.train_size=32,1000,48", f"hydra.sweep.dir={sweep}")
    check_sweep_went_on(sweep, code, err)


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_parallel_launcher(tmp_path):
    import subprocess

    sweep, root = tmp_path / "sweep", Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "experiments.train", "-m", "hydra/launcher=parallel", *DLN,
                           "data.train_size=32,1000,48", f"hydra.sweep.dir={sweep}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    check_sweep_went_on(sweep, proc.returncode, proc.stderr)


# ------------------------------------------------------------------------------------- validation
def test_every_numeric_config_field_has_a_range():
    import dataclasses

    import bnstudy.config as C
    from bnstudy.measures import MEASURES

    schemas = [v for v in vars(C).values() if dataclasses.is_dataclass(v) and isinstance(v, type)
               and v.__module__ == C.__name__]
    schemas += [m.Conf for m in MEASURES.values() if getattr(m, "Conf", None) is not None]  # their own modules
    assert len(schemas) >= 12
    missing = [f"{s.__name__}.{f.name}" for s in schemas for f in dataclasses.fields(s)
               if any(t in str(f.type) for t in ("int", "float")) and "range" not in f.metadata]
    assert not missing


@pytest.mark.parametrize("override, message", [
    ("norm.momentum=2", "norm.momentum=2.0 must be in [0, 1]"),
    ("norm.eps=0", "norm.eps=0.0 must be > 0"),
    ("norm.noise_sigma=0.5", "norm.noise_sigma=0.5 must be >= 1"),
    ("optim.lr=inf", "optim.lr=inf must be a finite number > 0"),
    ("optim.lr=nan", "optim.lr=nan must be a finite number > 0"),
    ("optim.momentum=1", "optim.momentum=1.0 must be in [0, 1)"),
    ("train.eval_size=0", "train.eval_size=0 must be > 0"),
    ("data.num_train=0", "data.num_train=0 must be >= 1"),
    ("seed=-1", "seed=-1 must be in [0, 4294967296)"),
    ("measure.activations.quantiles=[0.5,2]", "measure.activations.quantiles=[0.5, 2.0]: each value must be in [0, 1]"),
    ("measure.landscape.eta_min=-1", "measure.landscape.eta_min=-1.0 must be > 0"),
    ("measure.landscape.eta_min=5", "measure.landscape.eta_min=5.0 exceeds eta_max=4.0"),
])
def test_out_of_range_values_are_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, override, message):
    run_dir = tmp_path / "run"
    code, err = call_main(monkeypatch, capsys, *DLN, override, f"hydra.run.dir={run_dir}")
    assert code == 2 and err == f"error: {message}\n"
    assert not run_dir.exists()


@pytest.mark.parametrize("override, valid", [("norm.position=sideways", "[before, after]"),
                                              ("train.device=tpu", "[auto, cpu, cuda]"),
                                              ("measure.landscape.spacing=cubic", "[log, linear]")])
def test_few_name_options_list_their_values(tmp_path, monkeypatch, capsys, override, valid):
    code, err = call_main(monkeypatch, capsys, *DLN, override, f"hydra.run.dir={tmp_path / 'run'}")
    assert code == 1 and f"expected one of {valid}" in err  # Hydra's own message, from the Enum
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- deleting
def test_clean_results_deletes_only_what_the_suite_wrote(tmp_path, monkeypatch, capsys):
    import experiments.clean_results as clean_results

    monkeypatch.chdir(tmp_path)
    results, marker = Path("results"), tmp_path / "marker"
    marker.write_text("precious\n")
    (results / "reference").mkdir(parents=True)
    (results / "README.md").write_text("committed\n")  # the default folder's committed README
    (results / "reference" / "REPORT.md").write_text("committed\n")

    def fake_run(run_dir: Path) -> None:
        (run_dir / ".hydra").mkdir(parents=True)
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (run_dir / ".hydra" / name).write_text("x: 1\n")
        for name in ("metrics.csv", "train.log", ".lock", "checkpoint.pt", ".summary.json.4242.tmp"):
            (run_dir / name).write_text("x\n")
        write_json_atomic(run_dir / "summary.json", {"status": "completed", "step": 1, "config": {}})
        (run_dir.parent / "multirun.yaml").write_text("hydra: {}\n")

    mine = [results / "x" / "s" / "0", results / "y" / "s" / "0", results / "y" / "s" / "1"]
    for run_dir in mine:
        fake_run(run_dir)
    foreign = [results / "x" / "s" / "0" / "notes.txt", results / "x" / "s" / "0" / ".keep",
               results / "x" / "s" / ".gitignore"]
    for path in foreign:
        path.write_text("mine\n")
    (results / "x" / "s" / "0" / "link").symlink_to(marker)
    assert clean_results.main(["--yes"]) == 0
    out = capsys.readouterr().out
    assert "deleted the results of 3 run(s)" in out and "keeping 6 other file(s) (not run results)" in out
    assert not (results / "y").exists()  # nothing but the suite's files: gone, folders too
    assert sorted(p.name for p in (results / "x" / "s" / "0").iterdir()) == [".keep", "link", "notes.txt"]
    assert all(p.read_text() == "mine\n" for p in foreign) and marker.read_text() == "precious\n"
    assert (results / "README.md").exists() and (results / "reference" / "REPORT.md").exists()


def test_unknown_figure_name_is_one_line(tmp_path, capsys):
    import experiments.figures as figures

    with pytest.raises(SystemExit) as exit:
        figures.main(["fig1", "fig99", "--results", str(tmp_path)])
    assert exit.value.code == f"error: unknown figure 'fig99'; valid: {', '.join(sorted(figures.FIGURES))}"
    assert "fig1" in figures.FIGURES and "fig99" not in figures.FIGURES
    assert not (tmp_path / "figures").exists()


def test_figures_are_written_atomically_and_never_through_a_link(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnstudy.figures import save

    marker = tmp_path / "marker"
    marker.write_text("precious\n")
    (tmp_path / "f.pdf").symlink_to(marker)
    fig = plt.figure()
    with pytest.raises(LinkRefusedError, match="f.pdf is a symbolic link"):
        save(fig, tmp_path, "f")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and marker.read_text() == "precious\n"
    assert not tmp_files(tmp_path)


def test_read_only_folder_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """(Simulated: as root, permissions cannot make a folder read-only; os.access also sees read-only mounts.)"""
    run_dir = tmp_path / "ro" / "run"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == tmp_path and mode == os.W_OK
                        else real(p, mode, **k))
    code, err = call_main(monkeypatch, capsys, *DLN, f"hydra.run.dir={run_dir}")
    assert code == 2 and one_line(err), err
    assert f"error: cannot write in {run_dir}: {tmp_path} is read-only; pick a writable folder" in err
    assert not (tmp_path / "ro").exists()
