"""The command line: sizes and sections from the arguments, the machine, the printed tables and the CSV."""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

import experiments.bench as bench_pkg
from bnstudy.data import FASHION_SYSTEM_DIR
from bnstudy.provenance import cpu_model
from experiments.bench.common import CSV_COLUMNS, ROOT, SIZES, Bench, Sizes
from experiments.bench.data import section_data
from experiments.bench.flops import section_flops
from experiments.bench.measure import section_measure
from experiments.bench.slurm import section_slurm
from experiments.bench.step import section_step, section_switches
from experiments.bench.summary import load_verdict, summary_lines
from experiments.bench.walls import section_make_all, section_make_all_run, section_paper_fig1

# ------------------------------------------------------------------------------------------ machine, output


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine(bench: Bench) -> dict[str, str]:
    info = {"cpu": cpu_model(), "cores": str(usable_cores()), "threads": str(bench.threads),
            "torch": torch.__version__, "python": platform.python_version(), "device": str(bench.device),
            "load_avg": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    if bench.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(bench.device)
        info["cuda"] = str(torch.version.cuda)
    info["switches"] = (f"channels_last={bench.args.channels_last} tf32={bench.args.tf32} "
                        f"deterministic=true flush_denormal=true (the suite's defaults, process-wide)")
    return info


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.4e}"
    return str(v)


def print_table(rows: list[dict], columns: list[str]) -> None:
    cells = [[fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def report(bench: Bench, info: dict[str, str], out: Path) -> None:
    print("\n== bnstudy bench ==")
    loaded = load_verdict(info)
    info["loaded"] = loaded or "no"
    if loaded:  # other processes competed for the cores: a flag is not a failure, and says so
        for r in bench.rows:
            r["status"] = "LOADED" if r["status"] == "FAIL" else r["status"]
        bench.checks = [(what, value, "LOADED" if s == "FAIL" else s) for what, value, s in bench.checks]
    for line in summary_lines(bench.rows, info):
        print(line)
    print("\nmachine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    for section in ("step", "data", "measure", "flops", "switches", "paper_fig1", "make_all", "make_all_run", "slurm"):
        rows = [r for r in bench.rows if r["section"] == section]
        if rows:
            print(f"\n-- {section} --")
            print_table(rows, ["case", "metric", "value", "unit", "target", "status", "note"])
    if bench.checks:
        print("\n-- targets --")
        for what, value, status in bench.checks:
            print(f"{status}  {what}: {value}")
        failed = sum(s == "FAIL" for _, _, s in bench.checks)
        flagged = sum(s == "LOADED" for _, _, s in bench.checks)
        print(f"{len(bench.checks) - failed - flagged} PASS, {failed} FAIL"
              + (f", {flagged} over target on a loaded machine (not failures: rerun on an idle one)" if flagged else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for k, v in info.items():
            w.writerow(dict(section="machine", case=k, metric="info", value="", unit="", target="", status="", note=v))
        for r in bench.rows:
            w.writerow({**r, "value": repr(float(r["value"]))})
    print(f"\nwrote {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.bench", description=bench_pkg.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="longer runs and more repeats")
    size.add_argument("--tiny", action="store_true", help="a few steps of everything (for tests)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=usable_cores(), help="torch intra-op threads (DLN: always 1)")
    p.add_argument("--channels-last", action="store_true", help="train.channels_last=true (both loops)")
    p.add_argument("--tf32", action="store_true", help="train.tf32=true (both loops, and the matmul peak)")
    p.add_argument("--sections", default="step,data,measure,flops,switches", help="comma-separated subset")
    p.add_argument("--models", default="", help="only these models (small_cnn,vgg_quick,vgg16,dln,resnet_quick,vit_quick)")
    p.add_argument("--repeats", type=int, default=0, help="override the repeats of sections 1-3 (slurm: its pairs)")
    p.add_argument("--make-all", action="store_true", help="add the make-all wall times read from --results")
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--baseline", default="", metavar="REV",
                   help="section make_all_run: also time make all at this git revision, side by side")
    p.add_argument("--busy", action="store_true",
                   help="section make_all_run: also time make all beside one busy process")
    p.add_argument("--data-root", default=None, help="Fashion-MNIST IDX files here instead of "
                   f"{FASHION_SYSTEM_DIR} (without either: random tensors of its shape)")
    p.add_argument("--out", default="results/bench/bench.csv")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    sizes = SIZES["tiny" if args.tiny else "full" if args.full else "default"]
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats, "measure_repeats": args.repeats,
                         "vgg16_repeats_cpu": args.repeats})
    torch.set_num_threads(args.threads)
    bench = Bench(args, sizes)
    info = machine(bench)
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    sections = {"step": section_step, "data": section_data, "measure": section_measure, "flops": section_flops,
                "switches": section_switches, "paper_fig1": section_paper_fig1,  # these three only when asked
                "make_all_run": section_make_all_run, "slurm": section_slurm}
    wanted = [s for s in args.sections.split(",") if s]
    unknown = set(wanted) - set(sections) - {"make_all"}
    if unknown:
        print(f"error: unknown sections {sorted(unknown)}; valid: {sorted(sections) + ['make_all']}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        for name in sections:
            if name in wanted:
                sections[name](bench)
        if args.make_all or "make_all" in wanted:
            section_make_all(bench)
    finally:
        bench.close()
    info["load_avg_end"] = (" ".join(f"{x:.2f}" for x in os.getloadavg()) if not (args.busy and "make_all_run" in wanted)
                            else "n/a (the bench ran its own busy process)")
    info["bench_wall_s"] = f"{time.perf_counter() - t0:.1f}"
    report(bench, info, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

