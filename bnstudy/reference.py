"""The committed reference: the numbers behind ``results/reference/<scale>/``, written and read back.

A reference folder is a results folder in its own right: ``<exp>/<scale>/<sweep>/<job>/`` holds each
run's ``summary.json`` (config, final values, environment) and its ``metrics.csv`` gzipped
(``metrics.csv.gz``, which ``bnstudy.records.read_metrics`` and pandas read as it is), so
``make figures report RESULTS=<folder>`` redraws its figures and report without training.
``reference.json`` lists the experiments, the runs and each file's sha256.

Writing (:func:`export` inside :func:`replacing`): the runs exported are, per experiment, the ones
``make figures`` and ``make report`` read (``bnstudy.runs.RunSet``: a reference's runs, marked by its manifest,
are never among them); the new folder is written aside (a dot-folder the reader skips) and swapped in whole,
or not at all, and of the old one only the files the suite wrote are removed.

Reading (:func:`load_reference`): every file the manifest lists is checked (a regular file inside the
folder, its sha256, a summary of the suite's shape, a gzip CSV that inflates to at most
:data:`INFLATE_LIMIT`), in bounded memory, so a partial, edited or hostile reference is refused by name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bnstudy.paths import FIGURE_RUNS_SUFFIX
from bnstudy.records import HEADER, write_text_atomic
from bnstudy.records import METRICS, SUMMARY
from bnstudy.runs import INDEX, RunSet
from bnstudy.status import STATUSES, iter_run_dirs

MANIFEST = "reference.json"
SIZE_BUDGET = 24 * 1024 * 1024  # bytes, the whole reference folder of one scale (figures included; make modern's
# three seeds added 3 MB to the 18 MB of make all, quick, beyond and tutorials)
INFLATE_LIMIT = 256 * 1024 * 1024
"""Bytes all of a reference's gzipped CSVs may inflate to together (the quick reference: 40 MB): beyond it
the reference is refused, so a gzip bomb never reaches memory."""
REFERENCE_TREE = "reference"
"""The folder of a results folder meant for committed references (``results/reference/``): ``make reference`` may
write there; the manifest it writes marks the folder, so no reader takes its runs for yours."""
EXPERIMENTS = ("fig1", "fig2", "fig3_cnn", "fig3_dln", "fig4_cnn", "fig4_dln", "fig5_cnn", "fig5_dln", "browser")
OPTIONAL = ("quick", "curvature_cnn", "curvature_dln", "theory", "signal_cnn", "signal_dln", "tut_lr", "tut_init",
            "tut_reg", "tut_batch", "tut_momentum", "tut_placement", "resnet", "resnet_curvature", "resnet_signal",
            "vit", "vit_adam", "vit_warmup", "vit_curvature", "vit_signal")
"""Exported when they have runs: make quick's, the experiments beyond the paper and make modern's (make all runs
none of them)."""
OTHER_SCALE = {"dln_sweep": "paper"}
"""Exported beside a reference of another scale when their runs exist: the paper-scale DLN sweep, whose runs the
"why not" of claims 4b and 6b reads at every scale (``make dln_sweep`` is always paper scale)."""


def tables() -> tuple[Path, ...]:
    """The tables (not runs) the claims read, relative to a results folder: ``make tutorials``' CSVs."""
    from bnstudy.claims.tutorials import GRADIENTS_CSV, MEMORY_CSV

    return (GRADIENTS_CSV, MEMORY_CSV)


OUTPUTS = ("REPORT.md", INDEX, "figures/*.png", "figures/*.pdf", f"figures/*{FIGURE_RUNS_SUFFIX}")
"""What else the suite writes in a reference folder (``make reference``, ``make figures report RESULTS=...``,
``python -m bnstudy.runs --write``); ``rel.match`` patterns, relative to the folder."""


class ReferenceError(ValueError):
    """A reference or a results folder that cannot be used; the message names the file and the fix."""


# ------------------------------------------------------------------------------------------ your runs
def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies in it (both resolved: links and ``..`` followed)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or path.is_relative_to(folder)


