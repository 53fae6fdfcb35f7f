"""The findings README.md and docs/ state, generated from the committed reference through the claims.

Every number and verdict the README and the docs give about the suite's results comes from one path: the
runs of ``results/reference/quick`` -> the claims (each seed judged alone, ``bnstudy.claims``) -> the blocks
below, written between markers into the documents (``python -m experiments.findings --write``, run by
``make reference``). A test renders them again from the committed reference and fails when a document's
block differs, so prose and data cannot drift apart. Numbers are medians over the seeds with their range,
read from the claims' own evidence (:func:`value`), never recomputed here.

A block is ``<!-- generated: NAME ... -->`` ... ``<!-- /generated: NAME -->``; :data:`BLOCKS` says which
documents hold which blocks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Optional

from bnstudy.claims import FAILS, HOLDS, MIXED, ClaimResult
from bnstudy.claims.verdicts import KINDS

REFERENCE = Path("results/reference/quick")

BLOCKS: dict[str, tuple[str, ...]] = {
    "README.md": ("headline", "quick-findings", "beyond-summary", "tutorial-summary", "modern-findings"),
    "docs/beyond.md": ("beyond-claims", "tutorial-claims"),
    "docs/modern.md": ("modern-summary", "modern-claims"),
}
"""Which generated blocks each document holds (paths relative to the repository root)."""

PREVIOUS = {"count": "11 of 13", "holds": ("1a", "1b", "2", "3a", "3b", "4a", "5a", "5b", "5c", "5d", "6a"),
            "version": "the reference report of commit 12370b6"}
"""What the report said before each seed was judged alone under the paper's own words (for "what changed")."""

WHAT_CHANGED = {
    "3b": "the paper says the noise \"prevents it from training entirely\"; the rule was \"ends 10 points below the "
          "standard network\", now it is \"ends at chance\"",
    "4b": "\"almost uncorrelated\" was |cos| <= 0.5, now |cos| <= 0.2 (two standard deviations of random directions in "
          "a layer's 100 dimensions)",
    "5a": "the ratio standard/BN had to exceed 1 on the seed mean; now each seed needs at least 1.25 (BN a fifth "
          "smaller)",
    "5b": "the same margin, each seed alone: one seed's large early gap no longer speaks for the others",
    "5c": "the same margin, each seed alone",
    "5d": "the same margin, each seed alone",
    "1b": "\"significantly faster\" now asks for half the standard network's steps",
    "2": "the standard network must lose at least 5 points (was 1)",
    "3a": "noisy BN is compared with the standard network, as the paper does (was: with the noisy one)",
    "6a": "\"comparable performance\" (was \"match or beat\")",
    "6b": "unchanged rule, each seed alone",
}
"""Why a claim's verdict or rule changed with per-seed judging and the paper's words (README, "What changed")."""


# ------------------------------------------------------------------------------------------- reading
def values(r: ClaimResult, label: str, index: int = 0) -> list[float]:
    """The seeds' values of number ``index`` of the comparison ``label`` in a claim's evidence."""
    return [p.values[index][1] for p in r.parts if p.label == label and index < len(p.values)]


def value(r: ClaimResult, label: str, index: int = 0, kind: Optional[str] = None) -> str:
    """Number ``index`` of comparison ``label``: the median over the seeds with its range, as the evidence
    writes it (``0.882 [0.881, 0.887]``); "n/a" when the claim has no such comparison."""
    from bnstudy.claims.verdicts import median_range

    parts = [p for p in r.parts if p.label == label and index < len(p.values)]
    if not parts:
        return "n/a"
    return median_range(values(r, label, index), KINDS[kind or parts[0].kind(index)])


def verdict(r: ClaimResult) -> str:
    return r.verdict_text


def seeds_where(r: ClaimResult, label: str, test: Callable[[Optional[bool]], bool]) -> int:
    return sum(test(p.ok) for p in r.parts if p.label == label)


