"""Run records: the long-format metrics CSV (whole rows, resume-safe) and atomic JSON summaries.

CSV columns (one observation per row): ``step, metric, layer, unit, eta, value``. ``layer`` is the
1-based block index, ``unit`` the channel, ``eta`` the landscape step size; empty where they do not
apply. Rows are appended with one ``os.write`` per flush, so a killed run leaves only whole lines.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import math
import os
from pathlib import Path
from io import StringIO
from typing import Any, Iterable

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
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
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


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync, then rename over ``path``.

    Non-finite floats become the strings "nan", "inf", "-inf" (strict JSON has no such numbers).
    """
    write_text_atomic(path, json.dumps(json_safe(obj), indent=2, default=_jsonable, allow_nan=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temp file in the same directory, fsync, then rename over ``path``: a reader
    sees the old file or the new one, never half of one; on an error the old file stays as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


class RunLockedError(RuntimeError):
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we got
    return False
