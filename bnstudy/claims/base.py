"""What a claim is and what it reads: verdicts, :class:`Part` and :class:`ClaimResult`, the :data:`CLAIMS`
registry (``@claim``, each claim in its group) and :class:`Results` (the runs a claim reads).

A claim is a function ``check(R: Results, c: Claim) -> ClaimResult`` registered with :func:`claim`. It is
always called on **one seed's runs** (``R.only_seed(s)``): each group of ``R.groups(name)`` holds one run,
and the check reduces it to numbers, compares them and returns ``c.result(parts, notes)``, one
:class:`Part` per comparison (its numbers, and whether it holds). ``bnstudy.claims.verdicts.judge`` calls it
once per seed and aggregates the seeds' verdicts; nothing is averaged across seeds before it is judged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from bnstudy.claims.liveness import LiveRun
from bnstudy.registry import Registry
from bnstudy.runs import RunSet, by_norm_lr

HOLDS, FAILS, MIXED, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "mixed", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, MIXED, INCONCLUSIVE, NOT_RUN)
STANDARD, BN = "none", "batch"

PAPER, PARAPHRASE = "paper", "paraphrase"
"""How a claim's ``paper`` text relates to the source: its verbatim words (quoted, with the section or figure),
or the suite's paraphrase (labelled so in the report)."""


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


# ---------------------------------------------------------------------------------------------- claims
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


CLAIMS: Registry[Claim] = Registry("claim")
"""Every registered claim by id, whatever its group (ids are unique over every group): each module of
``bnstudy.claims`` registers its own (the package imports them all). :func:`ordered` gives a group's in report
order."""

GROUPS = {"paper": "the paper's claims (counted in REPORT.md's headline)",
          "beyond": "claims of later work that the measurements beyond the paper test (make curvature theory signal)",
          "tutorials": "what two BatchNorm tutorials say, judged on make tutorials' runs",
          "modern": "claims of later work on residual networks and transformers, and the paper's thesis carried over "
                    "to them (make modern)"}
"""The groups a claim may belong to: the paper's, and those reported apart, each in its own section."""


def claim(id: str, summary: str, *, figure: str, experiments: tuple[str, ...], paper: str, rule: str = "",
          group: str = "paper", quote: str = PAPER,
          settings: Optional[Callable[["Results"], list[tuple[str, "Results"]]]] = None,
          seeds_of: Optional[Callable[["Results"], list]] = None):
    """Decorator: register ``check(R, c) -> ClaimResult`` as claim ``id`` of ``group`` (a key of
    :data:`GROUPS`). ``paper``: the source's words in quotation marks with their section or figure
    (``quote=PAPER``), or the suite's paraphrase (``quote=PARAPHRASE``); ``rule``: how the check reads it, its
    threshold and a one-line reason for the threshold (both go in REPORT.md); ``settings(R)``: the other
    settings its "why not" reads; ``seeds_of(R)``: the seeds to judge it on when its data are not runs of its
    experiments (a CSV with a seed column); a check then reads ``R.seed``."""
    if quote not in (PAPER, PARAPHRASE):
        raise ValueError(f"claim {id!r}: quote={quote!r}; valid: {PAPER!r}, {PARAPHRASE!r}")
    if group not in GROUPS:
        raise ValueError(f"claim {id!r}: group={group!r}; valid: {', '.join(GROUPS)}")

    def register(check: Callable[["Results", Claim], ClaimResult]):
        CLAIMS.add(id, Claim(id, summary, paper, figure, tuple(experiments), check, rule, quote, group, settings,
                             seeds_of))
        return check
    return register


def _order(cid: str) -> tuple:
    m = re.match(r"(\d+)(.*)", cid)
    return (0, int(m.group(1)), m.group(2)) if m else (1, 0, cid)


