"""The cluster path against a real SLURM scheduler: a one-node cluster on this machine
(``scripts/slurm-local.sh``). Run with ``make test-cluster`` (root: it starts the cluster, runs these,
and stops it again); ``make test`` leaves them out (``-m "not cluster"``).

1. a tiny fig1 sweep through ``make fig1 SCALE=tiny LAUNCHER=slurm`` (docs/sweeps.md's command) gives the
   basic launcher's CSVs byte for byte, its figure, and runs that ``python -m bnstudy.runs`` and the report
   read like any other; the console shows SLURM ids, the logs and the jobs done, and no sacct noise;
2. a job that gets submitit's signal (USR2, as SLURM sends it before the time limit or at a preemption)
   is requeued, resumes from its checkpoint and ends byte-identical to an uninterrupted run;
3. a job cancelled for good is named in the sweep's summary while the others complete; rerunning the
   command while it is queued is refused, and afterwards submits only that job, which resumes and ends
   byte-identical;
4. a job that fails on its node (a bad data root) fails alone, with its one-line error in its log, and
   the sweep's exit status says so.

Every check is on values (bytes of CSVs, statuses, the lines printed), never on time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parent.parent
# each job asks for what a tiny run needs, so that the 2-core test node runs two at a time
CPU_JOB = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
# a DLN run long enough to be signalled or cancelled mid-run: checkpoints every 200 steps
DLN = ["model=dln", "data=gaussian", "train.batch_size=100", "data.num_train=200", "data.num_test=100",
       "train.eval_every=100", "optim.lr=1e-6", "train.threads=1", "progress=false", "train.checkpoint_every=200"]
WAIT_S = 300


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1", "HYDRA_DEPRECATION_WARNINGS_AS_ERRORS": "1"}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """The local cluster must be up: these tests fail (not skip) without it."""
    if shutil.which("sinfo") is None:
        pytest.fail("SLURM's client is not installed: apt-get install slurmctld slurmd slurm-client munge, "
                    "then make test-cluster")
    up = subprocess.run(["bash", str(REPO / "scripts" / "slurm-local.sh"), "check"], capture_output=True, text=True)
    assert up.returncode == 0, f"no SLURM cluster here: make test-cluster starts one\n{up.stderr}"


def _train(cwd: Path, *overrides: str, launcher: str = "slurm") -> list[str]:
    extra = [f"hydra/launcher={launcher}", *CPU_JOB] if launcher == "slurm" else []
    return [sys.executable, "-m", "experiments.train", "-m", *overrides, *extra]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=WAIT_S)


def _start(cmd: list[str], cwd: Path, out: Path) -> subprocess.Popen:
    """A sweep in the background, stdout and stderr together in ``out``."""
    return subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=out.open("w"), stderr=subprocess.STDOUT)


def _wait_for(what, timeout: float = 120.0):
    """Poll ``what()`` until it returns something truthy (a file appearing, a line printed)."""
    end = time.time() + timeout
    while time.time() < end:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"gave up waiting after {timeout:.0f} s")


def _slurm_id(out: Path, num: int) -> str | None:
    """The SLURM id the launcher printed for job #num (``#1 : SLURM job 16_1 (...)``)."""
    m = re.search(rf"#{num} : SLURM job (\d+(?:_\d+)?) ", out.read_text())
    return m.group(1) if m else None


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _csvs(sweep: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(sweep.glob("*/metrics.csv"))}


def _reference(cwd: Path, *overrides: str) -> subprocess.Popen:
    """The same runs through Hydra's basic launcher, in the background (the uninterrupted reference)."""
    return _start(_train(cwd, *overrides, "hydra.sweep.dir=reference", launcher="basic"), cwd, cwd / "reference.log")


