"""Claims beyond the paper (B1-B11): what later work says about curvature, the paper's own Theorem 4.1,
scale invariance and signal at initialisation, judged on ``make curvature``, ``make theory`` and
``make signal`` runs. Registered with ``beyond=True``: REPORT.md shows them in their own section, only when
their runs exist, and they do not count among the paper's claims.

A group's curve is the mean over its seeds at each measured step; "the second half" is the measured steps
at or after half the planned steps. Every threshold is a module constant (REPORT.md cites it).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import pandas as pd

from bnstudy.claims.base import BN, INCONCLUSIVE, STANDARD, Claim, ClaimResult, Notes, Results, claim, combine
from bnstudy.claims.liveness import Run
from bnstudy.claims.text import fmt_g


def fmt(x: float) -> str:
    """Three significant digits: these values span orders of magnitude (1e-6 to 1e7)."""
    return "n/a" if x is None or math.isnan(x) else f"{x:.3g}"

EOS_BAND = (0.8, 1.5)
"""B1, B4: "at the edge of stability" = the median of lambda * lr / 2 over the second half of the run lies in
this band (Cohen et al. 2021: full-batch GD's sharpness rises to 2/lr and hovers at or just above it)."""

MODE_GAP_MIN = 2.0
"""B2: "the outliers largely gone in train mode, back with running statistics" = BN's median of
hess_lmax_eval / hess_lmax_train over the run is at least this."""

LOWER_MAX_RATIO = 1.0
"""B3, B5: "BN lowers it" = BN's median / standard's median over common measured steps is below this."""

THM41_EQ_TOL = 1e-3
"""B6: the proof's form is an equality "up to BN's eps" = |lhs / rhs - 1| <= this at every layer and step."""

SI_COS_MAX = 1e-3
"""B8: <w, g> = 0 = |cos(w, g)| <= this at every layer and measured step."""

SI_GROWTH_TOL = 1e-2
"""B8: plain SGD grows |w|^2 by lr^2 |g|^2 = the median |measured / predicted - 1| over layers and steps is
at most this."""

EFF_LR_MARGIN = 0.8
"""B9: the effective lr "tunes itself" = the final ratio of effective lrs (larger lr / smaller) is below this
times the ratio of the nominal lrs."""

SPREAD_MARGIN = 1.0
"""B10: BN keeps |dL/dW| "from exploding or vanishing with depth" = its max/min over the layers of the deepest
network is below standard's times this."""

RANK_MARGIN = 1.0
"""B11: BN "keeps the rank from collapsing" = BN's effective rank at the last layer of the deepest network is
above standard's times this."""


# ------------------------------------------------------------------------------------------- helpers
def curve(runs: list[Run], metric: str, layer: Optional[float] = None) -> pd.Series:
    """The seed mean of ``metric`` (at ``layer``) by step; empty if no run logged it."""
    parts = [r.series(metric, layer) for r in runs]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, axis=1).mean(axis=1).dropna() if parts else pd.Series(dtype=float)


def second_half(s: pd.Series, runs: list[Run]) -> pd.Series:
    """The measured steps at or after half the planned steps."""
    half = max((r.steps for r in runs), default=0) / 2
    return s[s.index >= half]


def median_ratio(a: pd.Series, b: pd.Series) -> tuple[float, int]:
    """Median of a / b over their common steps, and how many there were."""
    common = a.index.intersection(b.index)
    if not len(common):
        return math.nan, 0
    return float(np.median(a[common].to_numpy() / b[common].to_numpy())), len(common)


def _layers(runs: list[Run], metric: str) -> list[float]:
    return sorted({layer for r in runs for layer in r.layers(metric)})


def _need(R: Results, c: Claim, name: str) -> tuple[dict, Notes, Optional[ClaimResult]]:
    notes = Notes()
    notes.extend(R.notes(name))
    groups = R.groups(name)
    return groups, notes, (None if groups else c.not_run(f"{name} not run (make {name.rsplit('_', 1)[0]})", notes))


