"""Provenance (issue 14): every run's ``environment`` block, the cached data hashes, and the refusal to
resume a run with other code or libraries. Runs are tiny (a 6-layer DLN, or a small CNN on a 64-image
MNIST written here), in-process through the Hydra entry point."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from conftest import call_main
from bnstudy import provenance
from bnstudy.records import MetricsWriter, write_json_atomic
from bnstudy.records import CHECKPOINT

from test_data import write_idx_dataset  # noqa: E402  (tests/ is on sys.path under pytest)

ROOT = Path(__file__).resolve().parents[1]
DLN = ["model=dln", "model.num_layers=6", "data=gaussian", "norm=batch", "data.num_train=256", "data.num_test=256",
       "train.batch_size=32", "train.log_every=5", "train.eval_every=10", "train.threads=1", "progress=false",
       "optim.lr=1e-4", "train.deterministic=false"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BNSTUDY_CACHE_DIR", str(tmp_path / "cache"))
    provenance._HASHES.clear()


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_every_run_records_its_environment(tmp_path, monkeypatch, capsys):
    data = tmp_path / "mnist"
    write_idx_dataset(data, n=(64, 16), hw=(28, 28))
    run_dir = tmp_path / "run"
    args = ["model=small_cnn", "data=mnist", f"data.root={data}", "train.steps=4", "train.batch_size=16",
            "train.log_every=2", "train.eval_every=0", "train.threads=1", "train.deterministic=true",
            "progress=false", "optim.lr=0.05", f"hydra.run.dir={run_dir}"]
    assert call_main(monkeypatch, capsys, *args)[0] == 0
    env = summary(run_dir)["environment"]

    code = env["code"]
    assert code["commit"] == git("rev-parse", "HEAD").strip()
    dirty = bool(git("status", "--porcelain").strip())
    assert code["dirty"] is dirty and (code["diff_sha256"] is not None) is dirty
    if dirty:
        assert len(code["diff_sha256"]) == 64
    assert env["command"]["argv"] == ["train", *args]
    assert "optim.lr=0.05" in env["command"]["overrides"] and f"data.root={data}" in env["command"]["overrides"]
    assert env["python"] == platform.python_version()
    assert env["libraries"] == {n: metadata.version(n) for n in ("torch", "torchvision", "hydra-core", "numpy", "pandas")}
    assert env["libraries"]["torch"] == torch.__version__.split("+")[0] or env["libraries"]["torch"] == torch.__version__
    lock, lock_file = env["lock"], ROOT / "requirements.lock"
    if lock_file.exists():
        pins = provenance.read_lock(lock_file)
        assert lock["sha256"] == hashlib.sha256(lock_file.read_bytes()).hexdigest()
        assert lock["matches"] is all(_installed(n) == v for n, v in pins.items())
    else:
        assert lock == {"sha256": None, "matches": None, "differs": []}
    assert env["platform"] == platform.platform()

    dev = env["device"]
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert dev["type"] == "cpu" and dev["cpu_model"] in cpuinfo and dev["cpu_count"] == os.cpu_count()
    assert (dev["gpu"], dev["cuda"], dev["cudnn"]) == (None, None, None)
    assert env["threads"]["intra_op"] == 1  # train.threads=1
    det = env["determinism"]
    assert det["deterministic_algorithms"] is True and det["warn_only"] is True  # train.deterministic=true
    assert det["tf32_matmul"] is False and det["tf32_cudnn"] is False  # train.tf32=false
    assert det["flush_denormal"] is True and det["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"

    files = sorted(data.glob("*.gz"))
    assert len(files) == 4
    assert env["data"] == {str(f.resolve()): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    gauss = tmp_path / "gauss"
    assert call_main(monkeypatch, capsys, *DLN, "train.steps=5", f"hydra.run.dir={gauss}")[0] == 0
    assert summary(gauss)["environment"]["data"] == {}  # generated data: no file read


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_data_hashes_are_computed_once_and_cached(tmp_path):
    f = tmp_path / "data.bin"
    f.write_bytes(b"abc" * 1000)
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert provenance.file_sha256(f) == want
    store = tmp_path / "cache" / "sha256.json"
    cached = json.loads(store.read_text())
    assert cached[str(f.resolve())]["sha256"] == want
    # a second process finds it in the cache and does not read the file: a planted value comes back
    cached[str(f.resolve())]["sha256"] = "planted"
    store.write_text(json.dumps(cached))
    provenance._HASHES.clear()
    assert provenance.file_sha256(f) == "planted"
    # a changed file (size or mtime) is hashed again
    f.write_bytes(b"abcd" * 1000)
    assert provenance.file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def _interrupted_run(run_dir: Path, monkeypatch, capsys) -> list[str]:
    args = [*DLN, "train.steps=20", "train.checkpoint_every=5", f"hydra.run.dir={run_dir}"]
    write = MetricsWriter.write

    def write_or_stop(self, rows):  # Ctrl-C once a checkpoint exists
        write(self, rows)
        if (run_dir / CHECKPOINT).exists():
            raise KeyboardInterrupt

    monkeypatch.setattr(MetricsWriter, "write", write_or_stop)
    assert call_main(monkeypatch, capsys, *args)[0] == 130  # Ctrl-C: one line saying how to resume
    monkeypatch.setattr(MetricsWriter, "write", write)
    assert summary(run_dir)["status"] == "interrupted"
    return args


@pytest.mark.parametrize("field,old", [("code.commit", "0" * 40), ("libraries.torch", "2.4.0")])
def test_resume_with_other_code_or_libraries_is_refused_unless_allowed(tmp_path, monkeypatch, capsys, field, old):
    run_dir = tmp_path / "run"
    args = _interrupted_run(run_dir, monkeypatch, capsys)
    s = summary(run_dir)
    section, key = field.split(".")
    now = s["environment"][section][key]
    s["environment"][section][key] = old  # as if started at another commit / with another torch
    write_json_atomic(run_dir / "summary.json", s)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"}

    code, err = call_main(monkeypatch, capsys, *args)
    short = lambda v: v[:12] if len(v) == 40 else v
    assert code == 2 and err.count("\n") == 1
    assert f"error: {run_dir} was started with other code or libraries ({field}: {short(old)} -> {short(now)})" in err
    assert "resume_mismatch=allow" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"} == before

    assert call_main(monkeypatch, capsys, *args, "resume_mismatch=allow")[0] == 0
    s = summary(run_dir)
    assert s["status"] == "completed" and s["resumed_from"] == 5
    assert s["environment"]["resume_mismatch"] == {"allowed": True, "differences": [f"{field}: {short(old)} -> {short(now)}"]}
    assert s["environment"]["earlier"][0][section][key] == old
    assert s["environment"][section][key] == now


def test_resume_with_the_same_environment_needs_no_override(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    args = _interrupted_run(run_dir, monkeypatch, capsys)
    assert call_main(monkeypatch, capsys, *args)[0] == 0
    s = summary(run_dir)
    assert s["status"] == "completed" and s["environment"]["resume_mismatch"] is None
    assert len(s["environment"]["earlier"]) == 1
