"""Checks that run before Hydra writes anything, and the sweep's closing summary (a Hydra callback).

Hydra 1.3 writes a run's ``.hydra/`` (config.yaml, hydra.yaml, overrides.yaml) and, in a sweep, the
sweep's ``multirun.yaml`` before the task function starts, so a refusal decided there comes too late:
the record of the refused config is already written over the run's own. Hydra calls a callback's
``on_run_start`` before ``run_job`` makes the run dir, and ``on_multirun_start`` before the sweeper
writes ``multirun.yaml`` or launches a job; ``Preflight`` (``hydra.callbacks.bnstudy`` in
``conf/config.yaml``) decides there, for the run or for every job of the sweep (composed the way the
launcher will compose it, with ``load_sweep_config``):

- ``hydra`` names no code but the launchers and sweeper the suite ships (``check_hydra_node``);
- each job's config passes ``check_keys`` and ``validate`` (ranges, enums): ``bnstudy.build.checked``, the
  one check of a job's config (``on_job_start`` tells the job, in whichever process runs it);
- each job's folder may be used (``RunFolder.check``: not in use, no link, not another config, not
  foreign files), is writable, and Hydra's own files there are no links.

One bad job refuses the whole sweep before its first job starts. A run dir that already holds a run
gets no new ``.hydra/`` (``hydra.output_subdir`` is set to null for it); a resumed sweep's
``multirun.yaml`` and its jobs' ``.hydra/`` files are put back as they were when the sweep ends. A job
that fails at run time does not stop the others (``experiments.train.main`` returns); ``on_multirun_end``
prints the sweep's summary and exits 1 naming the failed jobs.

``hydra.callbacks`` itself is instantiated, and ``hydra.hydra_logging`` set up, before any callback runs,
so code named there is refused earlier still, before ``hydra.main`` starts: overrides on the command line
(``refuse_code_overrides``, which names the override), then the ``hydra`` node as Hydra is about to compose
it from every source (the primary config, ``--config-dir``, ``--config-name``, experiment files, overrides:
``refuse_code_in_configs``, composed the way ``hydra.main`` composes it, nothing instantiated or set up).
Each job's own config (a sweep over experiment files) is checked by ``Preflight`` before any job's
``hydra.job_logging`` is set up.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from hydra.core.global_hydra import GlobalHydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

EXIT_USER_ERROR = 2
SLURM_LAUNCHER = "hydra_plugins.bnstudy_launchers.slurm.SlurmLauncher"  # ours: conf/hydra/launcher/slurm.yaml
CALLBACK = "bnstudy"  # our key under hydra.callbacks
ALLOWED_TARGETS = frozenset({
    "experiments.preflight.Preflight",
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",  # hydra/launcher=parallel
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",  # hydra/launcher=submitit
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",  # hydra/launcher=submitit_slurm
    SLURM_LAUNCHER,  # hydra/launcher=slurm
})
LOGGING_CLASSES = frozenset({"logging.StreamHandler", "logging.FileHandler"})  # Hydra's own logging configs
LOGGING_EXTERNALS = frozenset({"ext://sys.stdout", "ext://sys.stderr"})  # the objects they name (``stream:``)
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
# the running sweep's dir, for the Ctrl-C message (experiments.train); job_notes: {job number: what the
# launcher knows of it} for the summary (the SLURM launcher: its SLURM id, how it ended, its log); in the
# process running a job, job_before (folder_before) and job_checked (its config passed check_job)
STATE: dict[str, Any] = {}


@contextlib.contextmanager
def planning() -> Iterator[None]:
    """Within: sweeps are laid out for ``experiments.together``, which trains their jobs later: the folders
    of every sweep laid out are claimed together (no two jobs of any of them share one), and no sweep
    prints a summary of jobs that have not run yet."""
    STATE["planning"] = True
    try:
        yield
    finally:
        STATE.pop("planning", None)
        STATE.pop("claimed", None)


class Refused(Exception):
    """A run or sweep that must not start; the message is one line saying what to change."""


def refuse(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


# ------------------------------------------------------------------------------------------ code
CODE_KEYS = ("hydra.callbacks", "hydra/callbacks", "hydra.hydra_logging", "hydra/hydra_logging")


def refuse_code_overrides(argv: list[str]) -> None:
    """Refuse command-line overrides that would make Hydra import and call something: any callback,
    any ``_target_`` or logging class under ``hydra``, or the whole ``hydra`` node at once."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        leaf = key.rsplit(".", 1)[-1]
        if (key == "hydra" or key.startswith(CODE_KEYS)
                or (key.startswith(("hydra.", "hydra/")) and leaf in ("_target_", "class", "()"))):
            refuse(f"{arg}: overrides under hydra may not name code to run (callbacks, _target_, logging "
                   f"classes); bnstudy runs only its own launchers: hydra/launcher=parallel, submitit or slurm")