# ------------------------------------------------------------------------------------------- blocks
def headline(C: dict[str, ClaimResult]) -> str:
    paper = [r for r in C.values() if r.id[0].isdigit()]
    by = {v: [r.id for r in paper if r.verdict == v] for v in (HOLDS, FAILS, MIXED)}
    n_seeds = max((len(r.per_seed) for r in paper), default=0)
    changed = [i for i in PREVIOUS["holds"] if i not in by[HOLDS]]
    text = (f"Of the paper's {len(paper)} checked claims, **{len(by[HOLDS])} hold** on the committed reference "
            f"({n_seeds} seeds, each judged alone; a claim holds when most of its seeds do): "
            f"{', '.join(by[HOLDS]) or 'none'} hold; {', '.join(by[FAILS]) or 'none'} do not"
            + (f"; {', '.join(by[MIXED])} are mixed" if by[MIXED] else "") + ". ")
    if changed:
        text += (f"Until this version the report said {PREVIOUS['count']} ({PREVIOUS['version']}): it judged the seed "
                 f"mean with rules looser than the paper's words. What changed: "
                 + "; ".join(f"**{i}** ({WHAT_CHANGED.get(i, 'judged per seed')})" for i in changed) + ".")
    return text


def seeds_of(r: ClaimResult, label: str, ok: bool = True) -> str:
    """In how many seeds the comparison ``label`` held (``ok``) or did not: ``"2/3"``."""
    got = [p for p in r.parts if p.label == label]
    return f"{sum(p.ok is ok for p in got)}/{len(got)}"


