"""The curve claims (4, 5): gradient ICS and the landscape's smoothness, standard vs BN over live steps.

Each check sees one seed's runs (``bnstudy.claims.verdicts.judge``): a group's curve is its one run's
measurements at the steps where it is live (``bnstudy.claims.liveness``); standard and BN are compared by
their medians over the steps where both are live, and every run with measured steps left out is noted,
with why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from bnstudy.claims.accuracy import dln_sweep_settings
from bnstudy.claims.base import (BN, FAILS, HOLDS, INCONCLUSIVE, STANDARD, Claim, ClaimResult, Notes,
                                 Part, Results, claim, lrs_with_both, one)
from bnstudy.claims.liveness import LiveRun
from bnstudy.claims.text import fmt_g
from bnstudy.claims.text import ratio as safe_ratio
from bnstudy.measures.beta_act import BETA_ACT
from bnstudy.measures.grad_cos_prev import GRAD_COS_PREV
from bnstudy.measures.ics import ICS_COS, ICS_L2
from bnstudy.measures.landscape import BETA, GRAD_PRED_MAX, LANDSCAPE_LOSS_MAX, LANDSCAPE_LOSS_MIN
from bnstudy.measures.loss_change import LOSS_CHANGE
from bnstudy.runs import layers_of

ICS_COS_TOL = 0.02
"""Claim 4a: one comparison finds ICS "similar, or even worse" with BN when BN's median cos(G, G') <=
standard's + this (a higher cosine means G' is closer to G, less ICS; 0.02 in cosine is "similar"). The l2
difference is shown, not judged: its scale follows the gradient norms, which BN changes."""

ICS_MAJORITY = 0.5
"""Claim 4a: "often" = more than this fraction of the conclusive comparisons (experiment x lr x layer)."""

DLN_STD_COS_MIN = 0.9
"""Claim 4b: the standard DLN has "almost no ICS" = its median cos(G, G') >= 0.9 (G' within 26 degrees of G)."""

DLN_BN_COS_MAX = 0.2
"""Claim 4b: BN's G and G' "almost uncorrelated" = |median cos(G, G')| <= 0.2: within two standard deviations of
the cosine of two independent random directions in a 10x10 layer's 100 dimensions (1/sqrt(100) = 0.1).
Anti-correlated (cos < -0.2, a period-2 oscillation) is not uncorrelated."""

OSCILLATION_COS = -0.5
"""A step oscillates when cos(g_{t-1}, g_t) of successive training gradients (``grad_cos_prev``) is below
this; a run's oscillating period is named in claim 4b's evidence, so that it is not mistaken for ICS."""

SMOOTH_MIN_RATIO = 1.25
"""Claims 5a-d: "smaller with BN" = standard's median / BN's median over the common live steps >= 1.25 (BN's at
least a fifth smaller): a tie within one seed's step-to-step noise is not a smoother landscape; the paper
says "significantly better" of beta."""

EARLY_FRAC = 0.25
"""Claims 5a-d: 'early in training' = measured steps before this fraction of the planned steps (shown)."""

MIN_COMMON_STEPS = 3
"""Curve claims: a comparison needs at least this many measured steps where both runs are live; with fewer it
is left out (inconclusive) and listed."""


@dataclass
class Comparison:
    """Standard vs BN medians of one measure over the steps where both runs are live."""

    label: str
    med_std: float = math.nan
    med_bn: float = math.nan
    n_common: int = 0
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


def live_curve(runs: list[LiveRun], value: Callable[[LiveRun], pd.Series], notes: Notes, what: str,
               use_live: bool = True) -> pd.Series:
    """The group's curve (one seed: its one run): the measurement where the run is live, NaN elsewhere."""
    if not runs:
        return pd.Series(dtype=float)
    r = one(runs, lambda r: r)
    s = value(r)
    s = s[np.isfinite(s.to_numpy(dtype=float))]
    if s.empty or not use_live:
        return s
    live, reasons = r.live_at(s.index)
    if (~live).any():
        dead = s.index[~live]
        why = ", ".join(sorted({x for x, ok in zip(reasons, live) if not ok}))
        scope = "whole run not live" if not live.any() else \
            f"{int((~live).sum())}/{len(s)} measured steps not live (steps {fmt_g(dead.min())}-{fmt_g(dead.max())})"
        notes.add(f"{r.label}: {scope}: {why} - left out of the {what} comparison")
    return s.where(live)


def compare(label: str, std: list[LiveRun], bn: list[LiveRun], value: Callable[[LiveRun], pd.Series], notes: Notes,
            what: str) -> Comparison:
    cs = live_curve(std, value, notes, what)
    cb = live_curve(bn, value, notes, what)
    c = Comparison(label)
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
        notes.add(f"{label}: {c.n_common} measured step(s) where both runs are live "
                  f"(need {MIN_COMMON_STEPS}) - comparison left out")
    return c


def _band(r: LiveRun) -> pd.Series:
    return (r.series(LANDSCAPE_LOSS_MAX) - r.series(LANDSCAPE_LOSS_MIN)).dropna()


def standard_bn_pairs(R: Results, c: Claim, notes: Notes, ran: list[str]):
    """(experiment, lr, standard's runs, BN's runs) for each of the claim's experiments that ran and each lr with
    both networks (one seed); the experiments walked go into ``ran``, their excluded runs into ``notes``."""
    for name in c.experiments:
        if not R.runs(name):
            continue
        ran.append(name)
        notes.extend(R.notes(name))
        groups = R.groups(name)
        for lr in lrs_with_both(groups, STANDARD, BN):
            yield name, lr, groups[(STANDARD, lr)], groups[(BN, lr)]


@claim("4a", "Gradient ICS is not lower with BN", figure="Fig. 3", experiments=("fig3_cnn", "fig3_dln"),
       paper="§2.2: \"networks with BatchNorm often exhibit an increase in ICS\"; Fig. 3 caption: \"Models with "
             "BatchNorm have similar, or even worse, internal covariate shift, despite performing better in terms "
             "of accuracy and loss.\"",
       rule=f"per experiment x lr x layer, over the steps where both are live: BN's median cos(G,G') <= standard's "
            f"+ {ICS_COS_TOL} (ICS \"similar, or even worse\" with BN; 0.02 in cosine is similar); holds when more "
            f"than {ICS_MAJORITY:.0%} of the comparisons are (\"often\": a majority, not every one)")
def claim_4a(R: Results, c: Claim) -> ClaimResult:
    notes, parts, ran = Notes(), [], []
    for name, lr, sd, bn in standard_bn_pairs(R, c, notes, ran):
        for layer in layers_of(sd + bn, ICS_COS):
            label = f"{name} lr {fmt_g(lr)} layer {fmt_g(layer)}"
            cos = compare(label, sd, bn, lambda r, L=layer: r.series(ICS_COS, L), notes, "ICS")
            l2 = compare(label, sd, bn, lambda r, L=layer: r.series(ICS_L2, L), Notes(), "ICS")
            parts.append(Part(label, [("median cos(G,G') BN", cos.med_bn), ("standard", cos.med_std),
                                      ("median ||G-G'|| BN", l2.med_bn, "g"), ("standard", l2.med_std, "g")],
                              cos.med_bn <= cos.med_std + ICS_COS_TOL if cos.conclusive else None,
                              "not lower with BN", "lower with BN"))
    if not ran:
        return c.not_run("; ".join(f"{n} not run" for n in c.experiments), notes)
    decided = [p.ok for p in parts if p.ok is not None]
    if not decided:
        return c.result(parts, notes, INCONCLUSIVE)
    k, n = sum(decided), len(decided)
    parts.append(Part("comparisons not lower with BN", {"fraction": k / n}, k > ICS_MAJORITY * n,
                      f"more than {ICS_MAJORITY:.0%}", f"not more than {ICS_MAJORITY:.0%}", info=True))
    return c.result(parts, notes, HOLDS if k > ICS_MAJORITY * n else FAILS)


def correlation(cos: float) -> str:
    """The sign of a cosine in words: correlated / uncorrelated / anti-correlated (at +-DLN_BN_COS_MAX)."""
    if math.isnan(cos):
        return "n/a"
    return "correlated" if cos > DLN_BN_COS_MAX else "anti-correlated" if cos < -DLN_BN_COS_MAX else "uncorrelated"


def oscillating_steps(runs: list[LiveRun]) -> float:
    """The fraction of logged steps at which the run's successive training gradients point against each other
    (``grad_cos_prev`` < OSCILLATION_COS: a period-2 flip, not ICS); NaN when not logged."""
    s = one(runs, lambda r: r.series(GRAD_COS_PREV).dropna()) if runs else pd.Series(dtype=float)
    return float((s < OSCILLATION_COS).mean()) if len(s) else math.nan


def dln_ics_parts(R: Results, name: str, notes: Notes) -> list[Part]:
    """Claim 4b per lr and layer of a DLN experiment (one seed): standard's and BN's median cos(G, G') over
    the whole run, with each run's oscillating fraction shown."""
    groups = R.groups(name)
    parts = []
    for lr in lrs_with_both(groups, STANDARD, BN):
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        osc = {"standard oscillating steps": oscillating_steps(sd), "BN oscillating steps": oscillating_steps(bn)}
        for layer in layers_of(sd + bn, ICS_COS):
            fn = lambda r, L=layer: r.series(ICS_COS, L)
            whole = {side: live_curve(runs, fn, notes, "ICS", use_live=False).dropna()
                     for side, runs in (("std", sd), ("bn", bn))}
            std = float(whole["std"].median()) if len(whole["std"]) >= MIN_COMMON_STEPS else math.nan
            bnc = float(whole["bn"].median()) if len(whole["bn"]) >= MIN_COMMON_STEPS else math.nan
            ok = None if math.isnan(std) or math.isnan(bnc) else std >= DLN_STD_COS_MIN and abs(bnc) <= DLN_BN_COS_MAX
            words = "not as the paper" if ok is False else ""
            if ok is False:
                words += f" (standard {'has ICS' if std < DLN_STD_COS_MIN else 'almost none'}, BN {correlation(bnc)})"
            values = {"median cos(G,G') standard": std, "BN": bnc}
            values.update({k: v for k, v in osc.items() if not math.isnan(v)})
            parts.append(Part(f"lr {fmt_g(lr)} layer {fmt_g(layer)}", values, ok, "as the paper",
                              "not as the paper", kinds={k: "pt" if "oscillating" in k else "num" for k in values},
                              note="" if ok is not False else words.strip()))
    return parts


@claim("4b", "DLN: the standard network has almost no ICS, BN's G and G′ are almost uncorrelated", figure="Fig. 3",
       experiments=("fig3_dln",),
       paper="§2.2: \"This is particularly striking in the case of DLN. In fact, in this case, the standard network "
             "experiences almost no ICS for the entirety of training, whereas for BatchNorm it appears that G and G′ "
             "are almost uncorrelated.\"",
       rule=f"per lr and layer, median over the whole run (\"the entirety of training\"): standard's cos(G,G′) >= "
            f"{DLN_STD_COS_MIN} (\"almost no ICS\": G′ within 26° of G) and BN's |cos(G,G′)| <= {DLN_BN_COS_MAX} "
            f"(\"almost uncorrelated\": two standard deviations of two random directions in a layer's 100 "
            f"dimensions; anti-correlated is not uncorrelated); holds when every lr and layer does",
       settings=dln_sweep_settings("fig3_dln"))
def claim_4b(R: Results, c: Claim) -> ClaimResult:
    name, notes = "fig3_dln", Notes()
    if not R.runs(name):
        return c.not_run(f"{name} not run")
    notes.extend(R.notes(name))
    parts = dln_ics_parts(R, name, notes)
    if not parts:
        return c.result([Part(f"{name}", {}, None, note="no lr/layer with ICS for both standard and BN")], notes)
    return c.result(parts, notes)


SMOOTH_RULE = (f"per experiment and lr: standard's median / BN's median over the steps where both are live >= "
               f"{SMOOTH_MIN_RATIO:g} (BN's at least a fifth smaller: a tie within one seed's step-to-step noise is "
               f"not smoother; each needs >= {MIN_COMMON_STEPS} common live steps); holds when every one does. The "
               f"first {EARLY_FRAC:.0%} of the steps are shown, not judged")

SMOOTH_EXPERIMENTS = ("fig4_cnn", "fig4_dln")
"""Claims 5a-c: where the paper's landscape measures are compared (VGG/CNN and DLN; standard vs BN)."""


def _smoothness(R: Results, c: Claim, measures: list[tuple[str, Callable[[LiveRun], pd.Series]]]) -> ClaimResult:
    """Standard's median / BN's median of each measure over their common live steps, in each of the
    claim's experiments and lrs (one seed); holds when every conclusive ratio reaches SMOOTH_MIN_RATIO."""
    notes, parts, ran = Notes(), [], []
    for name, lr, sd, bn in standard_bn_pairs(R, c, notes, ran):
        for mname, fn in measures:
            if not any(len(fn(r)) for r in sd + bn):
                continue
            label = f"{name} lr {fmt_g(lr)} {mname}"
            cmp = compare(label, sd, bn, fn, notes, "landscape")
            ok = cmp.ratio >= SMOOTH_MIN_RATIO if cmp.conclusive else None
            parts.append(Part(label, {"median standard": cmp.med_std, "BN": cmp.med_bn, "standard/BN": cmp.ratio,
                                      f"first {EARLY_FRAC:.0%} of steps standard/BN": cmp.early_ratio},
                              ok, "BN smoother", "BN not smoother",
                              kinds={"median standard": "g", "BN": "g", "standard/BN": "x",
                                     f"first {EARLY_FRAC:.0%} of steps standard/BN": "x"},
                              lenient=None if ok is None else cmp.ratio > 1))
    if not ran:
        return c.not_run("; ".join(f"{n} not run" for n in c.experiments), notes)
    return c.result(parts, notes)


@claim("5a", "With BN the loss changes less along the gradient (a narrower loss band)", figure="Fig. 4a",
       experiments=SMOOTH_EXPERIMENTS,
       paper="§3.1, of the Lipschitzness of the loss with BatchNorm: \"the loss changes at a smaller rate and the "
             "magnitudes of the gradients are smaller too\"",
       rule=SMOOTH_RULE + "; the measure: the loss band max - min of L(w - eta g) over the paper's eta range")
def claim_5a(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("loss band (max-min)", _band)])