def check_hydra_node(hydra: DictConfig) -> None:
    """Every ``_target_`` under ``hydra`` is one the suite ships, the one callback is ``Preflight``, and
    the logging configs name no code: only Hydra's own handler classes, no ``()`` factories, no
    ``ext://`` objects but ``sys.stdout`` and ``sys.stderr`` (``logging.config.dictConfig`` imports and
    calls what these name)."""
    callbacks = list((hydra.get("callbacks") or {}).keys())
    if callbacks != [CALLBACK]:
        raise Refused(f"hydra.callbacks must be exactly bnstudy's own ({CALLBACK}), not {callbacks}")
    own = OmegaConf.select(hydra, f"callbacks.{CALLBACK}._target_", default=None)
    if own != "experiments.preflight.Preflight":
        raise Refused(f"hydra.callbacks.{CALLBACK}._target_={own}: bnstudy's callback is experiments.preflight.Preflight")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, DictConfig):
            for key in node.keys():
                value = node._get_node(key)._value() if not OmegaConf.is_missing(node, key) else None
                where = f"{path}.{key}"
                if key == "_target_" and value not in ALLOWED_TARGETS:
                    raise Refused(f"{where}={value}: bnstudy instantiates only its own launchers, not other code")
                if "logging" in path:
                    if key == "()" or (key == "class" and value not in LOGGING_CLASSES):
                        raise Refused(f"{where}={value}: logging classes other than Hydra's own are refused")
                    if isinstance(value, str) and value.strip().startswith("ext://") and value.strip() not in LOGGING_EXTERNALS:
                        raise Refused(f"{where}={value}: logging configs may name no object but "
                                      f"{' or '.join(sorted(LOGGING_EXTERNALS))}")
                elif key == "()":
                    raise Refused(f"{where}={value}: bnstudy instantiates only its own launchers, not other code")
                walk(node._get_node(key), where)
        elif OmegaConf.is_list(node):
            for i, item in enumerate(node._content or []):
                walk(item, f"{path}[{i}]")

    walk(hydra, "hydra")


def compose_as_hydra_main(argv: list[str], task_function: Any, config_path: str, config_name: str) -> DictConfig | None:
    """The config ``hydra.main`` is about to compose for this command line: the same argument parser,
    search path (``--config-dir``, ``--config-path``) and config name (``--config-name``), composed by
    Hydra's own loader as ``Hydra.get_mode`` composes it first (sweep overrides left to each job), with
    no logging set up and nothing instantiated. None where it cannot be composed: Hydra then says why."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import (create_automatic_config_search_path,
                                       detect_calling_file_or_module_from_task_function, get_args_parser)
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.types import RunMode

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # a bad option: argparse's message comes from Hydra
            args = get_args_parser().parse_args(argv)
        calling_file, calling_module = detect_calling_file_or_module_from_task_function(task_function)
        search_path = create_automatic_config_search_path(calling_file, calling_module,
                                                          args.config_path if args.config_path is not None else config_path)
        if args.config_dir is not None:
            search_path.prepend(provider="command-line", path=f"file://{os.path.abspath(args.config_dir)}",
                                anchor=SearchPathQuery(provider="schema"))
        loader = ConfigLoaderImpl(config_search_path=search_path)
        return loader.load_configuration(config_name=args.config_name if args.config_name is not None else config_name,
                                         overrides=list(args.overrides), run_mode=RunMode.MULTIRUN,
                                         validate_sweep_overrides=False)
    except (Exception, SystemExit):
        return None


def refuse_code_in_configs(argv: list[str], task_function: Any, config_path: str, config_name: str) -> None:
    """Refuse a ``hydra`` node that names code (``check_hydra_node``), wherever it came from, before
    ``hydra.main`` instantiates its callbacks or sets up its logging."""
    config = compose_as_hydra_main(argv, task_function, config_path, config_name)
    if config is None or "hydra" not in config:
        return
    try:
        check_hydra_node(config.hydra)
    except Refused as e:
        refuse(f"{e} (from the config files or overrides of this command: bnstudy runs no code a config names)")


# ------------------------------------------------------------------------------------------ jobs
def _task_config(config: DictConfig) -> DictConfig:
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def check_job(config: DictConfig, out_dir: Path) -> dict | None:
    """Everything that would refuse this job, decided before anything is written; returns what its dir
    holds (the summary of a run to resume or of a finished one), or None."""
    from bnstudy.build import checked
    from bnstudy.config import ConfigError
    from bnstudy.records import RunError, RunFolder

    check_hydra_node(config.hydra)
    existing = next((p for p in [out_dir, *out_dir.parents] if os.path.lexists(p)), None)
    if existing is not None and not existing.is_dir():
        raise Refused(f"cannot make the folder {out_dir}: {existing} exists and is not a folder; pick another folder "
                      f"(hydra.run.dir=... or hydra.sweep.dir=...)")
    try:
        cfg = checked(_task_config(config))
        previous = RunFolder(out_dir).check(OmegaConf.to_container(OmegaConf.structured(cfg)), cfg.resume)
    except (ConfigError, RunError) as e:
        raise Refused(str(e)) from None
    if existing is not None and not os.access(existing, os.W_OK):
        raise Refused(f"cannot write in {out_dir}: {existing} is read-only; pick a writable folder "
                      f"(hydra.run.dir=... or hydra.sweep.dir=...)")
    hydra_files = [out_dir / (config.hydra.output_subdir or ".hydra") / n for n in HYDRA_FILES]
    for path in [*hydra_files, out_dir / f"{config.hydra.job.name}.log"]:
        if path.is_symlink():
            raise Refused(f"{path} is a symbolic link: bnstudy never writes through a link; remove the link")
    return previous


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """The overrides of each job of the sweep, in job order, as Hydra's basic sweeper splits them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items()]
    args = params + list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    loader = GlobalHydra.instance().config_loader()
    overrides = OverridesParser.create(config_loader=loader).parse_overrides(args)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _varying(jobs: list[list[str]]) -> list[list[str]]:
    """Each job's overrides that not every job shares (what names it in a message)."""
    return [[o for o in job if not all(o in other for other in jobs)] or job for job in jobs]


