"""The curve claims (4, 5): gradient ICS and the landscape's smoothness, standard vs BN over live steps.

A group's curve at a step is the mean over its live seeds (``bnstudy.claims.liveness``); standard and BN
are compared by their medians over the steps where both groups are live, and every run with measured
steps left out is noted, with why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from bnstudy.claims.base import (BN, FAILS, HOLDS, INCONCLUSIVE, NOT_REPRODUCED, OPEN_CHOICE, STANDARD, Claim,
                                 ClaimResult, Notes, Results, claim, combine, lrs_with_both)
from bnstudy.claims.liveness import Run
from bnstudy.claims.text import fmt, fmt_g, fmt_ratio
from bnstudy.claims.text import ratio as safe_ratio

ICS_COS_TOL = 0.02
"""Claim 4a: one comparison finds ICS 'not lower with BN' when BN's median cos(G, G') <= standard's + this
(a higher cosine means G' is closer to G, i.e. less ICS). The l2 difference is reported, not judged: its
scale depends on the gradient norms, which BN changes."""

ICS_MAJORITY = 0.5
"""Claim 4a: the paper says ICS with BN is "similar, or even worse" and that this happens "often"; the
claim holds when more than this fraction of the conclusive comparisons (experiment x lr x layer) find
BN's ICS not lower (a majority, not every one)."""

DLN_STD_COS_MIN = 0.9
"""Claim 4b: standard DLN 'almost no ICS' = its median cos(G, G') >= this (in each layer, at each lr)."""

DLN_BN_COS_MAX = 0.5
"""Claim 4b: BN DLN 'G and G' almost uncorrelated' = |median cos(G, G')| <= this: anti-correlated
(cos near -1, a period-2 oscillation) is not uncorrelated."""

OSCILLATION_COS = -0.5
"""A step oscillates when cos(g_{t-1}, g_t) of successive training gradients (``grad_cos_prev``) is below
this; a run's oscillating period is named in claim 4b's evidence, so that it is not mistaken for ICS."""

SMOOTH_MIN_RATIO = 1.0
"""Claims 5a-c: holds when standard's median / BN's median (over common live steps) exceeds this in every
conclusive comparison (experiment x lr)."""

EARLY_FRAC = 0.25
"""Claims 5a-c: 'early in training' = measured steps before this fraction of the planned steps."""

PAPER_EARLY_RATIO = 100.0
"""Claim 5b: the paper's 'up to ~2 orders of magnitude'; the largest early ratio is reported against it
(informative: the verdict needs only ratio > :data:`SMOOTH_MIN_RATIO`)."""

MIN_COMMON_STEPS = 3
"""Curve claims: a comparison needs at least this many measured steps where both groups are live;
with fewer it is left out (inconclusive) and listed."""


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
        return self.n_common >= MIN_COMMON_STEPS and not math.isnan(safe_ratio(self.med_std, self.med_bn))

    @property
    def ratio(self) -> float:
        return safe_ratio(self.med_std, self.med_bn)

    @property
    def early_ratio(self) -> float:
        return safe_ratio(self.early_std, self.early_bn) if self.n_early else math.nan


def _group_curve(runs: list[Run], value: Callable[[Run], pd.Series], notes: Notes, what: str,
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
                f"{int((~live).sum())}/{len(s)} measured steps not live (steps {fmt_g(dead.min())}-{fmt_g(dead.max())})"
            notes.add(f"{r.label}: {scope}: {why} - left out of the {what} comparison")
        cols[str(r.seed)] = s.where(live)
    if not cols:
        return pd.Series(dtype=float)
    return pd.DataFrame(cols).mean(axis=1, skipna=True)


def _compare(label: str, std: list[Run], bn: list[Run], value: Callable[[Run], pd.Series], notes: Notes,
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



def _ics_comparisons(R: Results, name: str, notes: Notes) -> list[tuple[str, float, Comparison, Comparison]]:
    """Per lr and layer: (label, layer, cos comparison, l2 comparison) of standard vs BN."""
    groups = R.groups(name)
    out = []
    for lr in lrs_with_both(groups, STANDARD, BN):
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        layers = sorted(set().union(*[set(r.layers("ics_cos")) for r in sd + bn]))
        for layer in layers:
            label = f"{name} lr {fmt_g(lr)} layer {fmt_g(layer)}"
            cos = _compare(label, sd, bn, lambda r, L=layer: r.series("ics_cos", L), notes, "ICS")
            l2 = _compare(label, sd, bn, lambda r, L=layer: r.series("ics_l2", L), notes, "ICS")
            out.append((label, layer, cos, l2))
    return out


def correlation(cos: float) -> str:
    """The sign of a cosine in words: correlated / uncorrelated / anti-correlated (at +-DLN_BN_COS_MAX)."""
    if math.isnan(cos):
        return "n/a"
    return "correlated" if cos > DLN_BN_COS_MAX else "anti-correlated" if cos < -DLN_BN_COS_MAX else "uncorrelated"


def oscillation(runs: list[Run]) -> str:
    """Where the runs' successive training gradients point against each other (cos < OSCILLATION_COS in the
    seed-mean of ``grad_cos_prev``): ``"oscillates steps 10-2,490 (median cos -0.99)"``, or ``""``."""
    curves = [r.series("grad_cos_prev").dropna() for r in runs]
    curves = [c for c in curves if len(c)]
    if not curves:
        return ""
    mean = pd.concat(curves, axis=1).mean(axis=1).dropna()
    osc = mean[mean < OSCILLATION_COS]
    if osc.empty:
        return f"does not oscillate (median cos(g_t-1, g_t) {fmt(float(mean.median()))})"
    return (f"oscillates at {len(osc)}/{len(mean)} logged steps, steps {int(osc.index.min()):,}-"
            f"{int(osc.index.max()):,} (median cos(g_t-1, g_t) there {fmt(float(osc.median()))})")


@claim("4a", "Gradient ICS is not lower with BN", figure="Fig. 3", experiments=("fig3_cnn", "fig3_dln"),
       paper="\"networks with BatchNorm often exhibit an increase in ICS\"; ICS with BN is \"similar, or even "
             "worse\" (§2.2, Fig. 3)",
       rule=f"per experiment x lr x layer, over the steps where both are live: BN's median cos(G,G') <= "
            f"standard's + {ICS_COS_TOL} (not lower with BN); holds when more than {ICS_MAJORITY:.0%} of the "
            f"comparisons are (a majority: the paper says \"often\")")
def claim_4a(R: Results, c: Claim) -> ClaimResult:
    notes, parts, outcomes, ran = Notes(), [], [], []
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
                parts.append(f"{label}: left out ({cos.n_common} common live steps)")
                continue
            ok = cos.med_bn <= cos.med_std + ICS_COS_TOL
            outcomes.append(ok)
            parts.append(f"{label}: median cos(G,G') BN {fmt(cos.med_bn)} vs standard {fmt(cos.med_std)}, "
                         f"median ||G-G'|| BN {fmt(l2.med_bn)} vs standard {fmt(l2.med_std)} ({cos.n_common} "
                         f"common live steps) -> {'not lower with BN' if ok else 'lower with BN'}")
    if not ran:
        return c.not_run("; ".join(parts), notes)
    if not outcomes:
        return c.result(INCONCLUSIVE, parts, notes)
    k, n = sum(outcomes), len(outcomes)
    verdict = HOLDS if k > ICS_MAJORITY * n else FAILS
    parts.append(f"{k} of {n} comparisons not lower with BN (needs more than {ICS_MAJORITY:.0%})")
    why = (f"{NOT_REPRODUCED}: BN's ICS is lower in {n - k} of {n} comparisons, so not lower in only "
           f"{k / n:.0%} (needs more than {ICS_MAJORITY:.0%})")
    return c.result(verdict, parts, notes, why)


def dln_ics(R: Results, name: str, notes: Notes) -> list[dict]:
    """Claim 4b's numbers per lr and layer of a DLN experiment: standard's and BN's median cos(G, G') over
    the whole run and over the live steps, their oscillation, and whether the paper's words fit."""
    groups = R.groups(name)
    out = []
    for lr in lrs_with_both(groups, STANDARD, BN):
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        layers = sorted(set().union(*[set(r.layers("ics_cos")) for r in sd + bn]))
        for layer in layers:
            fn = lambda r, L=layer: r.series("ics_cos", L)
            row = {"lr": lr, "layer": layer, "osc_std": oscillation(sd), "osc_bn": oscillation(bn)}
            for side, runs in (("std", sd), ("bn", bn)):
                whole = _group_curve(runs, fn, Notes(), "ICS", use_live=False).dropna()
                live = _group_curve(runs, fn, notes, "ICS (live-steps median, shown only)").dropna()
                row[side] = float(whole.median()) if len(whole) >= MIN_COMMON_STEPS else math.nan
                row[f"{side}_live"] = float(live.median()) if len(live) else math.nan
                row[f"n_{side}"], row[f"n_{side}_live"] = len(whole), len(live)
            if math.isnan(row["std"]) or math.isnan(row["bn"]):
                row["ok"] = None
            else:
                row["ok"] = row["std"] >= DLN_STD_COS_MIN and abs(row["bn"]) <= DLN_BN_COS_MAX
            out.append(row)
    return out


def dln_ics_text(row: dict) -> str:
    """One lr x layer of claim 4b in words."""
    label = f"lr {fmt_g(row['lr'])} layer {fmt_g(row['layer'])}"
    if row["ok"] is None:
        return f"{label}: too few measured steps (standard {row['n_std']}, BN {row['n_bn']}; need {MIN_COMMON_STEPS})"
    std_ok, bn_ok = row["std"] >= DLN_STD_COS_MIN, abs(row["bn"]) <= DLN_BN_COS_MAX
    text = (f"{label}: median cos(G,G') over the whole run standard {fmt(row['std'])} ({correlation(row['std'])}; "
            f"live steps {fmt(row['std_live'])}, {row['n_std_live']}/{row['n_std']}), BN {fmt(row['bn'])} "
            f"({correlation(row['bn'])}; live steps {fmt(row['bn_live'])}, {row['n_bn_live']}/{row['n_bn']})")
    for side, name in (("osc_std", "standard"), ("osc_bn", "BN")):
        if row[side]:
            text += f"; {name} {row[side]}"
    return text + (" -> as the paper" if std_ok and bn_ok else
                   f" -> not as the paper ({'standard has ICS' if not std_ok else ''}"
                   f"{', ' if not std_ok and not bn_ok else ''}"
                   f"{'BN ' + correlation(row['bn']) if not bn_ok else ''})")


@claim("4b", "DLN: standard has almost no ICS, BN's G and G' are almost uncorrelated", figure="Fig. 3",
       experiments=("fig3_dln",),
       paper="\"the standard network experiences almost no ICS for the entirety of training, whereas for "
             "BatchNorm it appears that G and G' are almost uncorrelated\" (§2.2, Fig. 3, DLN)",
       rule=f"per lr and layer, median over the whole run (\"the entirety of training\"; the live steps are "
            f"shown, not judged: a DLN's loss plateau is not a dead network): standard's cos(G,G') >= "
            f"{DLN_STD_COS_MIN} and BN's |cos(G,G')| <= {DLN_BN_COS_MAX} (anti-correlated is not uncorrelated); "
            f"holds when every lr and layer does")
def claim_4b(R: Results, c: Claim) -> ClaimResult:
    name, notes = "fig3_dln", Notes()
    if not R.runs(name):
        return c.not_run(f"{name} not run")
    notes.extend(R.notes(name))
    rows = dln_ics(R, name, notes)
    if not rows:
        return c.result(INCONCLUSIVE, [f"{name}: no lr/layer with ICS for both standard and BN"], notes)
    verdict = combine([r["ok"] for r in rows])
    return c.result(verdict, [dln_ics_text(r) for r in rows], notes, why_not_4b(R, rows))


def why_not_4b(R: Results, rows: list[dict]) -> str:
    """Claim 4b's "why not": the loss scale (an open choice) when the DLN sweep shows it decides, else what
    failed."""
    bad = [r for r in rows if r["ok"] is False]
    failed = "; ".join(f"lr {fmt_g(r['lr'])} layer {fmt_g(r['layer'])}: standard {fmt(r['std'])}, BN "
                       f"{fmt(r['bn'])} ({correlation(r['bn'])})" for r in bad)
    sweep = sweep_4b(R)
    if sweep:
        return (f"{OPEN_CHOICE} (the DLN's loss scale: summed, or halved as TensorFlow's l2_loss = lr/2): "
                f"here {failed}; in `make dln_sweep` {sweep}")
    return f"{NOT_REPRODUCED}: {failed} (run `make dln_sweep` to see whether the loss scale decides it)"


DLN_SWEEP = "dln_sweep"
"""The DLN's loss-scale sweep (``make dln_sweep``, paper scale): claims 4b and 6b per lr."""


def sweep_results(R: Results) -> Results | None:
    """The DLN sweep's runs: at this scale, or else the paper-scale ones under the same root."""
    if R.runs(DLN_SWEEP):
        return R
    if R.scale != "paper":
        P = R.other_scale("paper")
        if P.runs(DLN_SWEEP):
            return P
    return None


def sweep_4b(R: Results) -> str:
    """Claim 4b in the DLN sweep, per lr: ``"holds at lr 5e-07; not at lr 1e-06 (standard oscillates ...)"``."""
    S = sweep_results(R)
    if S is None:
        return ""
    per_lr: dict[float, list] = {}
    for row in dln_ics(S, DLN_SWEEP, Notes()):
        per_lr.setdefault(row["lr"], []).append(row)
    holds = [lr for lr, rows in per_lr.items() if combine([r["ok"] for r in rows]) == HOLDS]
    text = []
    for lr, rows in sorted(per_lr.items(), reverse=True):
        cos = ", ".join(f"layer {fmt_g(r['layer'])} standard {fmt(r['std'])} / BN {fmt(r['bn'])}" for r in rows)
        text.append(f"lr {fmt_g(lr)}: {'holds' if lr in holds else 'does not hold'} ({cos})")
    return "; ".join(text)


SMOOTH_RULE = (f"standard's median / BN's median over the steps where both are live > {SMOOTH_MIN_RATIO:g} in "
               f"every experiment and lr (each needs >= {MIN_COMMON_STEPS} common live steps); the first "
               f"{EARLY_FRAC:.0%} of the steps are shown, not judged")

SMOOTH_EXPERIMENTS = ("fig4_cnn", "fig4_dln")
"""Claims 5a-c: where the paper's landscape measures are compared (VGG/CNN and DLN; standard vs BN)."""


def _smoothness(R: Results, c: Claim, measures: list[tuple[str, Callable[[Run], pd.Series]]],
                show_early_max: bool = False) -> ClaimResult:
    """Standard's median / BN's median of each measure over their common live steps, in each of the
    claim's experiments and lrs; holds when every conclusive ratio exceeds :data:`SMOOTH_MIN_RATIO`."""
    notes, parts, outcomes, ran, earlies = Notes(), [], [], [], []
    for name in c.experiments:
        if not R.runs(name):
            parts.append(f"{name} not run")
            continue
        ran.append(name)
        notes.extend(R.notes(name))
        groups = R.groups(name)
        found = False
        for lr in lrs_with_both(groups, STANDARD, BN):
            sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
            for mname, fn in measures:
                if not any(len(fn(r)) for r in sd + bn):
                    continue
                found = True
                label = f"{name} lr {fmt_g(lr)} {mname}"
                cmp = _compare(label, sd, bn, fn, notes, "landscape")
                if not cmp.conclusive:
                    outcomes.append(None)
                    parts.append(f"{label}: left out ({cmp.n_common} steps where both are live)")
                    continue
                ok = cmp.ratio > SMOOTH_MIN_RATIO
                outcomes.append(ok)
                if not math.isnan(cmp.early_ratio):
                    earlies.append((cmp.early_ratio, label))
                early = (f", first {EARLY_FRAC:.0%} of steps standard {fmt(cmp.early_std)} vs BN "
                         f"{fmt(cmp.early_bn)} ({fmt_ratio(cmp.early_ratio)}, {cmp.n_early} steps)") if cmp.n_early else \
                    ", no common live early steps"
                parts.append(f"{label}: median standard {fmt(cmp.med_std)} vs BN {fmt(cmp.med_bn)} = "
                             f"{fmt_ratio(cmp.ratio)}{early}; {cmp.n_common} common live steps -> "
                             f"{'BN smoother' if ok else 'BN not smoother'}")
                if ok and cmp.early_ratio <= SMOOTH_MIN_RATIO:
                    parts.append(f"note: {label} holds over the run, but early in training the ratio goes the "
                                 f"other way ({fmt_ratio(cmp.early_ratio)}: BN's value is "
                                 f"{fmt_ratio(safe_ratio(cmp.early_bn, cmp.early_std))} the standard network's)")
        if not found:
            parts.append(f"{name}: no {'/'.join(m for m, _ in measures)} for both standard and BN")
    if not ran:
        return c.not_run("; ".join(parts), notes)
    if show_early_max and earlies:
        r, label = max(earlies, key=lambda t: t[0])
        parts.append(f"largest early-training ratio standard/BN {fmt_ratio(r)} ({label}; paper: up to "
                     f"~{PAPER_EARLY_RATIO:g}x)")
    return c.result(combine(outcomes), parts, notes)


@claim("5a", "With BN the loss landscape band is narrower", figure="Fig. 4", experiments=SMOOTH_EXPERIMENTS,
       paper="With BN the loss band is narrower", rule=SMOOTH_RULE)
def claim_5a(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("loss band (max-min)", _band)])


@claim("5b", "With BN gradient predictiveness is better (up to ~2 orders of magnitude early)", figure="Fig. 4",
       experiments=SMOOTH_EXPERIMENTS,
       paper="gradient predictiveness better (by up to ~2 orders of magnitude early in training)",
       rule=SMOOTH_RULE + f"; the largest early ratio is set against the paper's ~{PAPER_EARLY_RATIO:g}x")
def claim_5b(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("max ||g-g'||", lambda r: r.series("grad_pred_max").dropna())], show_early_max=True)


@claim("5c", "With BN the effective beta-smoothness is smaller", figure="Fig. 4", experiments=SMOOTH_EXPERIMENTS,
       paper="effective β smaller", rule=SMOOTH_RULE)
def claim_5c(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("beta", lambda r: r.series("beta").dropna())])


@claim("5d", "Seed 001 (small CNN): with BN the loss changes less between steps and the effective beta w.r.t. "
       "activations is smaller", figure="seed 001", experiments=("browser",),
       paper="the browser reproduction: with BN the loss changes less between steps and β w.r.t. activations "
             "is smaller", rule=SMOOTH_RULE)
def claim_5d(R: Results, c: Claim) -> ClaimResult:
    """Seed 001's version on its shallow CNN: loss change between steps and beta w.r.t. activations."""
    def beta_act(r: Run) -> pd.Series:
        layers = r.layers("beta_act")
        return r.series("beta_act", layers[0]).dropna() if layers else pd.Series(dtype=float)

    return _smoothness(R, c, [("|loss change|", lambda r: r.series("loss_change").dropna()),
                              ("beta (activations)", beta_act)])
