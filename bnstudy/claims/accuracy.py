"""The accuracy and loss claims (1-3, 6): final values of standard, BN and the other normalisations.

Final train accuracy/loss is the mean over the last ``FINAL_WINDOW_FRAC`` of the planned steps, final test
accuracy the last eval (``bnstudy.claims.liveness``); a diverged run counts at chance accuracy and an
infinite loss. A group's value is the mean over its seeds (``n`` is reported).
"""

from __future__ import annotations

import math

import numpy as np

import pandas as pd

from bnstudy.claims.base import (BN, FAILS, HOLDS, INCONCLUSIVE, NOT_REPRODUCED, OPEN_CHOICE, STANDARD, Claim,
                                 ClaimResult, Notes, Results, claim, combine, experiment_groups, lrs_with_both,
                                 seed_mean)
from bnstudy.claims.liveness import CHANCE_MARGIN, LIVE_SMOOTH_WINDOWS, Run
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
"""Claim 6b: l1 'beats' BN when its DLN training loss is at least this fraction (1%) below BN's, as the
median of the ratio l1/BN over the run's logged steps (the paper compares loss curves)."""

L1_CHECKPOINTS = (0.1, 0.25, 0.5, 1.0)
"""Claim 6b: the fractions of the run at which the loss ratio l1/BN is shown."""


@claim("1a", "BN reaches higher accuracy than standard at the same lr", figure="Fig. 1", experiments=("fig1",),
       paper="BN ... reaches higher accuracy at the same lr",
       rule="at every lr with both: BN's final test accuracy and final train accuracy (mean of the last 5% of "
            "the run) above the standard network's (no margin)")
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
            parts.append(f"lr {fmt_g(lr)}: accuracy missing (test BN {fmt(bt)} / standard {fmt(st)}, "
                         f"train BN {fmt(ba)} / standard {fmt(sa)})")
            continue
        ok = bt > st and ba > sa
        outcomes.append(ok)
        parts.append(f"lr {fmt_g(lr)}: final test acc BN {fmt(bt)} vs standard {fmt(st)}, final train acc BN {fmt(ba)} "
                     f"vs standard {fmt(sa)} (n={nb}/{ns}) -> {'BN higher' if ok else 'BN not higher on both'}")
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
       paper="BN trains faster ... at the same lr",
       rule=f"at every lr with both: BN reaches {FASTER_TARGET_FRAC:.0%} of its final train accuracy in fewer "
            f"steps than the standard network (a tie is broken by the mean train accuracy over the run)")
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
                     f"step {fmt_step(tb)} (BN) vs {fmt_step(ts)} (standard); mean train acc over the run "
                     f"BN {fmt(ab)} vs standard {fmt(as_)} (n={nb}/{ns}) -> {'BN faster' if ok else 'BN not faster'}")
    return c.result(combine(outcomes), parts, notes)


@claim("2", "BN trains at lr 0.5 where standard training degrades", figure="Fig. 1", experiments=("fig1",),
       paper="BN trains at lr 0.5 where standard training degrades",
       rule=f"at the highest lr BN ends above chance + {CHANCE_MARGIN} without diverging, and the standard "
            f"network's final test accuracy is at least {DEGRADE_MARGIN} below both its own at the lowest lr and "
            f"BN's at the highest")
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
        return c.result(INCONCLUSIVE, [f"accuracy missing (standard lr {fmt_g(lo)} {fmt(s_lo)}, standard lr {fmt_g(hi)} "
                                       f"{fmt(s_hi)}, BN lr {fmt_g(hi)} {fmt(b_hi)})"], notes)
    bn_trains = b_tr > chance + CHANCE_MARGIN and not any(r.diverged for r in bn_hi)
    degrades = s_hi < s_lo - DEGRADE_MARGIN and s_hi < b_hi - DEGRADE_MARGIN
    n_div = sum(r.diverged for r in sd_hi)
    parts = [f"BN at lr {fmt_g(hi)}: final train acc {fmt(b_tr)}, test acc {fmt(b_hi)} (n={nb}) -> "
             f"{'trains' if bn_trains else 'does not train'} (chance+margin {fmt(chance + CHANCE_MARGIN)})",
             f"standard test acc at lr {fmt_g(hi)} {fmt(s_hi)} vs standard at lr {fmt_g(lo)} {fmt(s_lo)} and BN at lr "
             f"{fmt_g(hi)} "
             f"{fmt(b_hi)} (n={ns}{f', {n_div} diverged' if n_div else ''}; margin {DEGRADE_MARGIN}) -> "
             f"{'standard degrades' if degrades else 'standard does not degrade'}"]
    return c.result(HOLDS if bn_trains and degrades else FAILS, parts, notes)


