"""Write the committed reference of one scale from finished runs: ``make reference`` (after ``make all``).

    python -m experiments.reference --results results --scale quick --out results/reference/quick

Copies the runs of every experiment that figures and the report read (``bnstudy.runs.RunSet``'s selection;
``summary.json``, ``metrics.csv`` gzipped) with a manifest of sha256s (``reference.json``), redraws the
figures and REPORT.md from the copied numbers alone, exactly as ``make figures report RESULTS=<out>`` does,
and checks the folder against its size budget (24 MiB). All of it is written in a folder beside ``--out``
and swapped in whole when it is complete; any failure leaves the old reference as it was. ``--out`` may not
be the results folder, hold it, or lie among its runs (``results/reference/...`` is fine), nor hold
anything the suite did not write. ``make verify`` compares later runs against it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bnstudy.reference import EXPERIMENTS, SIZE_BUDGET, ReferenceError, export, folder_size, replacing  # noqa: E402
from bnstudy.runs import one_line_warnings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.reference", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results"), help="where the runs are (default: results)")
    p.add_argument("--scale", default="quick", choices=["quick", "paper"])
    p.add_argument("--out", type=Path, default=None, help="default: results/reference/<scale>")
    p.add_argument("--experiments", nargs="*", default=None,
                   help=f"default: {' '.join(EXPERIMENTS)} (make all's), and quick where it was run")
    a = p.parse_args(argv)
    one_line_warnings()
    out = a.out or Path("results/reference") / a.scale
    from bnstudy.figures import FIGURES, draw
    from experiments import report

    try:
        with replacing(a.results, out) as new:
            manifest = export(a.results, a.scale, new, a.experiments)
            names = [n for n, f in sorted(FIGURES.items()) if set(f.experiments) & set(manifest["experiments"])]
            for path in draw(names, new, a.scale, new / "figures"):
                if path.suffix == ".pdf":
                    path.unlink()  # the PNGs are committed; `make figures` makes the PDFs again
            if report.main(["--results", str(new), "--scale", a.scale, "--shown-as", str(out)]) != 0:
                raise ReferenceError(f"the report of {new} could not be written")
            size = folder_size(new)
            if size > SIZE_BUDGET:
                raise ReferenceError(f"the new reference holds {size / 1e6:.1f} MB, over the "
                                     f"{SIZE_BUDGET / 2**20:.0f} MB budget")
    except ReferenceError as e:
        print(f"error: {e}; {out} is unchanged", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {out} is unchanged", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"error: cannot write the reference beside {out} ({e.strerror or e}: {e.filename or ''}): "
              f"{out} is unchanged", file=sys.stderr)
        return 2
    runs = sum(len(r) for r in manifest["experiments"].values())
    print(f"reference: {runs} runs of {len(manifest['experiments'])} experiments, seeds {manifest['seeds']}, "
          f"{size / 1e6:.1f} MB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
