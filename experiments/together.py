"""Several experiments' sweeps in one process, each distinct training trajectory trained once (``make all``).

    python -m experiments.together fig1 fig2 fig3_cnn --scale quick --seeds 0,1 --run-id ID [-- OVERRIDES]

Each experiment is laid out by Hydra's own sweep of ``experiments.train``'s config (``plan``: Hydra's API,
started as ``hydra.main`` starts it), exactly as ``python -m experiments.train -m experiment=E scale=S
seed=SEEDS hydra.sweep.dir=RESULTS/E/S/ID OVERRIDES`` would lay it out (the preflight's refusals and
checks, ``.hydra/`` records, ``multirun.yaml``, job numbers), but its jobs are not run there. Jobs whose
configs differ only in what they measure (``bnstudy.build.TRAJECTORY_FREE``: fig1's and fig4's standard
network at lr 0.1, say) follow the same trajectory, since a measurement never changes training; each such
group is trained once by ``Trainer(also=...)``, which writes every job's folder as that job alone would,
byte for byte. Groups of single-thread runs (``train.threads=1``: the DLN, and every run below paper scale)
run ``--workers`` at a time in worker processes, the longest first (by default one per core, and one more
per core another process keeps busy: ``bnstudy.threads.pool_size``); the others one after another in this
process. ``--figures`` then draws those figures from these sweeps. A job that fails does not stop the
others; the exit status is then 1 and the same command (same ``--run-id``) resumes what did not finish.

Ctrl-C or SIGTERM (a scheduler, ``timeout``) stops everything this process started: the workers ignore the
terminal's Ctrl-C and are sent SIGTERM by this process instead, which stops the group each trains (its
runs' summaries say interrupted; the last checkpoints stay) and every group queued after it. A worker
whose parent dies, however it dies (SIGKILL too), gets SIGHUP (Linux): its group stops the same way and
the worker ends. Once every worker has ended, one line says how to resume (``experiments.interrupt``), and
the exit status is 130 (143 for SIGTERM).
"""

from __future__ import annotations

import bnstudy.threads  # noqa: F401  (first: idle OpenMP threads sleep, set before torch is imported)
import argparse
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from experiments.interrupt import (Terminated, deferred_signals, exit_status, print_interrupted, resume_command,
                                   sigterm_as_interrupt)

log = logging.getLogger("bnstudy")

Job = tuple  # (Config, out_dir): a job of a sweep as Hydra laid it out; (Config, out_dir, Sweep) once grouped


def sweep_dir(results: Path, experiment: str, scale: str, run_id: str) -> Path:
    """Where ``make`` puts an experiment's sweep (the Makefile's ``sweep_dir``)."""
    return results / experiment / scale / run_id


def plan(experiments: list[str], scale: str, seeds: str, results: Path, run_id: str, overrides: list[str]) -> list[Job]:
    """Every job of the experiments' sweeps, laid out by Hydra (folders and records written, nothing run).

    Each sweep is Hydra's own multirun of ``experiments.train``'s config (its job name, search path and
    ``hydra.mode=MULTIRUN``, as ``hydra.main`` starts it), with the preflight's refusals first and its
    callback; the task function records the job's config and folder instead of training it."""
    from hydra import initialize_config_dir
    from hydra._internal.utils import run_and_report
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from experiments import preflight
    from experiments.train import CONF_DIR, job_config

    jobs: list[Job] = []

    def record(cfg) -> None:
        jobs.append((job_config(cfg), Path(HydraConfig.get().runtime.output_dir)))

    with preflight.planning():
        for name in experiments:
            args = [f"experiment={name}", f"scale={scale}", f"seed={seeds}",
                    f"hydra.sweep.dir={sweep_dir(results, name, scale, run_id)}", *overrides]
            preflight.refuse_code_overrides(args)
            preflight.refuse_code_in_configs(["-m", *args], record, CONF_DIR, "config")
            with initialize_config_dir(config_dir=CONF_DIR, job_name="train", version_base="1.3"):
                hydra = GlobalHydra.instance().hydra
                run_and_report(lambda: hydra.multirun("config", record, [*args, "hydra.mode=MULTIRUN"]))
    return jobs


def group(jobs: list[Job]) -> list[list[Job]]:
    """Jobs with one trajectory (``trajectory_key``) together, in the order their first job was planned."""
    from bnstudy.build import trajectory_key

    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(trajectory_key(job[0]), []).append(job)
    return list(groups.values())


