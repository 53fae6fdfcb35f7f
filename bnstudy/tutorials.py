"""What two BatchNorm tutorials say, judged on the runs of ``make tutorials``.

The tutorials are "The Unstable World of Deep Learning" (``UNSTABLE``) and a BatchNorm explainer
(``EXPLAINER``). Each rule below quotes the sentence it tests, reduces the runs to one number per seed,
and judges the seeds' band (min-max) against a threshold taken from the sentence:

* **holds**: the whole band is on the claimed side of the threshold and clear of it by the tolerance;
* **does not hold**: the whole band is on the other side, beyond the tolerance;
* **borderline**: anything else (the band straddles the threshold or lies within the tolerance of it, or
  the measurement is only a bound that cannot decide).

Rules are pure functions of a runs table (one row per finished run, :func:`load_runs`) or of the two
CSVs ``experiments.tutorials`` writes, so the tests pin each one on small fake tables. Accuracy is the
last eval's (2,000 test samples); a diverged run counts at chance (its weights are gone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from bnstudy.records import read_metrics
from bnstudy.runs import find_runs

UNSTABLE = "The Unstable World of Deep Learning"
EXPLAINER = "the BatchNorm explainer"
HOLDS, FAILS, BORDERLINE, NOT_RUN = "holds", "does not hold", "borderline", "not run"
CHANCE = 0.1  # 10 classes
STANDARD, BN = "none", "batch"

TARGET_FRAC = 0.9
"""Speed-up: steps to reach this fraction of the pair's best final train accuracy."""
FINAL_WINDOWS = 3
"""Final train accuracy = mean of the last this many logged windows (10 steps each)."""
SPEEDUP_TOL = 0.1
"""Speed-up ratios within 10% of the claimed factor are borderline."""
TRAINS_FRAC = 0.5
"""An lr 'trains' when its final test accuracy is at least half-way from chance to the net's best."""
NEAR_BEST = 0.01
"""The lr range 'near the best': final test accuracy within 1 point of the net's best."""
INIT_GAIN, INIT_TOL = 0.05, 0.02
"""Init sensitivity: BN's accuracy range over the init scales must be >= 5 points narrower (tol 2)."""
GAP_GAIN, GAP_TOL = 0.02, 0.01
"""Implicit regularisation: BN's train-test gap must be >= 2 points smaller than standard's (tol 1)."""
DROPOUT_GAIN, DROPOUT_TOL = 0.01, 0.005
"""Need for dropout = test-accuracy gain from adding dropout (0 where dropout loses: no need); BN must cut
it by >= 1 point (tol 0.5)."""
GRAD_SPREAD, GRAD_SCALE, GRAD_TOL = 10.0, 0.1, 2.0
"""Gradient stability at the deepest depth: per-layer norms within 10x of each other, and the median norm
>= 0.1x the shallowest depth's; factors within 2x of either bound are borderline."""
SMALL_BATCH_DROP, SMALL_BATCH_TOL = 0.02, 0.01
"""BN degrades at small batches: its accuracy drop from the largest to the smallest batch, as it is and
less the standard net's drop, must both be >= 2 points (tol 1)."""
ALT_GAIN, ALT_TOL = 0.01, 0.005
"""GroupNorm 'less sensitive to batch size': its accuracy range over batch sizes >= 1 point (tol 0.5)
narrower than BN's; LayerNorm 'better for small batches': >= 1 point above BN at the smallest batch."""
DISCREPANCY, DISCREPANCY_TOL = 0.01, 0.005
"""Train/inference discrepancy: |eval-mode - train-mode test accuracy| >= 1 point somewhere (tol 0.5)."""
PLACEMENT_TOL = 0.01
"""Placement: 'before the activation' holds when it is never more than 1 point below 'after'."""
OVERHEAD, OVERHEAD_TOL = 0.10, 0.05
"""Memory overhead: BN's extra activation memory or step time >= 10% (tol 5 points)."""


@dataclass
class TutorialResult:
    """One tutorial sentence, what was measured, the rule, the verdict and its numbers."""

    id: str
    topic: str
    quote: str
    source: str
    rule: str
    verdict: str
    evidence: str
    seeds: int = 0


# ------------------------------------------------------------------------------------------- verdicts
def judge(band: tuple[float, float], threshold: float, tol: float, ratio: bool = False) -> str:
    """Holds when the band's low end clears ``threshold`` by ``tol``; does not hold when its high end is
    below ``threshold`` by ``tol``; borderline otherwise. ``ratio``: ``tol`` is relative (factor 1 + tol)."""
    lo, hi = band
    if any(isinstance(v, float) and math.isnan(v) for v in band):
        return NOT_RUN
    up, down = (threshold * (1 + tol), threshold / (1 + tol)) if ratio else (threshold + tol, threshold - tol)
    if lo >= up:
        return HOLDS
    if hi < down:
        return FAILS
    return BORDERLINE