def job_dir(config: DictConfig, num: int) -> tuple[DictConfig, Path]:
    """Job ``num``'s config and folder (``hydra.sweep.dir`` / ``hydra.sweep.subdir``), as the launcher
    composes them."""
    with open_dict(config):
        config.hydra.job.num = num
        config.hydra.job.id = str(num)
    return config, Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)


def folder_before(config: DictConfig, out_dir: Path) -> dict:
    """What a job's folder holds before Hydra writes there (its ``.hydra/`` records, as bytes, and its log),
    so that a job that fails before its run writes anything removes only what Hydra added
    (``experiments.train.remove_hydra_files``)."""
    from bnstudy.records import LOCK

    subdir_name = config.hydra.output_subdir or ".hydra"
    log_name = f"{config.hydra.job.name}.log"
    hydra_dir = out_dir / subdir_name

    def read(path: Path) -> bytes | None:
        try:
            return None if path.is_symlink() or not path.is_file() else path.read_bytes()
        except OSError:
            return None

    files = {n: read(hydra_dir / n) for n in HYDRA_FILES}
    return {"dir": out_dir.exists(), "subdir": hydra_dir.exists(), "subdir_name": subdir_name, "files": files,
            "log_name": log_name, "had": {n: os.path.lexists(out_dir / n) for n in (log_name, LOCK)}}


def job_status(out_dir: Path) -> tuple[str, str]:
    """(status, error) of a job's folder: its summary's, "interrupted" for a "running" one whose process
    is gone (its lock is free: killed), "not started" where there is no summary."""
    from bnstudy.records import is_locked, read_json

    try:
        summary = read_json(out_dir / "summary.json")
    except (OSError, ValueError):
        return "not started", ""
    status = summary.get("status", "broken")
    if status == "running" and not is_locked(out_dir):
        status = "interrupted"
    return status, summary.get("error") or ""


