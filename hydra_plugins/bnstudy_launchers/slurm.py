"""bnstudy's SLURM launcher (``hydra/launcher=slurm``): hydra-submitit-launcher's, made to carry a sweep of
bnstudy runs on a cluster and to say what became of each job.

The plugin's own launcher submits the sweep as one array job, then waits on each job's result in job
order: the first job that ends without one (cancelled, killed, out of memory) raises there, so the sweep
stops without its summary and the jobs after it are never read; and with the cluster's accounting off
every status poll prints "Bypassing sacct error". This launcher keeps the plugin's job (``__call__``: the
same pickled call runs the Hydra job on the node) and its requeue (``checkpoint``: after submitit's
signal, USR2 before the time limit or at a preemption, the same call is requeued and the run resumes from
its checkpoint), and changes the submitting side:

* a job whose folder already holds a finished run is not submitted, so rerunning the sweep's command
  with ``hydra.sweep.dir`` runs only what is missing (``experiments.preflight`` refuses the rerun while a
  job of the sweep is still in the queue, ``queued_jobs``);
* it prints each job's SLURM id, where the logs are, and a line whenever the jobs done, running or
  pending change;
* it follows the jobs through their result files and ``squeue``, not ``sacct``: quiet, and right whether
  the cluster keeps accounting or not; a job that leaves the queue without a result is not waited for;
* every job's SLURM id, end and log go to the sweep's summary (``experiments.preflight``), which names the
  jobs that did not finish and exits 1; what a run became is read from its folder, never from submitit's
  result pickle (reading a pickle runs code).

The module is imported by Hydra's plugin scan on every start: it imports only the plugin's module at the
top, everything else when a sweep launches. Hydra's scan runs the module before it is in ``sys.modules``,
so no ``from __future__ import annotations`` here (``dataclass`` would look the module up and fail).
"""

import logging
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as PluginSlurmLauncher

log = logging.getLogger(__name__)

# SLURM job states (squeue %T) after which a job never runs again; any other state (PENDING, RUNNING,
# REQUEUED, COMPLETING, SUSPENDED, ...) is still in the queue
ENDED = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
                   "PREEMPTED", "REVOKED", "TIMEOUT"})
RUNNING = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"})
GRACE_S = 10.0  # a job that has left the queue may still be writing its result file (a shared file system)
MAX_POLL_S = 30.0  # squeue at most every 2 s at first, then less often, never less than every 30 s
JOB_ID = re.compile(r"^(\d+)(?:_(\d+))?$")  # a submitit folder's name: <array id>_<index>


def squeue(job_ids: Sequence[str]) -> dict[str, str] | None:
    """{job id: state} of the given jobs or arrays (each array element on its own, ``123_4``), finished
    ones included while SLURM still shows them (``MinJobAge``); None when squeue cannot be run. Jobs SLURM
    no longer knows are left out."""
    if not job_ids:
        return {}
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs", ",".join(job_ids)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        # every id unknown (purged): "Invalid job id specified"; anything else is a failed call
        return {} if "invalid job id" in done.stderr.lower() else None
    states = {}
    for line in done.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            states[job] = state.split()[0].rstrip("+")
    return states


def final_state(job_id: str) -> str:
    """How a job that SLURM no longer shows ended, from accounting where the cluster keeps it ("" where not)."""
    try:
        done = subprocess.run(["sacct", "--noheader", "--parsable2", "--format=State", "--jobs", job_id],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    states = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return states[0] if done.returncode == 0 and states else ""


def queued_jobs(sweep_dir: Path) -> list[str]:
    """Jobs of earlier submissions of this sweep (its ``.submitit/<id>`` folders) that are still in the
    queue, as ``id STATE``; empty where there are none or no squeue to ask."""
    folder = Path(sweep_dir) / ".submitit"
    ids = sorted({m.group(1) for p in (folder.iterdir() if folder.is_dir() else ())
                  if (m := JOB_ID.match(p.name))})
    states = squeue(ids) or {}
    return [f"{job} {state}" for job, state in sorted(states.items()) if state not in ENDED]


def last_error(log_file: Path) -> str:
    """The last ``error: ...`` line a job printed (``experiments.train``'s one-line errors), or ""."""
    try:
        lines = Path(log_file).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.startswith("error: ")), "")


@dataclass
class Job:
    """One job of the sweep: its number, overrides and run folder, and once submitted its SLURM job."""

    num: int
    overrides: list[str]
    folder: Path
    submitted: Any = None  # submitit's SlurmJob
    state: str = "PENDING"  # the last state squeue gave
    ended: str | None = None  # "finished" (its result file is there), or without one: the SLURM state ("" unknown)
    left_at: float | None = None  # when squeue last stopped showing it as queued

    @property
    def slurm_id(self) -> str:
        return self.submitted.job_id

    @property
    def log_file(self) -> Path:
        return Path(self.submitted.paths.stderr)

    def note(self) -> str:
        """What the sweep's summary says about this job: its SLURM id, how it ended, its last error, its log."""
        how = ("" if self.ended in (None, "finished") else
               f" ended {self.ended} without a result" if self.ended else " left the queue without a result")
        error = last_error(self.log_file)
        return f"SLURM job {self.slurm_id}{how}{'; ' + error if error else ''}; log: {self.log_file}"


