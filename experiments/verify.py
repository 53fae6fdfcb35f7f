"""Did I reproduce it? Compare your runs with the committed reference: ``make verify``.

    python -m experiments.verify --results results --scale quick [--reference results/reference/quick] [--table]

For each experiment of the reference it takes your runs as figures and the report read them
(``bnstudy.runs.RunSet``, which never reads a reference's runs as yours), pairs each with the reference run of
its config and seed, and compares every scalar metric and the run's status by the rule that fits it
(``bnstudy.verify``: identical bits on the reference's own environment; else outcomes by their last
value in the reference seeds' band, chaotic per-step quantities by their median over the later half of
the run in the band the reference's seeds took there). It also judges the paper's claims on your runs
and on the reference's (on your seeds) and compares the verdicts.

It prints the answer first (which experiments you ran, whether every value and every claim's verdict
matches), then the claims, a per-experiment count and each value that differs with its likely cause
(the config keys and provenance fields that differ); ``--table`` prints every value. Exit status 0 when
everything compared matches, 1 when a value or a verdict differs or a run of the reference's configs is
missing, 2 on bad input (one line naming the file and the fix). It writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pandas as pd

from bnstudy.claims import check_claims
from bnstudy.reference import ReferenceError, load_reference
from bnstudy.runs import BadRunError, RunSet, one_line_warnings
from bnstudy.verify import ABS_TOL, REL_TOL, RULES, WIDENED, ClaimRow, RunResult, Side, agree, compare_run, metrics_of, \
    missing_runs, swept_keys


def _read_summary(run: Path) -> dict:
    path = run / "summary.json"
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
            raise ValueError("no config in it")
    except (OSError, ValueError) as e:
        raise ReferenceError(f"{path} is corrupt or unreadable ({type(e).__name__}: {str(e)[:60]}): rerun that job "
                             f"or remove its folder (python -m experiments.clean_results {run})") from None
    return summary


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _seeds(seeds) -> str:
    seeds = sorted(seeds, key=str)
    return f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"


def claim_rows(runset, ref_dir: Path, scale: str, your_seeds: set, ref_seeds: set) -> tuple[list[ClaimRow], str]:
    """Your verdicts against the reference's on your seeds (all its seeds if it has none of yours)."""
    seeds = your_seeds & ref_seeds or ref_seeds
    yours = check_claims(runset, scale)
    theirs = check_claims(RunSet(ref_dir, scale, seeds=seeds), scale)
    rows = agree(yours, theirs, None)
    if any(r.agreement == "DIFFERS" for r in rows) and len(ref_seeds) > 1:
        per_seed = {s: check_claims(RunSet(ref_dir, scale, seeds=[s]), scale) for s in sorted(ref_seeds)}
        rows = agree(yours, theirs, per_seed)
    return rows, _seeds(seeds)


