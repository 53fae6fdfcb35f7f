"""Run records: the long-format metrics CSV (whole rows, resume-safe) and atomic JSON summaries.

CSV columns (one observation per row): ``step, metric, layer, unit, eta, value``. ``layer`` is the
1-based block index, ``unit`` the channel, ``eta`` the landscape step size; empty where they do not
apply. Rows are appended with one ``os.write`` per flush, so a killed run leaves only whole lines.
"""

from __future__ import annotations

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


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


def format_rows(rows: Iterable[tuple]) -> str:
    """CSV text for rows whose value may be a 0-d tensor (all tensors read back in one transfer)."""
    rows = list(rows)
    tensors = [r[-1] for r in rows if isinstance(r[-1], torch.Tensor)]
    if tensors:
        by_device: dict = {}
        for t in tensors:
            by_device.setdefault(t.device, []).append(t.detach().double().reshape(()))
        values = {d: iter(torch.stack(ts).cpu().tolist()) for d, ts in by_device.items()}
    lines = []
    for r in rows:
        v = r[-1]
        v = next(values[v.device]) if isinstance(v, torch.Tensor) else float(v)
        lines.append(",".join(_cell(c) for c in r[:-1]) + "," + repr(v) + "\n")
    return "".join(lines)


class MetricsWriter:
    """Appends whole rows to ``metrics.csv``; ``offset`` is where a checkpoint may truncate back to."""

    def __init__(self, path: Path, truncate_to: int | None = None):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if truncate_to is not None:
            os.ftruncate(self.fd, truncate_to)
        if self.offset == 0:
            os.write(self.fd, HEADER.encode())

    def write(self, rows: Iterable[tuple]) -> None:
        text = format_rows(rows)
        if text:
            os.write(self.fd, text.encode())

    @property
    def offset(self) -> int:
        return os.fstat(self.fd).st_size

    def close(self) -> None:
        os.close(self.fd)


def read_metrics(path: Path) -> pd.DataFrame:
    """A run's metrics as a DataFrame (a trailing partial line, if any, is dropped)."""
    text = Path(path).read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return pd.read_csv(StringIO(text), dtype={"metric": str})


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same directory, then rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_jsonable)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v)}")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
