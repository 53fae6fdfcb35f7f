"""Reliability (issue 6): interrupt and resume, divergence, bad input, whole files, reproducibility,
results never overwritten, unknown keys, safe checkpoint loading.

Real runs go through the Hydra entry point, in a subprocess where a process must die (SIGKILL) or a
sweep must run end to end, and in-process (``experiments.train.main`` with ``sys.argv`` set) otherwise.
Every run is a tiny deep linear network on the synthetic ``gaussian`` data: a second or two each.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import experiments.clean_results as clean_results
from conftest import call_main
from bnstudy.data import TensorData
from bnstudy.records import MetricsWriter, RunLock, read_metrics, write_json_atomic
from bnstudy.runs import find_runs, run_status, write_index
from bnstudy.records import CHECKPOINT, RunError
from bnstudy.train import run

ROOT = Path(__file__).resolve().parents[1]
DLN = ["model=dln", "model.num_layers=6", "data=gaussian", "norm=batch", "data.num_train=256",
       "data.num_test=256", "train.batch_size=32", "train.log_every=5", "train.eval_every=10",
       "train.threads=1", "progress=false", "optim.lr=1e-4"]
MEASURE = ["measure=all", "measure.activations.every=3", "measure.activations.samples=8", "measure.ics.every=4",
           "measure.landscape.every=5", "measure.landscape.points=3", "measure.loss_change.every=2"]
FAST = ["train.deterministic=false"]  # skips torch's deterministic-mode import (2 s) where it cannot matter

pytestmark = pytest.mark.slow

# Runs the entry point, SIGKILLing itself on the second non-empty CSV write after checkpoint number
# KILL_AFTER_CKPTS: the CSV then holds rows past the checkpoint, which a resume must drop and redo.
KILLER = r"""
import os, runpy, signal, sys
import bnstudy.train as T
from bnstudy.records import MetricsWriter
seen = {"ckpts": 0, "writes": 0}
save = T.Trainer.save_checkpoint
def save_checkpoint(self, *a, **k):
    save(self, *a, **k)
    seen["ckpts"] += 1
write = MetricsWriter.write
def write_then_die(self, rows):
    rows = list(rows)
    write(self, rows)
    if rows and seen["ckpts"] >= int(os.environ["KILL_AFTER_CKPTS"]):
        seen["writes"] += 1
        if seen["writes"] >= 2:
            os.kill(os.getpid(), signal.SIGKILL)