def _each(R: Results, c: Claim, names: tuple[str, ...],
          compare: Callable[[str, dict], tuple[list, list]]) -> ClaimResult:
    """The claim over several experiments: ``compare(name, groups) -> (outcomes, evidence parts)`` on each
    one that ran (an outcome None: left out); not run when none did."""
    outcomes, parts, notes, ran = [], [], Notes(), False
    for name in names:
        groups, n, missing = _need(R, c, name)
        notes.extend(n.items)
        if missing:
            parts.append(f"{name} not run")
            continue
        ran = True
        o, p = compare(name, groups)
        outcomes += o
        parts += p
    if not ran:
        return c.not_run("; ".join(parts), notes)
    return c.result(combine(outcomes), parts, notes)


CURVATURE = ("curvature_cnn", "curvature_dln")


# ---------------------------------------------------------------------------------------- curvature
def _edge(R: Results, c: Claim, name: str, metric: str) -> ClaimResult:
    groups, notes, missing = _need(R, c, name)
    if missing:
        return missing
    outcomes, parts = [], []
    for (norm, lr), runs in groups.items():
        if norm != STANDARD:
            continue
        s = second_half(curve(runs, metric), runs) * lr / 2
        if s.empty:
            outcomes.append(None)
            parts.append(f"{name} standard lr {fmt_g(lr)}: no {metric} in the second half")
            continue
        med = float(s.median())
        ok = EOS_BAND[0] <= med <= EOS_BAND[1]
        outcomes.append(ok)
        parts.append(f"{name} standard lr {fmt_g(lr)}: {metric} / (2/lr) median {fmt(med)} over the second half "
                     f"(range {fmt(float(s.min()))}-{fmt(float(s.max()))}, {len(s)} steps); whole run from "
                     f"{fmt(float(curve(runs, metric).iloc[0] * lr / 2))} at step 0")
    if not outcomes:
        return c.not_run(f"{name}: no standard run", notes)
    return c.result(combine(outcomes), parts, notes)


@claim("B1", "Without BN, full-batch GD drives lambda_max to 2/lr and keeps it there", figure="curvature",
       experiments=("curvature_dln",), beyond=True,
       paper="Cohen et al. 2021: under full-batch GD \"the sharpness ... hovers just above 2/η\" (the edge of "
             "stability); the DLN is trained by full-batch GD",
       rule=f"standard DLN: the median of hess_lmax_train x lr / 2 over the second half of the run lies in "
            f"[{EOS_BAND[0]:g}, {EOS_BAND[1]:g}]")
def claim_b1(R: Results, c: Claim) -> ClaimResult:
    return _edge(R, c, "curvature_dln", "hess_lmax_train")


@claim("B2", "With BN, lambda_max in train mode is far below lambda_max with running statistics",
       figure="curvature", experiments=CURVATURE, beyond=True,
       paper="Ghorbani et al. 2019: with BN the Hessian's outlier eigenvalues are largely gone when batch "
             "statistics are used, and come back with population statistics",
       rule=f"BN runs: the median of hess_lmax_eval / hess_lmax_train over the run is >= {MODE_GAP_MIN:g} in each "
            f"experiment (standard's ratio, 1 without batch statistics, shown)")
def claim_b2(R: Results, c: Claim) -> ClaimResult:
    def compare(name: str, groups: dict) -> tuple[list, list]:
        outcomes, parts = [], []
        for (norm, lr), runs in groups.items():
            ratio, k = median_ratio(curve(runs, "hess_lmax_eval"), curve(runs, "hess_lmax_train"))
            if not k:
                parts.append(f"{name} {norm} lr {fmt_g(lr)}: no train- and eval-mode lambda_max at one step")
                outcomes += [None] if norm == BN else []
                continue
            if norm == BN:
                outcomes.append(ratio >= MODE_GAP_MIN)
            parts.append(f"{name} {'BN' if norm == BN else norm} lr {fmt_g(lr)}: eval / train median {fmt(ratio)} "
                         f"({k} steps)")
        return outcomes, parts
    return _each(R, c, CURVATURE, compare)