def quick_findings(C: dict[str, ClaimResult]) -> str:
    """The paper's figures at quick scale, in words; every number and every "holds in k/n seeds" from the
    claims' evidence (no statement here is true by construction)."""
    g = lambda cid, label, i=0: value(C[cid], label, i) if cid in C else "n/a"
    k = lambda cid, label, ok=True: seeds_of(C[cid], label, ok) if cid in C else "0/0"
    v = lambda cid: f"{cid}: {verdict(C[cid])}" if cid in C else f"{cid}: not run"
    pred = lambda e: f"{e} lr {'0.1' if e == 'fig4_cnn' else '1e-06'} max ||g-g'||"
    band = lambda e: f"{e} lr {'0.1' if e == 'fig4_cnn' else '1e-06'} loss band (max-min)"
    beta = lambda e: f"{e} lr {'0.1' if e == 'fig4_cnn' else '1e-06'} beta"
    noise = "lr 0.1: standard+noise"
    lines = [
        f"- **Fig. 1** ({v('1a')}; {v('1b')}; {v('2')}): at lr 0.1 BN ends at test accuracy "
        f"{g('1a', 'lr 0.1: final test acc', 0)} against {g('1a', 'lr 0.1: final test acc', 1)} without BN, and "
        f"reaches 80% of its final train accuracy by step {g('1b', 'lr 0.1', 0)} against {g('1b', 'lr 0.1', 1)}. "
        f"At lr 0.5 the standard network ends at test accuracy {g('2', 'standard at lr 0.5', 0)} (chance: 0.1) "
        f"while BN ends at {g('2', 'standard at lr 0.5', 2)}.",
        f"- **Fig. 2** ({v('3a')}; {v('3b')}): noisy BN ends at train accuracy "
        f"{g('3a', 'lr 0.1: noisy BN vs BN', 0)} against BN's {g('3a', 'lr 0.1: noisy BN vs BN', 1)} and the "
        f"standard network's {g('3a', 'lr 0.1: noisy BN vs standard', 1)}. The same noise in the standard network "
        f"keeps it at chance (\"prevents it from training entirely\") in {k('3b', noise)} seeds: it leaves chance "
        f"at step {g('3b', noise, 1)} and ends at train accuracy {g('3b', noise, 0)}, "
        f"{g('3b', 'lr 0.1: weaker reading (the suite' + chr(39) + 's, not judged)', 0)} below the standard "
        f"network.",
        f"- **Fig. 3** ({v('4a')}; {v('4b')}): on the CNN at lr 0.01, cos(G, G′) is "
        f"{g('4a', 'fig3_cnn lr 0.01 layer 3', 0)} with BN against {g('4a', 'fig3_cnn lr 0.01 layer 3', 1)} "
        f"without (‖G − G′‖ {g('4a', 'fig3_cnn lr 0.01 layer 3', 2)} against "
        f"{g('4a', 'fig3_cnn lr 0.01 layer 3', 3)}). On the DLN at lr 1e-7 the standard network's cos(G, G′) is "
        f"{g('4b', 'lr 1e-07 layer 9', 0)} at layer 9 and BN's {g('4b', 'lr 1e-07 layer 9', 1)} (layer 17: "
        f"{g('4b', 'lr 1e-07 layer 17', 1)}): the paper's picture in {k('4b', 'lr 1e-07 layer 9')} and "
        f"{k('4b', 'lr 1e-07 layer 17')} seeds. At lr 1e-6 it is {g('4b', 'lr 1e-06 layer 17', 0)} and "
        f"{g('4b', 'lr 1e-06 layer 17', 1)} at layer 17 (the paper's picture in {k('4b', 'lr 1e-06 layer 17')}).",
        f"- **Fig. 4** ({v('5a')}; {v('5b')}; {v('5c')}): standard / BN over the live steps (where both networks "
        f"train: above chance, finite and falling loss), per seed, on the CNN "
        f"and the DLN: the loss band {g('5a', band('fig4_cnn'), 2)} and {g('5a', band('fig4_dln'), 2)}; gradient "
        f"predictiveness {g('5b', pred('fig4_cnn'), 2)} and {g('5b', pred('fig4_dln'), 2)}; effective β "
        f"{g('5c', beta('fig4_cnn'), 2)} and {g('5c', beta('fig4_dln'), 2)}. BN is smoother by the rule's "
        f"quarter in {k('5a', band('fig4_cnn'))}, {k('5b', pred('fig4_cnn'))}, {k('5c', beta('fig4_cnn'))} seeds "
        f"on the CNN and {k('5a', band('fig4_dln'))}, {k('5b', pred('fig4_dln'))}, {k('5c', beta('fig4_dln'))} "
        f"on the DLN. Over the first quarter of the DLN's run the predictiveness ratio is "
        f"{g('5b', pred('fig4_dln'), 3)}.",
        f"- **Fig. 5** ({v('6a')}; {v('6b')}): ℓ1, ℓ2, ℓ∞ end at train accuracy {g('6a', 'lr 0.1 l1', 0)}, "
        f"{g('6a', 'lr 0.1 l2', 0)}, {g('6a', 'lr 0.1 linf', 0)} against BN's {g('6a', 'lr 0.1 l1', 1)}. On the DLN "
        f"the loss ratio ℓ1/BN has median {g('6b', 'lr 1e-06', 4)} over the run (ℓ1 lower by the rule's 1% in "
        f"{k('6b', 'lr 1e-06')} seeds).",
        f"- **The browser reproduction** ({v('5d')}): standard / BN of the loss change between steps "
        f"{g('5d', 'browser lr 0.1 |loss change|', 2)} at lr 0.1 and {g('5d', 'browser lr 0.5 |loss change|', 2)} "
        f"at lr 0.5; of β w.r.t. activations {g('5d', 'browser lr 0.1 beta (activations)', 2)} and "
        f"{g('5d', 'browser lr 0.5 beta (activations)', 2)}.",
    ]
    return "\n".join(lines)


M5_LAST, M5_EXPONENT = "ResNet-110: BN below standard at the last unit", "ResNet-110: BN's exponent"
"""Claim M5's two comparisons on the deepest ResNet of resnet_signal (their labels in its evidence)."""


