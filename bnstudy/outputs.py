"""Where a training trajectory's records go: ``RunOutput`` owns one run folder's life, ``Outputs`` is the
loop's one sink for one folder or several.

A ``RunOutput`` holds its folder's lock while the run trains and decides, writing nothing, what the folder
allows (``RunFolder.check``: a new run, one to resume, a finished one left alone, or a refusal); a resume
must run the code and libraries the run started with (``resume_mismatch``). It then writes
``summary.json`` (running, at each checkpoint, at the end, and on a failure: ``failed``, or ``interrupted``
for Ctrl-C and SIGTERM), the rows of ``metrics.csv`` (whole rows, on the log schedule), the checkpoint (with
its rows' offset and its measurements' state) and the final weights. A write the user can fix (a full disk,
a read-only folder) fails as one ``RunError`` line.

``Outputs`` writes runs that differ only in what they measure (one trajectory: ``bnstudy.build.TRAJECTORY_FREE``)
as one sink: the loop's own rows go to every folder, each run's measurements to its own, and every folder is
written byte for byte as its run alone would write it, with a checkpoint of its own (resumable alone) and a
summary naming the others (``trained_with``). Folders whose checkpoints are not at one step (a kill between
two of their writes) go on one at a time (``trajectories``).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import logging
import time
from pathlib import Path
from typing import Iterator

import torch
from omegaconf import OmegaConf

from bnstudy.config import Config
from bnstudy.measures.registry import Row
from bnstudy.progress import Sweep
from bnstudy.provenance import resume_differences
from bnstudy.records import FINAL, FINISHED, SUMMARY, MetricsWriter, RunError, RunFolder, RunLock, write_atomic

log = logging.getLogger("bnstudy")

# errors of a write that the user can fix (a full disk or quota, a read-only or forbidden folder)
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class CheckpointError(RunError):
    """A checkpoint that cannot be loaded safely."""


def checkpoint_error(path: Path, e: Exception) -> CheckpointError:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()] or [""]
    reason = next((s for s in lines if "GLOBAL" in s), lines[0])  # torch names the refused global
    return CheckpointError(f"checkpoint {path} cannot be loaded safely ({type(e).__name__}: {reason}); "
                           f"delete it to restart this run from step 0, or delete {path.parent} to start over")


def _iso(t: float) -> str:
    """A time.time() as local ISO 8601 with milliseconds (summary.json: when the loop ran)."""
    return datetime.datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


class RunOutput:
    """One run folder: what it holds (``previous``, once checked), this run's summary and CSV while it trains."""

    def __init__(self, cfg: Config, out_dir: Path, sweep: Sweep | None = None):
        self.cfg, self.out_dir, self.sweep = cfg, Path(out_dir), sweep
        self.folder = RunFolder(self.out_dir)
        self.config = OmegaConf.to_container(OmegaConf.structured(cfg))
        self.previous: dict | None = None  # the summary the folder holds, if any
        self.summary: dict | None = None  # this run's, once it trains
        self.environment: dict | None = None
        self.rows: list[Row] = []  # waiting for the next flush
        self._lock: RunLock | None = None
        self._writer: MetricsWriter | None = None
        self._checkpoint: dict | None = None

    # ------------------------------------------------------------------ before training
    def lock(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self.folder.lock().__enter__()

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.__exit__()
            self._lock = None

    def check(self) -> None:
        """What the folder holds may go on as this run (``RunFolder.check``, under the lock)."""
        self.previous = self.folder.check(self.config, self.cfg.resume, holding_lock=True)
        if self.finished:
            log.info("%s: already %s at step %s; nothing to do", self.out_dir, self.previous["status"],
                     self.previous.get("step"))

    @property
    def finished(self) -> bool:
        return self.previous is not None and self.previous.get("status") in FINISHED

    @property
    def resumes(self) -> bool:
        return bool(self.cfg.resume) and self.folder.checkpoint.exists()

    def read_checkpoint(self, device: torch.device) -> dict:
        """The checkpoint's state, loaded as data only: a tampered or truncated file is refused, never run."""
        if self._checkpoint is None:
            path = self.folder.checkpoint
            try:
                state = torch.load(path, map_location=device, weights_only=True)
                state["step"], state["csv_offset"], state["probes"]
            except Exception as e:
                raise checkpoint_error(path, e) from e
            self._checkpoint = state
        return self._checkpoint

    def check_environment(self, env: dict) -> None:
        """A resume runs the code and libraries the run started with, or says so (``resume_mismatch``); the
        folder's environment record is ``env``, with the earlier ones of a resumed run."""
        previous = self.previous
        if previous is None or not self.folder.checkpoint.exists():
            self.environment = env
            return
        diff = resume_differences(previous.get("environment"), env)
        if diff and self.cfg.resume_mismatch != "allow":
            raise RunError(f"{self.out_dir} was started with other code or libraries ({'; '.join(diff)}): "
                           f"resume it where it started, or pass resume_mismatch=allow to resume anyway "
                           f"(recorded in summary.json), or pick another hydra.run.dir")
        before = dict(previous.get("environment") or {})
        self.environment = {**env, "earlier": [*before.pop("earlier", []), before],
                            "resume_mismatch": {"allowed": True, "differences": diff} if diff else None}

    # ------------------------------------------------------------------ while training
    def start(self, step: int, offset: int | None, trained_with: list[str]) -> None:
        """The summary says running (before metrics.csv: a CSV with no summary is never the suite's); the CSV
        is opened, cut back to the checkpoint's ``offset`` on a resume."""
        resumed = offset is not None
        self.summary = {"status": "running", "step": step, "config": self.config, "out_dir": str(self.out_dir),
                        "resumed_from": step if resumed else None, "environment": self.environment}
        if trained_with:  # one trajectory, several folders: each names the others
            self.summary["trained_with"] = trained_with
        self.folder.write_summary(self.summary)
        try:
            self._writer = self.folder.metrics_writer(truncate_to=offset or 0)
        except (ValueError, FileNotFoundError) as e:
            raise CheckpointError(f"{e}: delete {self.folder.checkpoint} to restart this run from step 0") from e
        if resumed:
            log.info("%s: resuming from step %d", self.out_dir, step)
        self.rows = []

    def flush(self) -> None:
        self._writer.write(self.rows)
        self.rows = []

    def save_checkpoint(self, state: dict) -> None:
        """A whole checkpoint of this folder's own (``state`` plus its CSV's offset), after the rows it counts
        are on disk."""
        state = {**state, "csv_offset": self._writer.offset}
        self._writer.sync()
        self.folder.save_checkpoint(lambda f: torch.save(state, f))

    def record(self, **values) -> None:
        self.summary.update(values)
        self.folder.write_summary(self.summary)

    def finish(self, **values) -> None:
        """The final summary; the checkpoint goes (the CSV is closed by then)."""
        self.record(**values)
        self.folder.checkpoint.unlink(missing_ok=True)

    def close_csv(self) -> None:
        self._writer.close()

    def fail(self, e: BaseException) -> None:
        """A run stopped by ``e``: its summary says ``interrupted`` (Ctrl-C, SIGTERM) or ``failed``."""
        if self.summary is None or self.summary["status"] != "running":
            return
        interrupted = isinstance(e, (KeyboardInterrupt, SystemExit))
        self.summary.update(status="interrupted" if interrupted else "failed", error=f"{type(e).__name__}: {e}")
        try:
            self.folder.write_summary(self.summary)
        except OSError as again:  # the disk is still full: the lock's release marks it interrupted
            log.warning("%s: could not record the failure in %s (%s)", self.out_dir, SUMMARY, again)


class Outputs:
    """The folders of one trajectory as one sink (see the module docstring); the first is the trajectory's own."""

    def __init__(self, runs: list[RunOutput]):
        self.runs = runs

    @contextlib.contextmanager
    def open(self) -> Iterator["Outputs"]:
        """Within: every folder locked and checked; yields those to train (a finished one is left alone).
        An exception records the failure in each folder that was training; a failed write the user can fix
        becomes one ``RunError`` line."""
        todo = Outputs([])
        try:
            for o in self.runs:
                o.lock()
            for o in self.runs:
                o.check()
            todo.runs = [o for o in self.runs if not o.finished]
            yield todo
        except BaseException as e:
            for o in todo.runs:
                o.fail(e)
            if isinstance(e, OSError):
                raise self._write_error(e) from e
            raise
        finally:
            for o in self.runs:
                o.unlock()

    def summaries(self) -> list[dict]:
        return [o.summary or o.previous for o in self.runs]

    def trajectories(self, device: torch.device) -> list["Outputs"]:
        """The folders as they can go on: together when none has a checkpoint or all have one at one step,
        else one at a time."""
        runs, resumes = self.runs, [o.resumes for o in self.runs]
        if len(runs) <= 1 or not any(resumes) or (
                all(resumes) and len({o.read_checkpoint(device)["step"] for o in runs}) == 1):
            return [self] if runs else []
        for o in runs:
            log.info("%s: resuming on its own (its checkpoint is not at its companions' step)", o.out_dir)
        return [Outputs([o]) for o in runs]

    def _write_error(self, e: OSError) -> BaseException:
        """A write the user can fix as one line saying how to go on; any other OSError as it is."""
        if e.errno not in WRITE_ERRNOS:
            return e
        out_dir = self.runs[0].out_dir
        return RunError(f"cannot write in {out_dir} ({e.strerror}: {e.filename or out_dir}): free some space or "
                        f"pick a writable folder, then resume: the same command with hydra.run.dir={out_dir}")

    # ------------------------------------------------------------------ the sink
    def check_environment(self, env: dict) -> None:
        for o in self.runs:
            o.check_environment(env)

    def checkpoints(self, device: torch.device) -> list[dict]:
        return [o.read_checkpoint(device) for o in self.runs]

    def start(self, step: int, offsets: list[int] | None) -> None:
        for i, o in enumerate(self.runs):
            others = [str(other.out_dir) for other in self.runs if other is not o]
            o.start(step, offsets[i] if offsets else None, others)

    def add(self, rows: list[Row]) -> None:
        """The loop's own rows: every folder's."""
        for o in self.runs:
            o.rows += rows

    def add_each(self, rows: list[list[Row]]) -> None:
        """Each run's own rows (its measurements'), in the order of the runs."""
        for o, own in zip(self.runs, rows):
            o.rows += own

    def flush(self) -> None:
        for o in self.runs:
            o.flush()

    def save_checkpoint(self, state: dict, probes: list[dict], latest: dict) -> None:
        """Each folder's checkpoint (``state``, with its run's measurements' state), then each summary names
        the step a resume starts from and the values reached by then."""
        for o, own in zip(self.runs, probes):
            o.save_checkpoint({**state, "probes": own})
        for o in self.runs:
            o.record(step=state["step"], final=latest)

    def finish(self, status: str, step: int, t0: float, final: dict, weights: dict | None) -> None:
        """The last rows, the final weights (``final.pt``, the model's state_dict copied to the CPU once:
        tensors only, it loads with ``weights_only=True``), then each summary."""
        self.flush()
        for o in self.runs:
            o.close_csv()
        if weights is not None:
            cpu = {k: v.detach().cpu() for k, v in weights.items()}
            for o in self.runs:
                write_atomic(o.out_dir / FINAL, lambda f: torch.save(cpu, f))
        end = time.time()
        for o in self.runs:
            o.finish(status=status, step=step, wall_time_s=round(end - t0, 3), started_at=_iso(t0),
                     finished_at=_iso(end), final=final)
