"""The paper's claims as programmatic checks over the run records (``metrics.csv`` + ``summary.json``).

``check_claims(results_root, scale)`` reads every run under ``results_root`` (via ``bnstudy.runs.find_runs``),
keeps the runs of one scale, and returns one :class:`ClaimResult` per claim, in the order of PROTOCOL.md
("Claims the results can be checked against"):

====  ==========================================================================================
1a    BN reaches higher final test and train accuracy than standard at the same lr (fig1)
1b    BN trains faster: reaches a target train accuracy in fewer steps (fig1)
2     BN trains at the high lr (0.5) where standard training degrades (fig1)
3a    Noisy BN nearly matches BN, and is far above the standard network with the same noise (fig2)
3b    The same noise in the standard network stops it from training (fig2)
4a    Gradient ICS is not lower with BN (fig3_cnn, fig3_dln: cosine of G, G')
4b    DLN: standard's ICS almost none (cos ~ 1), BN's G and G' nearly uncorrelated (fig3_dln)
5a    With BN the loss-landscape band is narrower (fig4_cnn, fig4_dln)
5b    With BN gradient predictiveness is better, by up to ~2 orders of magnitude early (same)
5c    With BN the effective beta-smoothness is smaller (same)
5d    Seed 001's small CNN: with BN the loss changes less between steps and beta w.r.t. activations is smaller
6a    l1/l2/linf normalisations match or beat BN in training accuracy (fig5_cnn)
6b    On the DLN, l1 beats BN in training loss (fig5_dln)
====  ==========================================================================================

Verdicts: ``holds``, ``does not hold``, ``inconclusive`` (the experiment ran but every comparison it needs
was left out, e.g. one side was never live) and ``not run`` (the experiment, or a run the claim needs, is
missing). Each result carries the numbers behind its verdict and a note of the runs/periods left out.

Aggregation: runs are grouped per (norm, lr); a group's scalar is the mean over its seeds (``n`` is
reported). Of several runs of the same (model, data, norm, lr, seed) the latest finished one is used.

**Live periods.** A dead run (stuck at chance, or a loss that stays flat) or a diverged one has a trivially
flat landscape (beta ~ 0) and would "win" every smoothness claim, so the curve claims (4, 5) compare
*live* measurements only. A measurement at step ``s`` belongs to the training-log window that contains step
``s`` (the first ``train_loss``/``train_acc`` row logged at a step > ``s``); it is live when that window's
loss is finite and below :data:`DIVERGENCE_LOSS`, and

* classifiers: the window's train accuracy (rolling median over :data:`LIVE_SMOOTH_WINDOWS` windows) is
  above chance + :data:`CHANCE_MARGIN`;
* regression (the DLN): the loss is still decreasing: over the next :data:`DLN_WINDOW_FRAC` of the run
  (the previous one at the end of the run) it falls by at least :data:`DLN_MIN_DECREASE` (relative).

Measurements after a run stopped (diverged) have no window and are not live. A group's curve at a step is
the mean over its live seeds; standard and BN are compared at the steps where both groups are live, and
the report lists every run with measured steps left out, and why. The accuracy claims (1-3, 6) use final
values instead; there a diverged run counts at chance accuracy (its weights are gone: the last logged
test accuracy would be stale) and at an infinite loss.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd

from bnstudy.records import read_metrics
from bnstudy.runs import find_runs

# ------------------------------------------------------------------------------------------- constants
CHANCE_MARGIN = 0.05
"""A classifier is 'at chance' when its accuracy is <= 1/num_classes + this (0.15 for 10 classes).
Used for liveness (claims 4-5), for 'BN trains at the high lr' (2) and 'noise stops training' (3b)."""

LIVE_SMOOTH_WINDOWS = 5
"""Liveness of a classifier uses the centred rolling median of its train accuracy over this many logged
windows, so that one noisy window above the threshold does not make a dead run live (nor one below it a
live run dead)."""

NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}
"""Classes per dataset (chance = 1/num_classes); a dataset not listed with train_acc rows counts 10."""

DEFAULT_NUM_CLASSES = 10
"""num_classes for a classification dataset missing from :data:`NUM_CLASSES`."""

DIVERGENCE_LOSS = 1e6
"""A logged training loss above this (or NaN/inf) marks the window diverged (as ``train.divergence_loss``)."""

FINAL_WINDOW_FRAC = 0.05
"""'Final' train accuracy/loss = mean of the logged values in the last 5% of the run's planned steps
(at least the last logged value): the per-window train metrics are noisy. Final test accuracy = last eval."""

FASTER_TARGET_FRAC = 0.8
"""Claim 1b: 'faster' = fewer steps to reach this fraction of BN's final train accuracy (at that lr)."""

DEGRADE_MARGIN = 0.01
"""Claim 2: standard at the high lr must be at least this much (accuracy) below both standard at the low lr
and BN at the high lr."""

NOISY_TOL = 0.03
"""Claim 3a: noisy BN's final train accuracy must be >= BN's minus this (3 points)."""

NOISE_GAP = 0.10
"""Claims 3a/3b: 'far above/below' = at least this much final train accuracy (10 points)."""

ICS_COS_TOL = 0.02
"""Claim 4a: ICS 'not lower with BN' = BN's median cos(G, G') <= standard's + this, per layer (a higher
cosine means G' is closer to G, i.e. less ICS). The l2 difference is reported, not judged: its scale
depends on the gradient norms, which BN changes."""

DLN_STD_COS_MIN = 0.9
"""Claim 4b: standard DLN 'almost no ICS' = its median cos(G, G') >= this in every measured layer."""

