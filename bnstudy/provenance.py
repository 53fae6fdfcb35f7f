"""What made a run: the ``environment`` block of ``summary.json``, and the resume check built on it.

``environment(...)`` is called once per run, before the first step (never on the training step's path):
the code (git commit, dirty flag, sha256 of the diff), the command line and Hydra overrides, the Python
and library versions (and whether they are the ones ``requirements.lock`` pins), the device (CPU model
and cores; GPU, CUDA, cuDNN on a GPU), the thread counts, the determinism switches in force and a
sha256 of each data file the run read. File hashes are computed once per file and cached by (path,
size, mtime) in ``$BNSTUDY_CACHE_DIR`` (default ``~/.cache/bnstudy``), so a sweep hashes
Fashion-MNIST once, not once per job.

``resume_differences(old, new)`` lists what changed in code or libraries between the process that
started a run and the one resuming it; ``bnstudy.train`` refuses such a resume unless
``resume_mismatch=allow``, and records the differences when allowed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import torch

REPO = Path(__file__).resolve().parents[1]  # the checkout bnstudy runs from (editable install)
LOCK_FILE = REPO / "requirements.lock"
LIBRARIES = ("torch", "torchvision", "hydra-core", "numpy", "pandas")
# code and library fields a resume must match (dotted paths into the environment block)
RESUME_FIELDS = ("code.commit", "code.diff_sha256", "python", *(f"libraries.{n}" for n in LIBRARIES))


# ------------------------------------------------------------------------------------------------ code
def _git(*args: str) -> bytes | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def code_state() -> dict[str, Any]:
    """Git commit of bnstudy's checkout, whether the tree differs from it, and a sha256 of how.

    The hash covers ``git diff HEAD`` and each untracked, not-ignored file (name and content), so two
    runs with the same commit and the same hash ran the same code. Outside a git checkout (a wheel
    install) the commit is null and the package version says what ran.
    """
    try:
        version = metadata.version("bnstudy")
    except metadata.PackageNotFoundError:
        version = None
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff_sha256": None, "version": version}
    diff = _git("diff", "HEAD", "--binary") or b""
    untracked = [p for p in (_git("ls-files", "--others", "--exclude-standard", "-z") or b"").split(b"\0") if p]
    h = hashlib.sha256(diff)
    for name in sorted(untracked):
        path = REPO / os.fsdecode(name)
        h.update(b"\0untracked\0" + name + b"\0")
        try:
            h.update(os.fsencode(os.readlink(path)) if path.is_symlink() else path.read_bytes())
        except OSError:
            pass
    dirty = bool(diff or untracked)
    return {"commit": commit.decode().strip(), "dirty": dirty, "diff_sha256": h.hexdigest() if dirty else None,
            "version": version}


# ------------------------------------------------------------------------------------------- libraries
def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def read_lock(path: Path = LOCK_FILE) -> dict[str, str]:
    """``{package: version}`` pinned by a requirements lock (``name==version`` lines)."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[_norm(name.split("[")[0].strip())] = version.split(";")[0].strip()
    return pins


@lru_cache(maxsize=1)
def lock_state() -> dict[str, Any]:
    """The lock file's sha256 and whether every pinned package is installed at its pinned version."""
    if not LOCK_FILE.is_file():
        return {"sha256": None, "matches": None, "differs": []}
    pins = read_lock(LOCK_FILE)
    installed: dict[str, str] = {}
    for d in metadata.distributions():  # the first on sys.path is the one imported (a vendored copy comes later)
        installed.setdefault(_norm(d.metadata["Name"] or ""), d.version)
    differs = [f"{n}=={v} (installed: {installed.get(n, 'none')})" for n, v in sorted(pins.items())
               if installed.get(n) != v]
    return {"sha256": hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest(), "matches": not differs,
            "differs": differs[:10]}


# --------------------------------------------------------------------------------------------- device
@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_state(device: torch.device | str) -> dict[str, Any]:
    device = torch.device(device)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    out: dict[str, Any] = {"type": device.type, "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                           "cpu_usable": usable, "gpu": None, "cuda": None, "cudnn": None}
    if device.type == "cuda":
        out.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return out


def determinism_state(flush_denormal: bool | None = None) -> dict[str, Any]:
    """The switches in force now (torch's global state, read back rather than taken from the config)."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "flush_denormal": flush_denormal,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


# ----------------------------------------------------------------------------------------------- data
def cache_dir() -> Path:
    return Path(os.environ.get("BNSTUDY_CACHE_DIR") or Path.home() / ".cache" / "bnstudy")


_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256, this process


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) and kept in ``cache_dir()/sha256.json``."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _HASHES:
        return _HASHES[key]
    store = cache_dir() / "sha256.json"
    try:
        cached = json.loads(store.read_text())
    except (OSError, ValueError):
        cached = {}
    entry = cached.get(str(path)) if isinstance(cached, dict) else None
    if isinstance(entry, dict) and [entry.get("size"), entry.get("mtime_ns")] == [st.st_size, st.st_mtime_ns]:
        digest = str(entry.get("sha256"))
    else:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        cached = cached if isinstance(cached, dict) else {}
        cached[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        from bnstudy.records import RunError, write_text_atomic

        try:  # a read-only home, or a link planted there, only costs the hash again next time
            store.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(store, json.dumps(cached, indent=1, sort_keys=True))
        except (OSError, RunError):
            pass
    _HASHES[key] = digest
    return digest


# ------------------------------------------------------------------------------------------- command
def command_state() -> dict[str, Any]:
    overrides: list[str] = []
    hydra_config = sys.modules.get("hydra.core.hydra_config")  # not imported: not under Hydra (a notebook)
    if hydra_config is not None and hydra_config.HydraConfig.initialized():
        overrides = list(hydra_config.HydraConfig.get().overrides.task)
    return {"argv": list(sys.argv), "overrides": overrides, "cwd": os.getcwd()}


# ---------------------------------------------------------------------------------------------- block
def _wait_policy() -> str | None:
    """The OpenMP wait policy this process chose at start (``bnstudy.threads``), or the one set."""
    import sys

    threads = sys.modules.get("bnstudy.threads")
    return getattr(threads, "WAIT_POLICY", None) or os.environ.get("OMP_WAIT_POLICY")


def environment(device: torch.device | str = "cpu", data_files: Iterable[str | Path] = (),
                flush_denormal: bool | None = None) -> dict[str, Any]:
    """The ``environment`` block of a run's ``summary.json`` (see the module docstring)."""
    return {
        "code": code_state(),
        "command": command_state(),
        "python": platform.python_version(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "lock": lock_state(),
        "platform": platform.platform(),
        "device": device_state(device),
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "OMP_WAIT_POLICY": _wait_policy()},
        "determinism": determinism_state(flush_denormal),
        "data": {str(Path(p).resolve()): file_sha256(p) for p in data_files},
    }


def get(env: dict | None, dotted: str) -> Any:
    """``env["a"]["b"]`` for ``"a.b"``; None where any part is missing."""
    node: Any = env or {}
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def resume_differences(old: dict | None, new: dict) -> list[str]:
    """``field: old -> new`` for each code or library field (``RESUME_FIELDS``) that differs.

    A run started before environments were recorded has none to compare: that is a difference too.
    """
    if not old:
        return ["environment: not recorded -> recorded"]
    short = lambda v: v[:12] if isinstance(v, str) and len(v) in (40, 64) else v  # commits, hashes
    return [f"{f}: {short(get(old, f))} -> {short(get(new, f))}" for f in RESUME_FIELDS if get(old, f) != get(new, f)]
