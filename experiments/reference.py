"""Write the committed reference of one scale from finished runs: ``make reference`` (after ``make all``).

    python -m experiments.reference --results results --scale quick --out results/reference/quick

Copies the newest sweep of every experiment (``summary.json``, ``metrics.csv`` gzipped) into ``--out``
with a manifest of sha256s (``reference.json``), then redraws the figures and REPORT.md from the copied
numbers alone, exactly as ``make figures report RESULTS=<out>`` does, and checks the folder against
its size budget (20 MB). ``make verify`` compares later runs against it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bnstudy.reference import EXPERIMENTS, SIZE_BUDGET, ReferenceError, export, folder_size  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"), help="where the runs are (default: results)")
    p.add_argument("--scale", default="quick", choices=["quick", "paper"])
    p.add_argument("--out", type=Path, default=None, help="default: results/reference/<scale>")
    p.add_argument("--experiments", nargs="*", default=None,
                   help=f"default: {' '.join(EXPERIMENTS)} (make all's), and quick where it was run")
    a = p.parse_args(argv)
    out = a.out or Path("results/reference") / a.scale
    try:
        manifest = export(a.results, a.scale, out, a.experiments)
    except ReferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from bnstudy.figures import FIGURES, draw
    from experiments import report

    names = [f for f, (_, needs) in sorted(FIGURES.items()) if set(needs) & set(manifest["experiments"])]
    for path in draw(names, out, a.scale, out / "figures"):
        if path.suffix == ".pdf":
            path.unlink()  # the PNGs are committed; `make figures` makes the PDFs again
    report.main(["--results", str(out), "--scale", a.scale])
    size = folder_size(out)
    runs = sum(len(r) for r in manifest["experiments"].values())
    print(f"reference: {runs} runs of {len(manifest['experiments'])} experiments, seeds {manifest['seeds']}, "
          f"{size / 1e6:.1f} MB in {out}")
    if size > SIZE_BUDGET:
        print(f"error: {out} holds {size / 1e6:.1f} MB, over the {SIZE_BUDGET / 2**20:.0f} MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
