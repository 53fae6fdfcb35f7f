"""Check the paper's claims against the runs of one scale and write ``<results>/REPORT.md``.

    python -m experiments.report --results results --scale quick

Reads the runs each experiment means under ``--results`` (``bnstudy.runs.SELECTION_RULE``; ``--sweep DIR ...``
names the sweeps instead), checks the claims on them (``bnstudy.claims.check_claims``), embeds every figure found
as ``<results>/figures/*_<scale>.png``, writes the report atomically (temp file + rename) and prints the
claims table. The rules and thresholds of each claim are in ``bnstudy/claims/``; the report's sections in
``bnstudy/report.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnstudy.claims import check_claims
from bnstudy.records import write_text_atomic
from bnstudy.report import render_report, render_table
from bnstudy.runs import RunSet, one_line_warnings


def find_figures(results: Path, scale: str) -> list[Path]:
    """Every ``<results>/figures/*_<scale>.png``, sorted by name."""
    return sorted((Path(results) / "figures").glob(f"*_{scale}.png"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.add_argument("--scale", default="quick", help="which scale's runs to check (quick | paper; default quick)")
    p.add_argument("--sweep", nargs="+", action="extend", default=[], type=Path, metavar="DIR",
                   help="sweep folders to check their experiments on (default: each experiment's newest sweep and "
                        "the sweeps with its settings)")
    p.add_argument("--out", default=None, help="where to write the report (default: <results>/REPORT.md)")
    p.add_argument("--shown-as", default=None, type=Path, metavar="DIR",
                   help="the folder the report names as its runs' (default: --results; make reference writes aside)")
    args = p.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        print(f"no results folder at {results}", file=sys.stderr)
        return 2
    missing = [s for s in args.sweep if not s.is_dir()]
    if missing:
        print(f"error: no sweep folder {missing[0]}", file=sys.stderr)
        return 2
    one_line_warnings()
    runs = RunSet(results, args.scale, args.sweep)
    claims = check_claims(runs)
    out = Path(args.out) if args.out else results / "REPORT.md"
    figures = find_figures(results, args.scale)
    write_text_atomic(out, render_report(claims, figures, args.scale, root=results, runs=runs,
                                           shown_as=args.shown_as))
    print(render_table(claims))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
