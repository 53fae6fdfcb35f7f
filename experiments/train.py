"""Hydra entry point: one training run per job. ``python -m experiments.train --help`` lists the groups.

A config that cannot work (``ConfigError``), a run dir that cannot be used as asked (``RunError``) or a
missing or corrupt dataset ends the job with one line on stderr and exit status 2, no traceback; if
Hydra's own files are all the run dir holds by then, the dir is removed, so nothing half-made is left.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import bnstudy.config  # noqa: F401  (registers the structured configs)
import bnstudy.paths  # noqa: F401  (registers ${unique:}, used by the run and sweep dir names)
from bnstudy.data import DatasetFormatError, DatasetNotFoundError
from bnstudy.train import ConfigError, RunError, check_keys, run

log = logging.getLogger("bnstudy")

USER_ERRORS = (ConfigError, RunError, DatasetNotFoundError, DatasetFormatError)
EXIT_USER_ERROR = 2


def _only_hydra_files(path: Path, allowed: set[str]) -> bool:
    return path.is_dir() and all(p.name in allowed for p in path.iterdir())


def remove_untouched_run_dir(out_dir: Path) -> bool:
    """Remove the job's dir if it holds nothing but what Hydra wrote (``.hydra/``, the job's log).

    In a sweep, the sweep dir goes too once it holds only ``multirun.yaml``. Nothing else is touched.
    """
    hc = HydraConfig.get()
    subdir = hc.output_subdir or ".hydra"
    allowed = {subdir, f"{hc.job.name}.log"}
    if not (_only_hydra_files(out_dir, allowed) and
            _only_hydra_files(out_dir / subdir, {"config.yaml", "hydra.yaml", "overrides.yaml"})):
        return False
    shutil.rmtree(out_dir)
    if hc.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hc.sweep.dir).absolute()
        if sweep_dir != out_dir and _only_hydra_files(sweep_dir, {"multirun.yaml"}):
            shutil.rmtree(sweep_dir)
    return True


CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # absolute: works with -m and when imported


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        check_keys(cfg)
        summary = run(OmegaConf.to_object(cfg), out_dir)
    except USER_ERRORS as e:
        remove_untouched_run_dir(out_dir)
        message = " ".join(str(e).split())  # one line
        print(f"error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    log.info("%s: %s at step %s, final %s", out_dir, summary["status"], summary["step"], summary.get("final"))


if __name__ == "__main__":
    main()
