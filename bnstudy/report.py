"""REPORT.md from the claims' results: a title, then the registered sections in order.

``render_report(results, figures, scale)`` writes the title and summary line, then each section of
:data:`SECTIONS` as ``## <title>`` and its body. Tables are DataFrames rendered by :func:`markdown_table`.

**Adding a section.** Register a function of the :class:`ReportContext` that returns the section's
markdown body (``""`` leaves the section out), placed before or after an existing one::

    from bnstudy.report import ReportContext, markdown_table, section

    @section("Provenance", after="Excluded runs")
    def provenance(ctx: ReportContext) -> str:
        df = ...  # one row per run, e.g. from ctx.root
        return markdown_table(df)

The module that defines it must be imported before the report is rendered (``experiments/report.py``
imports the suite's sections; a section of the suite lives in ``bnstudy/report.py`` or is imported there).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from bnstudy.claims import FAILS, HOLDS, VERDICTS, ClaimResult


@dataclass
class ReportContext:
    """What a section may draw on: the claims' results, the figures, the scale and the results folder."""

    results: list[ClaimResult]
    figures: list[Path]
    scale: str
    root: Optional[Path] = None
    extra: dict = field(default_factory=dict)  # anything the caller passes on to its own sections


SECTIONS: dict[str, Callable[[ReportContext], str]] = {}
"""Section title -> body function, in report order."""

UNTITLED: set[str] = set()
"""Sections printed without their ``## title`` (a warning block at the top, say)."""


def section(title: str, *, before: Optional[str] = None, after: Optional[str] = None, heading: bool = True):
    """Decorator: register ``fn(ctx) -> markdown`` as the section ``title`` (at the end, or before/after
    the named section; ``heading=False``: its body alone, no ``## title``). Registering a title again
    replaces that section in place."""
    def register(fn: Callable[[ReportContext], str]):
        anchor = before or after
        (UNTITLED.discard if heading else UNTITLED.add)(title)
        if title in SECTIONS or anchor is None:
            SECTIONS[title] = fn
            return fn
        if anchor not in SECTIONS:
            raise ValueError(f"report section {anchor!r} is unknown; sections: {list(SECTIONS)}")
        items = list(SECTIONS.items())
        at = [t for t, _ in items].index(anchor) + (1 if after else 0)
        items.insert(at, (title, fn))
        SECTIONS.clear()
        SECTIONS.update(items)
        return fn
    return register


def cell(text: object) -> str:
    """One markdown table cell: one line, ``|`` escaped, ``-`` when empty."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "-"


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a markdown table, one line per row and no padding (cells stay diff-able however
    long the evidence; ``DataFrame.to_markdown`` pads every cell to its column's widest)."""
    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """The claims table: Claim | Figure | Verdict | Evidence (decided verdicts in bold)."""
    return pd.DataFrame({
        "Claim": [f"{r.id}. {r.claim}" for r in results],
        "Figure": [r.figure for r in results],
        "Verdict": [f"**{r.verdict}**" if r.verdict in (HOLDS, FAILS) else r.verdict for r in results],
        "Evidence": [r.evidence for r in results],
    }, columns=["Claim", "Figure", "Verdict", "Evidence"])


def render_table(results: list[ClaimResult]) -> str:
    """The markdown table Claim | Figure | Verdict | Evidence."""
    return markdown_table(claims_frame(results))


# -------------------------------------------------------------------------------------------- sections
def _provenance_parts(ctx: ReportContext) -> tuple[str, str]:
    """(mixed-runs warning, provenance section) of ``bnstudy.report_provenance``, computed once per report."""
    if "provenance" not in ctx.extra:
        from bnstudy.report_provenance import sections

        source = ctx.extra.get("runs") or ctx.root  # the RunSet the claims read, else the results folder
        ctx.extra["provenance"] = sections(source, ctx.scale, ctx.results) if source is not None else ("", "")
    return ctx.extra["provenance"]


@section("Mixed runs", heading=False)
def _mixed(ctx: ReportContext) -> str:
    """A warning at the top when a figure's runs mix commits, torch versions or devices."""
    return _provenance_parts(ctx)[0]


@section("Claims")
def _claims(ctx: ReportContext) -> str:
    return render_table(ctx.results)


@section("Runs")
def _runs(ctx: ReportContext) -> str:
    """Which runs each experiment means (the rule, then one row per experiment the claims read)."""
    from bnstudy.claims import ordered
    from bnstudy.runs import DUPLICATE_RULE, SELECTION_RULE

    runs = ctx.extra.get("runs")
    if runs is None:
        return ""
    names = sorted({e for c in ordered() for e in c.experiments} | set(runs.names()))
    rows = []
    for name in names:
        e = runs.experiment(name)
        if not e.runs and not e.notes:
            continue
        rows.append({"Experiment": name, "Sweeps": ", ".join(s.name for s in e.sweeps) or "-",
                     "Runs": len(e.runs), "Seeds": len(e.seeds), "Steps": "/".join(f"{s:,}" for s in e.steps) or "-",
                     "Left out": len(e.notes)})
    table = markdown_table(pd.DataFrame(rows)) if rows else "No runs."
    return f"{SELECTION_RULE} {DUPLICATE_RULE}\n\n{table}"


@section("Excluded runs")
def _excluded(ctx: ReportContext) -> str:
    claims_of: dict[str, list[str]] = {}  # each note once, with the claims it applies to
    for r in ctx.results:
        for n in r.excluded.splitlines():
            if n.strip():
                claims_of.setdefault(n.strip(), []).append(r.id)
    if not claims_of:
        return "None."
    return "\n".join(f"- {cell(n)} (claim{'s' if len(ids) > 1 else ''} {', '.join(ids)})"
                     for n, ids in claims_of.items())


@section("Provenance")
def _provenance(ctx: ReportContext) -> str:
    """What made the runs (``bnstudy.report_provenance``): one row per environment."""
    body = _provenance_parts(ctx)[1]
    return body.split("\n", 1)[1].lstrip("\n") if body.startswith("## Provenance") else body


@section("Figures")
def _figures(ctx: ReportContext) -> str:
    if not ctx.figures:
        return f"No figures found (results/figures/*_{ctx.scale}.png)."
    return "\n\n".join(f"### {Path(f).stem}\n\n![{Path(f).stem}](figures/{Path(f).name})" for f in ctx.figures)


def render_report(results: list[ClaimResult], figures: list[Path], scale: str, date: Optional[str] = None,
                  root: Optional[Path] = None, **extra) -> str:
    """The report as markdown: title, date, then every section of :data:`SECTIONS`: (given the results
    ``root``) a warning if a figure mixes runs of several commits, torch versions or devices, the claims
    table, the excluded runs, the provenance table, then every figure (linked as ``figures/NAME.png``,
    relative to the report in the results folder)."""
    date = date or datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    out = [f"# bnstudy: claims of Santurkar et al. 2018 — scale `{scale}`", "",
           f"Generated {date} by `python -m experiments.report`. Verdicts: "
           + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", "",
           "Rules and thresholds: `bnstudy/claims/` (module constants). Curve claims (4, 5) compare only the "
           "steps where both runs are live (above chance + margin, finite and decreasing loss); a diverged run "
           "counts at chance accuracy in the accuracy claims.", ""]
    ctx = ReportContext(list(results), [Path(f) for f in figures], scale, Path(root) if root else None, extra)
    for title, body in SECTIONS.items():
        text = body(ctx)
        if text:
            out += ([] if title in UNTITLED else [f"## {title}", ""]) + [text.rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"