# ---------------------------------------------------------------------------------------------- files
def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def inflated_size(path: Path, limit: int) -> int:
    """The bytes ``path`` (gzip) inflates to, read in chunks: ReferenceError if it is not gzip, does not
    start with the CSV header the suite writes, or inflates past ``limit``."""
    d, n, head = zlib.decompressobj(wbits=31), 0, b""  # wbits 31: a gzip stream
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                while chunk:
                    if d.eof:  # another gzip member follows (gzip and pandas read them all)
                        d = zlib.decompressobj(wbits=31)
                    out = d.decompress(chunk, 1 << 20)
                    n += len(out)
                    head = (head + out[: len(HEADER)])[: len(HEADER)]
                    if n > limit:
                        raise ReferenceError(f"{path} inflates past the {INFLATE_LIMIT / 2**20:.0f} MiB a "
                                             f"reference's CSVs may take together: not a metrics CSV the suite wrote")
                    chunk = d.unused_data if d.eof else d.unconsumed_tail
    except zlib.error as e:
        raise ReferenceError(f"{path} is not gzip ({e})") from None
    if not d.eof:
        raise ReferenceError(f"{path} is cut short (the gzip stream does not end)")
    if head != HEADER.encode():
        raise ReferenceError(f"{path} is not a bnstudy metrics.csv (it starts {head[:40]!r})")
    return n


def check_summary(path: Path) -> dict:
    """The summary at ``path`` if it has the shape the suite writes; ReferenceError naming what is wrong."""
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ReferenceError(f"{path} is not readable JSON ({type(e).__name__})") from None
    why = ("not an object" if not isinstance(summary, dict) else
           f"unknown status {summary.get('status')!r}" if summary.get("status") not in STATUSES else
           "no config" if not isinstance(summary.get("config"), dict) else
           "its environment is not an object" if not isinstance(summary.get("environment", {}), dict) else "")
    if not why:
        bad = [k for k in ("norm", "optim", "train", "model", "data") if not isinstance(summary["config"].get(k, {}),
                                                                                         dict)]
        why = f"config.{bad[0]} is not a mapping" if bad else ""
    if why:
        raise ReferenceError(f"{path} is not a bnstudy summary ({why})")
    return summary


def is_suite_file(rel: Path, listed: set[str]) -> bool:
    """Whether ``rel`` (relative to a reference folder) is a file the suite writes there: a run's file or a table
    (:func:`tables`) its manifest lists, the manifest, or one of :data:`OUTPUTS` at its place."""
    if str(rel) in listed and (rel.name in (SUMMARY, f"{METRICS}.gz") or rel in tables()):
        return True
    return rel == Path(MANIFEST) or any(len(rel.parts) == len(Path(p).parts) and rel.match(p) for p in OUTPUTS)


def _listed(folder: Path) -> set[str]:
    """The files a reference folder's manifest lists (none if it has no readable manifest)."""
    try:
        files = json.loads((folder / MANIFEST).read_text()).get("files")
        return {str(k) for k in files} if isinstance(files, dict) else set()
    except (OSError, ValueError, AttributeError):
        return set()


def foreign(folder: Path) -> list[Path]:
    """What in ``folder`` the suite did not write there: links (never followed), and files that are not
    the manifest's, ``reference.json`` or :data:`OUTPUTS`."""
    listed, found = _listed(folder), []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        found += [base / d for d in dirnames if (base / d).is_symlink()]
        found += [base / f for f in filenames
                  if (base / f).is_symlink() or not is_suite_file((base / f).relative_to(folder), listed)]
    return sorted(found)


def remove_suite_files(folder: Path) -> list[Path]:
    """Delete what the suite wrote in ``folder``, then the folders left empty; return what stays."""
    listed = _listed(folder)
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        base = Path(dirpath)
        for f in filenames:
            p = base / f
            if not p.is_symlink() and is_suite_file(p.relative_to(folder), listed):
                p.unlink()
        for d in dirnames:
            with contextlib.suppress(OSError):  # a link, or a folder that still holds something
                if not (base / d).is_symlink():
                    (base / d).rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
    return foreign(folder) if folder.exists() else []


