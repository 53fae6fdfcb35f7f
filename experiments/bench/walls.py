"""Wall times of whole experiments: section 6, ``paper_fig1`` (fig1 at paper scale on synthetic
CIFAR-10-sized data, run here), section 7, ``make_all`` (read from the runs' summaries, nothing run) and
section 8, ``make_all_run`` (``make all`` run and timed, against a baseline revision and beside a busy process)."""

from __future__ import annotations

import glob
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bnstudy.data import CIFAR_TEST_FILE, CIFAR_TRAIN_FILES
from experiments.bench.common import MAKE_ALL, ROOT, Bench

# ------------------------------------------------------------------------------------------ 6. paper fig1
def write_synthetic_cifar10(directory: Path, per_batch: int, seed: int = 0) -> None:
    """CIFAR-10's five training batches and its test batch in the real on-disk format (python pickles)
    with random images whose brightness encodes the label, so the nets learn as they would on CIFAR-10.
    For timing where the real data cannot be downloaded; never for results."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE):
        labels = rng.integers(0, 10, size=per_batch)
        data = np.clip(rng.normal(30 + 20 * labels[:, None], 50, size=(per_batch, 3072)), 0, 255).astype(np.uint8)
        with open(directory / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}, f, protocol=2)


def section_paper_fig1(bench: Bench) -> None:
    """Wall time of fig1 at paper scale (VGG-16, 4 runs of 15,000 steps at batch 128, CIFAR-10-sized
    synthetic data) on this device: the experiment's own command, in a subprocess. Hours on a CPU; meant
    for a GPU (``--device cuda --sections paper_fig1``). ``--tiny`` shrinks it to a few steps."""
    root = bench._tmp / "paper_fig1"
    write_synthetic_cifar10(root / "cifar-10-batches-py", per_batch=64 if bench.sizes.tiny else 10_000)
    tiny = ["model.width=0.125", "train.steps=4", "train.batch_size=16", "train.eval_every=2", "train.eval_size=64",
            "train.measure_every=2"] if bench.sizes.tiny else []
    cmd = [sys.executable, "-m", "experiments.train", "-m", "experiment=fig1", "scale=paper", f"data.root={root}",
           "seed=0", "progress=false", f"train.device={bench.device.type}", f"train.channels_last={bench.args.channels_last}",
           f"train.tf32={bench.args.tf32}", f"hydra.sweep.dir={root / 'sweep'}", *tiny]
    print(f"  paper_fig1: {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"fig1 at paper scale failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    for path in sorted((root / "sweep").glob("*/summary.json")):
        summary = json.loads(path.read_text())
        c = summary["config"]
        case = f"vgg16/{c['norm']['name']} lr {c['optim']['lr']:g}"
        bench.row("paper_fig1", case, "run_wall_s", summary["wall_time_s"], "s",
                  note=f"{summary['status']} at step {summary['step']} of {c['train']['steps']}")
        bench.row("paper_fig1", case, "steps_per_s", summary["step"] / summary["wall_time_s"], "steps/s",
                  note="evals, histograms and checkpoints included")
    bench.row("paper_fig1", "fig1", "wall_s", wall, "s", note="4 runs, one after another, process start-up included; "
              "synthetic CIFAR-10-sized data" + (" (--tiny: a few steps of a narrow VGG-16)" if bench.sizes.tiny else ""))
    print(f"  paper_fig1 wall {wall:.1f} s", flush=True)


# ------------------------------------------------------------------------------------------ 7. make all
def section_make_all(bench: Bench) -> None:
    """Per experiment, the wall time of its latest quick sweep from the runs' summaries: first loop start
    to last loop end (parallel jobs overlap), or the sum of the runs' loop times for older summaries."""
    from datetime import datetime

    results = Path(bench.args.results)
    total, spans = 0.0, []
    for exp in MAKE_ALL:
        sweeps: dict[Path, list[dict]] = {}
        for path in glob.glob(str(results / exp / "quick" / "**" / "summary.json"), recursive=True):
            path = Path(path)
            try:
                summary = json.loads(path.read_text())
                float(summary["wall_time_s"])
            except (ValueError, TypeError, KeyError, OSError):
                continue
            sweep = path.parent.parent if path.parent.name.isdigit() else path.parent
            sweeps.setdefault(sweep, []).append(summary)
        if not sweeps:
            bench.row("make_all", exp, "wall_s", float("nan"), "s", note="no runs under " + str(results / exp / "quick"))
            print(f"  make_all {exp:10s} (no runs)", flush=True)
            continue
        latest = max(sweeps, key=lambda p: p.name)
        runs = sweeps[latest]
        loops = sum(float(r["wall_time_s"]) for r in runs)
        if all("started_at" in r and "finished_at" in r for r in runs):
            wall = (max(datetime.fromisoformat(r["finished_at"]) for r in runs)
                    - min(datetime.fromisoformat(r["started_at"]) for r in runs)).total_seconds()
            how = "first loop start to last loop end"
            spans += [(datetime.fromisoformat(r["started_at"]).timestamp(),
                       datetime.fromisoformat(r["finished_at"]).timestamp()) for r in runs]
        else:
            wall, how = loops, "sum of the runs' loops"
            total += wall
        bench.row("make_all", exp, "wall_s", wall, "s", note=f"{how}; {len(runs)} runs in {latest.relative_to(results)} "
                  f"(of {len(sweeps)} sweeps), their loops {loops:.1f} s in all")
        print(f"  make_all {exp:10s} {wall:9.1f} s over {len(runs)} runs (loops {loops:.1f} s)", flush=True)
    # runs trained together (make all's shared trajectories) or side by side count once: the union of their spans
    total += _intervals_union(spans)
    bench.row("make_all", "total", "wall_s", total, "s", note="training only (no process start-up, data loading, "
              "figures); runs trained together or side by side counted once")




