"""The accuracy and loss claims (1-3, 6): final values of standard, BN and the other normalisations.

Each check sees one seed's runs (``bnstudy.claims.verdicts.judge``). Final train accuracy/loss is the mean over
the last ``FINAL_WINDOW_FRAC`` of the planned steps, final test accuracy the last eval
(``bnstudy.claims.liveness``); a diverged run counts at chance accuracy and an infinite loss.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnstudy.claims.base import (BN, STANDARD, Claim, ClaimResult, Notes, Part, Results, claim,
                                 experiment_groups, lrs_with_both, one)
from bnstudy.claims.liveness import CHANCE_MARGIN, LIVE_SMOOTH_WINDOWS, LiveRun
from bnstudy.claims.text import fmt_g
from bnstudy.train import TEST_ACC, TRAIN_ACC, TRAIN_LOSS

FASTER_TARGET_FRAC = 0.8
"""Claim 1b: the level a run must reach, as a fraction of BN's final train accuracy at that lr: far enough up
the curve that reaching it means training, not one lucky window."""

FASTER_FACTOR = 2.0
"""Claim 1b: "significantly faster" = BN reaches the level in at most 1/2 of the standard network's steps (a
factor, not a tie broken by noise)."""

DEGRADE_MARGIN = 0.05
"""Claim 2: at the largest lr the standard network ends at least 5 points (test accuracy) below both its own at
the smallest lr and BN's at the largest: BN trains over "a broader range of (and thus larger) learning rates"
when the standard network visibly loses accuracy there, not within a seed's 1-2 point spread."""

NOISY_TOL = 0.03
"""Claim 3a: the BN vs noisy-BN difference "is almost non-existent" = noisy BN's final train accuracy at most 3
points below BN's: under 5% of the way from chance (0.1) to BN's accuracy (about 0.9)."""

NOISE_GAP = 0.10
"""Claim 3b, the weaker reading shown beside it (the suite's, not the paper's): the noisy standard network ends
at least 10 points below the standard network."""

LP_TOL = 0.03
"""Claim 6a: "comparable performance to BatchNorm" = final train accuracy at most 3 points below BN's (above it
counts): the same tolerance as "almost non-existent" in 3a."""

L1_BEATS_MARGIN = 0.01
"""Claim 6b: "performs even better" = l1's DLN training loss at least 1% below BN's, as the median of the
ratio l1/BN over the run's logged steps (the paper compares loss curves): 1% is above the rounding noise of
two float32 curves, below any visible gap."""

L1_CHECKPOINTS = (0.1, 0.25, 0.5, 1.0)
"""Claim 6b: the fractions of the run at which the loss ratio l1/BN is shown."""


FINAL_TEST, FINAL_TRAIN = ("eval", TEST_ACC), ("train", TRAIN_ACC)
"""What ``_final`` reads: the last test accuracy (eval), or the train accuracy over the run's last 5%."""


def _final(runs: list[LiveRun], what: tuple[str, str]) -> float:
    kind, metric = what
    return one(runs, lambda r: r.final_eval(metric) if kind == "eval" else r.final_train(metric))


@claim("1a", "BN reaches higher accuracy than the standard network at the same lr", figure="Fig. 1",
       experiments=("fig1",),
       paper="Fig. 3 caption, of the BN networks of Figs. 1-3: \"despite performing better in terms of accuracy and "
             "loss\"",
       rule="at every lr with both: BN's final test accuracy and final train accuracy (mean of the last 5% of the "
            "run) above the standard network's; any margin (\"better\" names no size; each seed is judged alone)")
