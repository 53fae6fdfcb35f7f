"""Progress of long work as log lines: the run's step of its total, the sweep's jobs done of its total,
and an estimate of the time left.

One line every ``INTERVAL_S`` seconds per job, through the ``bnstudy`` logger (so also in the job's log
file), never a redrawn bar: two jobs of the parallel launcher writing to one terminal stay readable.
``progress=auto`` (the default) shows them where there is a terminal and ``TQDM_DISABLE`` is not set,
so CI logs stay quiet; ``progress=true`` / ``false`` force them on / off; ``BNSTUDY_PROGRESS_S`` sets
the seconds between lines (default 10; a value that is not a number of seconds >= 0 is ignored with a warning).

The bar is a :class:`tqdm.tqdm` subclass that only changes how it is shown (tqdm's own rate estimate and
time formatting; ``tqdm.contrib``'s pattern), so iterating it costs what iterating tqdm costs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm as _tqdm

log = logging.getLogger("bnstudy")

DEFAULT_INTERVAL_S = 10.0


def interval_from_env(default: float = DEFAULT_INTERVAL_S) -> float:
    """``BNSTUDY_PROGRESS_S``: seconds >= 0 between two progress lines (0: at every step); any other value
    is ignored with a one-line warning (the default is used)."""
    text = os.environ.get("BNSTUDY_PROGRESS_S", "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        print(f"warning: BNSTUDY_PROGRESS_S={text[:40]!r} is not a number of seconds >= 0: ignored, "
              f"progress lines every {default:g} s", file=sys.stderr)
        os.environ["BNSTUDY_PROGRESS_S"] = f"{default:g}"  # the worker processes started later warn no more
        return default
    return value


INTERVAL_S = interval_from_env()  # seconds between two lines of one job
SETTINGS = ("auto", "true", "false")


def progress_enabled(setting) -> bool:
    """``progress``: true/false force it; auto shows it on a terminal unless TQDM_DISABLE is set."""
    value = str(setting).strip().lower()
    if value not in SETTINGS:
        from bnstudy.config import ConfigError

        raise ConfigError(f"progress={setting!r} is unknown; valid: {list(SETTINGS)}")
    if value != "auto":
        return value == "true"
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false"):
        return False
    return any(stream is not None and stream.isatty() for stream in (sys.stdout, sys.stderr))


@dataclass
class Sweep:
    """Where a job sits in its sweep: its folder (``<sweep>/<job>/``), the number of jobs and this one's.

    ``groups``: jobs that are sets of folders trained together (``experiments.together``), counted instead
    of ``dir``'s subfolders; such a job is finished when all its folders are, running when one is."""

    dir: Path | None
    jobs: int
    num: int
    groups: tuple[tuple[Path, ...], ...] = ()

    def counts(self) -> tuple[int, int, int]:
        """(finished, running, started) jobs, from the job folders' summary.json (any launcher)."""
        finished = running = started = 0
        if self.groups:
            jobs = self.groups
        else:
            jobs = tuple((job,) for job in (self.dir.iterdir() if self.dir and self.dir.is_dir() else ())
                         if job.is_dir() and not job.name.startswith("."))
        for folders in jobs:
            statuses = [_status(folder) for folder in folders]
            if self.groups:  # planned folders exist before their jobs start: a summary marks a start
                statuses = [s or None for s in statuses]
            if all(s is None for s in statuses):
                continue
            started += 1
            if all(s in ("completed", "diverged", "failed", "interrupted") for s in statuses):
                finished += 1
            elif "running" in statuses:
                running += 1
        return finished, running, started


def _status(folder: Path) -> str | None:
    """The status in a job folder's summary.json; None where there is none (not started)."""
    try:
        return json.loads((Path(folder) / "summary.json").read_text()).get("status") or ""
    except (OSError, ValueError, AttributeError):
        return None if not Path(folder).is_dir() else ""


def fmt_time(seconds: float) -> str:
    return _tqdm.format_interval(max(0.0, seconds)) if seconds == seconds else "?"


def describe(label: str, n: int, done_here: int, total: int, elapsed: float, sweep: Sweep | None) -> str | None:
    """One progress line: step n of total, the rate of the ``done_here`` steps done in ``elapsed`` s, time
    left; with a sweep, its jobs done of its total and its time left (this job's, plus the jobs not yet
    started, each as long as this one, shared among the jobs running). None before a rate is known."""
    if not total or done_here <= 0 or elapsed <= 0:
        return None
    per_step = elapsed / done_here
    left = (total - n) * per_step
    text = (f"{label}: step {n:,}/{total:,} ({100 * n / total:.0f}%), "
            f"{1 / per_step:.3g} steps/s, {fmt_time(left)} left")
    if sweep is not None:
        finished, running, started = sweep.counts()
        unstarted = max(0, sweep.jobs - started)
        sweep_left = left + unstarted * total * per_step / max(1, running)
        jobs = sweep.jobs or "?"
        text += f"; sweep: {finished}/{jobs} jobs done, ~{fmt_time(sweep_left)} left"
    return text


class tqdm(_tqdm):  # noqa: N801  (tqdm.contrib's convention: a drop-in tqdm)
    """A tqdm that logs one line per ``mininterval`` (default ``INTERVAL_S``) instead of drawing a bar.

    ``label`` names the job (experiment, its overrides); ``sweep`` adds the sweep's jobs done of its
    total and the time the sweep has left (this job's left, plus the jobs not yet started, each as long
    as this one, shared among the jobs running).
    """

    def __init__(self, *args, label: str = "", sweep: Sweep | None = None, **kwargs):
        kwargs.setdefault("mininterval", INTERVAL_S)
        kwargs.setdefault("maxinterval", INTERVAL_S)
        self.label, self.sweep = label, sweep
        self._n0 = kwargs.get("initial", 0)  # a resumed run starts at its checkpoint: the rate counts this process's steps
        super().__init__(*args, **kwargs)

    def line(self) -> str | None:
        d = self.format_dict
        return describe(self.label, d["n"], d["n"] - self._n0, d["total"], d["elapsed"], self.sweep)

    def display(self, msg=None, pos=None):  # tqdm calls this at most once per mininterval, and on close
        if msg == "" or self.disable or (self.total and self.n >= self.total):
            return True  # close() or the last step: the job's own end line says the rest
        text = self.line()
        if text is not None:
            log.info(text)
        return True


# tqdm's default lock also holds a multiprocessing RLock, a named semaphore made in every process that shows
# a bar: a worker killed by its launcher (joblib kills its workers on Ctrl-C) leaks it, and the resource
# tracker then warns at exit. These bars only log lines, so a thread lock is all they need.
tqdm.set_lock(threading.RLock())
