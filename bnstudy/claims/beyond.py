"""Claims beyond the paper (B1-B11): what later work says about curvature, the paper's own Theorem 4.1,
scale invariance and signal at initialisation, judged on ``make curvature``, ``make theory`` and
``make signal`` runs. Registered with ``group="beyond"``: REPORT.md shows them in their own section, only when
their runs exist, and they do not count among the paper's claims.

Each check sees one seed's runs (``bnstudy.claims.verdicts.judge``) and returns one :class:`Part` per comparison.
"The second half" is the measured steps at or after half the planned steps. λ_max (``hess_lmax_*``) comes
from Lanczos, whose Ritz value is a lower bound on λ_max: a step counts only where Lanczos converged
(:data:`LMAX_TOL`); the others are left out and noted. A run that may be too short to reach the regime a
claim describes is left out (inconclusive), not counted against the claim. Every threshold is a module
constant whose docstring says why (REPORT.md cites it).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import pandas as pd

from bnstudy.claims.base import (BN, PARAPHRASE, STANDARD, Claim, ClaimResult, Notes, Part, Results, claim, need,
                                 one)
from bnstudy.claims.curves import MIN_COMMON_STEPS, SMOOTH_MIN_RATIO, compare
from bnstudy.claims.liveness import LiveRun
from bnstudy.claims.text import fmt_g
from bnstudy.measures.curvature import BATCH_SHARPNESS, BETA_LIMIT, HESS_LMAX, HESS_RESIDUAL
from bnstudy.measures.scale_invariance import SI_COS, SI_DNORM2, SI_DNORM2_PRED, SI_EFF_LR, SI_WNORM
from bnstudy.measures.signal import SIG_GRAD_NORM, SIG_RANK
from bnstudy.measures.theorem41 import THM41_LHS, THM41_RHS, THM41_RHS_PRINTED

LMAX_TOL = 0.01
"""B1-B3: a step's λ_max counts only when Lanczos converged: its logged residual bound (``hess_residual_*``,
||Hu - θu|| for the top Ritz pair) is at most this times λ, so the Ritz value is within 1% of an eigenvalue:
ten times finer than the narrowest margin a rule reads (B1's band, 10% below 2/η)."""

EOS_BAND = (0.9, 1.2)
"""B1, B4: "right at, or just above" 2/η (Cohen et al.'s Fig. 1) = the mean of value x lr / 2 over the second
half in [0.9, 1.2]: no more than 10% below (the oscillation about the threshold) and at most 20% above ("just")."""

EOS_SE = 2.0
"""B1, B4: a mean within this many standard errors (sd / sqrt(n) over the second half's steps) of a band edge is
not placed on either side of it: the seed is left out (one spiky step must not decide)."""

MODE_GAP_MIN = 2.0
"""B2: the outliers "almost absent" with batch statistics = BN's λ_max in train mode at most half its λ_max with
running statistics at the same weights (median over the steps of eval / train >= 2; without batch statistics
the two are one function and the ratio is exactly 1)."""

THM41_EQ_TOL = 1e-3
"""B6, B7: "equal up to BN's ε" = |lhs / rhs - 1| <= 1e-3: ε = 1e-5 against a variance σ² >= 0.01 moves the
ratio by at most 1e-3, float32 sums by far less. B7 counts a violation only beyond the same tolerance."""

SI_COS_MAX = 1e-3
"""B8: <w, g> = 0 = |cos(w, g)| <= 1e-3 at every layer and step: float32 dot products over 10^3-10^5 entries
round at ~1e-5, and a weight that is not scale-invariant has |cos| of order 0.1."""

SI_GROWTH_TOL = 1e-2
"""B8: plain SGD grows |w|² by lr²|g|² = the median over layers and steps of |measured / predicted - 1| <= 1e-2
(the median: the measured growth is a difference of two float32 squared norms, which cancels where a step is
small; 1% is far above the median's rounding and far below a missing or extra term)."""

LR_RATIO = 5.0
"""B9: the theory experiment runs BN at two lrs this far apart (0.1 and 0.5)."""

ADAPTED_RATIO = math.sqrt(LR_RATIO)
"""B9: the effective-lr ratio of the two lrs "tunes itself" = it ends at most sqrt(5) = 2.24: at least half-way
(in log) from 5, where it starts (the same initial weights), to about 1, where the suite's derivation from
Arora et al.'s Lemma 2.4 says it tends (plain SGD, no weight decay: |w_t|^4 ~ |w_0|^4 + 2η²Σ|∇L(ŵ_s)|², so
lr / |w_t|² -> 1 / sqrt(2Σ|∇L(ŵ_s)|²) whatever the lr, when the gradient histories are alike)."""

ADAPT_MIN_GROWTH = (1 + 1 / LR_RATIO) ** 0.25
"""B9: a layer is judged only when the smaller lr's run has grown its |w| enough for the derivation to predict a
ratio <= sqrt(5) by then (gradient histories alike): with A = |w_T|^4 / |w_0|^4 - 1 at the smaller lr (25A at the
larger) the ratio is 5·sqrt((1 + A) / (1 + 25A)), <= sqrt(5) when A >= 1/5, i.e. |w_T| >= 1.2^(1/4) |w_0| (4.7%
growth). Layers that grew less: too short a run to judge."""

EXPLODE_MIN = 2.0
"""B10: BN's gradients "explode" with depth = |dL/dW| at the first layer at least twice that at the last (a
doubling over the network, from the output back to the input), and above the standard network's ratio ("batch
normalization itself is the cause")."""

RANK_COLLAPSE = 0.5
"""B11: the standard network's rank "collapses" = its effective rank at the last layer at most half that at
the first; a network where it does not is too shallow to test the claim (left out)."""

RANK_KEEP = 2.0
"""B11: BN "avoids rank collapse" = its effective rank at the last layer at least twice the standard network's
(a factor the size of the collapse it avoids)."""

EPS = 1e-9
"""Relative slack of every comparison with a threshold: a value at the border (a ratio of 2 computed as
2.0000000000000004) counts as at it."""

CURVATURE = ("curvature_cnn", "curvature_dln")
SIGNAL = ("signal_cnn", "signal_dln")


# ------------------------------------------------------------------------------------------- helpers
def converged(r: LiveRun, mode: str, notes: Optional[Notes] = None) -> pd.Series:
    """λ_max of ``mode`` at the steps where Lanczos converged (residual <= LMAX_TOL x |λ|; no residual logged:
    not converged); the steps left out are noted."""
    lam = r.series(HESS_LMAX[mode]).dropna()
    res = r.series(HESS_RESIDUAL[mode]).reindex(lam.index)
    ok = (res <= LMAX_TOL * lam.abs()).to_numpy()
    if notes is not None and (~ok).any():
        notes.add(f"{r.label}: λ_max ({mode} mode) not converged at {int((~ok).sum())}/{len(lam)} measured steps "
                  f"(Lanczos residual > {LMAX_TOL:g}·λ, or not logged) - left out")
    return lam[ok]


def second_half(s: pd.Series, r: LiveRun) -> pd.Series:
    """The measured steps at or after half the planned steps."""
    return s[s.index >= r.steps / 2]


# ---------------------------------------------------------------------------------------- curvature
def edge_part(label: str, r: LiveRun, series: pd.Series, lr: float, what: str) -> Part:
    """B1/B4 on one run: ``series`` x lr / 2 over the second half, its mean against :data:`EOS_BAND` (decided
    only when the mean is EOS_SE standard errors from both edges); left out when the run never rose to the
    band (too short to reach the edge of stability) or has fewer than MIN_COMMON_STEPS steps in its second half."""
    x = series * lr / 2
    half = second_half(x, r)
    values = [(f"mean {what} x lr/2, second half", float(half.mean()) if len(half) else math.nan, "g"),
              ("SE", float(half.std(ddof=1) / math.sqrt(len(half))) if len(half) > 1 else math.nan, "g"),
              ("median", float(half.median()) if len(half) else math.nan, "g"),
              ("max over the run", float(x.max()) if len(x) else math.nan, "g"),
              ("steps", float(len(half)), "g")]
    lo, hi = EOS_BAND
    if len(half) < MIN_COMMON_STEPS:
        return Part(label, values, None, note=f"{len(half)} step(s) in the second half (need {MIN_COMMON_STEPS})")
    if float(x.max()) < lo * (1 - EPS):
        return Part(label, values, None, note=f"never rose to {lo:g}·2/lr: the run may be too short to reach the "
                                              f"edge of stability")
    mean, se = values[0][1], values[1][1]
    if EOS_SE * se > EPS * abs(mean) and min(abs(mean - lo), abs(mean - hi)) < EOS_SE * se:
        return Part(label, values, None, note=f"the mean is within {EOS_SE:g} SE of a band edge: not placed")
    return Part(label, values, lo * (1 - EPS) <= mean <= hi * (1 + EPS), "at the edge", "not at the edge")


def _edge(R: Results, c: Claim, name: str, value: Callable[[LiveRun, Notes], pd.Series], what: str) -> ClaimResult:
    ran, notes, missing = need(R, c, (name,))
    if missing:
        return missing
    parts = []
    for (norm, lr), runs in R.groups(name).items():
        if norm == STANDARD:
            r = one(runs, lambda r: r)
            parts.append(edge_part(f"{name} standard lr {fmt_g(lr)}", r, value(r, notes), lr, what))
    if not parts:
        return c.not_run(f"{name}: no standard run", notes)
    return c.result(parts, notes)


EDGE_RULE = (f"the mean of the value x lr / 2 over the second half of the run lies in [{EOS_BAND[0]:g}, "
             f"{EOS_BAND[1]:g}] (\"right at, or just above\" 2/lr: 10% below, 20% above); decided only when the "
             f"mean is {EOS_SE:g} standard errors from both edges; a run whose value never rose to "
             f"{EOS_BAND[0]:g}·2/lr may be too short to reach the edge of stability and is left out (inconclusive)")


@claim("B1", "Without BN, full-batch GD drives λ_max to 2/lr and keeps it there", figure="curvature",
       experiments=("curvature_dln",), group="beyond",
       paper="Cohen et al. 2021, abstract: \"the maximum eigenvalue of the training loss Hessian hovers just above "
             "the numerical value 2/(step size)\"; Fig. 1 caption: \"the sharpness rises to 2/η (marked by the "
             "horizontal dashed line of the appropriate color) and then hovers right at, or just above, this "
             "value\". The DLN is trained by full-batch GD",
       rule=f"standard DLN, λ_max in train mode (hess_lmax_train) at the steps where Lanczos converged (residual "
            f"<= {LMAX_TOL:g}·λ: within 1% of an eigenvalue): {EDGE_RULE}")
def claim_b1(R: Results, c: Claim) -> ClaimResult:
    return _edge(R, c, "curvature_dln", lambda r, notes: converged(r, "train", notes), "λ_max")


@claim("B2", "With BN, λ_max of the function SGD descends (batch statistics) is far below λ_max of the same "
       "weights with running statistics", figure="curvature", experiments=CURVATURE, group="beyond",
       paper="Ghorbani et al. 2019, abstract: \"in non-batch normalized networks, we observe the rapid appearance of "
             "large isolated eigenvalues in the spectrum, along with a surprising concentration of the gradient in "
             "the corresponding eigenspaces. In batch normalized networks, these two effects are almost absent.\" "
             "Their test of the cause trains with population statistics in place of the mini-batch's (per a "
             "summary of the paper); here the same weights are evaluated in both modes: an adaptation, not their "
             "experiment",
       rule=f"each BN run: the median over the steps where Lanczos converged in both modes (residual <= "
            f"{LMAX_TOL:g}·λ; >= {MIN_COMMON_STEPS} steps) of hess_lmax_eval / hess_lmax_train is >= "
            f"{MODE_GAP_MIN:g} (\"almost absent\": the top eigenvalue at least halved; without batch statistics the "
            f"modes are one function, ratio 1, shown), in each experiment")
def claim_b2(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = need(R, c, CURVATURE)
    if missing:
        return missing
    parts = []
    for name in ran:
        for (norm, lr), runs in R.groups(name).items():
            r = one(runs, lambda r: r)
            ev, tr = converged(r, "eval", notes), converged(r, "train", notes)
            common = ev.index.intersection(tr.index)
            ratio = float(np.median(ev[common] / tr[common])) if len(common) else math.nan
            values = {"median eval / train": ratio, "converged steps": float(len(common))}
            label = f"{name} {'BN' if norm == BN else norm} lr {fmt_g(lr)}"
            if norm != BN:
                parts.append(Part(label, values, info=True, kinds={k: "g" for k in values}))
                continue
            ok = None if len(common) < MIN_COMMON_STEPS else ratio >= MODE_GAP_MIN * (1 - EPS)
            parts.append(Part(label, values, ok, "far below", "not far below", kinds={k: "g" for k in values},
                              note="" if ok is not None else f"{len(common)} converged step(s) in both modes "
                                                             f"(need {MIN_COMMON_STEPS})"))
    return c.result(parts, notes)


def lower_with_bn(R: Results, c: Claim, metric: str, value: Callable[[LiveRun, Notes], pd.Series]) -> ClaimResult:
    """B3/B5: standard's median / BN's median of ``value`` over the steps where both are live, per experiment and
    lr (``curves.compare``: the same comparison, margin and minimum steps as claims 5a-c)."""
    ran, notes, missing = need(R, c, CURVATURE)
    if missing:
        return missing
    parts = []
    for name in ran:
        groups = R.groups(name)
        for lr in sorted({lr for (n, lr) in groups if n == STANDARD and (BN, lr) in groups}):
            label = f"{name} lr {fmt_g(lr)} {metric}"
            cmp = compare(label, groups[(STANDARD, lr)], groups[(BN, lr)], lambda r: value(r, notes), notes,
                          "curvature")
            ok = cmp.ratio >= SMOOTH_MIN_RATIO * (1 - EPS) if cmp.conclusive else None
            parts.append(Part(label, {"median standard": cmp.med_std, "BN": cmp.med_bn, "standard/BN": cmp.ratio,
                                      "steps": float(cmp.n_common)}, ok, "lower with BN", "not lower with BN",
                              kinds={"median standard": "g", "BN": "g", "standard/BN": "x", "steps": "g"},
                              lenient=None if ok is None else cmp.ratio > 1))
    return c.result(parts, notes)


@claim("B3", "BN lowers λ_max of the function SGD descends (train mode)", figure="curvature",
       experiments=CURVATURE, group="beyond", quote=PARAPHRASE,
       paper="the paper's Theorem 4.2 bounds the loss Hessian's quadratic form along the gradient with respect to a "
             "layer's activations (curvature along the gradient, in activation space), lowered with BN; no theorem "
             "bounds λ_max. λ_max of the weight-space Hessian in train mode is the suite's extension",
       rule=f"per experiment and lr: standard's median / BN's median of hess_lmax_train over the steps where both "
            f"are live and Lanczos converged (residual <= {LMAX_TOL:g}·λ) >= {SMOOTH_MIN_RATIO:g} (claims 5a-c's "
            f"margin: BN's at least a fifth lower; >= {MIN_COMMON_STEPS} common steps)")
def claim_b3(R: Results, c: Claim) -> ClaimResult:
    return lower_with_bn(R, c, "λ_max (train mode)", lambda r, notes: converged(r, "train", notes))


@claim("B4", "Mini-batch SGD without BN holds its batch sharpness at 2/lr", figure="curvature",
       experiments=("curvature_cnn",), group="beyond",
       paper="Andreyev & Beneventano 2024, abstract: \"In this regime, what stabilizes at 2/η is Batch Sharpness: "
             "the expected directional curvature of mini-batch Hessians along their corresponding stochastic "
             "gradients.\"",
       rule=f"standard CNN (SGD), batch_sharpness = g'Hg/|g|² on each measured step's batch (one sample of the "
            f"expectation: the mean over steps estimates it): {EDGE_RULE}")
def claim_b4(R: Results, c: Claim) -> ClaimResult:
    return _edge(R, c, "curvature_cnn", lambda r, notes: r.series(BATCH_SHARPNESS).dropna(), "batch sharpness")


@claim("B5", "BN lowers beta_limit, the η -> 0 limit of the paper's effective β", figure="curvature",
       experiments=CURVATURE, group="beyond",
       paper="§3.1: \"In other words, the loss exhibits a significantly better “effective” β-smoothness.\" Here in "
             "the limit of a small step, |Hg| / |g| along the batch gradient (the suite's extension of Fig. 4c)",
       rule=f"per experiment and lr: standard's median / BN's median of beta_limit over the steps where both are "
            f"live >= {SMOOTH_MIN_RATIO:g} (claims 5a-c's margin: BN's at least a fifth lower; >= "
            f"{MIN_COMMON_STEPS} common steps)")
def claim_b5(R: Results, c: Claim) -> ClaimResult:
    return lower_with_bn(R, c, BETA_LIMIT, lambda r, notes: r.series(BETA_LIMIT).dropna())


# ------------------------------------------------------------------------------------------- theory
def _per_layer(r: LiveRun, metric: str, fn: Callable[[LiveRun, float], pd.Series]) -> np.ndarray:
    out = [fn(r, layer).to_numpy(dtype=float) for layer in r.layers(metric)]
    return np.concatenate(out) if out else np.array([])


def _theory(R: Results, c: Claim, judge: Callable[[LiveRun], list[Part]]) -> ClaimResult:
    ran, notes, missing = need(R, c, ("theory",))
    if missing:
        return missing
    parts = []
    for (norm, lr), runs in R.groups("theory").items():
        parts += judge(one(runs, lambda r: r))
    return c.result(parts, notes)


THEOREM_41 = ("Theorem 4.1 (the effect of BatchNorm on the Lipschitzness of the loss) bounds the squared gradient "
              "of the loss with respect to a layer's activations, |∂L/∂y|², by (γ²/σ²)(|g|² - <1,g>²/m - <g,ŷ>²/√m), "
              "g = ∂L/∂z at BN's output over its m values (the suite's reading of the statement in arXiv v3, not "
              "verified in a second copy)")


@claim("B6", "Theorem 4.1 with the proof's 1/m is an equality", figure="theory", experiments=("theory",),
       group="beyond", quote=PARAPHRASE,
       paper=THEOREM_41 + "; its proof (eqs. 5-9) gives |∂L/∂y|² = (γ²/σ²)(|g|² - <1,g>²/m - <g,ŷ>²/m), equal up to "
                          "BN's ε",
       rule=f"each lr: max over every BN layer and measured step of |lhs / rhs - 1| <= {THM41_EQ_TOL:g} (BN's ε = "
            f"1e-5 against σ² >= 0.01 moves it by at most 1e-3)")
def claim_b6(R: Results, c: Claim) -> ClaimResult:
    def judge(r: LiveRun) -> list[Part]:
        err = _per_layer(r, THM41_LHS, lambda r, L: (r.series(THM41_LHS, L) / r.series(THM41_RHS, L) - 1)
                         .abs().dropna())
        values = {"max |lhs/rhs - 1|": float(err.max()) if err.size else math.nan,
                  "median": float(np.median(err)) if err.size else math.nan, "(layer, step) values": float(err.size)}
        return [Part(f"lr {fmt_g(r.lr)}", values, float(err.max()) <= THM41_EQ_TOL * (1 + EPS) if err.size else None,
                     "equal", "not equal", kinds={k: "g" for k in values},
                     note="" if err.size else "no thm41 rows")]
    return _theory(R, c, judge)


@claim("B7", "Theorem 4.1 as printed (1/√m on the last term) holds", figure="theory", experiments=("theory",),
       group="beyond", quote=PARAPHRASE, paper=THEOREM_41,
       rule=f"each lr: lhs / rhs_printed <= 1 + {THM41_EQ_TOL:g} at every BN layer and measured step (a violation "
            f"counts beyond B6's tolerance only)")
def claim_b7(R: Results, c: Claim) -> ClaimResult:
    def judge(r: LiveRun) -> list[Part]:
        ratio = _per_layer(r, THM41_LHS, lambda r, L: (r.series(THM41_LHS, L) / r.series(THM41_RHS_PRINTED, L))
                           .dropna())
        bad = ratio > (1 + THM41_EQ_TOL) * (1 + EPS)
        values = {"violated at": float(bad.sum()), "of (layer, step) values": float(ratio.size),
                  "max lhs / rhs_printed": float(ratio.max()) if ratio.size else math.nan}
        return [Part(f"lr {fmt_g(r.lr)}", values, not bad.any() if ratio.size else None, "holds",
                     "violated (the printed 1/√m subtracts more than the proof's 1/m whenever <g, ŷ> != 0)",
                     kinds={k: "g" for k in values}, note="" if ratio.size else "no thm41 rows")]
    return _theory(R, c, judge)


@claim("B8", "BN makes the weights it follows scale-invariant: <w, g> = 0 and SGD grows |w|² by lr²|g|²",
       figure="theory", experiments=("theory",), group="beyond",
       paper="Arora et al. 2019, Lemma 2.4: \"For any scale-invariant weight w(i) in the network Φ, we have: 1. "
             "w_t(i) and ∇_{w_t(i)} F_{z_t}(θ_t) are always perpendicular; 2. ‖w_{t+1}(i)‖₂² = ‖w_t(i)‖₂² + "
             "η_{w,t}² ‖∇_{w_t(i)} F_{z_t}(θ_t)‖₂².\"",
       rule=f"each lr: max |cos(w, g)| <= {SI_COS_MAX:g} over every layer BN follows and measured step (float32 "
            f"rounds at ~1e-5), and the median |measured / predicted - 1| of the norm growth <= {SI_GROWTH_TOL:g} "
            f"(the median: a difference of two float32 squared norms cancels where a step is small)")
def claim_b8(R: Results, c: Claim) -> ClaimResult:
    def judge(r: LiveRun) -> list[Part]:
        cos = _per_layer(r, SI_COS, lambda r, L: r.series(SI_COS, L).abs().dropna())
        growth = _per_layer(r, SI_COS, lambda r, L: (r.series(SI_DNORM2, L) / r.series(SI_DNORM2_PRED, L) - 1)
                            .abs().dropna())
        g = {"max |cos(w, g)|": float(cos.max()) if cos.size else math.nan}
        n = {"median |measured/predicted - 1|": float(np.median(growth)) if growth.size else math.nan,
             "max": float(growth.max()) if growth.size else math.nan, "(layer, step) values": float(growth.size)}
        return [Part(f"lr {fmt_g(r.lr)}: <w, g> = 0", g,
                     float(cos.max()) <= SI_COS_MAX * (1 + EPS) if cos.size else None, "perpendicular",
                     "not perpendicular", kinds={k: "g" for k in g}),
                Part(f"lr {fmt_g(r.lr)}: |w|² grows by lr²|g|²", n,
                     float(np.median(growth)) <= SI_GROWTH_TOL * (1 + EPS) if growth.size else None, "as predicted",
                     "not as predicted", kinds={k: "g" for k in n})]
    return _theory(R, c, judge)


@claim("B9", "The effective lr lr/|w|² tunes itself: of two lrs 5x apart, the effective lrs end less than √5 apart",
       figure="theory", experiments=("theory",), group="beyond",
       paper="van Laarhoven 2017: \"If no regularization is used, then the norm of the weights tends to increase over "
             "time, and so the effective learning rate decreases.\" The prediction tested is the suite's derivation "
             "from Arora et al. 2019's Lemma 2.4 (plain SGD, no weight decay), not a quote: the ratio of the "
             "effective lrs of two lrs 5x apart starts at 5 and tends to about 1",
       rule=f"BN at two lrs {LR_RATIO:g}x apart, same initial weights: per layer BN follows, eff_lr(larger) / "
            f"eff_lr(smaller) at the last measured step; the median over the layers long enough is <= "
            f"√{LR_RATIO:g} = {ADAPTED_RATIO:.3g} (at least half-way, in log, from 5 to 1). A layer is long enough "
            f"when the smaller lr grew its |w| by >= {100 * (ADAPT_MIN_GROWTH - 1):.1f}% (the derivation then "
            f"predicts <= √5); none long enough: the run is too short (inconclusive)")
def claim_b9(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = need(R, c, ("theory",))
    if missing:
        return missing
    groups = R.groups("theory")
    lrs = sorted(lr for (norm, lr) in groups if norm == BN)
    if len(lrs) < 2:
        return c.result([Part("theory", {}, None, note="BN at one lr only")], notes)
    lo, hi = one(groups[(BN, lrs[0])], lambda r: r), one(groups[(BN, lrs[-1])], lambda r: r)
    parts, judged = [], []
    for layer in lo.layers(SI_EFF_LR):
        a, b = hi.series(SI_EFF_LR, layer).dropna(), lo.series(SI_EFF_LR, layer).dropna()
        w = lo.series(SI_WNORM, layer).dropna()
        if a.empty or b.empty or w.empty:
            continue
        ratio, growth = float(a.iloc[-1] / b.iloc[-1]), float(w.iloc[-1] / w.iloc[0])
        long_enough = growth >= ADAPT_MIN_GROWTH * (1 - EPS)
        if long_enough:
            judged.append(ratio)
        parts.append(Part(f"layer {fmt_g(layer)}", [("effective-lr ratio at the end", ratio, "g"),
                                                     ("at the start", float(a.iloc[0] / b.iloc[0]), "g"),
                                                     (f"|w| growth at lr {fmt_g(lrs[0])}", growth, "x")],
                          info=True, note="" if long_enough else "too short to judge"))
    if not parts:
        return c.result([Part("theory", {}, None, note="no si_eff_lr rows")], notes)
    med = float(np.median(judged)) if judged else math.nan
    parts.append(Part(f"lr {fmt_g(lrs[-1])} vs {fmt_g(lrs[0])}: median over the layers long enough",
                      [("effective-lr ratio", med, "g"), ("layers", float(len(judged)), "g")],
                      med <= ADAPTED_RATIO * (1 + EPS) if judged else None, "tuned", "not tuned",
                      note="" if judged else "no layer grew enough: the run is too short"))
    return c.result(parts, notes)


# ------------------------------------------------------------------------------------------- signal
def deepest(R: Results, name: str) -> tuple[str, dict[str, LiveRun]]:
    """The deepest network's run per norm (one seed): VGG-<depth> of signal_cnn; signal_dln has one depth."""
    runs = R.runs(name)
    if name == "signal_dln":
        return "DLN-25", {r.norm: r for r in runs}
    depth = lambda r: R.runset.config(r).get("model.depth", 0) or 0
    top = max(depth(r) for r in runs)
    return f"VGG-{top}", {r.norm: r for r in runs if depth(r) == top}


def _signal(R: Results, c: Claim, metric: str, judge: Callable[[str, pd.Series, pd.Series], list[Part]]) -> ClaimResult:
    ran, notes, missing = need(R, c, SIGNAL)
    if missing:
        return missing
    parts = []
    for name in ran:
        net, by_norm = deepest(R, name)
        init = lambda norm: by_norm[norm].at_init(metric) if by_norm.get(norm) else pd.Series(dtype=float)
        sd, bn = init(STANDARD), init(BN)
        if sd.empty or bn.empty:
            parts.append(Part(net, {}, None, note=f"no {metric} for both standard and BN"))
            continue
        parts += judge(net, sd, bn)
    return c.result(parts, notes)


@claim("B10", "At initialisation BN's gradients explode with depth: |dL/dW| grows from the last layer to the first",
       figure="signal", experiments=SIGNAL, group="beyond",
       paper="Yang et al. 2019, abstract: \"Our theory shows that gradient signals grow exponentially in depth and "
             "that these exploding gradients cannot be eliminated by tuning the initial weight variances or by "
             "adjusting the nonlinear activation function. Indeed, batch normalization itself is the cause of "
             "gradient explosion.\"",
       rule=f"deepest network of each experiment: BN's |dL/dW| at the first layer / at the last >= {EXPLODE_MIN:g} "
            f"(\"explode\": at least doubles from the output back to the input) and above the standard network's "
            f"ratio (\"batch normalization itself is the cause\")")
def claim_b10(R: Results, c: Claim) -> ClaimResult:
    def judge(net: str, sd: pd.Series, bn: pd.Series) -> list[Part]:
        b, s = float(bn.iloc[0] / bn.iloc[-1]), float(sd.iloc[0] / sd.iloc[-1])
        per_layer = b ** (1 / max(len(bn) - 1, 1))
        values = [("first / last layer |dL/dW|, BN", b, "g"), ("per layer", per_layer, "g"), ("standard", s, "g"),
                  ("layers", float(len(bn)), "g")]
        return [Part(f"{net}: BN explodes", values, b >= EXPLODE_MIN * (1 - EPS), "explodes", "does not explode"),
                Part(f"{net}: BN's growth above standard's", [], b > s, "above", "not above")]
    return _signal(R, c, SIG_GRAD_NORM, judge)


@claim("B11", "At initialisation BN keeps the batch's representations from collapsing in rank with depth",
       figure="signal", experiments=SIGNAL, group="beyond",
       paper="Daneshmand et al. 2020, abstract: \"Given the rich literature on random matrices, it is not surprising "
             "to find that the rank of the intermediate representations in unnormalized networks collapses quickly "
             "with depth. In this work we highlight the fact that batch normalization is an effective strategy to "
             "avoid rank collapse for both linear and ReLU networks.\"",
       rule=f"deepest network of each experiment: the standard network's effective rank at the last layer is <= "
            f"{RANK_COLLAPSE:g} x its first layer's (it collapses; a network where it does not is too shallow to "
            f"test: left out) and BN's at the last layer is >= {RANK_KEEP:g} x the standard's (BN avoids it)")
def claim_b11(R: Results, c: Claim) -> ClaimResult:
    def judge(net: str, sd: pd.Series, bn: pd.Series) -> list[Part]:
        collapse = float(sd.iloc[-1] / sd.iloc[0])
        keep = float(bn.iloc[-1] / sd.iloc[-1])
        values = [("effective rank at the last layer, BN", float(bn.iloc[-1]), "g"),
                  ("standard", float(sd.iloc[-1]), "g"), ("standard's last / first", collapse, "g"),
                  ("BN / standard", keep, "g")]
        collapses = collapse <= RANK_COLLAPSE * (1 + EPS)
        return [Part(f"{net}: BN keeps the rank", values, keep >= RANK_KEEP * (1 - EPS) if collapses else None,
                     "keeps it", "does not keep it", note="" if collapses else "the standard network's rank does not collapse: "
                                                                    "too shallow to test")]
    return _signal(R, c, SIG_RANK, judge)