def modern_findings(C: dict[str, ClaimResult]) -> str:
    """What make modern found, in words; every number from the claims' evidence (medians over seeds, range)."""
    if not C:
        return "No runs of make modern in the reference yet."
    g = lambda cid, label, i=0: value(C[cid], label, i) if cid in C else "n/a"
    v = lambda cid: f"{cid}: {verdict(C[cid])}" if cid in C else f"{cid}: not run"
    band = lambda exp, a, b: f"{exp} lr 0.1 loss band: {a} / {b}"
    dead = lambda cid, run: [n for n in C[cid].excluded.splitlines() if n.startswith(run) and "not live" in n] \
        if cid in C else []
    not_live = lambda cid, run: f"{len(dead(cid, run))} run(s)"
    why_not_live = lambda cid, run: ", ".join(sorted({n.split(": ")[2].split(" - ")[0] for n in dead(cid, run)
                                                      if n.count(": ") >= 2})) or "none"
    lines = [
        f"- **ResNet-20** ({v('M6')}; {v('M7')}; {v('M1')}; {v('M5')}): at lr 0.1 BN ends at test accuracy "
        f"{g('M6', 'resnet lr 0.1', 1)}, SkipInit at {g('M6', 'resnet lr 0.1', 0)}, Fixup at "
        f"{g('M7', 'resnet lr 0.1', 0)}, the network with neither (He init) at {g('M6', 'resnet lr 0.1', 2)} (chance: "
        f"0.1); at lr 0.5 Fixup ends at {g('M7', 'resnet lr 0.5', 0)}, SkipInit at {g('M6', 'resnet lr 0.5', 0)}, BN at "
        f"{g('M6', 'resnet lr 0.5', 1)}. The loss band along the gradient at lr 0.1, SkipInit's over BN's: "
        f"{g('M1', band('resnet', 'SkipInit', 'BN'), 2)}; Fixup's over BN's: {g('M1', band('resnet', 'Fixup', 'BN'), 2)} "
        f"(the rule asks >= 1.25x). At initialisation BN's branch adds "
        f"{g('M5', M5_LAST, 2)} of the skip path's RMS at ResNet-110's first "
        f"unit and {g('M5', M5_LAST, 0)} at its last (without a norm: "
        f"{g('M5', M5_LAST, 1)}), falling as unit^-"
        f"{g('M5', M5_EXPONENT, 0)} (De & Smith: 1/2).",
        f"- **ViT** ({v('M2')}; {v('M3')}; {v('M4')}): under plain SGD {not_live('M2', 'vit none')} of the ViT without "
        f"a norm are left out (not live: {why_not_live('M2', 'vit none')}); the loss band at lr 0.1, SkipInit's ViT "
        f"over the normalised one's: {g('M2', band('vit', 'SkipInit', 'pre-LN'), 2)} for pre-LN, "
        f"{g('M2', band('vit', 'SkipInit', 'post-LN'), 2)} for post-LN, "
        f"{g('M2', band('vit', 'SkipInit', 'pre-RMSNorm'), 2)} for pre-RMSNorm (the rule asks >= 1.25x). At "
        f"initialisation post-LN's gradient at the last unit is {g('M3', 'ViT, 4 layers', 2)} pre-LN's with 4 layers "
        f"and {g('M3', 'ViT, 16 layers', 2)} with 16. Under Adam at lr 0.01 post-LN ends at test accuracy "
        f"{g('M4', 'post-LN, Adam lr 0.01', 0)} without warm-up and {g('M4', 'post-LN, Adam lr 0.01', 1)} with it; "
        f"pre-LN at {g('M4', 'pre-LN, Adam lr 0.01', 0)} and {g('M4', 'pre-LN, Adam lr 0.01', 1)}.",
    ]
    return "\n".join(lines)


