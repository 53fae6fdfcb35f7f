"""Hydra entry point: one training run per job. ``python -m experiments.train --help`` lists the groups."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import bnstudy.config  # noqa: F401  (registers the structured configs)
from bnstudy.train import run

log = logging.getLogger("bnstudy")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = run(OmegaConf.to_object(cfg), out_dir)
    log.info("%s: %s at step %s, final %s", out_dir, summary["status"], summary["step"], summary.get("final"))


if __name__ == "__main__":
    main()
