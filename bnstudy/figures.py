"""One function per figure, drawn from the runs' CSVs alone (plotting never trains).

Each ``figN(root, scale)`` reads the newest sweep of its experiment(s) under
``<root>/<experiment>/<scale>/`` and returns a matplotlib Figure; ``FIGURES`` maps a figure name to
its function and the experiments it reads. Several seeds of one (norm, lr) are drawn as a mean with
a min-max band; a diverged run ends in an x.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnstudy.records import read_metrics, write_atomic
from bnstudy.runs import find_runs

NORM_STYLE = {  # colour per normalisation, shared by every figure
    "none": "#1f77b4", "batch": "#d62728", "noisy_batch": "#ff7f0e", "noise": "#7f7f7f",
    "l1": "#2ca02c", "l2": "#9467bd", "linf": "#8c564b", "layer": "#e377c2", "group": "#17becf",
    "instance": "#bcbd22",
}
NORM_LABEL = {"none": "Standard", "batch": "Standard + BatchNorm", "noisy_batch": "Standard + \"Noisy\" BatchNorm",
              "noise": "Standard + noise", "l1": "l1 norm", "l2": "l2 norm", "linf": "linf norm",
              "layer": "LayerNorm", "group": "GroupNorm", "instance": "InstanceNorm"}

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9,
                     "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 7, "legend.framealpha": 0.7})


@dataclass
class Run:
    """One finished run: its identity and its metrics."""

    path: Path
    norm: str
    lr: float
    seed: int
    status: str
    metrics: pd.DataFrame


def load_experiment(root: Path, experiment: str, scale: str) -> list[Run]:
    """The runs of the newest sweep of ``experiment`` at ``scale`` (incomplete runs are skipped)."""
    base = Path(root) / experiment / scale
    if not base.exists():
        return []
    runs = find_runs(base)
    if runs.empty:
        return []
    sweep = sorted({Path(p).parent for p in runs["path"]})[-1]
    runs = runs[[Path(p).parent == sweep for p in runs["path"]]]
    return [Run(Path(r.path), r.norm, float(r.lr), int(r.seed), r.status, read_metrics(Path(r.path) / "metrics.csv"))
            for r in runs.itertuples()]


def series(run: Run, metric: str, layer: int | None = None, unit: float | None = None) -> pd.Series:
    """``metric`` over steps (for one layer; unit None = the layer-wide row where there is one)."""
    df = run.metrics[run.metrics["metric"] == metric]
    if layer is not None:
        df = df[df["layer"] == layer]
    df = df[df["unit"].isna()] if unit is None and df["unit"].notna().any() and df["unit"].isna().any() else df
    if unit is not None:
        df = df[df["unit"] == unit]
    return df.groupby("step")["value"].mean()


def _group(runs: Iterable[Run]) -> dict[tuple[str, float], list[Run]]:
    out: dict[tuple[str, float], list[Run]] = {}
    for r in runs:
        out.setdefault((r.norm, r.lr), []).append(r)
    return out


def plot_metric(ax, runs: list[Run], metric: str, layer: int | None = None, label_lr: bool = False,
                linestyle: str = "-", label_suffix: str = "", smooth: int = 1, **select) -> None:
    """Mean over seeds with a min-max band, one line per (norm, lr); diverged runs end in an x."""
    for (norm, lr), group in sorted(_group(runs).items(), key=lambda kv: (list(NORM_STYLE).index(kv[0][0])
                                                                          if kv[0][0] in NORM_STYLE else 99, kv[0][1])):
        if select and not all(getattr(group[0], k) == v for k, v in select.items()):
            continue
        table = pd.concat([series(r, metric, layer) for r in group], axis=1)
        if table.empty:
            continue
        if smooth > 1:
            table = table.rolling(smooth, min_periods=1).mean()
        mean = table.mean(axis=1)
        label = NORM_LABEL.get(norm, norm) + (f" (lr {lr:g})" if label_lr else "") + label_suffix
        color = NORM_STYLE.get(norm)
        ax.plot(mean.index, mean.values, color=color, linestyle=linestyle, label=label, lw=1.2)
        if table.shape[1] > 1:
            ax.fill_between(mean.index, table.min(axis=1), table.max(axis=1), color=color, alpha=0.2, lw=0)
        for r in group:
            if r.status == "diverged":
                s = series(r, metric, layer).dropna()
                if len(s):
                    ax.plot(s.index[-1], s.values[-1], "x", color=color, ms=7, mew=2)


def activation_histogram(ax, run: Run, layer: int, bins: int = 60) -> None:
    """Histograms of one unit's values over training (the paper's distribution plots), as a heat map."""
    df = run.metrics[(run.metrics["metric"] == "act_sample") & (run.metrics["layer"] == layer)]
    if df.empty:
        ax.set_visible(False)
        return
    unit = df["unit"].min()
    df = df[df["unit"] == unit]
    lo, hi = df["value"].quantile([0.005, 0.995])
    edges = np.linspace(lo, hi, bins + 1)
    steps = np.sort(df["step"].unique())
    hist = np.stack([np.histogram(df.loc[df["step"] == s, "value"], bins=edges)[0] for s in steps], 1).astype(float)
    hist /= np.maximum(hist.max(axis=0, keepdims=True), 1)  # each step's histogram scaled to its own peak
    ax.imshow(hist, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
              extent=(steps[0], steps[-1] if len(steps) > 1 else steps[0] + 1, lo, hi))
    ax.set_title(f"{NORM_LABEL.get(run.norm, run.norm)}, layer #{layer}, unit {int(unit)}")
    ax.set_xlabel("step")
    ax.set_ylabel("activation")
    ax.grid(False)


def _finish(fig, axes, title: str):
    for ax in np.ravel(axes):
        if ax.get_visible() and ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _layers(runs: list[Run], metric: str) -> list[int]:
    layers = set()
    for r in runs:
        layers |= set(r.metrics.loc[r.metrics["metric"] == metric, "layer"].dropna().astype(int))
    return sorted(layers)


def _empty(name: str):
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, f"{name}: no finished runs", ha="center", va="center")
    ax.set_axis_off()
    return fig


def _pick(runs: list[Run], norm: str, lr: float | None = None) -> Run | None:
    matches = [r for r in runs if r.norm == norm and (lr is None or np.isclose(r.lr, lr))]
    return min(matches, key=lambda r: (r.lr, r.seed)) if matches else None


# ------------------------------------------------------------------------------------------ figures
def fig1(root: Path, scale: str, experiment: str = "fig1"):
    """Standard vs BN at lr 0.1 and 0.5: train/test accuracy; activation histograms (before ReLU)."""
    runs = load_experiment(root, experiment, scale)
    if not runs:
        return _empty(experiment)
    layers = _layers(runs, "act_sample")
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    for ax, metric, title in ((axes[0, 0], "train_acc", "Training accuracy"), (axes[0, 1], "test_acc", "Test accuracy")):
        for lr, ls in zip(sorted({r.lr for r in runs}), ("-", "--", ":", "-.")):
            plot_metric(ax, [r for r in runs if r.lr == lr], metric, label_lr=True, linestyle=ls)
        ax.set(title=title, xlabel="step", ylabel="accuracy")
    if layers:
        lr0 = min(r.lr for r in runs)
        for ax, (norm, layer) in zip(axes[1], [("none", layers[-1]), ("batch", layers[-1])]):
            run = _pick(runs, norm, lr0)
            if run:
                activation_histogram(ax, run, layer)
    else:
        for ax in axes[1]:
            ax.set_visible(False)
    title = "Fig. 1: standard vs BatchNorm" if experiment == "fig1" else f"{experiment}: standard vs BatchNorm"
    return _finish(fig, axes, f"{title} ({scale})")


def fig2(root: Path, scale: str):
    """Standard vs BN vs noisy BN (and noise alone): accuracy, histograms, moment shifts (Fig. 8)."""
    runs = load_experiment(root, "fig2", scale)
    if not runs:
        return _empty("fig2")
    layers = _layers(runs, "act_sample")
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    plot_metric(axes[0, 0], runs, "train_acc")
    axes[0, 0].set(title="Training accuracy", xlabel="step", ylabel="accuracy")
    for ax, metric, title in ((axes[0, 1], "moment_shift_mean", "|mean change| between measured steps"),
                              (axes[0, 2], "moment_shift_var", "|variance change| between measured steps")):
        for layer, ls in zip(layers, ("-", "--")):
            plot_metric(ax, runs, metric, layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
        ax.set(title=title, xlabel="step", yscale="log")
    layer = layers[-1] if layers else None
    for ax, norm in zip(axes[1], ("none", "batch", "noisy_batch")):
        run = _pick(runs, norm)
        if run and layer is not None:
            activation_histogram(ax, run, layer)
        else:
            ax.set_visible(False)
    return _finish(fig, axes, f"Fig. 2: BatchNorm with noise injected (ICS on purpose) ({scale})")


def fig3(root: Path, scale: str):
    """Gradient ICS (Definition 2.1): ||G - G'|| and cos(G, G') for chosen layers, CNN and DLN."""
    rows = [(exp, lr) for exp in ("fig3_cnn", "fig3_dln") for lr in sorted({r.lr for r in load_experiment(root, exp, scale)}, reverse=True)]
    if not rows:
        return _empty("fig3")
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 2.6 * len(rows)), squeeze=False)
    for (exp, lr), (ax_l2, ax_cos) in zip(rows, axes):
        runs = [r for r in load_experiment(root, exp, scale) if r.lr == lr]
        for layer, ls in zip(_layers(runs, "ics_l2"), ("-", "--", ":")):
            plot_metric(ax_l2, runs, "ics_l2", layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
            plot_metric(ax_cos, runs, "ics_cos", layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
        what = "DLN" if exp.endswith("dln") else "CNN"
        ax_l2.set(title=f"{what}, lr {lr:g}: l2 difference ||G - G'||", xlabel="step", yscale="log")
        ax_cos.set(title=f"{what}, lr {lr:g}: cos angle (G, G')", xlabel="step", ylim=(-1.05, 1.05))
    return _finish(fig, axes, f"Fig. 3: gradient-based internal covariate shift ({scale})")


def _landscape_row(axes, runs: list[Run], what: str) -> None:
    ax_band, ax_pred, ax_beta = axes
    for (norm, _lr), group in _group(runs).items():
        color, label = NORM_STYLE.get(norm), NORM_LABEL.get(norm, norm)
        lo = pd.concat([series(r, "landscape_loss_min") for r in group], axis=1).mean(axis=1)
        hi = pd.concat([series(r, "landscape_loss_max") for r in group], axis=1).mean(axis=1)
        ax_band.fill_between(lo.index, lo.values, hi.values, color=color, alpha=0.35, lw=0, label=label)
        pred = [r.metrics[r.metrics["metric"] == "grad_pred"].groupby("step")["value"] for r in group]
        lo = pd.concat([p.min() for p in pred], axis=1).mean(axis=1)
        hi = pd.concat([p.max() for p in pred], axis=1).mean(axis=1)
        ax_pred.fill_between(lo.index, lo.values, hi.values, color=color, alpha=0.35, lw=0, label=label)
    plot_metric(ax_beta, runs, "beta")
    ax_band.set(title=f"{what}: loss landscape (band over eta)", xlabel="step", ylabel="loss", yscale="log")
    ax_pred.set(title=f"{what}: gradient predictiveness", xlabel="step", ylabel="||g(w) - g(w - eta g)||", yscale="log")
    ax_beta.set(title=f"{what}: effective beta-smoothness", xlabel="step", yscale="log")


def fig4(root: Path, scale: str):
    """Loss landscape band, gradient predictiveness band, effective beta: CNN and DLN."""
    rows = [(exp, runs) for exp in ("fig4_cnn", "fig4_dln") if (runs := load_experiment(root, exp, scale))]
    if not rows:
        return _empty("fig4")
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.2 * len(rows)), squeeze=False)
    for (exp, runs), row in zip(rows, axes):
        _landscape_row(row, runs, "DLN" if exp.endswith("dln") else "CNN")
    return _finish(fig, axes, f"Fig. 4: smoothness of the loss landscape ({scale})")


def fig5(root: Path, scale: str):
    """l1/l2/linf normalisations vs standard and BN: training accuracy (CNN), training loss (DLN), landscape."""
    cnn, dln = load_experiment(root, "fig5_cnn", scale), load_experiment(root, "fig5_dln", scale)
    if not cnn and not dln:
        return _empty("fig5")
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    for row, runs, what, metric in ((axes[0], cnn, "CNN", "train_acc"), (axes[1], dln, "DLN", "train_loss")):
        if not runs:
            for ax in row:
                ax.set_visible(False)
            continue
        plot_metric(row[0], runs, metric, smooth=1)
        row[0].set(title=f"{what}: training {'accuracy' if metric == 'train_acc' else 'loss'}", xlabel="step",
                   yscale="linear" if metric == "train_acc" else "log")
        _landscape_row(row[1:], runs, what)
    return _finish(fig, axes, f"Fig. 5: lp normalisations ({scale})")


def browser(root: Path, scale: str):
    """Seed 001's three figures: test accuracy at low/high lr; moment change with noise; loss change and beta."""
    runs = load_experiment(root, "browser", scale)
    if not runs:
        return _empty("browser")
    lrs = sorted({r.lr for r in runs})
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, lr in zip(axes[0, :2], lrs):
        plot_metric(ax, [r for r in runs if r.lr == lr], "test_acc")
        ax.set(title=f"Test accuracy, lr {lr:g}", xlabel="step", ylabel="accuracy")
    low = [r for r in runs if r.lr == lrs[0]]
    plot_metric(axes[0, 2], low, "train_acc")
    axes[0, 2].set(title=f"Training accuracy, lr {lrs[0]:g}", xlabel="step")
    layers = _layers(low, "moment_shift_mean")
    plot_metric(axes[1, 0], low, "moment_shift_mean", layer=layers[-1] if layers else None)
    axes[1, 0].set(title="Change of activation mean between measured steps", xlabel="step", yscale="log")
    plot_metric(axes[1, 1], [r for r in low if r.norm != "noisy_batch"], "loss_change", smooth=10)
    axes[1, 1].set(title="Loss change between successive steps", xlabel="step", yscale="log")
    plot_metric(axes[1, 2], [r for r in low if r.norm != "noisy_batch"], "beta_act")
    axes[1, 2].set(title="\"Effective\" beta (w.r.t. activations)", xlabel="step", yscale="log")
    return _finish(fig, axes, f"Browser reproduction (seed 001) ({scale})")


