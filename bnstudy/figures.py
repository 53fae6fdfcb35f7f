"""One function per figure, drawn from the runs' CSVs alone (plotting never trains).

Each figure function takes a :class:`bnstudy.runs.RunSet` (or a results root and a scale) and reads the
runs each of its experiments means (``bnstudy.runs.SELECTION_RULE``: by default the experiment's newest
sweep and the sweeps with the same settings; the named ``sweeps`` where given). It returns a matplotlib
Figure whose footer says which sweep(s), how many runs and seeds and how many steps it shows. ``FIGURES``
maps a figure name to its function and the experiments it reads. Several seeds of one (norm, lr) are
drawn as a mean with a min-max band; a diverged run ends in an x. Norm colours and labels come from the
norm registry (``bnstudy.norms.norm_look``).

**Adding a figure.** Write ``def figN(runs, scale=None, sweeps=()) -> Figure`` that starts with
``R = as_runset(runs, scale, sweeps)``, reads ``R.runs("<experiment>")``, draws with :func:`plot_metric`
and ends with ``return _finish(fig, axes, title, R, ("<experiment>", ...))``; add it to ``FIGURES`` with
the experiments it reads, and a make target that trains them (Makefile).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnstudy.norms import NORMS, norm_look
from bnstudy.paths import FIGURE_RUNS_SUFFIX as RUNS_SUFFIX
from bnstudy.records import write_atomic, write_text_atomic
from bnstudy.runs import Run, RunSet

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9,
                     "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 7, "legend.framealpha": 0.7})


def as_runset(runs: RunSet | str | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()) -> RunSet:
    """``runs`` itself if it is a RunSet, else the RunSet of ``scale`` (default quick) under the root ``runs``."""
    return runs if isinstance(runs, RunSet) else RunSet(runs, scale or "quick", sweeps)


def load_experiment(root: RunSet | str | Path, experiment: str, scale: str = "quick",
                    sweeps: Sequence[str | Path] = ()) -> list[Run]:
    """The runs ``experiment`` means at ``scale`` (``bnstudy.runs.SELECTION_RULE``)."""
    return as_runset(root, scale, sweeps).runs(experiment)


def _norm_order(norm: str) -> int:
    names = list(NORMS)
    return names.index(norm) if norm in names else len(names)


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
    for (norm, lr), group in sorted(_group(runs).items(), key=lambda kv: (_norm_order(kv[0][0]), kv[0][1])):
        if select and not all(getattr(group[0], k) == v for k, v in select.items()):
            continue
        table = pd.concat([series(r, metric, layer) for r in group], axis=1)
        if table.empty:
            continue
        if smooth > 1:
            table = table.rolling(smooth, min_periods=1).mean()
        mean = table.mean(axis=1)
        name, color = norm_look(norm)
        label = name + (f" (lr {lr:g})" if label_lr else "") + label_suffix
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
    ax.set_title(f"{norm_look(run.norm)[0]}, layer #{layer}, unit {int(unit)}")
    ax.set_xlabel("step")
    ax.set_ylabel("activation")
    ax.grid(False)


def footer(R: RunSet, experiments: Iterable[str]) -> str:
    """Which runs a figure shows: one line per experiment (sweeps, runs, seeds, steps)."""
    return "\n".join(R.experiment(e).describe() for e in experiments)


def _finish(fig, axes, title: str, R: RunSet, experiments: Iterable[str]):
    for ax in np.ravel(axes):
        if ax.get_visible() and ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.text(0.01, 0.0, footer(R, experiments), ha="left", va="top", fontsize=6, color="0.35")
    return fig


def _layers(runs: list[Run], metric: str) -> list[int]:
    layers = set()
    for r in runs:
        layers |= set(r.metrics.loc[r.metrics["metric"] == metric, "layer"].dropna().astype(int))
    return sorted(layers)


def _empty(name: str, R: RunSet | None = None, experiments: Iterable[str] = ()):
    """The figure of an experiment with no finished runs: it says so (``is_empty`` tells it apart)."""
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, f"{name}: no finished runs", ha="center", va="center")
    ax.set_axis_off()
    if R is not None:
        fig.text(0.01, 0.0, footer(R, experiments), ha="left", va="top", fontsize=6, color="0.35")
    return mark_empty(fig)


def mark_empty(fig):
    """Mark a figure drawn without a single run (``draw(skipped=...)`` then writes no file of it)."""
    fig.bnstudy_no_runs = True
    return fig


def is_empty(fig) -> bool:
    return bool(getattr(fig, "bnstudy_no_runs", False))


def _pick(runs: list[Run], norm: str, lr: float | None = None) -> Run | None:
    matches = [r for r in runs if r.norm == norm and (lr is None or np.isclose(r.lr, lr))]
    return min(matches, key=lambda r: (r.lr, r.seed)) if matches else None


# ------------------------------------------------------------------------------------------ figures
def fig1(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = (), experiment: str = "fig1"):
    """Standard vs BN at lr 0.1 and 0.5: train/test accuracy; activation histograms (before ReLU)."""
    R = as_runset(root, scale, sweeps)
    scale, runs = R.scale, R.runs(experiment)
    if not runs:
        return _empty(experiment, R, (experiment,))
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
    return _finish(fig, axes, f"{title} ({scale})", R, (experiment,))


def fig2(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """Standard vs BN vs noisy BN (and noise alone): accuracy, histograms, moment shifts (Fig. 8)."""
    R = as_runset(root, scale, sweeps)
    scale, runs = R.scale, R.runs("fig2")
    if not runs:
        return _empty("fig2", R, ("fig2",))
    layers = _layers(runs, "act_sample")
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    plot_metric(axes[0, 0], runs, "train_acc")
    axes[0, 0].set(title="Training accuracy", xlabel="step", ylabel="accuracy")
    for ax, metric, title in ((axes[0, 1], "moment_shift_mean", "|mean change| between successive steps"),
                              (axes[0, 2], "moment_shift_var", "|variance change| between successive steps")):
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
    return _finish(fig, axes, f"Fig. 2: BatchNorm with noise injected (ICS on purpose) ({scale})", R, ("fig2",))


def fig3(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """Gradient ICS (Definition 2.1): ||G - G'|| and cos(G, G') for chosen layers, CNN and DLN."""
    R, exps = as_runset(root, scale, sweeps), ("fig3_cnn", "fig3_dln")
    scale = R.scale
    rows = [(exp, lr) for exp in exps for lr in sorted({r.lr for r in R.runs(exp)}, reverse=True)]
    if not rows:
        return _empty("fig3", R, exps)
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 2.6 * len(rows)), squeeze=False)
    for (exp, lr), (ax_l2, ax_cos) in zip(rows, axes):
        runs = [r for r in R.runs(exp) if r.lr == lr]
        for layer, ls in zip(_layers(runs, "ics_l2"), ("-", "--", ":")):
            plot_metric(ax_l2, runs, "ics_l2", layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
            plot_metric(ax_cos, runs, "ics_cos", layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
        what = "DLN" if exp.endswith("dln") else "CNN"
        ax_l2.set(title=f"{what}, lr {lr:g}: l2 difference ||G - G'||", xlabel="step", yscale="log")
        ax_cos.set(title=f"{what}, lr {lr:g}: cos angle (G, G')", xlabel="step", ylim=(-1.05, 1.05))
    return _finish(fig, axes, f"Fig. 3: gradient-based internal covariate shift ({scale})", R, exps)


def _landscape_row(axes, runs: list[Run], what: str) -> None:
    ax_band, ax_pred, ax_beta = axes
    for (norm, _lr), group in _group(runs).items():
        label, color = norm_look(norm)
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


def fig4(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """Loss landscape band, gradient predictiveness band, effective beta: CNN and DLN."""
    R, exps = as_runset(root, scale, sweeps), ("fig4_cnn", "fig4_dln")
    scale = R.scale
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return _empty("fig4", R, exps)
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.2 * len(rows)), squeeze=False)
    for (exp, runs), row in zip(rows, axes):
        _landscape_row(row, runs, "DLN" if exp.endswith("dln") else "CNN")
    return _finish(fig, axes, f"Fig. 4: smoothness of the loss landscape ({scale})", R, exps)


def fig5(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """l1/l2/linf normalisations vs standard and BN: training accuracy (CNN), training loss (DLN), landscape."""
    R, exps = as_runset(root, scale, sweeps), ("fig5_cnn", "fig5_dln")
    scale, cnn, dln = R.scale, R.runs("fig5_cnn"), R.runs("fig5_dln")
    if not cnn and not dln:
        return _empty("fig5", R, exps)
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
    return _finish(fig, axes, f"Fig. 5: lp normalisations ({scale})", R, exps)


def browser(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """Seed 001's three figures: test accuracy at low/high lr; moment change with noise; loss change and beta."""
    R = as_runset(root, scale, sweeps)
    scale, runs = R.scale, R.runs("browser")
    if not runs:
        return _empty("browser", R, ("browser",))
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
    return _finish(fig, axes, f"The browser reproduction ({scale})", R, ("browser",))


