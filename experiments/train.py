"""Hydra entry point: one training run per job. ``python -m experiments.train --help`` lists the groups.

Before Hydra writes anything, ``experiments.preflight`` refuses what must not start: overrides naming code
under ``hydra``, and (its Hydra callback) a config that cannot work, a run dir that cannot be used as asked,
for a run or for every job of a sweep. What can only fail at run time (``ConfigError`` about the data,
``RunError``, a missing or corrupt dataset) ends the job with one line on stderr and exit status 2, no
traceback; if the run wrote nothing by then, what Hydra wrote for the job is removed again, and nothing
else (a dir that existed before keeps everything it held: ``remove_hydra_files``), so nothing half-made
is left.
In a sweep a failed job does not stop the others: the sweep's summary names it at the end and the exit
status is 1. Ctrl-C or SIGTERM stops the run (its summary says interrupted), and the process that started
the work prints one line saying how to resume (``experiments.interrupt``; exit status 130 or 143). A SLURM
job that reaches its time limit with no requeue left (submitit raises its error inside the run) stops at its
last checkpoint with one line too.
"""

from __future__ import annotations

import bnstudy.threads  # noqa: F401  (first: idle OpenMP threads sleep, set before torch is imported)
import contextlib
import io
import logging
import re
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import bnstudy.paths  # noqa: F401  (registers ${unique:}, used by the run and sweep dir names)
from bnstudy.build import checked
from bnstudy.config import Config, ConfigError  # (importing it registers the structured configs)
from bnstudy.data import DatasetFormatError, DatasetNotFoundError
from bnstudy.progress import Sweep
from bnstudy.records import RunError, write_atomic
from bnstudy.train import run
from experiments.interrupt import exit_status, print_interrupted, sigterm_as_interrupt
from experiments import preflight  # its STATE through the module: a job pickled by value (SLURM) shares it
from experiments.preflight import EXIT_USER_ERROR, refuse_code_in_configs, refuse_code_overrides

log = logging.getLogger("bnstudy")

USER_ERRORS = (ConfigError, RunError, DatasetNotFoundError, DatasetFormatError)


def remove_hydra_files(out_dir: Path, before: dict | None) -> None:
    """Undo what Hydra wrote for a job that failed before its run wrote anything (no summary, CSV or
    checkpoint). ``before`` is what the folder held before Hydra wrote (``preflight.folder_before``): the
    ``.hydra/`` records and the job's log that were not there are removed, those that were are put back
    byte for byte, and the folders are removed only where Hydra made them and they are empty now.
    Nothing else is ever touched, and without ``before``, nothing at all."""
    from bnstudy.records import CHECKPOINT, LOCK, METRICS, SUMMARY

    if before is None or any((out_dir / n).exists() for n in (SUMMARY, METRICS, CHECKPOINT)):
        return
    hydra_dir = out_dir / before["subdir_name"]
    for name, data in before["files"].items():
        path = hydra_dir / name
        if path.is_symlink() or not path.is_file():
            continue
        if data is None:
            path.unlink()
        elif path.read_bytes() != data:  # Hydra wrote over a record that was there: put it back
            write_atomic(path, data)
    for name in (before["log_name"], LOCK):
        if not before["had"].get(name) and (out_dir / name).is_file() and not (out_dir / name).is_symlink():
            (out_dir / name).unlink()
    for folder, existed in ((hydra_dir, before["subdir"]), (out_dir, before["dir"])):
        if not existed:
            try:
                folder.rmdir()  # only if empty
            except OSError:
                pass


def sweep_of_job() -> Sweep | None:
    """This job's place in its sweep (None for a single run), for the progress lines.

    The number of jobs is the sweeper's own count (BasicSweeper.split_arguments) of the sweep that
    ``multirun.yaml`` (written by the sweeper before any job starts) records; 0 when it cannot be read.
    """
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    sweep_dir = Path(hc.sweep.dir)
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        saved = OmegaConf.load(sweep_dir / "multirun.yaml").hydra
        params = [f"{k}={v}" for k, v in (saved.sweeper.get("params") or {}).items()]
        overrides = OverridesParser.create().parse_overrides([*params, *saved.overrides.task])
        jobs = sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))
    except Exception:  # another sweeper, a glob sweep: jobs unknown, the lines say "?"
        jobs = 0
    return Sweep(sweep_dir, jobs, int(hc.job.num))


