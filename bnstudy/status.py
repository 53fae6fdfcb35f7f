"""Where the runs under a folder are and what state each one is in, read from its files alone.

A run dir is a folder holding ``summary.json`` or ``metrics.csv`` (the training loop writes both). Its status
(:func:`run_status`) comes from the summary, checked against the dir's lock (``bnstudy.records.RunLock``) and
against its CSV; its metrics (:func:`load_metrics`) are read back checked to be what the suite writes, with
:data:`DUPLICATE_RULE` applied. ``bnstudy.runs`` builds the index and the runs each experiment means on these.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from bnstudy.measures.activations import ACT_SAMPLE
from bnstudy.records import (COLUMNS, FINISHED, HEADER, METRICS, SUMMARY, is_locked, is_reference, read_json,
                             read_metrics, reference_mark)

STATUSES = (*FINISHED, "running", "interrupted", "failed", "truncated", "broken")
"""Every status a run dir may have (``bnstudy.runs``' docstring says what each means)."""

SAMPLE_METRICS = frozenset({ACT_SAMPLE})
"""Metrics whose rows at one (step, layer, unit) are many values (samples), not duplicates."""

DUPLICATE_RULE = ("Of rows with the same (step, metric, layer, unit, eta) in one CSV the last written counts "
                  "(sample metrics such as act_sample keep every row).")


class RunWarning(UserWarning):
    """A run left out because it cannot be read (one line naming it and why)."""


class BadRunError(ValueError):
    """A run's files are not what the suite writes; the message names the file and the fault."""


class CutShortError(BadRunError):
    """A metrics CSV that ends in a partial line: cut short after the run (the loop writes whole lines)."""


# --------------------------------------------------------------------------------------------- files
def iter_run_dirs(root: str | Path) -> Iterator[Path]:
    """Every dir under ``root`` (itself included) holding a summary or a metrics CSV, in sorted order. The
    committed reference below ``root`` (:func:`is_reference`) is not walked unless ``root`` is inside it:
    your runs and the reference are separate trees."""
    root = Path(root)
    if not root.is_dir():
        return
    walk_reference = is_reference(root)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")  # skips .hydra
                             and (walk_reference or not reference_mark(here / d)))
        if SUMMARY in filenames or METRICS in filenames:
            yield here


def _csv_last_step(path: Path) -> float:
    """The step of the CSV's last whole line (reads only its tail; a gzipped reference CSV whole); raises
    BadRunError if it is not one."""
    gz = path.with_name(path.name + ".gz")
    if not path.exists() and gz.exists():
        text = gzip.decompress(gz.read_bytes()).decode(errors="replace")
        if not text.startswith(HEADER):
            raise BadRunError(f"{gz}: not a bnstudy metrics.csv (header {text[:60]!r})")
        if len(text) > len(HEADER) and not text.endswith("\n"):
            raise CutShortError(f"{gz} ends in a partial line: cut short")
        lines = [line for line in text[len(HEADER):].split("\n")[:-1] if line]
        try:
            return float(lines[-1].split(",", 1)[0]) if lines else -math.inf
        except ValueError:
            raise BadRunError(f"{gz}: last line is not a row ({lines[-1][:60]!r})") from None
    with open(path, "rb") as f:
        head = f.read(len(HEADER))
        if head.decode(errors="replace") != HEADER:
            raise BadRunError(f"{path}: not a bnstudy metrics.csv (header {head[:60]!r})")
        size = f.seek(0, os.SEEK_END)
        f.seek(max(len(HEADER), size - 4096))
        tail = f.read().decode(errors="replace")
    if size > len(HEADER) and not tail.endswith("\n"):
        raise CutShortError(f"{path} ends in a partial line: cut short")
    lines = [line for line in tail.split("\n")[:-1] if line]  # whole lines only
    if size <= len(HEADER) or not lines:
        return -math.inf
    try:
        return float(lines[-1].split(",", 1)[0])
    except ValueError:
        raise BadRunError(f"{path}: last line is not a row ({lines[-1][:60]!r})") from None