def _lower(R: Results, c: Claim, metric: str) -> ClaimResult:
    def compare(name: str, groups: dict) -> tuple[list, list]:
        outcomes, parts = [], []
        for lr in sorted({lr for (norm, lr) in groups if norm == STANDARD and (BN, lr) in groups}):
            ratio, k = median_ratio(curve(groups[(BN, lr)], metric), curve(groups[(STANDARD, lr)], metric))
            if not k:
                outcomes.append(None)
                parts.append(f"{name} lr {fmt_g(lr)}: no common measured steps")
                continue
            outcomes.append(ratio < LOWER_MAX_RATIO)
            parts.append(f"{name} lr {fmt_g(lr)}: BN / standard {metric} median {fmt(ratio)} ({k} steps)")
        return outcomes, parts
    return _each(R, c, CURVATURE, compare)


@claim("B3", "BN lowers the top Hessian eigenvalue of the function SGD descends", figure="curvature",
       experiments=CURVATURE, beyond=True,
       paper="the paper's smoothness argument read at second order (§3-4: BN makes the landscape smoother); "
             "train mode = the function with batch statistics",
       rule=f"per experiment: BN's / standard's hess_lmax_train, median over common steps, < {LOWER_MAX_RATIO:g}")
def claim_b3(R: Results, c: Claim) -> ClaimResult:
    return _lower(R, c, "hess_lmax_train")


@claim("B4", "Mini-batch SGD without BN holds its batch sharpness at 2/lr", figure="curvature",
       experiments=("curvature_cnn",), beyond=True,
       paper="Andreyev & Beneventano 2024 (edge of stochastic stability): under mini-batch SGD the batch "
             "sharpness g'Hg/|g|^2, not lambda_max, stabilises at 2/η",
       rule=f"standard CNN: the median of batch_sharpness x lr / 2 over the second half lies in "
            f"[{EOS_BAND[0]:g}, {EOS_BAND[1]:g}]")
def claim_b4(R: Results, c: Claim) -> ClaimResult:
    return _edge(R, c, "curvature_cnn", "batch_sharpness")


@claim("B5", "BN lowers beta_limit, the eta -> 0 limit of the paper's effective beta", figure="curvature",
       experiments=CURVATURE, beyond=True,
       paper="the paper's Fig. 4c (effective β smaller with BN) in the limit of a small step: |Hg| / |g|",
       rule=f"per experiment: BN's / standard's beta_limit, median over common steps, < {LOWER_MAX_RATIO:g}")
def claim_b5(R: Results, c: Claim) -> ClaimResult:
    return _lower(R, c, "beta_limit")


# ------------------------------------------------------------------------------------------- theory
def _theory_rows(R: Results, c: Claim) -> tuple[list[Run], Notes, Optional[ClaimResult]]:
    groups, notes, missing = _need(R, c, "theory")
    runs = [r for (norm, _), rs in groups.items() for r in rs]
    return runs, notes, missing


def _values(runs: list[Run], fn: Callable[[Run, float], pd.Series], metric: str) -> np.ndarray:
    out = [fn(r, layer).to_numpy() for r in runs for layer in r.layers(metric)]
    return np.concatenate(out) if out else np.array([])


@claim("B6", "Theorem 4.1 with the proof's 1/m is an equality", figure="theory", experiments=("theory",),
       beyond=True,
       paper="Theorem 4.1's proof (eqs. 5-9): |dL/dy|^2 = (γ²/σ²)(|g|² - <1,g>²/m - <g,ŷ>²/m), up to BN's ε",
       rule=f"|lhs / rhs - 1| <= {THM41_EQ_TOL:g} at every BN layer and measured step")
def claim_b6(R: Results, c: Claim) -> ClaimResult:
    runs, notes, missing = _theory_rows(R, c)
    if missing:
        return missing
    err = _values(runs, lambda r, l: (r.series("thm41_lhs", l) / r.series("thm41_rhs", l) - 1).abs().dropna(),
                  "thm41_lhs")
    if not err.size:
        return c.result(INCONCLUSIVE, ["theory: no thm41 rows"], notes)
    ok = float(err.max()) <= THM41_EQ_TOL
    return c.result(combine([ok]), [f"max |lhs/rhs - 1| {fmt(float(err.max()))}, median {fmt(float(np.median(err)))} "
                                    f"over {err.size} (layer, step) values"], notes)


