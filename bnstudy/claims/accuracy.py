"""The accuracy and loss claims (1-3, 6): final values of standard, BN and the other normalisations.

Final train accuracy/loss is the mean over the last ``FINAL_WINDOW_FRAC`` of the planned steps, final test
accuracy the last eval (``bnstudy.claims.liveness``); a diverged run counts at chance accuracy and an
infinite loss. A group's value is the mean over its seeds (``n`` is reported).
"""

from __future__ import annotations

import math

import numpy as np

from bnstudy.claims.base import (BN, FAILS, HOLDS, INCONCLUSIVE, STANDARD, Claim, ClaimResult, Results, claim,
                                 combine, experiment_groups, lrs_with_both, seed_mean)
from bnstudy.claims.liveness import CHANCE_MARGIN, Run
from bnstudy.claims.text import fmt, fmt_g, fmt_step


FASTER_TARGET_FRAC = 0.8
"""Claim 1b: 'faster' = fewer steps to reach this fraction of BN's final train accuracy (at that lr)."""

DEGRADE_MARGIN = 0.01
"""Claim 2: standard at the high lr must be at least this much (accuracy) below both standard at the low lr
and BN at the high lr."""

NOISY_TOL = 0.03
"""Claim 3a: noisy BN's final train accuracy must be >= BN's minus this (3 points)."""

NOISE_GAP = 0.10
"""Claims 3a/3b: 'far above/below' = at least this much final train accuracy (10 points)."""


LP_TOL = 0.03
"""Claim 6a: an lp normalisation 'matches' BN when its final train accuracy >= BN's minus this (3 points)."""

L1_BEATS_MARGIN = 0.01
"""Claim 6b: l1 'beats' BN when its final DLN train loss is at least this fraction (1%) below BN's."""


@claim("1a", "BN reaches higher accuracy than standard at the same lr", figure="Fig. 1", experiments=("fig1",),
       paper="BN ... reaches higher accuracy at the same lr")
