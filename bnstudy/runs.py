"""The run reader: every run under a results folder, and the runs each experiment means.

A run dir is a folder holding ``summary.json`` or ``metrics.csv`` (the training loop writes both).
Its status (``bnstudy.status.run_status``) comes from the summary, checked against the dir's lock
(``bnstudy.records.RunLock``) and against its CSV:

==============  =================================================================================
completed       trained to ``train.steps``
diverged        stopped early: NaN/inf or huge loss, or chance accuracy (see ``train.divergence_loss``)
running         a live process holds the dir's lock
interrupted     killed or Ctrl-C'd before the end; rerun with ``hydra.run.dir=<dir>`` to resume it
failed          stopped by an error (``error`` column); rerun as above once it is fixed
truncated       finished, but its ``metrics.csv`` ends before the summary's last step (copied or cut short)
broken          no readable summary, or files that are not what the suite writes (``error`` says what)
==============  =================================================================================

``find_runs`` lists completed and diverged runs and warns about the others, one line per run naming it,
unless ``include_incomplete=True``. ``python -m bnstudy.runs [ROOT] [--all] [--write]`` prints the index
(and writes ``ROOT/runs.csv`` atomically with ``--write``).

**Which runs an experiment means** is one rule, :data:`SELECTION_RULE` (printed in REPORT.md): everything
that reads runs (figures, claims, the report, ``make verify``, ``make reference``, the notebooks, the bench)
reads them through :class:`RunSet`. **Duplicate rows**: ``bnstudy.status.DUPLICATE_RULE``.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import pandas as pd

from bnstudy import canonical
from bnstudy.records import FINISHED, METRICS, SUMMARY, flatten, is_reference, write_text_atomic  # noqa: F401
from bnstudy.status import (DUPLICATE_RULE, BadRunError, RunWarning, iter_run_dirs, load_metrics,  # noqa: F401
                            run_status)

INDEX = "runs.csv"
COLUMNS = ["path", "status", "step", "steps", "name", "scale", "model", "norm", "data", "lr", "seed",
           "resumed_from", "wall_time_s", "error"]

SELECTION_RULE = (
    "An experiment means its canonical runs: finished runs whose settings are the experiment as configured in "
    "conf/ at the scale (`experiment=NAME scale=SCALE` composed for the run's own norm, lr and other swept "
    "values, each one the sweep lists; the seed and settings that change no number aside). Of several runs of "
    "one sweep point and seed the one that finished last counts. Runs with other settings are exploratory: "
    "drawn and judged apart, labelled with how they differ, never counted among the paper's verdicts (an "
    "experiment with no canonical run draws its newest exploratory runs, labelled). Unfinished and unreadable "
    "runs are left out and listed; single runs (`single/`) count only when named with `--sweep`, and named "
    "sweeps replace the default choice for their experiment. The committed reference is never among them "
    "unless the results folder is the reference itself.")


# --------------------------------------------------------------------------------------------- index
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
    final = summary.get("final")
    for key, value in (final if isinstance(final, dict) else {}).items():
        row[f"final_{key}"] = pd.to_numeric(value, errors="coerce")  # "nan" (JSON has no NaN) -> NaN
    row.update(flatten(cfg))  # every setting as a dotted column: optim.lr, model.num_layers, ...
    return row


def find_runs(root: str | Path = "results", include_incomplete: bool = False) -> pd.DataFrame:
    """One row per run dir under ``root``: path, status, step, name, scale, model, norm, data, lr, seed,
    ``final_*`` metrics and every config setting as a dotted column (``optim.momentum``, ...).

    Runs that are not completed or diverged (running, interrupted, failed) are left out with one
    ``warnings.warn`` naming them, and each truncated or broken run with one :class:`RunWarning` line
    naming it and why, unless ``include_incomplete``.
    """
    rows, skipped = [], []
    for run_dir in iter_run_dirs(root):
        status, summary = run_status(run_dir)
        if status not in FINISHED and not include_incomplete:
            if status in ("broken", "truncated"):
                warnings.warn(f"skipped {run_dir}: {summary.get('error') or status}", RunWarning, stacklevel=2)
                continue
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


# ---------------------------------------------------------------------------------------------- runs
def fmt_g(x) -> str:
    """A number in its shortest form (0.1, 1e-06); anything else as text."""
    try:
        return f"{float(x):g}"
    except (TypeError, ValueError):
        return str(x)


@dataclass
class Run:
    """One finished (completed or diverged) run: its identity and its metrics, read on first use."""

    path: Path
    experiment: str
    status: str
    model: str
    data: str
    norm: str
    lr: float
    seed: object
    steps: int  # planned (train.steps)
    step: int  # reached
    sweep: Optional[Path] = None
    scale: str = ""
    _metrics: Optional[pd.DataFrame] = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.experiment} {self.norm} lr={fmt_g(self.lr)} seed={self.seed}"

    @property
    def metrics(self) -> pd.DataFrame:
        """The run's rows (``load_metrics``: checked, one row per key)."""
        if self._metrics is None:
            self._metrics = load_metrics(self.path / METRICS)
        return self._metrics

    def series(self, metric: str, layer: Optional[float] = None) -> pd.Series:
        """``metric`` by step, one value per step (``layer`` given: that layer's rows; else rows with no
        layer), from the rows with no unit and no eta: what the claims compare."""
        df = self.metrics
        sel = (df["metric"] == metric) & df["unit"].isna() & df["eta"].isna()
        sel &= df["layer"].isna() if layer is None else (df["layer"] == layer)
        s = df.loc[sel, ["step", "value"]].drop_duplicates("step", keep="last").set_index("step")["value"]
        return s.sort_index().astype(float)

    def step_mean(self, metric: str, layer: Optional[float] = None) -> pd.Series:
        """``metric`` by step as a figure draws it: the mean of the step's rows (of ``layer``, or of every
        layer; the unit-wide rows where a metric has both unit-wide and per-unit rows; every eta)."""
        df = self.metrics[self.metrics["metric"] == metric]
        if layer is not None:
            df = df[df["layer"] == layer]
        if df["unit"].notna().any() and df["unit"].isna().any():
            df = df[df["unit"].isna()]
        return df.groupby("step")["value"].mean()

    def layers(self, metric: str) -> list[int]:
        """The layers (1-based blocks) that have rows of ``metric``."""
        df = self.metrics
        return sorted(int(v) for v in df.loc[(df["metric"] == metric) & df["layer"].notna(), "layer"].unique())

    def at_init(self, metric: str) -> pd.Series:
        """``metric`` by layer at the run's first measured step (its initialisation), the mean over units."""
        df = self.metrics[(self.metrics["metric"] == metric) & self.metrics["layer"].notna()]
        if df.empty:
            return pd.Series(dtype=float)
        return df[df["step"] == df["step"].min()].groupby("layer")["value"].mean().sort_index()


