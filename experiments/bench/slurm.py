"""Section 9, ``slurm`` (only with ``--sections slurm``; needs a SLURM cluster, e.g.
``scripts/slurm-local.sh start``): what the SLURM path costs per job against Hydra's basic launcher, on the
same tiny sweep, side by side.

The sweep is fig1 at tiny scale (4 runs; ``--tiny``: 2), run with Hydra's basic launcher (one process, one
job after another) and with ``hydra/launcher=slurm`` one job at a time (``array_parallelism=1``: the same
work in the same order), alternated (basic, slurm, slurm, basic, ...) over ``--repeats`` pairs (default 1),
so that a load that comes and goes hits both. Per launcher: the sweep command's wall time and the runs'
training loops (their ``wall_time_s``); per job, (wall - loops) / jobs is everything but training: for
basic, Hydra's start, composing, each job's data loading and files; for SLURM also sbatch, each job's wait
in the queue, its own Python start-up and imports, and the result poll (every second). Their difference is
what SLURM adds per job. The CSVs of each pair are compared byte for byte. A last SLURM sweep with the
launcher's own parallelism (``array_parallelism`` 32: as many at once as the cluster's cores allow) shows
the wall time a sweep gains.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from experiments.bench.common import ROOT, Bench

SWEEP = ["experiment=fig1", "scale=tiny", "progress=false"]
CPU_JOB = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]


def _sweep(folder: Path, overrides: list[str]) -> tuple[float, float, int, dict[str, bytes]]:
    """Run the sweep into ``folder``: (wall s, the runs' loops in s, jobs, {job: metrics.csv bytes})."""
    cmd = [sys.executable, "-m", "experiments.train", "-m", *overrides, f"hydra.sweep.dir={folder}"]
    print(f"  slurm: {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"the sweep failed (exit {done.returncode}):\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    runs = sorted(folder.glob("*/summary.json"))
    loops = sum(float(json.loads(p.read_text())["wall_time_s"]) for p in runs)
    return wall, loops, len(runs), {p.parent.name: (p.parent / "metrics.csv").read_bytes() for p in runs}


def section_slurm(bench: Bench) -> None:
    try:
        up = subprocess.run(["sinfo", "--noheader"], capture_output=True, text=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        up = False
    if not up:
        raise RuntimeError("section slurm needs a SLURM cluster and sinfo found none: sudo scripts/slurm-local.sh "
                           "start (docs/sweeps.md), or run the bench on a cluster's login node")
    sweep = SWEEP + (["optim.lr=0.1"] if bench.sizes.tiny else [])
    slurm = [*sweep, "hydra/launcher=slurm", *CPU_JOB]
    root = bench._tmp / "slurm"
    pairs = max(1, bench.args.repeats)
    per_job: dict[str, list[float]] = {"basic": [], "slurm": []}
    identical = compared = 0
    for i in range(pairs):
        order = ("basic", "slurm") if i % 2 == 0 else ("slurm", "basic")
        csvs = {}
        for name in order:
            overrides = sweep if name == "basic" else [*slurm, "hydra.launcher.array_parallelism=1"]
            wall, loops, jobs, csvs[name] = _sweep(root / f"{name}_{i}", overrides)
            per_job[name].append((wall - loops) / jobs)
            bench.row("slurm", f"{name}, one job at a time", "wall_s", wall, "s",
                      note=f"pair {i + 1}; {jobs} jobs, their training loops {loops:.1f} s")
            print(f"  slurm {name}: {wall:.1f} s, loops {loops:.1f} s, {jobs} jobs", flush=True)
        compared += len(csvs["basic"])
        identical += sum(csvs["slurm"].get(job) == data for job, data in csvs["basic"].items())
    for name in ("basic", "slurm"):
        bench.row("slurm", name, "overhead_per_job_s", statistics.median(per_job[name]), "s",
                  note=f"(sweep wall - training loops) / jobs, median of {pairs}")
    extra = statistics.median(s - b for s, b in zip(per_job["slurm"], per_job["basic"]))
    bench.row("slurm", "slurm - basic", "overhead_per_job_s", extra, "s", note="what SLURM adds per job: sbatch, "
              "queue wait, the job's Python start-up and imports, result poll; median over the pairs")
    bench.row("slurm", "slurm vs basic CSVs", "identical", identical, "files", note=f"of {compared} metrics.csv")
    wall, loops, jobs, _ = _sweep(root / "slurm_parallel", slurm)
    bench.row("slurm", "slurm, jobs side by side", "wall_s", wall, "s",
              note=f"the launcher's array_parallelism; {jobs} jobs, their training loops {loops:.1f} s")
    print(f"  slurm: {extra:.1f} s more per job than basic; side by side {wall:.1f} s; "
          f"CSVs identical {identical} of {compared}", flush=True)