DLN_BN_COS_MAX = 0.5
"""Claim 4b: BN DLN 'G and G' nearly uncorrelated' = its median cos(G, G') <= this in every measured layer."""

SMOOTH_MIN_RATIO = 1.0
"""Claims 5a-c: holds when standard's median / BN's median (over common live steps) exceeds this in every
conclusive comparison (experiment x lr)."""

EARLY_FRAC = 0.25
"""Claims 5a-c: 'early in training' = measured steps before this fraction of the planned steps."""

PAPER_EARLY_RATIO = 100.0
"""Claim 5b: the paper's 'up to ~2 orders of magnitude'; the largest early ratio is reported against it
(informative: the verdict needs only ratio > :data:`SMOOTH_MIN_RATIO`)."""

LP_TOL = 0.03
"""Claim 6a: an lp normalisation 'matches' BN when its final train accuracy >= BN's minus this (3 points)."""

L1_BEATS_MARGIN = 0.01
"""Claim 6b: l1 'beats' BN when its final DLN train loss is at least this fraction (1%) below BN's."""

DLN_WINDOW_FRAC = 0.1
"""DLN liveness: the look-ahead (look-back at the end of the run) span, as a fraction of planned steps."""

DLN_MIN_DECREASE = 1e-3
"""DLN liveness: the minimum relative loss decrease over :data:`DLN_WINDOW_FRAC` of the run for 'decreasing'."""

MIN_COMMON_STEPS = 3
"""Curve claims: a comparison needs at least this many measured steps where both groups are live;
with fewer it is left out (inconclusive) and listed."""

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_RUN)
STANDARD, BN = "none", "batch"


@dataclass
class ClaimResult:
    """One claim's verdict, the numbers behind it, and the runs/periods it left out."""

    id: str
    claim: str
    figure: str
    verdict: str
    evidence: str
    excluded: str = ""  # one note per line


# ------------------------------------------------------------------------------------------------ runs
@dataclass
class Run:
    """One finished (completed or diverged) run and its metrics, read on first use."""

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
    _metrics: Optional[pd.DataFrame] = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.experiment} {self.norm} lr={_g(self.lr)} seed={self.seed}"

    @property
    def metrics(self) -> pd.DataFrame:
        if self._metrics is None:
            found = any((self.path / name).exists() for name in ("metrics.csv", "metrics.csv.gz"))
            df = read_metrics(self.path / "metrics.csv") if found else \
                pd.DataFrame(columns=["step", "metric", "layer", "unit", "eta", "value"])
            df["value"] = pd.to_numeric(df["value"], errors="coerce")
            self._metrics = df
        return self._metrics

    @cached_property
    def classify(self) -> bool:
        return bool((self.metrics["metric"] == "train_acc").any()) or self.data in NUM_CLASSES

    @property
    def chance(self) -> float:
        return 1.0 / NUM_CLASSES.get(self.data, DEFAULT_NUM_CLASSES)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def series(self, metric: str, layer: Optional[float] = None) -> pd.Series:
        """``metric`` by step (``layer`` given: that layer's rows; else rows with no layer/unit/eta)."""
        df = self.metrics
        sel = (df["metric"] == metric) & df["unit"].isna() & df["eta"].isna()
        sel &= df["layer"].isna() if layer is None else (df["layer"] == layer)
        s = df.loc[sel, ["step", "value"]].drop_duplicates("step", keep="last").set_index("step")["value"]
        return s.sort_index().astype(float)

    def layers(self, metric: str) -> list[float]:
        df = self.metrics
        return sorted(df.loc[(df["metric"] == metric) & df["layer"].notna(), "layer"].unique().tolist())

    # -------------------------------------------------------------------------------- final values
    def final_train(self, metric: str) -> float:
        """Mean of ``metric`` over the last :data:`FINAL_WINDOW_FRAC` of the planned steps; a diverged
        run: chance (accuracy) or inf (loss)."""
        if self.diverged:
            return self.chance if metric.endswith("acc") else math.inf
        s = self.series(metric).dropna()
        if s.empty:
            return math.nan
        last = s.index.max()
        return float(s[s.index > last - max(self.steps * FINAL_WINDOW_FRAC, 1e-9)].mean())

    def final_eval(self, metric: str) -> float:
        """The last logged value of an eval ``metric`` (test_acc, ...); a diverged run: chance or inf."""
        if self.diverged:
            return self.chance if metric.endswith("acc") else math.inf
        s = self.series(metric).dropna()
        return float(s.iloc[-1]) if len(s) else math.nan

    # ------------------------------------------------------------------------------------ liveness
    @cached_property
    def _windows(self) -> pd.DataFrame:
        """The training-log windows: step (end, exclusive), loss, acc, live, reason."""
        loss = self.series("train_loss")
        out = pd.DataFrame({"loss": loss})
        if self.classify:
            out["acc"] = self.series("train_acc").reindex(out.index)
        reason = pd.Series("", index=out.index, dtype=object)
        bad = ~np.isfinite(out["loss"].to_numpy()) | (out["loss"].abs() > DIVERGENCE_LOSS).to_numpy()
        reason[bad] = f"loss not finite or > {DIVERGENCE_LOSS:g} (diverged)"
        if self.classify:
            thr = self.chance + CHANCE_MARGIN
            smooth = out["acc"].rolling(LIVE_SMOOTH_WINDOWS, center=True, min_periods=1).median()
            stuck = ~bad & ~(smooth > thr).to_numpy()
            reason[stuck] = f"train acc at chance (<= {thr:.2f})"
        else:
            reason[~bad & ~self._decreasing(out["loss"])] = (
                f"loss flat (< {DLN_MIN_DECREASE:.1%} decrease over {DLN_WINDOW_FRAC:.0%} of the run)")
        out["reason"] = reason
        out["live"] = reason == ""
        return out

    def _decreasing(self, loss: pd.Series) -> np.ndarray:
        steps, vals = loss.index.to_numpy(dtype=float), loss.to_numpy(dtype=float)
        span = max(self.steps * DLN_WINDOW_FRAC, 1.0)
        ok = np.zeros(len(vals), dtype=bool)
        for i, (s, v) in enumerate(zip(steps, vals)):
            ahead = (steps > s) & (steps <= s + span)
            if steps.max() >= s + span and ahead.any():  # a full window ahead
                ok[i] = np.nanmin(vals[ahead]) < v * (1 - DLN_MIN_DECREASE)
            else:  # the end of the run: the window behind
                behind = (steps < s) & (steps >= s - span)
                if not behind.any():
                    ok[i] = bool(np.isfinite(v))  # too short a run to tell
                else:
                    ok[i] = v < np.nanmax(vals[behind]) * (1 - DLN_MIN_DECREASE)
        return ok

    def live_at(self, steps: Iterable[float]) -> tuple[np.ndarray, list[str]]:
        """Whether the run is live at each measured step, and why not (empty reason where live)."""
        steps = np.asarray(list(steps), dtype=float)
        w = self._windows
        if w.empty:
            return np.zeros(len(steps), bool), ["no training log"] * len(steps)
        ends = w.index.to_numpy(dtype=float)
        idx = np.searchsorted(ends, steps, side="right")  # first window end > s: the window holding step s
        live, reasons = np.zeros(len(steps), bool), []
        for i, j in enumerate(idx):
            if j >= len(ends):
                reasons.append("after the run stopped" + (" (diverged)" if self.diverged else ""))
                continue
            live[i] = bool(w["live"].iloc[j])
            reasons.append(w["reason"].iloc[j])
        return live, reasons