@claim("B7", "Theorem 4.1 as printed (1/sqrt m on the last term) holds", figure="theory", experiments=("theory",),
       beyond=True, paper="Theorem 4.1 as printed (arXiv v3): |dL/dy|² <= (γ²/σ²)(|g|² - <1,g>²/m - <g,ŷ>²/√m)",
       rule="lhs <= rhs_printed at every BN layer and measured step")
def claim_b7(R: Results, c: Claim) -> ClaimResult:
    runs, notes, missing = _theory_rows(R, c)
    if missing:
        return missing
    ratio = _values(runs, lambda r, l: (r.series("thm41_lhs", l) / r.series("thm41_rhs_printed", l)).dropna(),
                    "thm41_lhs")
    if not ratio.size:
        return c.result(INCONCLUSIVE, ["theory: no thm41 rows"], notes)
    bad = ratio > 1
    return c.result(combine([not bad.any()]),
                    [f"lhs > rhs_printed at {int(bad.sum())} of {ratio.size} (layer, step) values (lhs / rhs_printed "
                     f"up to {fmt(float(ratio.max()))}): the printed 1/sqrt(m) subtracts more than the proof's 1/m "
                     f"whenever <g, y_hat> != 0"], notes)


@claim("B8", "BN makes the weights it follows scale-invariant: <w, g> = 0 and SGD grows |w|² by lr²|g|²",
       figure="theory", experiments=("theory",), beyond=True,
       paper="van Laarhoven 2017; Arora et al. 2019: L(cw) = L(w) gives <w, ∇L> = 0, so plain SGD grows |w|",
       rule=f"|cos(w, g)| <= {SI_COS_MAX:g} everywhere, and the median |measured / predicted - 1| of the norm growth "
            f"<= {SI_GROWTH_TOL:g}")
def claim_b8(R: Results, c: Claim) -> ClaimResult:
    runs, notes, missing = _theory_rows(R, c)
    if missing:
        return missing
    cos = _values(runs, lambda r, l: r.series("si_cos", l).abs().dropna(), "si_cos")
    growth = _values(runs, lambda r, l: (r.series("si_dnorm2", l) / r.series("si_dnorm2_pred", l) - 1).abs().dropna(),
                     "si_cos")
    if not cos.size or not growth.size:
        return c.result(INCONCLUSIVE, ["theory: no si_* rows"], notes)
    ok = float(cos.max()) <= SI_COS_MAX and float(np.median(growth)) <= SI_GROWTH_TOL
    return c.result(combine([ok]), [f"max |cos(w, g)| {fmt(float(cos.max()))}; |measured/predicted - 1| of the norm "
                                    f"growth: median {fmt(float(np.median(growth)))}, max {fmt(float(growth.max()))} "
                                    f"over {growth.size} (layer, step) values"], notes)


@claim("B9", "The effective lr lr/|w|² tunes itself: a 5x larger lr ends with a smaller effective-lr ratio",
       figure="theory", experiments=("theory",), beyond=True,
       paper="Arora et al. 2019: with BN, |w| grows faster at a larger lr, so the effective lr η/|w|² adapts "
             "and the choice of η matters less",
       rule=f"at the last measured step, the median over layers of eff_lr(larger lr) / eff_lr(smaller lr) is "
            f"< {EFF_LR_MARGIN:g} x the ratio of the lrs")
def claim_b9(R: Results, c: Claim) -> ClaimResult:
    groups, notes, missing = _need(R, c, "theory")
    if missing:
        return missing
    lrs = sorted({lr for (norm, lr) in groups if norm == BN})
    if len(lrs) < 2:
        return c.result(INCONCLUSIVE, ["theory: BN at one lr only"], notes)
    lo, hi = groups[(BN, lrs[0])], groups[(BN, lrs[-1])]
    ratios = []
    for layer in _layers(lo, "si_eff_lr"):
        a, b = curve(hi, "si_eff_lr", layer), curve(lo, "si_eff_lr", layer)
        if not a.empty and not b.empty:
            ratios.append(float(a.iloc[-1] / b.iloc[-1]))
    if not ratios:
        return c.result(INCONCLUSIVE, ["theory: no si_eff_lr rows"], notes)
    nominal = lrs[-1] / lrs[0]
    med = float(np.median(ratios))
    return c.result(combine([med < EFF_LR_MARGIN * nominal]),
                    [f"lr {fmt_g(lrs[-1])} vs {fmt_g(lrs[0])} (x{fmt_g(nominal)}): effective-lr ratio at the end, "
                     f"median over {len(ratios)} layers {fmt(med)} (range {fmt(min(ratios))}-{fmt(max(ratios))})"], notes)