def estimated_cost(jobs: list[Job]) -> float:
    """A rough cost of a group, to start the longest first: its steps, times one plus the passes its
    measurements state per step (``Measurement.cost``), times 2 for a norm layer."""
    from bnstudy.measures.registry import enabled, node_of

    cfg = jobs[0][0]
    passes = 0.0
    for job in jobs:
        for cls in enabled(job[0].measure):
            conf = node_of(job[0].measure, cls)
            every = getattr(conf, "every", 1) or 1
            cost = cls.cost(conf)
            passes += cost.passes * cost.units / every
    return cfg.train.steps * (1 + passes) * (1 if cfg.norm.name == "none" else 2)


def log_files(jobs: list[Job]) -> list[logging.Handler]:
    """Each job's own log file (``train.log``, as Hydra's job logging names it) receives this group's lines."""
    handlers = []
    for _, out_dir, _ in jobs:
        h = logging.FileHandler(Path(out_dir) / "train.log", mode="a")
        h.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger().addHandler(h)
        handlers.append(h)
    return handlers


def train_group(jobs: list[Job]) -> list[tuple[str, str]]:
    """Train one group; (out_dir, error) for each job that did not finish (an error line, or a traceback)."""
    from bnstudy.train import Trainer
    from experiments.train import USER_ERRORS

    (cfg, out_dir, sweep), *also = jobs
    handlers = log_files(jobs)
    try:
        trainer = Trainer(cfg, out_dir, sweep=sweep, also=also, checked=True)  # the preflight checked them
        trainer.run()
        summaries = trainer.summaries
        for job, s in zip(jobs, summaries):
            log.info("%s: %s at step %s, final %s", job[1], s["status"], s["step"], s.get("final"))
    except USER_ERRORS as e:
        message = " ".join(str(e).split())  # one line, as the entry point prints it
        log.error("error: %s", message)
        return [(str(job[1]), message) for job in jobs]
    except Exception:
        log.exception("%s: a bug, not a user error (the other groups go on)", out_dir)
        return [(str(job[1]), traceback.format_exc()) for job in jobs]
    finally:
        for h in handlers:
            logging.getLogger().removeHandler(h)
            h.close()
    return [(str(job[1]), f"status {s.get('status')}") for job, s in zip(jobs, summaries)
            if s.get("status") not in ("completed", "diverged")]