# --------------------------------------------------------------------------------------------- export
def check_output(results: Path, out: Path) -> None:
    """ReferenceError unless writing ``out`` is safe: not a link, not the results folder, not above it,
    not inside it but in its ``reference/`` tree, and holding nothing but what the suite wrote there."""
    results, out = Path(results), Path(out)
    if out.is_symlink():
        raise ReferenceError(f"{out} is a symbolic link: bnstudy never writes through a link; remove the link "
                             f"or pick another folder (REFERENCE=...)")
    if inside(results, out):
        raise ReferenceError(f"{out} holds the runs it would be written from ({results}): pick a folder outside "
                             f"them, such as {results / REFERENCE_TREE / 'quick'} (REFERENCE=...)")
    if inside(out, results) and not inside(out, results / REFERENCE_TREE):
        raise ReferenceError(f"{out} lies among the runs it would be written from ({results}): pick a folder "
                             f"under {results / REFERENCE_TREE} or outside {results} (REFERENCE=...)")
    if out.exists() and not out.is_dir():
        raise ReferenceError(f"{out} is a file, not a folder: pick another folder (REFERENCE=...)")
    stray = foreign(out) if out.is_dir() else []
    if stray:
        shown = ", ".join(str(p) for p in stray[:3]) + (f" and {len(stray) - 3} more" if len(stray) > 3 else "")
        raise ReferenceError(f"{out} holds what bnstudy did not write there ({shown}); make reference replaces the "
                             f"folder whole: move those out of it, or pick another folder (REFERENCE=...)")


