"""REPORT.md from the claims' results: a title, then the registered sections in order.

``render_report(results, figures, scale)`` writes the title and summary line, then each section of
:data:`SECTIONS` (registered with ``@section``, like every registry of the suite: ``bnstudy.registry``) as
``## <title>`` and its body. Tables are DataFrames rendered by :func:`markdown_table`.

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

from bnstudy.claims import FAILS, HOLDS, MIXED, VERDICTS, ClaimResult
from bnstudy.claims.base import PARAPHRASE
from bnstudy.claims.verdicts import SEED_RULE
from bnstudy.registry import Registry


@dataclass
class ReportContext:
    """What a section may draw on: the claims' results, the figures, the scale and the results folder."""

    results: list[ClaimResult]
    figures: list[Path]
    scale: str
    root: Optional[Path] = None
    extra: dict = field(default_factory=dict)  # anything the caller passes on to its own sections


@dataclass(frozen=True)
class Section:
    """A registered section: its title, its body ``body(ctx) -> markdown`` ("" leaves it out) and whether the
    title is printed as ``## title`` (``heading=False``: its body alone, a warning block at the top, say)."""

    title: str
    body: Callable[[ReportContext], str]
    heading: bool = True


SECTIONS: Registry[Section] = Registry("report section")
"""Every section by title, in report order."""


def section(title: str, *, before: Optional[str] = None, after: Optional[str] = None, heading: bool = True):
    """Decorator: register ``fn(ctx) -> markdown`` as the section ``title``: at the end, or before/after the
    named section; ``heading=False``: its body alone, no ``## title``."""
    def register(fn: Callable[[ReportContext], str]):
        anchor = before or after
        if anchor is not None and anchor not in SECTIONS:
            raise ValueError(SECTIONS.unknown(anchor, "before" if before else "after"))
        SECTIONS.add(title, Section(title, fn, heading))
        if anchor is not None:  # move it to its place
            items = list(SECTIONS.items())
            entry = items.pop()
            items.insert([t for t, _ in items].index(anchor) + (1 if after else 0), entry)
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


def said(r: ClaimResult) -> str:
    """The source's words as the report shows them: verbatim (in quotation marks, with their place) or
    labelled the suite's paraphrase."""
    return f"(paraphrase, not the source's words) {r.paper}" if r.quote == PARAPHRASE else r.paper


def verdict_cell(r: ClaimResult) -> str:
    """The verdict with how many seeds hold; bold when decided on canonical runs, labelled when exploratory."""
    if r.scope:
        return f"{r.verdict_text} (exploratory: {r.scope}; not counted)"
    return f"**{r.verdict_text}**" if r.verdict in (HOLDS, FAILS, MIXED) else r.verdict_text


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """The claims table: Claim | Figure | The paper says | Rule | Verdict | Evidence."""
    return pd.DataFrame({
        "Claim": [f"{r.id}. {r.claim}" for r in results],
        "Figure": [r.figure for r in results],
        "The paper says": [said(r) for r in results],
        "Rule (threshold: why)": [r.rule for r in results],
        "Verdict": [verdict_cell(r) for r in results],
        "Evidence (median over seeds, range)": [r.evidence for r in results],
    })


def render_table(results: list[ClaimResult]) -> str:
    """The markdown table Claim | Figure | The paper says | Rule | Verdict | Evidence."""
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


@section("Why not")
def _why_not(ctx: ReportContext) -> str:
    """For each claim that does not hold: why, derived from the runs that exist (``bnstudy.claims.verdicts.why_not``)."""
    from bnstudy.claims.verdicts import WHY_NOT

    rows = [r for r in ctx.results if r.verdict in (FAILS, MIXED, "inconclusive")]
    if not rows:
        return ""
    head = ("Each reason is derived from the runs that exist: " + "; ".join(WHY_NOT) + ". \"Settings tried\" are "
            "the runs as configured and every other setting of the claim's experiments that ran (exploratory "
            "runs, `make dln_sweep`).")
    return head + "\n\n" + "\n".join(f"- **{r.id}** ({r.verdict_text}): {r.why_not or r.evidence}" for r in rows)