def by_norm_lr(runs: Iterable[Run]) -> dict[tuple[str, float], list[Run]]:
    """The runs of each (norm, lr), in the order they come: a figure's curve, a claim's group (its seeds)."""
    out: dict[tuple[str, float], list[Run]] = {}
    for r in runs:
        out.setdefault((r.norm, r.lr), []).append(r)
    return out


def layers_of(runs: Iterable[Run], metric: str) -> list[int]:
    """The layers that have rows of ``metric`` in any of ``runs``."""
    return sorted(set().union(*(r.layers(metric) for r in runs)))


def sweep_of(run_dir: Path) -> Path:
    """The sweep a run belongs to: its parent folder (``<sweep>/<job>``); a single run is its own."""
    run_dir = Path(run_dir)
    return run_dir if run_dir.parent.name == "single" else run_dir.parent


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == f or path.is_relative_to(f) for f in folders)


@dataclass
class Experiment:
    """The runs one experiment means (:data:`SELECTION_RULE`), where they come from, and what was left out.

    ``exploratory`` is empty when ``runs`` are canonical, else how they differ from the experiment as
    configured; ``others`` holds the exploratory groups not chosen (one per distinct set of settings)."""

    name: str
    scale: str
    runs: list[Run]
    sweeps: list[Path]
    notes: list[str]
    exploratory: str = ""
    others: list["Experiment"] = field(default_factory=list)

    @property
    def canonical(self) -> bool:
        return bool(self.runs) and not self.exploratory

    @property
    def seeds(self) -> list:
        return sorted({r.seed for r in self.runs}, key=str)

    @property
    def steps(self) -> list[int]:
        return sorted({r.steps for r in self.runs})

    def describe(self) -> str:
        """One line: which sweep(s), how many runs and seeds, how many steps, and whether exploratory."""
        if not self.runs:
            return f"{self.name} ({self.scale}): no finished runs"
        sweeps = ", ".join(s.name for s in self.sweeps)
        n_seeds = len(self.seeds)
        steps = "/".join(f"{s:,}" for s in self.steps)
        return (f"{self.name} ({self.scale}): sweep{'s' if len(self.sweeps) > 1 else ''} {sweeps}; "
                f"{len(self.runs)} runs, {n_seeds} seed{'s' if n_seeds > 1 else ''}, {steps} steps"
                + (f"; exploratory: {self.exploratory}" if self.exploratory else "")
                + (f"; {len(self.notes)} left out" if self.notes else ""))