class Results:
    """The finished runs of one scale under a results root, per experiment, plus notes of runs left out."""

    def __init__(self, root: Path, scale: str):
        self.root, self.scale = Path(root), scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = find_runs(self.root, include_incomplete=True)
        self._runs: dict[str, list[Run]] = {}
        self._notes: dict[str, list[str]] = {}
        if df.empty:
            return
        df = df[df["scale"] == scale]
        for name, sub in df.groupby("name", dropna=True):
            self._load(str(name), sub)

    def _load(self, name: str, sub: pd.DataFrame) -> None:
        notes = self._notes.setdefault(name, [])
        runs = []
        for _, r in sub.iterrows():
            path = Path(r["path"])
            if r["status"] not in ("completed", "diverged"):
                at = f" at step {int(r['step'])}" if pd.notna(r.get("step")) else ""
                notes.append(f"{name} {r['norm']} lr={_g(r['lr'])} seed={r['seed']}: {r['status']}{at} "
                             f"({path}) - not used")
                continue
            mtime = (path / "summary.json").stat().st_mtime if (path / "summary.json").exists() else 0.0
            runs.append((mtime, Run(path, name, r["status"], str(r["model"]), str(r.get("data")), str(r["norm"]),
                                    float(r["lr"]), r["seed"], int(r["steps"]) if pd.notna(r["steps"]) else 0,
                                    int(r["step"]) if pd.notna(r["step"]) else 0)))
        if not runs:
            return
        # one setup (model, data) per experiment: the one with the most runs (ties: the latest)
        setups: dict[tuple, list] = {}
        for m, run in runs:
            setups.setdefault((run.model, run.data), []).append((m, run))
        best = max(setups, key=lambda k: (len(setups[k]), max(m for m, _ in setups[k])))
        for key, rs in setups.items():
            if key != best:
                notes.append(f"{name}: {len(rs)} run(s) of model={key[0]} data={key[1]} not used "
                             f"(the claims use model={best[0]} data={best[1]})")
        latest: dict[tuple, tuple] = {}
        for m, run in sorted(setups[best], key=lambda t: t[0]):
            key = (run.norm, run.lr, str(run.seed))
            if key in latest:
                notes.append(f"{run.label}: {latest[key][1].path} superseded by the later {run.path}")
            latest[key] = (m, run)
        self._runs[name] = [run for _, run in latest.values()]

    def runs(self, name: str) -> list[Run]:
        return self._runs.get(name, [])

    def notes(self, name: str) -> list[str]:
        return self._notes.get(name, [])

    def groups(self, name: str) -> dict[tuple[str, float], list[Run]]:
        out: dict[tuple[str, float], list[Run]] = {}
        for run in self.runs(name):
            out.setdefault((run.norm, run.lr), []).append(run)
        return dict(sorted(out.items(), key=lambda kv: (kv[0][1], kv[0][0])))


# --------------------------------------------------------------------------------------------- helpers
def _g(x) -> str:
    try:
        return f"{float(x):g}"
    except (TypeError, ValueError):
        return str(x)


def _f(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 10 ** -digits):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}f}"


def _step(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:.0f}"


def _ratio(a: float, b: float) -> float:
    if not (np.isfinite(a) and np.isfinite(b)) or (a == 0 and b == 0):
        return math.nan
    return math.inf if b == 0 else a / b


def _x(r: float) -> str:
    if math.isnan(r):
        return "n/a"
    if math.isinf(r):
        return "inf x"
    return f"{r:.3g}x"


def _mean(runs: list[Run], fn: Callable[[Run], float]) -> tuple[float, int]:
    """Mean of ``fn`` over the runs' seeds (NaN values skipped), and how many counted."""
    vals = [fn(r) for r in runs]
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return math.nan, 0
    return (math.inf if any(math.isinf(v) and v > 0 for v in vals) else float(np.mean(vals))), len(vals)