@section("Exploratory runs")
def _exploratory(ctx: ReportContext) -> str:
    """Each claim judged on the exploratory runs of its experiments (other settings), apart and never counted."""
    from bnstudy.claims.base import GROUPS
    from bnstudy.claims.verdicts import exploratory_results

    runs = ctx.extra.get("runs")
    if runs is None:
        return ""
    results = [r for group in GROUPS for r in exploratory_results(runs, group=group)]
    if not results:
        return ""
    df = pd.DataFrame({"Claim": [f"{r.id}. {r.claim}" for r in results], "On runs that differ": [r.scope for r in results],
                       "Verdict": [r.verdict_text for r in results], "Evidence": [r.evidence for r in results]})
    return ("Runs whose settings differ from the experiment as configured (another lr, steps, model, ...) are "
            "judged here, apart, by the same rules. These verdicts are about those settings, not the paper's "
            "experiment, and are not counted above.\n\n" + markdown_table(df))


@section("The DLN's loss scale (make dln_sweep)")
def _dln_sweep(ctx: ReportContext) -> str:
    """Claims 4b and 6b at each lr of the DLN sweep, each seed judged alone: how the open loss scale decides them."""
    from bnstudy.claims import CLAIMS
    from bnstudy.claims.base import Results
    from bnstudy.claims.verdicts import judge

    runs = ctx.extra.get("runs")
    if runs is None:
        return ""
    R = Results(runs)
    table = []
    for label, view in CLAIMS["4b"].settings(R) if CLAIMS["4b"].settings else []:
        r4 = judge(view, CLAIMS["4b"], why=False)
        r6 = judge(view, CLAIMS["6b"], why=False) if CLAIMS["6b"].settings else None
        table.append({"setting": label, "4b": r4.verdict_text, "4b evidence": r4.evidence,
                      "6b": r6.verdict_text if r6 else "-", "6b evidence": r6.evidence if r6 else "-"})
    if not table:
        return ""
    return ("The paper does not say whether its DLN loss is summed over the 1,000 samples or halved (½·sum, "
            "TensorFlow's `l2_loss`); an SGD step on ½·sum at lr is the step on the sum at lr/2 "
            "(`train.loss=mse_half_sum`). `make dln_sweep` runs the full 10,000 steps at lr 1e-6, 5e-7, 2.5e-7 "
            "and 1e-7 (summed loss) for standard, BN and l1; claims 4b and 6b are judged at each lr by the rules "
            "above, each seed alone. Oscillating steps: the fraction of logged steps with cos(g_t-1, g_t) < -0.5 "
            "(a period-2 flip, not ICS).\n\n" + markdown_table(pd.DataFrame(table)))


@section("Beyond the paper")
def _beyond(ctx: ReportContext) -> str:
    """Claims of later work judged on ``make curvature``, ``make theory`` and ``make signal`` runs
    (``bnstudy/claims/beyond.py``); left out when none of their experiments ran."""
    return group_section(ctx, "beyond", "Measurements the paper does not make (docs/beyond.md): what later work says "
                         "about curvature, the paper's own Theorem 4.1, scale invariance and signal at initialisation, "
                         "checked the same way (each seed alone). They are not among the paper's claims counted above.")


def group_section(ctx: ReportContext, group: str, intro: str, said: str = "Who says it", runs=None) -> str:
    """A claim group's section: ``intro``, its claims table (the source's words under ``said``), the why-not lines
    and, for a group shown in its own section (:data:`OWN_SECTION`), its figures; "" when none of its claims ran.
    ``runs``: the RunSet its claims read (default: the report's)."""
    from bnstudy.claims import NOT_RUN, check_group

    runs = runs if runs is not None else ctx.extra.get("runs")
    if runs is None:
        return ""
    results = check_group(runs, group)
    if all(r.verdict == NOT_RUN for r in results):
        return ""
    df = claims_frame(results).rename(columns={"The paper says": said})
    figures = [f for f in ctx.figures if group in OWN_SECTION and figure_group(f, ctx.scale) == group]
    return (intro + "\n\n" + markdown_table(df) + why_not_lines(results)
            + "".join(f"\n\n![{Path(f).stem}](figures/{Path(f).name})" for f in figures))


def why_not_lines(results: list[ClaimResult]) -> str:
    """Below a group's table: "why not" for each of its claims that does not hold (as the paper's "Why not"
    section), then the runs and steps its claims left out or counted specially (as "Excluded runs")."""
    rows = [r for r in results if r.verdict in (FAILS, MIXED, "inconclusive")]
    out = ("\n\nWhy not:\n\n" + "\n".join(f"- **{r.id}** ({r.verdict_text}): {r.why_not or r.evidence}"
                                           for r in rows)) if rows else ""
    claims_of: dict[str, list[str]] = {}
    for r in results:
        for n in r.excluded.splitlines():
            if n.strip():
                claims_of.setdefault(n.strip(), []).append(r.id)
    if claims_of:
        out += "\n\nLeft out or counted specially:\n\n" + "\n".join(
            f"- {cell(n)} (claim{'s' if len(ids) > 1 else ''} {', '.join(ids)})" for n, ids in claims_of.items())
    return out


