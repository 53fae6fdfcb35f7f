"""Progress lines (jobs done of a sweep, the step of the running job, time left) and thread choice."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bnstudy.progress as progress
import bnstudy.threads as threads
from bnstudy.config import ConfigError
from bnstudy.progress import Sweep, describe, progress_enabled, tqdm

ROOT = Path(__file__).resolve().parents[1]


def _job(sweep: Path, num: int, status: str | None) -> None:
    (sweep / str(num)).mkdir(parents=True)
    if status:
        (sweep / str(num) / "summary.json").write_text(json.dumps({"status": status}))


def test_lines_give_step_rate_time_left_and_the_sweeps_jobs(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # CI sets it; this test is about the lines themselves
    for num, status in enumerate(["completed", "diverged", "running"]):  # job 2 is this one
        _job(tmp_path, num, status)
    caplog.set_level(logging.INFO, logger="bnstudy")
    bar = tqdm(range(10), total=10, label="fig1 [job 3/5] batch lr=0.1 seed=0", sweep=Sweep(tmp_path, 5, 2),
               mininterval=0, disable=False)  # explicit: tqdm reads TQDM_DISABLE at import
    for _ in bar:
        pass
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert 5 <= len(lines) <= 9  # one per step but the first (no rate yet) and the last (the job's end line)
    assert lines[0].startswith("fig1 [job 3/5] batch lr=0.1 seed=0: step 1/10 (10%), ")
    assert "step 9/10 (90%)" in lines[-1] and "steps/s" in lines[-1] and " left" in lines[-1]
    assert "; sweep: 2/5 jobs done, ~" in lines[-1]  # completed + diverged; 2 jobs not started yet


def test_sweep_time_left_counts_unstarted_jobs_shared_by_the_running_ones(tmp_path):
    for num, status in enumerate(["completed", "running", "running"]):
        _job(tmp_path, num, status)
    assert Sweep(tmp_path, 6, 1).counts() == (1, 2, 3)
    line = describe("x", 50, 50, 100, 50.0, Sweep(tmp_path, 6, 1))  # 1 s per step, half done
    # this job: 50 s left; 3 jobs not started, 100 s each, on 2 running jobs: +150 s
    assert "step 50/100 (50%)" in line and "00:50 left" in line and "1/6 jobs done, ~03:20 left" in line


def test_auto_is_quiet_without_a_terminal_and_under_tqdm_disable(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # CI sets it; set below where the test wants it
    assert progress_enabled("true") and progress_enabled(True) and not progress_enabled(False)
    assert not progress_enabled("auto")  # pytest captures stdout/stderr: no terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress_enabled("auto")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_enabled("auto") and progress_enabled("true")
    with pytest.raises(ConfigError, match="progress='loud' is unknown"):
        progress_enabled("loud")


def test_make_targets_leave_progress_at_its_default():
    out = subprocess.run(["make", "-n", "all", "quick", "fig3", "SEEDS=2"], cwd=ROOT, capture_output=True, text=True)
    lines = out.stdout.replace("\\\n", " ").splitlines()
    trains = [line for line in lines if "experiments.train" in line or "experiments.together" in line]
    assert len(trains) == 4 and not any("progress=" in line for line in trains), out.stdout


@pytest.mark.slow
def test_a_sweep_prints_progress_lines(tmp_path):
    """What `make fig1` shows on a terminal (progress=true here: pytest's pipes are no terminal)."""
    sweep = tmp_path / "sweep"
    args = ["-m", "model=dln", "model.num_layers=4", "data=gaussian", "data.num_train=64", "data.num_test=64",
            "train.batch_size=32", "train.steps=30", "train.eval_every=0", "train.threads=1", "norm=none,batch",
            "optim.lr=1e-4", "train.deterministic=false", "progress=true", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "BNSTUDY_PROGRESS_S": "0", "PYTHONPATH": str(ROOT)}  # this checkout
    out = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "run [job 1/2] none lr=0.0001 seed=0: step 1/30 (3%)" in text
    assert re.search(r"run \[job 2/2\] batch lr=0.0001 seed=0: step \d+/30 \(\d+%\), [\d.]+ steps/s, [\d:]+ left", text)
    assert "; sweep: 1/2 jobs done, ~" in text and " left" in text


# ------------------------------------------------------------------------------------------ threads
@pytest.mark.parametrize("cores, busy, omp, want", [
    (2, 0.0, None, 2), (2, 0.9, None, 1), (2, 1.6, None, 1), (2, 5.0, None, 1), (8, 3.2, None, 5),
    (8, 0.0, "2", 2), (2, 0.2, "1", 1),
])
def test_auto_threads_uses_the_free_cores(monkeypatch, cores, busy, omp, want):
    monkeypatch.setattr(threads, "usable_cores", lambda: list(range(cores)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if omp:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert threads.auto_threads(busy) == want


@pytest.mark.parametrize("cores, busy, want", [(2, 0.0, 2), (2, 0.4, 2), (2, 1.0, 3), (2, 1.6, 4), (2, 9.0, 4),
                                               (8, 2.0, 10), (1, 0.0, 1)])
def test_pool_size_adds_a_run_per_busy_core(monkeypatch, cores, busy, want):
    """make all's single-thread workers: one per core, one more per core other processes keep busy (the
    kernel shares cores per runnable thread), at most twice the cores."""
    monkeypatch.setattr(threads, "usable_cores", lambda: list(range(cores)))
    assert threads.pool_size(busy) == want


def test_threads_setting(monkeypatch):
    monkeypatch.setattr(threads, "auto_threads", lambda: 3)
    assert threads.resolve_threads("auto") == 3 and threads.resolve_threads(0) == 0
    assert threads.resolve_threads(4) == 4
    with pytest.raises(ConfigError, match="train.threads='many'"):
        threads.resolve_threads("many")
    busy = threads.busy_cores(0.05)
    assert 0.0 <= busy <= len(threads.usable_cores()) + 1e-9


def test_a_busy_machine_is_named(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1])
    monkeypatch.setattr(os, "getloadavg", lambda: (3.4, 1.0, 1.0))
    msg = threads.load_warning(2)
    assert "load average 3.4 on 2 cores" in msg and "train.threads=auto" in msg
    monkeypatch.setattr(os, "getloadavg", lambda: (2.5, 1.0, 1.0))  # our own two jobs, a little more
    assert threads.load_warning(2) is None


def test_wait_policy_is_passive_only_on_a_busy_machine(monkeypatch):
    """PASSIVE (idle OpenMP threads sleep) from half a busy core on; on an idle machine OpenMP's default (its
    threads spin briefly: PASSIVE made an idle quick VGG 1.5x slower); a set value is kept."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert threads.choose_wait_policy(busy=0.2) == "default" and "OMP_WAIT_POLICY" not in os.environ
    assert threads.choose_wait_policy(busy=threads.PASSIVE_BUSY) == "PASSIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threads.choose_wait_policy(busy=1.9) == "ACTIVE" and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_entry_point_chooses_the_wait_policy_before_torch():
    """The choice is made before torch loads OpenMP (it reads the policy once); a set value is kept."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "import os, sys; import bnstudy.threads as t; print(t.WAIT_POLICY, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True)
    assert out.stdout.split() == ["ACTIVE", "False"], out.stderr
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.split()[0] in ("default", "PASSIVE") and out.stdout.split()[1] == "False", out.stderr
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import experiments.train"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    modules = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert modules.index("bnstudy.threads") < modules.index("torch"), "the entry point imports torch first"
