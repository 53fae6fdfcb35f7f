"""``make reference`` and the reference reader on hostile or unsafe input (issue 27, families 3 and 5).

Writing: an output equal to the results folder, above it or among its runs is refused; a symbolic link
in it, or anything the suite did not write there, is refused and left as it was; an export is written
aside and swapped in whole, so a failed one leaves the old reference untouched; the runs exported are the
ones figures read (the newest by time), never the reference tree's. Reading: a gzip bomb, a file that is
not gzip, a summary of the wrong shape, a manifest naming vanished runs or paths outside the folder, a
run the manifest does not list: one line naming the file, exit status 2, bounded memory, nothing written.
Runs are fake (``write_fake_run``): fast, no training."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tracemalloc
import zlib
from pathlib import Path

import pytest

from bnstudy.records import HEADER
from bnstudy.reference import INFLATE_LIMIT, MANIFEST, sha256
from experiments.reference import main as reference_main
from experiments.verify import main as verify_main
from tests.conftest import fake_config, write_fake_run

STAMPS = ("2026-01-01_00-00-00_1-a", "2026-01-02_00-00-00_1-a")


def rows(acc: float, beta: float) -> list[tuple]:
    return [(s, m, None, None, None, v) for s in range(0, 101, 20)
            for m, v in (("train_loss", 2.0 - acc), ("train_acc", acc), ("beta", beta + s / 100))]


def write_sweep(results: Path, stamp: str, seeds=(0, 1, 2), acc: float = 0.8, **train) -> Path:
    """fig1's sweep: norms none and batch at lr 0.1, one job per (norm, seed)."""
    sweep = results / "fig1" / "quick" / stamp
    for job, (norm, seed) in enumerate((n, s) for n in ("none", "batch") for s in seeds):
        write_fake_run(sweep / str(job), rows(acc + 0.01 * seed + 0.05 * (norm == "batch"), 3.0 + seed),
                       fake_config("fig1", norm=norm, lr=0.1, seed=seed, **train))
    return sweep


def tree(path: Path) -> dict:
    """Every entry under ``path`` (links not followed) with its bytes: what a refused command must not change."""
    out = {}
    for p in sorted(path.rglob("*")):
        out[str(p)] = p.readlink() if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
    return out


def export(results: Path, out: Path, capsys) -> tuple[int, str]:
    code = reference_main(["--results", str(results), "--out", str(out), "--experiments", "fig1"])
    return code, capsys.readouterr().err


@pytest.fixture
def made(tmp_path, capsys):
    """A results folder with one fig1 sweep (3 seeds) and a reference exported from it."""
    results, ref = tmp_path / "results", tmp_path / "ref"
    write_sweep(results, STAMPS[0])
    assert export(results, ref, capsys)[0] == 0
    return results, ref


# ------------------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("where", ["the results folder", "above it", "among its runs"])
def test_an_output_overlapping_the_runs_is_refused_and_nothing_is_deleted(tmp_path, capsys, where):
    results = tmp_path / "results"
    write_sweep(results, STAMPS[0])
    out = {"the results folder": results, "above it": tmp_path, "among its runs": results / "fig1" / "quick"}[where]
    before = tree(tmp_path)
    code, err = export(results, out, capsys)
    assert code == 2 and err.startswith(f"error: {out} ") and err.count("\n") == 1
    assert "pick a folder" in err and "unchanged" in err
    assert tree(tmp_path) == before


def test_the_default_place_inside_results_is_allowed_and_reads_only_your_runs(tmp_path, capsys):
    """results/reference/quick is the default output: the reference tree is never exported as your runs."""
    results = tmp_path / "results"
    write_sweep(results, STAMPS[0], seeds=(0,))
    write_sweep(tmp_path / "theirs", STAMPS[1], seeds=(1, 2))  # a reference's runs, of seeds you did not run
    assert export(tmp_path / "theirs", results / "reference" / "quick", capsys)[0] == 0
    assert export(results, results / "reference" / "quick", capsys)[0] == 0
    manifest = json.loads((results / "reference" / "quick" / MANIFEST).read_text())
    assert manifest["seeds"] == [0] and len(manifest["experiments"]["fig1"]) == 2
    assert all(STAMPS[0] in r for r in manifest["experiments"]["fig1"])