def console_logging() -> None:
    """Log lines on stdout, as Hydra's job logging prints them (replacing the last planned job's handlers)."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
                        stream=sys.stdout, force=True)


# ------------------------------------------------------------------------------------------ workers
WORKER = {"busy": False, "stopping": False, "orphan": False}  # this worker process's state (worker_init)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_GONE = signal.SIGHUP  # what a worker gets when its parent dies (or its terminal hangs up)


def worker_init(parent: int) -> None:
    """A worker process's start: log lines on stdout; the terminal's Ctrl-C is left to the parent, which
    sends SIGTERM instead: the group this worker trains stops (its runs record the interruption) and no
    other starts; SIGHUP comes when the parent dies, even by SIGKILL (Linux's parent-death signal): the
    group stops the same way and the worker ends, since nobody is left to send it work or collect it."""
    console_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_stop)
    signal.signal(PARENT_GONE, _worker_stop)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, PARENT_GONE)
    except (OSError, AttributeError):  # not Linux: the parent still stops its workers on Ctrl-C and SIGTERM
        pass
    if os.getppid() != parent:  # the parent died before the line above
        _leave()


def _worker_stop(signum: int, frame) -> None:
    first = not WORKER["stopping"]
    WORKER["stopping"] = True
    WORKER["orphan"] |= signum == PARENT_GONE
    if WORKER["busy"]:
        if first:  # once: a second signal must not break the recording of the interruption
            raise Terminated(signum)  # the loop's KeyboardInterrupt path: summaries say interrupted
    elif WORKER["orphan"]:
        _leave()


def _leave() -> None:
    """End this worker now: its parent is gone, and the queue it would wait on for work never closes
    (every worker holds its write end)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(128 + PARENT_GONE)


def worker_train_group(jobs: list[Job]) -> list[tuple[str, str]]:
    """``train_group`` in a worker: once stopped, the group's runs record their interruption (no
    traceback) and no other group starts here."""
    if WORKER["stopping"]:
        result = [(str(job[1]), "not started (interrupted)") for job in jobs]
    else:
        try:
            WORKER["busy"] = True
            result = train_group(jobs)
            WORKER["busy"] = False
        except KeyboardInterrupt:
            WORKER["busy"] = False
            result = [(str(job[1]), "interrupted") for job in jobs]
    if WORKER["orphan"]:
        _leave()
    return result


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM to every worker, then wait until all have ended (the groups queued are cancelled); a
    second Ctrl-C meanwhile is ignored, so the runs finish recording their interruption."""
    with deferred_signals():
        for process in multiprocessing.active_children():  # this process's children: the pool's workers
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def run_groups(groups: list[list[Job]], workers: int) -> list[tuple[str, str]]:
    """Multi-thread groups here, one by one; single-thread groups ``workers`` at a time, longest first."""
    single = [g for g in groups if str(g[0][0].train.threads) == "1"]
    multi = [g for g in groups if g not in single]
    failed: list[tuple[str, str]] = []
    for g in multi:
        failed += train_group(g)
    if single:
        single.sort(key=estimated_cost, reverse=True)
        if workers <= 1 or len(single) == 1:
            for g in single:
                failed += train_group(g)
        else:
            context = multiprocessing.get_context("spawn")  # not fork: this process's OpenMP threads
            with ProcessPoolExecutor(min(workers, len(single)), mp_context=context, initializer=worker_init,
                                     initargs=(os.getpid(),)) as pool:
                reported = 0
                try:
                    for result in pool.map(worker_train_group, single):
                        failed += result
                        reported += 1
                except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Terminated)
                    stop_workers(pool)
                    raise
                except BrokenProcessPool:  # a worker was killed (the OOM killer, kill -9): the others end too
                    failed += [(str(job[1]), "not reported: a worker process died (killed, or out of memory?)")
                               for g in single[reported:] for job in g]
    return failed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiments", nargs="+", metavar="EXPERIMENT", help="conf/experiment options to run")
    p.add_argument("--scale", default="quick")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--run-id", required=True, help="the sweep folders' name; an existing one resumes them")
    p.add_argument("--workers", type=int, default=None,
                   help="single-thread groups at once (default: the cores this process may use, plus one for "
                        "each core other processes keep busy: bnstudy.threads.pool_size)")
    p.add_argument("--figures", nargs="*", default=[], metavar="FIGURE", help="figures to draw from the sweeps")
    a = p.parse_args(argv)
    launcher = [o for o in overrides if o.lstrip("+~").startswith(("hydra/launcher", "hydra.launcher"))]
    if launcher:
        print(f"error: {launcher[0]}: experiments.together runs its jobs itself; run the experiments one by one "
              f"with that launcher instead (make fig1 fig2 ... ARGS=...)", file=sys.stderr)
        return 2
    with sigterm_as_interrupt():
        try:
            return run(a, overrides)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: every worker has ended by now
            print_interrupted(f"the same command (--run-id {a.run_id})")
            return exit_status(e)


def run(a: argparse.Namespace, overrides: list[str]) -> int:
    """Plan, train, draw (``main``'s work once its arguments are read)."""
    start = time.time()
    if a.workers is None:
        from bnstudy.threads import busy_cores, pool_size, usable_cores

        busy = busy_cores()
        a.workers = pool_size(busy)
        print(f"{a.workers} single-thread group(s) at once: {len(usable_cores())} core(s), {busy:.1f} kept busy by "
              f"other processes", file=sys.stderr)
    jobs = plan(a.experiments, a.scale, a.seeds, a.results, a.run_id, overrides)
    from bnstudy.progress import Sweep

    console_logging()
    groups = group(jobs)
    folders = tuple(tuple(Path(job[1]) for job in g) for g in groups)
    groups = [[(cfg, out_dir, Sweep(None, len(groups), i, folders)) for cfg, out_dir in g]
              for i, g in enumerate(groups)]
    print(f"{len(jobs)} jobs of {len(a.experiments)} experiment(s) follow {len(groups)} training trajectories: "
          f"each trained once", file=sys.stderr)
    failed = run_groups(groups, a.workers)
    print(f"{len(jobs)} job(s) in {time.time() - start:.0f} s: {len(jobs) - len(failed)} finished", file=sys.stderr)
    for out_dir, error in failed:
        print(f"  {out_dir}: {error}", file=sys.stderr)
    if a.figures:
        from experiments import figures

        sweeps = [str(sweep_dir(a.results, e, a.scale, a.run_id)) for e in a.experiments]
        figures.main([*a.figures, "--scale", a.scale, "--results", str(a.results), "--sweep", *sweeps])
    if failed:
        print(f"error: {len(failed)} of {len(jobs)} job(s) did not finish; fix the cause and resume: "
              f"{resume_command(f'the same command (--run-id {a.run_id})')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
