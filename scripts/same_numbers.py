"""Do two versions of bnstudy write the same numbers? A check for changes that must not change behaviour.

    python scripts/same_numbers.py train CHECKOUT OUT [EXPERIMENT ...]   # CHECKOUT's code writes OUT
    python scripts/same_numbers.py compare OUT_A OUT_B                   # exit 1 unless they match

``train`` runs, with the code of CHECKOUT (a git worktree: ``git worktree add --detach /tmp/old COMMIT``)
and this interpreter's libraries, every experiment of CHECKOUT's ``conf/experiment/`` (or those named) as
its whole sweep at ``scale=tiny seed=0`` through the Hydra entry point, two jobs at a time, into
``OUT/train/<experiment>``; then ``make all``'s path (``experiments.together``, every trajectory of the nine
experiments trained once, each folder written as that run alone) into ``OUT/together``. ``compare`` pairs
every ``metrics.csv`` of the two folders by its path and requires the same bytes, and the same numbers in
each ``summary.json`` (status, step, resumed_from, final, config; not the times, folders or environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

TOGETHER = ["fig1", "fig2", "fig3_cnn", "fig3_dln", "fig4_cnn", "fig4_dln", "fig5_cnn", "fig5_dln", "browser"]
SUMMARY_KEYS = ("status", "step", "resumed_from", "final", "config")


def train(checkout: Path, out: Path, experiments: list[str]) -> int:
    env = {**os.environ, "PYTHONPATH": str(checkout), "TQDM_DISABLE": "1"}
    names = experiments or sorted(p.stem for p in (checkout / "conf" / "experiment").glob("[a-z]*.yaml"))
    failed = []
    for name in names:
        t0 = time.time()
        cmd = [sys.executable, "-m", "experiments.train", "-m", f"experiment={name}", "scale=tiny", "seed=0",
               "progress=false", "hydra/launcher=parallel", f"hydra.sweep.dir={out / 'train' / name}"]
        done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
        print(f"{name}: exit {done.returncode} in {time.time() - t0:.0f} s", flush=True)
        if done.returncode:
            failed.append(name)
            print(done.stderr[-3000:], file=sys.stderr)
    if not experiments:
        t0 = time.time()
        cmd = [sys.executable, "-m", "experiments.together", *TOGETHER, "--scale", "tiny", "--seeds", "0",
               "--results", str(out / "together"), "--run-id", "r", "--", "progress=false"]
        done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
        print(f"together: exit {done.returncode} in {time.time() - t0:.0f} s", flush=True)
        if done.returncode:
            failed.append("together")
            print(done.stderr[-3000:], file=sys.stderr)
    return 1 if failed else 0


def numbers(path: Path) -> dict:
    summary = json.loads(path.read_text())
    config = dict(summary.get("config") or {})
    config.pop("progress", None)
    return {k: (config if k == "config" else summary.get(k)) for k in SUMMARY_KEYS}


def compare(a: Path, b: Path) -> int:
    csvs = sorted(p.relative_to(a) for p in a.rglob("metrics.csv"))
    other = sorted(p.relative_to(b) for p in b.rglob("metrics.csv"))
    problems = [f"only in {a}: {p}" for p in sorted(set(csvs) - set(other))]
    problems += [f"only in {b}: {p}" for p in sorted(set(other) - set(csvs))]
    same = 0
    for rel in sorted(set(csvs) & set(other)):
        if (a / rel).read_bytes() != (b / rel).read_bytes():
            problems.append(f"{rel}: the CSVs differ")
            continue
        summary = rel.with_name("summary.json")
        x, y = numbers(a / summary), numbers(b / summary)
        if x != y:
            keys = [k for k in SUMMARY_KEYS if x[k] != y[k]]
            problems.append(f"{summary}: {', '.join(keys)} differ ({[x[k] for k in keys]} vs {[y[k] for k in keys]})")
            continue
        same += 1
    for p in problems:
        print(p)
    print(f"{same} of {len(set(csvs) | set(other))} runs: metrics.csv byte for byte and summary.json's numbers equal")
    return 1 if problems or not same else 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "train":
        sys.exit(train(Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve(), sys.argv[4:]))
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