def claim_list(results: list[ClaimResult]) -> str:
    """One line per claim: its verdict, and its first comparisons' numbers (medians over seeds, range)."""
    lines = []
    for r in results:
        evidence = r.evidence.split("; ")
        shown = "; ".join(evidence[:2]) + (" ..." if len(evidence) > 2 else "")
        lines.append(f"- **{r.id}** {r.claim}: **{r.verdict_text}**. {shown}")
    return "\n".join(lines) if lines else "No runs."


def summary(results: list[ClaimResult], what: str, where: str) -> str:
    """One sentence: how many of a group's claims hold, which, and where each is listed with its numbers."""
    if not results:
        return f"No {what} in the reference yet."
    by: dict[str, list[str]] = {}
    for r in results:
        by.setdefault(r.verdict, []).append(r.id)
    said = "; ".join(f"{v}: {', '.join(ids)}" for v, ids in by.items())
    return (f"Of the {len(results)} {what} judged on the reference, **{len(by.get(HOLDS, []))} hold** ({said}); "
            f"{where} lists each with its source, rule and numbers.")


def render(reference: Path = REFERENCE) -> dict[str, str]:
    """Every block's text, from the runs of the reference folder."""
    from bnstudy.claims import check_claims, check_group
    from bnstudy.runs import RunSet

    runs = RunSet(reference, "quick")
    paper = {r.id: r for r in check_claims(runs)}
    beyond = [r for r in check_group(runs, "beyond") if r.verdict != "not run"]
    tutorials = _tutorials(runs)
    modern = [r for r in check_group(runs, "modern") if r.verdict != "not run"]
    return {
        "headline": headline(paper),
        "quick-findings": quick_findings(paper),
        "beyond-summary": summary(beyond, "claims of later work", "[docs/beyond.md](docs/beyond.md)"),
        "tutorial-summary": summary(tutorials, "tutorial sentences", "[docs/beyond.md](docs/beyond.md)"),
        "beyond-claims": claim_list(beyond),
        "tutorial-claims": claim_list(tutorials),
        "modern-summary": summary(modern, "claims on residual networks and transformers", "the list below"),
        "modern-claims": claim_list(modern),
        "modern-findings": modern_findings({r.id: r for r in modern}),
    }


def _tutorials(runs) -> list[ClaimResult]:
    """The tutorials' claims, when the claims package registers them (their own group)."""
    try:
        from bnstudy.claims import check_group
    except ImportError:
        return []
    return [r for r in check_group(runs, "tutorials") if r.verdict != "not run"]


# ------------------------------------------------------------------------------------------- documents
def _marker(name: str) -> tuple[str, str]:
    return (f"<!-- generated: {name} (python -m experiments.findings --write; edit bnstudy/findings.py, not here) -->",
            f"<!-- /generated: {name} -->")


def blocks_in(text: str) -> dict[str, str]:
    """The generated blocks a document holds: name -> body."""
    out = {}
    for m in re.finditer(r"<!-- generated: ([\w-]+)[^>]*-->\n(.*?)\n<!-- /generated: \1 -->", text, re.S):
        out[m.group(1)] = m.group(2)
    return out


def replace_blocks(text: str, bodies: dict[str, str]) -> str:
    """``text`` with each named block's body replaced (blocks not named stay)."""
    def sub(m: re.Match) -> str:
        name = m.group(1)
        begin, end = _marker(name)
        return f"{begin}\n{bodies[name]}\n{end}" if name in bodies else m.group(0)

    return re.sub(r"<!-- generated: ([\w-]+)[^>]*-->\n.*?\n<!-- /generated: \1 -->", sub, text, flags=re.S)


def stale(root: Path, bodies: dict[str, str]) -> list[str]:
    """``document: block`` for each block that is missing or differs from ``bodies``."""
    out = []
    for doc, names in BLOCKS.items():
        have = blocks_in((root / doc).read_text(encoding="utf-8"))
        out += [f"{doc}: {n}" for n in names if have.get(n) != bodies[n]]
    return out

