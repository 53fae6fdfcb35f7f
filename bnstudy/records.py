"""Run records and the run folder's rules: the long-format metrics CSV (whole rows, resume-safe), atomic
JSON summaries, and ``RunFolder``: one writer at a time (``RunLock``), results never overwritten or mixed,
every file written atomically (``write_atomic``) or in whole lines, and never through a symbolic link
(``open_nofollow``: the suite often runs as root, and a planted link must not redirect a write).

CSV columns (one observation per row): ``step, metric, layer, unit, eta, value``. ``layer`` is the
1-based block index, ``unit`` the channel, ``eta`` the landscape step size; empty where they do not
apply. Rows are appended with one ``os.write`` per flush, so a killed run leaves only whole lines.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import json
import math
import os
from pathlib import Path
from io import StringIO
from typing import Any, BinaryIO, Callable, Iterable

import pandas as pd
import torch

COLUMNS = ["step", "metric", "layer", "unit", "eta", "value"]
HEADER = ",".join(COLUMNS) + "\n"


def format_rows(rows: Iterable[tuple]) -> str:
    """CSV text for rows whose value may be a 0-d tensor (all tensors read back in one transfer)."""
    rows = list(rows)
    by_device: dict = {}
    for r in rows:
        if isinstance(r[-1], torch.Tensor):
            by_device.setdefault(r[-1].device, []).append(r[-1].detach().double().reshape(()))
    if by_device:
        values = {d: iter(torch.stack(ts).cpu().tolist()) for d, ts in by_device.items()}
        rows = [(*r[:-1], next(values[r[-1].device])) if isinstance(r[-1], torch.Tensor) else r for r in rows]
    cell = lambda c: "" if c is None else c
    return "".join([f"{step},{metric},{cell(layer)},{cell(unit)},{cell(eta)},{float(v)!r}\n"
                    for step, metric, layer, unit, eta, v in rows])


class MetricsWriter:
    """Appends whole rows to ``metrics.csv``; ``offset`` is where a checkpoint may truncate back to."""

    def __init__(self, path: Path, truncate_to: int | None = None):
        self.path = Path(path)
        self.fd = open_nofollow(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        if truncate_to is not None:
            if truncate_to > self.offset:  # never pad with zeros: the rows the checkpoint counts are gone
                size = self.offset
                os.close(self.fd)
                raise ValueError(f"{self.path} has {size} bytes but the checkpoint expects at least {truncate_to}")
            os.ftruncate(self.fd, truncate_to)
        if self.offset == 0:
            self._write_all(HEADER.encode())

    def write(self, rows: Iterable[tuple]) -> None:
        text = format_rows(rows)
        if text:
            self._write_all(text.encode())

    def _write_all(self, data: bytes) -> None:
        """One ``os.write`` of whole lines (looping only on a short write, e.g. a nearly full disk)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def sync(self) -> None:
        """Force the rows to disk (before a checkpoint records the offset)."""
        os.fsync(self.fd)

    @property
    def offset(self) -> int:
        return os.fstat(self.fd).st_size

    def close(self) -> None:
        os.close(self.fd)


def read_metrics(path: Path) -> pd.DataFrame:
    """A run's metrics as a DataFrame (a trailing partial line, if any, is dropped).

    Where ``metrics.csv`` is absent but ``metrics.csv.gz`` is there (the committed reference keeps its
    CSVs gzipped), that is read instead.
    """
    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    if path.suffix == ".gz" or (not path.exists() and gz.exists()):
        text = gzip.decompress((path if path.suffix == ".gz" else gz).read_bytes()).decode()
    else:
        text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return pd.read_csv(StringIO(text), dtype={"metric": str})


# ------------------------------------------------------------------------------------ safe writes
class RunError(RuntimeError):
    """The run dir cannot be used as asked (another config, results that would be overwritten, a
    symbolic link, a bad checkpoint, a failed write); the message names the folder or file and what to do."""


class LinkRefusedError(RunError):
    """A file the suite would write is a symbolic link: it is refused, never written through."""


