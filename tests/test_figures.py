"""Figures are drawn from CSVs alone: seeds become a mean with a band, diverged runs end in an x, the
runs are those each experiment means (bnstudy.runs), the footer says which, and an experiment with no
runs gives a labelled empty figure."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from bnstudy.figures import FIGURES, load_experiment, plot_metric  # noqa: E402
from bnstudy.norms import NORMS, norm, norm_look  # noqa: E402
from bnstudy.runs import RunSet  # noqa: E402
from conftest import fake_config, write_fake_run  # noqa: E402


def write_run(root: Path, sweep: str, job: int, norm: str, lr: float, seed: int, acc, status="completed", stop=100,
              steps=100, experiment="fig1"):
    rows = [(s, "train_acc", None, None, None, acc(s)) for s in range(10, stop + 1, 10)]
    rows += [(s, "test_acc", None, None, None, acc(s)) for s in range(0, stop + 1, 50)]
    cfg = fake_config(experiment, norm=norm, lr=lr, seed=seed, model="vgg", steps=steps)
    return write_fake_run(root / experiment / "quick" / sweep / str(job), rows, cfg, status=status, step=stop)


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


def test_diverged_run_ends_in_an_x_and_the_newest_run_of_a_seed_is_read(tmp_path):
    old = write_run(tmp_path, "2024-01-01_00-00-00_a", 0, "none", 0.5, 0, lambda s: 0.9)  # an older sweep
    os.utime(old / "summary.json", (1, 1))
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
    fig = FIGURES["fig1"](tmp_path, "quick")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["fig1: no finished runs"]


def test_no_runs_gives_a_labelled_empty_figure_with_its_footer(tmp_path):
    fig = FIGURES["fig4"](tmp_path, "quick")
    assert [t.get_text() for t in fig.texts] == ["fig4_cnn (quick): no finished runs\nfig4_dln (quick): no finished runs"]


def _two_sweeps(root: Path) -> tuple[Path, Path, Path]:
    """fig1: a 100-step sweep (seeds 0, 1), a later one with seed 2 (same settings), and a latest 300-step one
    at lr 0.3 only (other settings: train.steps), plus a single run that must never count by default."""
    a = [write_run(root, "2024-01-01_00-00-00_a", j, norm, 0.1, seed, lambda s: 0.5 + 0.1 * seed)
         for j, (norm, seed) in enumerate([("none", 0), ("batch", 0), ("none", 1), ("batch", 1)])]
    b = [write_run(root, "2024-01-02_00-00-00_b", j, norm, 0.1, 2, lambda s: 0.8) for j, norm in enumerate(["none", "batch"])]
    for i, d in enumerate(a + b):
        os.utime(d / "summary.json", (1000 + i, 1000 + i))
    write_run(root, "single", 0, "none", 0.1, 0, lambda s: 0.01)  # root/fig1/quick/single/0: a single run
    write_run(root, "2024-01-03_00-00-00_c", 0, "none", 0.3, 0, lambda s: 0.7, stop=300, steps=300)
    return a[0].parent, b[0].parent, root / "fig1" / "quick" / "2024-01-03_00-00-00_c"


def test_figures_and_claims_read_the_same_runs_of_two_sweeps(tmp_path):
    """The experiment as configured (a hand-made spec): 100 steps at lr 0.1 or 0.5. The two 100-step sweeps are
    canonical; the newest sweep (300 steps, lr 0.3) is exploratory: judged apart, never mixed in."""
    from bnstudy.canonical import Spec
    from bnstudy.claims import Results

    spec = lambda e, s: Spec(e, s, {"optim.lr": (0.1, 0.5)}, {(0.1,): {"train.steps": 100}, (0.5,): {"train.steps": 100}})
    sweep_a, sweep_b, sweep_c = _two_sweeps(tmp_path)
    for named in ([], [sweep_a, sweep_b]):
        R = RunSet(tmp_path, "quick", named, spec=spec)
        figure_runs = sorted(str(r.path) for r in load_experiment(R, "fig1"))
        claim_runs = sorted(str(r.path) for r in Results(R).runs("fig1"))
        assert figure_runs == claim_runs
        assert len(figure_runs) == 6 and all("single" not in p for p in figure_runs)  # never the single run
        assert R.experiment("fig1").seeds == [0, 1, 2] and R.experiment("fig1").canonical
        if not named:
            (other,) = R.experiment("fig1").others
            assert [str(r.path) for r in other.runs] == [str(sweep_c / "0")]
            assert other.exploratory == "train.steps 300 (not 100), optim.lr 0.3 not in the experiment (0.1, 0.5)"
            assert any("1 exploratory run(s) of 2024-01-03_00-00-00_c" in n for n in R.experiment("fig1").notes)
    fig = FIGURES["fig1"](R)
    assert fig.texts[-1].get_text() == ("fig1 (quick): sweeps 2024-01-02_00-00-00_b, 2024-01-01_00-00-00_a; 6 runs, "
                               "3 seeds, 100 steps")
    only_c = RunSet(tmp_path, "quick", [sweep_c], spec=spec)  # named, exploratory: read, and labelled so
    assert FIGURES["fig1"](only_c).texts[-1].get_text() == (
        "fig1 (quick): sweep 2024-01-03_00-00-00_c; 1 runs, 1 seed, 300 steps; exploratory: train.steps 300 (not 100), "
        "optim.lr 0.3 not in the experiment (0.1, 0.5)")


def test_a_single_run_counts_only_when_named(tmp_path):
    _two_sweeps(tmp_path)
    single = tmp_path / "fig1" / "quick" / "single" / "0"
    runs = load_experiment(RunSet(tmp_path, "quick", [single]), "fig1")
    assert [str(r.path) for r in runs] == [str(single)]


def test_a_new_norm_gets_its_own_colour_and_label():
    with NORMS.restored():
        norm("my_norm")(NORMS["batch"].build)  # no label, no colour: both optional
        norm("my_other", label="Mine")(NORMS["batch"].build)
        shipped = {n.colour for n in NORMS.values() if n.colour}
        label, colour = norm_look("my_norm")
        assert label == "my_norm" and colour not in shipped
        assert norm_look("my_other")[0] == "Mine" and norm_look("my_other")[1] not in shipped | {colour}
    assert norm_look("batch") == ("Standard + BatchNorm", "#d62728")  # a shipped norm: its registration's


def test_every_figure_draws_from_an_empty_results_folder(tmp_path):
    """Each entry of FIGURES takes the same arguments (a RunSet) and draws, runs or not."""
    from bnstudy.figures import draw

    paths = draw(sorted(FIGURES), RunSet(tmp_path, "quick"), out_dir=tmp_path / "figures")
    assert sorted(p.name for p in paths if p.suffix == ".png") == sorted(f"{n}_quick.png" for n in FIGURES)