def judge_at_most(band: tuple[float, float], threshold: float, tol: float) -> str:
    """:func:`judge` for a claim "at most ``threshold``" on a positive quantity, ``tol`` relative."""
    return judge((1 / band[1], 1 / band[0]), 1 / threshold, tol, ratio=True)


def band(values) -> tuple[float, float]:
    v = [x for x in values if not (isinstance(x, float) and math.isnan(x))]
    return (min(v), max(v)) if v else (math.nan, math.nan)


def _f(x: float, d: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else ("inf" if math.isinf(x) else f"{x:.{d}f}")


def _x(x: float) -> str:
    return "n/a" if math.isnan(x) else ("inf" if math.isinf(x) else f"{x:.3g}x")


def _pt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:+.1f} pt"


def _band_text(b: tuple[float, float], fmt: Callable[[float], str]) -> str:
    return fmt(b[0]) if b[0] == b[1] else f"[{fmt(b[0])}, {fmt(b[1])}]"


# ------------------------------------------------------------------------------------------ the runs
def load_runs(root: str | Path) -> pd.DataFrame:
    """One row per finished run of a ``tut_*`` experiment under ``root`` (the latest of duplicates):
    experiment, norm, lr, seed, status, batch_size, init_scale, dropout, momentum, position, test_acc,
    train_eval_acc, batchstat_acc, and ``train_acc`` (a Series by step: the logged windows)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = find_runs(root)
    if df.empty:
        return pd.DataFrame()
    df = df[df["name"].astype(str).str.startswith("tut_")]
    rows = []
    for r in df.to_dict("records"):
        m = read_metrics(Path(r["path"]) / "metrics.csv")
        m = m[m["layer"].isna()]
        last = lambda name: m.loc[m["metric"] == name].sort_values("step")["value"].astype(float)
        dead = r["status"] == "diverged"
        pick = lambda name: CHANCE if dead else (float(last(name).iloc[-1]) if len(last(name)) else math.nan)
        curve = m.loc[m["metric"] == "train_acc", ["step", "value"]].astype(float).set_index("step")["value"]
        rows.append(dict(
            experiment=r["name"], norm=r["norm"], lr=float(r["lr"]), seed=r["seed"], status=r["status"],
            steps=r["steps"], path=r["path"], mtime=(Path(r["path"]) / "summary.json").stat().st_mtime,
            batch_size=r.get("train.batch_size"), init_scale=r.get("model.init_scale", 1.0),
            dropout=r.get("model.dropout", 0.0), momentum=r.get("norm.momentum"), position=r.get("norm.position"),
            test_acc=pick("test_acc"), train_eval_acc=pick("train_eval_acc"), batchstat_acc=pick("test_batchstat_acc"),
            train_acc=curve.sort_index()))
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    key = ["experiment", "norm", "lr", "seed", "batch_size", "init_scale", "dropout", "momentum", "position"]
    out = out.sort_values("mtime").drop_duplicates(key, keep="last")
    return out.sort_values(key).reset_index(drop=True)


def _of(runs: pd.DataFrame, experiment: str) -> pd.DataFrame:
    return runs[runs["experiment"] == experiment] if len(runs) else runs


def _seeds(df: pd.DataFrame) -> list:
    return sorted(df["seed"].unique().tolist()) if len(df) else []


def _not_run(rid, topic, quote, source, rule, what) -> TutorialResult:
    return TutorialResult(rid, topic, quote, source, rule, NOT_RUN, f"{what}: run `make tutorials`")


# ------------------------------------------------------------------------------------------ speed-up
def final_train_acc(curve: pd.Series) -> float:
    return float(curve.iloc[-FINAL_WINDOWS:].mean()) if len(curve) else math.nan


def steps_to(curve: pd.Series, target: float) -> float:
    """The first logged step whose window's train accuracy reaches ``target`` (inf: never)."""
    hit = curve[curve >= target]
    return float(hit.index[0]) if len(hit) else math.inf


def speedup(std: pd.Series, bn: pd.Series, budget: float) -> tuple[float, bool]:
    """Steps to the target (TARGET_FRAC of the pair's best final train accuracy), standard / BN.
    Returns (ratio, exact); when standard never gets there the ratio is a lower bound (budget / BN's)."""
    target = TARGET_FRAC * max(final_train_acc(std), final_train_acc(bn))
    s, b = steps_to(std, target), steps_to(bn, target)
    if math.isinf(b):
        return (math.nan, True) if math.isinf(s) else (0.0, True)
    return (budget / b, False) if math.isinf(s) else (s / b, True)


