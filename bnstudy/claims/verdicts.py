"""From one seed's comparisons to a claim's verdict: judging each seed alone, aggregating the seeds
(:data:`SEED_RULE`), the evidence over seeds (each number as the median and range), and the "why not" derived
from the other settings that ran. ``check_claims`` / ``check_group`` judge every registered claim of a group.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

from bnstudy.claims.base import (FAILS, HOLDS, INCONCLUSIVE, MIXED, NOT_RUN, Claim, ClaimResult, Notes, Part,
                                 Results, ordered)
from bnstudy.claims.text import fmt, fmt_g, fmt_ratio, fmt_step
from bnstudy.runs import RunSet

SEED_RULE = ("Each seed is judged alone, on its own runs; nothing is averaged across seeds before it is judged. "
             "A claim holds when more than half of its seeds hold, does not hold when more than half do not, is "
             "mixed when neither has a majority, and is inconclusive when no seed decides it. The evidence gives "
             "each number as the median over the seeds with its range: 0.88 [0.86, 0.90].")
"""How the seeds' verdicts make a claim's verdict (printed in REPORT.md)."""


KINDS: dict[str, Callable[[float], str]] = {
    "num": fmt, "x": fmt_ratio, "step": lambda v: "n/a" if math.isnan(v) else fmt_step(v),
    "g": lambda v: "n/a" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.3g}"),
    "pt": lambda v: "n/a" if math.isnan(v) else f"{100 * v:+.1f} pt",
}
"""How a number of the evidence is written, by kind: 3 decimals, a ratio (7.88x), a step (or never), 3
significant digits, accuracy points (+2.0 pt)."""


def aggregate(verdicts: list[str]) -> str:
    """The claim's verdict from its seeds' (:data:`SEED_RULE`)."""
    n = len(verdicts)
    if not n or all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    h, f = verdicts.count(HOLDS), verdicts.count(FAILS)
    if 2 * h > n:
        return HOLDS
    if 2 * f > n:
        return FAILS
    return MIXED if h or f else INCONCLUSIVE


def median_range(values: list[float], write: Callable[[float], str]) -> str:
    """The seeds' values as their median and range, ``0.884 [0.880, 0.889]``; one value, or all written alike:
    that value."""
    vals = sorted(v for v in values if not (isinstance(v, float) and math.isnan(v)))
    if not vals:
        return "n/a"
    k = len(vals)
    med = vals[k // 2] if k % 2 else (vals[k // 2 - 1] + vals[k // 2]) / 2  # inf + inf stays inf
    lo, hi = vals[0], vals[-1]
    return write(med) if write(lo) == write(hi) else f"{write(med)} [{write(lo)}, {write(hi)}]"


def merge_parts(per_seed: list[tuple[object, list[Part]]]) -> list[str]:
    """The evidence over seeds: each comparison (by label, in order) with every number as the median over
    the seeds and its range, and how many seeds it holds in."""
    labels: list[str] = []
    by_label: dict[str, list[Part]] = {}
    for _, parts in per_seed:
        for p in parts:
            if p.label not in by_label:
                labels.append(p.label)
            by_label.setdefault(p.label, []).append(p)
    n = len(per_seed)
    out = []
    for label in labels:
        got = by_label[label]
        first = max(got, key=lambda p: len(p.values))
        nums = "; ".join(f"{entry[0]} {median_range([_at(p, i) for p in got], KINDS[first.kind(i)])}"
                         for i, entry in enumerate(first.values))
        text = f"{label}: {nums}" if nums else label
        notes = {p.note for p in got}
        if len(notes) == 1 and len(got) == n and (note := notes.pop()):
            text += f" ({note})"
        if not first.info:
            yes = sum(p.ok is True for p in got)
            no = sum(p.ok is False for p in got)
            if n == 1:
                text += f" -> {first.yes if first.ok else first.no if first.ok is False else 'left out'}"
            else:
                said = [f"{first.yes} {yes}/{n}" if yes else "", f"{first.no} {no}/{n}" if no else "",
                        f"left out {n - yes - no}/{n}" if n - yes - no else ""]
                text += " -> " + ", ".join(s for s in said if s)
        out.append(text)
    return out


def _at(part: Part, i: int) -> float:
    return part.values[i][1] if i < len(part.values) else math.nan


NOT_REPRODUCED = "not reproduced at any setting tried"
DECIDED_BY = "decided by"
STRICTER_RULE = "the rule is stricter than the paper's words"
SPLIT = "the seeds split"
TOO_SHORT = "inconclusive: the runs may be too short to reach the regime the claim describes"
WHY_NOT = (NOT_REPRODUCED, f"{DECIDED_BY} <a setting>: holds at X, fails at Y", STRICTER_RULE, SPLIT)
"""The reasons a claim may not hold ("Why not" in REPORT.md), each derived from the runs that exist."""


# ---------------------------------------------------------------------------------------------- judging
def judge(R: Results, c: Claim, why: bool = True) -> ClaimResult:
    """The claim judged on each seed's runs alone and aggregated by :data:`SEED_RULE`; ``why``: derive its
    "why not" from the other settings that exist (:func:`why_not`)."""
    seeds = c.seeds_of(R) if c.seeds_of else R.seeds(c.experiments)
    if not seeds:  # not run, or a measurement with no seed (judged once)
        out = c.check(R, c)
        if out.verdict != NOT_RUN and not out.evidence:
            out.evidence = "; ".join(merge_parts([(None, out.parts)]))
            if why and out.verdict in (FAILS, MIXED, INCONCLUSIVE):
                out.why_not = why_not(R, c, out)
        return out
    per = [(s, c.check(R.only_seed(s), c)) for s in seeds]
    verdict = aggregate([r.verdict for _, r in per])
    run = [r for _, r in per if r.verdict != NOT_RUN]
    if not run:
        return per[0][1]
    notes = Notes()
    for _, r in per:
        notes.extend(str(r.excluded).splitlines())
    evidence = merge_parts([(s, r.parts) for s, r in per if r.verdict != NOT_RUN])
    missing = [f"seed {s}: {r.evidence}" for s, r in per if r.verdict == NOT_RUN]
    out = ClaimResult(c.id, c.summary, c.figure, verdict, "; ".join(evidence + missing), str(notes), c.paper,
                      c.rule, quote=c.quote, parts=[p for _, r in per for p in r.parts],
                      per_seed={s: r.verdict for s, r in per})
    if len(seeds) > 1:
        out.seeds = f"{sum(v == HOLDS for v in out.per_seed.values())}/{len(seeds)}"
    if why and verdict in (FAILS, MIXED, INCONCLUSIVE):
        out.why_not = why_not(R, c, out)
    return out


def _tally(result: ClaimResult) -> str:
    return result.verdict_text if result.seeds else result.verdict


def why_not(R: Results, c: Claim, result: ClaimResult) -> str:
    """Why a claim does not hold, from the runs that exist: the seeds that split; whether it holds with no
    margin (the rule stricter than the words); and its verdict at every other setting that ran (the claim's
    ``settings``: exploratory runs of its experiments, a sweep): "decided by" when some setting holds and
    another fails, "not reproduced at any setting tried" when none holds."""
    lines = []
    if result.verdict == MIXED or (result.seeds and len(set(result.per_seed.values())) > 1):
        by = {}
        for s, v in result.per_seed.items():
            by.setdefault(v, []).append(str(s))
        lines.append(f"{SPLIT}: " + "; ".join(f"{v} for seed{'s' if len(ss) > 1 else ''} {', '.join(ss)}"
                                               for v, ss in by.items()))
    failing = [p for p in result.parts if p.ok is False and not p.info]
    if failing:
        count = {label: sum(p.label == label for p in failing) for label in dict.fromkeys(p.label for p in failing)}
        n = max(len(result.per_seed), 1)
        lines.append("fails at: " + "; ".join(f"{label} ({k}/{n} seed{'s' if n > 1 else ''})"
                                              for label, k in count.items()))
    if failing and all(p.lenient for p in failing):
        lines.append(f"{STRICTER_RULE}: every failing comparison would hold with no margin")
    tried = [(f"as configured ({configured(R, c)})", result)]
    for label, view in (c.settings(R) if c.settings else []) + exploratory_settings(R, c):
        r = judge(view, c, why=False)
        if r.verdict != NOT_RUN:
            tried.append((label, r))
    holds = [f"{label} ({_tally(r)})" for label, r in tried if r.verdict == HOLDS]
    fails = [f"{label} ({_tally(r)})" for label, r in tried if r.verdict != HOLDS]
    if result.verdict == INCONCLUSIVE:
        left = sorted({p.note for p in result.parts if p.ok is None and not p.info and p.note})
        lines.append(f"{TOO_SHORT} or a measurement did not decide it (every comparison left out"
                     + (f": {'; '.join(left)})" if left else ")"))
    elif holds:
        lines.append(f"{DECIDED_BY} the setting: holds at {'; '.join(holds)}; not at {'; '.join(fails)}")
    else:
        lines.append(f"{NOT_REPRODUCED}: {'; '.join(fails)}")
    return ". ".join(lines)


def configured(R: Results, c: Claim) -> str:
    """The claim's experiments as they ran: ``"fig2 at quick scale: lr 0.1, 800 steps, 3 seeds"``."""
    out = []
    for name in c.experiments:
        runs = R.runs(name)
        if runs:
            lrs = ", ".join(fmt_g(lr) for lr in sorted({r.lr for r in runs}))
            steps = "/".join(f"{s:,}" for s in sorted({r.steps for r in runs}))
            seeds = len({r.seed for r in runs})
            out.append(f"{name} at {R.scale} scale: lr {lrs}, {steps} steps, {seeds} seed{'s' if seeds > 1 else ''}")
    return "; ".join(out) or "no runs"


