"""Figures are drawn from CSVs alone: seeds become a mean with a band, diverged runs end in an x,
only the newest sweep is read, and an experiment with no runs gives a labelled empty figure."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from bnstudy.figures import fig1, load_experiment, plot_metric  # noqa: E402


def write_run(root: Path, sweep: str, job: int, norm: str, lr: float, seed: int, acc, status="completed", stop=100):
    d = root / "fig1" / "quick" / sweep / str(job)
    d.mkdir(parents=True)
    rows = ["step,metric,layer,unit,eta,value"]
    rows += [f"{s},train_acc,,,,{acc(s)!r}" for s in range(10, stop + 1, 10)]
    rows += [f"{s},test_acc,,,,{acc(s)!r}" for s in range(0, stop + 1, 50)]
    (d / "metrics.csv").write_text("\n".join(rows) + "\n")
    cfg = {"name": "fig1", "scale": "quick", "seed": seed, "model": {"name": "vgg"}, "norm": {"name": norm},
           "data": {"name": "fashion_mnist"}, "optim": {"lr": lr}, "train": {"steps": 100}}
    (d / "summary.json").write_text(json.dumps({"status": status, "step": stop, "config": cfg, "final": {}}))


def test_seeds_are_a_mean_with_a_min_max_band(tmp_path):
    for seed, level in enumerate((0.6, 0.8)):
        write_run(tmp_path, "2024-01-02_00-00-00_a", seed, "batch", 0.1, seed, lambda s, v=level: v)
    runs = load_experiment(tmp_path, "fig1", "quick")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plot_metric(ax, runs, "train_acc")
    (line,) = ax.get_lines()
    assert np.allclose(line.get_ydata(), 0.7)  # the mean of the two seeds
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.6) and ys.max() == pytest.approx(0.8)
    plt.close(fig)


def test_diverged_run_ends_in_an_x_and_only_the_newest_sweep_is_read(tmp_path):
    write_run(tmp_path, "2024-01-01_00-00-00_a", 0, "none", 0.5, 0, lambda s: 0.9)  # an older sweep
    write_run(tmp_path, "2024-01-02_00-00-00_b", 0, "none", 0.5, 0, lambda s: 0.1, status="diverged", stop=40)
    runs = load_experiment(tmp_path, "fig1", "quick")
    assert [(r.status, float(r.metrics.value.max())) for r in runs] == [("diverged", 0.1)]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plot_metric(ax, runs, "train_acc")
    markers = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(markers) == 1 and markers[0].get_xdata()[0] == 40
    plt.close(fig)


def test_no_runs_gives_a_labelled_empty_figure(tmp_path):
    fig = fig1(tmp_path, "quick")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["fig1: no finished runs"]
