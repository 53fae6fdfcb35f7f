"""Hydra launchers (``conf/hydra/launcher/``): composition with the project's configs, and real sweeps.

* every launcher option composes with every experiment (paper scale) and keeps the plugin's schema, so
  a typo or a wrong type in a launcher field fails at start, and no merge error can creep in unseen;
* ``parallel`` (joblib) and ``submitit`` (submitit's local executor) run a tiny 2-job sweep end to end
  and land in the same layout, ``results/<name>/<scale>/<stamp>/<job>/``, with the same numbers as
  Hydra's basic launcher;
* ``slurm`` runs through Hydra and submitit up to ``sbatch``, which a stub on ``PATH`` replaces: the
  test reads the sbatch script it would have submitted (partition, time, GPUs, CPUs, setup lines);
* bnstudy's SLURM launcher (``hydra_plugins/bnstudy_launchers/slurm.py``): how it reads ``squeue`` (a stub
  here), the sweep's summary it feeds, the refusal of a rerun while the sweep's jobs are queued, and the
  make targets' ``LAUNCHER=slurm``. Against a real scheduler: ``tests/test_cluster.py`` (``make test-cluster``).

Every subprocess runs with ``HYDRA_DEPRECATION_WARNINGS_AS_ERRORS=1``: a launcher file named like the
plugin's own entry (``joblib.yaml``...) would be merged with it by Hydra's deprecated automatic schema
matching, which then fails here.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

import bnstudy.config  # noqa: F401  (registers the structured configs)
import bnstudy.paths  # noqa: F401  (registers ${unique:})

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
LAUNCHER_DIR = CONF_DIR / "hydra" / "launcher"
OURS = {"parallel": "JoblibLauncher", "submitit": "LocalLauncher", "slurm": "SlurmLauncher"}
LAUNCHERS = {"basic": "BasicLauncher", **OURS}  # basic: Hydra's own (the default), no file of ours
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if not p.stem.startswith("_"))

NAME = "launch_test"
TINY = ["model=dln", "data=gaussian", "train.steps=20", "train.batch_size=100", "data.num_train=200",
        "data.num_test=100", "train.eval_every=10", "optim.lr=1e-6", "train.threads=1", "progress=false"]
SWEEP = ["norm=none,batch"]  # 2 jobs
STAMP = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+-[0-9a-f]{4}")  # ${now:...}_${unique:}


def _env(**extra: str) -> dict[str, str]:
    # PYTHONPATH: the subprocess imports this checkout's code, not the one the venv was installed from
    return {**os.environ, "HYDRA_DEPRECATION_WARNINGS_AS_ERRORS": "1", "PYTHONPATH": str(REPO), **extra}


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


@pytest.fixture(autouse=True)
def _deprecations_are_errors(monkeypatch):
    monkeypatch.setenv("HYDRA_DEPRECATION_WARNINGS_AS_ERRORS", "1")


# ----------------------------------------------------------------------------------------- composition
def test_our_files_do_not_shadow_the_plugins():
    """A file named like a registered launcher would be silently merged with it (deprecated in Hydra)."""
    Plugins.instance()  # imports hydra_plugins.*, which register their launchers in the ConfigStore
    registered = {name.removesuffix(".yaml") for name in ConfigStore.instance().list("hydra/launcher")}
    assert {"basic", "joblib", "submitit_local", "submitit_slurm"} <= registered
    ours = {p.stem for p in LAUNCHER_DIR.glob("*.yaml")}
    assert ours == set(OURS)
    assert not ours & registered


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_launcher_composes_with_every_experiment(launcher: str, experiment: str):
    cfg = _compose(f"hydra/launcher={launcher}", f"experiment={experiment}", "scale=paper")
    assert cfg.hydra.launcher._target_.endswith("." + LAUNCHERS[launcher])
    assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher
    OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # every interpolation resolves
    if launcher in ("slurm", "submitit"):
        assert cfg.hydra.launcher.name == cfg.name  # the job name is the experiment's


def test_slurm_fields():
    cfg = _compose("hydra/launcher=slurm", "experiment=fig1", "scale=paper")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.bnstudy_launchers.slurm.SlurmLauncher"  # ours, not the plugin's
    assert launcher.partition is None  # the cluster's default until set
    assert (launcher.timeout_min, launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb) == (240, 1, 4, 32)
    assert launcher.max_num_timeout == 3 and launcher.array_parallelism == 32
    assert list(launcher.setup) == ["export OMP_NUM_THREADS=4"]
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"

    cfg = _compose("hydra/launcher=slurm", "experiment=fig1", "hydra.launcher.partition=gpu",
                   "hydra.launcher.timeout_min=30", "hydra.launcher.cpus_per_task=8", "hydra.launcher.account=lab",
                   "+hydra.launcher.additional_parameters.mail-type=END")
    launcher = cfg.hydra.launcher
    assert (launcher.partition, launcher.timeout_min, launcher.account) == ("gpu", 30, "lab")
    assert list(launcher.setup) == ["export OMP_NUM_THREADS=8"]
    assert launcher.additional_parameters == {"mail-type": "END"}


@pytest.mark.parametrize("override, message", [
    ("hydra.launcher.timeout_min=abc", "could not be converted to Integer"),
    ("hydra.launcher.partitoin=gpu", "partitoin"),
    ("hydra.launcher.srun_args=[--x]", "srun_args"),  # not in the released plugin (1.2.0)
])
def test_slurm_schema_is_enforced(override: str, message: str):
    with pytest.raises(ConfigCompositionException) as e:
        _compose("hydra/launcher=slurm", override)
    assert message in str(e.value) + str(e.value.__cause__)


def test_parallel_fields():
    launcher = _compose("hydra/launcher=parallel").hydra.launcher
    assert launcher.n_jobs == 2 and launcher.prefer == "processes" and launcher.backend is None
    with pytest.raises(ConfigCompositionException):
        _compose("hydra/launcher=parallel", "hydra.launcher.n_jobz=3")


def test_slurm_from_the_command_line():
    """What a user sees with --cfg hydra (Hydra allows no -m with --cfg; the launcher is the same)."""
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "hydra/launcher=slurm", "experiment=fig1",
         "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=45", "--cfg", "hydra"],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "deprecated" not in proc.stderr.lower()
    launcher = OmegaConf.create(proc.stdout).hydra.launcher
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 45)
    assert launcher._target_.endswith(".SlurmLauncher")


def test_parallel_gives_each_job_its_share_of_cores():
    """joblib's process backend (loky) starts workers with OMP_NUM_THREADS = cores // n_jobs, so jobs
    with train.threads=0 (PyTorch's default) do not oversubscribe the machine."""
    import torch
    from joblib import Parallel, cpu_count, delayed

    n_jobs = _compose("hydra/launcher=parallel").hydra.launcher.n_jobs
    threads = Parallel(n_jobs=n_jobs)(delayed(torch.get_num_threads)() for _ in range(n_jobs))
    assert threads == [max(1, cpu_count() // n_jobs)] * n_jobs


# --------------------------------------------------------------------------------------- real sweeps
def _sweep(launcher: str, cwd: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", "-m", f"hydra/launcher={launcher}", f"name={NAME}",
         *TINY, *SWEEP, *extra],
        capture_output=True, text=True, cwd=cwd, env=env or _env(), timeout=300)


def _results(cwd: Path) -> dict[str, tuple[str, dict]]:
    """Check the layout results/<name>/<scale>/<stamp>/<job>/ and return {job: (norm, final metrics)}."""
    base = cwd / "results" / NAME / "none"  # no scale chosen: filed under none/
    sweeps = [p for p in base.iterdir()]
    assert len(sweeps) == 1 and STAMP.fullmatch(sweeps[0].name), sweeps
    sweep = sweeps[0]
    assert (sweep / "multirun.yaml").is_file()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0", "1"]
    out = {}
    for job in jobs:
        run = sweep / job
        for name in ("metrics.csv", "summary.json", ".hydra/config.yaml", ".hydra/overrides.yaml"):
            assert (run / name).is_file(), run / name
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["step"] == 20
        out[job] = (summary["config"]["norm"]["name"], summary["final"])
    return out


@pytest.fixture(scope="module")
def basic_results(tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("basic")
    proc = _sweep("basic", cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _results(cwd)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit"])
def test_sweep_end_to_end(launcher: str, tmp_path: Path, basic_results: dict):
    proc = _sweep(launcher, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "deprecated" not in proc.stderr.lower()
    results = _results(tmp_path)
    assert results == basic_results  # same jobs, same norms, same numbers (seeded, 1 thread each)
    if launcher == "submitit":
        (sweep,) = (tmp_path / "results" / NAME / "none").iterdir()
        assert list((sweep / ".submitit").glob("*/*_log.out"))  # submitit's own logs, out of the way

    from bnstudy.runs import find_runs

    runs = find_runs(tmp_path / "results")
    assert sorted(runs["norm"]) == ["batch", "none"] and set(runs["status"]) == {"completed"}


@pytest.mark.slow
def test_slurm_up_to_sbatch(tmp_path: Path):
    """Hydra -> submitit -> sbatch script, on a machine without SLURM: stubs for srun (probed by
    submitit) and sbatch (which saves the script it is given and fails, so nothing waits for a job)."""
    bin_dir, captured = tmp_path / "bin", tmp_path / "job.sbatch"
    bin_dir.mkdir()
    for tool, body in (("srun", 'echo "srun: test stub" >&2\nexit 1'),
                       ("sbatch", f'cp "$1" "{captured}"\necho "sbatch: test stub, nothing submitted" >&2\nexit 1')):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod((bin_dir / tool).stat().st_mode | stat.S_IXUSR)
    proc = _sweep("slurm", tmp_path, "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30",
                  "hydra.launcher.account=mylab", "hydra.launcher.qos=normal",  # docs/sweeps.md's cluster flags
                  env=_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
    assert proc.returncode != 0 and "sbatch: test stub" in proc.stderr, proc.stderr[-3000:]
    assert "error: SLURM did not take the sweep" in proc.stderr and "2 job(s): 2 not started" in proc.stderr
    assert "deprecated" not in proc.stderr.lower()
    script = captured.read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=32GB", f"#SBATCH --job-name={NAME}",
                 "#SBATCH --array=0-1%2", "#SBATCH --account=mylab", "#SBATCH --qos=normal",
                 "#SBATCH --signal=USR2@120", "export OMP_NUM_THREADS=4"):
        assert line in script.splitlines(), f"{line!r} not in the sbatch script:\n{script}"
    (sweep,) = (tmp_path / "results" / NAME / "none").iterdir()
    assert STAMP.fullmatch(sweep.name) and (sweep / ".submitit").is_dir()
    assert "-m submitit.core._submit" in script and str(sweep.resolve()) in script


# ------------------------------------------------------------------------------- bnstudy's SLURM launcher
def _stub(bin_dir: Path, tool: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / tool).chmod(0o755)


@pytest.mark.parametrize("body, expected", [
    ('echo "12_0|RUNNING"; echo "12_1|PENDING"; echo "13|CANCELLED+"; echo ""', {"12_0": "RUNNING", "12_1": "PENDING",
                                                                                   "13": "CANCELLED"}),
    ('echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1', {}),  # all purged: none left
    ('echo "slurm_load_jobs error: Unable to contact slurm controller" >&2; exit 1', None),  # unknown: keep waiting
])
def test_squeue_states(tmp_path, monkeypatch, body, expected):
    from hydra_plugins.bnstudy_launchers.slurm import squeue

    _stub(tmp_path, "squeue", f'echo "$@" > {tmp_path}/args\n{body}')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert squeue(["12", "13"]) == expected
    args = (tmp_path / "args").read_text().split()
    assert args[args.index("--jobs") + 1] == "12,13" and "--array" in args and "--states=all" in args


def test_queued_jobs_of_a_sweep(tmp_path, monkeypatch):
    """Earlier submissions of a sweep are its .submitit/<id> folders; only jobs still queued count."""
    from hydra_plugins.bnstudy_launchers.slurm import queued_jobs

    for name in ("12", "12_0", "12_1", "15", "notes"):
        (tmp_path / "sweep" / ".submitit" / name).mkdir(parents=True)
    _stub(tmp_path / "bin", "squeue", f'echo "$@" > {tmp_path}/args\necho "12_0|COMPLETED"; echo "12_1|RUNNING"; '
                                      f'echo "15|PENDING"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert queued_jobs(tmp_path / "sweep") == ["12_1 RUNNING", "15 PENDING"]
    args = (tmp_path / "args").read_text().split()
    assert args[args.index("--jobs") + 1] == "12,15"
    assert queued_jobs(tmp_path / "nothing") == []


def test_last_error_is_the_jobs_one_line(tmp_path):
    from hydra_plugins.bnstudy_launchers.slurm import last_error

    log = tmp_path / "12_1_0_log.err"
    log.write_text("submitit INFO starting\nerror: first\nsome: noise\nerror: Fashion-MNIST not found in /x\n"
                   "srun: error: task 0: Exited\n")
    assert last_error(log) == "error: Fashion-MNIST not found in /x"
    assert last_error(tmp_path / "missing.err") == ""


def test_watch_ends_on_results_and_on_jobs_gone_without_one(tmp_path, monkeypatch, caplog):
    """A job is done when its result file is there, or when SLURM shows it ended (or no longer shows it)
    and no result came within the grace period; several jobs may end at one poll."""
    import logging
    from types import SimpleNamespace

    import hydra_plugins.bnstudy_launchers.slurm as slurm

    def job(num: int, index: int) -> slurm.Job:
        paths = SimpleNamespace(result_pickle=tmp_path / f"12_{index}_result.pkl", stderr=tmp_path / f"12_{index}.err")
        return slurm.Job(num, [f"lr={num}"], tmp_path / str(num), submitted=SimpleNamespace(job_id=f"12_{index}",
                                                                                             paths=paths))
    jobs = [job(1, 0), job(2, 1), job(3, 2), job(4, 3)]
    (tmp_path / "12_0_result.pkl").write_bytes(b"never read")
    (tmp_path / "12_2.err").write_text("error: no data in /x\n")
    monkeypatch.setattr(slurm, "GRACE_S", 0.0)
    monkeypatch.setattr(slurm, "squeue", lambda ids: {"12_1": "CANCELLED", "12_2": "OUT_OF_MEMORY"})
    monkeypatch.setattr(slurm, "final_state", lambda job_id: "")  # no accounting
    with caplog.at_level(logging.INFO, logger=slurm.__name__):
        slurm._watch(jobs, total=5, name="fig1")
    assert [j.ended for j in jobs] == ["finished", "CANCELLED", "OUT_OF_MEMORY", ""]
    assert jobs[2].note() == f"SLURM job 12_2 ended OUT_OF_MEMORY without a result; error: no data in /x; log: {tmp_path}/12_2.err"
    assert jobs[3].note().startswith("SLURM job 12_3 left the queue without a result; log: ")
    assert caplog.messages[-1] == "fig1: 5/5 jobs done (1 before this submission), 0 running, 0 pending"


def test_sweep_summary_names_slurm_jobs(tmp_path, capsys, fake_run):
    """The summary reads each job's folder (a "running" one whose lock is free was killed: interrupted)
    and adds what the launcher knows (its SLURM id, how it ended, its log) to each job that did not finish."""
    from experiments.preflight import STATE, Preflight

    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", [(10, "train_loss", None, None, None, 1.0)], {"name": "x"})
    fake_run(sweep / "1", [(10, "train_loss", None, None, None, 1.0)], {"name": "x"}, status="running")
    (sweep / "2").mkdir()  # failed before a summary: its error is only in its SLURM log
    pre = Preflight()
    pre.jobs = [(0, ["lr=0.1"], sweep / "0"), (1, ["lr=0.5"], sweep / "1"), (2, ["data.root=/x"], sweep / "2")]
    notes = {1: "SLURM job 12_1 ended CANCELLED without a result; log: L1",
             2: "SLURM job 12_2; error: no data in /x; log: L2"}
    STATE.update(sweep_dir=sweep, job_notes=notes)
    try:
        with pytest.raises(SystemExit) as e:
            pre.on_multirun_end(config=OmegaConf.create({}))
    finally:
        STATE.pop("job_notes", None), STATE.pop("sweep_dir", None)
    assert e.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"sweep {sweep}: 3 job(s): 1 completed, 1 interrupted, 1 not started"
    assert err[1] == f"  job #1 (lr=0.5) interrupted: {notes[1]}"
    assert err[2] == f"  job #2 (data.root=/x) not started: {notes[2]}"
    assert err[3].startswith("error: 2 of 3 job(s) did not finish (#1, #2)")


def test_rerun_is_refused_while_the_sweeps_jobs_are_queued(tmp_path, monkeypatch, capsys):
    """A rerun of a SLURM sweep whose earlier jobs are still queued would run them twice: refused, before
    anything is written."""
    from hydra import initialize_config_dir, compose
    from experiments.preflight import Preflight

    sweep = tmp_path / "sweep"
    (sweep / ".submitit" / "12_1").mkdir(parents=True)
    _stub(tmp_path / "bin", "squeue", 'echo "12_0|COMPLETED"; echo "12_1|RUNNING"')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm", f"hydra.sweep.dir={sweep}",
                                                        "name=x"], return_hydra_config=True)
        with pytest.raises(SystemExit) as e:
            Preflight().on_multirun_start(cfg)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "still in the SLURM queue (12_1 RUNNING)" in err and "no job of the sweep was started" in err
    assert sorted(p.name for p in sweep.iterdir()) == [".submitit"]  # nothing written


@pytest.mark.parametrize("make_vars, experiment, expected", [
    (["SCALE=tiny", "LAUNCHER=slurm"], "fig1", "hydra/launcher=slurm hydra.launcher.gpus_per_node=0 "
     "hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=4"),  # below paper scale: one CPU per job
    (["SCALE=paper", "LAUNCHER=slurm"], "fig1", "hydra/launcher=slurm"),  # a GPU job (slurm.yaml's defaults)
    (["SCALE=paper", "LAUNCHER=hydra/launcher=slurm"], "fig3_dln", "hydra/launcher=slurm "
     "hydra.launcher.gpus_per_node=0"),  # the DLN is one CPU thread at every scale
    (["SCALE=tiny", "LAUNCHER=slurm", "ARGS=train.threads=2"], "fig1", "hydra/launcher=slurm"),  # each job has its cores
    (["LAUNCHER=parallel"], "fig1", "hydra/launcher=parallel"),  # a bare name, as hydra/launcher=NAME
    (["LAUNCHER=slurm"], "tut_batch", "hydra/launcher=slurm hydra.launcher.gpus_per_node=0"),  # the tutorials too
])
def test_make_targets_on_slurm(make_vars, experiment, expected):
    target = {"fig1": "fig1", "fig3_dln": "fig3", "tut_batch": "tutorials"}[experiment]
    out = subprocess.run(["make", "-n", target, *make_vars], cwd=REPO, capture_output=True, text=True)
    train = [line for line in out.stdout.splitlines() if f"experiment={experiment} " in line]
    assert len(train) == 1 and expected in train[0], out.stdout
    if "SCALE=paper" in make_vars and experiment == "fig1":
        assert "gpus_per_node" not in train[0]


def test_make_all_on_slurm_runs_the_figure_targets():
    """On SLURM every run is its own job: make all runs the nine sweeps (no experiments.together)."""
    out = subprocess.run(["make", "-n", "all", "LAUNCHER=slurm"], cwd=REPO, capture_output=True, text=True)
    train = [line for line in out.stdout.splitlines() if "experiments.train" in line]
    assert len(train) == 9 and all("hydra/launcher=slurm" in line for line in train), out.stdout
    assert "experiments.together" not in out.stdout and out.stdout.count("experiments.figures") == 6
