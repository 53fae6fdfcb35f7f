"""The runs index: every run under a results folder as one row of a DataFrame, with its status.

A run dir is a folder holding ``summary.json`` or ``metrics.csv`` (``bnstudy.train`` writes both).
Its status comes from the summary, checked against the dir's lock (``bnstudy.records.RunLock``):

==============  =================================================================================
completed       trained to ``train.steps``
diverged        stopped early: NaN/inf or huge loss, or chance accuracy (see ``train.divergence_loss``)
running         a live process holds the dir's lock
interrupted     killed or Ctrl-C'd before the end; rerun with ``hydra.run.dir=<dir>`` to resume it
failed          stopped by an error (``error`` column); rerun as above once it is fixed
broken          no readable summary (e.g. killed in its first moments)
==============  =================================================================================

``find_runs`` lists completed and diverged runs and warns about the others, naming them, unless
``include_incomplete=True``. ``python -m bnstudy.runs [ROOT] [--all] [--write]`` prints the index
(and writes ``ROOT/runs.csv`` atomically with ``--write``).
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from bnstudy.records import flatten, is_locked, read_json, write_text_atomic

SUMMARY = "summary.json"  # the names bnstudy.train writes
METRICS = "metrics.csv"
INDEX = "runs.csv"
DONE = ("completed", "diverged")
COLUMNS = ["path", "status", "step", "steps", "name", "scale", "model", "norm", "data", "lr", "seed",
           "resumed_from", "wall_time_s", "error"]


def iter_run_dirs(root: str | Path) -> Iterator[Path]:
    """Every dir under ``root`` (itself included) holding a summary or a metrics CSV, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # skips .hydra
        if SUMMARY in filenames or METRICS in filenames:
            yield Path(dirpath)


def run_status(run_dir: str | Path) -> tuple[str, dict]:
    """(status, summary) of one run dir; see the module docstring for the statuses."""
    run_dir = Path(run_dir)
    try:
        summary = read_json(run_dir / SUMMARY)
    except (OSError, ValueError):
        return ("running" if is_locked(run_dir) else "broken"), {}
    status = summary.get("status", "broken")
    if status == "running" and not is_locked(run_dir):
        status = "interrupted"
    return status, summary


def _row(run_dir: Path, status: str, summary: dict) -> dict[str, Any]:
    cfg = summary.get("config") or {}
    sub = lambda key: (cfg.get(key) or {}) if isinstance(cfg.get(key), dict) else {}
    row = {
        "path": str(run_dir), "status": status, "step": summary.get("step"),
        "steps": sub("train").get("steps"), "name": cfg.get("name"), "scale": cfg.get("scale"),
        "model": sub("model").get("name"), "norm": sub("norm").get("name"), "data": sub("data").get("name"),
        "lr": sub("optim").get("lr"), "seed": cfg.get("seed"), "resumed_from": summary.get("resumed_from"),
        "wall_time_s": summary.get("wall_time_s"), "error": summary.get("error"),
    }
    for key, value in (summary.get("final") or {}).items():
        row[f"final_{key}"] = pd.to_numeric(value, errors="coerce")  # "nan" (JSON has no NaN) -> NaN
    row.update(flatten(cfg))  # every setting as a dotted column: optim.lr, model.num_layers, ...
    return row


def find_runs(root: str | Path = "results", include_incomplete: bool = False) -> pd.DataFrame:
    """One row per run dir under ``root``: path, status, step, name, scale, model, norm, data, lr, seed,
    ``final_*`` metrics and every config setting as a dotted column (``optim.momentum``, ...).

    Runs that are not completed or diverged (running, interrupted, failed, broken) are left out with a
    ``warnings.warn`` naming them, unless ``include_incomplete``.
    """
    rows, skipped = [], []
    for run_dir in iter_run_dirs(root):
        status, summary = run_status(run_dir)
        if status not in DONE and not include_incomplete:
            at = f" at step {summary['step']}" if summary.get("step") is not None else ""
            skipped.append(f"{run_dir} ({status}{at})")
            continue
        rows.append(_row(run_dir, status, summary))
    if skipped:
        warnings.warn(f"find_runs: left out {len(skipped)} run(s) that did not finish "
                      f"(include_incomplete=True lists them): {', '.join(skipped)}", stacklevel=2)
    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df:
            df[col] = pd.Series(dtype=object)
    rest = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + rest].reset_index(drop=True)


def write_index(root: str | Path = "results", path: str | Path | None = None) -> pd.DataFrame:
    """Write every run under ``root`` (incomplete ones too) to ``root/runs.csv`` atomically."""
    df = find_runs(root, include_incomplete=True)
    write_text_atomic(Path(path) if path else Path(root) / INDEX, df.to_csv(index=False))
    return df


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bnstudy.runs", description="List the runs under a results folder.")
    p.add_argument("root", nargs="?", default="results")
    p.add_argument("--all", action="store_true", help="include running, interrupted, failed and broken runs")
    p.add_argument("--write", action="store_true", help=f"also write ROOT/{INDEX} (all runs)")
    args = p.parse_args(argv)
    df = write_index(args.root) if args.write else find_runs(args.root, include_incomplete=args.all)
    if not args.all:
        df = df[df["status"].isin(DONE)]
    cols = ["path", "status", "step", "model", "norm", "data", "lr", "seed"]
    print(df[cols].to_string(index=False) if len(df) else f"no runs under {args.root}")


if __name__ == "__main__":
    main()
