"""Delete results, after asking.

    python -m experiments.clean_results                  # all of results/ (asks y/N)
    python -m experiments.clean_results results/vgg --yes
    python -m experiments.clean_results --status interrupted failed broken   # only those run dirs

Never deletes a run that is still running (its lock is held), and refuses a folder holding files that
are not run results (so a mistyped path cannot wipe source code). Exit status 0 when done, 1 when
declined or refused.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bnstudy.runs import INDEX, iter_run_dirs, run_status

HYDRA_FILES = {"multirun.yaml", INDEX}  # what may lie in a results folder outside the run dirs


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _foreign_files(root: Path, runs: list[Path]) -> list[Path]:
    """Files under ``root`` that belong to no run dir and are not Hydra's own (``.hydra/``, logs)."""
    run_set = set(runs)
    out = []
    for p in root.rglob("*"):
        if not p.is_file() or any(parent in run_set for parent in p.parents):
            continue
        rel = p.relative_to(root)
        if p.name in HYDRA_FILES or p.suffix == ".log" or ".hydra" in rel.parts or p.name.startswith("."):
            continue
        out.append(p)
    return out


def plan(paths: list[Path], statuses: set[str] | None) -> tuple[list[Path], list[str]]:
    """(dirs to delete, reasons for what is kept)."""
    delete, kept = [], []
    for root in paths:
        if not root.exists():
            kept.append(f"{root}: no such folder")
            continue
        runs = list(iter_run_dirs(root))
        status = {r: run_status(r)[0] for r in runs}
        running = [r for r in runs if status[r] == "running"]
        if statuses is not None:
            delete += [r for r in runs if status[r] in statuses and status[r] != "running"]
            kept += [f"{r}: still running" for r in running if "running" in statuses]
            continue
        foreign = _foreign_files(root, runs)
        if foreign:
            kept.append(f"{root}: holds files that are not run results (e.g. {foreign[0]}); not deleting it")
        elif running:
            kept.append(f"{root}: {running[0]} is still running; stop it first, or use --status")
        else:
            delete.append(root)
    return delete, kept


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
    delete, kept = plan(paths, set(args.status) if args.status else None)
    for reason in kept:
        print(f"keeping {reason}")
    if not delete:
        print("nothing to delete")
        return 1 if kept else 0
    n_runs = sum(len(list(iter_run_dirs(d))) for d in delete)
    mb = sum(_size(d) for d in delete) / 1e6
    for d in delete:
        print(f"  {d}")
    if not args.yes:
        try:
            answer = input(f"Delete {len(delete)} folder(s), {n_runs} run(s), {mb:.1f} MB? [y/N] ")
        except EOFError:  # no terminal: the answer is no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    for d in delete:
        shutil.rmtree(d)
    print(f"deleted {len(delete)} folder(s)")
    return 1 if kept else 0


if __name__ == "__main__":
    sys.exit(main())