class RunSet:
    """The runs of one scale under a results root, as each experiment means them (:data:`SELECTION_RULE`).

    ``sweeps``: sweep folders (or single-run folders) to read instead of the default choice, for the
    experiments they belong to. ``spec(name, scale)``: the experiment as configured (default
    :func:`bnstudy.canonical.spec`, composed from ``conf/``, looked up when the RunSet is made; None: no spec,
    every run canonical). ``seeds``: only the runs of these seeds (``make verify`` judges the reference on your
    seeds). Unreadable runs are left out with one :class:`RunWarning` line each.
    """

    def __init__(self, root: str | Path = "results", scale: str = "quick", sweeps: Sequence[str | Path] = (),
                 spec: Optional[Callable[[str, str], Any]] | str = "conf", seeds: Optional[Iterable] = None):
        self.root, self.scale = Path(root), scale
        self.seeds = None if seeds is None else set(seeds)
        self.spec = canonical.spec if spec == "conf" else spec
        self.sweeps = [Path(s).resolve() for s in sweeps]
        for s in self.sweeps:
            if not s.is_dir():
                raise FileNotFoundError(f"no sweep folder {s}")
        roots = [self.root] + [s for s in self.sweeps if not _inside(s, [self.root.resolve()])]
        rows, self._config = [], {}
        for base in roots:
            for run_dir in iter_run_dirs(base):
                status, summary = run_status(run_dir)
                rows.append(_row(run_dir, status, summary))
                self._config[str(run_dir)] = flatten(summary.get("config") or {})
        df = pd.DataFrame(rows)
        if len(df) and self.seeds is not None:
            df = df[[seed in self.seeds for seed in df["seed"]]].reset_index(drop=True)
        if len(df):
            for i in df.index[df["name"].isna()]:  # unreadable summary: its experiment from the path the suite uses
                parts = Path(df.at[i, "path"]).relative_to(self.root).parts if _inside(
                    Path(df.at[i, "path"]).resolve(), [self.root.resolve()]) else ()
                if len(parts) >= 3:
                    df.at[i, "name"], df.at[i, "scale"] = parts[0], parts[1]
            df["where"] = [Path(p).resolve() for p in df["path"]]
            df["sweep"] = [sweep_of(w) for w in df["where"]]
            df["mtime"] = [_mtime(Path(p)) for p in df["path"]]
        self._index = df
        self._cache: dict[str, Experiment] = {}

    def names(self) -> list[str]:
        """The experiments with runs of this scale (or in the named sweeps)."""
        df = self._index
        if df.empty:
            return []
        keep = (df["scale"] == self.scale) | df["where"].map(lambda w: _inside(w, self.sweeps))
        return sorted({str(n) for n in df.loc[keep, "name"].dropna()})

    def experiment(self, name: str) -> Experiment:
        if name not in self._cache:
            self._cache[name] = self._select(name)
        return self._cache[name]

    def runs(self, name: str) -> list[Run]:
        return self.experiment(name).runs

    def config(self, run: Run) -> dict:
        """A run's settings, flattened (``model.depth``, ``optim.lr``, ...), as its summary records them."""
        return self._config.get(str(run.path), {})

    def differences(self, name: str, path: str | Path) -> list[str]:
        """How a run of experiment ``name`` differs from the experiment as configured ([]: canonical)."""
        spec = self.spec(name, self.scale) if self.spec else None
        if self.spec is None:
            return []
        if spec is None:
            return [f"no conf/experiment/{name}.yaml at scale {self.scale} to compare with"]
        return spec.differences(canonical.flat_settings(self._config.get(str(path), {})))

    # ---------------------------------------------------------------------------------- selection
    def _select(self, name: str) -> Experiment:
        df = self._index
        if df.empty:
            return Experiment(name, self.scale, [], [], [])
        df = df[df["name"] == name]
        named = df[df["where"].map(lambda w: _inside(w, self.sweeps))]
        if len(named):
            df = named
        else:
            df = df[(df["scale"] == self.scale) & (df["sweep"].map(lambda s: s.parent.name) != "single")]
        notes: list[str] = []
        for _, r in df.iterrows():  # unfinished and unreadable runs: named, not used
            if r["status"] in FINISHED:
                continue
            if r["status"] in ("broken", "truncated"):
                warnings.warn(f"skipped {r['path']}: {r['error']}", RunWarning, stacklevel=3)
                notes.append(f"{r['path']}: {r['status']} ({r['error']}) - not used")
                continue
            at = f" at step {int(r['step'])}" if pd.notna(r.get("step")) else ""
            notes.append(f"{name} {r['norm']} lr={fmt_g(r['lr'])} seed={r['seed']}: {r['status']}{at} "
                         f"({r['path']}) - not used")
        done = df[df["status"].isin(FINISHED)]
        if done.empty:
            return Experiment(name, self.scale, [], [], notes)
        spec = self.spec(name, self.scale) if self.spec else None
        swept = list(spec.swept) if spec else []
        groups: dict[tuple, list] = {}  # () canonical; else the settings that differ (or the swept values)
        for _, r in done.iterrows():
            diff = self.differences(name, r["path"])
            settings = tuple(d for d in diff if " not in the experiment " not in d)
            groups.setdefault(settings or (("outside the sweep",) if diff else ()), []).append((r, diff))
        if len(named):  # named sweeps are read as they are, canonical or not
            return self._group(name, [x for rows in groups.values() for x in rows], swept, notes)
        chosen = self._group(name, groups.pop((), []), swept, notes)
        others = sorted((self._group(name, rows, swept, []) for rows in groups.values()),
                        key=lambda e: -max((_mtime(r.path) for r in e.runs), default=0))
        if chosen.runs:
            e = chosen
        elif others:
            e = others.pop(0)
            e.notes[:0] = notes
        else:
            return Experiment(name, self.scale, [], [], notes)
        for o in others:
            e.notes.append(f"{name}: {len(o.runs)} exploratory run(s) of {', '.join(s.name for s in o.sweeps)} "
                           f"({o.exploratory}) - judged apart")
        e.others = others
        return e

    def _group(self, name: str, rows: list, swept: list[str], notes: list[str]) -> Experiment:
        """One group of finished runs (canonical, or one set of exploratory settings): the latest run of each
        sweep point and seed, checked readable."""
        diffs: list[str] = []
        latest: dict[tuple, Run] = {}
        for r, diff in sorted(rows, key=lambda x: x[0]["mtime"]):
            diffs += [d for d in diff if d not in diffs]
            run = _make_run(r)
            cfg = self._config[r["path"]]
            key = (run.norm, run.lr, str(run.seed), *(str(cfg.get(k, cfg.get(f"{k}.name"))) for k in swept),
                   *(d for d in diff))
            if key in latest:
                notes.append(f"{run.label}: {latest[key].path} superseded by the later {run.path}")
            latest[key] = run
        runs = []
        for run in latest.values():
            try:
                run.metrics  # noqa: B018  (read and check now: a corrupt CSV is left out here, named)
            except BadRunError as e:
                warnings.warn(f"skipped {run.path}: {e}", RunWarning, stacklevel=4)
                notes.append(f"{run.label}: {e} - not used")
                continue
            runs.append(run)
        newest = max(runs, key=lambda r: _mtime(r.path)).sweep if runs else None
        sweeps = sorted({r.sweep for r in runs}, key=lambda s: (s != newest, str(s)))
        return Experiment(name, self.scale, runs, sweeps, notes, canonical.describe(diffs) if diffs else "")


