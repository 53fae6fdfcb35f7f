"""Compare your runs with the committed reference, metric by metric: ``make verify``.

    python -m experiments.verify --results results --scale quick [--reference results/reference/quick]

For each experiment of the reference it takes your newest sweep at the scale, pairs each of your runs
with the reference run of the same setting, and compares the last value of every scalar metric
(``train_loss``, ``test_acc``, ``beta``, per layer ``ics_cos@5``, ...: rows with no unit or eta) and
the run's status.

The rule:
- **identical** where your environment matches the reference run's: the same lock (``requirements.lock``
  unchanged and installed as pinned), the same CPU model (or GPU), the same determinism switches and
  thread count, and the same config. Same seed, same bits: any difference fails.
- otherwise **within the band**: the reference's seed band for that setting (min..max over its seeds)
  widened by ``max(--abs-tol, --rel-tol x |value|)`` (default 0.02 and 10%).

It prints a table (experiment, run, metric, reference, yours, difference, verdict), names for each
failing run the provenance fields and config keys that differ (the likely cause), and exits 1 if any
metric is outside its rule, 2 on bad input (one line naming the fix). It writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from bnstudy.measures.registry import node_defaults
from bnstudy.provenance import get
from bnstudy.records import flatten, read_metrics
from bnstudy.reference import ReferenceError, RefRun, latest_runs, load_reference

ABS_TOL, REL_TOL = 0.02, 0.10
# what must match for the identical rule (dotted paths into the environment block)
IDENTITY_FIELDS = ("lock.sha256", "lock.matches", "device.type", "device.cpu_model", "device.gpu",
                   "determinism.deterministic_algorithms", "determinism.tf32_matmul", "determinism.tf32_cudnn",
                   "determinism.flush_denormal", "determinism.cudnn_deterministic", "determinism.cudnn_benchmark",
                   "threads.intra_op")
# what else is worth naming when a run differs
CAUSE_FIELDS = ("code.commit", "code.diff_sha256", "python", "libraries.torch", "libraries.torchvision",
                "libraries.numpy", "libraries.pandas", "libraries.hydra-core", *IDENTITY_FIELDS)
IGNORED_CONFIG = {"progress", "resume", "resume_mismatch", "train.device", "train.threads"}  # environment.threads is compared


@dataclass
class Side:
    """One run as the comparison sees it: its setting, config, environment and final values."""

    path: Path
    summary: dict

    @cached_property
    def config(self) -> dict:
        flat = {**node_defaults(), **flatten(self.summary.get("config") or {})}  # measurements added since: off
        return {k: v for k, v in flat.items() if k not in IGNORED_CONFIG}

    @property
    def env(self) -> dict | None:
        return self.summary.get("environment")

    @property
    def setting(self) -> tuple:
        c = self.summary.get("config") or {}
        return (get(c, "norm.name"), get(c, "optim.lr"), c.get("seed"))

    @cached_property
    def recipe(self) -> str:
        """Its config without the seed: the runs of one reference band share it (norm and lr, and any other
        key the experiment sweeps: signal_cnn's model.depth)."""
        return repr(sorted((k, repr(v)) for k, v in self.config.items() if k != "seed"))

    @property
    def label(self) -> str:
        norm, lr, seed = self.setting
        return f"{norm} lr={lr:g} seed={seed}" if isinstance(lr, (int, float)) else f"{norm} seed={seed}"

    def finals(self) -> dict[str, float]:
        """The last value of each metric that has no unit and no eta (per layer: ``ics_cos@5``)."""
        df = read_metrics(self.path / "metrics.csv")
        df = df[df["unit"].isna() & df["eta"].isna()]
        name = df["metric"].astype(str).where(df["layer"].isna(), df["metric"].astype(str) + "@"
                                              + df["layer"].astype("Int64").astype(str))
        df = df.assign(name=name, value=pd.to_numeric(df["value"], errors="coerce"))
        last = df.sort_values("step", kind="stable").groupby("name")["value"].last()
        return {str(k): float(v) for k, v in last.items()}


def _read_summary(run: Path) -> dict:
    path = run / "summary.json"
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
            raise ValueError("no config in it")
    except (OSError, ValueError) as e:
        raise ReferenceError(f"{path} is corrupt or unreadable ({type(e).__name__}: {str(e)[:60]}): rerun that job "
                             f"or remove its folder (python -m experiments.clean_results {run})") from None
    return summary


def differing(a: dict | None, b: dict | None, fields) -> list[str]:
    return [f"{f} {get(a, f)!r} -> {get(b, f)!r}" for f in fields if get(a, f) != get(b, f)]


def config_changes(ref: Side, yours: Side) -> list[str]:
    a, b = ref.config, yours.config
    return [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k != "seed" and a.get(k) != b.get(k)]


def match(yours: Side, refs: list[Side]) -> Side:
    """The reference run of the same config and seed, or else the one whose config differs least (same job
    number breaking ties): a run with another lr is still compared, and the lr named as the cause."""
    same = [r for r in refs if r.recipe == yours.recipe and r.setting[2] == yours.setting[2]]
    if same:
        return same[0]
    return min(refs, key=lambda r: (len(config_changes(r, yours)) + (r.setting[2] != yours.setting[2]),
                                    r.path.name != yours.path.name))


def cached_finals(side: Side, cache: dict) -> dict[str, float]:
    """``side.finals()``, read once per run (``cache.setdefault`` would read the CSV on every call)."""
    if side.path not in cache:
        cache[side.path] = side.finals()
    return cache[side.path]


def band(ref: Side, refs: list[Side], metric: str, cache: dict) -> tuple[float, float]:
    """min..max of ``metric`` over the reference seeds of ``ref``'s config (its norm, lr, ...)."""
    vals = []
    for r in refs:
        if r.recipe == ref.recipe:
            v = cached_finals(r, cache).get(metric, math.nan)
            if math.isfinite(v):
                vals.append(v)
    return (min(vals), max(vals)) if vals else (math.nan, math.nan)


def compare(experiment: str, yours: Side, refs: list[Side], abs_tol: float, rel_tol: float, cache: dict):
    """Rows (experiment, run, metric, reference, yours, difference, verdict) and the likely causes."""
    ref = match(yours, refs)
    causes = config_changes(ref, yours)
    env_diff = differing(ref.env, yours.env, IDENTITY_FIELDS)
    seed_changed = ref.setting[2] != yours.setting[2]
    identical = not (env_diff or causes or seed_changed) and ref.env is not None and yours.env is not None
    mine, theirs = yours.finals(), cached_finals(ref, cache)
    rows = []
    ref_status, your_status = ref.summary.get("status"), yours.summary.get("status")
    rows.append((experiment, yours.label, "status", ref_status, your_status, "",
                 "ok" if ref_status == your_status else "DIFFERS"))
    for metric in sorted(set(theirs) | set(mine)):
        r, y = theirs.get(metric, math.nan), mine.get(metric, math.nan)
        diff = y - r if math.isfinite(r) and math.isfinite(y) else math.nan
        if identical:
            same = (r == y) or (math.isnan(r) and math.isnan(y))
            verdict = "identical" if same else "DIFFERS (expected identical)"
        elif not (math.isfinite(r) and math.isfinite(y)):
            same = (math.isnan(r) and math.isnan(y)) or r == y
            verdict = "ok" if same else "DIFFERS"
        else:
            lo, hi = band(ref, refs, metric, cache)
            tol = max(abs_tol, rel_tol * max(abs(lo), abs(hi)))
            verdict = "within band" if lo - tol <= y <= hi + tol else "DIFFERS"
        rows.append((experiment, yours.label, metric, r, y, diff, verdict))
    failed = any(v.startswith("DIFFERS") for *_, v in rows)
    why = []
    if failed:
        why = causes + [f"seed {ref.setting[2]} -> {yours.setting[2]}"] * seed_changed + \
            differing(ref.env, yours.env, CAUSE_FIELDS)
        if not why:
            why = ["nothing in the config or the environment differs from the reference run's"]
    return rows, (f"{experiment} {yours.label} (vs reference {ref.label})", why) if failed else None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.verify", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"), help="your runs (default: results)")
    p.add_argument("--scale", default="quick", choices=["quick", "paper"])
    p.add_argument("--reference", type=Path, default=None, help="default: results/reference/<scale>")
    p.add_argument("--experiments", nargs="*", default=None, help="default: every experiment of the reference")
    p.add_argument("--abs-tol", type=float, default=ABS_TOL)
    p.add_argument("--rel-tol", type=float, default=REL_TOL)
    a = p.parse_args(argv)
    ref_dir = a.reference or Path("results/reference") / a.scale
    try:
        reference = load_reference(ref_dir)
        unknown = [e for e in a.experiments or [] if e not in reference]
        if unknown:
            raise ReferenceError(f"unknown experiment {', '.join(unknown)}: the reference at {ref_dir} has "
                                 f"{', '.join(reference)}")
        experiments = a.experiments or list(reference)
        mine = {e: [Side(r, _read_summary(r)) for r in latest_runs(a.results, e, a.scale)] for e in experiments}
        for e, runs in mine.items():
            for r in runs:
                name = (r.summary.get("config") or {}).get("name")
                if name != e:
                    raise ReferenceError(f"{r.path} holds a run of experiment {name!r}, not {e!r}: move it out "
                                         f"of {a.results / e}")
                if not (r.path / "metrics.csv").exists():
                    raise ReferenceError(f"{r.path} has no metrics.csv: rerun that job or remove its folder")
        if not any(mine.values()):
            raise ReferenceError(f"no runs of {', '.join(experiments)} at scale {a.scale} under {a.results}: "
                                 f"run make all SCALE={a.scale} (or the experiment's target) first")
    except ReferenceError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    rows, failures, cache, missing = [], [], {}, []
    for e in experiments:
        refs = [Side(r.path, r.summary) for r in reference[e]]
        if not mine[e]:
            missing.append(e)
            continue
        for yours in mine[e]:
            r, why = compare(e, yours, refs, a.abs_tol, a.rel_tol, cache)
            rows += r
            if why:
                failures.append(why)
    df = pd.DataFrame(rows, columns=["experiment", "run", "metric", "reference", "yours", "difference", "verdict"])
    print(df.map(_fmt).to_string(index=False))
    if missing:
        print(f"\nnot run (no runs under {a.results} at scale {a.scale}): {', '.join(missing)}")
    n_bad = int(df["verdict"].str.startswith("DIFFERS").sum())
    if failures:
        print(f"\n{n_bad} metric(s) differ beyond the rule, in {len(failures)} run(s). Likely causes:")
        for what, why in failures:
            print(f"- {what}: {'; '.join(why)}")
        return 1
    print(f"\nverify: {len(df)} values in {len(df[['experiment', 'run']].drop_duplicates())} runs match the reference "
          f"({(df['verdict'] == 'identical').sum()} identical, {(df['verdict'] == 'within band').sum()} within band)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