@section("What the tutorials say")
def _tutorials(ctx: ReportContext) -> str:
    """The tutorials' claims judged on ``make tutorials`` runs (``bnstudy/claims/tutorials.py``), with their
    figure; left out when none of their runs or CSVs exist. They always run at quick scale."""
    from bnstudy.claims.tutorials import EXPLAINER, GROUP, SCALE, UNSTABLE
    from bnstudy.runs import RunSet

    runs = ctx.extra.get("runs")
    if runs is None:
        return ""
    return group_section(ctx, GROUP, f"Two tutorials state the common wisdom about BatchNorm with numbers attached: "
                         f"\"{UNSTABLE}\" and {EXPLAINER}. `make tutorials` turns each sentence into a measurement on "
                         "the small CNN (Fashion-MNIST, plain SGD, a few hundred steps), judged the same way (each seed "
                         "alone; rules and thresholds in `bnstudy/claims/tutorials.py`). They are not among the paper's "
                         "claims counted above.", said="The tutorial says",
                         runs=runs if runs.scale == SCALE else RunSet(runs.root, SCALE))


OWN_SECTION = ("tutorials", "modern")
"""Figure groups shown in their own section (with their claims), not among the figures."""


def figure_group(path: Path, scale: str) -> str:
    """The group a drawn figure was registered in (``bnstudy.figures.GROUPS``); "" for a file of no figure."""
    from bnstudy.figures import FIGURES

    name = figure_name(Path(path).stem, scale)
    return FIGURES[name].group if name in FIGURES else ""


@section("Residual networks and transformers", after="Beyond the paper")
def _modern(ctx: ReportContext) -> str:
    """Claims of later work on ResNets and transformers, and the paper's thesis carried over to them, judged on
    ``make modern`` runs (``bnstudy/claims/modern.py``), with their figures; left out when none of them ran."""
    return group_section(ctx, "modern", "The paper's question asked of the networks trained today (`make modern`, "
                         "docs/modern.md): a CIFAR ResNet-20 with BatchNorm, without a norm, with Fixup and with "
                         "SkipInit, and a small vision transformer with pre-LN, post-LN, pre-RMSNorm, no norm and "
                         "SkipInit. What later work says of them, and whether each normalisation smooths the landscape "
                         "the way BatchNorm does the VGG's, checked the same way (each seed alone). They are not among "
                         "the paper's claims counted above.")


@section("Runs")
def _runs(ctx: ReportContext) -> str:
    """Which runs each experiment means (the rule, then one row per experiment with runs)."""
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
                     "Canonical": "yes" if e.canonical else (f"no: {e.exploratory}" if e.runs else "-"),
                     "Exploratory runs apart": sum(len(o.runs) for o in e.others),
                     "Left out": len([n for n in e.notes if not n.endswith("judged apart")])})
    table = markdown_table(pd.DataFrame(rows)) if rows else "No runs."
    return f"{SELECTION_RULE} {DUPLICATE_RULE}\n\n{table}"


@section("Excluded runs")
def _excluded(ctx: ReportContext) -> str:
    """Every run left out, per experiment (whether or not a claim reads it), with the claims it concerns."""
    claims_of: dict[str, list[str]] = {}  # each note once, with the claims it applies to
    for r in ctx.results:
        for n in r.excluded.splitlines():
            if n.strip():
                claims_of.setdefault(n.strip(), []).append(r.id)
    runs = ctx.extra.get("runs")
    for name in (runs.names() if runs is not None else []):
        for n in runs.experiment(name).notes:
            if not n.endswith("judged apart"):
                claims_of.setdefault(n.strip(), [])
    if not claims_of:
        return "None."
    return "\n".join(f"- {cell(n)}" + (f" (claim{'s' if len(ids) > 1 else ''} {', '.join(ids)})" if ids else "")
                     for n, ids in claims_of.items())


@section("Provenance")
def _provenance(ctx: ReportContext) -> str:
    """What made the runs (``bnstudy.report_provenance``): one row per environment."""
    body = _provenance_parts(ctx)[1]
    return body.split("\n", 1)[1].lstrip("\n") if body.startswith("## Provenance") else body


def figure_name(stem: str, scale: str) -> str:
    """A figure's registered name from its file's stem (``fig1_quick`` -> ``fig1``)."""
    return stem[: -len(f"_{scale}")] if stem.endswith(f"_{scale}") else stem


