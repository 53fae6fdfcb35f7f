"""The committed reference: the numbers behind ``results/reference/<scale>/``, written and read back.

A reference folder is a results folder in its own right: ``<exp>/<scale>/<sweep>/<job>/`` holds each
run's ``summary.json`` (config, final values, environment) and its ``metrics.csv`` gzipped
(``metrics.csv.gz``, which ``bnstudy.records.read_metrics`` and pandas read as it is), so
``make figures report RESULTS=<folder>`` redraws its figures and report without training.
``reference.json`` lists the experiments, the runs and each file's sha256; ``load_reference`` checks
them all, so a partial or edited reference is refused by name rather than compared against.

The runs exported are, per experiment, the newest sweep at the scale: the ones ``make figures`` draws.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from bnstudy.records import read_json, write_text_atomic

MANIFEST = "reference.json"
SIZE_BUDGET = 20 * 1024 * 1024  # bytes, the whole reference folder of one scale (figures included)
EXPERIMENTS = ("fig1", "fig2", "fig3_cnn", "fig3_dln", "fig4_cnn", "fig4_dln", "fig5_cnn", "fig5_dln", "browser")
OPTIONAL = ("quick", "curvature_cnn", "curvature_dln", "theory", "signal_cnn", "signal_dln")
"""Exported when they have runs: make quick's and the experiments beyond the paper (make all runs neither)."""


class ReferenceError(ValueError):
    """A reference or a results folder that cannot be used; the message names the file and the fix."""


def _is_run(d: Path) -> bool:
    return (d / "summary.json").exists() or (d / "metrics.csv").exists() or (d / "metrics.csv.gz").exists()


def latest_runs(results: Path, experiment: str, scale: str) -> list[Path]:
    """The run dirs of the newest sweep (or single run) of ``experiment`` at ``scale``, sorted.

    Sweeps are ``<results>/<exp>/<scale>/<stamp>/<job>/``, single runs ``.../single/<stamp>/``; stamps
    sort by time, so the newest is the last name.
    """
    base = Path(results) / experiment / scale
    if not base.is_dir():
        return []
    candidates = []
    for d in base.iterdir():
        if d.name == "single" and d.is_dir():
            candidates += [(s.name, [s]) for s in d.iterdir() if s.is_dir() and _is_run(s)]
        elif d.is_dir() and not d.name.startswith("."):
            jobs = sorted((j for j in d.iterdir() if j.is_dir() and _is_run(j)), key=lambda p: (len(p.name), p.name))
            if jobs:
                candidates.append((d.name, jobs))
    return max(candidates)[1] if candidates else []


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export(results: Path, scale: str, out: Path, experiments: list[str] | None = None) -> dict:
    """Copy the newest runs of each experiment into ``out`` (summary.json, metrics.csv.gz) and write
    the manifest. Only finished runs are exported; an experiment with none is an error."""
    results, out = Path(results), Path(out)
    manifest: dict = {"scale": scale, "experiments": {}, "files": {}}
    plans = {}
    for exp in experiments or (*EXPERIMENTS, *OPTIONAL):
        runs = [r for r in latest_runs(results, exp, scale)
                if (r / "summary.json").exists() and (r / "metrics.csv").exists()
                and read_json(r / "summary.json").get("status") in ("completed", "diverged")]
        if not runs and not experiments and exp in OPTIONAL:
            continue
        if not runs:
            raise ReferenceError(f"no finished runs of {exp} at scale {scale} under {results}: "
                                 f"run make {exp.split('_')[0]} SCALE={scale} first")
        plans[exp] = runs
    for exp, runs in plans.items():
        target_base = out / exp / scale
        if target_base.exists():
            shutil.rmtree(target_base)  # the previous reference's runs of this experiment
        rels = []
        for run in runs:
            rel = Path(exp) / scale / run.parent.name / run.name
            dest = out / rel
            dest.mkdir(parents=True)
            shutil.copyfile(run / "summary.json", dest / "summary.json")
            (dest / "metrics.csv.gz").write_bytes(gzip.compress((run / "metrics.csv").read_bytes(), 9, mtime=0))
            rels.append(str(rel))
            for name in ("summary.json", "metrics.csv.gz"):
                manifest["files"][str(rel / name)] = sha256(dest / name)
        manifest["experiments"][exp] = rels
    seeds = sorted({read_json(out / r / "summary.json")["config"].get("seed") for rs in manifest["experiments"].values()
                    for r in rs}, key=str)
    manifest["seeds"] = seeds
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@dataclass
class RefRun:
    experiment: str
    path: Path
    summary: dict


def load_reference(ref: Path) -> dict[str, list[RefRun]]:
    """The reference's runs per experiment, after checking every file the manifest lists."""
    ref = Path(ref)
    fix = "restore it with git checkout -- " + str(ref) + ", or write one with make reference"
    if not (ref / MANIFEST).is_file():
        raise ReferenceError(f"no reference at {ref} ({MANIFEST} missing): {fix}")
    try:
        manifest = json.loads((ref / MANIFEST).read_text())
        experiments, files = dict(manifest["experiments"]), dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as e:
        raise ReferenceError(f"reference manifest {ref / MANIFEST} is unreadable ({type(e).__name__}): {fix}") from None
    for rel, digest in files.items():
        path = ref / rel
        if not path.is_file():
            raise ReferenceError(f"reference {ref} is incomplete: {path} is missing: {fix}")
        if sha256(path) != digest:
            raise ReferenceError(f"reference {ref} is altered: {path} does not match its sha256 in {MANIFEST}: {fix}")
    out: dict[str, list[RefRun]] = {}
    for exp, rels in experiments.items():
        out[exp] = [RefRun(exp, ref / r, json.loads((ref / r / "summary.json").read_text())) for r in rels]
    return out