def _best_lr(df: pd.DataFrame, norm: str) -> Optional[float]:
    g = df[df["norm"] == norm].groupby("lr")["test_acc"].mean()
    return float(g.idxmax()) if len(g) else None


def rule_speedup(runs: pd.DataFrame, factor: float, quote: str, source: str, rid: str) -> TutorialResult:
    topic = "faster convergence"
    rule = (f"steps to {TARGET_FRAC:.0%} of the pair's best final train accuracy, standard / BN, each at its "
            f"own best lr (tut_lr); holds if >= {factor:g}x (borderline within {SPEEDUP_TOL:.0%})")
    df = _of(runs, "tut_lr")
    lr_s, lr_b = (_best_lr(df, STANDARD), _best_lr(df, BN)) if len(df) else (None, None)
    if lr_s is None or lr_b is None:
        return _not_run(rid, topic, quote, source, rule, "tut_lr has no standard and BN runs")
    seeds = sorted(set(_seeds(df[(df["norm"] == STANDARD) & (df["lr"] == lr_s)]))
                   & set(_seeds(df[(df["norm"] == BN) & (df["lr"] == lr_b)])))
    at = lambda norm, lr, seed: df[(df["norm"] == norm) & (df["lr"] == lr) & (df["seed"] == seed)].iloc[0]
    own, same, bounds = [], [], []
    for seed in seeds:
        s, b = at(STANDARD, lr_s, seed), at(BN, lr_b, seed)
        r, exact = speedup(s["train_acc"], b["train_acc"], float(s["steps"]))
        own.append(r)
        bounds.append(not exact)
        if ((df["norm"] == BN) & (df["lr"] == lr_s) & (df["seed"] == seed)).any():
            same.append(speedup(s["train_acc"], at(BN, lr_s, seed)["train_acc"], float(s["steps"]))[0])
    b_own, b_same = band(own), band(same)
    verdict = judge(b_own, factor, SPEEDUP_TOL, ratio=True)
    if any(bounds) and verdict == FAILS:
        verdict = BORDERLINE  # a lower bound below the factor decides nothing
    evidence = (f"at own best lrs (standard {lr_s:g}, BN {lr_b:g}): {'>= ' if any(bounds) else ''}"
                f"{_band_text(b_own, _x)}; at the same lr {lr_s:g}: {_band_text(b_same, _x)}")
    return TutorialResult(rid, topic, quote, source, rule, verdict, evidence, len(seeds))


# ---------------------------------------------------------------------------------- learning rates
def lr_profile(acc_by_lr: pd.Series) -> tuple[float, float, float]:
    """(largest lr that trains, lowest and highest lr within NEAR_BEST of the best) of one net."""
    best = acc_by_lr.max()
    trains = acc_by_lr[acc_by_lr >= CHANCE + TRAINS_FRAC * (best - CHANCE)]
    near = acc_by_lr[acc_by_lr >= best - NEAR_BEST]
    return float(trains.index.max()), float(near.index.min()), float(near.index.max())


def rule_higher_lr(runs: pd.DataFrame) -> TutorialResult:
    rid, topic, quote, source = "2", "higher learning rates", "Higher learning rates: Can use learning rates 10-100x larger", UNSTABLE
    rule = (f"largest lr of tut_lr's grid that trains (final test acc >= half-way from chance to the net's best), "
            f"BN / standard; holds if >= 10x, borderline if BN trains at the grid's top or its next lr (where it "
            f"failed) is over 10x standard's")
    df = _of(runs, "tut_lr")
    if not len(df) or not {STANDARD, BN} <= set(df["norm"]):
        return _not_run(rid, topic, quote, source, rule, "tut_lr has no standard and BN runs")
    grid = sorted(df["lr"].unique())
    ratios, reach, near, bound = [], [], [], False
    seeds = sorted(set(_seeds(df[df["norm"] == STANDARD])) & set(_seeds(df[df["norm"] == BN])))
    for seed in seeds:
        prof = {n: lr_profile(df[(df["norm"] == n) & (df["seed"] == seed)].set_index("lr")["test_acc"].sort_index())
                for n in (STANDARD, BN)}
        ratios.append(prof[BN][0] / prof[STANDARD][0])
        above = [lr for lr in grid if lr > prof[BN][0]]
        bound |= not above  # BN trains at the grid's top: its ratio is only a lower bound
        reach.append((above[0] if above else math.inf) / prof[STANDARD][0])  # BN's next grid lr, had it trained
        near.append((prof[STANDARD][1:], prof[BN][1:]))
    b = band(ratios)
    if b[0] >= 10 * (1 - 1e-9):
        verdict = HOLDS
    elif max(reach) > 10 * (1 + 1e-9) or bound:  # BN fails at its next lr: the true ratio is below next / std
        verdict = BORDERLINE
    else:
        verdict = FAILS
    (s_lo, s_hi), (b_lo, b_hi) = near[0]
    evidence = (f"largest lr that trains, BN / standard: {'>= ' if bound else ''}{_band_text(b, _x)}; within 1 point of the best (seed "
                f"{seeds[0]}): standard {s_lo:g}-{s_hi:g}, BN {b_lo:g}-{b_hi:g} ({b_hi / s_hi:.3g}x at the top)")
    return TutorialResult(rid, topic, quote, source, rule, verdict, evidence, len(seeds))


