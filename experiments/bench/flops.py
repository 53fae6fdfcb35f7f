"""Section 4, ``flops``: achieved FLOP/s of the VGG steps against a large float32 matmul."""

from __future__ import annotations

import torch
from torch.utils import benchmark

from bnstudy.data import TensorData
from bnstudy.models import build_model
from bnstudy.build import LOSSES, loss_name, set_tf32
from experiments.bench.common import Bench

def matmul_peak(bench: Bench) -> tuple[float, int]:
    """GFLOP/s of a large float32 matmul (the best block of ``torch.utils.benchmark``'s autorange: a peak,
    not a typical speed), with the run's TF32 setting."""
    n = 8192 if bench.device.type == "cuda" else bench.sizes.matmul_n_cpu
    bench.set_threads(None)
    set_tf32(bench.args.tf32)
    a = torch.randn(n, n, device=bench.device)
    b = torch.randn(n, n, device=bench.device)
    timer = benchmark.Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
    timer.timeit(1)  # warm-up
    runs = timer.blocked_autorange(min_run_time=0.2 if bench.sizes.tiny else 2.0)  # syncs a GPU itself
    return 2 * n**3 / min(runs.times) / 1e9, n


def step_flops(bench: Bench, cfg, data: TensorData) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.norm, data.input_shape, data.num_classes).to(bench.device)
    x, y = data.x_train[: cfg.train.batch_size], data.y_train[: cfg.train.batch_size]
    with FlopCounterMode(display=False) as counter:
        LOSSES[loss_name(cfg, data)](model(x), y).backward()
    return float(counter.get_total_flops())


def section_flops(bench: Bench) -> None:
    peak, n = matmul_peak(bench)
    precision = "TF32 allowed" if torch.backends.cuda.matmul.allow_tf32 and bench.device.type == "cuda" else "fp32"
    bench.row("flops", f"matmul_{n}", "peak_gflops", peak, "GFLOP/s", note=f"{n}x{n} float32 @ ({precision})")
    print(f"  flops matmul {n}x{n}: {peak:.1f} GFLOP/s", flush=True)
    for case in ("vgg_quick/none", "vgg_quick/batch", "vgg16/none", "vgg16/batch"):
        got = bench.step_ms.get(case)
        if not got:
            continue
        flops = step_flops(bench, got["cfg"], got["data"])
        achieved = flops / (got["suite_ms"] / 1000) / 1e9
        note = f"batch={got['cfg'].train.batch_size}; conv/matmul FLOPs of forward+backward"
        bench.row("flops", case, "gflop_per_step", flops / 1e9, "GFLOP", note=note)
        bench.row("flops", case, "achieved_gflops", achieved, "GFLOP/s", note="over the suite's step time")
        bench.row("flops", case, "percent_of_matmul_peak", 100 * achieved / peak, "%")
        print(f"  flops {case:16s} {flops / 1e9:8.2f} GFLOP/step  {achieved:8.1f} GFLOP/s  "
              f"{100 * achieved / peak:5.1f}% of matmul", flush=True)


