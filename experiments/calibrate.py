"""Quick-scale calibration: which small model shows the paper's effects within the CPU time budget?

Trains each candidate with and without BatchNorm at several learning rates and prints final
accuracies and time per step, so the choice in ``conf/scale/quick.yaml`` rests on numbers
(README, "Quick-scale calibration"). Usage:
    python -m experiments.calibrate --steps 1500 --out results/calibration
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import bnstudy.config  # noqa: F401
from bnstudy.data import load_dataset
from bnstudy.train import run

CONF = str(Path(__file__).resolve().parents[1] / "conf")
CANDIDATES = {
    "small_cnn": ["model=small_cnn"],
    "vgg11_w0.125": ["model=vgg", "model.depth=11", "model.width=0.125"],
    "vgg16_w0.125": ["model=vgg", "model.depth=16", "model.width=0.125"],
    "vgg16_w0.25": ["model=vgg", "model.depth=16", "model.width=0.25"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lrs", default="0.05,0.1,0.5")
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    p.add_argument("--norms", default="none,batch")
    p.add_argument("--extra", default="", help="more overrides, space-separated")
    p.add_argument("--out", default="results/calibration")
    a = p.parse_args()
    rows, data = [], None
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        for cand, norm, lr in itertools.product(a.candidates.split(","), a.norms.split(","), a.lrs.split(",")):
            overrides = CANDIDATES[cand] + [f"norm={norm}", f"optim.lr={lr}", f"train.steps={a.steps}",
                                            f"train.eval_every={a.steps // 5}", "train.checkpoint_every=0",
                                            "progress=false", *a.extra.split()]
            cfg = OmegaConf.to_object(compose("config", overrides=overrides))
            data = data or load_dataset(cfg.data)
            out = Path(a.out) / f"{cand}_{norm}_lr{lr}"
            t0 = time.time()
            s = run(cfg, out, data=data)
            rows.append({"candidate": cand, "norm": norm, "lr": float(lr), "status": s["status"],
                         "ms_per_step": 1000 * (time.time() - t0) / a.steps, **s.get("final", {})})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    df.to_csv(Path(a.out) / "calibration.csv", index=False)
    print(df.pivot_table(index=["candidate", "lr"], columns="norm", values="test_acc").round(3).to_string())


if __name__ == "__main__":
    main()