class SlurmLauncher(PluginSlurmLauncher):
    """``hydra/launcher=slurm``: the plugin's SLURM launcher, submitting what is missing and following every
    job to its end (the module's docstring)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from experiments.preflight import STATE, job_dir

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        loader = self.hydra_context.config_loader
        jobs = []
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            _, folder = job_dir(loader.load_sweep_config(self.config, list(overrides)), num)
            jobs.append(Job(num, list(overrides), folder))
        todo = [job for job in jobs if not _finished(job.folder)]
        for job in jobs:
            if job not in todo:
                log.info(f"\t#{job.num} : already finished, not submitted ({' '.join(_shown(job.overrides))})")
        if todo:
            try:
                self._submit(todo, sweep_dir)
            except Exception as e:  # sbatch refused the array (a partition, GPU or memory it cannot give) or is missing
                from submitit.core.utils import FailedJobError

                if not isinstance(e, (FailedJobError, OSError)):
                    raise
                print(f"error: SLURM did not take the sweep ({' '.join(str(e).split())}): check hydra.launcher."
                      f"partition, gpus_per_node, cpus_per_task, mem_gb and timeout_min against the cluster "
                      f"(sinfo); no job was submitted", file=sys.stderr)
                STATE.setdefault("job_notes", {}).update({job.num: "not submitted (the error above)" for job in todo})
                return [JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED) for job in jobs]
            try:
                _watch(todo, len(jobs), self.config.name)
            except KeyboardInterrupt:
                ids = sorted({job.slurm_id.split("_")[0] for job in todo})
                log.warning(f"stopped waiting: the jobs go on in SLURM (scancel {' '.join(ids)} stops them); "
                            f"rerun the same command with hydra.sweep.dir={sweep_dir} when they have ended")
                raise
        STATE.setdefault("job_notes", {}).update({job.num: job.note() for job in todo})
        # What each run became is in its folder, which the sweep's summary (experiments.preflight) reads: it
        # names every job that did not finish and exits 1. So the jobs' result files (pickles, which run code
        # when read) are never loaded: each job returns None to Hydra, as bnstudy's task function does.
        return [JobReturn(overrides=job.overrides, status=JobStatus.COMPLETED) for job in jobs]

    def _submit(self, jobs: list[Job], sweep_dir: Path) -> None:
        """Submit the jobs as one array (the plugin's executor and parameters, its pickled call per job)."""
        import submitit
        from hydra.core.singleton import Singleton
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
        from omegaconf import OmegaConf

        params = dict(self.params)
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=params.pop("submitit_folder"),
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in generic else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state = Singleton.get_state()
        calls = [(job.overrides, "hydra.sweep.dir", job.num, f"job_id_for_{job.num}", state) for job in jobs]
        submitted = executor.map_array(self, *zip(*calls))
        for job, sub in zip(jobs, submitted):
            job.submitted = sub
            log.info(f"\t#{job.num} : SLURM job {job.slurm_id} ({' '.join(_shown(job.overrides))})")
        array = jobs[0].slurm_id.split("_")[0]
        if len(jobs) == 1:  # submitit submits a lone job as a plain job, not an array
            where = f"as SLURM job {array}; log: {jobs[0].log_file}"
        else:
            where = f"as SLURM array {array}; logs: {jobs[0].log_file.parent.parent}/{array}_<index>/"
        log.info(f"submitted {len(jobs)} job(s) {where} (squeue -j {array} shows them, scancel {array} cancels them)")


def _finished(folder: Path) -> bool:
    from bnstudy.records import FINISHED
    from experiments.preflight import job_status

    return job_status(folder)[0] in FINISHED


def _shown(overrides: list[str]) -> list[str]:
    from hydra.core.utils import filter_overrides

    return list(filter_overrides(overrides))


def _watch(jobs: list[Job], total: int, name: str) -> None:
    """Wait until every job has a result or has left the queue without one, saying how many are done,
    running and pending each time that changes. Result files are looked at every second, squeue more
    rarely (every 2 s at first, then a quarter of the time waited so far, at most ``MAX_POLL_S``)."""
    start, next_poll, shown, squeue_failed = time.time(), 0.0, None, False
    already = total - len(jobs)
    waiting = list(jobs)
    while waiting:
        now = time.time()
        for job in list(waiting):
            if Path(job.submitted.paths.result_pickle).exists():  # there, never unpickled: see launch
                job.ended = "finished"
                waiting.remove(job)
        if waiting and now >= next_poll:
            states = squeue([job.slurm_id for job in waiting])
            next_poll = now + min(MAX_POLL_S, max(2.0, (now - start) / 4))
            if states is None and not squeue_failed:
                squeue_failed = True
                log.warning("squeue does not answer: waiting on the jobs' result files alone (a job that ends "
                            "without one is not seen until squeue answers again)")
            for job in list(waiting) if states is not None else ():
                state = states.get(job.slurm_id)
                if state is not None and state not in ENDED:
                    job.state, job.left_at = state, None
                    continue
                job.left_at = job.left_at or now
                job.state = state or "GONE"
                if now - job.left_at >= GRACE_S and not Path(job.submitted.paths.result_pickle).exists():
                    job.ended = state or final_state(job.slurm_id)
                    waiting.remove(job)
                    log.warning(f"#{job.num} : {job.note()}")
        running = sum(job.state in RUNNING for job in waiting)
        pending = sum(job.state not in RUNNING and job.left_at is None for job in waiting)
        counts = (total - running - pending, running, pending)  # a job that has left the queue is done
        if counts != shown:
            shown = counts
            done = f"{counts[0]}/{total} jobs done" + (f" ({already} before this submission)" if already else "")
            log.info(f"{name}: {done}, {counts[1]} running, {counts[2]} pending")
        if waiting:
            time.sleep(1.0)