def fig9(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """Fig. 9: the DLN's activation distributions over training at the paper's layers #1, #11, #24 (fig4_dln's
    activations), standard vs BN."""
    R = as_runset(root, scale, sweeps)
    runs = R.runs("fig4_dln")
    layers = _layers(runs, "act_sample")
    picked = [r for r in (_pick(runs, "none"), _pick(runs, "batch")) if r is not None]
    if not layers or not picked:
        return _empty("fig9", R, ("fig4_dln",))
    fig, axes = plt.subplots(len(layers), len(picked), figsize=(4.5 * len(picked), 2.6 * len(layers)), squeeze=False)
    for row, layer in zip(axes, layers):
        for ax, run in zip(row, picked):
            activation_histogram(ax, run, layer)
    return _finish(fig, axes, f"Fig. 9: DLN activation distributions ({R.scale})", R, ("fig4_dln",))


def fig11(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """Fig. 11: gradient predictiveness ||g(w) - g(w - eta g)|| against the step eta (the per-eta rows of the
    landscape measurement), standard vs BN, at the first, middle and last measured steps."""
    R, exps = as_runset(root, scale, sweeps), ("fig4_cnn", "fig4_dln")
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return _empty("fig11", R, exps)
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.2 * len(rows)), squeeze=False)
    for (exp, runs), row in zip(rows, axes):
        steps = sorted(set().union(*[set(r.metrics.loc[r.metrics["metric"] == "grad_pred", "step"]) for r in runs]))
        if not steps:
            for ax in row:
                ax.set_visible(False)
            continue
        for ax, step in zip(row, (steps[0], steps[len(steps) // 2], steps[-1])):
            for (norm, lr), group in sorted(_group(runs).items(), key=lambda kv: _norm_order(kv[0][0])):
                curves = []
                for r in group:
                    df = r.metrics[(r.metrics["metric"] == "grad_pred") & (r.metrics["step"] == step)]
                    curves.append(df.groupby("eta")["value"].mean())
                table = pd.concat(curves, axis=1).dropna(how="all")
                if table.empty:
                    continue
                name, color = norm_look(norm)
                ax.plot(table.index / lr, table.mean(axis=1), "o-", color=color, ms=3, lw=1.2, label=name)
                if table.shape[1] > 1:
                    ax.fill_between(table.index / lr, table.min(axis=1), table.max(axis=1), color=color, alpha=0.2, lw=0)
            what = "DLN" if exp.endswith("dln") else "CNN"
            ax.set(title=f"{what}, step {int(step):,}", xlabel="eta / lr", ylabel="||g(w) - g(w - eta g)||",
                   xscale="log", yscale="log")
    return _finish(fig, axes, f"Fig. 11: gradient predictiveness against the step size ({R.scale})", R, exps)


def dln_sweep(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """The DLN's loss scale (``make dln_sweep``): per lr, the training loss, the oscillation cos(g_t-1, g_t)
    and cos(G, G') at the paper's layers, standard / BN / l1. The sweep runs at paper scale: drawn at another
    scale, it reads the paper-scale runs under the same root."""
    R = as_runset(root, scale, sweeps)
    runs = R.runs("dln_sweep")
    if not runs and R.scale != "paper":
        runs = as_runset(R.root, "paper").runs("dln_sweep")
    if not runs:
        return _empty("dln_sweep", R, ("dln_sweep",))
    lrs = sorted({r.lr for r in runs}, reverse=True)
    fig, axes = plt.subplots(len(lrs), 3, figsize=(13, 2.8 * len(lrs)), squeeze=False)
    for lr, (ax_loss, ax_osc, ax_ics) in zip(lrs, axes):
        at = [r for r in runs if r.lr == lr]
        plot_metric(ax_loss, at, "train_loss")
        plot_metric(ax_osc, at, "grad_cos_prev")
        for layer, ls in zip(_layers(at, "ics_cos"), ("-", "--", ":")):
            plot_metric(ax_ics, at, "ics_cos", layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
        ax_loss.set(title=f"lr {lr:g} (= ½·sum at {2 * lr:g}): training loss", xlabel="step", yscale="log")
        ax_osc.set(title=f"lr {lr:g}: cos(g_t-1, g_t), successive gradients", xlabel="step", ylim=(-1.05, 1.05))
        ax_ics.set(title=f"lr {lr:g}: cos(G, G')", xlabel="step", ylim=(-1.05, 1.05))
    return _finish(fig, axes, "The DLN's loss scale: make dln_sweep (paper scale, summed loss)", R, ("dln_sweep",))


FIGURES: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "quick": (partial(fig1, experiment="quick"), ("quick",)),
    "fig1": (fig1, ("fig1",)),
    "fig2": (fig2, ("fig2",)),
    "fig3": (fig3, ("fig3_cnn", "fig3_dln")),
    "fig4": (fig4, ("fig4_cnn", "fig4_dln")),
    "fig5": (fig5, ("fig5_cnn", "fig5_dln")),
    "browser": (browser, ("browser",)),
    "fig9": (fig9, ("fig4_dln",)),
    "fig11": (fig11, ("fig4_cnn", "fig4_dln")),
    "dln_sweep": (dln_sweep, ("dln_sweep",)),
}


def _tutorials(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    from bnstudy.tutorial_figures import tutorials  # imports this module: registered lazily

    R = as_runset(root, scale, sweeps)
    return tutorials(R.root, R.scale)


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


def draw(names: Iterable[str], root: RunSet | Path, scale: str | None = None, out_dir: Path | None = None,
         sweeps: Sequence[str | Path] = (), skipped: list[str] | None = None) -> list[Path]:
    """Draw the named figures from the runs under ``root`` (or a RunSet; ``sweeps`` named: those sweeps for
    their experiments) into ``out_dir/<name>_<scale>.{png,pdf}`` (default ``<root>/figures``). With a
    ``skipped`` list, a figure none of whose experiments has a finished run is not written: its name is
    appended there instead."""
    R = as_runset(root, scale, sweeps)
    out_dir = Path(out_dir) if out_dir is not None else R.root / "figures"
    written = []
    for name in names:
        if name not in FIGURES:
            raise ValueError(f"figure {name!r} is unknown; valid: {', '.join(sorted(FIGURES))}")
        fig = FIGURES[name][0](R)
        if skipped is not None and is_empty(fig):
            plt.close(fig)
            skipped.append(name)
            continue
        written += save(fig, out_dir, f"{name}_{R.scale}")
        write_text_atomic(out_dir / f"{name}_{R.scale}{RUNS_SUFFIX}", footer(R, FIGURES[name][1]) + "\n")
    return written



from bnstudy import figures_beyond  # noqa: E402,F401  (registers the curvature, theory and signal figures)
