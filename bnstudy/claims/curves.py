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

from bnstudy.claims.base import (BN, INCONCLUSIVE, STANDARD, Claim, ClaimResult, Notes, Results, claim, combine,
                                 lrs_with_both)
from bnstudy.claims.liveness import Run
from bnstudy.claims.text import fmt, fmt_g, fmt_ratio
from bnstudy.claims.text import ratio as safe_ratio

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


@claim("4a", "Gradient ICS is not lower with BN", figure="Fig. 3", experiments=("fig3_cnn", "fig3_dln"),
       paper="Gradient ICS is not lower with BN")
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
                outcomes.append(None)
                parts.append(f"{label}: left out ({cos.n_common} common live steps)")
                continue
            ok = cos.med_bn <= cos.med_std + ICS_COS_TOL
            outcomes.append(ok)
            parts.append(f"{label}: median cos(G,G') BN {fmt(cos.med_bn)} vs std {fmt(cos.med_std)}, "
                         f"median ||G-G'|| BN {fmt(l2.med_bn)} vs std {fmt(l2.med_std)} ({cos.n_common} common live "
                         f"steps) -> {'not lower with BN' if ok else 'lower with BN'}")
    if not ran:
        return c.not_run("; ".join(parts), notes)
    return c.result(combine(outcomes), parts, notes)


@claim("4b", "DLN: standard has almost no ICS, BN's G and G' are nearly uncorrelated", figure="Fig. 3",
       experiments=("fig3_dln",),
       paper="DLN: standard almost none; BN: G and G' nearly uncorrelated")
def claim_4b(R: Results, c: Claim) -> ClaimResult:
    name, notes = "fig3_dln", Notes()
    if not R.runs(name):
        return c.not_run(f"{name} not run")
    notes.extend(R.notes(name))
    groups = R.groups(name)
    parts, outcomes = [], []
    for lr in lrs_with_both(groups, STANDARD, BN):
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        layers = sorted(set().union(*[set(r.layers("ics_cos")) for r in sd + bn]))
        for layer in layers:
            fn = lambda r, L=layer: r.series("ics_cos", L)
            cs = _group_curve(sd, fn, notes, "ICS").dropna()
            cb = _group_curve(bn, fn, notes, "ICS").dropna()
            label = f"lr {fmt_g(lr)} layer {fmt_g(layer)}"
            if len(cs) < MIN_COMMON_STEPS or len(cb) < MIN_COMMON_STEPS:
                outcomes.append(None)
                parts.append(f"{label}: too few live steps (std {len(cs)}, BN {len(cb)})")
                notes.add(f"{name} {label}: too few live measured steps (need {MIN_COMMON_STEPS}) - left out")
                continue
            ms, mb = float(cs.median()), float(cb.median())
            ok = ms >= DLN_STD_COS_MIN and mb <= DLN_BN_COS_MAX
            outcomes.append(ok)
            parts.append(f"{label}: median cos(G,G') std {fmt(ms)} (needs >= {DLN_STD_COS_MIN}), BN {fmt(mb)} "
                         f"(needs <= {DLN_BN_COS_MAX}) -> {'as the paper' if ok else 'not as the paper'}")
    if not parts:
        return c.result(INCONCLUSIVE, [f"{name}: no lr/layer with ICS for both standard and BN"],
                       notes)
    return c.result(combine(outcomes), parts, notes)



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
                early = (f", first {EARLY_FRAC:.0%} of steps std {fmt(cmp.early_std)} vs BN {fmt(cmp.early_bn)} "
                         f"({fmt_ratio(cmp.early_ratio)}, {cmp.n_early} steps)") if cmp.n_early else \
                    ", no common live early steps"
                parts.append(f"{label}: median std {fmt(cmp.med_std)} vs BN {fmt(cmp.med_bn)} = {fmt_ratio(cmp.ratio)}"
                             f"{early}; {cmp.n_common} common live steps -> "
                             f"{'BN smoother' if ok else 'BN not smoother'}")
        if not found:
            parts.append(f"{name}: no {'/'.join(m for m, _ in measures)} for both standard and BN")
    if not ran:
        return c.not_run("; ".join(parts), notes)
    if show_early_max and earlies:
        r, label = max(earlies, key=lambda t: t[0])
        parts.append(f"largest early-training ratio {fmt_ratio(r)} ({label}; paper: up to ~{PAPER_EARLY_RATIO:g}x)")
    return c.result(combine(outcomes), parts, notes)


@claim("5a", "With BN the loss landscape band is narrower", figure="Fig. 4", experiments=SMOOTH_EXPERIMENTS,
       paper="With BN the loss band is narrower")
def claim_5a(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("loss band (max-min)", _band)])


@claim("5b", "With BN gradient predictiveness is better (up to ~2 orders of magnitude early)", figure="Fig. 4",
       experiments=SMOOTH_EXPERIMENTS,
       paper="gradient predictiveness better (by up to ~2 orders of magnitude early in training)")
def claim_5b(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("max ||g-g'||", lambda r: r.series("grad_pred_max").dropna())], show_early_max=True)


@claim("5c", "With BN the effective beta-smoothness is smaller", figure="Fig. 4", experiments=SMOOTH_EXPERIMENTS,
       paper="effective β smaller")
def claim_5c(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("beta", lambda r: r.series("beta").dropna())])


@claim("5d", "Seed 001 (small CNN): with BN the loss changes less between steps and the effective beta w.r.t. "
       "activations is smaller", figure="seed 001", experiments=("browser",),
       paper="the browser reproduction: with BN the loss changes less between steps and β w.r.t. activations "
             "is smaller")
def claim_5d(R: Results, c: Claim) -> ClaimResult:
    """Seed 001's version on its shallow CNN: loss change between steps and beta w.r.t. activations."""
    def beta_act(r: Run) -> pd.Series:
        layers = r.layers("beta_act")
        return r.series("beta_act", layers[0]).dropna() if layers else pd.Series(dtype=float)

    return _smoothness(R, c, [("|loss change|", lambda r: r.series("loss_change").dropna()),
                              ("beta (activations)", beta_act)])
