"""Draw figures from CSVs (never trains): ``python -m experiments.figures fig1 fig3 --scale quick``.

Each figure reads the runs its experiments mean (``bnstudy.runs.SELECTION_RULE``), or exactly the sweep
folders named with ``--sweep``, and says in its footer which sweeps, seeds and steps it shows. A run that
cannot be read is skipped with one warning line naming it. A figure none of whose experiments has a
finished run is not drawn: named, that is an error (exit status 1); by default (every figure) it is
listed on one line. The results folder must exist (it is never created here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; importing bnstudy.figures leaves a notebook's backend alone

from bnstudy.figures import FIGURES, draw  # noqa: E402
from bnstudy.runs import RunSet, one_line_warnings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", default=None, metavar="NAME",
                   help=f"figures to draw (default: every figure with runs): {', '.join(sorted(FIGURES))}")
    p.add_argument("--scale", default="quick", help="which scale's runs (quick | paper | tiny | none; default quick)")
    p.add_argument("--results", type=Path, default=Path("results"), help="root of the runs")
    p.add_argument("--sweep", nargs="+", action="extend", default=[], type=Path, metavar="DIR",
                   help="sweep folders to draw their experiments from (default: each experiment's newest sweep and "
                        "the sweeps with its settings)")
    p.add_argument("--out", type=Path, default=None, help="default: <results>/figures")
    a = p.parse_args(argv)
    names = a.names or sorted(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:  # before any figure is drawn: one line, the valid names
        sys.exit(f"error: unknown figure {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(FIGURES))}")
    one_line_warnings()
    if not a.results.is_dir():  # never made here: a typo in --results must not become an empty tree
        print(f"error: no results folder at {a.results}", file=sys.stderr)
        return 2
    missing = [s for s in a.sweep if not s.is_dir()]
    if missing:
        print(f"error: no sweep folder {missing[0]}", file=sys.stderr)
        return 2
    runs = RunSet(a.results, a.scale, a.sweep)
    skipped: list[str] = []
    for path in draw(names, runs, out_dir=a.out or a.results / "figures", skipped=skipped):
        print(path)
    where = f"at scale {a.scale} in {', '.join(map(str, a.sweep)) if a.sweep else a.results}"
    if a.names and skipped:  # named, so wanted: not drawing it is an error
        for name in skipped:
            print(f"error: figure {name} not drawn: no finished runs of {', '.join(FIGURES[name].experiments)} {where}",
                  file=sys.stderr)
        return 1
    if len(skipped) == len(names):
        print(f"error: no figure drawn: no finished runs {where}", file=sys.stderr)
        return 1
    if skipped:
        print(f"not drawn (no finished runs {where}): {', '.join(skipped)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