def print_help_without_schemas(main_fn) -> None:
    """Hydra's ``--help``, less the ``*_schema`` entries (the dataclasses that the options of a group
    extend, not options) and ``_``-prefixed building blocks such as ``experiment/_dln``."""
    out, code = io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out):
            main_fn()
    except SystemExit as e:  # Hydra's own exit status (an error in the overrides given with --help)
        code = e.code
    in_groups = False
    for line in out.getvalue().splitlines():
        if line.startswith("== "):
            in_groups = line.startswith("== Configuration groups")
        group = re.match(r"^([\w/]+): (.+)$", line) if in_groups else None
        if group:
            keep = [o for o in group.group(2).split(", ") if not (o.endswith("_schema") or o.startswith("_"))]
            line = f"{group.group(1)}: {', '.join(keep)}"
        print(line)
    sys.exit(code)


def _out_of_requeues(e: BaseException) -> bool:
    """submitit's own error, raised inside the run by its signal handler when a SLURM job's time limit
    comes and no requeue is left (hydra/launcher=slurm)."""
    utils = sys.modules.get("submitit.core.utils")
    return utils is not None and isinstance(e, utils.UncompletedJobError)


CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")  # absolute: works with -m and when imported


def job_config(cfg: DictConfig) -> Config:
    """A job's config as a ``Config``: the preflight checked it before Hydra wrote anything (its
    ``on_job_start`` says so, in whichever process runs the job), else it is checked here."""
    return OmegaConf.to_object(cfg) if preflight.STATE.get("job_checked") else checked(cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        summary = run(job_config(cfg), out_dir, sweep=sweep_of_job(), checked=True)
    except USER_ERRORS as e:
        remove_hydra_files(out_dir, preflight.STATE.get("job_before"))
        message = " ".join(str(e).split())  # one line
        print(f"error: {message}", file=sys.stderr)
        if sweep:
            return  # the other jobs go on; the sweep's summary names this one and the exit status is 1
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt as e:
        if sweep:  # the process that started the sweep says how to resume it, once (not each parallel job)
            raise
        print_interrupted(f"the same command and hydra.run.dir={out_dir}")
        sys.exit(exit_status(e))
    except Exception as e:
        if _out_of_requeues(e):  # the run stopped at its last checkpoint, resumable: one line, not a traceback
            print(f"error: {e} The SLURM time limit (hydra.launcher.timeout_min) came once more than "
                  f"hydra.launcher.max_num_timeout allows requeues; raise either and resume: the same command "
                  f"with hydra.sweep.dir={HydraConfig.get().sweep.dir}", file=sys.stderr)
            return
        if not sweep:
            raise
        traceback.print_exc()  # a bug, not a user error: its traceback, and the other jobs go on
        return
    log.info("%s: %s at step %s, final %s", out_dir, summary["status"], summary["step"], summary.get("final"))


def main() -> None:
    """``python -m experiments.train``: refuse configs naming code, then Hydra (with ``Preflight``)."""
    refuse_code_overrides(sys.argv[1:])
    refuse_code_in_configs(sys.argv[1:], hydra_main, CONF_DIR, "config")
    with sigterm_as_interrupt():
        try:
            hydra_main()
        except KeyboardInterrupt as e:  # a sweep's job, or while a parallel launcher waits for its jobs
            where = f" and hydra.sweep.dir={preflight.STATE['sweep_dir']}" if preflight.STATE.get("sweep_dir") else ""
            print_interrupted(f"the same command{where}")
            sys.exit(exit_status(e))


if __name__ == "__main__":
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        print_help_without_schemas(main)
    else:
        main()