@claim("3a", "Noisy BN nearly matches BN (and is far above the noisy standard network)", figure="Fig. 2",
       experiments=("fig2",),
       paper="Noisy BN nearly matches BN",
       rule=f"noisy BN's final train accuracy >= BN's - {NOISY_TOL}, and (when run) >= the noisy standard "
            f"network's + {NOISE_GAP}")
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
            part += f", standard+noise {fmt(s)} (n={n_s}, needs >= {NOISE_GAP} below noisy BN)"
        else:
            part += ", no standard+noise run to compare"
        outcomes.append(ok)
        parts.append(part + f" -> {'matches' if ok else 'does not match'}")
    return c.result(combine(outcomes), parts, notes)


def leaves_chance(r: Run) -> float:
    """The first logged step at which the run's train accuracy (rolling median over LIVE_SMOOTH_WINDOWS
    windows, as liveness) is above chance + CHANCE_MARGIN; inf if never."""
    s = r.series("train_acc").dropna()
    if s.empty:
        return math.nan
    smooth = s.rolling(LIVE_SMOOTH_WINDOWS, center=True, min_periods=1).median()
    above = smooth[smooth > r.chance + CHANCE_MARGIN]
    return float(above.index[0]) if len(above) else math.inf


def _seeds(runs: list[Run]) -> str:
    return "/".join(str(r.seed) for r in sorted(runs, key=lambda r: (str(type(r.seed)), r.seed)))


def _steps(runs: list[Run], fn) -> str:
    """``fn`` of each run, in seed order (the report reads the same whatever order the runs were found in)."""
    vals = [fn(r) for r in sorted(runs, key=lambda r: (str(type(r.seed)), r.seed))]
    return "/".join(fmt_step(v) if not math.isnan(v) else "n/a" for v in vals)


@claim("3b", "The same noise in the standard network stops it from training", figure="Fig. 2",
       experiments=("fig2",),
       paper="the same noise in the standard network \"prevents it from training\" (§2.1, Fig. 2)",
       rule=f"the standard network with Algorithm 1's noise ends at chance (final train accuracy <= chance + "
            f"{CHANCE_MARGIN}) or at least {NOISE_GAP:.0%} points (absolute) below the standard network; when it "
            f"leaves chance is shown")
def claim_3b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig2")
    lrs = sorted({lr for (n, lr) in groups if n == "noise"})
    if not lrs:
        return c.not_run("fig2 has no standard+noise ('noise') run", notes)
    parts, outcomes, whys = [], [], []
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
        part = (f"lr {fmt_g(lr)}: standard+noise leaves chance at step {_steps(sn, leaves_chance)} (seed {_seeds(sn)}) and "
                f"ends at final train acc {fmt(s)} (n={n_s}; chance+margin {fmt(thr)})")
        far_below, gap = False, math.nan
        if (STANDARD, lr) in groups:
            sd = groups[(STANDARD, lr)]
            notes.diverged(sd)
            st, ns = seed_mean(sd, lambda r: r.final_train("train_acc"))
            gap = st - s
            far_below = gap >= NOISE_GAP - 1e-9  # the border counts (0.9 - 0.8 is 0.0999... in floating point)
            part += (f", {fmt(gap)} below the standard network's {fmt(st)} (n={ns}; leaves chance at step "
                     f"{_steps(sd, leaves_chance)}; far below = >= {NOISE_GAP} lower)")
        ok = at_chance or far_below
        outcomes.append(ok)
        parts.append(part + f" -> {'stopped' if ok else 'still trains'}")
        if not ok:
            whys.append(f"lr {fmt_g(lr)}: the noisy standard network leaves chance at step "
                        f"{_steps(sn, leaves_chance)} and ends {fmt(gap)} below the standard network (needs chance "
                        f"or >= {NOISE_GAP})")
    why = f"{NOT_REPRODUCED}: " + "; ".join(whys) if whys else ""
    return c.result(combine(outcomes), parts, notes, why)