def claim_1a(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig1")
    lrs = lrs_with_both(groups, STANDARD, BN)
    if not lrs:
        return c.not_run("fig1 has no lr with both standard and BN runs", notes)
    parts = []
    for lr in lrs:
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        notes.diverged(sd + bn)
        for what, key in (("final test acc", FINAL_TEST), ("final train acc", FINAL_TRAIN)):
            b, s = _final(bn, key), _final(sd, key)
            parts.append(Part(f"lr {fmt_g(lr)}: {what}", {"BN": b, "standard": s},
                              None if math.isnan(b) or math.isnan(s) else b > s, "BN higher", "BN not higher"))
    return c.result(parts, notes)


def _steps_to(r: LiveRun, target: float) -> float:
    if math.isnan(target):
        return math.nan
    s = r.series(TRAIN_ACC).dropna()
    hit = s[s >= target]
    return float(hit.index[0]) if len(hit) else math.inf


@claim("1b", "BN trains significantly faster than the standard network at the same lr", figure="Fig. 1",
       experiments=("fig1",),
       paper="§3.1: BatchNorm \"enables us to use a broader range of (and thus larger) learning rates and, in "
             "general, makes the training significantly faster and less sensitive to hyperparameter choices\"",
       rule=f"at every lr with both: BN reaches {FASTER_TARGET_FRAC:.0%} of its final train accuracy in at most "
            f"1/{FASTER_FACTOR:g} of the standard network's steps (\"significantly\": a factor of "
            f"{FASTER_FACTOR:g}, not a tie broken by noise; never reaching it counts as infinitely many steps)")
def claim_1b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig1")
    lrs = lrs_with_both(groups, STANDARD, BN)
    if not lrs:
        return c.not_run("fig1 has no lr with both standard and BN runs", notes)
    parts = []
    for lr in lrs:
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        for r in sd + bn:
            if r.diverged:
                notes.add(f"{r.label}: diverged at step {r.step} - the steps after count at chance accuracy")
        target = FASTER_TARGET_FRAC * _final(bn, FINAL_TRAIN)
        tb, ts = one(bn, lambda r: _steps_to(r, target)), one(sd, lambda r: _steps_to(r, target))
        ok = None if math.isnan(tb) or math.isnan(ts) or math.isinf(tb) else tb * FASTER_FACTOR <= ts
        parts.append(Part(f"lr {fmt_g(lr)}", {f"steps to {FASTER_TARGET_FRAC:.0%} of BN's final train acc, BN": tb,
                                              "standard": ts}, ok, "BN faster", "BN not significantly faster",
                          kinds={f"steps to {FASTER_TARGET_FRAC:.0%} of BN's final train acc, BN": "step",
                                 "standard": "step"},
                          lenient=None if ok is None else tb < ts))
    return c.result(parts, notes)


@claim("2", "BN trains at the largest lr, where the standard network loses accuracy", figure="Fig. 1",
       experiments=("fig1",),
       paper="§3.1: BatchNorm \"enables us to use a broader range of (and thus larger) learning rates\"",
       rule=f"at the largest lr BN ends above chance + {CHANCE_MARGIN} without diverging, and the standard network's "
            f"final test accuracy is at least {DEGRADE_MARGIN:.2f} below both its own at the smallest lr and BN's at "
            f"the largest ({DEGRADE_MARGIN * 100:.0f} points: a visible loss, beyond a seed's 1-2 point spread)")
def claim_2(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig1")
    lrs = lrs_with_both(groups, STANDARD, BN)
    if len(lrs) < 2:
        return c.not_run(f"fig1 needs standard and BN at two lrs (has: {', '.join(fmt_g(x) for x in lrs) or 'none'})",
                         notes)
    lo, hi = lrs[0], lrs[-1]
    sd_lo, sd_hi, bn_hi = groups[(STANDARD, lo)], groups[(STANDARD, hi)], groups[(BN, hi)]
    notes.diverged(sd_lo + sd_hi + bn_hi)
    s_lo, s_hi = _final(sd_lo, FINAL_TEST), _final(sd_hi, FINAL_TEST)
    b_hi, b_tr = _final(bn_hi, FINAL_TEST), _final(bn_hi, FINAL_TRAIN)
    chance = bn_hi[0].chance
    if any(math.isnan(v) for v in (s_lo, s_hi, b_hi, b_tr)):
        return c.result([Part(f"lr {fmt_g(hi)}", {}, None, note="accuracy missing")], notes)
    bn_trains = b_tr > chance + CHANCE_MARGIN and not any(r.diverged for r in bn_hi)
    degrades = s_hi <= s_lo - DEGRADE_MARGIN and s_hi <= b_hi - DEGRADE_MARGIN
    return c.result([
        Part(f"BN at lr {fmt_g(hi)}", {"final train acc": b_tr}, bn_trains, "trains", "does not train",
             note=f"chance + margin {chance + CHANCE_MARGIN:.2f}"),
        Part(f"standard at lr {fmt_g(hi)}", {"final test acc": s_hi, f"standard at lr {fmt_g(lo)}": s_lo,
                                             f"BN at lr {fmt_g(hi)}": b_hi}, degrades, "loses accuracy",
             "does not lose accuracy", lenient=s_hi < s_lo and s_hi < b_hi)], notes)


@claim("3a", "Noisy BN trains better than the standard network, nearly as well as BN", figure="Fig. 2",
       experiments=("fig2",),
       paper="§2.1: the \"noisy\" BatchNorm network \"has qualitatively less stable distributions than even the "
             "standard, non-BatchNorm network, yet it still performs better in terms of training\"; its difference "
             "from BN \"is almost non-existent\" (public notes' wording of §2.1, not verified in a second source)",
       rule=f"at every lr with all three: noisy BN's final train accuracy above the standard network's (without "
            f"noise; \"performs better\", any margin) and at most {NOISY_TOL} below BN's (\"almost non-existent\": "
            f"3 points is under 5% of the way from chance to BN)")
def claim_3a(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig2")
    lrs = [lr for lr in lrs_with_both(groups, "noisy_batch", BN) if (STANDARD, lr) in groups]
    if not lrs:
        return c.not_run("fig2 has no lr with standard, BN and noisy-BN runs", notes)
    parts = []
    for lr in lrs:
        bn, nz, sd = groups[(BN, lr)], groups[("noisy_batch", lr)], groups[(STANDARD, lr)]
        notes.diverged(bn + nz + sd)
        b, z, s = (_final(g, FINAL_TRAIN) for g in (bn, nz, sd))
        missing = any(math.isnan(v) for v in (b, z, s))
        parts.append(Part(f"lr {fmt_g(lr)}: noisy BN vs standard", {"final train acc noisy BN": z, "standard": s},
                          None if missing else z > s, "noisy BN better", "noisy BN not better"))
        parts.append(Part(f"lr {fmt_g(lr)}: noisy BN vs BN", {"final train acc noisy BN": z, "BN": b},
                          None if missing else z >= b - NOISY_TOL - 1e-12, "nearly as BN",
                          f"more than {NOISY_TOL} below BN", lenient=None if missing else z > s))
    return c.result(parts, notes)


def leaves_chance(r: LiveRun) -> float:
    """The first logged step at which the run's train accuracy (rolling median over LIVE_SMOOTH_WINDOWS
    windows, as liveness) is above chance + CHANCE_MARGIN; inf if never."""
    s = r.series(TRAIN_ACC).dropna()
    if s.empty:
        return math.nan
    smooth = s.rolling(LIVE_SMOOTH_WINDOWS, center=True, min_periods=1).median()
    above = smooth[smooth > r.chance + CHANCE_MARGIN]
    return float(above.index[0]) if len(above) else math.inf


@claim("3b", "The same noise in the standard network prevents it from training entirely", figure="Fig. 2",
       experiments=("fig2",),
       paper="§2.1: \"adding the same amount of noise to the activations of the standard (non-BatchNorm) network "
             "prevents it from training entirely\"",
       rule=f"the standard network with Algorithm 1's noise ends at chance: final train accuracy <= chance + "
            f"{CHANCE_MARGIN} (\"entirely\": it never trains; {CHANCE_MARGIN * 100:.0f} points is the band an "
            f"untrained 10-class network stays in). Shown beside it, not judged: when it leaves chance, and the "
            f"suite's weaker reading, ending >= {NOISE_GAP * 100:.0f} points below the standard network")
def claim_3b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig2")
    lrs = sorted({lr for (n, lr) in groups if n == "noise"})
    if not lrs:
        return c.not_run("fig2 has no standard+noise ('noise') run", notes)
    parts = []
    for lr in lrs:
        sn = groups[("noise", lr)]
        notes.diverged(sn)
        s = _final(sn, FINAL_TRAIN)
        thr = sn[0].chance + CHANCE_MARGIN
        parts.append(Part(f"lr {fmt_g(lr)}: standard+noise", {"final train acc": s, "leaves chance at step":
                                                              one(sn, leaves_chance)},
                          None if math.isnan(s) else s <= thr, "never trains", "trains",
                          kinds={"leaves chance at step": "step"}, note=f"chance + margin {thr:.2f}"))
        if (STANDARD, lr) in groups:
            st = _final(groups[(STANDARD, lr)], FINAL_TRAIN)
            parts.append(Part(f"lr {fmt_g(lr)}: weaker reading (the suite's, not judged)",
                              {"standard minus standard+noise, final train acc": st - s},
                              None if math.isnan(st - s) else st - s >= NOISE_GAP - 1e-9,
                              f">= {NOISE_GAP * 100:.0f} points below standard", "less", info=True, kinds={}))
    return c.result(parts, notes)


@claim("6a", "lp normalisations train comparably to BN", figure="Fig. 5", experiments=("fig5_cnn",),
       paper="§3 (ℓp normalisations, Fig. 5): \"We observe that all the normalization strategies offer comparable "
             "performance to BatchNorm.\"",
       rule=f"each of l1, l2, linf ends with final train accuracy at most {LP_TOL} below BN's (above counts; "
            f"\"comparable\": the 3-point tolerance of 3a)")
def claim_6a(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig5_cnn")
    lrs = sorted({lr for (n, lr) in groups if n == BN and any((p, lr) in groups for p in ("l1", "l2", "linf"))})
    if not lrs:
        return c.not_run("fig5_cnn has no lr with BN and an lp normalisation", notes)
    parts = []
    for lr in lrs:
        bn = groups[(BN, lr)]
        notes.diverged(bn)
        b = _final(bn, FINAL_TRAIN)
        for p in ("l1", "l2", "linf"):
            if (p, lr) not in groups:
                parts.append(Part(f"lr {fmt_g(lr)} {p}", {}, None, note="not run"))
                continue
            notes.diverged(groups[(p, lr)])
            v = _final(groups[(p, lr)], FINAL_TRAIN)
            ok = None if math.isnan(v) or math.isnan(b) else v >= b - LP_TOL - 1e-12
            parts.append(Part(f"lr {fmt_g(lr)} {p}", {"final train acc": v, "BN": b}, ok, "comparable",
                              f"more than {LP_TOL} below BN"))
    return c.result(parts, notes)


def curve_ratio(a: pd.Series, b: pd.Series, planned: int) -> dict:
    """a / b of two loss curves: at L1_CHECKPOINTS of the planned steps (the last common logged step at or
    before each), and the median of log10(a / b) over all common logged steps (as a ratio, ``median``)."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    both = both[(both["a"] > 0) & (both["b"] > 0) & np.isfinite(both).all(axis=1)]
    out = {"n": len(both), "median": math.nan, "at": {}}
    if both.empty:
        return out
    out["median"] = float(10 ** np.median(np.log10(both["a"] / both["b"])))
    for f in L1_CHECKPOINTS:
        upto = both[both.index <= f * planned]
        out["at"][f] = float(upto["a"].iloc[-1] / upto["b"].iloc[-1]) if len(upto) else math.nan
    return out


def l1_parts(R: Results, name: str, notes: Notes) -> list[Part]:
    """Claim 6b's comparison per lr of a DLN experiment (one seed): l1's loss curve against BN's."""
    groups = R.groups(name)
    parts = []
    for lr in lrs_with_both(groups, "l1", BN):
        l1, bn = groups[("l1", lr)], groups[(BN, lr)]
        notes.diverged(l1 + bn, "an infinite loss")
        planned = max(r.steps for r in l1 + bn)
        row = curve_ratio(one(l1, lambda r: r.series(TRAIN_LOSS).dropna()),
                          one(bn, lambda r: r.series(TRAIN_LOSS).dropna()), planned)
        values = {f"l1/BN loss at {f:.0%}": row["at"].get(f, math.nan) for f in L1_CHECKPOINTS}
        values["median over the run"] = row["median"]
        ok = None if math.isnan(row["median"]) else row["median"] <= 1 - L1_BEATS_MARGIN
        parts.append(Part(f"lr {fmt_g(lr)}", values, ok, "l1 lower", "l1 not lower",
                          kinds={k: "g" for k in values}, lenient=None if ok is None else row["median"] < 1))
    return parts


def dln_sweep_settings(claimed: str):
    """The claim's other settings in ``make dln_sweep`` (paper scale): its runs at each lr in place of the
    claim's DLN experiment ``claimed``, labelled with the loss scale each lr amounts to."""
    def settings(R: Results) -> list[tuple[str, Results]]:
        S = sweep_results(R)
        if S is None:
            return []
        out = []
        for lr in sorted({r.lr for r in S.runs(DLN_SWEEP)}, reverse=True):
            runs = [r for r in S.runs(DLN_SWEEP) if r.lr == lr]
            out.append((f"dln_sweep lr {fmt_g(lr)} (summed loss; = ½·sum at lr {fmt_g(2 * lr)})",
                        S.using({claimed: runs})))
        return out
    return settings


DLN_SWEEP = "dln_sweep"
"""The DLN's loss-scale sweep (``make dln_sweep``, paper scale): claims 4b and 6b at each lr."""


def sweep_results(R: Results) -> Results | None:
    """The DLN sweep's runs: at this scale, or else the paper-scale ones under the same root."""
    if R.runs(DLN_SWEEP):
        return R
    if R.scale != "paper":
        P = R.other_scale("paper")
        if P.runs(DLN_SWEEP):
            return P
    return None


@claim("6b", "On the DLN, l1 normalisation trains to a lower loss than BN", figure="Fig. 5",
       experiments=("fig5_dln",),
       paper="§3 (ℓp normalisations, Fig. 5): \"In fact, for deep linear networks, ℓ1–normalization performs even "
             "better than BatchNorm.\"",
       rule=f"the paper shows loss curves, so the curves are compared: the loss ratio l1/BN at "
            f"{'/'.join(f'{f:.0%}' for f in L1_CHECKPOINTS)} of the run is shown and the median of the ratio over "
            f"every logged step decides: l1 performs better when it is <= {1 - L1_BEATS_MARGIN:g} (at least "
            f"{L1_BEATS_MARGIN:.0%} lower: above two float32 curves' rounding noise), at every lr",
       settings=dln_sweep_settings("fig5_dln"))
def claim_6b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig5_dln")
    parts = l1_parts(R, "fig5_dln", notes)
    if not parts:
        return c.not_run("fig5_dln has no lr with both l1 and BN runs", notes)
    return c.result(parts, notes)

