"""The claims' shared parts: verdicts, the :data:`CLAIMS` registry, the runs a claim reads, per-seed judging.

A claim is a function ``check(R: Results, c: Claim) -> ClaimResult`` registered with :func:`claim`. It is
always called on **one seed's runs** (``R.only_seed(s)``): each group of ``R.groups(name)`` holds one run,
and the check reduces it to numbers, compares them and returns ``c.result(parts, notes)``, one
:class:`Part` per comparison (its numbers, and whether it holds). :func:`judge` calls it once per seed and
aggregates by :data:`SEED_RULE`; nothing is averaged across seeds before it is judged. The evidence shows
each number as the median over the seeds with its range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from bnstudy.claims.liveness import Run
from bnstudy.claims.text import fmt, fmt_g, fmt_ratio, fmt_step
from bnstudy.runs import RunSet

HOLDS, FAILS, MIXED, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "mixed", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, MIXED, INCONCLUSIVE, NOT_RUN)
STANDARD, BN = "none", "batch"

SEED_RULE = ("Each seed is judged alone, on its own runs; nothing is averaged across seeds before it is judged. "
             "A claim holds when more than half of its seeds hold, does not hold when more than half do not, is "
             "mixed when neither has a majority, and is inconclusive when no seed decides it. The evidence gives "
             "each number as the median over the seeds with its range: 0.88 [0.86, 0.90].")
"""How the seeds' verdicts make a claim's verdict (printed in REPORT.md)."""

PAPER, PARAPHRASE = "paper", "paraphrase"
"""How a claim's ``paper`` text relates to the source: its verbatim words (quoted, with the section or figure),
or the suite's paraphrase (labelled so in the report)."""


# ------------------------------------------------------------------------------------------ evidence
KINDS: dict[str, Callable[[float], str]] = {
    "num": fmt, "x": fmt_ratio, "step": lambda v: "n/a" if math.isnan(v) else fmt_step(v),
    "g": lambda v: "n/a" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.3g}"),
    "pt": lambda v: "n/a" if math.isnan(v) else f"{100 * v:+.1f} pt",
}
"""How a number of the evidence is written, by kind: 3 decimals, a ratio (7.88x), a step (or never), 3
significant digits, accuracy points (+2.0 pt)."""


@dataclass
class Part:
    """One comparison of a claim on one seed: its label, its numbers (in order; seeds are merged by position,
    so a name may repeat: "BN", "standard" for two measures), and whether it holds (``ok``: None = left out;
    ``info``: shown, never judged). ``yes``/``no`` say the outcome in words. ``lenient``: whether it would
    hold with no margin (a 'rule stricter than the words' is then named)."""

    label: str
    values: dict[str, float] | list[tuple] = field(default_factory=dict)  # or (name, value[, kind]) entries
    ok: Optional[bool] = None
    yes: str = "holds"
    no: str = "does not hold"
    kinds: dict[str, str] = field(default_factory=dict)
    info: bool = False
    note: str = ""  # one seed's words (why it was left out, ...); shown when every seed says the same
    lenient: Optional[bool] = None

    def __post_init__(self):
        self.values = list(self.values.items()) if isinstance(self.values, dict) else list(self.values)

    def kind(self, i: int) -> str:
        """How number ``i`` is written: its entry's third element, else ``kinds[name]``, else "num"."""
        entry = self.values[i]
        return entry[2] if len(entry) > 2 else self.kinds.get(entry[0], "num")


@dataclass
class ClaimResult:
    """One claim's verdict, the numbers behind it, and the runs/periods it left out."""

    id: str
    claim: str
    figure: str
    verdict: str
    evidence: str
    excluded: str = ""  # one note per line
    paper: str = ""  # the source's words (quoted with their place) or the suite's paraphrase
    rule: str = ""  # the rule that decides it, its threshold and why
    why_not: str = ""  # when it does not hold: derived from the runs that exist
    seeds: str = ""  # how many seeds hold, of those judged ("2/3"); "" with one seed
    quote: str = PAPER  # PAPER: ``paper`` is the source's own words; PARAPHRASE: the suite's
    parts: list[Part] = field(default_factory=list, repr=False)
    per_seed: dict = field(default_factory=dict, repr=False)  # seed -> that seed's verdict
    scope: str = ""  # "" canonical runs; else what the exploratory runs are

    @property
    def verdict_text(self) -> str:
        """The verdict with how many seeds hold: ``holds, 3/3 seeds``."""
        return f"{self.verdict}, {self.seeds} seeds hold" if self.seeds else self.verdict