@contextlib.contextmanager
def replacing(results: Path, out: Path) -> Iterator[Path]:
    """Yield a fresh folder beside ``out`` to write a reference into; when the block ends, swap it in for
    ``out`` whole and remove the old one's files; on any error (or Ctrl-C) remove it, ``out`` untouched."""
    out = Path(out)
    check_output(results, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    if out.exists():
        os.rename(out, aside / out.name)
    os.rename(new, out)
    stray = remove_suite_files(aside / out.name) if (aside / out.name).exists() else []
    if stray:  # only if something was put there during the export: kept
        warnings.warn(f"the old reference's folder, now {aside / out.name}, still holds what bnstudy did not "
                      f"write ({stray[0]}): it is kept, move it where you want it", stacklevel=3)
    else:
        aside.rmdir()


def export(results: Path, scale: str, out: Path, experiments: list[str] | None = None) -> dict:
    """Copy the runs figures and the report read of each experiment (summary.json, metrics.csv gzipped)
    into the fresh folder ``out`` and write its manifest. Only finished runs are exported; an experiment
    with none is an error. Runs inside a reference tree (or ``out``) are never exported."""
    results, out = Path(results), Path(out)
    runset = RunSet(results, scale)  # never a reference's runs (bnstudy.runs.SELECTION_RULE), nor the new folder's
    manifest: dict = {"scale": scale, "experiments": {}, "files": {}}
    plans = {}
    scales = {exp: scale for exp in experiments or (*EXPERIMENTS, *OPTIONAL)}
    if not experiments:
        scales.update({exp: other for exp, other in OTHER_SCALE.items() if other != scale})
    for exp, exp_scale in scales.items():
        runs = (runset if exp_scale == scale else RunSet(results, exp_scale)).runs(exp)
        if not runs and not experiments and (exp in OPTIONAL or exp in OTHER_SCALE):
            continue
        if not runs:
            raise ReferenceError(f"no finished runs of {exp} at scale {scale} under {results}: "
                                 f"run make {exp.split('_')[0]} SCALE={scale} first")
        plans[exp] = sorted(runs, key=lambda r: (str(r.path.parent), len(r.path.name), r.path.name))
    for exp, runs in plans.items():
        rels = []
        for run in runs:
            rel = Path(exp) / scales[exp] / run.path.parent.name / run.path.name
            dest = out / rel
            dest.mkdir(parents=True)
            shutil.copyfile(run.path / SUMMARY, dest / SUMMARY)
            csv = run.path / METRICS
            data = csv.read_bytes() if csv.exists() else gzip.decompress((run.path / f"{METRICS}.gz").read_bytes())
            (dest / f"{METRICS}.gz").write_bytes(gzip.compress(data, 9, mtime=0))
            rels.append(str(rel))
            for name in (SUMMARY, f"{METRICS}.gz"):
                manifest["files"][str(rel / name)] = sha256(dest / name)
        manifest["experiments"][exp] = rels
    for rel in (tables() if not experiments else ()):  # make tutorials' CSVs, when they exist
        src = results / rel
        if src.is_file() and not src.is_symlink():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
            manifest["files"][str(rel)] = sha256(out / rel)
    manifest["seeds"] = sorted({r.seed for runs in plans.values() for r in runs}, key=str)
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------- read
@dataclass
class RefRun:
    experiment: str
    path: Path
    summary: dict


def _manifest(ref: Path, fix: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    path = ref / MANIFEST
    if not path.is_file():
        raise ReferenceError(f"no reference at {ref} ({MANIFEST} missing): {fix}")
    if path.is_symlink() or path.stat().st_size > SIZE_BUDGET:
        raise ReferenceError(f"reference manifest {path} is a link or too large: {fix}")
    try:
        manifest = json.loads(path.read_text())
        experiments, files = manifest["experiments"], manifest["files"]
        ok = (isinstance(experiments, dict) and isinstance(files, dict)
              and all(isinstance(v, list) and all(isinstance(r, str) for r in v) for v in experiments.values())
              and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()))
        if not ok:
            raise TypeError("experiments or files of the wrong shape")
    except (ValueError, KeyError, TypeError) as e:
        raise ReferenceError(f"reference manifest {path} is unreadable ({type(e).__name__}): {fix}") from None
    return experiments, files


def _file(ref: Path, rel: str, what: str, fix: str) -> Path:
    """``ref / rel`` if it names a regular file inside ``ref`` (no link, no ``..``) within the budget."""
    path = ref / rel
    if Path(rel).is_absolute() or ".." in Path(rel).parts or not inside(path, ref):
        raise ReferenceError(f"reference manifest {ref / MANIFEST} names {rel!r}, outside {ref}: {fix}")
    if path.is_symlink() or not path.is_file():
        raise ReferenceError(f"reference {ref} is incomplete: {path} is missing{' (a link)' * path.is_symlink()}"
                             f"{what}: {fix}")
    if path.stat().st_size > SIZE_BUDGET:
        raise ReferenceError(f"{path} holds {path.stat().st_size / 1e6:.0f} MB, over the reference's "
                             f"{SIZE_BUDGET / 2**20:.0f} MB budget: {fix}")
    return path


def load_reference(ref: Path) -> dict[str, list[RefRun]]:
    """The reference's runs per experiment, after checking every file the manifest lists and every run it
    names (bounded memory: no file is read whole beyond the size budget, no CSV inflated beyond
    :data:`INFLATE_LIMIT`). A run folder the manifest does not list is refused too."""
    ref = Path(ref)
    fix = "restore it with git checkout -- " + str(ref) + ", or write one with make reference"
    experiments, files = _manifest(ref, fix)
    for rel, digest in files.items():
        if sha256(_file(ref, rel, "", fix)) != digest:
            raise ReferenceError(f"reference {ref} is altered: {ref / rel} does not match its sha256 in "
                                 f"{MANIFEST}: {fix}")
    out: dict[str, list[RefRun]] = {}
    inflated, named = 0, set()
    for exp, rels in experiments.items():
        for r in rels:
            unlisted = [n for n in (SUMMARY, f"{METRICS}.gz") if str(Path(r) / n) not in files]
            if unlisted or (ref / r / METRICS).exists() or (ref / r / METRICS).is_symlink():
                what = f"names run {r} but not its {unlisted[0]}" if unlisted else \
                    f"does not list {ref / r / METRICS}, which would be read before the gzipped one"
                raise ReferenceError(f"reference manifest {ref / MANIFEST} {what}: {fix}")
            try:
                summary = check_summary(ref / r / SUMMARY)
                inflated += inflated_size(ref / r / f"{METRICS}.gz", INFLATE_LIMIT - inflated)
            except ReferenceError as e:
                raise ReferenceError(f"reference {ref}: {e}: {fix}") from None
            out.setdefault(exp, []).append(RefRun(exp, ref / r, summary))
            named.add((ref / r).resolve())
    stray = [d for d in iter_run_dirs(ref) if d.resolve() not in named]
    if stray:
        raise ReferenceError(f"reference {ref} holds a run its manifest does not list ({stray[0]}): {fix}")
    return out