def test_a_symlinked_experiment_folder_is_refused_and_the_files_behind_it_stay(made, tmp_path, capsys):
    results, ref = made
    mine = tmp_path / "my_notes"
    (mine / "quick" / "old").mkdir(parents=True)
    (mine / "quick" / "old" / "notes.txt").write_text("mine\n")
    shutil.rmtree(ref / "fig1")
    (ref / "fig1").symlink_to(mine, target_is_directory=True)
    before = tree(tmp_path)
    code, err = export(results, ref, capsys)
    assert code == 2 and err.startswith(f"error: {ref} holds what bnstudy did not write there ({ref / 'fig1'})")
    assert tree(tmp_path) == before and (mine / "quick" / "old" / "notes.txt").read_text() == "mine\n"


def test_files_the_suite_did_not_write_are_never_removed(made, capsys):
    results, ref = made
    (ref / "NOTES.md").write_text("my notes\n")
    before = tree(ref)
    code, err = export(results, ref, capsys)
    assert code == 2 and f"({ref / 'NOTES.md'})" in err and "move those out of it" in err
    assert tree(ref) == before


@pytest.mark.parametrize("failure", ["a copy", "the size budget", "Ctrl-C"])
def test_a_failed_export_leaves_the_old_reference_whole(made, tmp_path, capsys, monkeypatch, failure):
    results, ref = made
    write_sweep(results, STAMPS[1], acc=0.6)  # newer runs to export
    before = tree(ref)
    if failure == "a copy":
        calls, real = [], shutil.copyfile

        def copyfile(src, dst, *a, **k):  # the third copy finds the disk full
            calls.append(src)
            if len(calls) == 3:
                raise OSError(28, "No space left on device", str(dst))
            return real(src, dst, *a, **k)

        monkeypatch.setattr("bnstudy.reference.shutil.copyfile", copyfile)
    elif failure == "the size budget":
        monkeypatch.setattr("experiments.reference.SIZE_BUDGET", 1000)
    else:
        def interrupted(*a, **k):
            raise KeyboardInterrupt

        monkeypatch.setattr("bnstudy.figures.draw", interrupted)
    code, err = export(results, ref, capsys)
    assert code == (130 if failure == "Ctrl-C" else 2) and err.count("\n") == 1 and f"{ref} is unchanged" in err
    assert tree(ref) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "results"]  # nothing left aside


def test_an_export_replaces_the_old_one_whole_with_the_runs_figures_read(made, tmp_path, capsys):
    """The runs exported are those of the newest sweep by time (as figures and the report read them), not the
    largest folder name; the old reference's runs go, and only those."""
    results, ref = made
    newer = write_sweep(results, "2025-12-31_00-00-00_1-a", acc=0.6)  # a smaller name, finished last
    older = results / "fig1" / "quick" / STAMPS[0]
    for summary in older.rglob("summary.json"):
        os.utime(summary, (1e9, 1e9))
    assert export(results, ref, capsys)[0] == 0
    manifest = json.loads((ref / MANIFEST).read_text())
    assert {Path(r).parts[2] for r in manifest["experiments"]["fig1"]} == {newer.name}
    assert not (ref / "fig1" / "quick" / STAMPS[0]).exists()
    assert sorted(p.name for p in ref.iterdir()) == ["REPORT.md", "fig1", "figures", MANIFEST]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref", "results"]
    # written aside, the report still names the folder it ends up in
    assert f"The runs judged are the committed reference's, in `{ref}`." in (ref / "REPORT.md").read_text()


# ------------------------------------------------------------------------------------------- reading
def bomb(path: Path, size: int, members: bool) -> None:
    """A gzip file that starts as a metrics CSV and inflates to ``size`` bytes of zeros (in one gzip member,
    or in many: gzip and pandas read every member)."""
    zeros = bytes(1 << 20)
    if members:
        one = gzip.compress(zeros, 1)
        path.write_bytes(gzip.compress(HEADER.encode()) + one * (size >> 20))
        return
    c = zlib.compressobj(1, wbits=31)
    with open(path, "wb") as f:
        f.write(c.compress(HEADER.encode()))
        for _ in range(size >> 20):
            f.write(c.compress(zeros))
        f.write(c.flush())