def claim_1a(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig1")
    lrs = lrs_with_both(groups, STANDARD, BN)
    if not lrs:
        return c.not_run("fig1 has no lr with both standard and BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        notes.diverged(sd + bn)
        bt, nb = seed_mean(bn, lambda r: r.final_eval("test_acc"))
        st, ns = seed_mean(sd, lambda r: r.final_eval("test_acc"))
        ba, _ = seed_mean(bn, lambda r: r.final_train("train_acc"))
        sa, _ = seed_mean(sd, lambda r: r.final_train("train_acc"))
        if any(math.isnan(v) for v in (bt, st, ba, sa)):
            outcomes.append(None)
            parts.append(f"lr {fmt_g(lr)}: accuracy missing (test BN {fmt(bt)} / std {fmt(st)}, "
                         f"train BN {fmt(ba)} / std {fmt(sa)})")
            continue
        ok = bt > st and ba > sa
        outcomes.append(ok)
        parts.append(f"lr {fmt_g(lr)}: final test acc BN {fmt(bt)} vs std {fmt(st)}, final train acc BN {fmt(ba)} "
                     f"vs std {fmt(sa)} (n={nb}/{ns}) -> {'BN higher' if ok else 'BN not higher on both'}")
    return c.result(combine(outcomes), parts, notes)


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


@claim("1b", "BN trains faster than standard at the same lr", figure="Fig. 1", experiments=("fig1",),
       paper="BN trains faster ... at the same lr")
def claim_1b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig1")
    lrs = lrs_with_both(groups, STANDARD, BN)
    if not lrs:
        return c.not_run("fig1 has no lr with both standard and BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        sd, bn = groups[(STANDARD, lr)], groups[(BN, lr)]
        for r in sd + bn:
            if r.diverged:
                notes.add(f"{r.label}: diverged at step {r.step} - the steps after count at chance accuracy")
        final_bn, _ = seed_mean(bn, lambda r: r.final_train("train_acc"))
        target = FASTER_TARGET_FRAC * final_bn
        tb, nb = seed_mean(bn, lambda r: _steps_to(r, target))
        ts, ns = seed_mean(sd, lambda r: _steps_to(r, target))
        ab, _ = seed_mean(bn, _auc)
        as_, _ = seed_mean(sd, _auc)
        if math.isnan(tb) or math.isnan(ts):
            outcomes.append(None)
            parts.append(f"lr {fmt_g(lr)}: no train accuracy logged")
            continue
        ok = tb < ts or (tb == ts and ab > as_)
        outcomes.append(ok)
        parts.append(f"lr {fmt_g(lr)}: {FASTER_TARGET_FRAC:.0%} of BN's final train acc ({fmt(target)}) reached at "
                     f"step {fmt_step(tb)} (BN) vs {fmt_step(ts)} (std); mean train acc over the run "
                     f"BN {fmt(ab)} vs std {fmt(as_)} (n={nb}/{ns}) -> {'BN faster' if ok else 'BN not faster'}")
    return c.result(combine(outcomes), parts, notes)


@claim("2", "BN trains at lr 0.5 where standard training degrades", figure="Fig. 1", experiments=("fig1",),
       paper="BN trains at lr 0.5 where standard training degrades")
def claim_2(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig1")
    lrs = lrs_with_both(groups, STANDARD, BN)
    if len(lrs) < 2:
        return c.not_run(f"fig1 needs standard and BN at two lrs (has: "
                                        f"{', '.join(fmt_g(x) for x in lrs) or 'none'})", notes)
    lo, hi = lrs[0], lrs[-1]
    sd_lo, sd_hi, bn_hi = groups[(STANDARD, lo)], groups[(STANDARD, hi)], groups[(BN, hi)]
    notes.diverged(sd_lo + sd_hi + bn_hi)
    s_lo, _ = seed_mean(sd_lo, lambda r: r.final_eval("test_acc"))
    s_hi, ns = seed_mean(sd_hi, lambda r: r.final_eval("test_acc"))
    b_hi, nb = seed_mean(bn_hi, lambda r: r.final_eval("test_acc"))
    b_tr, _ = seed_mean(bn_hi, lambda r: r.final_train("train_acc"))
    chance = bn_hi[0].chance
    if any(math.isnan(v) for v in (s_lo, s_hi, b_hi, b_tr)):
        return c.result(INCONCLUSIVE, [f"accuracy missing (std lr {fmt_g(lo)} {fmt(s_lo)}, std lr {fmt_g(hi)} "
                                       f"{fmt(s_hi)}, BN lr {fmt_g(hi)} {fmt(b_hi)})"], notes)
    bn_trains = b_tr > chance + CHANCE_MARGIN and not any(r.diverged for r in bn_hi)
    degrades = s_hi < s_lo - DEGRADE_MARGIN and s_hi < b_hi - DEGRADE_MARGIN
    n_div = sum(r.diverged for r in sd_hi)
    parts = [f"BN at lr {fmt_g(hi)}: final train acc {fmt(b_tr)}, test acc {fmt(b_hi)} (n={nb}) -> "
             f"{'trains' if bn_trains else 'does not train'} (chance+margin {fmt(chance + CHANCE_MARGIN)})",
             f"std test acc at lr {fmt_g(hi)} {fmt(s_hi)} vs std at lr {fmt_g(lo)} {fmt(s_lo)} and BN at lr "
             f"{fmt_g(hi)} "
             f"{fmt(b_hi)} (n={ns}{f', {n_div} diverged' if n_div else ''}; margin {DEGRADE_MARGIN}) -> "
             f"{'standard degrades' if degrades else 'standard does not degrade'}"]
    return c.result(HOLDS if bn_trains and degrades else FAILS, parts, notes)


@claim("3a", "Noisy BN nearly matches BN (and is far above the noisy standard network)", figure="Fig. 2",
       experiments=("fig2",),
       paper="Noisy BN nearly matches BN")
def claim_3a(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig2")
    lrs = lrs_with_both(groups, "noisy_batch", BN)
    if not lrs:
        return c.not_run("fig2 has no lr with both BN and noisy-BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        bn, nz = groups[(BN, lr)], groups[("noisy_batch", lr)]
        notes.diverged(bn + nz)
        b, nb = seed_mean(bn, lambda r: r.final_train("train_acc"))
        z, nn = seed_mean(nz, lambda r: r.final_train("train_acc"))
        if math.isnan(b) or math.isnan(z):
            outcomes.append(None)
            parts.append(f"lr {fmt_g(lr)}: train accuracy missing")
            continue
        ok = z >= b - NOISY_TOL
        part = f"lr {fmt_g(lr)}: final train acc noisy BN {fmt(z)} vs BN {fmt(b)} (n={nn}/{nb}, tolerance {NOISY_TOL})"
        if ("noise", lr) in groups:
            sn = groups[("noise", lr)]
            notes.diverged(sn)
            s, n_s = seed_mean(sn, lambda r: r.final_train("train_acc"))
            far = z >= s + NOISE_GAP
            ok = ok and far
            part += f", std+noise {fmt(s)} (n={n_s}, needs >= {NOISE_GAP} below noisy BN)"
        else:
            part += ", no std+noise run to compare"
        outcomes.append(ok)
        parts.append(part + f" -> {'matches' if ok else 'does not match'}")
    return c.result(combine(outcomes), parts, notes)


@claim("3b", "The same noise in the standard network stops it from training", figure="Fig. 2",
       experiments=("fig2",),
       paper="the same noise in the standard network stops it from training")
def claim_3b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig2")
    lrs = sorted({lr for (n, lr) in groups if n == "noise"})
    if not lrs:
        return c.not_run("fig2 has no standard+noise ('noise') run", notes)
    parts, outcomes = [], []
    for lr in lrs:
        sn = groups[("noise", lr)]
        notes.diverged(sn)
        s, n_s = seed_mean(sn, lambda r: r.final_train("train_acc"))
        thr = sn[0].chance + CHANCE_MARGIN
        if math.isnan(s):
            outcomes.append(None)
            parts.append(f"lr {fmt_g(lr)}: train accuracy missing")
            continue
        at_chance = s <= thr
        part = f"lr {fmt_g(lr)}: final train acc std+noise {fmt(s)} (n={n_s}; chance+margin {fmt(thr)})"
        far_below = False
        if (STANDARD, lr) in groups:
            notes.diverged(groups[(STANDARD, lr)])
            st, ns = seed_mean(groups[(STANDARD, lr)], lambda r: r.final_train("train_acc"))
            far_below = s <= st - NOISE_GAP
            part += f", std {fmt(st)} (n={ns}; far below = >= {NOISE_GAP} lower)"
        ok = at_chance or far_below
        outcomes.append(ok)
        parts.append(part + f" -> {'stopped' if ok else 'still trains'}")
    return c.result(combine(outcomes), parts, notes)


@claim("6a", "lp normalisations match or beat BN in training", figure="Fig. 5", experiments=("fig5_cnn",),
       paper="ℓp normalisations match or beat BN in training")
def claim_6a(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig5_cnn")
    lrs = sorted({lr for (n, lr) in groups if n == BN and any((p, lr) in groups for p in ("l1", "l2", "linf"))})
    if not lrs:
        return c.not_run("fig5_cnn has no lr with BN and an lp normalisation", notes)
    parts, outcomes = [], []
    for lr in lrs:
        bn = groups[(BN, lr)]
        notes.diverged(bn)
        b, nb = seed_mean(bn, lambda r: r.final_train("train_acc"))
        for p in ("l1", "l2", "linf"):
            if (p, lr) not in groups:
                parts.append(f"lr {fmt_g(lr)} {p}: not run")
                continue
            notes.diverged(groups[(p, lr)])
            v, n = seed_mean(groups[(p, lr)], lambda r: r.final_train("train_acc"))
            if math.isnan(v) or math.isnan(b):
                outcomes.append(None)
                parts.append(f"lr {fmt_g(lr)} {p}: train accuracy missing")
                continue
            ok = v >= b - LP_TOL
            outcomes.append(ok)
            parts.append(f"lr {fmt_g(lr)} {p}: final train acc {fmt(v)} vs BN {fmt(b)} (n={n}/{nb}, "
                         f"tolerance {LP_TOL}) "
                         f"-> {'matches or beats' if ok else 'below'}")
    return c.result(combine(outcomes), parts, notes)


@claim("6b", "On the DLN, l1 normalisation beats BN (training loss)", figure="Fig. 5", experiments=("fig5_dln",),
       paper="on the DLN, ℓ1 beats BN")
def claim_6b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig5_dln")
    lrs = lrs_with_both(groups, "l1", BN)
    if not lrs:
        return c.not_run("fig5_dln has no lr with both l1 and BN runs", notes)
    parts, outcomes = [], []
    for lr in lrs:
        l1, bn = groups[("l1", lr)], groups[(BN, lr)]
        notes.diverged(l1 + bn, "an infinite loss")
        a, na = seed_mean(l1, lambda r: r.final_train("train_loss"))
        b, nb = seed_mean(bn, lambda r: r.final_train("train_loss"))
        if math.isnan(a) or math.isnan(b):
            outcomes.append(None)
            parts.append(f"lr {fmt_g(lr)}: train loss missing")
            continue
        ok = a < (1 - L1_BEATS_MARGIN) * b
        outcomes.append(ok)
        parts.append(f"lr {fmt_g(lr)}: final train loss l1 {a:.6g} vs BN {b:.6g} (ratio {a / b:.4f}; n={na}/{nb}; "
                     f"beats = >= {L1_BEATS_MARGIN:.0%} lower) -> {'l1 lower' if ok else 'l1 not lower'}")
    return c.result(combine(outcomes), parts, notes)