@claim("6a", "lp normalisations match or beat BN in training", figure="Fig. 5", experiments=("fig5_cnn",),
       paper="ℓp normalisations match or beat BN in training",
       rule=f"each of l1, l2, linf ends with final train accuracy >= BN's - {LP_TOL}")
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


def loss_curve(runs: list[Run]) -> pd.Series:
    """The group's training-loss curve: at each logged step the mean over its seeds (a diverged run: inf)."""
    cols = [r.series("train_loss").dropna() for r in runs]
    cols = [c for c in cols if len(c)]
    if not cols:
        return pd.Series(dtype=float)
    return pd.concat(cols, axis=1).mean(axis=1, skipna=False).dropna()


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


def l1_vs_bn(R: Results, name: str, notes: Notes) -> list[dict]:
    """Claim 6b's numbers per lr of a DLN experiment: l1's loss curve against BN's (``curve_ratio``)."""
    groups = R.groups(name)
    out = []
    for lr in lrs_with_both(groups, "l1", BN):
        l1, bn = groups[("l1", lr)], groups[(BN, lr)]
        notes.diverged(l1 + bn, "an infinite loss")
        planned = max(r.steps for r in l1 + bn)
        row = {"lr": lr, "n_l1": len(l1), "n_bn": len(bn), **curve_ratio(loss_curve(l1), loss_curve(bn), planned)}
        row["ok"] = None if math.isnan(row["median"]) else row["median"] <= 1 - L1_BEATS_MARGIN
        out.append(row)
    return out


def l1_text(row: dict) -> str:
    if row["ok"] is None:
        return f"lr {fmt_g(row['lr'])}: no common logged training loss"
    at = ", ".join(f"{f:.0%} {row['at'][f]:.4f}" for f in L1_CHECKPOINTS if not math.isnan(row["at"].get(f, math.nan)))
    return (f"lr {fmt_g(row['lr'])}: loss ratio l1/BN at {at} of the run; median over the run {row['median']:.4f} "
            f"({row['n']} logged steps; n={row['n_l1']}/{row['n_bn']}; beats = median <= {1 - L1_BEATS_MARGIN:g}) "
            f"-> {'l1 lower' if row['ok'] else 'l1 not lower'}")


@claim("6b", "On the DLN, l1 normalisation beats BN (training loss)", figure="Fig. 5", experiments=("fig5_dln",),
       paper="\"for deep linear networks, ℓ1-normalization performs even better than BatchNorm\" (§3.3, Fig. 5)",
       rule=f"the paper shows loss curves, so the curves are compared: the loss ratio l1/BN at "
            f"{'/'.join(f'{f:.0%}' for f in L1_CHECKPOINTS)} of the run is shown and the median of the ratio over "
            f"every logged step decides: l1 beats BN when it is <= {1 - L1_BEATS_MARGIN:g} (at least "
            f"{L1_BEATS_MARGIN:.0%} lower), at every lr")
def claim_6b(R: Results, c: Claim) -> ClaimResult:
    groups, notes = experiment_groups(R, "fig5_dln")
    rows = l1_vs_bn(R, "fig5_dln", notes)
    if not rows:
        return c.not_run("fig5_dln has no lr with both l1 and BN runs", notes)
    verdict = combine([r["ok"] for r in rows])
    return c.result(verdict, [l1_text(r) for r in rows], notes, why_not_6b(R, rows))


def why_not_6b(R: Results, rows: list[dict]) -> str:
    from bnstudy.claims.curves import DLN_SWEEP, sweep_results

    failed = "; ".join(f"lr {fmt_g(r['lr'])}: median ratio l1/BN {r['median']:.4f}" for r in rows if r["ok"] is False)
    S = sweep_results(R)
    if S is not None:
        sweep = "; ".join(f"lr {fmt_g(r['lr'])}: median l1/BN {r['median']:.4f} -> "
                          f"{'holds' if r['ok'] else 'does not hold'}"
                          for r in sorted(l1_vs_bn(S, DLN_SWEEP, Notes()), key=lambda r: -r["lr"]))
        if any(r["ok"] for r in l1_vs_bn(S, DLN_SWEEP, Notes())):
            return f"{OPEN_CHOICE} (the DLN's loss scale): here {failed}; in `make dln_sweep` {sweep}"
        return f"{NOT_REPRODUCED}: {failed}; at no lr of `make dln_sweep` either ({sweep})"
    return f"{NOT_REPRODUCED}: {failed} (run `make dln_sweep` to see whether the loss scale decides it)"
