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
    """The claims table: Claim | Figure | The paper says | Rule | Verdict | Evidence (decided verdicts in bold,
    with how many seeds agree)."""
    return pd.DataFrame({
        "Claim": [f"{r.id}. {r.claim}" for r in results],
        "Figure": [r.figure for r in results],
        "The paper says": [r.paper for r in results],
        "Rule (threshold, margin)": [r.rule for r in results],
        "Verdict": [f"**{r.verdict_text}**" if r.verdict in (HOLDS, FAILS) else r.verdict_text for r in results],
        "Evidence": [r.evidence for r in results],
    }, columns=["Claim", "Figure", "The paper says", "Rule (threshold, margin)", "Verdict", "Evidence"])


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
    """For each claim that does not hold: which of the three reasons it is (``WHY_NOT``), with the numbers."""
    from bnstudy.claims.base import NOT_REPRODUCED, WHY_NOT

    rows = [r for r in ctx.results if r.verdict in (FAILS, "inconclusive")]
    if not rows:
        return ""
    head = ("Each claim that does not hold at this scale is one of: " + "; ".join(WHY_NOT) + ".")
    lines = [f"- **{r.id}** ({r.verdict_text}): {r.why_not or NOT_REPRODUCED + ': ' + r.evidence}" for r in rows]
    return head + "\n\n" + "\n".join(lines)


@section("The DLN's loss scale (make dln_sweep)")
def _dln_sweep(ctx: ReportContext) -> str:
    """Claims 4b and 6b at each lr of the DLN sweep: how the open loss scale decides them."""
    from bnstudy.claims.base import Notes, Results
    from bnstudy.claims.curves import DLN_SWEEP, dln_ics, oscillation, sweep_results
    from bnstudy.claims.accuracy import l1_vs_bn
    from bnstudy.claims.text import fmt, fmt_g

    runs = ctx.extra.get("runs")
    if runs is None:
        return ""
    S = sweep_results(Results(runs))
    if S is None:
        return ""
    ics, l1 = {}, {r["lr"]: r for r in l1_vs_bn(S, DLN_SWEEP, Notes())}
    for row in dln_ics(S, DLN_SWEEP, Notes()):
        ics.setdefault(row["lr"], []).append(row)
    groups = S.groups(DLN_SWEEP)
    table = []
    for lr in sorted({lr for (_, lr) in groups}, reverse=True):
        rows = ics.get(lr, [])
        ok4 = [r["ok"] for r in rows]
        l1r = l1.get(lr)
        table.append({
            "lr (summed loss)": fmt_g(lr),
            "the same as": f"½·sum at lr {fmt_g(2 * lr)}",
            "standard cos(G,G') per layer": ", ".join(f"{fmt_g(r['layer'])}: {fmt(r['std'])}" for r in rows) or "-",
            "BN cos(G,G') per layer": ", ".join(f"{fmt_g(r['layer'])}: {fmt(r['bn'])}" for r in rows) or "-",
            "standard oscillation": oscillation(groups.get(("none", lr), [])) or "-",
            "BN oscillation": oscillation(groups.get(("batch", lr), [])) or "-",
            "4b": ("holds" if all(ok4) else "does not hold") if rows and None not in ok4 else "-",
            "l1/BN loss, median": f"{l1r['median']:.4f}" if l1r and l1r["ok"] is not None else "-",
            "6b": ("holds" if l1r["ok"] else "does not hold") if l1r and l1r["ok"] is not None else "-",
        })
    return ("The paper does not say whether its DLN loss is summed over the 1,000 samples or halved (½·sum, "
            "TensorFlow's `l2_loss`); an SGD step on ½·sum at lr is the step on the sum at lr/2 "
            "(`train.loss=mse_half_sum`). `make dln_sweep` runs the full 10,000 steps at lr 1e-6, 5e-7, 2.5e-7 "
            "and 1e-7 (summed loss) for standard, BN and l1, and judges claims 4b (whole-run median cos(G,G') "
            "at the paper's layers 9 and 17) and 6b (median loss ratio l1/BN over the run) at each lr by the "
            "rules above. Oscillation: cos(g_t-1, g_t) of successive training gradients below "
            "-0.5 (a period-2 flip, not ICS).\n\n" + markdown_table(pd.DataFrame(table)))


@section("Beyond the paper")
def _beyond(ctx: ReportContext) -> str:
    """Claims of later work judged on ``make curvature``, ``make theory`` and ``make signal`` runs
    (``bnstudy/claims/beyond.py``); left out when none of their experiments ran."""
    from bnstudy.claims import NOT_RUN, check_beyond

    runs = ctx.extra.get("runs")
    if runs is None:
        return ""
    results = check_beyond(runs)
    if all(r.verdict == NOT_RUN for r in results):
        return ""
    df = claims_frame(results).rename(columns={"The paper says": "Who says it"})
    return ("Measurements the paper does not make (docs/beyond.md): what later work says about curvature, the "
            "paper's own Theorem 4.1, scale invariance and signal at initialisation, checked the same way. "
            "They are not among the paper's claims counted above.\n\n" + markdown_table(df))


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
    runs = ctx.extra.get("runs")
    for name in runs.names() if runs is not None else ():  # left out of an experiment no claim reads, too
        for n in runs.experiment(name).notes:
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