def _combine(outcomes: list[Optional[bool]]) -> str:
    decided = [o for o in outcomes if o is not None]
    if not decided:
        return INCONCLUSIVE
    return HOLDS if all(decided) else FAILS


class _Notes:
    """Ordered, de-duplicated notes of runs/periods a claim left out."""

    def __init__(self):
        self.items: list[str] = []

    def add(self, note: str) -> None:
        if note and note not in self.items:
            self.items.append(note)

    def extend(self, notes: Iterable[str]) -> None:
        for n in notes:
            self.add(n)

    def diverged(self, runs: Iterable[Run], what: str = "accuracy at chance, loss inf") -> None:
        for r in runs:
            if r.diverged:
                self.add(f"{r.label}: diverged at step {r.step} - counted with {what}")

    def __str__(self) -> str:
        return "\n".join(self.items)


def _result(cid: str, claim: str, figure: str, verdict: str, parts: list[str], notes: _Notes) -> ClaimResult:
    return ClaimResult(cid, claim, figure, verdict, "; ".join(parts), str(notes))


def _not_run(cid: str, claim: str, figure: str, why: str, notes: Optional[_Notes] = None) -> ClaimResult:
    return ClaimResult(cid, claim, figure, NOT_RUN, why, str(notes or ""))


def _pairs(groups: dict, a: str, b: str) -> list[float]:
    """The lrs at which both norms ``a`` and ``b`` ran."""
    return sorted({lr for (n, lr) in groups if n == a and (b, lr) in groups})


# ---------------------------------------------------------------------------------- curve comparisons
@dataclass
class Comparison:
    """Standard vs BN medians of one measure over the steps where both groups are live."""

    label: str
    med_std: float = math.nan
    med_bn: float = math.nan
    n_common: int = 0
    n_std: int = 0
    n_bn: int = 0
    early_std: float = math.nan
    early_bn: float = math.nan
    n_early: int = 0

    @property
    def conclusive(self) -> bool:
        return self.n_common >= MIN_COMMON_STEPS and not math.isnan(_ratio(self.med_std, self.med_bn))

    @property
    def ratio(self) -> float:
        return _ratio(self.med_std, self.med_bn)

    @property
    def early_ratio(self) -> float:
        return _ratio(self.early_std, self.early_bn) if self.n_early else math.nan


def _group_curve(runs: list[Run], value: Callable[[Run], pd.Series], notes: _Notes, what: str,
                 use_live: bool = True) -> pd.Series:
    """A group's curve: at each measured step the mean over its live seeds (NaN where none is live)."""
    cols = {}
    for r in runs:
        s = value(r)
        s = s[np.isfinite(s.to_numpy(dtype=float))]
        if s.empty:
            continue
        live, reasons = r.live_at(s.index) if use_live else (np.ones(len(s), bool), [""] * len(s))
        if (~live).any():
            dead = s.index[~live]
            why = ", ".join(sorted({x for x, ok in zip(reasons, live) if not ok}))
            scope = "whole run not live" if not live.any() else \
                f"{int((~live).sum())}/{len(s)} measured steps not live (steps {_g(dead.min())}-{_g(dead.max())})"
            notes.add(f"{r.label}: {scope}: {why} - left out of the {what} comparison")
        cols[str(r.seed)] = s.where(live)
    if not cols:
        return pd.Series(dtype=float)
    return pd.DataFrame(cols).mean(axis=1, skipna=True)


def _compare(label: str, std: list[Run], bn: list[Run], value: Callable[[Run], pd.Series], notes: _Notes,
             what: str, use_live: bool = True) -> Comparison:
    cs = _group_curve(std, value, notes, what, use_live)
    cb = _group_curve(bn, value, notes, what, use_live)
    c = Comparison(label, n_std=int(cs.notna().sum()), n_bn=int(cb.notna().sum()))
    both = pd.concat([cs.rename("s"), cb.rename("b")], axis=1).dropna()
    c.n_common = len(both)
    if len(both):
        c.med_std, c.med_bn = float(both["s"].median()), float(both["b"].median())
        planned = max(r.steps for r in std + bn) or (both.index.max() + 1)
        early = both[both.index < planned * EARLY_FRAC]
        c.n_early = len(early)
        if len(early):
            c.early_std, c.early_bn = float(early["s"].median()), float(early["b"].median())
    if not c.conclusive:
        notes.add(f"{label}: {c.n_common} measured step(s) where both standard and BN are live "
                  f"(need {MIN_COMMON_STEPS}) - comparison left out")
    return c


def _band(r: Run) -> pd.Series:
    return (r.series("landscape_loss_max") - r.series("landscape_loss_min")).dropna()


# ---------------------------------------------------------------------------------------------- claims
def _experiment(R: Results, name: str) -> tuple[dict, "_Notes"]:
    """An experiment's (norm, lr) groups, and notes already holding its excluded runs."""
    notes = _Notes()
    notes.extend(R.notes(name))
    return R.groups(name), notes