def _check_summary(summary: Any, path: Path) -> dict:
    """The summary if it is what ``bnstudy.train`` writes (a status, a step, a config with the run's
    identity), else BadRunError naming what is wrong."""
    if not isinstance(summary, dict):
        raise BadRunError(f"{path}: not a bnstudy summary (a {type(summary).__name__}, not an object)")
    if summary.get("status") not in STATUSES:
        raise BadRunError(f"{path}: unknown status {summary.get('status')!r}")
    step = summary.get("step")
    if step is not None and not (isinstance(step, (int, float)) and not isinstance(step, bool)):
        raise BadRunError(f"{path}: step {step!r} is not a number")
    cfg = summary.get("config")
    if not isinstance(cfg, dict):
        raise BadRunError(f"{path}: no config")
    for key, kind in (("norm", dict), ("optim", dict), ("train", dict), ("model", dict), ("data", dict)):
        if key in cfg and not isinstance(cfg[key], kind):
            raise BadRunError(f"{path}: config.{key} is not a mapping")
    lr = (cfg.get("optim") or {}).get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))):
        raise BadRunError(f"{path}: config.optim.lr {lr!r} is not a number")
    return summary


def run_status(run_dir: str | Path) -> tuple[str, dict]:
    """(status, summary) of one run dir; see the module docstring for the statuses. A broken or truncated
    run's summary carries the reason as ``error``."""
    run_dir = Path(run_dir)
    try:
        summary = _check_summary(read_json(run_dir / SUMMARY), run_dir / SUMMARY)
    except (OSError, ValueError) as e:
        if is_locked(run_dir):
            return "running", {}
        why = str(e) if isinstance(e, BadRunError) else f"{run_dir / SUMMARY}: unreadable ({type(e).__name__})"
        return "broken", {"error": why}
    status = summary["status"]
    if status == "running" and not is_locked(run_dir):
        status = "interrupted"
    if status in FINISHED:
        try:
            last = _csv_last_step(run_dir / METRICS)
        except (OSError, BadRunError) as e:
            why = str(e) if isinstance(e, BadRunError) else f"{run_dir / METRICS}: missing or unreadable"
            return "truncated" if isinstance(e, CutShortError) else "broken", {**summary, "error": why}
        if summary.get("step") is not None and last < summary["step"]:
            return "truncated", {**summary, "error": f"{run_dir / METRICS} ends at step "
                                 f"{'none' if last == -math.inf else f'{last:g}'}, before the summary's step "
                                 f"{summary['step']}"}
    return status, summary


def load_metrics(path: str | Path) -> pd.DataFrame:
    """A run's metrics (``bnstudy.records.read_metrics``), checked to be what the suite writes, with
    :data:`DUPLICATE_RULE` applied. Raises BadRunError naming the file and the fault."""
    path = Path(path)
    try:
        df = read_metrics(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise BadRunError(f"{path}: unreadable ({type(e).__name__}: {str(e).splitlines()[0][:80]})") from None
    if list(df.columns) != COLUMNS:
        raise BadRunError(f"{path}: columns {list(df.columns)[:8]} are not {COLUMNS}")
    for col in ("step", "layer", "unit", "eta", "value"):
        if not pd.api.types.is_numeric_dtype(df[col]):
            bad = pd.to_numeric(df[col], errors="coerce").isna() & df[col].notna()
            raise BadRunError(f"{path}: column {col} holds non-numbers (line {int(np.argmax(bad.to_numpy())) + 2})")
    if df["step"].isna().any() or df["metric"].isna().any():
        bad = (df["step"].isna() | df["metric"].isna()).to_numpy()
        raise BadRunError(f"{path}: a row without step or metric (line {int(np.argmax(bad)) + 2})")
    df["value"] = df["value"].astype(float)
    dup = df.duplicated(["step", "metric", "layer", "unit", "eta"], keep="last") & ~df["metric"].isin(SAMPLE_METRICS)
    return df[~dup].reset_index(drop=True) if dup.any() else df