# ------------------------------------------------------------------------------------------ 8. make all, run
def _intervals_union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of (start, end) spans (shared or parallel runs counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def _time_make_all(root: Path, results: Path | None, make_args: list[str]) -> float:
    """``make all`` in ``root``; ``results=None``: where that revision's Makefile puts them (a baseline's own
    worktree: older Makefiles wrote the runs under ./results whatever RESULTS said)."""
    where = [f"RESULTS={results}"] if results is not None else []
    cmd = ["make", "-C", str(root), "--no-print-directory", "all", *where, f"PY={sys.executable}", "RUN_ID=bench",
           *make_args]
    print(f"  make_all_run: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"make all in {root} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return wall


def _same_csvs(a: Path, b: Path) -> tuple[int, int]:
    """(identical, compared) metrics.csv files, by their path under two results folders."""
    rel = sorted(p.relative_to(a) for p in a.rglob("metrics.csv"))
    return sum((a / r).read_bytes() == (b / r).read_bytes() for r in rel if (b / r).is_file()), len(rel)


def section_make_all_run(bench: Bench) -> None:
    """``make all`` (quick scale) run end to end and timed: process start-ups, data loading, training and
    figures, in a temporary results folder. ``--baseline REV``: a git worktree of REV first, the same way,
    side by side (same machine, same minutes); ``--busy``: once more beside one busy Python process (a
    loop on one core, started before it), its CSVs compared byte for byte with the idle run's. Each run
    takes 10-20 minutes on 2 cores."""
    results, runs = bench._tmp / "make_all_run", []
    if bench.args.baseline:
        base = bench._tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), bench.args.baseline],
                       check=True, capture_output=True)
        runs.append((f"baseline {bench.args.baseline}", base))
    runs.append(("this checkout", ROOT))
    walls, scale = {}, ["SCALE=tiny"] if bench.sizes.tiny else []  # --tiny: make all at tiny scale (tests)
    try:
        for name, root in runs:
            walls[name] = _time_make_all(root, results / "this" if root == ROOT else None, scale)
            bench.row("make_all_run", name, "wall_s", walls[name], "s", note=f"make all, idle, {root}")
            print(f"  make_all_run {name}: {walls[name]:.1f} s", flush=True)
        if bench.args.baseline:  # a change that must not change behaviour: the same bytes as the baseline's
            same, n = _same_csvs(results / "this", runs[0][1] / "results")
            bench.row("make_all_run", "this vs baseline CSVs", "identical", same, "files", note=f"of {n} metrics.csv")
            print(f"  make_all_run CSVs identical to the baseline's: {same} of {n}", flush=True)
    finally:
        if bench.args.baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(bench._tmp / "baseline")],
                           capture_output=True)
    this = walls["this checkout"]
    if bench.args.baseline:
        base = walls[runs[0][0]]
        # a refactor must cost no time: within 5% of the revision before it (the 0.75x of the one-process
        # make all was met at 0.54x on 2026-12-06)
        bench.check("make_all_run", "this / baseline", "ratio", this / base, "x", 1.05, note=f"{this:.0f} s / {base:.0f} s")
    if bench.args.busy:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(2)
            wall = _time_make_all(ROOT, results / "busy", scale)
        finally:
            busy.kill()
            busy.wait()
        same, n = _same_csvs(results / "this", results / "busy")
        bench.row("make_all_run", "beside a busy process", "wall_s", wall, "s", note="one Python busy loop beside it")
        bench.check("make_all_run", "busy / idle", "ratio", wall / this, "x", 1.5, note=f"{wall:.0f} s / {this:.0f} s")
        bench.row("make_all_run", "busy vs idle CSVs", "identical", same, "files", note=f"of {n} metrics.csv")
        print(f"  make_all_run busy: {wall:.1f} s ({wall / this:.2f}x idle); CSVs identical: {same} of {n}", flush=True)
