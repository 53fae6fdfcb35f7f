"""Draw figures from CSVs (never trains): ``python -m experiments.figures fig1 fig3 --scale quick``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; importing bnstudy.figures leaves a notebook's backend alone

from bnstudy.figures import FIGURES, draw  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", nargs="*", default=sorted(FIGURES), help=f"figures to draw (default: all): {sorted(FIGURES)}")
    p.add_argument("--scale", default="quick", choices=["quick", "paper"])
    p.add_argument("--results", type=Path, default=Path("results"), help="root of the runs")
    p.add_argument("--out", type=Path, default=None, help="default: <results>/figures")
    a = p.parse_args(argv)
    unknown = [n for n in a.names if n not in FIGURES]
    if unknown:  # before any figure is drawn: one line, the valid names
        sys.exit(f"error: unknown figure {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(FIGURES))}")
    for path in draw(a.names, a.results, a.scale, a.out or a.results / "figures"):
        print(path)


if __name__ == "__main__":
    main()