def caption(stem: str, scale: str, runs=None, figure: Optional[Path] = None) -> str:
    """A figure's caption: what it shows (its registration's caption), and the runs it was drawn from: the
    footer ``draw`` wrote beside it (``<stem>.runs.txt``), so caption and figure count the same runs; else the
    runs each experiment means."""
    from bnstudy.figures import FIGURES
    from bnstudy.paths import FIGURE_RUNS_SUFFIX as RUNS_SUFFIX

    name = figure_name(stem, scale)
    text = FIGURES[name].caption if name in FIGURES else f"{name}."
    sidecar = Path(figure).with_name(stem + RUNS_SUFFIX) if figure is not None else None
    if sidecar is not None and sidecar.is_file() and not sidecar.is_symlink():
        lines = [line for line in sidecar.read_text(errors="replace").splitlines()[:20] if line.strip()]
        if lines:
            return text + " Drawn from: " + "; ".join(cell(line)[:300] for line in lines) + "."
    experiments = FIGURES[name].experiments if name in FIGURES else ()
    if runs is not None and experiments:
        described = [runs.experiment(e).describe() for e in experiments if runs.experiment(e).runs]
        if described:
            text += " Runs: " + "; ".join(described) + "."
    return text


@section("Figures")
def _figures(ctx: ReportContext) -> str:
    figures = [f for f in ctx.figures if figure_group(f, ctx.scale) not in OWN_SECTION]
    if not figures:
        return f"No figures found (results/figures/*_{ctx.scale}.png)."
    runs = ctx.extra.get("runs")
    return "\n\n".join(f"### {Path(f).stem}\n\n![{Path(f).stem}](figures/{Path(f).name})\n\n"
                        f"*{caption(Path(f).stem, ctx.scale, runs, Path(f))}*" for f in figures)


def whose_runs(root: Optional[Path], shown_as: Optional[Path] = None) -> str:
    """Whose runs the verdicts are about: yours under ``root`` (the committed reference is never among them),
    or the committed reference itself. ``shown_as``: the folder named instead of ``root`` (``make reference``
    writes into a folder aside that then takes the reference's place)."""
    from bnstudy.runs import is_reference

    if root is None:
        return ""
    if is_reference(root):
        return f"The runs judged are the committed reference's, in `{shown_as or root}`."
    return (f"The runs judged are yours, in `{shown_as or root}`; the committed reference (`results/reference/quick`) is not "
            f"among them (`make verify` compares your runs with it; `make report RESULTS=results/reference/quick` "
            f"reports it).")


def render_report(results: list[ClaimResult], figures: list[Path], scale: str, date: Optional[str] = None,
                  root: Optional[Path] = None, **extra) -> str:
    """The report as markdown: title, date, then every section of :data:`SECTIONS`: (given the results
    ``root``) a warning if a figure mixes runs of several commits, torch versions or devices, the claims
    table, the excluded runs, the provenance table, then every figure (linked as ``figures/NAME.png``,
    relative to the report in the results folder)."""
    date = date or datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    canonical = [r for r in results if not r.scope]
    counts = {v: sum(r.verdict == v for r in canonical) for v in VERDICTS}
    exploratory = len(results) - len(canonical)
    out = [f"# bnstudy: claims of Santurkar et al. 2018 — scale `{scale}`", "",
           f"Generated {date} by `python -m experiments.report`. " + whose_runs(root, extra.get("shown_as")), "",
           f"**{counts[HOLDS]} of the paper's {len(results)} claims hold** on the runs of the experiments as "
           f"configured (canonical runs): " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + f". "
           f"{len(canonical)} of {len(results)} verdicts rest on canonical runs"
           + (f"; {exploratory} rest on exploratory runs (other settings) only and are not counted." if exploratory
              else "."), "",
           "\"Standard\" is the network without normalisation. \"The paper says\" quotes the paper's own words "
           "(verified in public copies of its text) with their section or figure; the suite's paraphrase is "
           "labelled so. Each rule states its threshold and why. " + SEED_RULE + " Curve claims (4a, 5) compare "
           "only the steps where both runs are live (above chance + margin, finite and decreasing loss; 4b judges "
           "the DLN's whole run); a diverged run counts at chance accuracy in the accuracy claims.", ""]
    ctx = ReportContext(list(results), [Path(f) for f in figures], scale, Path(root) if root else None, extra)
    for title, entry in SECTIONS.items():
        text = entry.body(ctx)
        if text:
            out += ([f"## {title}", ""] if entry.heading else []) + [text.rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"