# ------------------------------------------------------------------------------------------ 1. a sweep
def test_make_fig1_on_slurm_is_the_basic_sweep(tmp_path: Path):
    """docs/sweeps.md's local command, `make fig1 SCALE=tiny LAUNCHER=slurm`, as written plus RESULTS."""
    docs = (REPO / "docs" / "sweeps.md").read_text()
    assert "make fig1 SCALE=tiny LAUNCHER=slurm" in docs
    basic = _reference(tmp_path, "experiment=fig1", "scale=tiny")
    made = subprocess.run(["make", "-f", str(REPO / "Makefile"), "fig1", "SCALE=tiny", "LAUNCHER=slurm",
                           f"PY={sys.executable}", "RESULTS=results", "RUN_ID=on_slurm"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=WAIT_S)
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert basic.wait(timeout=WAIT_S) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    sweep = tmp_path / "results" / "fig1" / "tiny" / "on_slurm"
    csvs = _csvs(sweep)
    assert sorted(csvs) == ["0", "1", "2", "3"]
    assert csvs == _csvs(tmp_path / "reference")  # byte for byte
    assert (tmp_path / "results" / "figures" / "fig1_tiny.png").stat().st_size > 10_000

    console = made.stdout + made.stderr
    assert "sacct" not in console and "Bypassing" not in console  # no noise per status poll
    ids = re.findall(r"#(\d) : SLURM job (\d+)_(\d)", console)
    assert sorted(num for num, _, _ in ids) == ["0", "1", "2", "3"] and len({a for _, a, _ in ids}) == 1
    array = ids[0][1]
    assert f"as SLURM array {array}; logs: " in console and f"/on_slurm/.submitit/{array}_<index>/" in console
    assert "fig1: 4/4 jobs done, 0 running, 0 pending" in console
    assert "4 job(s): 4 completed" in console
    for num, array_id, index in ids:
        log = sweep / ".submitit" / f"{array_id}_{index}" / f"{array_id}_{index}_0_log.err"
        assert log.is_file()

    runs = _run([sys.executable, "-m", "bnstudy.runs", "results"], tmp_path)
    assert runs.returncode == 0, runs.stderr
    assert len(re.findall(r"\bcompleted\b", runs.stdout)) == 4, runs.stdout
    report = _run([sys.executable, "-m", "experiments.report", "--results", "results", "--scale", "tiny"], tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "fig1" in (tmp_path / "results" / "REPORT.md").read_text()


# ----------------------------------------------------------------------------------- 2. requeue, resume
@pytest.mark.parametrize("timeout_min, case", [(5, "timed-out"), (60, "preempted")])
def test_signalled_job_is_requeued_and_resumes(tmp_path: Path, timeout_min: int, case: str):
    """submitit's signal mid-run: with timeout_min <= 10 submitit counts it as the time limit's (one of
    max_num_timeout requeues), later as a preemption (no limit); either way the job is requeued and the
    run resumes from its last checkpoint, ending byte-identical to an uninterrupted run."""
    run = [*DLN, "train.steps=4000", "name=requeue"]
    reference = _reference(tmp_path, *run)
    out = tmp_path / "sweep.log"
    sweep = _start(_train(tmp_path, *run, "hydra.sweep.dir=sweep", f"hydra.launcher.timeout_min={timeout_min}",
                          "hydra.launcher.max_num_timeout=2"), tmp_path, out)
    job = _wait_for(lambda: _slurm_id(out, 0))
    _wait_for(lambda: (tmp_path / "sweep" / "0" / "checkpoint.pt").exists())
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    assert sweep.wait(timeout=WAIT_S) == 0, out.read_text()[-3000:]
    assert reference.wait(timeout=WAIT_S) == 0

    summary = _summary(tmp_path / "sweep" / "0")
    assert summary["status"] == "completed" and summary["resumed_from"] >= 200
    log = (tmp_path / "sweep" / ".submitit" / job / f"{job}_0_log.err").read_text()
    assert f"this job is {case}" in log  # submitit's own decision, in the job's log
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, check=True).stdout
    assert re.search(r"\bRestarts=1\b", shown), shown  # SLURM requeued it once
    assert (tmp_path / "sweep" / "0" / "metrics.csv").read_bytes() == (tmp_path / "reference" / "0" / "metrics.csv").read_bytes()
    assert "1 job(s): 1 completed" in out.read_text()


# ---------------------------------------------------------------------------------- 3. cancelled for good
def test_cancelled_job_is_named_and_a_rerun_runs_only_it(tmp_path: Path):
    steps = "train.steps=300,8000,400"  # job #1 runs long enough to be cancelled mid-run
    command = _train(tmp_path, *DLN, steps, "name=cancel", "hydra.sweep.dir=sweep")
    reference = _reference(tmp_path, *DLN, "train.steps=8000", "name=cancel")
    out = tmp_path / "first.log"
    first = _start(command, tmp_path, out)
    job = _wait_for(lambda: _slurm_id(out, 1))
    again = _run(command, tmp_path)  # while the sweep's jobs are queued: refused, nothing submitted
    assert again.returncode == 2 and "still in the SLURM queue" in again.stderr, again.stderr[-2000:]

    _wait_for(lambda: (tmp_path / "sweep" / "1" / "checkpoint.pt").exists())
    subprocess.run(["scancel", job], check=True)  # SIGTERM (submitit ignores it), SIGKILL KillWait s later
    assert first.wait(timeout=WAIT_S) == 1
    text = out.read_text()
    assert "3 job(s): 2 completed, 1 interrupted" in text
    assert re.search(rf"job #1 \(train\.steps=8000\) interrupted: SLURM job {job} ended CANCELLED without a "
                     rf"result; log: \S+{job}_0_log\.err", text), text[-3000:]
    assert "error: 1 of 3 job(s) did not finish (#1)" in text
    done = {n: (tmp_path / "sweep" / n / "metrics.csv").read_bytes() for n in ("0", "2")}
    assert {n: _summary(tmp_path / "sweep" / n)["status"] for n in ("0", "2")} == {"0": "completed", "2": "completed"}

    rerun = _run(command, tmp_path)  # the same command: only the cancelled job goes to SLURM
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    console = rerun.stdout + rerun.stderr
    assert "#0 : already finished, not submitted" in console and "#2 : already finished, not submitted" in console
    assert re.search(r"#1 : SLURM job \d+ ", console) and "submitted 1 job(s)" in console
    assert "3 job(s): 3 completed" in console
    assert {n: (tmp_path / "sweep" / n / "metrics.csv").read_bytes() for n in ("0", "2")} == done
    assert reference.wait(timeout=WAIT_S) == 0
    summary = _summary(tmp_path / "sweep" / "1")
    assert summary["status"] == "completed" and summary["resumed_from"] >= 200  # from the cancelled job's checkpoint
    assert (tmp_path / "sweep" / "1" / "metrics.csv").read_bytes() == (tmp_path / "reference" / "0" / "metrics.csv").read_bytes()


# ------------------------------------------------------------------------------------ 4. a failing node
def test_job_failing_on_its_node_fails_alone(tmp_path: Path):
    done = _run(_train(tmp_path, "experiment=fig1", "scale=tiny", "norm=none", "optim.lr=0.1",
                       "data.root=null,/nonexistent/fashion", "hydra.sweep.dir=sweep"), tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert _summary(tmp_path / "sweep" / "0")["status"] == "completed"
    assert not (tmp_path / "sweep" / "1").exists()  # nothing half-made is left
    m = re.search(r"job #1 \(data\.root=/nonexistent/fashion\) not started: SLURM job (\S+); "
                  r"error: Fashion-MNIST not found[^\n]*; log: (\S+_log\.err)\n", done.stderr)
    assert m, done.stderr[-3000:]
    log = Path(m.group(2)).read_text()
    errors = [line for line in log.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "/nonexistent/fashion" in errors[0] and "Traceback" not in log
    assert "error: 1 of 2 job(s) did not finish (#1)" in done.stderr


def test_job_out_of_requeues_stops_at_its_checkpoint(tmp_path: Path):
    """max_num_timeout=0: the time limit's signal ends the job without a requeue. The run stops "failed" at
    its last checkpoint with one line in its log (no traceback), and the summary names it."""
    out = tmp_path / "sweep.log"
    sweep = _start(_train(tmp_path, *DLN, "train.steps=4000", "name=requeue", "hydra.sweep.dir=sweep",
                          "hydra.launcher.timeout_min=5", "hydra.launcher.max_num_timeout=0"), tmp_path, out)
    job = _wait_for(lambda: _slurm_id(out, 0))
    _wait_for(lambda: (tmp_path / "sweep" / "0" / "checkpoint.pt").exists())
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    assert sweep.wait(timeout=WAIT_S) == 1
    summary = _summary(tmp_path / "sweep" / "0")
    assert summary["status"] == "failed" and summary["step"] >= 200 and "timed-out too many times" in summary["error"]
    assert (tmp_path / "sweep" / "0" / "checkpoint.pt").is_file()  # what a resume starts from
    log = (tmp_path / "sweep" / ".submitit" / job / f"{job}_0_log.err").read_text()
    assert "Traceback" not in log and re.search(r"^error: .*max_num_timeout allows requeues", log, re.M), log[-2000:]
    assert re.search(rf"job #0 \(.*\) failed: UncompletedJobError: Job not requeued because: timed-out too many "
                     rf"times\.; SLURM job {job}; error: ", out.read_text()), out.read_text()[-2000:]