T.Trainer.save_checkpoint, MetricsWriter.write = save_checkpoint, write_then_die
sys.argv = ["train", *sys.argv[1:]]
runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
"""


def with_overrides(base: list[str], *extra: str) -> list[str]:
    """``base`` with each key that ``extra`` sets replaced (Hydra refuses a group given twice)."""
    keys = {e.split("=", 1)[0].lstrip("+~") for e in extra}
    return [b for b in base if b.split("=", 1)[0] not in keys] + list(extra)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    # PYTHONPATH: the subprocess imports this checkout's code, not the one the venv was installed from
    return {**env, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}


def cli(*args, cwd: Path, code: str | None = None, **env) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "experiments.train"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=240)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return OmegaConf.to_object(compose("config", overrides=overrides))


# ------------------------------------------------------------------------------ 1. interrupt, resume
def test_killed_run_resumes_to_the_uninterrupted_csv(tmp_path):
    """SIGKILL after the 2nd checkpoint (step 20, CSV already at step 30); resume; equal CSVs.

    noisy BN draws from torch's RNG every step and measure=all keeps state across steps, so the CSVs
    match only if weights, optimiser, RNG, probe state and the CSV position all resume."""
    args = with_overrides([*DLN, *MEASURE], "norm=noisy_batch", "train.steps=50", "train.checkpoint_every=10")
    run_dir, ref = tmp_path / "run", tmp_path / "ref"
    killed = cli(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path, code=KILLER, KILL_AFTER_CKPTS="2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert summary(run_dir)["status"] == "running" and (run_dir / CHECKPOINT).exists()
    assert run_status(run_dir)[0] == "interrupted"
    assert read_metrics(run_dir / "metrics.csv")["step"].max() == 30  # rows past the checkpoint

    resumed = cli(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    fresh = cli(*args, f"hydra.run.dir={ref}", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr

    s = summary(run_dir)
    assert (s["status"], s["step"], s["resumed_from"]) == ("completed", 50, 20)
    assert not (run_dir / CHECKPOINT).exists()
    got, want = read_metrics(run_dir / "metrics.csv"), read_metrics(ref / "metrics.csv")
    assert {"ics_l2", "act_sample", "moment_shift_mean", "loss_change", "beta"} <= set(want["metric"])
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert (run_dir / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()


# ------------------------------------------------------------------------------ 2. divergence
def test_sweep_goes_on_after_a_diverging_job(tmp_path):
    sweep = tmp_path / "sweep"
    args = with_overrides([*DLN, *FAST, "train.steps=40"], "optim.lr=1e4,1e-4")
    proc = cli("-m", *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    bad, good = summary(sweep / "0"), summary(sweep / "1")
    assert (bad["status"], bad["step"], bad["config"]["optim"]["lr"]) == ("diverged", 5, 1e4)
    assert (good["status"], good["step"]) == ("completed", 40)
    csv = read_metrics(sweep / "0" / "metrics.csv")
    assert csv["step"].max() == 5  # kept up to the divergence
    assert csv[csv.metric == "train_loss"]["value"].isna().iloc[-1]
    runs = find_runs(sweep)
    assert list(runs["status"]) == ["diverged", "completed"] and list(runs["lr"]) == [1e4, 1e-4]


def _random_label_images(n: int = 64, n_test: int = 1000) -> TensorData:
    g = torch.Generator().manual_seed(0)
    return TensorData("noise", torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
                      torch.randn(n_test, 1, 28, 28, generator=g), torch.randint(0, 10, (n_test,), generator=g), 10)


@pytest.mark.parametrize("how", ["loss_threshold", "chance_accuracy"])
def test_divergence_stops_the_run_cleanly(tmp_path, how):
    if how == "loss_threshold":  # the DLN's first logged loss (summed squares) is in the thousands
        cfg, data = compose_cfg([*DLN, *FAST, "train.steps=40", "train.divergence_loss=100"]), None
        expected_step = 5
    else:  # random labels: test accuracy stays at chance; 2 evals in a row (steps 0 and 4) -> diverged
        cfg = compose_cfg(["model=small_cnn", *FAST, "train.steps=40", "train.batch_size=16", "train.log_every=2",
                           "train.eval_every=4", "train.eval_size=1000", "train.chance_patience=2",
                           "train.threads=1", "progress=false", "optim.lr=0.001"])
        data, expected_step = _random_label_images(), 5
    s = run(cfg, tmp_path / "run", data=data)
    assert (s["status"], s["step"]) == ("diverged", expected_step)
    assert summary(tmp_path / "run")["status"] == "diverged"
    assert read_metrics(tmp_path / "run" / "metrics.csv")["step"].max() <= expected_step


# ------------------------------------------------------------------------------ 3. bad input
BAD_INPUT = {  # overrides -> (exit code, what stderr must say)
    "norm=btach": (1, ["Could not find 'norm/btach'", "Available options in 'norm'", "noisy_batch"]),
    "optim.lr=fast": (1, ["optim.lr", "'fast'", "could not be converted to Float"]),
    "optim.lr=-1": (2, ["error: optim.lr=-1.0 must be > 0"]),
    "train.steps=0": (2, ["error: train.steps=0 must be > 0"]),
    "measure.activations.every=1 measure.activations.layers=[1,9]":
        (2, ["measure.activations.layers=[1, 9]: layers must lie in 1..5"]),
    "data.num_train=16 train.batch_size=32": (2, ["train.batch_size=32 exceeds the 16 training samples"]),
    "data=mnist data.root={tmp}/nowhere": (2, ["MNIST not found", "{tmp}/nowhere", "data.download=true"]),
    "+model.depht=3": (2, ["unknown key model.depht", "num_layers"]),
    "+model.num_layer=3": (2, ["did you mean model.num_layers?"]),
}


@pytest.mark.parametrize("bad", list(BAD_INPUT))
def test_bad_input_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch, capsys, bad):
    keep = tmp_path / "results" / "earlier"
    keep.mkdir(parents=True)
    (keep / "metrics.csv").write_text("step,metric,layer,unit,eta,value\n")
    run_dir = tmp_path / "results" / "new"
    args = with_overrides([*DLN, *FAST, "train.steps=5"], *bad.format(tmp=tmp_path).split())
    code, err = call_main(monkeypatch, capsys, *args, f"hydra.run.dir={run_dir}")
    want_code, phrases = BAD_INPUT[bad]
    assert code == want_code, err
    for phrase in phrases:
        assert phrase.format(tmp=tmp_path) in err
    if want_code == 2:
        assert err.count("\n") == 1 and "Traceback" not in err  # one line
    assert not run_dir.exists()
    assert (keep / "metrics.csv").exists()  # other dirs untouched


def test_config_error_from_the_command_line_is_one_line(tmp_path):
    run_dir = tmp_path / "r"
    proc = cli(*with_overrides([*DLN, *FAST], "optim.lr=-0.5"), f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "error: optim.lr=-0.5 must be > 0\n"
    assert not run_dir.exists()


def test_sweep_dir_of_a_rejected_sweep_is_removed(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    code, err = call_main(monkeypatch, capsys, "-m", *DLN, *FAST, "train.steps=0,5", f"hydra.sweep.dir={sweep}")
    assert code == 2 and "train.steps=0 must be > 0" in err
    assert not sweep.exists()


# ------------------------------------------------------------------------------ 4. whole files, runs index
def test_sigkilled_csv_holds_only_whole_rows(tmp_path):
    run_dir = tmp_path / "run"
    args = with_overrides([*DLN, *MEASURE, *FAST], "train.steps=100000", "train.log_every=1", "train.checkpoint_every=7")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.train", *args, f"hydra.run.dir={run_dir}"],
                            cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv = run_dir / "metrics.csv"
    try:
        deadline = time.time() + 120
        while not (csv.exists() and csv.stat().st_size > 50_000 and (run_dir / CHECKPOINT).exists()):
            assert proc.poll() is None and time.time() < deadline, "the run ended before it could be killed"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    text = csv.read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    assert all(line.count(",") == 5 for line in lines)
    df = pd.read_csv(csv)
    assert len(df) == len(lines) - 1 and df["step"].notna().all() and df["metric"].notna().all()
    assert run_status(run_dir)[0] == "interrupted"


# SIGKILLs itself just before the Nth write() to metrics.csv: a kill between any two writes must
# leave whole rows (a writer that sends a row in pieces fails this; a random kill rarely lands there).
KILL_AT_WRITE = r"""
import os, runpy, signal, sys
real_write, calls = os.write, [0]
def write(fd, data):
    if fd > 2 and os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.csv"):
        calls[0] += 1
        if calls[0] == int(os.environ["KILL_AT_WRITE"]):
            os.kill(os.getpid(), signal.SIGKILL)
    return real_write(fd, data)