def open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` (``O_NOFOLLOW``) with a one-line error."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):  # EMLINK: the BSDs' O_NOFOLLOW error
            raise LinkRefusedError(f"{path} is a symbolic link: bnstudy never writes through a link; "
                                   f"remove the link (or pick another folder)") from None
        raise


def write_atomic(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """The one way the suite replaces a file: write ``data`` (bytes, or a function writing to a binary
    file) to a temp file next to ``path``, fsync, then rename it over ``path``. A reader sees the old
    file or the new one, never half of one; on any error (a full disk, Ctrl-C) the temp file is removed
    and the old file stays as it was. Neither the temp file nor ``path`` may be a symbolic link."""
    path = Path(path)
    if path.is_symlink():
        raise LinkRefusedError(f"{path} is a symbolic link: bnstudy never writes through a link; "
                               f"remove the link (or pick another folder)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """JSON through ``write_atomic``. Non-finite floats become the strings "nan", "inf", "-inf" (strict
    JSON has no such numbers)."""
    write_text_atomic(path, json.dumps(json_safe(obj), indent=2, default=_jsonable, allow_nan=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Text through ``write_atomic``."""
    write_atomic(path, text.encode())


def json_safe(v: Any) -> Any:
    """NaN and inf as the strings "nan", "inf", "-inf" (strict JSON has no such numbers)."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"optim.lr": 0.1, ...}`` (lists become tuples, so values hash)."""
    if not isinstance(d, dict):
        return {prefix[:-1]: tuple(d) if isinstance(d, list) else d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}."))
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v)}")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------------------ run lock
LOCK = ".lock"


class RunLockedError(RunError):
    """Another live process is writing to this run dir."""


class RunLock:
    """An exclusive ``flock`` on ``<run dir>/.lock`` while a run writes there.

    The OS drops the lock when the process dies, SIGKILL included, so a held lock means a live run and
    a free one next to a "running" summary means an interrupted run. The file holds the owner's pid.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(f"{self.path.parent} is in use by another run (pid {pid}): "
                                 f"wait for it to end, or pick another hydra.run.dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run dir's lock (i.e. the run is still going)."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # none, or a link (which no run of ours holds)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we got
    return False


# ---------------------------------------------------------------------------------------- run folder
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
FINAL = "final.pt"  # the final weights (model state_dict only), unless train.save_final=false
POSTHOC_CSV, POSTHOC_JSON = "posthoc.csv", "posthoc.json"  # python -m experiments.curvature's rows and settings
# what the suite writes in a run dir (besides temp files)
RUN_FILES = (METRICS, SUMMARY, CHECKPOINT, LOCK, FINAL, POSTHOC_CSV, POSTHOC_JSON)
FINISHED = ("completed", "diverged")  # statuses a rerun leaves alone
RESUME_FREE = frozenset({"resume", "resume_mismatch", "progress", "train.threads", "train.device",
                         "train.save_final"})
"""How a run is carried out, not what it computes: the settings that may differ when a run is resumed (a resume
keeps the thread count the run started with; the device and thread count are recorded in its environment).
``bnstudy.canonical.FREE`` (settings that change no number) is these and where the data is read from."""


def config_diff(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for each setting that differs, ignoring the keys in RESUME_FREE."""
    a, b = flatten(json_safe(old)), flatten(json_safe(new))
    return [f"{k}: {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}"
            for k in sorted(set(a) | set(b)) if k not in RESUME_FREE and a.get(k) != b.get(k)]


REFERENCE_MARKS = ("reference.json", ".bnstudy-reference")
"""A folder holding one of these is (part of) the committed reference: the manifest ``make reference`` writes
(``bnstudy.reference.MANIFEST``), or the marker ``results/reference/`` holds."""


def reference_mark(folder: Path) -> bool:
    """Whether ``folder`` itself holds a reference mark (:data:`REFERENCE_MARKS`)."""
    return any((Path(folder) / m).is_file() for m in REFERENCE_MARKS)


def is_reference(path: str | Path) -> bool:
    """Whether ``path`` is in the committed reference (a folder holding :data:`REFERENCE_MARKS`, or inside
    one). Nothing but ``make verify``, ``make reference`` and a results folder named explicitly
    (``RESULTS=results/reference/quick``) reads it; nothing cleans, resumes or trains in it."""
    p = Path(os.path.abspath(path))
    return any(reference_mark(q) for q in (p, *p.parents))


class RunFolder:
    """A run dir and its rules; ``check`` decides, writing nothing, whether a run may go on there."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.summary, self.metrics, self.checkpoint = (self.path / n for n in (SUMMARY, METRICS, CHECKPOINT))

    def check(self, config: dict, resume: bool, holding_lock: bool = False) -> dict | None:
        """The summary of the run the dir holds with this config (to resume or return as finished), or
        None for an empty dir. Raises ``RunError`` for a dir in use, a link, results that would be
        overwritten (``resume=false``) or mixed (another config), or files the suite did not write."""
        if is_reference(self.path):
            raise RunError(f"{self.path} is inside the committed reference: bnstudy never trains, resumes or cleans "
                           f"there; pick another hydra.run.dir (make verify compares your runs with it)")
        if not holding_lock and is_locked(self.path):
            pid = (self.path / LOCK).read_text(errors="replace").strip() or "?"
            raise RunLockedError(f"{self.path} is in use by another run (pid {pid}): "
                                 f"wait for it to end, or pick another hydra.run.dir")
        for path in (self.path / n for n in RUN_FILES):
            if path.is_symlink():
                raise LinkRefusedError(f"{path} is a symbolic link: bnstudy never writes through a link; "
                                       f"remove the link (or pick another folder)")
        if not (self.summary.exists() or self.metrics.exists() or self.checkpoint.exists()):
            return None
        if not resume:
            raise RunError(f"{self.path} already holds a run and resume=false would overwrite it: pick another "
                           f"hydra.run.dir, or delete it first (python -m experiments.clean_results {self.path})")
        if not self.summary.exists():  # the suite writes summary.json before metrics.csv or a checkpoint
            raise RunError(f"{self.path} holds {METRICS} or {CHECKPOINT} but no {SUMMARY}: not a run bnstudy "
                           f"wrote, so it is left alone; pick another hydra.run.dir")
        try:
            previous = read_json(self.summary)
            if not isinstance(previous, dict) or not isinstance(previous.get("config"), dict):
                raise ValueError("no config in it")
        except (OSError, ValueError) as e:
            raise RunError(f"{self.summary} cannot be read ({e}): not a run bnstudy can resume; "
                           f"pick another hydra.run.dir") from None
        diff = config_diff(previous["config"], config)
        if diff:
            more = f" (+{len(diff) - 3} more)" if len(diff) > 3 else ""
            raise RunError(f"{self.path} holds a run with another config ({'; '.join(diff[:3])}{more}): "
                           f"resume it with its own overrides, or pick another hydra.run.dir")
        return previous

    def lock(self) -> RunLock:
        return RunLock(self.path)

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.summary, summary)

    def metrics_writer(self, truncate_to: int | None) -> MetricsWriter:
        return MetricsWriter(self.metrics, truncate_to=truncate_to)

    def save_checkpoint(self, save: Callable[[BinaryIO], None]) -> None:
        """Atomic: the old checkpoint or the new one, never half of one (``save`` writes it to a file)."""
        write_atomic(self.checkpoint, save)