def relist(ref: Path, path: Path) -> None:
    """Put ``path``'s new sha256 in the manifest: a hostile reference passes the checksum check."""
    manifest = json.loads((ref / MANIFEST).read_text())
    manifest["files"][str(path.relative_to(ref))] = sha256(path)
    (ref / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("bad", ["gzip bomb", "gzip bomb in members", "not gzip", "summary a list",
                                 "summary config a string", "vanished run", "path outside", "unlisted run",
                                 "plain csv beside", "manifest a list"])
def test_a_hostile_reference_is_one_line_in_bounded_memory(made, tmp_path, capsys, bad):
    results, ref = made
    mine = tmp_path / "mine"
    write_sweep(mine, STAMPS[1])
    manifest = json.loads((ref / MANIFEST).read_text())
    run = ref / manifest["experiments"]["fig1"][0]
    csv, summary = run / "metrics.csv.gz", run / "summary.json"
    if bad.startswith("gzip bomb"):
        bomb(csv, 1 << 30, members=bad.endswith("members"))
        relist(ref, csv)
        want = f"{csv} inflates past the {INFLATE_LIMIT >> 20} MiB"
    elif bad == "not gzip":
        csv.write_bytes(b"step,metric,layer,unit,eta,value\n0,x,,,,1\n")
        relist(ref, csv)
        want = f"{csv} is not gzip"
    elif bad.startswith("summary"):
        body = json.loads(summary.read_text())
        summary.write_text(json.dumps([body] if bad == "summary a list" else {**body, "config": "fig1"}))
        relist(ref, summary)
        want = f"{summary} is not a bnstudy summary ({'not an object' if bad == 'summary a list' else 'no config'})"
    elif bad == "vanished run":
        shutil.rmtree(run)
        manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith(str(run.relative_to(ref)))}
        (ref / MANIFEST).write_text(json.dumps(manifest))
        want = f"reference manifest {ref / MANIFEST} names run {run.relative_to(ref)} but not its summary.json"
    elif bad == "path outside":
        manifest["files"]["../mine/x"] = "0" * 64
        (ref / MANIFEST).write_text(json.dumps(manifest))
        want = f"reference manifest {ref / MANIFEST} names '../mine/x', outside {ref}"
    elif bad == "unlisted run":
        shutil.copytree(run, run.with_name("99"))
        want = f"reference {ref} holds a run its manifest does not list ({run.with_name('99')})"
    elif bad == "plain csv beside":
        (run / "metrics.csv").write_text(HEADER)
        want = f"does not list {run / 'metrics.csv'}"
    else:
        (ref / MANIFEST).write_text(json.dumps([manifest]))
        want = f"reference manifest {ref / MANIFEST} is unreadable"
    before = tree(tmp_path)
    tracemalloc.start()
    try:
        code = verify_main(["--results", str(mine), "--reference", str(ref)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and out == ""
    assert want in err
    assert peak < 64 << 20  # bytes: a 1 GiB bomb is never inflated into memory
    assert tree(tmp_path) == before


def test_the_export_carries_the_dln_sweep_and_the_tutorial_tables(tmp_path):
    """A quick reference also holds what its report reads at another scale (the paper-scale DLN sweep, for
    claims 4b and 6b's why-not) and make tutorials' CSVs, each listed with its sha256 and checked on load."""
    from bnstudy.reference import EXPERIMENTS, export, load_reference, tables

    results, out = tmp_path / "results", tmp_path / "ref"
    for i, exp in enumerate(EXPERIMENTS):
        write_fake_run(results / exp / "quick" / STAMPS[0] / "0", rows(0.8, 3.0), fake_config(exp))
    write_fake_run(results / "dln_sweep" / "paper" / STAMPS[0] / "0", rows(0.5, 1.0),
                   fake_config("dln_sweep", scale="paper", model="dln", data="gaussian", lr=1e-6))
    table = results / tables()[0]
    table.parent.mkdir(parents=True)
    table.write_text("norm,depth,seed,layer,value\nbatch,10,0,1,0.5\n")
    out.mkdir()
    manifest = export(results, "quick", out)
    assert manifest["experiments"]["dln_sweep"] == [f"dln_sweep/paper/{STAMPS[0]}/0"]
    assert str(tables()[0]) in manifest["files"] and (out / tables()[0]).read_text() == table.read_text()
    assert set(load_reference(out)) == {*EXPERIMENTS, "dln_sweep"}
    from bnstudy.reference import check_output, foreign, remove_suite_files
    assert foreign(out) == []  # the tables it lists are its own: a later make reference replaces them with the rest
    check_output(results, out)
    (out / "stray.txt").write_text("mine\n")
    assert remove_suite_files(out) == [out / "stray.txt"] and not (out / tables()[0]).exists()
    (out / "stray.txt").unlink()
    out.mkdir(exist_ok=True)
    export(results, "quick", out)
    (out / tables()[0]).write_text("altered\n")
    with pytest.raises(Exception, match="altered"):
        load_reference(out)