def exploratory_settings(R: Results, c: Claim) -> list[tuple[str, Results]]:
    """The exploratory runs of the claim's experiments, one setting per group (``RunSet`` ``others``)."""
    if R.replaced or R.parent is not None:
        return []
    out = []
    for name in c.experiments:
        for group in R.runset.experiment(name).others:
            out.append((f"{name} {group.exploratory}", R.using({name: group.runs})))
    return out


def check_claims(results_root: Path | RunSet, scale: str = "quick", sweeps: Iterable[Path] = ()) -> list[ClaimResult]:
    """Every registered claim's verdict over the runs each experiment means (a ``RunSet``, or the finished
    runs of ``scale`` under ``results_root``, reading the named ``sweeps`` where given), each seed judged
    alone (:func:`judge`)."""
    R = Results(results_root, scale, sweeps)
    return [scoped(R, c, judge(R, c)) for c in ordered()]


def check_group(results_root: Path | RunSet, group: str, scale: str = "quick",
                sweeps: Iterable[Path] = ()) -> list[ClaimResult]:
    """Every claim of a group (``bnstudy.claims.base.GROUPS``), as :func:`check_claims` does the paper's."""
    R = Results(results_root, scale, sweeps)
    return [scoped(R, c, judge(R, c)) for c in ordered(group=group)]


def scoped(R: Results, c: Claim, result: ClaimResult) -> ClaimResult:
    """The result with ``scope`` set: empty when every run it read is canonical, else what its exploratory
    runs are (such a verdict is never counted among the paper's)."""
    scopes = [R.runset.experiment(e).exploratory for e in c.experiments if R.runset.experiment(e).runs]
    result.scope = "; ".join(f"{e}: {s}" for e, s in zip([e for e in c.experiments
                                                          if R.runset.experiment(e).runs], scopes) if s)
    return result


def exploratory_results(R: Results | RunSet, scale: str = "quick", group: str = "paper") -> list[ClaimResult]:
    """Each claim of ``group`` judged on each exploratory group of its experiments (``RunSet`` ``others``),
    labelled with the group's settings: what ``make report`` shows apart, never counted among the paper's
    verdicts."""
    R = R if isinstance(R, Results) else Results(R, scale)
    out = []
    for c in ordered(group):
        for label, view in exploratory_settings(R, c):
            r = judge(view, c, why=False)
            if r.verdict != NOT_RUN:
                r.scope = label
                out.append(r)
    return out
