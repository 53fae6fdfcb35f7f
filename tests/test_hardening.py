"""Hardening, second round (issue 27; docs/reliability.md, "Hostile inputs and signals"): signals in
one-process ``make all``, no code from configuration files, nothing deleted that the suite did not write,
records that tell the truth, post-hoc measures on hostile files, the leftovers of round one, environment
values, the thread count of reused processes, and the resume line of a make target (issue 24).

Runs are tiny deep linear networks on the synthetic ``gaussian`` data, through the entry point in-process,
or in a subprocess where a signal must reach a whole process tree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import bnstudy.build
import experiments.train as entry
from conftest import call_main, fake_config, one_line, write_fake_run

ROOT = Path(__file__).resolve().parents[1]
DLN = ["model=dln", "model.num_layers=3", "data=gaussian", "norm=batch", "data.num_train=64",
       "data.num_test=64", "train.batch_size=16", "train.log_every=5", "train.eval_every=10",
       "train.threads=1", "progress=false", "optim.lr=1e-4", "train.deterministic=false", "train.steps=10"]
ENV = {**{k: v for k, v in os.environ.items() if k != "BNSTUDY_RESUME"}, "TQDM_DISABLE": "1"}


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "summary.json").read_text())["status"]


# ------------------------------------------------------------------------- 1, 9. signals, the resume line
def _group_pids(pgid: int) -> set[int]:
    """The processes of a process group (from /proc: field 5 of /proc/<pid>/stat)."""
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                pids.add(int(d.name))
    return pids


def _interrupt(cmd: list[str], results: Path, sig: int, to_group: bool, env: dict, running: int = 2):
    """Start ``cmd`` in its own session (Ctrl-C enabled, as on a terminal), wait until ``running`` runs
    train, send ``sig`` to the parent alone or to the whole group (as a terminal's Ctrl-C does), then
    return (exit status, stderr, the processes of its group still alive 15 s after the parent ended)."""
    err_path = results.parent / f"{results.name}.err"
    with open(err_path, "w") as err, open(os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 240
        while sum(s.read_text().count('"running"') for s in results.rglob("summary.json")) < running:
            assert proc.poll() is None and time.time() < deadline, err_path.read_text()
            time.sleep(0.2)
        time.sleep(1.0)  # a step or two past the start
        (os.killpg if to_group else os.kill)(proc.pid, sig)
        code = proc.wait(timeout=120)
        deadline = time.time() + 15
        while _group_pids(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        return code, err_path.read_text(), _group_pids(proc.pid)
    finally:
        if _group_pids(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


TOGETHER = [sys.executable, "-m", "experiments.together", "fig3_dln", "--scale", "tiny", "--seeds", "0",
            "--run-id", "r", "--workers", "2", "--", "train.steps=1000000", "train.checkpoint_every=20"]


@pytest.mark.slow
def test_ctrl_c_to_make_all_stops_every_worker_and_says_once_how_to_resume(tmp_path):
    """Ctrl-C at a terminal (SIGINT to every process): the workers leave it to the parent, which stops them
    (SIGTERM, as for a SIGTERM to the parent alone: a scheduler, ``timeout``): no worker outlives the parent,
    every run that started says interrupted (its checkpoint kept), no group queued behind them starts, no
    traceback (there were 48 lines), and one line names the command that resumes."""
    results = tmp_path / "results"
    env = {**ENV, "BNSTUDY_RESUME": "make all RUN_ID=r SCALE=tiny"}
    cmd = [*TOGETHER[:-3], "--results", str(results), *TOGETHER[-3:]]  # TOGETHER[-3:]: "--" and overrides
    code, err, left = _interrupt(cmd, results, signal.SIGINT, True, env)
    assert not left, f"processes left behind: {left}"
    assert code == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert lines == ["interrupted: resume with make all RUN_ID=r SCALE=tiny"], err
    statuses = {p.parent.name: status(p.parent) for p in results.rglob("summary.json")}
    assert len(statuses) == 2 and set(statuses.values()) == {"interrupted"}, statuses  # 2 workers: 2 of 4 groups
    assert all((results / "fig3_dln/tiny/r" / job / "checkpoint.pt").exists() for job in statuses)


def _sigterm_self(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # the signal lands here
    raise AssertionError("SIGTERM did not stop this")


def test_sigterm_to_make_all_or_a_run_is_handled_as_ctrl_c(monkeypatch, capsys):
    """SIGTERM (a scheduler, ``timeout``) used to end the parent at once, with no line and its workers left
    running; it now takes the Ctrl-C path: the workers are stopped, one line, exit status 143."""
    from experiments import together

    handler = signal.getsignal(signal.SIGTERM)
    monkeypatch.setenv("BNSTUDY_RESUME", "make all RUN_ID=r")
    monkeypatch.setattr(together, "run", _sigterm_self)
    assert together.main(["fig1", "--run-id", "r"]) == 143
    assert capsys.readouterr().err == "interrupted: resume with make all RUN_ID=r\n"
    monkeypatch.delenv("BNSTUDY_RESUME")
    monkeypatch.setattr(entry, "hydra_main", _sigterm_self)
    monkeypatch.setattr(entry, "refuse_code_in_configs", lambda *a: None)
    code, err = call_main(monkeypatch, capsys, *DLN)
    assert code == 143 and err == "interrupted: resume with the same command\n"
    assert signal.getsignal(signal.SIGTERM) == handler  # put back


POOL = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from experiments.together import worker_init
pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=worker_init,
                           initargs=(os.getpid(),))
workers = set()
while len(workers) < 2:  # both started (their initializer ran) and taking work
    workers |= {f.result() for f in [pool.submit(os.getpid) for _ in range(4)]}
futures = [pool.submit(time.sleep, 600) for _ in range(3)]
time.sleep(0.5)
print(" ".join(map(str, workers)), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, dead and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_make_alls_workers_end_when_it_is_killed(tmp_path):
    """SIGKILL leaves the parent no say: its workers get the parent-death signal (Linux) and end, where they
    used to finish every queued group and then wait for good."""
    proc = subprocess.Popen([sys.executable, "-c", POOL], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(map(_alive, workers))
        proc.kill()
        proc.wait()
        deadline = time.time() + 20
        while any(map(_alive, workers)) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(map(_alive, workers))
    finally:
        proc.kill()
        for pid in filter(_alive, workers):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_in_a_make_target_prints_the_make_command_once(tmp_path):
    """A make target's sweep with the parallel launcher: Ctrl-C reaches the parent and both workers; one line
    (it was three) names the make command that resumes the target (the figure step too)."""
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "experiments.train", "-m", "experiment=fig3_dln", "scale=tiny", "seed=0",
           f"hydra.sweep.dir={results / 'fig3_dln/tiny/r'}", "hydra/launcher=parallel", "train.steps=1000000",
           "train.checkpoint_every=20"]
    env = {**ENV, "BNSTUDY_RESUME": "make fig3_dln RUN_ID=r SCALE=tiny"}
    code, err, left = _interrupt(cmd, results, signal.SIGINT, True, env)
    assert code == 130 and not left
    assert [line for line in err.splitlines() if "interrupted" in line] == \
        ["interrupted: resume with make fig3_dln RUN_ID=r SCALE=tiny"], err
    assert "Traceback" not in err


def test_make_targets_pass_the_command_that_resumes_them():
    """The Makefile's resume command: the goals typed, this make's RUN_ID and every variable set on the command
    line, each a shell word (ARGS with spaces and quotes comes back as it was given)."""
    args = "optim.lr=0.3 'train.steps=300'"
    out = subprocess.run(["make", "-n", "fig3", "SCALE=tiny", "RUN_ID=abc", f"ARGS={args}", "LAUNCHER="], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout  # under make test: "Entering directory"
    first = next(line for line in out.splitlines() if "experiments.train" in line)
    assignment = first[: first.index(" .venv/bin/python -m experiments.train")]  # BNSTUDY_RESUME='...'
    hint = subprocess.run(["bash", "-c", f"{assignment} printenv BNSTUDY_RESUME"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert hint.startswith("make fig3 RUN_ID=abc ")
    words = subprocess.run(["bash", "-c", f"printf '%s\\n' {hint}"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert words == ["make", "fig3", "RUN_ID=abc", "SCALE=tiny", f"ARGS={args}", "LAUNCHER="]
    sub = subprocess.run(["make", "-n", "dln_sweep", "RUN_ID=abc"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "BNSTUDY_RESUME='make dln_sweep RUN_ID=abc SCALE=paper'" in sub  # the target typed, not _dln_sweep


# ------------------------------------------------------------------------- 2. no code from config files
EVIL = {  # file in a --config-dir -> what it names (it would create the marker if it ran)
    "callback": "hydra:\n  callbacks:\n    evil:\n      _target_: builtins.open\n      file: {marker}\n      mode: w\n",
    "hydra_logging": "hydra:\n  hydra_logging:\n    handlers:\n      console:\n        (): builtins.open\n"
                     "        file: {marker}\n        mode: w\n",
    "job_logging": "hydra:\n  job_logging:\n    handlers:\n      file:\n        class: builtins.open\n",
    "formatter": "hydra:\n  hydra_logging:\n    formatters:\n      simple:\n        class: evil.Formatter\n",
    "ext": "hydra:\n  job_logging:\n    handlers:\n      console:\n        stream: ext://os.system\n",
    "own_callback": "hydra:\n  callbacks:\n    bnstudy:\n      _target_: builtins.print\n",
}


@pytest.mark.parametrize("kind", list(EVIL))
@pytest.mark.parametrize("where", ["experiment", "sweep"])
def test_a_config_file_naming_code_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys, kind, where):
    """An experiment file in a --config-dir (chosen on the command line, or one job of a sweep over experiment
    files) that names a callback, a logging handler, formatter or object: one line, exit 2, before Hydra
    instantiates or sets up anything (the marker its code would create never appears) or writes a folder."""
    conf, marker, out = tmp_path / "conf", tmp_path / "marker", tmp_path / "out"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "evil.yaml").write_text("# @package _global_\n" + EVIL[kind].format(marker=marker))
    (conf / "experiment" / "plain.yaml").write_text("# @package _global_\nname: plain\n")
    if where == "experiment":
        args = ["--config-dir", str(conf), *DLN, "experiment=evil", f"hydra.run.dir={out}"]
    else:
        args = ["-m", "--config-dir", str(conf), *DLN, "experiment=plain,evil", f"hydra.sweep.dir={out}"]
    code, err = call_main(monkeypatch, capsys, *args)
    assert code == 2 and one_line(err), err
    assert err.startswith("error: ") and ": hydra." in err and any(
        why in err for why in ("are refused", "must be exactly", "may name no object", "bnstudy's callback is"))
    assert not marker.exists() and not out.exists()


def test_another_primary_config_without_the_preflight_is_refused(tmp_path, monkeypatch, capsys):
    """``--config-name`` of a config that drops bnstudy's callback would run with no checks at all."""
    (tmp_path / "bare.yaml").write_text("defaults:\n  - config_schema\n  - _self_\nname: bare\n")
    code, err = call_main(monkeypatch, capsys, "--config-dir", str(tmp_path), "--config-name", "bare",
                          f"hydra.run.dir={tmp_path / 'out'}")
    assert code == 2 and one_line(err) and "hydra.callbacks must be exactly bnstudy's own" in err, err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------- 3. deleting only what it wrote
@pytest.mark.parametrize("sweep", [False, True])
def test_a_failed_run_in_a_users_folder_deletes_nothing_of_theirs(tmp_path, monkeypatch, capsys, sweep):
    """A run pointed at a folder that holds a user's train.log and .hydra/config.yaml fails (no MNIST there):
    the folder and the user's files stay byte for byte; only what Hydra added for the run is removed."""
    run_dir = tmp_path / "mine" / ("0" if sweep else "")
    (run_dir / ".hydra").mkdir(parents=True)
    mine = {run_dir / "train.log": b"my own notes\n", run_dir / ".hydra" / "config.yaml": b"mine: 1\n"}
    for path, data in mine.items():
        path.write_bytes(data)
    where = f"hydra.sweep.dir={tmp_path / 'mine'}" if sweep else f"hydra.run.dir={run_dir}"
    code, err = call_main(monkeypatch, capsys, *(["-m"] if sweep else []), *DLN, "data=mnist",
                          f"data.root={tmp_path / 'nowhere'}", where)
    assert code == (1 if sweep else 2) and "MNIST not found" in err, err
    assert {p: p.read_bytes() for p in mine} == mine
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == [Path(".hydra"), Path(".hydra/config.yaml"),
                                                                          Path("train.log")]


def test_a_failed_run_in_a_new_folder_leaves_nothing(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "new"
    code, err = call_main(monkeypatch, capsys, *DLN, "data=mnist", f"data.root={tmp_path / 'nowhere'}",
                          f"hydra.run.dir={run_dir}")
    assert code == 2 and one_line(err) and not run_dir.exists()


# ------------------------------------------------------------------------- 4. records that tell the truth
def test_two_jobs_of_a_sweep_never_share_a_folder(tmp_path, monkeypatch, capsys):
    """``hydra.sweep.subdir=${optim.lr}`` with two norms names one folder for two jobs: refused before
    anything is written (it used to exit 0 with "2 completed" and one run whose records named the other)."""
    sweep = tmp_path / "sweep"
    code, err = call_main(monkeypatch, capsys, "-m", *DLN, "norm=none,batch", "hydra.sweep.subdir=${optim.lr}",
                          f"hydra.sweep.dir={sweep}")
    assert code == 2 and one_line(err), err
    assert "job #1 (norm=batch) and job #0 (norm=none) would write into one folder" in err
    assert "keep ${hydra.job.num} in hydra.sweep.subdir" in err and not sweep.exists()
    code, err = call_main(monkeypatch, capsys, "-m", *DLN, "norm=none,batch", "train.steps=2",
                          "hydra.sweep.subdir=${hydra.job.num}_${optim.lr}", f"hydra.sweep.dir={sweep}")
    assert code == 0, err
    for job, norm in (("0_0.0001", "none"), ("1_0.0001", "batch")):  # each folder's record is its numbers'
        assert json.loads((sweep / job / "summary.json").read_text())["config"]["norm"]["name"] == norm
        assert f"norm={norm}" in (sweep / job / ".hydra" / "overrides.yaml").read_text()


def test_make_all_refuses_two_experiments_in_one_folder(tmp_path, capsys):
    """``make all ARGS=hydra.sweep.dir=...`` would put every experiment's job 0 in one folder."""
    from experiments import together

    with pytest.raises(SystemExit) as exit:
        together.main(["fig3_dln", "fig4_dln", "--scale", "tiny", "--run-id", "x", "--results", str(tmp_path),
                       "--workers", "1", "--", f"hydra.sweep.dir={tmp_path / 'same'}"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "would write into one folder" in err and "of " + str(tmp_path / "same") in err
    assert not list((tmp_path / "same").rglob("summary.json"))


# ------------------------------------------------------------------------- 5. post hoc on hostile files
def _finished_run(run_dir: Path) -> Path:
    from bnstudy.config import Config, DataConf, DLNConf, MeasureConf, NormConf, OptimConf, TrainConf
    from bnstudy.train import Trainer

    cfg = Config(model=DLNConf(num_layers=3, dim=4), norm=NormConf(name="batch"),
                 data=DataConf(name="gaussian", dim=4, num_train=64, num_test=16), optim=OptimConf(lr=1e-3),
                 measure=MeasureConf(), progress="false",
                 train=TrainConf(steps=3, batch_size=32, loss="mse_sum", log_every=3, eval_every=0,
                                 checkpoint_every=0, device="cpu", threads=1))
    Trainer(cfg, run_dir).run()
    return run_dir


@pytest.mark.parametrize("case", ["csv_link", "json_link", "garbage", "binary", "folder", "summary_list"])
def test_posthoc_on_a_hostile_file_is_one_line_naming_it(tmp_path, capsys, one_thread, case):
    from experiments import curvature

    run_dir, marker = _finished_run(tmp_path / "run"), tmp_path / "marker"
    marker.write_text("precious\n")
    name = {"json_link": "posthoc.json", "summary_list": "summary.json"}.get(case, "posthoc.csv")
    target = run_dir / name
    if case.endswith("link"):
        target.symlink_to(marker)
    elif case == "garbage":
        target.write_text("a,b\n1,2\nnot,a,csv,of,ours\n")
    elif case == "binary":
        target.write_bytes(bytes(range(256)) * 8)
    elif case == "folder":
        target.mkdir()
    else:
        target.write_text("[1, 2]")
    before = target.read_bytes() if target.is_file() and not target.is_symlink() else None
    assert curvature.main([str(run_dir), "--samples", "32"]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and str(target) in err, err
    assert marker.read_text() == "precious\n"
    assert before is None or target.read_bytes() == before


# ------------------------------------------------------------------------- 6. left from round one
def test_a_name_is_a_folder_name_never_a_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("../x", "a/b", ".hidden", ""):
        code, err = call_main(monkeypatch, capsys, *DLN, f"name={name}")
        assert code == 2 and one_line(err) and "a run's name is a folder name" in err, err
    assert sorted(p.name for p in tmp_path.parent.iterdir() if p.name == "x") == []
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("sub", ["", "run"])
def test_a_run_dir_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys, sub):
    path = tmp_path / "afile"
    path.write_text("mine\n")
    code, err = call_main(monkeypatch, capsys, *DLN, f"hydra.run.dir={path / sub if sub else path}")
    assert code == 2 and one_line(err), err
    assert f"{path} exists and is not a folder" in err and path.read_text() == "mine\n"


def _fake_quick(root: Path, experiment: str = "quick") -> Path:
    """Four finished runs of one experiment (what its figure and claims read), the last one's CSV intact."""
    rows = [(s, m, None, None, None, 0.5 + s / 1000) for s in range(10, 101, 10)
            for m in ("train_acc", "test_acc", "train_loss")]
    runs = [write_fake_run(root / experiment / "quick/sw" / str(i), rows, fake_config(experiment, norm=n, lr=lr))
            for i, (n, lr) in enumerate((n, lr) for n in ("none", "batch") for lr in (0.1, 0.5))]
    return runs[-1]


@pytest.mark.parametrize("cut", ["rows", "mid_line"])
def test_the_report_names_a_csv_cut_short(tmp_path, capsys, cut):
    """A run of an experiment no claim reads (the quick job) whose CSV was cut short: figures and the report
    both name it (the report's "Excluded runs" only named the claims' runs); a CSV ending in a partial line is
    cut short too (it read as complete)."""
    from experiments import report

    run = _fake_quick(tmp_path)
    csv = run / "metrics.csv"
    data = csv.read_bytes()
    csv.write_bytes(data[: data.index(b"\n", len(data) // 2) + 1] if cut == "rows" else data[:-3])
    with pytest.warns(UserWarning, match=f"skipped {run}"):
        assert report.main(["--results", str(tmp_path)]) == 0
    excluded = (tmp_path / "REPORT.md").read_text().split("## Excluded runs")[1].split("##")[0]
    assert f"{run}: truncated" in excluded


def test_figures_never_make_a_missing_results_folder(tmp_path, capsys):
    from experiments import figures

    assert figures.main(["fig1", "--results", str(tmp_path / "typo")]) == 2
    assert capsys.readouterr().err == f"error: no results folder at {tmp_path / 'typo'}\n"
    assert not (tmp_path / "typo").exists()


def test_a_figure_whose_experiments_never_ran_is_not_drawn(tmp_path, capsys):
    from experiments import figures

    _fake_quick(tmp_path)
    assert figures.main(["fig1", "quick", "--results", str(tmp_path)]) == 1  # named: an error
    err = capsys.readouterr().err
    assert "error: figure fig1 not drawn: no finished runs of fig1 at scale quick" in err
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["quick_quick.pdf", "quick_quick.png", "quick_quick.runs.txt"]
    assert figures.main(["--results", str(tmp_path)]) == 0  # all: the others listed on one line
    assert "not drawn (no finished runs at scale quick" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["quick_quick.pdf", "quick_quick.png", "quick_quick.runs.txt"]
    (tmp_path / "empty").mkdir()
    assert figures.main(["--results", str(tmp_path / "empty")]) == 1
    assert not (tmp_path / "empty" / "figures").exists()


# ------------------------------------------------------------------------- 7. environment values
@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e400", "10 s"])
def test_a_garbage_progress_interval_is_ignored_with_a_warning(value):
    out = subprocess.run([sys.executable, "-c", "import bnstudy.progress as p; print(p.INTERVAL_S)"], cwd=ROOT,
                         env={**ENV, "BNSTUDY_PROGRESS_S": value}, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == "10.0\n", out.stderr
    assert one_line(out.stderr) and out.stderr.startswith(f"warning: BNSTUDY_PROGRESS_S={value!r}")


ODD_STAT = ["", "cpu0 a b c d e f g h\n", "cpu0 1 2\n", "cpu0 -5 0 0 9 0 0 0 0\n", "cpu0 nan 1 1 1 1 1 1 1\n",
            "\xff\xfe garbage"]


@pytest.mark.parametrize("text", ODD_STAT)
def test_an_odd_proc_stat_falls_back_on_the_load_average(monkeypatch, text):
    import io

    import bnstudy.threads as threads

    monkeypatch.setattr(threads, "open", lambda *a, **k: io.StringIO(text), raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1])
    busy = threads.busy_cores(0.0)
    assert 0.0 <= busy <= 2.0
    assert threads.auto_threads() in (1, 2) and threads.pool_size() in (2, 3, 4)


def test_a_linked_hash_cache_is_left_alone(tmp_path, monkeypatch):
    from bnstudy.provenance import file_sha256

    marker = tmp_path / "marker"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "sha256.json").symlink_to(marker)
    (tmp_path / "data").write_bytes(b"123")
    monkeypatch.setenv("BNSTUDY_CACHE_DIR", str(tmp_path / "cache"))
    assert file_sha256(tmp_path / "data") == "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
    assert not marker.exists()


# ------------------------------------------------------------------------- 8. threads in a reused process
def test_threads_0_after_threads_1_in_one_process_is_pytorchs_own_count(tmp_path, monkeypatch, capsys):
    """A basic-launcher sweep runs its jobs in one process: the job with train.threads=0 runs on PyTorch's own
    count (it ran on the 1 thread the job before had set), as it would alone."""
    monkeypatch.setattr(bnstudy.build, "PYTORCH_THREADS", 3)  # any count but 1
    before = torch.get_num_threads()
    try:
        code, err = call_main(monkeypatch, capsys, "-m", *DLN, "train.threads=1,0", f"hydra.sweep.dir={tmp_path}")
    finally:
        torch.set_num_threads(before)
    assert code == 0, err
    threads = [json.loads((tmp_path / j / "summary.json").read_text())["environment"]["threads"]["intra_op"]
               for j in ("0", "1")]
    assert threads == [1, 3]


def test_deterministic_mode_of_one_job_does_not_leak_into_the_next(tmp_path, monkeypatch, capsys):
    """The same for ``train.deterministic``: the second job's switch, and its record, are its own."""
    before = torch.are_deterministic_algorithms_enabled()
    try:
        code, err = call_main(monkeypatch, capsys, "-m", *DLN[:-2], "train.steps=2", "train.deterministic=true,false",
                              f"hydra.sweep.dir={tmp_path}")
    finally:
        torch.use_deterministic_algorithms(before)
    assert code == 0, err
    switch = [json.loads((tmp_path / j / "summary.json").read_text())["environment"]["determinism"]
              ["deterministic_algorithms"] for j in ("0", "1")]
    assert switch == [True, False]

