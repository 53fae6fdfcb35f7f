"""Post-hoc curvature, Theorem 4.1 and signal measures on finished run folders (no retraining).

    python -m experiments.curvature results/fig1/quick/<sweep>/0 [more run dirs] [--samples 4096]

Each run dir gets ``posthoc.csv`` (rows in metrics.csv's columns, at the run's last step) and
``posthoc.json`` (the settings); the run's own files are never modified. See ``bnstudy.posthoc``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnstudy.data import DatasetFormatError, DatasetNotFoundError
from bnstudy.measures.curvature import MODES
from bnstudy.posthoc import POSTHOC_CSV, PosthocConf, PosthocError, measure_run
from bnstudy.records import RunError
from bnstudy.config import ConfigError

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    d = PosthocConf()
    p = argparse.ArgumentParser(prog="python -m experiments.curvature", description=__doc__.splitlines()[0])
    p.add_argument("run_dirs", nargs="+", type=Path, help="finished run folders (holding summary.json and final.pt)")
    p.add_argument("--samples", type=int, default=d.samples, help=f"Hessian subset of the training data ({d.samples})")
    p.add_argument("--chunk", type=int, default=d.chunk, help="samples per chunk (0: the run's batch size)")
    p.add_argument("--modes", default=",".join(d.modes), help=f"Hessian modes, comma-separated ({','.join(MODES)})")
    p.add_argument("--iters", type=int, default=d.iters, help=f"most Lanczos steps per mode ({d.iters})")
    p.add_argument("--tol", type=float, default=d.tol, help=f"relative residual to stop at ({d.tol})")
    p.add_argument("--seed", type=int, default=d.seed, help="Lanczos start vector and subset seed")
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    a = p.parse_args(argv)
    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or a.samples < 1 or a.iters < 1 or a.tol <= 0 or a.chunk < 0:
        p.error(f"--modes must be among {list(MODES)}, --samples and --iters >= 1, --tol > 0, --chunk >= 0")
    conf = PosthocConf(a.samples, a.chunk, modes, a.iters, a.tol, a.seed, a.device)
    for run_dir in a.run_dirs:
        try:
            rows = measure_run(run_dir, conf)
        except (PosthocError, ConfigError, RunError, DatasetNotFoundError, DatasetFormatError) as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            return EXIT_USER_ERROR
        top = rows[rows["metric"].str.startswith("hess_lmax")].set_index("metric")["value"].to_dict()
        print(f"{run_dir}: {len(rows)} rows -> {run_dir / POSTHOC_CSV}; "
              + ", ".join(f"{k} = {v:.4g}" for k, v in top.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