FIGURES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "quick": (partial(fig1, experiment="quick"), ("quick",)),
    "fig1": (fig1, ("fig1",)),
    "fig2": (fig2, ("fig2",)),
    "fig3": (fig3, ("fig3_cnn", "fig3_dln")),
    "fig4": (fig4, ("fig4_cnn", "fig4_dln")),
    "fig5": (fig5, ("fig5_cnn", "fig5_dln")),
    "browser": (browser, ("browser",)),
}


def _tutorials(root: Path, scale: str):
    from bnstudy.tutorial_figures import tutorials  # imports this module: registered lazily

    return tutorials(root, scale)


FIGURES["tutorials"] = (_tutorials, ("tut_lr", "tut_init", "tut_reg", "tut_batch", "tut_momentum", "tut_placement"))


def save(fig, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.pdf`` (``write_atomic``: never half-written, never through a link)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{name}.{ext}"
        write_atomic(path, lambda f: fig.savefig(f, format=ext, bbox_inches="tight"))
        paths.append(path)
    plt.close(fig)
    return paths


def draw(names: Iterable[str], root: Path, scale: str, out_dir: Path) -> list[Path]:
    """Draw the named figures from CSVs under ``root`` into ``out_dir/<name>_<scale>.{png,pdf}``."""
    written = []
    for name in names:
        if name not in FIGURES:
            raise ValueError(f"figure {name!r} is unknown; valid: {sorted(FIGURES)}")
        fig = FIGURES[name][0](root, scale)
        written += save(fig, out_dir, f"{name}_{scale}")
    return written
