"""The claims' shared parts: verdicts, the :data:`CLAIMS` registry, the runs a claim reads, and helpers.

A claim is a function ``check(R: Results, c: Claim) -> ClaimResult`` registered with :func:`claim`;
``c.result(verdict, parts, notes)`` and ``c.not_run(why, notes)`` build its result. ``Results`` holds the
finished runs of one scale per experiment (``R.runs(name)``, ``R.groups(name)`` -> ``{(norm, lr): runs}``)
and the notes of runs it left out (``R.notes(name)``). See ``bnstudy/claims/__init__.py`` for how to add one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd

from bnstudy.claims.liveness import Run
from bnstudy.runs import RunSet

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_RUN)
STANDARD, BN = "none", "batch"


@dataclass
class ClaimResult:
    """One claim's verdict, the numbers behind it, and the runs/periods it left out."""

    id: str
    claim: str
    figure: str
    verdict: str
    evidence: str
    excluded: str = ""  # one note per line
    paper: str = ""  # the paper's wording of the claim
    rule: str = ""  # the rule that decides it, with its threshold and margin
    why_not: str = ""  # when it does not hold: which of WHY_NOT it is, with the numbers
    seeds: str = ""  # how many seeds, each judged alone, agree with the verdict ("3/3"); "" with one seed

    @property
    def verdict_text(self) -> str:
        """The verdict with its seed agreement: ``holds, 3/3``."""
        return f"{self.verdict}, {self.seeds}" if self.seeds else self.verdict


NOT_REPRODUCED = "the paper's effect is not reproduced at this size"
OPEN_CHOICE = "an open choice of the paper decides it"
STRICTER_RULE = "the rule is stricter than the paper's words"
WHY_NOT = (NOT_REPRODUCED, OPEN_CHOICE, STRICTER_RULE)
"""The three reasons a claim may not hold ("Why not" in REPORT.md); a check names one in ``why_not``."""


@dataclass(frozen=True)
class Claim:
    """A registered claim: its id (report order), one-line statement, the paper's wording, the figure and
    experiments it reads, and its check."""

    id: str
    summary: str
    paper: str
    figure: str
    experiments: tuple[str, ...]
    check: Callable[["Results", "Claim"], ClaimResult]
    rule: str = ""

    def result(self, verdict: str, parts: list[str], notes: "Notes | str" = "", why_not: str = "") -> ClaimResult:
        """The claim's result: ``parts`` (one per comparison) joined as its evidence; ``why_not`` (one of
        :data:`WHY_NOT` and its numbers) is kept only when the verdict is not ``holds``."""
        return ClaimResult(self.id, self.summary, self.figure, verdict, "; ".join(parts), str(notes), self.paper,
                           self.rule, why_not if verdict != HOLDS else "")

    def not_run(self, why: str, notes: "Notes | str | None" = None) -> ClaimResult:
        """``not run``: the experiment, or a run the claim needs, is missing (``why`` says which)."""
        return ClaimResult(self.id, self.summary, self.figure, NOT_RUN, why, str(notes or ""), self.paper, self.rule)


CLAIMS: dict[str, Claim] = {}
"""Every registered claim of the paper by id; :func:`ordered` gives them in report order."""

BEYOND: dict[str, Claim] = {}
"""Claims of later work that the measurements beyond the paper test (``make curvature theory signal``):
registered with ``beyond=True``, checked by :func:`check_beyond`, reported in their own section."""


def claim(id: str, summary: str, *, figure: str, experiments: tuple[str, ...], paper: str, rule: str = "",
          beyond: bool = False):
    """Decorator: register ``check(R, c) -> ClaimResult`` as claim ``id`` (ids are unique). ``paper`` quotes
    the paper (for a claim ``beyond`` the paper: the work it comes from); ``rule`` says how the check reads
    it, with its threshold and margin (both go in REPORT.md)."""
    def register(check: Callable[["Results", Claim], ClaimResult]):
        if id in CLAIMS or id in BEYOND:
            prev = (CLAIMS.get(id) or BEYOND[id]).check.__module__
            raise ValueError(f"claim {id!r} is registered twice ({prev} and {check.__module__})")
        (BEYOND if beyond else CLAIMS)[id] = Claim(id, summary, paper, figure, tuple(experiments), check, rule)
        return check
    return register


def _order(cid: str) -> tuple:
    m = re.match(r"(\d+)(.*)", cid)
    return (0, int(m.group(1)), m.group(2)) if m else (1, 0, cid)


