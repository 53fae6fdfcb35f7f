"""Delete run results, after asking: only the files bnstudy and Hydra wrote, never anything else.

    python -m experiments.clean_results                  # every run under results/ (asks y/N)
    python -m experiments.clean_results results/vgg --yes
    python -m experiments.clean_results --status interrupted failed broken   # only those run dirs

In each run dir it deletes what the suite writes there (metrics.csv, summary.json, checkpoint.pt, .lock,
its temp files, Hydra's .hydra/config.yaml, hydra.yaml, overrides.yaml and the job's train.log); a folder
that then holds nothing but a sweep's multirun.yaml or a runs.csv index loses those too, and folders left
empty are removed. Anything else stays and is listed: a README, your notes, dot-files, a file you put in
a run dir, a symbolic link (never followed). A run that is still running (its lock is held) is not
touched. Exit status 0 when done, 1 when declined or when a running run was left alone.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from bnstudy.records import RUN_FILES, is_reference, reference_mark
from bnstudy.runs import INDEX, iter_run_dirs, run_status

HYDRA_RUN_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "train.log")
SWEEP_FILES = {"multirun.yaml", INDEX}  # what a folder above the run dirs may hold
TEMP = re.compile(r"\.(summary\.json|checkpoint\.pt|metrics\.csv)\.\d+\.tmp")  # records.write_atomic's temp files


def _regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def run_files(run_dir: Path) -> set[Path]:
    """The files in ``run_dir`` that bnstudy or Hydra wrote."""
    named = [run_dir / n for n in (*RUN_FILES, *HYDRA_RUN_FILES)]
    temps = [p for p in run_dir.iterdir() if TEMP.fullmatch(p.name)]
    return {p for p in named + temps if _regular(p)}


def plan(paths: list[Path], statuses: set[str] | None) -> tuple[set[Path], list[Path], list[Path], list[str]]:
    """(files to delete, folders that end up empty, run dirs cleaned, reasons for what is kept)."""
    files: set[Path] = set()
    emptied: list[Path] = []
    cleaned: list[Path] = []
    kept: list[str] = []
    for root in paths:
        if not root.is_dir():
            kept.append(f"{root}: no such folder")
            continue
        if is_reference(root):
            kept.append(f"{root}: the committed reference; bnstudy never deletes it (git restores it if you did)")
            continue
        for run in iter_run_dirs(root):
            status = run_status(run)[0]
            if status == "running":
                if statuses is None or "running" in statuses:
                    kept.append(f"{run}: still running; stop it first")
            elif statuses is None or status in statuses:
                files |= run_files(run)
                cleaned.append(run)
        empty: set[Path] = set()
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):  # never follows links
            d = Path(dirpath)
            if is_reference(d):  # the committed reference below the results folder: never touched
                continue
            left = [d / n for n in filenames if d / n not in files] + [d / n for n in dirnames if d / n not in empty]
            if all(p.name in SWEEP_FILES and _regular(p) for p in left):  # nothing but a sweep's own files
                files.update(left)
                empty.add(d)
                emptied.append(d)
    return files, emptied, cleaned, kept


def _others(paths: list[Path], files: set[Path]) -> list[Path]:
    """What stays under the folders that is not run results (a README, notes, dot-files, links)."""
    out = []
    for root in paths:
        for dirpath, dirnames, filenames in os.walk(root):
            d = Path(dirpath)
            dirnames[:] = [n for n in dirnames if not reference_mark(d / n)]  # the reference: not yours to list
            names = [n for n in filenames if d / n not in files] + [n for n in dirnames if (d / n).is_symlink()]
            suite = set(RUN_FILES) | SWEEP_FILES | {"train.log"} | ({"config.yaml", "hydra.yaml", "overrides.yaml"}
                                                                       if d.name == ".hydra" else set())
            out += [d / n for n in names if n not in suite and not TEMP.fullmatch(n)]
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.clean_results", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", type=Path, help="results folders (default: results)")
    p.add_argument("--results", action="append", type=Path, default=[], metavar="PATH", help="the same as a PATH")
    p.add_argument("--status", nargs="+", metavar="STATUS",
                   choices=["completed", "diverged", "interrupted", "failed", "broken"],
                   help="delete only the run dirs with these statuses")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    args = p.parse_args(argv)
    paths = [*args.paths, *args.results] or [Path("results")]
    files, emptied, cleaned, kept = plan(paths, set(args.status) if args.status else None)
    for reason in kept:
        print(f"keeping {reason}")
    others = _others(paths, files)
    if others:
        print(f"keeping {len(others)} other file(s) (not run results), e.g. {others[0]}")
    if not files:
        print("nothing to delete")
        return 1 if any("running" in k for k in kept) else 0
    for run in cleaned:
        print(f"  {run}")
    if not args.yes:
        mb = sum(f.stat().st_size for f in files) / 1e6
        try:
            answer = input(f"Delete the results of {len(cleaned)} run(s), {len(files)} file(s), {mb:.1f} MB? [y/N] ")
        except EOFError:  # no terminal: the answer is no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    for f in files:
        f.unlink(missing_ok=True)
    for d in emptied:  # bottom-up: children first
        try:
            d.rmdir()
        except OSError:  # something appeared meanwhile: it stays
            pass
    print(f"deleted the results of {len(cleaned)} run(s)")
    return 1 if any("running" in k for k in kept) else 0


if __name__ == "__main__":
    sys.exit(main())