CAPTIONS = {
    "quick": "The main job: the small CNN with and without BN at lr 0.1 and 0.5, training accuracy and "
             "activation histograms.",
    "fig1": "Fig. 1: standard vs BN at lr 0.1 and 0.5, training and test accuracy, and the distribution of one "
            "unit's activations (before the ReLU) over training in two layers (the paper's #3 and #11; "
            "proportional layers at quick scale).",
    "fig2": "Figs. 2 and 8: standard, BN, noisy BN (Algorithm 1) and the same noise in the standard network: "
            "training accuracy, activation histograms and moment shifts at the paper's layers #2, #9, #13 "
            "(proportional at quick scale).",
    "fig3": "Fig. 3: gradient ICS, ||G - G'|| and cos(G, G'), standard vs BN: the CNN at lr 0.1 and 0.01 (the "
            "paper's VGG layers #5, #10), the DLN at lr 1e-6 and 1e-7 (layers #9, #17).",
    "fig4": "Fig. 4: along the gradient, the loss band (left), the gradient-predictiveness band (middle) and the "
            "effective beta (right), standard vs BN, for the CNN (top) and the DLN (bottom).",
    "fig5": "Figs. 5, 12, 13: l1, l2, linf normalisations against standard and BN: CNN training accuracy, DLN "
            "training loss and the landscape measures.",
    "browser": "Seed 001's three figures (the browser reproduction): test accuracy at a low and a high lr, the "
               "moment change with noise, the loss change and the effective beta w.r.t. activations.",
    "dln_sweep": "The DLN's loss scale: training loss, the oscillation cos(g_t-1, g_t) and cos(G, G') at layers 9 "
                 "and 17, for standard, BN and l1 at each lr of `make dln_sweep`.",
    "fig9": "Fig. 9: the DLN's activation distributions at layers #1, #11, #24 over training, standard vs BN.",
    "curvature": "Beyond the paper: the Hessian's top eigenvalue in train mode (batch statistics, solid) and eval "
                 "mode (running statistics, dashed), the batch sharpness g'Hg/|g|^2 and beta_limit |Hg|/|g|, "
                 "against 2/lr (dotted), standard vs BN: the CNN (SGD, lr 0.1) and the DLN (full-batch GD, lr 1e-6).",
    "theory": "Beyond the paper: Theorem 4.1's lhs/rhs per BN layer in the proof's form (1/m: 1 = equality) and "
              "as printed (1/sqrt m: above 1 violates it), BN's gain gamma^2/sigma^2, and the weights BN follows: "
              "|w|, the effective lr lr/|w|^2 and the norm growth against lr^2|g|^2 (BN at lr 0.1 solid, 0.5 dashed).",
    "signal": "Beyond the paper: at initialisation, |dL/dW| and the effective rank of the batch's outputs per "
              "layer, VGG-11/13/16/19 (darker: deeper) and the 25-layer DLN, standard (dashed) vs BN (solid).",
    "fig11": "Fig. 11: gradient predictiveness ||g(w) - g(w - eta g)|| against the step eta, standard vs BN, "
             "at a few steps of training.",
}
"""What each figure shows (by its name before ``_<scale>``); REPORT.md adds the runs it is drawn from."""


def caption(stem: str, scale: str, runs=None) -> str:
    """A figure's caption: what it shows, and the runs it is drawn from (each experiment's sweep, runs,
    seeds, steps; from ``bnstudy.figures.FIGURES``)."""
    name = stem[: -len(f"_{scale}")] if stem.endswith(f"_{scale}") else stem
    text = CAPTIONS.get(name, f"{name}.")
    try:
        from bnstudy.figures import FIGURES
        experiments = FIGURES[name][1]
    except (ImportError, KeyError, IndexError, TypeError):
        experiments = ()
    if runs is not None and experiments:
        described = [runs.experiment(e).describe() for e in experiments if runs.experiment(e).runs]
        if described:
            text += " Runs: " + "; ".join(described) + "."
    return text


@section("Figures")
def _figures(ctx: ReportContext) -> str:
    if not ctx.figures:
        return f"No figures found (results/figures/*_{ctx.scale}.png)."
    runs = ctx.extra.get("runs")
    return "\n\n".join(f"### {Path(f).stem}\n\n![{Path(f).stem}](figures/{Path(f).name})\n\n"
                        f"*{caption(Path(f).stem, ctx.scale, runs)}*" for f in ctx.figures)


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
           "\"Standard\" is the network without normalisation. Each claim quotes the paper and states its rule, "
           "threshold and margin (`bnstudy/claims/`, module constants); a verdict such as \"holds, 3/3\" says how "
           "many seeds, each judged alone, give the same verdict as the seed mean. Curve claims (4a, 5) compare "
           "only the steps where both runs are live (above chance + margin, finite and decreasing loss; 4b "
           "judges the DLN's whole run and shows the live steps); a diverged run counts at chance accuracy in the "
           "accuracy claims.", ""]
    ctx = ReportContext(list(results), [Path(f) for f in figures], scale, Path(root) if root else None, extra)
    for title, body in SECTIONS.items():
        text = body(ctx)
        if text:
            out += ([] if title in UNTITLED else [f"## {title}", ""]) + [text.rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"