def ordered(beyond: bool = False) -> list[Claim]:
    """The registered claims (``beyond``: those beyond the paper) in report order: by number, then letter
    (1a, 1b, 2, ..., 10a), then other ids (B1, B2, ..., B10 by their number)."""
    reg = BEYOND if beyond else CLAIMS
    key = lambda k: (_order(k), int(m.group(1)) if (m := re.match(r"[A-Z]+(\d+)$", k)) else 0)
    return [reg[k] for k in sorted(reg, key=lambda k: (key(k)[0][0], key(k)[1], key(k)[0]))]


# ------------------------------------------------------------------------------------------------ runs
class Results:
    """The runs each experiment means at one scale (``bnstudy.runs.RunSet``: the rule is
    ``bnstudy.runs.SELECTION_RULE``), as :class:`~bnstudy.claims.liveness.Run`, plus the notes of runs left out."""

    def __init__(self, root: Path | RunSet, scale: str = "quick", sweeps: Iterable[Path] = ()):
        self.runset = root if isinstance(root, RunSet) else RunSet(root, scale, sweeps)
        self.root, self.scale = self.runset.root, self.runset.scale
        self._runs: dict[str, list[Run]] = {}

    parent: Optional["Results"] = None  # only_seed's view: the runs of ``parent`` with this seed
    seed = None

    def runs(self, name: str) -> list[Run]:
        if name not in self._runs:
            self._runs[name] = ([r for r in self.parent.runs(name) if r.seed == self.seed] if self.parent else
                                [Run.of(r) for r in self.runset.runs(name)])
        return self._runs[name]

    def only_seed(self, seed) -> "Results":
        """The runs of one seed (a view sharing these runs and their loaded metrics): a claim judged per seed."""
        view = Results(self.runset)
        view.parent, view.seed = self, seed
        return view

    def seeds(self, names: Iterable[str]) -> list:
        """The seeds of the runs of these experiments."""
        return sorted({r.seed for n in names for r in self.runs(n)}, key=str)

    def other_scale(self, scale: str) -> "Results":
        """The runs of another scale under the same root (e.g. the paper-scale ``dln_sweep`` from a quick report)."""
        return Results(RunSet(self.root, scale))

    def notes(self, name: str) -> list[str]:
        return self.runset.experiment(name).notes

    def groups(self, name: str) -> dict[tuple[str, float], list[Run]]:
        out: dict[tuple[str, float], list[Run]] = {}
        for run in self.runs(name):
            out.setdefault((run.norm, run.lr), []).append(run)
        return dict(sorted(out.items(), key=lambda kv: (kv[0][1], kv[0][0])))


# --------------------------------------------------------------------------------------------- helpers
def seed_mean(runs: list[Run], fn: Callable[[Run], float]) -> tuple[float, int]:
    """Mean of ``fn`` over the runs' seeds (NaN values skipped), and how many counted."""
    vals = [fn(r) for r in runs]
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
        return math.nan, 0
    return (math.inf if any(math.isinf(v) and v > 0 for v in vals) else float(np.mean(vals))), len(vals)


def combine(outcomes: list[Optional[bool]]) -> str:
    decided = [o for o in outcomes if o is not None]
    if not decided:
        return INCONCLUSIVE
    return HOLDS if all(decided) else FAILS


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



def check_claims(results_root: Path | RunSet, scale: str = "quick", sweeps: Iterable[Path] = ()) -> list[ClaimResult]:
    """Every registered claim's verdict over the runs each experiment means (a ``RunSet``, or the finished
    runs of ``scale`` under ``results_root``, reading the named ``sweeps`` where given)."""
    R = Results(results_root, scale, sweeps)
    return [with_seeds(R, c, c.check(R, c)) for c in ordered()]


def check_beyond(results_root: Path | RunSet, scale: str = "quick", sweeps: Iterable[Path] = ()) -> list[ClaimResult]:
    """Every claim beyond the paper (:data:`BEYOND`), as :func:`check_claims` does the paper's."""
    R = Results(results_root, scale, sweeps)
    return [with_seeds(R, c, c.check(R, c)) for c in ordered(beyond=True)]


def with_seeds(R: Results, c: Claim, result: ClaimResult) -> ClaimResult:
    """The result with ``seeds`` set: of the seeds its experiments ran, how many give the same verdict when
    the claim is judged on that seed's runs alone ("3/3"); nothing with a single seed or a claim not run."""
    seeds = R.seeds(c.experiments)
    if len(seeds) > 1 and result.verdict != NOT_RUN:
        agree = sum(c.check(R.only_seed(s), c).verdict == result.verdict for s in seeds)
        result.seeds = f"{agree}/{len(seeds)}"
    return result