# ------------------------------------------------------------------------------------------ callback
class Preflight(Callback):
    """The Hydra callback (Hydra instantiates it from ``hydra.callbacks.bnstudy``)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[int, list[str], Path]] = []
        self.kept: dict[Path, bytes] = {}  # a resumed sweep's records, put back at its end
        self.before: dict[str, dict] = {}  # each job's folder as it was before Hydra wrote (folder_before)
        self.checked: set[str] = set()  # the folders of the jobs whose configs passed check_job

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        out_dir = Path(str(config.hydra.run.dir)).absolute()
        try:
            previous = check_job(config, out_dir)
        except Refused as e:
            refuse(str(e))
        self.before[os.path.abspath(out_dir)] = folder_before(config, out_dir)
        self.checked.add(os.path.abspath(out_dir))
        if previous is not None:  # the dir's .hydra/ records the run as it started: keep it
            with read_write(config.hydra):
                config.hydra.output_subdir = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        loader = GlobalHydra.instance().config_loader()
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()  # first: fills the resolver cache jobs copy
        if OmegaConf.select(config, "hydra.launcher._target_") == SLURM_LAUNCHER:
            from hydra_plugins.bnstudy_launchers.slurm import queued_jobs

            queued = queued_jobs(sweep_dir)
            if queued:
                refuse(f"jobs of {sweep_dir} are still in the SLURM queue ({', '.join(queued[:4])}"
                       f"{' ...' if len(queued) > 4 else ''}): wait until they end, or cancel them with scancel, "
                       f"then rerun; no job of the sweep was started")
        errors = []
        jobs = sweep_jobs(config)
        # every job's folder, to refuse two jobs in one (experiments.together: of all the sweeps it lays out)
        claimed: dict[Path, str] = STATE.setdefault("claimed", {}) if STATE.get("planning") else {}
        subdir = config.hydra.sweep._get_node("subdir")._value()
        for num, (overrides, named) in enumerate(zip(jobs, _varying(jobs))):
            job_cfg, out_dir = job_dir(loader.load_sweep_config(config, list(overrides)), num)
            out_dir = Path(os.path.abspath(out_dir))
            overrides = named
            self.jobs.append((num, overrides, out_dir))
            label = f"job #{num} ({' '.join(overrides)})" + (f" of {sweep_dir}" if STATE.get("planning") else "")
            other = next(((d, who) for d, who in claimed.items()
                          if d == out_dir or d in out_dir.parents or out_dir in d.parents), None)
            if other is not None:
                errors.append(f"{label} and {other[1]} would write into one folder ({out_dir}"
                              f"{'' if other[0] == out_dir else ' inside ' + str(other[0])}, hydra.sweep.subdir="
                              f"{subdir}): every job needs a folder of its own, so keep ${{hydra.job.num}} in "
                              f"hydra.sweep.subdir (e.g. hydra.sweep.subdir=${{hydra.job.num}}_{subdir})")
                continue
            claimed[out_dir] = label
            try:
                self.before[os.path.abspath(out_dir)] = folder_before(job_cfg, out_dir)
                if check_job(job_cfg, out_dir) is not None:
                    records = out_dir / (job_cfg.hydra.output_subdir or ".hydra")
                    self.kept.update({p: p.read_bytes() for p in (records / n for n in HYDRA_FILES) if p.is_file()})
                self.checked.add(os.path.abspath(out_dir))
            except Refused as e:
                errors.append(f"job #{num} ({' '.join(overrides)}): {e}")
        if errors:
            more = f" (and {len(errors) - 1} more job(s))" if len(errors) > 1 else ""
            refuse(f"{errors[0]}{more}; no job of the sweep was started")
        STATE["sweep_dir"] = sweep_dir
        if (sweep_dir / "multirun.yaml").is_symlink():
            refuse(f"{sweep_dir / 'multirun.yaml'} is a symbolic link: bnstudy never writes through a link")
        if (sweep_dir / "multirun.yaml").is_file():
            self.kept[sweep_dir / "multirun.yaml"] = (sweep_dir / "multirun.yaml").read_bytes()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """In the process that runs the job (a launcher's worker too: Hydra sends it this callback): what
        its folder held before, for ``experiments.train.remove_hydra_files``, and whether its config passed
        ``check_job`` (``experiments.train.job_config`` then checks it no more)."""
        out_dir = os.path.abspath(str(config.hydra.runtime.output_dir))
        STATE["job_before"] = self.before.get(out_dir)
        STATE["job_checked"] = out_dir in self.checked

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bnstudy.records import FINISHED, write_atomic

        for path, data in self.kept.items():  # a resumed sweep's records stay those of its start
            if path.is_file() and not path.is_symlink() and path.read_bytes() != data:
                write_atomic(path, data)
        if STATE.get("planning"):  # experiments.together: the jobs run later, and it reports them
            return
        statuses = {num: job_status(out_dir) for num, _, out_dir in self.jobs}
        failed = [num for num, (status, _) in statuses.items() if status not in FINISHED]
        counts: dict[str, int] = {}
        for status, _ in statuses.values():
            counts[status] = counts.get(status, 0) + 1
        sweep_dir = STATE.get("sweep_dir")
        print(f"sweep {sweep_dir}: {len(self.jobs)} job(s): "
              + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), file=sys.stderr)
        if failed:
            notes = STATE.get("job_notes") or {}
            for num, overrides, out_dir in self.jobs:
                if num in failed:
                    status, error = statuses[num]
                    why = [" ".join(error.split()), notes.get(num, "")]
                    if not any(why) and status == "not started":
                        why = ["its error is printed above"]
                    print(f"  job #{num} ({' '.join(overrides)}) {status}: {'; '.join(w for w in why if w)}",
                          file=sys.stderr)
            from experiments.interrupt import resume_command

            print(f"error: {len(failed)} of {len(self.jobs)} job(s) did not finish (#{', #'.join(map(str, failed))}); "
                  f"fix the cause and resume the sweep: "
                  f"{resume_command(f'the same command with hydra.sweep.dir={sweep_dir}')}", file=sys.stderr)
            sys.exit(1)