def _mtime(run_dir: Path) -> float:
    try:
        return (run_dir / SUMMARY).stat().st_mtime
    except OSError:
        return 0.0


def _make_run(r: pd.Series) -> Run:
    num = lambda v, default=0: int(v) if pd.notna(v) else default
    return Run(Path(r["path"]), str(r["name"]), r["status"], str(r["model"]), str(r.get("data")), str(r["norm"]),
               float(r["lr"]), r["seed"], num(r["steps"]), num(r["step"]), sweep=r["sweep"], scale=str(r["scale"]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bnstudy.runs", description="List the runs under a results folder. "
                                "Figures and the report read them by this rule: " + SELECTION_RULE.replace("%", "%%"))
    p.add_argument("root", nargs="?", default="results")
    p.add_argument("--all", action="store_true",
                   help="include running, interrupted, failed, truncated and broken runs")
    p.add_argument("--write", action="store_true", help=f"also write ROOT/{INDEX} (all runs)")
    args = p.parse_args(argv)
    one_line_warnings()
    df = write_index(args.root) if args.write else find_runs(args.root, include_incomplete=args.all)
    if not args.all:
        df = df[df["status"].isin(FINISHED)]
    cols = ["path", "status", "step", "model", "norm", "data", "lr", "seed"]
    cols += [c for c in ("final_test_acc", "final_train_loss") if c in df]  # an unfinished run: at its checkpoint
    print(df[cols].to_string(index=False) if len(df) else f"no runs under {args.root}")


def one_line_warnings() -> None:
    """Show warnings as ``warning: <message>`` (command-line tools: one line per skipped run)."""
    warnings.formatwarning = lambda message, category, *a, **k: f"warning: {message}\n"


if __name__ == "__main__":
    main()