# --------------------------------------------------------------------------------------------- init
def rule_init(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "3", "initialisation"
    quote, source = "Reduced sensitivity to initialization: Less dependent on careful weight initialization", UNSTABLE
    rule = (f"final test accuracy over weights x 0.1 ... 10 of Glorot (tut_init): standard's range (best - worst) "
            f"minus BN's; holds if >= {100 * INIT_GAIN:.0f} points (tol {100 * INIT_TOL:.0f})")
    df = _of(runs, "tut_init")
    if not len(df) or not {STANDARD, BN} <= set(df["norm"]):
        return _not_run(rid, topic, quote, source, rule, "tut_init has no standard and BN runs")
    seeds = sorted(set(_seeds(df[df["norm"] == STANDARD])) & set(_seeds(df[df["norm"] == BN])))
    rng = lambda n, s: np.ptp(df[(df["norm"] == n) & (df["seed"] == s)]["test_acc"].to_numpy())
    diffs = [rng(STANDARD, s) - rng(BN, s) for s in seeds]
    b = band(diffs)
    acc = df.groupby(["norm", "init_scale"])["test_acc"].mean()
    curve = lambda n: ", ".join(f"{k:g}: {v:.3f}" for k, v in acc[n].items())
    evidence = (f"range narrower with BN by {_band_text(b, _pt)}; test acc by scale, standard {curve(STANDARD)}; "
                f"BN {curve(BN)}")
    return TutorialResult(rid, topic, quote + f' ("Reduced initialization sensitivity", {EXPLAINER})', source,
                          rule, judge(b, INIT_GAIN, INIT_TOL), evidence, len(seeds))


# --------------------------------------------------------------------------------------- regularisation
def _reg_cell(df: pd.DataFrame, norm: str, dropout: float, seed) -> pd.Series:
    sel = df[(df["norm"] == norm) & (np.isclose(df["dropout"].astype(float), dropout)) & (df["seed"] == seed)]
    return sel.iloc[0] if len(sel) else None


def rule_implicit_regularisation(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "4a", "regularisation"
    quote, source = "Implicit regularization: Slight noise from batch statistics acts as regularization", UNSTABLE
    rule = (f"train - test accuracy gap after 30 epochs on 1,000 samples (tut_reg, no dropout): standard's gap minus "
            f"BN's; holds if >= {100 * GAP_GAIN:.0f} points (tol {100 * GAP_TOL:.0f})")
    df = _of(runs, "tut_reg")
    seeds = [s for s in _seeds(df) if _reg_cell(df, STANDARD, 0, s) is not None and _reg_cell(df, BN, 0, s) is not None]
    if not seeds:
        return _not_run(rid, topic, quote, source, rule, "tut_reg has no standard and BN runs without dropout")
    gap = lambda r: r["train_eval_acc"] - r["test_acc"]
    g_s = [gap(_reg_cell(df, STANDARD, 0, s)) for s in seeds]
    g_b = [gap(_reg_cell(df, BN, 0, s)) for s in seeds]
    b = band([a - c for a, c in zip(g_s, g_b)])
    t = lambda n: np.mean([_reg_cell(df, n, 0, s)["test_acc"] for s in seeds])
    evidence = (f"gap standard {np.mean(g_s):.3f}, BN {np.mean(g_b):.3f} (smaller with BN by {_band_text(b, _pt)}); "
                f"test acc standard {t(STANDARD):.3f}, BN {t(BN):.3f}")
    return TutorialResult(rid, topic, quote, source, rule, judge(b, GAP_GAIN, GAP_TOL), evidence, len(seeds))


def rule_dropout(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "4b", "regularisation"
    quote, source = "Regularization effect: Reduces need for dropout", EXPLAINER
    rule = (f"need for dropout = test-accuracy gain from dropout 0.3, 0 where it loses (tut_reg): without BN minus "
            f"with BN; holds if >= {100 * DROPOUT_GAIN:.0f} point (tol {100 * DROPOUT_TOL:.1f})")
    df = _of(runs, "tut_reg")
    cells = lambda s: [_reg_cell(df, n, d, s) for n in (STANDARD, BN) for d in (0.0, 0.3)]
    seeds = [s for s in _seeds(df) if all(c is not None for c in cells(s))]
    if not seeds:
        return _not_run(rid, topic, quote, source, rule, "tut_reg needs standard and BN with and without dropout")
    gains = {n: [_reg_cell(df, n, 0.3, s)["test_acc"] - _reg_cell(df, n, 0.0, s)["test_acc"] for s in seeds]
             for n in (STANDARD, BN)}
    b = band([max(a, 0.0) - max(c, 0.0) for a, c in zip(gains[STANDARD], gains[BN])])
    t = lambda n, d: np.mean([_reg_cell(df, n, d, s)["test_acc"] for s in seeds])
    evidence = (f"dropout's gain: standard {_pt(np.mean(gains[STANDARD]))}, BN {_pt(np.mean(gains[BN]))} "
                f"(difference {_band_text(b, _pt)}); test acc standard {t(STANDARD, 0):.3f}, standard + dropout "
                f"{t(STANDARD, 0.3):.3f}, BN {t(BN, 0):.3f}, BN + dropout {t(BN, 0.3):.3f}")
    return TutorialResult(rid, topic, quote, source, rule, judge(b, DROPOUT_GAIN, DROPOUT_TOL), evidence, len(seeds))


# ----------------------------------------------------------------------------------- gradients at init
def gradient_stability(grads: pd.DataFrame) -> pd.DataFrame:
    """Per (norm, depth, seed): spread = max/min of the hidden layers' gradient norms, and their median."""
    hidden = grads[grads["layer"] < grads["depth"]]  # the head (layer = depth) is not normalised
    g = hidden.groupby(["norm", "depth", "seed"])["value"]
    return pd.DataFrame({"spread": g.max() / g.min(), "median": g.median()}).reset_index()


def rule_gradients(grads: Optional[pd.DataFrame]) -> TutorialResult:
    rid, topic = "5", "gradient stability"
    quote, source = "Gradient stability: Helps prevent vanishing/exploding gradients", UNSTABLE
    rule = (f"per-layer ||dL/dW|| at init of a deep ReLU net (width 64, Glorot), deepest depth: BN's spread "
            f"(max/min over layers) <= {GRAD_SPREAD:g}x and its median >= {GRAD_SCALE:g}x the shallowest depth's; "
            f"factors within {GRAD_TOL:g}x of either bound are borderline")
    if grads is None or grads.empty or not {STANDARD, BN} <= set(grads["norm"]):
        return _not_run(rid, topic, quote, source, rule, "no gradients at init")
    st = gradient_stability(grads)
    lo_d, hi_d = st["depth"].min(), st["depth"].max()
    at = lambda n, d: st[(st["norm"] == n) & (st["depth"] == d)].set_index("seed")
    verdicts, scales = [], {}
    for n in (STANDARD, BN):
        scales[n] = (at(n, hi_d)["median"] / at(n, lo_d)["median"]).to_numpy()
    spread_b = band(at(BN, hi_d)["spread"].tolist())
    verdicts.append(judge_at_most(spread_b, GRAD_SPREAD, GRAD_TOL - 1))
    verdicts.append(judge(band(scales[BN].tolist()), GRAD_SCALE, GRAD_TOL - 1, ratio=True))
    verdict = FAILS if FAILS in verdicts else (HOLDS if all(v == HOLDS for v in verdicts) else BORDERLINE)
    sp = lambda n, d: _band_text(band(at(n, d)["spread"].tolist()), lambda v: f"{v:.3g}x")
    evidence = (f"depth {hi_d}: layer spread BN {sp(BN, hi_d)} vs standard {sp(STANDARD, hi_d)}; median norm vs depth "
                f"{lo_d}: BN {_band_text(band(scales[BN].tolist()), lambda v: f'{v:.3g}x')}, standard "
                f"{_band_text(band(scales[STANDARD].tolist()), lambda v: f'{v:.3g}x')}; with BN the norm grows "
                f"towards the input, {(at(BN, hi_d)['spread'] ** (1 / (hi_d - 2))).mean():.3f}x per layer "
                f"(mean-field theory, Yang et al. 2019: sqrt(pi/(pi-1)) = {math.sqrt(math.pi / (math.pi - 1)):.3f})")
    return TutorialResult(rid, topic, quote + f' ("Gradient flow: Normalization prevents gradients from vanishing or '
                          f'exploding", {EXPLAINER})', source, rule, verdict, evidence, grads["seed"].nunique())


# -------------------------------------------------------------------------------------------- batch size
def batch_drop(df: pd.DataFrame, norm: str, seed) -> float:
    """Test accuracy at the largest batch minus at the smallest, for one norm and seed (NaN if missing)."""
    s = df[(df["norm"] == norm) & (df["seed"] == seed)].set_index("batch_size")["test_acc"].sort_index()
    return float(s.iloc[-1] - s.iloc[0]) if len(s) >= 2 else math.nan


def rule_small_batch(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "6a", "batch size"
    quote, source = "Batch size dependency: Performance can degrade with very small batches", UNSTABLE
    rule = (f"BN's test accuracy at batch 128 minus at batch 2, same samples seen, lr = 0.1 x batch/128 (tut_batch), "
            f"both as it is and less the standard net's (what the lr scaling does without BN): the smaller; holds "
            f"if >= {100 * SMALL_BATCH_DROP:.0f} points (tol {100 * SMALL_BATCH_TOL:.0f})")
    df = _of(runs, "tut_batch")
    seeds = [s for s in _seeds(df) if not any(math.isnan(batch_drop(df, n, s)) for n in (STANDARD, BN))]
    if not seeds:
        return _not_run(rid, topic, quote, source, rule, "tut_batch has no standard and BN runs")
    drop = {n: [batch_drop(df, n, s) for s in seeds] for n in (STANDARD, BN)}
    b = band([min(d, d - e) for d, e in zip(drop[BN], drop[STANDARD])])
    acc = df.groupby(["norm", "batch_size"])["test_acc"].mean()
    curve = lambda n: ", ".join(f"{int(k)}: {v:.3f}" for k, v in acc[n].items())
    sizes = sorted(df["batch_size"].unique())
    evidence = (f"drop from batch {int(sizes[-1])} to {int(sizes[0])}: BN {_pt(np.mean(drop[BN]))}, standard {_pt(np.mean(drop[STANDARD]))} "
                f"(judged: {_band_text(b, _pt)}); test acc by batch, BN {curve(BN)}; standard {curve(STANDARD)}")
    return TutorialResult(rid, topic, quote + f' ("Small batches give noisy statistics", {EXPLAINER})', source, rule,
                          judge(b, SMALL_BATCH_DROP, SMALL_BATCH_TOL), evidence, len(seeds))


def batch_range(df: pd.DataFrame, norm: str, seed) -> float:
    """Best minus worst test accuracy over the batch sizes, for one norm and seed."""
    s = df[(df["norm"] == norm) & (df["seed"] == seed)]["test_acc"]
    return float(np.ptp(s.to_numpy())) if len(s) >= 2 else math.nan


def _at_smallest(df: pd.DataFrame, norm: str, seed) -> float:
    s = df[(df["norm"] == norm) & (df["seed"] == seed)].set_index("batch_size")["test_acc"].sort_index()
    return float(s.iloc[0]) if len(s) else math.nan


def rule_groupnorm(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "6b", "batch size"
    quote = "Group Normalization ... Less sensitive to batch size"
    rule = (f"test accuracy range (best - worst) over batch sizes 2-128 (tut_batch): BN's minus GroupNorm's; holds "
            f"if >= {100 * ALT_GAIN:.0f} point (tol {100 * ALT_TOL:.1f})")
    df = _of(runs, "tut_batch")
    seeds = [s for s in _seeds(df) if not any(math.isnan(batch_range(df, n, s)) for n in (BN, "group"))]
    if not seeds:
        return _not_run(rid, topic, quote, UNSTABLE, rule, "tut_batch has no BN and GroupNorm runs")
    b = band([batch_range(df, BN, s) - batch_range(df, "group", s) for s in seeds])
    acc = df.groupby(["norm", "batch_size"])["test_acc"].mean()
    evidence = (f"range BN {100 * np.mean([batch_range(df, BN, s) for s in seeds]):.1f} pt, GroupNorm "
                f"{100 * np.mean([batch_range(df, 'group', s) for s in seeds]):.1f} pt (difference {_band_text(b, _pt)}); "
                "GroupNorm by batch: " + ", ".join(f"{int(k)}: {v:.3f}" for k, v in acc["group"].items()))
    return TutorialResult(rid, topic, quote, UNSTABLE, rule, judge(b, ALT_GAIN, ALT_TOL), evidence, len(seeds))


def rule_layernorm(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "6c", "batch size"
    quote = "Layer Normalization ... Better for variable-length sequences and small batches"
    rule = (f"test accuracy at batch 2 (tut_batch): LayerNorm's minus BN's (GroupNorm's too, for the explainer's "
            f"'GroupNorm: small batch sizes'); holds if LayerNorm's is >= {100 * ALT_GAIN:.0f} point higher "
            f"(tol {100 * ALT_TOL:.1f})")
    df = _of(runs, "tut_batch")
    seeds = [s for s in _seeds(df) if not any(math.isnan(_at_smallest(df, n, s)) for n in (BN, "layer"))]
    if not seeds:
        return _not_run(rid, topic, quote, UNSTABLE, rule, "tut_batch has no BN and LayerNorm runs")
    b = band([_at_smallest(df, "layer", s) - _at_smallest(df, BN, s) for s in seeds])
    gn = [_at_smallest(df, "group", s) - _at_smallest(df, BN, s) for s in seeds]
    evidence = (f"at batch 2: LayerNorm {np.mean([_at_smallest(df, 'layer', s) for s in seeds]):.3f}, BN "
                f"{np.mean([_at_smallest(df, BN, s) for s in seeds]):.3f} (difference {_band_text(b, _pt)}); "
                f"GroupNorm - BN {_pt(np.nanmean(gn)) if not all(map(math.isnan, gn)) else 'n/a'}")
    return TutorialResult(rid, topic, quote + f' ("GroupNorm ... Small batch sizes", {EXPLAINER})', UNSTABLE, rule,
                          judge(b, ALT_GAIN, ALT_TOL), evidence, len(seeds))


# ------------------------------------------------------------------------------------ train/inference
def rule_discrepancy(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "7", "train/inference"
    quote, source = "Training/inference discrepancy: Different behavior during training vs. inference", UNSTABLE
    rule = (f"BN's test accuracy in eval mode (running statistics) minus in train mode (each test batch's own "
            f"statistics), by batch size (tut_batch) and momentum (tut_momentum): the largest |difference| per "
            f"seed; holds if >= {100 * DISCREPANCY:.0f} point (tol {100 * DISCREPANCY_TOL:.1f})")
    df = pd.concat([_of(runs, "tut_batch"), _of(runs, "tut_momentum")]) if len(runs) else runs
    df = df[(df["norm"] == BN) & df["batchstat_acc"].notna()] if len(df) else df
    if not len(df):
        return _not_run(rid, topic, quote, source, rule, "no BN runs with train-mode test accuracy")
    df = df.assign(diff=df["test_acc"] - df["batchstat_acc"])
    b = band(df.groupby("seed")["diff"].apply(lambda d: d.abs().max()).tolist())
    cell = df.groupby(["batch_size", "momentum"])["diff"].mean()
    where = cell.abs().idxmax()
    default = cell.get((128, 0.1), math.nan)
    evidence = (f"largest |eval - train mode| {_band_text(b, _pt)} at batch {int(where[0])}, momentum {where[1]:g} "
                f"({_pt(cell[where])}); at batch 128, momentum 0.1: {_pt(default)}; by setting: "
                + ", ".join(f"b{int(k[0])}/m{k[1]:g} {_pt(v)}" for k, v in cell.items()))
    return TutorialResult(rid, topic, quote + f' ("Train/test discrepancy", {EXPLAINER})', source, rule,
                          judge(b, DISCREPANCY, DISCREPANCY_TOL), evidence, df["seed"].nunique())


# -------------------------------------------------------------------------------------------- placement
def rule_placement(runs: pd.DataFrame) -> TutorialResult:
    rid, topic = "8", "placement"
    quote, source = "Typically applied after the linear transformation but before the activation function", EXPLAINER
    rule = (f"final test accuracy, BN before minus after the ReLU, at lr 0.1 and 1 (tut_placement): the smaller of "
            f"the two; holds if >= 0, does not hold if below -{100 * PLACEMENT_TOL:.0f} point, borderline between")
    df = _of(runs, "tut_placement")
    if not len(df) or not {"before", "after"} <= set(df["position"]):
        return _not_run(rid, topic, quote, source, rule, "tut_placement has no runs of both placements")
    piv = df.pivot_table(index=["seed", "lr"], columns="position", values="test_acc").dropna()
    worst = (piv["before"] - piv["after"]).groupby("seed").min()
    b = band(worst.tolist())
    verdict = HOLDS if b[0] >= 0 else (FAILS if b[1] < -PLACEMENT_TOL else BORDERLINE)
    mean = piv.groupby("lr").mean()
    evidence = "; ".join(f"lr {lr:g}: before {r['before']:.3f}, after {r['after']:.3f}" for lr, r in mean.iterrows())
    return TutorialResult(rid, topic, quote, source + f' (and "Linear/Conv -> BatchNorm -> Activation", {UNSTABLE})',
                          rule, verdict, evidence, piv.index.get_level_values("seed").nunique())


# ----------------------------------------------------------------------------------------------- memory
def rule_memory(mem: Optional[pd.DataFrame]) -> TutorialResult:
    rid, topic = "9", "memory"
    quote, source = "Memory overhead: Additional parameters and computations", UNSTABLE
    rule = (f"BN / standard - 1 for the bytes autograd saves for the backward and the median step time (small CNN "
            f"and quick VGG-11, batch 128): the larger; holds if >= {OVERHEAD:.0%} (tol {OVERHEAD_TOL:.0%})")
    if mem is None or mem.empty:
        return _not_run(rid, topic, quote, source, rule, "no memory measurement")
    v = mem.pivot_table(index=["model", "metric"], columns="norm", values="value")
    over = (v[BN] / v[STANDARD] - 1)
    judged = max(over.xs("saved_bytes", level="metric").max(), over.xs("step_ms", level="metric").max())
    parts = []
    for model in over.index.get_level_values("model").unique():
        o = over[model]
        parts.append(f"{model}: params {o['params']:+.1%} (+{int(v.loc[(model, 'params'), BN] - v.loc[(model, 'params'), STANDARD])}), "
                     f"saved activations {o['saved_bytes']:+.0%}, step time {o['step_ms']:+.0%}"
                     + (f", peak memory {o['peak_bytes']:+.0%}" if "peak_bytes" in o else ""))
    return TutorialResult(rid, topic, quote, source, rule, judge((judged, judged), OVERHEAD, OVERHEAD_TOL),
                          "; ".join(parts), 1)


# ---------------------------------------------------------------------------------------------- all
def read_csv_if(path: Path) -> Optional[pd.DataFrame]:
    return pd.read_csv(path) if path.exists() else None


def check_tutorials(root: str | Path) -> list[TutorialResult]:
    """Every rule on the runs and CSVs under ``root`` (``results/``)."""
    root = Path(root)
    runs = load_runs(root)
    grads = read_csv_if(root / "tut_gradients" / "quick" / "gradients.csv")
    mem = read_csv_if(root / "tut_memory" / "quick" / "memory.csv")
    return [
        rule_speedup(runs, 5, "Faster convergence: Often 5-10x faster training", UNSTABLE, "1a"),
        rule_speedup(runs, 10, "Faster training: 10-14x fewer training steps", EXPLAINER, "1b"),
        rule_higher_lr(runs), rule_init(runs), rule_implicit_regularisation(runs), rule_dropout(runs),
        rule_gradients(grads), rule_small_batch(runs), rule_groupnorm(runs), rule_layernorm(runs),
        rule_discrepancy(runs), rule_placement(runs), rule_memory(mem),
    ]


def has_tutorial_runs(root: str | Path) -> bool:
    root = Path(root)
    return any(root.glob("tut_*/*"))


def tutorials_section(root: str | Path, figures: list[Path] = ()) -> str:
    """REPORT.md's "What the tutorials say" when ``root`` holds tutorial runs, else ``""`` (left out)."""
    return render_section(check_tutorials(root), figures) if has_tutorial_runs(root) else ""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_section(results: list[TutorialResult], figures: list[Path] = ()) -> str:
    """The REPORT.md section "What the tutorials say": one row per sentence, then the tutorials' figures."""
    counts = {v: sum(r.verdict == v for r in results) for v in (HOLDS, BORDERLINE, FAILS, NOT_RUN)}
    out = ["## What the tutorials say", "",
           f'Two tutorials list the common wisdom about BatchNorm with numbers attached: "{UNSTABLE}" and '
           f"{EXPLAINER}. `make tutorials` turns each sentence into a measurement on the small CNN (Fashion-MNIST, "
           "plain SGD, a few hundred steps); rules and thresholds are in `bnstudy/tutorials.py`. Verdicts: "
           + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "",
           "| # | The tutorial says | Rule | Verdict | Measured | Seeds |", "|---|---|---|---|---|---|"]
    for r in results:
        verdict = f"**{r.verdict}**" if r.verdict in (HOLDS, FAILS) else r.verdict
        out.append(f"| {r.id} | \"{_cell(r.quote)}\" ({_cell(r.source)}) | {_cell(r.rule)} | {verdict} | "
                   f"{_cell(r.evidence)} | {r.seeds} |")
    for f in figures:
        f = Path(f)
        out += ["", f"![{f.stem}](figures/{f.name})"]
    return "\n".join(out) + "\n"