def answer(results: list[RunResult], missing: dict[str, list[str]], claims: list[ClaimRow], ran: list[str],
           not_run: list[str], seeds: set, ref_seeds: str, scale: str, root: Path) -> tuple[bool, list[str]]:
    """The short answer: which experiments you ran and whether everything compared matches."""
    bad_runs = [r for r in results if r.differs]
    n_missing = sum(len(m) for m in missing.values())
    bad_claims = [c.id for c in claims if c.differs]
    ok = not (bad_runs or n_missing or bad_claims)
    compared = [c for c in claims if c.agreement != "not run"]
    lines = [f"Did you reproduce it? {'Yes' if ok else 'No'}. You ran {len(ran)} of the reference's "
             f"{len(ran) + len(not_run)} experiments at {scale} scale ({len(results)} runs, {_seeds(seeds)}; "
             f"under {root}): {', '.join(ran)}."]
    if ok:
        same = sum(c.agreement == "same" for c in compared)
        lines.append("Every value is within its rule, and " + (
            f"the verdict of each of the {len(compared)} claims your runs decide is the reference's on {ref_seeds}"
            + (f" ({same} the same, {len(compared) - same} as one of the reference's seeds alone)."
               if same < len(compared) else ".") if compared else "none of the paper's claims rests on these runs."))
    else:
        why = []
        if bad_runs:
            per = pd.Series([r.experiment for r in bad_runs]).value_counts(sort=False)
            why.append(f"{len(bad_runs)} of {len(results)} runs differ from the reference "
                       f"({', '.join(f'{e} {n}' for e, n in per.items())})")
        if n_missing:
            why.append(f"{n_missing} run(s) of the reference's configs are missing from yours "
                       f"({', '.join(f'{e} {len(m)}' for e, m in missing.items() if m)})")
        if bad_claims:
            why.append(f"the verdict of claim{'s' * (len(bad_claims) > 1)} {', '.join(bad_claims)} differs from the "
                       f"reference's")
        why = "; ".join(why)
        lines.append(why[0].upper() + why[1:] + ".")
    if not_run:
        lines.append(f"Not run, so not compared: {', '.join(not_run)}.")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.verify", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"), help="your runs (default: results)")
    p.add_argument("--scale", default="quick", choices=["quick", "paper"])
    p.add_argument("--reference", type=Path, default=None, help="default: results/reference/<scale>")
    p.add_argument("--experiments", nargs="*", default=None, help="default: every experiment of the reference")
    p.add_argument("--abs-tol", type=float, default=ABS_TOL)
    p.add_argument("--rel-tol", type=float, default=REL_TOL)
    p.add_argument("--table", action="store_true", help="print every value compared, with its rule")
    a = p.parse_args(argv)
    ref_dir = a.reference or Path("results/reference") / a.scale
    one_line_warnings()
    try:
        reference = load_reference(ref_dir)
        unknown = [e for e in a.experiments or [] if e not in reference]
        if unknown:
            raise ReferenceError(f"unknown experiment {', '.join(unknown)}: the reference at {ref_dir} has "
                                 f"{', '.join(reference)}")
        experiments = a.experiments or list(reference)
        runset = RunSet(a.results, a.scale)  # never a reference's runs (bnstudy.runs.SELECTION_RULE)
        chosen = {e: runset.experiment(e) for e in experiments}
        mine = {e: [Side(r.path, _read_summary(r.path), r.metrics) for r in x.runs] for e, x in chosen.items()}
        if not any(mine.values()):
            raise ReferenceError(f"no runs of {', '.join(experiments)} at scale {a.scale} under {a.results}: "
                                 f"run make all SCALE={a.scale} (or the experiment's target) first")
        refs = {e: [Side(r.path, r.summary) for r in reference[e]] for e in experiments if mine[e]}
        for e, sides in refs.items():
            for s in sides:
                metrics_of(s, "reference")
    except (ReferenceError, BadRunError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    for e in refs:
        shown = swept_keys(refs[e])
        for side in refs[e] + mine[e]:
            side.shown = shown
    ran = [e for e in experiments if mine[e]]
    not_run = [e for e in experiments if not mine[e]]
    results = [compare_run(e, yours, refs[e], a.abs_tol, a.rel_tol) for e in ran for yours in mine[e]]
    missing = {e: missing_runs(mine[e], refs[e]) for e in ran}
    seeds = {s.seed for e in ran for s in mine[e]}
    ref_seeds = {s.summary["config"].get("seed") for e in reference for s in reference[e]}
    claims, ref_on = claim_rows(runset, ref_dir, a.scale, seeds, ref_seeds)
    ok, lines = answer(results, missing, claims, ran, not_run, seeds, ref_on, a.scale, a.results)
    print("\n".join(lines))

    print(f"\nThe paper's claims: your verdict, and the reference's on {ref_on}:")
    for c in claims:
        agreement = {"seeds": "as one of the reference's seeds"}.get(c.agreement, c.agreement)
        print(f"  {c.id:4s} {c.yours:14s} {c.reference:14s} {agreement}" + (f" ({c.note})" if c.note else ""))

    values = [v for r in results for v in r.values]
    df = pd.DataFrame([vars(v) for v in values])
    print("\nThe numbers: how many values each rule compared, and how many differ. The rules:")
    for rule, text in RULES.items():
        print(textwrap.fill(text, 110, initial_indent=f"  {rule:10s}", subsequent_indent=" " * 12))
    print(textwrap.fill(f"({WIDENED.replace('abs_tol', f'{a.abs_tol:g}').replace('rel_tol', f'{a.rel_tol:g}')})", 110,
                        initial_indent="  ", subsequent_indent="   "))
    counts = (df.assign(n=1).pivot_table(index="experiment", columns="rule", values="n", aggfunc="sum", fill_value=0)
              .reindex(columns=[c for c in RULES if c in set(df["rule"])]))
    counts.insert(0, "runs", pd.Series([r.experiment for r in results]).value_counts())
    counts["differ"] = df.groupby("experiment")["verdict"].apply(lambda v: int((v == "DIFFERS").sum()))
    counts["missing runs"] = pd.Series({e: len(m) for e, m in missing.items()})
    counts.columns.name = None
    print(counts.reindex(ran).rename_axis("experiment").to_string())
    if a.table:
        print()
        print(df[["experiment", "run", "metric", "rule", "reference", "low", "high", "yours", "verdict"]]
              .map(_fmt).to_string(index=False))
        print("reference: the paired reference run's last value; low..high: the band of the rule; yours: your last "
              "value, or (rule run) the median of your later half")
    else:
        print("Every value with its rule and band: the same command with --table (ARGS=--table for make verify).")

    bad = [r for r in results if r.differs]
    if bad:
        print(f"\n{len(bad)} run(s) differ from the reference ({sum(v.differs for v in values)} value(s) beyond their "
              f"rule):")
        for r in bad:
            shown = [v for v in r.values if v.differs]
            parts = [f"{v.metric} {_fmt(v.yours)} (reference {_fmt(v.low)}..{_fmt(v.high)}, {v.rule})"
                     if v.rule in ("final", "run") else f"{v.metric} {_fmt(v.yours)} (reference {_fmt(v.reference)})"
                     for v in shown[:4]] + [f"{len(shown) - 4} more"] * (len(shown) > 4)
            if r.other_config:
                parts.insert(0, "the reference has no run of its config")
            print(f"- {r.title()}: {'; '.join(parts)}. Likely cause: {'; '.join(r.causes)}")
    for e, gone in missing.items():
        if gone:
            print(f"\n{e}: {len(gone)} run(s) of the reference's configs missing from yours: {', '.join(gone[:6])}"
                  + (" ..." if len(gone) > 6 else ""))
            for note in chosen[e].notes[:3]:
                print(f"  left out of yours: {note}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