def claim_1a(R: Results) -> ClaimResult:
    cid, text, fig = "1a", "BN reaches higher accuracy than standard at the same lr", "Fig. 1"
    groups, notes = _experiment(R, "fig1")
    lrs = _pairs(groups, STANDARD, BN)
    if not lrs:
        return _not_run(cid, text, fig, "fig1 has no lr with both standard and BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        notes.diverged(sd + bn)
        bt, nb = _mean(bn, lambda r: r.final_eval("test_acc"))
        st, ns = _mean(sd, lambda r: r.final_eval("test_acc"))
        ba, _ = _mean(bn, lambda r: r.final_train("train_acc"))
        sa, _ = _mean(sd, lambda r: r.final_train("train_acc"))
        if any(math.isnan(v) for v in (bt, st, ba, sa)):
            outcomes.append(None)
            parts.append(f"lr {_g(lr)}: accuracy missing (test BN {_f(bt)} / std {_f(st)}, "
                         f"train BN {_f(ba)} / std {_f(sa)})")
            continue
        ok = bt > st and ba > sa
        outcomes.append(ok)
        parts.append(f"lr {_g(lr)}: final test acc BN {_f(bt)} vs std {_f(st)}, final train acc BN {_f(ba)} "
                     f"vs std {_f(sa)} (n={nb}/{ns}) -> {'BN higher' if ok else 'BN not higher on both'}")
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


def _steps_to(r: Run, target: float) -> float:
    if math.isnan(target):
        return math.nan
    s = r.series("train_acc").dropna()
    hit = s[s >= target]
    return float(hit.index[0]) if len(hit) else math.inf


def _auc(r: Run) -> float:
    """Time-weighted mean train accuracy over the planned steps; steps never trained count at chance."""
    s = r.series("train_acc")
    if s.empty:
        return math.nan
    steps = s.index.to_numpy(dtype=float)
    widths = np.diff(np.concatenate([[0.0], steps]))
    vals = np.nan_to_num(s.to_numpy(dtype=float), nan=r.chance)
    total = max(float(r.steps), steps.max())
    return float((np.sum(widths * vals) + r.chance * (total - steps.max())) / total)


def claim_1b(R: Results) -> ClaimResult:
    cid, text, fig = "1b", "BN trains faster than standard at the same lr", "Fig. 1"
    groups, notes = _experiment(R, "fig1")
    lrs = _pairs(groups, STANDARD, BN)
    if not lrs:
        return _not_run(cid, text, fig, "fig1 has no lr with both standard and BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        for r in sd + bn:
            if r.diverged:
                notes.add(f"{r.label}: diverged at step {r.step} - the steps after count at chance accuracy")
        final_bn, _ = _mean(bn, lambda r: r.final_train("train_acc"))
        target = FASTER_TARGET_FRAC * final_bn
        tb, nb = _mean(bn, lambda r: _steps_to(r, target))
        ts, ns = _mean(sd, lambda r: _steps_to(r, target))
        ab, _ = _mean(bn, _auc)
        as_, _ = _mean(sd, _auc)
        if math.isnan(tb) or math.isnan(ts):
            outcomes.append(None)
            parts.append(f"lr {_g(lr)}: no train accuracy logged")
            continue
        ok = tb < ts or (tb == ts and ab > as_)
        outcomes.append(ok)
        parts.append(f"lr {_g(lr)}: {FASTER_TARGET_FRAC:.0%} of BN's final train acc ({_f(target)}) reached at "
                     f"step {_step(tb)} (BN) vs {_step(ts)} (std); mean train acc over the run "
                     f"BN {_f(ab)} vs std {_f(as_)} (n={nb}/{ns}) -> {'BN faster' if ok else 'BN not faster'}")
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


def claim_2(R: Results) -> ClaimResult:
    cid, text, fig = "2", "BN trains at lr 0.5 where standard training degrades", "Fig. 1"
    groups, notes = _experiment(R, "fig1")
    lrs = _pairs(groups, STANDARD, BN)
    if len(lrs) < 2:
        return _not_run(cid, text, fig, f"fig1 needs standard and BN at two lrs (has: "
                                        f"{', '.join(_g(x) for x in lrs) or 'none'})", notes)
    lo, hi = lrs[0], lrs[-1]
    sd_lo, sd_hi, bn_hi = groups[(STANDARD, lo)], groups[(STANDARD, hi)], groups[(BN, hi)]
    notes.diverged(sd_lo + sd_hi + bn_hi)
    s_lo, _ = _mean(sd_lo, lambda r: r.final_eval("test_acc"))
    s_hi, ns = _mean(sd_hi, lambda r: r.final_eval("test_acc"))
    b_hi, nb = _mean(bn_hi, lambda r: r.final_eval("test_acc"))
    b_tr, _ = _mean(bn_hi, lambda r: r.final_train("train_acc"))
    chance = bn_hi[0].chance
    if any(math.isnan(v) for v in (s_lo, s_hi, b_hi, b_tr)):
        return _result(cid, text, fig, INCONCLUSIVE, [f"accuracy missing (std lr {_g(lo)} {_f(s_lo)}, "
                                                      f"std lr {_g(hi)} {_f(s_hi)}, BN lr {_g(hi)} {_f(b_hi)})"], notes)
    bn_trains = b_tr > chance + CHANCE_MARGIN and not any(r.diverged for r in bn_hi)
    degrades = s_hi < s_lo - DEGRADE_MARGIN and s_hi < b_hi - DEGRADE_MARGIN
    n_div = sum(r.diverged for r in sd_hi)
    parts = [f"BN at lr {_g(hi)}: final train acc {_f(b_tr)}, test acc {_f(b_hi)} (n={nb}) -> "
             f"{'trains' if bn_trains else 'does not train'} (chance+margin {_f(chance + CHANCE_MARGIN)})",
             f"std test acc at lr {_g(hi)} {_f(s_hi)} vs std at lr {_g(lo)} {_f(s_lo)} and BN at lr {_g(hi)} "
             f"{_f(b_hi)} (n={ns}{f', {n_div} diverged' if n_div else ''}; margin {DEGRADE_MARGIN}) -> "
             f"{'standard degrades' if degrades else 'standard does not degrade'}"]
    return _result(cid, text, fig, HOLDS if bn_trains and degrades else FAILS, parts, notes)


def claim_3a(R: Results) -> ClaimResult:
    cid, text, fig = "3a", "Noisy BN nearly matches BN (and is far above the noisy standard network)", "Fig. 2"
    groups, notes = _experiment(R, "fig2")
    lrs = _pairs(groups, "noisy_batch", BN)
    if not lrs:
        return _not_run(cid, text, fig, "fig2 has no lr with both BN and noisy-BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        bn, nz = groups[(BN, lr)], groups[("noisy_batch", lr)]
        notes.diverged(bn + nz)
        b, nb = _mean(bn, lambda r: r.final_train("train_acc"))
        z, nn = _mean(nz, lambda r: r.final_train("train_acc"))
        if math.isnan(b) or math.isnan(z):
            outcomes.append(None)
            parts.append(f"lr {_g(lr)}: train accuracy missing")
            continue
        ok = z >= b - NOISY_TOL
        part = f"lr {_g(lr)}: final train acc noisy BN {_f(z)} vs BN {_f(b)} (n={nn}/{nb}, tolerance {NOISY_TOL})"
        if ("noise", lr) in groups:
            sn = groups[("noise", lr)]
            notes.diverged(sn)
            s, n_s = _mean(sn, lambda r: r.final_train("train_acc"))
            far = z >= s + NOISE_GAP
            ok = ok and far
            part += f", std+noise {_f(s)} (n={n_s}, needs >= {NOISE_GAP} below noisy BN)"
        else:
            part += ", no std+noise run to compare"
        outcomes.append(ok)
        parts.append(part + f" -> {'matches' if ok else 'does not match'}")
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


def claim_3b(R: Results) -> ClaimResult:
    cid, text, fig = "3b", "The same noise in the standard network stops it from training", "Fig. 2"
    groups, notes = _experiment(R, "fig2")
    lrs = sorted({lr for (n, lr) in groups if n == "noise"})
    if not lrs:
        return _not_run(cid, text, fig, "fig2 has no standard+noise ('noise') run", notes)
    parts, outcomes = [], []
    for lr in lrs:
        sn = groups[("noise", lr)]
        notes.diverged(sn)
        s, n_s = _mean(sn, lambda r: r.final_train("train_acc"))
        thr = sn[0].chance + CHANCE_MARGIN
        if math.isnan(s):
            outcomes.append(None)
            parts.append(f"lr {_g(lr)}: train accuracy missing")
            continue
        at_chance = s <= thr
        part = f"lr {_g(lr)}: final train acc std+noise {_f(s)} (n={n_s}; chance+margin {_f(thr)})"
        far_below = False
        if (STANDARD, lr) in groups:
            notes.diverged(groups[(STANDARD, lr)])
            st, ns = _mean(groups[(STANDARD, lr)], lambda r: r.final_train("train_acc"))
            far_below = s <= st - NOISE_GAP
            part += f", std {_f(st)} (n={ns}; far below = >= {NOISE_GAP} lower)"
        ok = at_chance or far_below
        outcomes.append(ok)
        parts.append(part + f" -> {'stopped' if ok else 'still trains'}")
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


def _ics_comparisons(R: Results, name: str, notes: _Notes) -> list[tuple[str, float, Comparison, Comparison]]:
    """Per lr and layer: (label, layer, cos comparison, l2 comparison) of standard vs BN."""
    groups = R.groups(name)
    out = []
    for lr in _pairs(groups, STANDARD, BN):
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        layers = sorted(set().union(*[set(r.layers("ics_cos")) for r in sd + bn]))
        for layer in layers:
            label = f"{name} lr {_g(lr)} layer {_g(layer)}"
            cos = _compare(label, sd, bn, lambda r, L=layer: r.series("ics_cos", L), notes, "ICS")
            l2 = _compare(label, sd, bn, lambda r, L=layer: r.series("ics_l2", L), notes, "ICS")
            out.append((label, layer, cos, l2))
    return out


def claim_4a(R: Results) -> ClaimResult:
    cid, text, fig = "4a", "Gradient ICS is not lower with BN", "Fig. 3"
    notes, parts, outcomes, ran = _Notes(), [], [], []
    for name in ("fig3_cnn", "fig3_dln"):
        if not R.runs(name):
            parts.append(f"{name} not run")
            continue
        ran.append(name)
        notes.extend(R.notes(name))
        comps = _ics_comparisons(R, name, notes)
        if not comps:
            parts.append(f"{name}: no lr/layer with ICS for both standard and BN")
        for label, _, cos, l2 in comps:
            if not cos.conclusive:
                outcomes.append(None)
                parts.append(f"{label}: left out ({cos.n_common} common live steps)")
                continue
            ok = cos.med_bn <= cos.med_std + ICS_COS_TOL
            outcomes.append(ok)
            parts.append(f"{label}: median cos(G,G') BN {_f(cos.med_bn)} vs std {_f(cos.med_std)}, "
                         f"median ||G-G'|| BN {_f(l2.med_bn)} vs std {_f(l2.med_std)} ({cos.n_common} common live "
                         f"steps) -> {'not lower with BN' if ok else 'lower with BN'}")
    if not ran:
        return _not_run(cid, text, fig, "; ".join(parts), notes)
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


def claim_4b(R: Results) -> ClaimResult:
    cid, text, fig = "4b", "DLN: standard has almost no ICS, BN's G and G' are nearly uncorrelated", "Fig. 3"
    name, notes = "fig3_dln", _Notes()
    if not R.runs(name):
        return _not_run(cid, text, fig, f"{name} not run")
    notes.extend(R.notes(name))
    groups = R.groups(name)
    parts, outcomes = [], []
    for lr in _pairs(groups, STANDARD, BN):
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        layers = sorted(set().union(*[set(r.layers("ics_cos")) for r in sd + bn]))
        for layer in layers:
            fn = lambda r, L=layer: r.series("ics_cos", L)
            cs = _group_curve(sd, fn, notes, "ICS").dropna()
            cb = _group_curve(bn, fn, notes, "ICS").dropna()
            label = f"lr {_g(lr)} layer {_g(layer)}"
            if len(cs) < MIN_COMMON_STEPS or len(cb) < MIN_COMMON_STEPS:
                outcomes.append(None)
                parts.append(f"{label}: too few live steps (std {len(cs)}, BN {len(cb)})")
                notes.add(f"{name} {label}: too few live measured steps (need {MIN_COMMON_STEPS}) - left out")
                continue
            ms, mb = float(cs.median()), float(cb.median())
            ok = ms >= DLN_STD_COS_MIN and mb <= DLN_BN_COS_MAX
            outcomes.append(ok)
            parts.append(f"{label}: median cos(G,G') std {_f(ms)} (needs >= {DLN_STD_COS_MIN}), BN {_f(mb)} "
                         f"(needs <= {DLN_BN_COS_MAX}) -> {'as the paper' if ok else 'not as the paper'}")
    if not parts:
        return _result(cid, text, fig, INCONCLUSIVE, [f"{name}: no lr/layer with ICS for both standard and BN"],
                       notes)
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


SMOOTH_EXPERIMENTS = ("fig4_cnn", "fig4_dln")
"""Claims 5a-c: where the paper's landscape measures are compared (VGG/CNN and DLN; standard vs BN)."""


def _smoothness(R: Results, cid: str, text: str, measures: list[tuple[str, Callable[[Run], pd.Series]]],
                show_early_max: bool = False, experiments: tuple[str, ...] = SMOOTH_EXPERIMENTS,
                fig: str = "Fig. 4") -> ClaimResult:
    notes, parts, outcomes, ran, earlies = _Notes(), [], [], [], []
    for name in experiments:
        if not R.runs(name):
            parts.append(f"{name} not run")
            continue
        ran.append(name)
        notes.extend(R.notes(name))
        groups = R.groups(name)
        found = False
        for lr in _pairs(groups, STANDARD, BN):
            sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
            for mname, fn in measures:
                if not any(len(fn(r)) for r in sd + bn):
                    continue
                found = True
                label = f"{name} lr {_g(lr)} {mname}"
                c = _compare(label, sd, bn, fn, notes, "landscape")
                if not c.conclusive:
                    outcomes.append(None)
                    parts.append(f"{label}: left out ({c.n_common} steps where both are live)")
                    continue
                ok = c.ratio > SMOOTH_MIN_RATIO
                outcomes.append(ok)
                if not math.isnan(c.early_ratio):
                    earlies.append((c.early_ratio, label))
                early = (f", first {EARLY_FRAC:.0%} of steps std {_f(c.early_std)} vs BN {_f(c.early_bn)} "
                         f"({_x(c.early_ratio)}, {c.n_early} steps)") if c.n_early else ", no common live early steps"
                parts.append(f"{label}: median std {_f(c.med_std)} vs BN {_f(c.med_bn)} = {_x(c.ratio)}{early}; "
                             f"{c.n_common} common live steps -> {'BN smoother' if ok else 'BN not smoother'}")
        if not found:
            parts.append(f"{name}: no {'/'.join(m for m, _ in measures)} for both standard and BN")
    if not ran:
        return _not_run(cid, text, fig, "; ".join(parts), notes)
    if show_early_max and earlies:
        r, label = max(earlies, key=lambda t: t[0])
        parts.append(f"largest early-training ratio {_x(r)} ({label}; paper: up to ~{PAPER_EARLY_RATIO:g}x)")
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


def claim_5a(R: Results) -> ClaimResult:
    return _smoothness(R, "5a", "With BN the loss landscape band is narrower",
                       [("loss band (max-min)", _band)])


def claim_5b(R: Results) -> ClaimResult:
    return _smoothness(R, "5b", "With BN gradient predictiveness is better (up to ~2 orders of magnitude early)",
                       [("max ||g-g'||", lambda r: r.series("grad_pred_max").dropna())], show_early_max=True)


def claim_5c(R: Results) -> ClaimResult:
    return _smoothness(R, "5c", "With BN the effective beta-smoothness is smaller",
                       [("beta", lambda r: r.series("beta").dropna())])


def claim_5d(R: Results) -> ClaimResult:
    """Seed 001's version on its shallow CNN: loss change between steps and beta w.r.t. activations."""
    def beta_act(r: Run) -> pd.Series:
        layers = r.layers("beta_act")
        return r.series("beta_act", layers[0]).dropna() if layers else pd.Series(dtype=float)

    return _smoothness(R, "5d", "Seed 001 (small CNN): with BN the loss changes less between steps and the "
                       "effective beta w.r.t. activations is smaller",
                       [("|loss change|", lambda r: r.series("loss_change").dropna()),
                        ("beta (activations)", beta_act)], experiments=("browser",), fig="seed 001")


def claim_6a(R: Results) -> ClaimResult:
    cid, text, fig = "6a", "lp normalisations match or beat BN in training", "Fig. 5"
    groups, notes = _experiment(R, "fig5_cnn")
    lrs = sorted({lr for (n, lr) in groups if n == BN and any((p, lr) in groups for p in ("l1", "l2", "linf"))})
    if not lrs:
        return _not_run(cid, text, fig, "fig5_cnn has no lr with BN and an lp normalisation", notes)
    parts, outcomes = [], []
    for lr in lrs:
        bn = groups[(BN, lr)]
        notes.diverged(bn)
        b, nb = _mean(bn, lambda r: r.final_train("train_acc"))
        for p in ("l1", "l2", "linf"):
            if (p, lr) not in groups:
                parts.append(f"lr {_g(lr)} {p}: not run")
                continue
            notes.diverged(groups[(p, lr)])
            v, n = _mean(groups[(p, lr)], lambda r: r.final_train("train_acc"))
            if math.isnan(v) or math.isnan(b):
                outcomes.append(None)
                parts.append(f"lr {_g(lr)} {p}: train accuracy missing")
                continue
            ok = v >= b - LP_TOL
            outcomes.append(ok)
            parts.append(f"lr {_g(lr)} {p}: final train acc {_f(v)} vs BN {_f(b)} (n={n}/{nb}, tolerance {LP_TOL}) "
                         f"-> {'matches or beats' if ok else 'below'}")
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


def claim_6b(R: Results) -> ClaimResult:
    cid, text, fig = "6b", "On the DLN, l1 normalisation beats BN (training loss)", "Fig. 5"
    groups, notes = _experiment(R, "fig5_dln")
    lrs = _pairs(groups, "l1", BN)
    if not lrs:
        return _not_run(cid, text, fig, "fig5_dln has no lr with both l1 and BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        l1, bn = groups[("l1", lr)], groups[(BN, lr)]
        notes.diverged(l1 + bn, "an infinite loss")
        a, na = _mean(l1, lambda r: r.final_train("train_loss"))
        b, nb = _mean(bn, lambda r: r.final_train("train_loss"))
        if math.isnan(a) or math.isnan(b):
            outcomes.append(None)
            parts.append(f"lr {_g(lr)}: train loss missing")
            continue
        ok = a < (1 - L1_BEATS_MARGIN) * b
        outcomes.append(ok)
        parts.append(f"lr {_g(lr)}: final train loss l1 {a:.6g} vs BN {b:.6g} (ratio {a / b:.4f}; n={na}/{nb}; "
                     f"beats = >= {L1_BEATS_MARGIN:.0%} lower) -> {'l1 lower' if ok else 'l1 not lower'}")
    return _result(cid, text, fig, _combine(outcomes), parts, notes)


CLAIMS: list[Callable[[Results], ClaimResult]] = [
    claim_1a, claim_1b, claim_2, claim_3a, claim_3b, claim_4a, claim_4b, claim_5a, claim_5b, claim_5c, claim_5d,
    claim_6a, claim_6b,
]
"""Every check, in report order."""


def check_claims(results_root: Path, scale: str) -> list[ClaimResult]:
    """Every claim's verdict over the finished runs of ``scale`` under ``results_root``."""
    R = Results(Path(results_root), scale)
    return [check(R) for check in CLAIMS]


# --------------------------------------------------------------------------------------------- report
def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "-"


def render_table(results: list[ClaimResult]) -> str:
    """The markdown table Claim | Figure | Verdict | Evidence."""
    lines = ["| Claim | Figure | Verdict | Evidence |", "|---|---|---|---|"]
    for r in results:
        verdict = f"**{r.verdict}**" if r.verdict in (HOLDS, FAILS) else r.verdict
        lines.append(f"| {_cell(r.id + '. ' + r.claim)} | {_cell(r.figure)} | {verdict} | {_cell(r.evidence)} |")
    return "\n".join(lines)


def render_report(results: list[ClaimResult], figures: list[Path], scale: str, date: Optional[str] = None,
                  root: Optional[Path] = None) -> str:
    """The report as markdown: title, date, (given the results ``root``) a warning if a figure mixes runs
    of several commits, torch versions or devices, the claims table, the excluded runs, the provenance
    table, then every figure (linked as ``figures/NAME.png``, relative to the report in the results folder)."""
    import datetime

    from bnstudy.report_provenance import sections

    mixed, provenance = sections(root, scale, results) if root is not None else ("", "")

    date = date or datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    out = [f"# bnstudy: claims of Santurkar et al. 2018 — scale `{scale}`", "",
           f"Generated {date} by `python -m experiments.report`. Verdicts: "
           + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", "",
           "Rules and thresholds: `bnstudy/claims.py` (module constants). Curve claims (4, 5) compare only the "
           "steps where both runs are live (above chance + margin, finite and decreasing loss); a diverged run "
           "counts at chance accuracy in the accuracy claims.", "",
           *([mixed, ""] if mixed else []),
           "## Claims", "", render_table(results), "", "## Excluded runs", ""]
    claims_of: dict[str, list[str]] = {}  # each note once, with the claims it applies to
    for r in results:
        for n in r.excluded.splitlines():
            if n.strip():
                claims_of.setdefault(n.strip(), []).append(r.id)
    if claims_of:
        out += [f"- {_cell(n)} (claim{'s' if len(ids) > 1 else ''} {', '.join(ids)})" for n, ids in claims_of.items()]
    else:
        out.append("None.")
    out += ["", provenance] if provenance else []
    out += ["", "## Figures", ""]
    if figures:
        for f in figures:
            f = Path(f)
            out += [f"### {f.stem}", "", f"![{f.stem}](figures/{f.name})", ""]
    else:
        out.append(f"No figures found (results/figures/*_{scale}.png).")
    return "\n".join(out).rstrip() + "\n"