def ordered(group: str = "paper") -> list[Claim]:
    """The registered claims of a group (default the paper's) in report order: by number, then letter (1a, 1b,
    2, ..., 10a), then other ids (B1, B2, ..., B10 by their number; T1a, T1b, T2, ... by number, then letter)."""
    if group not in GROUPS:
        raise ValueError(f"claim group {group!r} is unknown; valid: {', '.join(GROUPS)}")
    reg = {k: c for k, c in CLAIMS.items() if c.group == group}
    key = lambda k: (_order(k), int(m.group(1)) if (m := re.match(r"[A-Z]+(\d+)[a-z]*$", k)) else 0)
    return [reg[k] for k in sorted(reg, key=lambda k: (key(k)[0][0], key(k)[1], key(k)[0]))]


# ------------------------------------------------------------------------------------------------ runs
class Results:
    """The runs each experiment means at one scale (``bnstudy.runs.RunSet``: canonical runs by default), as
    :class:`~bnstudy.claims.liveness.LiveRun`, plus the notes of runs it left out.

    Views share the loaded runs: ``only_seed(s)`` (one seed's runs), ``using({name: runs})`` (other runs
    in place of an experiment's: an exploratory group, a sweep's runs at one lr)."""

    def __init__(self, root: Path | RunSet, scale: str = "quick", sweeps: Iterable[Path] = ()):
        self.runset = root if isinstance(root, RunSet) else RunSet(root, scale, sweeps)
        self.root, self.scale = self.runset.root, self.runset.scale
        self._runs: dict[str, list[LiveRun]] = {}
        self.parent: Optional[Results] = None
        self.seed = None
        self.replaced: dict[str, list[LiveRun]] = {}

    def runs(self, name: str) -> list[LiveRun]:
        if name not in self._runs:
            if name in self.replaced:
                self._runs[name] = self.replaced[name]
            elif self.parent is not None:
                self._runs[name] = [r for r in self.parent.runs(name) if self.seed is None or r.seed == self.seed]
            else:
                self._runs[name] = [LiveRun.of(r) for r in self.runset.runs(name)]
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
        view.replaced = {k: [r if isinstance(r, LiveRun) else LiveRun.of(r) for r in v] for k, v in replaced.items()}
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

    def groups(self, name: str) -> dict[tuple[str, float], list[LiveRun]]:
        """The experiment's runs by (norm, lr), in order of lr, then norm."""
        return dict(sorted(by_norm_lr(self.runs(name)).items(), key=lambda kv: (kv[0][1], kv[0][0])))


# --------------------------------------------------------------------------------------------- helpers
def one(runs: list[LiveRun], fn: Callable[[LiveRun], float]) -> float:
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

    def diverged(self, runs: Iterable[LiveRun], what: str = "accuracy at chance, loss inf") -> None:
        for r in runs:
            if r.diverged:
                self.add(f"{r.label}: diverged at step {r.step} - counted with {what}")

    def __str__(self) -> str:
        return "\n".join(self.items)


def lrs_with_both(groups: dict, a: str, b: str) -> list[float]:
    """The lrs at which both norms ``a`` and ``b`` ran."""
    return sorted({lr for (n, lr) in groups if n == a and (b, lr) in groups})


def need(R: Results, c: Claim, names: tuple[str, ...], targets: Optional[Iterable[str]] = None
         ) -> tuple[list[str], "Notes", Optional[ClaimResult]]:
    """The claim's experiments that ran (notes holding their excluded runs), or its ``not run`` result naming the make
    targets that run them (``targets``; default: each name less its last ``_part``, a figure target such as
    ``curvature`` for ``curvature_cnn``)."""
    notes, ran = Notes(), []
    for name in names:
        notes.extend(R.notes(name))
        if R.runs(name):
            ran.append(name)
    make = list(targets) if targets is not None else sorted({n.rsplit("_", 1)[0] for n in names})
    missing = None if ran else c.not_run("; ".join(f"{n} not run" for n in names) + f" (make {' '.join(make)})",
                                         notes)
    return ran, notes, missing


def experiment_groups(R: Results, name: str) -> tuple[dict, "Notes"]:
    """An experiment's (norm, lr) groups, and notes already holding its excluded runs."""
    notes = Notes()
    notes.extend(R.notes(name))
    return R.groups(name), notes