@claim("5b", "With BN the gradient is more predictive along the gradient direction", figure="Fig. 4b",
       experiments=SMOOTH_EXPERIMENTS,
       paper="§3.1: \"BatchNorm’s reparametrization makes gradients of the loss more Lipschitz too\"; Fig. 4 "
             "(gradient predictiveness) is measured \"to illustrate the increase in the stability and "
             "predictiveness of the gradients\"",
       rule=SMOOTH_RULE + "; the measure: max over eta of ||g(w) - g(w - eta g)||")
def claim_5b(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("max ||g-g'||", lambda r: r.series(GRAD_PRED_MAX).dropna())])


@claim("5c", "With BN the effective beta-smoothness is smaller", figure="Fig. 4c", experiments=SMOOTH_EXPERIMENTS,
       paper="§3.1: \"In other words, the loss exhibits a significantly better “effective” β-smoothness.\"",
       rule=SMOOTH_RULE + "; the measure: max over eta of ||g(w) - g(w - eta g)|| / ||eta g||")
def claim_5c(R: Results, c: Claim) -> ClaimResult:
    return _smoothness(R, c, [("beta", lambda r: r.series(BETA).dropna())])


@claim("5d", "The browser reproduction (small CNN): with BN the loss changes less between steps and the "
       "effective beta w.r.t. activations is smaller", figure="the browser reproduction", experiments=("browser",),
       paper="the browser reproduction, of its loss-change and effective-β charts: \"Lower and less fluctuating "
             "values indicate smoothness.\"",
       rule=SMOOTH_RULE + "; the measures: |L_t+1 - L_t| and beta w.r.t. the activations of the last conv layer")
def claim_5d(R: Results, c: Claim) -> ClaimResult:
    """The browser reproduction's version on its shallow CNN: loss change between steps and beta w.r.t. activations."""
    def beta_act(r: LiveRun) -> pd.Series:
        layers = r.layers(BETA_ACT)
        return r.series(BETA_ACT, layers[0]).dropna() if layers else pd.Series(dtype=float)

    return _smoothness(R, c, [("|loss change|", lambda r: r.series(LOSS_CHANGE).dropna()),
                              ("beta (activations)", beta_act)])