os.write = write
sys.argv = ["train", *sys.argv[1:]]
runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
"""


def test_csv_is_whole_between_any_two_writes(tmp_path):
    run_dir = tmp_path / "run"
    args = with_overrides([*DLN, *MEASURE, *FAST], "train.steps=1000", "train.log_every=1",
                          "measure.activations.every=1", "measure.activations.samples=64")
    proc = cli(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path, code=KILL_AT_WRITE, KILL_AT_WRITE="9")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    text = (run_dir / "metrics.csv").read_text()
    assert text.endswith("\n") and all(line.count(",") == 5 for line in text.splitlines())
    df = pd.read_csv(run_dir / "metrics.csv")
    assert 0 < df["step"].max() < 1000 and df["value"].notna().all()


def _fake_run(run_dir: Path, status: str, lr: float = 0.1) -> Path:
    run_dir.mkdir(parents=True)
    writer = MetricsWriter(run_dir / "metrics.csv")  # the suite's own writer: rows up to the summary's step
    writer.write([(1, "train_loss", None, None, None, 0.5), (10, "train_loss", None, None, None, 0.4)])
    writer.close()
    cfg = {"name": "exp", "scale": "quick", "seed": 0, "model": {"name": "dln", "num_layers": 6},
           "norm": {"name": "batch"}, "data": {"name": "gaussian"}, "optim": {"lr": lr}, "train": {"steps": 10}}
    write_json_atomic(run_dir / "summary.json", {"status": status, "step": 10, "config": cfg,
                                                 "final": {"train_loss": float("nan")}})
    return run_dir


def test_find_runs_lists_finished_runs_and_names_the_others(tmp_path):
    root = tmp_path / "results"
    _fake_run(root / "a", "completed", lr=0.1)
    _fake_run(root / "b", "diverged", lr=10.0)
    _fake_run(root / "c", "running")  # no live lock: interrupted
    _fake_run(root / "d", "running")
    (root / "e").mkdir()
    (root / "e" / "metrics.csv").write_text("step,metric,layer,unit,eta,value\n")  # no summary: broken
    with RunLock(root / "d"):  # a live run holds its lock
        with pytest.warns(UserWarning) as said:  # unfinished runs in one line; a broken one on its own line
            runs = find_runs(root)
        messages = [str(w.message) for w in said]
        assert any(re.search(r"left out 2 run\(s\).*c \(interrupted at step 10\).*d \(running", m) for m in messages)
        assert any(m.startswith(f"skipped {root / 'e'}: ") for m in messages)
        everything = find_runs(root, include_incomplete=True)
    assert list(runs["status"]) == ["completed", "diverged"]
    assert list(runs["lr"]) == [0.1, 10.0] and list(runs["model"]) == ["dln", "dln"]
    assert runs["model.num_layers"].tolist() == [6, 6] and runs["final_train_loss"].isna().all()
    assert list(everything["status"]) == ["completed", "diverged", "interrupted", "running", "broken"]
    index = write_index(root)
    assert len(pd.read_csv(root / "runs.csv")) == len(index) == 5
    assert not list(root.glob(".*tmp"))


def test_summary_write_is_all_or_nothing(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"status": "running", "loss": float("inf")})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"status": "completed", "bad": object()})
    assert json.loads(path.read_text()) == {"status": "running", "loss": "inf"}  # strict JSON, old file whole
    assert os.listdir(tmp_path) == ["summary.json"]


# ------------------------------------------------------------------------------ 5. reproducible
def test_same_config_and_seed_give_identical_csvs(tmp_path):
    """Small CNN with noisy BN (RNG every step) and every measurement, on in-memory images."""
    cfg = compose_cfg(["model=small_cnn", "norm=noisy_batch", *MEASURE, "train.steps=12", "train.batch_size=32",
                       "train.log_every=3", "train.eval_every=6", "train.eval_size=256", "train.threads=1",
                       "progress=false", "seed=3"])
    assert cfg.train.deterministic
    run(cfg, tmp_path / "a", data=_random_label_images(256, 256))
    torch.manual_seed(1234)  # whatever the global RNG holds, a run starts from its own seed
    run(cfg, tmp_path / "b", data=_random_label_images(256, 256))
    a, b = (tmp_path / "a" / "metrics.csv").read_bytes(), (tmp_path / "b" / "metrics.csv").read_bytes()
    assert a == b and b"ics_l2" in a


# ------------------------------------------------------------------------------ 6. never overwritten
def test_runs_and_sweeps_started_in_the_same_second_keep_separate_dirs(tmp_path, monkeypatch, capsys):
    class Frozen(dt.datetime):  # Hydra's ${now:} then names every dir alike, as in one second
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2030, 1, 1, 12, 0, 0)

    import hydra.core.utils

    monkeypatch.setattr(hydra.core.utils, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert call_main(monkeypatch, capsys, *DLN, *FAST, "train.steps=5")[0] == 0
        assert call_main(monkeypatch, capsys, "-m", *DLN, *FAST, "train.steps=5")[0] == 0
    singles = sorted((tmp_path / "results/run/none/single").iterdir())
    sweeps = sorted(p for p in (tmp_path / "results/run/none").iterdir() if p.name != "single")
    assert len(singles) == 2 and len(sweeps) == 2
    assert all(p.name.startswith("2030-01-01_12-00-00_") for p in singles + sweeps)
    assert all(summary(p)["status"] == "completed" for p in singles + [s / "0" for s in sweeps])


def test_existing_results_are_never_overwritten_or_mixed(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    args = [*DLN, *FAST, "train.steps=10", f"hydra.run.dir={run_dir}"]
    assert call_main(monkeypatch, capsys, *args)[0] == 0
    before = {p: (run_dir / p).read_bytes() for p in ("metrics.csv", "summary.json")}

    assert call_main(monkeypatch, capsys, *args)[0] == 0  # the same run again: done already, nothing rewritten
    code, err = call_main(monkeypatch, capsys, *with_overrides(args, "resume=false"))
    assert code == 2 and "already holds a run and resume=false would overwrite it" in err
    code, err = call_main(monkeypatch, capsys, *with_overrides(args, "optim.lr=2e-4"))
    assert code == 2 and "holds a run with another config (optim.lr: 0.0001 -> 0.0002)" in err
    with RunLock(run_dir):
        with pytest.raises(RunError, match="in use by another run"):
            run(compose_cfg([*DLN, *FAST, "train.steps=10"]), run_dir)
    assert {p: (run_dir / p).read_bytes() for p in before} == before


def test_clean_results_asks_first(tmp_path, monkeypatch, capsys):
    root = tmp_path / "results"
    _fake_run(root / "x" / "a", "completed")
    _fake_run(root / "x" / "b", "running")  # interrupted
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert clean_results.main([str(root)]) == 1 and (root / "x" / "a").exists()

    assert clean_results.main([str(root), "--status", "interrupted", "--yes"]) == 0
    assert (root / "x" / "a").exists() and not (root / "x" / "b").exists()

    src = tmp_path / "src"
    _fake_run(src / "r", "completed")
    (src / "notes.py").write_text("precious = True\n")
    assert clean_results.main([str(src), "--yes"]) == 0 and (src / "notes.py").exists()  # only the run goes
    assert not (src / "r").exists() and "keeping 1 other file(s) (not run results)" in capsys.readouterr().out

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert clean_results.main([str(root)]) == 0 and not root.exists()


# ------------------------------------------------------------------------------ 7. unknown keys
def test_appended_unknown_key_is_rejected_not_dropped(tmp_path, monkeypatch, capsys):
    code, err = call_main(monkeypatch, capsys, *DLN, *FAST, "+train.stepz=3", f"hydra.run.dir={tmp_path / 'r'}")
    assert code == 2
    assert "unknown key train.stepz: did you mean train.steps? valid keys of train: steps, batch_size" in err


# ------------------------------------------------------------------------------ 8. safe checkpoints
def test_tampered_checkpoint_is_refused_not_run(tmp_path, monkeypatch, capsys):
    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    args = [*DLN, *FAST, "train.steps=20", "train.checkpoint_every=5", f"hydra.run.dir={run_dir}"]
    write = MetricsWriter.write

    def write_or_stop(self, rows):  # Ctrl-C once a checkpoint exists
        write(self, rows)
        if (run_dir / CHECKPOINT).exists():
            raise KeyboardInterrupt

    monkeypatch.setattr(MetricsWriter, "write", write_or_stop)
    code, err = call_main(monkeypatch, capsys, *args)
    assert code == 130 and err == f"interrupted: resume with the same command and hydra.run.dir={run_dir}\n"
    monkeypatch.setattr(MetricsWriter, "write", write)
    assert summary(run_dir)["status"] == "interrupted"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"step": Evil()}, run_dir / CHECKPOINT)
    code, err = call_main(monkeypatch, capsys, *args)
    assert code == 2 and not marker.exists()
    assert f"error: checkpoint {run_dir / CHECKPOINT} cannot be loaded safely" in err
    assert "GLOBAL posix.system" in err and "delete it to restart this run from step 0" in err
    assert err.count("\n") == 1 and (run_dir / "metrics.csv").exists()

    (run_dir / CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
    code, err = call_main(monkeypatch, capsys, *args)
    assert code == 2 and "cannot be loaded safely" in err

    (run_dir / CHECKPOINT).unlink()  # the fix the message gives
    assert call_main(monkeypatch, capsys, *args)[0] == 0
    assert summary(run_dir)["status"] == "completed"


def test_configs_never_name_code_to_import():
    """No ``_target_`` in our configs but the suite's own Hydra callback and launchers, and no
    ``instantiate``: a config is data, never code to run."""
    from experiments.preflight import ALLOWED_TARGETS

    targets = [(p, line.split(":", 1)[1].strip()) for p in (ROOT / "conf").rglob("*.yaml")
               for line in p.read_text().splitlines() if line.strip().startswith("_target_")]
    assert targets  # the callback in config.yaml
    offenders = [p for p, target in targets if target not in ALLOWED_TARGETS]
    offenders += [p for d in ("bnstudy", "experiments") for p in (ROOT / d).rglob("*.py")
                  if "instantiate(" in p.read_text()]
    assert not offenders


def test_log_window_resumed_from_its_state_reduces_to_the_same_numbers():
    """A checkpoint taken mid-window (checkpoint_every not a multiple of log_every) carries the window:
    loss and accuracy over it come out as in an uninterrupted run."""
    from bnstudy.train import LogWindow

    g = torch.Generator().manual_seed(0)
    steps = [(torch.rand((), generator=g), torch.randn(8, 4, generator=g), torch.randint(0, 4, (8,), generator=g))
             for _ in range(5)]
    whole = LogWindow(classify=True)
    for s in steps:
        whole.add(*s)
    first = LogWindow(classify=True)
    for s in steps[:3]:
        first.add(*s)
    resumed = LogWindow(classify=True, state=first.state_dict())
    for s in steps[3:]:
        resumed.add(*s)
    loss, acc = whole.reduce()
    assert resumed.reduce() == (loss, acc)
    assert loss == pytest.approx(sum(float(s[0]) for s in steps) / 5)
    assert acc == pytest.approx(sum(float((o.argmax(1) == y).float().mean()) for _, o, y in steps) / 5)
    assert LogWindow(classify=False, state=LogWindow(classify=False).state_dict()).losses == []
