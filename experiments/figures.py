"""Draw figures from CSVs (never trains): ``python -m experiments.figures fig1 fig3 --scale quick``.

Each figure reads the runs its experiments mean (``bnstudy.runs.SELECTION_RULE``), or exactly the sweep
folders named with ``--sweep``, and says in its footer which sweeps, seeds and steps it shows. A run that
cannot be read is skipped with one warning line naming it.
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
    p.add_argument("names", nargs="*", default=sorted(FIGURES), metavar="NAME",
                   help=f"figures to draw (default: all): {', '.join(sorted(FIGURES))}")
    p.add_argument("--scale", default="quick", help="which scale's runs (quick | paper | tiny | none; default quick)")
    p.add_argument("--results", type=Path, default=Path("results"), help="root of the runs")
    p.add_argument("--sweep", nargs="+", action="extend", default=[], type=Path, metavar="DIR",
                   help="sweep folders to draw their experiments from (default: each experiment's newest sweep and "
                        "the sweeps with its settings)")
    p.add_argument("--out", type=Path, default=None, help="default: <results>/figures")
    a = p.parse_args(argv)
    unknown = [n for n in a.names if n not in FIGURES]
    if unknown:  # before any figure is drawn: one line, the valid names
        sys.exit(f"error: unknown figure {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(FIGURES))}")
    one_line_warnings()
    missing = [s for s in a.sweep if not s.is_dir()]
    if missing:
        print(f"error: no sweep folder {missing[0]}", file=sys.stderr)
        return 2
    runs = RunSet(a.results, a.scale, a.sweep)
    for path in draw(a.names, runs, out_dir=a.out or a.results / "figures"):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
