"""How many threads a run uses on a CPU, and a warning when the machine is busier than its cores.

``train.threads``: 0 leaves PyTorch's default (every core, or ``OMP_NUM_THREADS``, which the parallel
launcher sets to each job's share); N uses N; ``auto`` uses the cores that are free when the run starts
(idle time of this process's cores over a short sample of ``/proc/stat``; elsewhere ``os.getloadavg``),
never more than ``OMP_NUM_THREADS`` when it is set, and at least 1.

Importing this module (the entry points do it before torch) picks the OpenMP wait policy, unless
``OMP_WAIT_POLICY`` is set already: when other processes keep at least half a core of this process's
cores busy (``/proc/stat`` watched for 0.1 s) it sets ``PASSIVE``, so threads waiting for work sleep
instead of spinning; on an idle machine it leaves OpenMP's default (spin briefly, then sleep). Both
choices were measured: on a busy machine the spinning threads take the cores from the ones with work (a
2-thread VGG-11 step took 10-12 s instead of 0.06-0.12 s under a load of 25 on 2 cores; beside one busy
process 300 quick VGG-11 steps took 13.9 s with PASSIVE, 18.3 s spinning); on an idle 2-core machine
PASSIVE made the same 300 steps 1.5-1.7x slower (10.4 s against 6.2 s: every small op wakes its
threads). The wait policy changes no number (it is read when torch loads its OpenMP runtime, so it must
be chosen before ``import torch``); ``summary.json`` records it (``environment.threads``).

The thread count changes how PyTorch splits its float sums, so a run's numbers can differ in the last
bits between thread counts; a fixed count gives byte-identical CSVs, and ``summary.json`` records the
count used (``environment.threads``). A resumed run keeps the count it started with.
"""

from __future__ import annotations

import math
import os
import time

PROC_STAT = "/proc/stat"  # per-core busy and idle time (Linux)
SAMPLE_S = 0.25  # how long auto watches the cores
WAIT_SAMPLE_S = 0.1  # how long the import watches the cores to pick the wait policy
PASSIVE_BUSY = 0.5  # cores kept busy by other processes from which the wait policy is PASSIVE


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity mask, e.g. a SLURM or container cpuset)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cpu_times(cpus: list[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies of ``cpus`` from /proc/stat, or None where there is no /proc/stat or it is not
    what Linux writes (a container's or an emulator's own): the callers then fall back on the load average."""
    try:
        with open(PROC_STAT, encoding="ascii") as f:
            lines = f.read(1 << 20).splitlines()  # a few kB on a machine with hundreds of cores
    except (OSError, ValueError):
        return None
    want, busy, total = {f"cpu{i}" for i in cpus}, 0.0, 0.0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in want:
            try:
                values = [float(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
            except ValueError:
                return None
            if len(values) < 5 or not all(math.isfinite(v) and v >= 0 for v in values):
                return None
            total += sum(values)
            busy += sum(values) - values[3] - values[4]
    return (busy, total) if total > 0 else None


def _load_average() -> float:
    """The 1-minute load average, 0 where the system has none."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    return load if math.isfinite(load) and load >= 0 else 0.0


def busy_cores(sample_s: float = SAMPLE_S) -> float:
    """How many of the usable cores other processes keep busy (this process sleeps while it looks), between
    0 and the usable cores."""
    cpus = usable_cores()
    before = _cpu_times(cpus)
    if before is not None:
        time.sleep(sample_s)
        after = _cpu_times(cpus)
        if after is not None:
            busy, total = after[0] - before[0], after[1] - before[1]
            return min(float(len(cpus)), max(0.0, len(cpus) * busy / total)) if total > 0 else 0.0
    return min(float(len(cpus)), _load_average())


def auto_threads(busy: float | None = None) -> int:
    """Free cores (rounded), capped by OMP_NUM_THREADS when set, at least 1."""
    cores = len(usable_cores())
    busy = busy_cores() if busy is None else busy
    n = max(1, min(cores, int(cores - busy + 0.5)))
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(n, int(omp)) if omp.isdigit() and int(omp) > 0 else n


def pool_size(busy: float | None = None) -> int:
    """How many single-thread runs to start at once: one per usable core, plus one per core other processes
    keep busy (rounded), at most twice the cores.

    The kernel shares the cores between runnable threads: beside one busy process, two runs on 2 cores get
    2/3 of a core each, three get half a core each (1.5 cores in all, not 1.33). Timed by hand, back to back
    (``experiments.train`` wall times, not ``make bench``), on the 2-core AMD EPYC with quick VGG-11 runs (800 steps; one alone: 51 s on 1 thread, 37 s on 2): idle, 25.3 s a run
    with 2 at once, 28.4 s with 3 (an extra run only costs on an idle machine); beside a busy Python loop,
    40.5 s a run with 2 at once (1.60x), 34.2 s with 3 (1.35x), 33.1 s with 4."""
    cores = len(usable_cores())
    busy = busy_cores() if busy is None else busy
    return max(1, min(2 * cores, cores + int(busy + 0.5)))


def resolve_threads(setting) -> int:
    """``train.threads`` as a count: 0 = PyTorch's default (returned as 0), N, or auto's choice."""
    from bnstudy.config import ConfigError

    text = str(setting).strip().lower()
    if text == "auto":
        return auto_threads()
    if text.isdigit():
        return int(text)
    raise ConfigError(f"train.threads={setting!r}: use a count >= 0 (0 = PyTorch's default) or auto")


def load_warning(threads: int) -> str | None:
    """A line when the 1-minute load average is at least one process above the usable cores, else None."""
    load = _load_average()
    cores = len(usable_cores())
    if load < cores + 1:
        return None
    return (f"the machine is busy (load average {load:.1f} on {cores} cores): this run uses {threads} thread(s) "
            f"and will be slower; train.threads=auto uses only the free cores (another thread count can change "
            f"the last bits of the numbers)")


def choose_wait_policy(busy: float | None = None) -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when other processes keep ``PASSIVE_BUSY`` cores busy, unless it is set;
    returns what was decided (recorded in ``summary.json``)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return os.environ["OMP_WAIT_POLICY"]
    busy = busy_cores(WAIT_SAMPLE_S) if busy is None else busy
    if busy >= PASSIVE_BUSY:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return "PASSIVE"
    return "default"


WAIT_POLICY = choose_wait_policy()  # before torch loads OpenMP: see the docstring
