"""The tutorials' two claims that need no training, measured into long-format CSVs.

    python -m experiments.tutorials gradients --results results --seeds 0 1 2
    python -m experiments.tutorials memory --results results

``gradients``: per-layer ``||dL/dW_l||`` at initialisation of a deep ReLU network (the DLN's builder
with ReLU, width 64, Glorot init, no biases; Gaussian inputs, the squared error of a random linear map
averaged over a batch of 128) at depths 10, 20, 40, standard vs BN ->
``<results>/tut_gradients/quick/gradients.csv`` (norm, depth, seed, layer, value).

``memory``: per model (the small CNN and the quick VGG-11, batch 128, Fashion-MNIST-shaped inputs) and
norm (none, batch): parameters, bytes autograd saves for the backward, median step time (and on CUDA
the peak allocated memory) -> ``<results>/tut_memory/quick/memory.csv`` (model, norm, metric, value).
The claims in ``bnstudy.claims.tutorials`` read both files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from bnstudy.claims.tutorials import GRADIENTS_CSV, MEMORY_CSV
from bnstudy.config import DataConf, DLNConf, NormConf, SmallCNNConf, VGGConf
from bnstudy.data import load_dataset
from bnstudy.measures.at_init import layer_gradient_norms, saved_activation_bytes, step_seconds
from bnstudy.models import build_model
from bnstudy.records import write_text_atomic

DEPTHS = (10, 20, 40)
WIDTH = 64
BATCH = 128
NORMS = ("none", "batch")


def mse_mean(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out - y).pow(2).sum(1).mean()


def gradients(seeds: list[int], depths=DEPTHS, width: int = WIDTH, batch: int = BATCH) -> pd.DataFrame:
    """One row per (norm, depth, seed, layer): the gradient norm at init; ``layer`` counts from the input."""
    data = load_dataset(DataConf(name="gaussian", dim=width, num_train=batch, num_test=1))
    x, y = data.x_train[:batch], data.y_train[:batch]
    rows = []
    for depth in depths:
        for norm in NORMS:
            for seed in seeds:
                torch.manual_seed(seed)
                model = build_model(DLNConf(num_layers=depth, dim=width, activation="relu", bias=False),
                                    NormConf(name=norm), (width,), None)
                for layer, value in enumerate(layer_gradient_norms(model, x, y, mse_mean), start=1):
                    rows.append(dict(norm=norm, depth=depth, seed=seed, layer=layer, value=value))
    return pd.DataFrame(rows)


def memory(device: str = "cpu", batch: int = BATCH, repeats: int = 20) -> pd.DataFrame:
    """One row per (model, norm, metric): params, saved_bytes, step_ms (and peak_bytes on CUDA)."""
    dev = torch.device(device)
    x = torch.randn(batch, 1, 28, 28, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    loss = torch.nn.functional.cross_entropy
    rows = []
    for name, cfg in (("small_cnn", SmallCNNConf()), ("vgg_quick", VGGConf(depth=11, width=0.125))):
        models = {}
        for norm in NORMS:
            torch.manual_seed(0)
            models[norm] = build_model(cfg, NormConf(name=norm), (1, 28, 28), 10).to(dev)
            values = {"params": sum(p.numel() for p in models[norm].parameters()),
                      "saved_bytes": saved_activation_bytes(models[norm], x, y, loss)}
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
                base = torch.cuda.memory_allocated(dev)
                step_seconds({norm: models[norm]}, x, y, loss, repeats=2, warmup=1)
                values["peak_bytes"] = torch.cuda.max_memory_allocated(dev) - base
            rows += [dict(model=name, norm=norm, metric=k, value=float(v)) for k, v in values.items()]
        for norm, seconds in step_seconds(models, x, y, loss, repeats=repeats).items():
            rows.append(dict(model=name, norm=norm, metric="step_ms", value=1e3 * seconds))
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.tutorials", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["gradients", "memory"])
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: other jobs share the cores)")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    df = gradients(a.seeds) if a.what == "gradients" else memory(a.device)
    out = a.results / (GRADIENTS_CSV if a.what == "gradients" else MEMORY_CSV)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, df.to_csv(index=False))
    print(f"wrote {out} ({len(df)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