def combine(outcomes: list[Optional[bool]]) -> str:
    """One seed's verdict from its comparisons: holds when every decided one holds."""
    decided = [o for o in outcomes if o is not None]
    if not decided:
        return INCONCLUSIVE
    return HOLDS if all(decided) else FAILS


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


def _spread(values: list[float], write: Callable[[float], str]) -> str:
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
        nums = "; ".join(f"{entry[0]} {_spread([_at(p, i) for p in got], KINDS[first.kind(i)])}"
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


# ---------------------------------------------------------------------------------------------- claims
NOT_REPRODUCED = "not reproduced at any setting tried"
DECIDED_BY = "decided by"
STRICTER_RULE = "the rule is stricter than the paper's words"
SPLIT = "the seeds split"
TOO_SHORT = "inconclusive: the runs may be too short to reach the regime the claim describes"
WHY_NOT = (NOT_REPRODUCED, f"{DECIDED_BY} <a setting>: holds at X, fails at Y", STRICTER_RULE, SPLIT)
"""The reasons a claim may not hold ("Why not" in REPORT.md), each derived from the runs that exist."""


@dataclass(frozen=True)
class Claim:
    """A registered claim: its id (report order), one-line statement, the source's words (``quote``: PAPER for
    verbatim words, PARAPHRASE for the suite's), the figure and experiments it reads, its check, its rule
    with the threshold's justification, and the other settings (``settings(R)``: ``[(label, Results)]``)
    whose runs its "why not" reads."""

    id: str
    summary: str
    paper: str
    figure: str
    experiments: tuple[str, ...]
    check: Callable[["Results", "Claim"], ClaimResult]
    rule: str = ""
    quote: str = PAPER
    group: str = "paper"
    settings: Optional[Callable[["Results"], list[tuple[str, "Results"]]]] = None
    seeds_of: Optional[Callable[["Results"], list]] = None  # the seeds to judge, where no run holds them (a CSV)

    def result(self, parts: list[Part], notes: "Notes | str" = "", verdict: Optional[str] = None) -> ClaimResult:
        """One seed's result: its comparisons and its verdict (default: :func:`combine` of the parts)."""
        if verdict is None:
            verdict = combine([p.ok for p in parts if not p.info])
        return ClaimResult(self.id, self.summary, self.figure, verdict, "", str(notes), self.paper, self.rule,
                           quote=self.quote, parts=list(parts))

    def not_run(self, why: str, notes: "Notes | str | None" = None) -> ClaimResult:
        """``not run``: the experiment, or a run the claim needs, is missing (``why`` says which)."""
        return ClaimResult(self.id, self.summary, self.figure, NOT_RUN, why, str(notes or ""), self.paper,
                           self.rule, quote=self.quote)


CLAIMS: dict[str, Claim] = {}
"""Every registered claim of the paper by id; :func:`ordered` gives them in report order."""

BEYOND: dict[str, Claim] = {}
"""Claims of later work that the measurements beyond the paper test (``make curvature theory signal``):
registered with ``beyond=True``, checked by :func:`check_beyond`, reported in their own section."""

TUTORIALS: dict[str, Claim] = {}
"""What two BatchNorm tutorials say, judged on ``make tutorials`` runs: registered with ``group="tutorials"``,
reported in their own section."""

GROUPS: dict[str, dict[str, Claim]] = {"paper": CLAIMS, "beyond": BEYOND, "tutorials": TUTORIALS}
"""Each group of claims by name: the paper's (counted in the headline), and those reported apart."""


def claim(id: str, summary: str, *, figure: str, experiments: tuple[str, ...], paper: str, rule: str = "",
          beyond: bool = False, quote: str = PAPER,
          settings: Optional[Callable[["Results"], list[tuple[str, "Results"]]]] = None,
          group: Optional[str] = None, seeds_of: Optional[Callable[["Results"], list]] = None):
    """Decorator: register ``check(R, c) -> ClaimResult`` as claim ``id`` (ids are unique over every group).
    ``paper``: the source's words in quotation marks with their section or figure (``quote=PAPER``), or the
    suite's paraphrase (``quote=PARAPHRASE``); ``rule``: how the check reads it, its threshold and a one-line
    reason for the threshold (both go in REPORT.md). ``group``: a key of :data:`GROUPS` (default "paper";
    ``beyond=True`` is "beyond"). ``seeds_of(R)``: the seeds to judge it on when its data are not runs of
    its experiments (a CSV with a seed column); a check then reads ``R.seed``."""
    if quote not in (PAPER, PARAPHRASE):
        raise ValueError(f"claim {id!r}: quote={quote!r}; valid: {PAPER!r}, {PARAPHRASE!r}")
    group = group or ("beyond" if beyond else "paper")
    if group not in GROUPS:
        raise ValueError(f"claim {id!r}: group={group!r}; valid: {', '.join(GROUPS)}")

    def register(check: Callable[["Results", Claim], ClaimResult]):
        prev = next((reg[id] for reg in GROUPS.values() if id in reg), None)
        if prev is not None:
            raise ValueError(f"claim {id!r} is registered twice ({prev.check.__module__} and {check.__module__})")
        GROUPS[group][id] = Claim(id, summary, paper, figure, tuple(experiments), check, rule, quote, group,
                                  settings, seeds_of)
        return check
    return register


def _order(cid: str) -> tuple:
    m = re.match(r"(\d+)(.*)", cid)
    return (0, int(m.group(1)), m.group(2)) if m else (1, 0, cid)


def ordered(beyond: bool = False, group: Optional[str] = None) -> list[Claim]:
    """The registered claims of a group (default the paper's; ``beyond``: those beyond the paper) in report
    order: by number, then letter (1a, 1b, 2, ..., 10a), then other ids (B1, B2, ..., B10 by their number;
    T1a, T1b, T2, ... by number, then letter)."""
    reg = GROUPS[group or ("beyond" if beyond else "paper")]
    key = lambda k: (_order(k), int(m.group(1)) if (m := re.match(r"[A-Z]+(\d+)[a-z]*$", k)) else 0)
    return [reg[k] for k in sorted(reg, key=lambda k: (key(k)[0][0], key(k)[1], key(k)[0]))]


# ------------------------------------------------------------------------------------------------ runs
class Results:
    """The runs each experiment means at one scale (``bnstudy.runs.RunSet``: canonical runs by default), as
    :class:`~bnstudy.claims.liveness.Run`, plus the notes of runs it left out.

    Views share the loaded runs: ``only_seed(s)`` (one seed's runs), ``using({name: runs})`` (other runs
    in place of an experiment's: an exploratory group, a sweep's runs at one lr)."""

    def __init__(self, root: Path | RunSet, scale: str = "quick", sweeps: Iterable[Path] = ()):
        self.runset = root if isinstance(root, RunSet) else RunSet(root, scale, sweeps)
        self.root, self.scale = self.runset.root, self.runset.scale
        self._runs: dict[str, list[Run]] = {}
        self.parent: Optional[Results] = None
        self.seed = None
        self.replaced: dict[str, list[Run]] = {}

    def runs(self, name: str) -> list[Run]:
        if name not in self._runs:
            if name in self.replaced:
                self._runs[name] = self.replaced[name]
            elif self.parent is not None:
                self._runs[name] = [r for r in self.parent.runs(name) if self.seed is None or r.seed == self.seed]
            else:
                self._runs[name] = [Run.of(r) for r in self.runset.runs(name)]
        return self._runs[name]

    def _view(self) -> "Results":
        view = Results(self.runset)
        view.parent = self
        return view

    def only_seed(self, seed) -> "Results":
        """The runs of one seed (a view sharing these runs and their loaded metrics)."""
        view = self._view()
        view.seed = seed
        return view

    def using(self, replaced: dict[str, list]) -> "Results":
        """A view in which each named experiment's runs are the given ones (others: none)."""
        view = self._view()
        view.replaced = {k: [r if isinstance(r, Run) else Run.of(r) for r in v] for k, v in replaced.items()}
        view.runs = lambda name, v=view: v.replaced.get(name, [])  # type: ignore[method-assign]
        return view

    def seeds(self, names: Iterable[str]) -> list:
        """The seeds of the runs of these experiments."""
        return sorted({r.seed for n in names for r in self.runs(n)}, key=lambda s: (str(type(s)), s))

    def other_scale(self, scale: str) -> "Results":
        """The runs of another scale under the same root (e.g. the paper-scale ``dln_sweep`` from a quick report)."""
        return Results(RunSet(self.root, scale))

    def notes(self, name: str) -> list[str]:
        return self.runset.experiment(name).notes if not self.replaced else []

    def groups(self, name: str) -> dict[tuple[str, float], list[Run]]:
        out: dict[tuple[str, float], list[Run]] = {}
        for run in self.runs(name):
            out.setdefault((run.norm, run.lr), []).append(run)
        return dict(sorted(out.items(), key=lambda kv: (kv[0][1], kv[0][0])))


# --------------------------------------------------------------------------------------------- helpers
def one(runs: list[Run], fn: Callable[[Run], float]) -> float:
    """``fn`` of the group's run: a check sees one seed, so a group holds one run (NaN when empty)."""
    if len(runs) > 1:
        raise ValueError(f"a claim check sees one seed's runs; got {len(runs)}: {[r.label for r in runs]}")
    return fn(runs[0]) if runs else math.nan


class Notes:
    """Ordered, de-duplicated notes of runs/periods a claim left out."""

    def __init__(self):
        self.items: list[str] = []

    def add(self, note: str) -> None:
        if note and note not in self.items:
            self.items.append(note)

    def extend(self, notes: Iterable[str]) -> None:
        for n in notes:
            self.add(n)

    def diverged(self, runs: Iterable[Run], what: str = "accuracy at chance, loss inf") -> None:
        for r in runs:
            if r.diverged:
                self.add(f"{r.label}: diverged at step {r.step} - counted with {what}")

    def __str__(self) -> str:
        return "\n".join(self.items)


def lrs_with_both(groups: dict, a: str, b: str) -> list[float]:
    """The lrs at which both norms ``a`` and ``b`` ran."""
    return sorted({lr for (n, lr) in groups if n == a and (b, lr) in groups})


def experiment_groups(R: Results, name: str) -> tuple[dict, "Notes"]:
    """An experiment's (norm, lr) groups, and notes already holding its excluded runs."""
    notes = Notes()
    notes.extend(R.notes(name))
    return R.groups(name), notes


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


def check_beyond(results_root: Path | RunSet, scale: str = "quick", sweeps: Iterable[Path] = ()) -> list[ClaimResult]:
    """Every claim beyond the paper (:data:`BEYOND`), as :func:`check_claims` does the paper's."""
    return check_group(results_root, "beyond", scale, sweeps)


def check_group(results_root: Path | RunSet, group: str, scale: str = "quick",
                sweeps: Iterable[Path] = ()) -> list[ClaimResult]:
    """Every claim of a group of :data:`GROUPS`, as :func:`check_claims` does the paper's."""
    R = Results(results_root, scale, sweeps)
    return [scoped(R, c, judge(R, c)) for c in ordered(group=group)]


def scoped(R: Results, c: Claim, result: ClaimResult) -> ClaimResult:
    """The result with ``scope`` set: empty when every run it read is canonical, else what its exploratory
    runs are (such a verdict is never counted among the paper's)."""
    scopes = [R.runset.experiment(e).exploratory for e in c.experiments if R.runset.experiment(e).runs]
    result.scope = "; ".join(f"{e}: {s}" for e, s in zip([e for e in c.experiments
                                                          if R.runset.experiment(e).runs], scopes) if s)
    return result


def exploratory_results(R: Results | RunSet, scale: str = "quick", beyond: bool = False,
                        group: Optional[str] = None) -> list[ClaimResult]:
    """Each claim (of ``group``, default the paper's; ``beyond``: "beyond") judged on each exploratory group of
    its experiments (``RunSet`` ``others``), labelled with the group's settings: what ``make report`` shows
    apart, never counted among the paper's verdicts."""
    R = R if isinstance(R, Results) else Results(R, scale)
    out = []
    for c in ordered(beyond=beyond, group=group):
        for label, view in exploratory_settings(R, c):
            r = judge(view, c, why=False)
            if r.verdict != NOT_RUN:
                r.scope = label
                out.append(r)
    return out
