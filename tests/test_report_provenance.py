"""REPORT.md's provenance (issue 14): the table of what made the runs, and the warning at the top when one
figure's runs mix commits, torch versions or devices. Runs are fake run dirs with environment blocks."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.report import main as report_main

ENV = {"code": {"commit": "a" * 40, "dirty": False, "diff_sha256": None, "version": "0.1.0"},
       "python": "3.11.7",
       "libraries": {"torch": "2.14.1", "torchvision": "0.29.1", "hydra-core": "1.3.8", "numpy": "2.4.6",
                     "pandas": "3.1.1"},
       "lock": {"sha256": "f" * 64, "matches": True, "differs": []},
       "device": {"type": "cpu", "cpu_model": "Intel(R) Xeon(R) Processor", "cpu_count": 2},
       "threads": {"intra_op": 2}}


def fake_run(root: Path, exp: str, norm: str, lr: float, job: int, **env_changes) -> Path:
    d = root / exp / "quick" / "2026-01-01_00-00-00_1-a" / str(job)
    d.mkdir(parents=True)
    lines = ["step,metric,layer,unit,eta,value"] + [f"{s},train_acc,,,,0.5" for s in range(10, 101, 10)]
    (d / "metrics.csv").write_text("\n".join(lines) + "\n")
    env = json.loads(json.dumps(ENV))
    for dotted, value in env_changes.items():
        section, key = dotted.split("__")
        env[section][key] = value
    cfg = {"name": exp, "scale": "quick", "seed": 0, "model": {"name": "vgg_quick"}, "norm": {"name": norm},
           "data": {"name": "fashion_mnist"}, "optim": {"lr": lr}, "train": {"steps": 100}}
    (d / "summary.json").write_text(json.dumps({"status": "completed", "step": 100, "config": cfg, "final": {},
                                                "environment": env}))
    return d


def report(root: Path) -> str:
    assert report_main(["--results", str(root), "--scale", "quick"]) == 0
    return (root / "REPORT.md").read_text()


def test_report_lists_provenance_and_warns_about_runs_of_two_commits(tmp_path, capsys):
    fake_run(tmp_path, "fig1", "none", 0.1, 0)
    fake_run(tmp_path, "fig1", "batch", 0.1, 1, code__commit="b" * 40)  # the same figure, another commit
    fake_run(tmp_path, "fig2", "none", 0.1, 0)
    md = report(tmp_path)
    head, rest = md.split("## Claims", 1)
    assert "**Warning: mixed runs.**" in head  # at the top, before the claims
    warning = [line for line in head.splitlines() if line.startswith("> - ")]
    assert warning == ["> - fig1 and claims 1a, 1b, 2 mix runs from 2 commits (aaaaaaaaaa: 1 run, bbbbbbbbbb: 1 run)"]

    table = rest.split("## Provenance", 1)[1].split("## Figures")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "runs |" not in line]
    assert rows == [
        "| 2 | fig1, fig2 | aaaaaaaaaa | 3.11.7 | 2.14.1 | 0.29.1 | 1.3.8 | 2.4.6 | 3.1.1 | yes "
        "| Intel(R) Xeon(R) Processor (2 cores) | 2 |",
        "| 1 | fig1 | bbbbbbbbbb | 3.11.7 | 2.14.1 | 0.29.1 | 1.3.8 | 2.4.6 | 3.1.1 | yes "
        "| Intel(R) Xeon(R) Processor (2 cores) | 2 |",
    ]


def test_torch_version_and_device_mixes_are_named_and_one_environment_is_not(tmp_path, capsys):
    fake_run(tmp_path, "fig3_cnn", "none", 0.1, 0)
    fake_run(tmp_path, "fig3_dln", "none", 1e-6, 0, libraries__torch="2.13.0", device__cpu_model="AMD EPYC 7B13")
    md = report(tmp_path)
    head = md.split("## Claims", 1)[0]
    assert ("> - fig3 and claims 4a, 4b mix runs from 2 torch versions (2.14.1: 1 run, 2.13.0: 1 run); "
            "2 devices (") in head
    assert "AMD EPYC 7B13 (2 cores): 1 run" in head

    same = tmp_path / "same"
    fake_run(same, "fig1", "none", 0.1, 0)
    fake_run(same, "fig1", "batch", 0.1, 1)
    md = report(same)
    assert "Warning" not in md and "## Provenance" in md


def test_runs_without_an_environment_say_so(tmp_path, capsys):
    d = fake_run(tmp_path, "fig1", "none", 0.1, 0)
    s = json.loads((d / "summary.json").read_text())
    del s["environment"]
    (d / "summary.json").write_text(json.dumps(s))
    md = report(tmp_path)
    assert "| 1 | fig1 | not recorded |" in md and "Warning" not in md