# ------------------------------------------------------------------------------------------- signal
SIGNAL = ("signal_cnn", "signal_dln")


def _deepest(R: Results, name: str, groups: dict) -> tuple[str, dict]:
    """The runs of the deepest network of the experiment per norm (the DLN has one depth)."""
    if name == "signal_dln":
        return "DLN-25", {norm: rs for (norm, _), rs in groups.items()}
    depth = lambda r: R.runset.config(r).get("model.depth", 0) or 0
    top = max(depth(r) for rs in groups.values() for r in rs)
    return f"VGG-{top}", {norm: [r for r in rs if depth(r) == top] for (norm, _), rs in groups.items()}


def _at_init(runs: list[Run], metric: str) -> pd.Series:
    """``metric`` per layer at the first measured step, mean over the runs."""
    parts = []
    for r in runs:
        df = r.metrics[(r.metrics["metric"] == metric) & r.metrics["layer"].notna()]
        if not df.empty:
            parts.append(df[df["step"] == df["step"].min()].groupby("layer")["value"].mean())
    return pd.concat(parts, axis=1).mean(axis=1).sort_index() if parts else pd.Series(dtype=float)


def _signal(R: Results, c: Claim, judge: Callable[[pd.Series, pd.Series], tuple[Optional[bool], str]],
            metric: str) -> ClaimResult:
    def compare(name: str, groups: dict) -> tuple[list, list]:
        net, by_norm = _deepest(R, name, groups)
        sd, bn = _at_init(by_norm.get(STANDARD, []), metric), _at_init(by_norm.get(BN, []), metric)
        if sd.empty or bn.empty:
            return [None], [f"{net}: no {metric} for both standard and BN"]
        ok, text = judge(sd, bn)
        return [ok], [f"{net}: {text}"]
    return _each(R, c, SIGNAL, compare)


@claim("B10", "At initialisation BN keeps |dL/dW| from exploding or vanishing across depth", figure="signal",
       experiments=SIGNAL, beyond=True,
       paper="Bjorck et al. 2018: without BN gradients explode or vanish with depth, BN keeps them in range "
             "(Yang et al. 2019 predict the opposite at init: BN's gradients explode with depth)",
       rule=f"deepest network: max / min of |dL/dW| over its layers with BN < standard's x {SPREAD_MARGIN:g}")
def claim_b10(R: Results, c: Claim) -> ClaimResult:
    def judge(sd, bn):
        s, b = float(sd.max() / sd.min()), float(bn.max() / bn.min())
        return b < SPREAD_MARGIN * s, (f"max/min of |dL/dW| over {len(bn)} layers: BN {fmt(b)} vs standard {fmt(s)}; "
                                       f"first/last layer BN {fmt(float(bn.iloc[0] / bn.iloc[-1]))}, standard "
                                       f"{fmt(float(sd.iloc[0] / sd.iloc[-1]))}")
    return _signal(R, c, judge, "sig_grad_norm")


@claim("B11", "At initialisation BN keeps the batch's representations from collapsing in rank with depth",
       figure="signal", experiments=SIGNAL, beyond=True,
       paper="Daneshmand et al. 2020: without BN the rank of a batch's representations collapses with depth; "
             "BN keeps it high",
       rule=f"deepest network: BN's effective rank at its last layer > standard's x {RANK_MARGIN:g}")
def claim_b11(R: Results, c: Claim) -> ClaimResult:
    def judge(sd, bn):
        return float(bn.iloc[-1]) > RANK_MARGIN * float(sd.iloc[-1]), (
            f"effective rank at layer {fmt_g(bn.index[-1])}: BN {fmt(float(bn.iloc[-1]))} vs standard "
            f"{fmt(float(sd.iloc[-1]))} (layer 1: BN {fmt(float(bn.iloc[0]))}, standard {fmt(float(sd.iloc[0]))})")
    return _signal(R, c, judge, "sig_rank")
