"""Figures of the measurements beyond the paper (``make curvature``, ``make theory``, ``make signal``).

Drawn from the runs' CSVs alone, like every figure (``bnstudy.figures``, whose helpers these use):

- ``curvature``: lambda_max of the Hessian in train mode (batch statistics) and eval mode (running
  statistics), the batch sharpness g'Hg/|g|^2 and beta_limit |Hg|/|g|, each against 2/lr (the edge of
  stability), standard vs BN; the CNN (top) and the full-batch DLN (bottom).
- ``theory``: Theorem 4.1's two sides per BN layer (the proof's 1/m form and the printed 1/sqrt(m) form),
  BN's gain gamma^2/sigma^2, and the scale invariance of the weights BN follows (|w|, the effective lr
  lr/|w|^2, the measured norm growth against lr^2 |g|^2).
- ``signal``: at initialisation, |dL/dW| and the effective rank of the batch's activations against the
  layer, for VGG-11/13/16/19 and the DLN, standard vs BN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnstudy.figures import FIGURES, _empty, _finish, _layers, as_runset, plot_metric
from bnstudy.norms import norm_look, norm_uses_batch_statistics
from bnstudy.runs import Run, RunSet


def _two_over_lr(ax, runs: list[Run]) -> None:
    """Dashed grey line(s) at 2/lr, the largest curvature gradient descent at lr is stable on."""
    for lr in sorted({r.lr for r in runs}):
        ax.axhline(2 / lr, color="0.4", ls=":", lw=1.2, label=f"2/lr = {2 / lr:g}")


def curvature(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """lambda_max (train and eval mode), batch sharpness and beta_limit against 2/lr, CNN and DLN."""
    R, exps = as_runset(root, scale, sweeps), ("curvature_cnn", "curvature_dln")
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return _empty("curvature", R, exps)
    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 3.4 * len(rows)), squeeze=False)
    for (exp, runs), (ax_h, ax_s, ax_b) in zip(rows, axes):
        what = "DLN (full-batch GD)" if exp.endswith("dln") else "CNN (SGD)"
        plot_metric(ax_h, runs, "hess_lmax_train", label_suffix=", train mode")
        for norm in sorted({r.norm for r in runs}):  # without batch statistics the two modes are one function
            same = not norm_uses_batch_statistics(norm)
            plot_metric(ax_h, [r for r in runs if r.norm == norm], "hess_lmax_eval", linestyle=":" if same else "--",
                        label_suffix=", eval mode (= train mode: no batch statistics)" if same else ", eval mode")
        plot_metric(ax_s, runs, "batch_sharpness")
        plot_metric(ax_b, runs, "beta_limit")
        for ax, title in ((ax_h, "lambda_max of the Hessian"), (ax_s, "batch sharpness g'Hg / |g|^2"),
                          (ax_b, "beta_limit |Hg| / |g|")):
            _two_over_lr(ax, runs)
            ax.set(title=f"{what}: {title}", xlabel="step")
            if ax is ax_s:  # g'Hg can be negative (the gradient along a direction of negative curvature)
                ax.set_yscale("symlog", linthresh=2 / max(r.lr for r in runs) / 100)
            else:
                ax.set_yscale("log")
    return _finish(fig, axes, f"Curvature against 2/lr: train-mode vs eval-mode Hessian ({R.scale})", R, exps)


def _ratio(run: Run, num: str, den: str, layer: float) -> pd.Series:
    a, b = run.series(num, layer), run.series(den, layer)
    return (a / b).dropna()


def _spread(layers: list[int], k: int = 3) -> list[int]:
    """At most ``k`` layers: the first, the middle and the last."""
    return layers if len(layers) <= k else [layers[0], layers[len(layers) // 2], layers[-1]]


def theory(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """Theorem 4.1's sides (both forms), BN's gain, and scale invariance (|w|, lr/|w|^2, norm growth)."""
    R = as_runset(root, scale, sweeps)
    runs = R.runs("theory")
    if not runs:
        return _empty("theory", R, ("theory",))
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.8))
    layers = _spread(_layers(runs, "thm41_lhs"))
    lrs = sorted({r.lr for r in runs})
    styles = dict(zip(lrs, ("-", "--", ":", "-.")))
    colours = dict(zip(layers, plt.get_cmap("viridis")(np.linspace(0.1, 0.85, max(len(layers), 1)))))

    first_seed = {lr: min((str(r.seed) for r in runs if r.lr == lr)) for lr in lrs}  # labelled once per lr

    def per_layer(ax, fn, layers, title, ylabel, yscale="log"):
        for run in sorted(runs, key=lambda r: (r.lr, str(r.seed))):
            for layer in layers:
                s = fn(run, layer)
                if not s.empty:
                    ax.plot(s.index, s.values, styles[run.lr], color=colours.get(layer, "C0"), lw=1.1,
                            label=f"layer #{int(layer)}, lr {run.lr:g}" if str(run.seed) == first_seed[run.lr] else None)
        ax.set(title=title, xlabel="step", ylabel=ylabel, yscale=yscale)

    per_layer(axes[0, 0], lambda r, l: (_ratio(r, "thm41_lhs", "thm41_rhs", l) - 1).abs(), layers,
              "Thm 4.1, proof's form (1/m): |lhs / rhs - 1|", "distance from equality")
    per_layer(axes[0, 1], lambda r, l: _ratio(r, "thm41_lhs", "thm41_rhs_printed", l), layers,
              "Thm 4.1 as printed (1/sqrt m): lhs / rhs (> 1 violates it)", "|dL/dy|^2 / rhs_printed")
    axes[0, 1].axhline(1, color="0.4", ls=":", lw=1.2)
    per_layer(axes[0, 2], lambda r, l: r.series("thm41_gain", l), layers,
              "BN's gain gamma^2 / sigma^2 (mean over units)", "gamma^2 / sigma^2")
    si_layers = _spread(_layers(runs, "si_wnorm"))
    colours.update(dict(zip(si_layers, plt.get_cmap("viridis")(np.linspace(0.1, 0.85, max(len(si_layers), 1))))))
    per_layer(axes[1, 0], lambda r, l: r.series("si_wnorm", l), si_layers, "|w| of the weights BN follows", "|w|")
    per_layer(axes[1, 1], lambda r, l: r.series("si_eff_lr", l), si_layers, "effective lr = lr / |w|^2", "lr / |w|^2")
    per_layer(axes[1, 2], lambda r, l: _ratio(r, "si_dnorm2", "si_dnorm2_pred", l), si_layers,
              "|w_t+1|^2 - |w_t|^2 against lr^2 |g_t|^2", "measured / predicted", yscale="linear")
    axes[1, 2].ticklabel_format(axis="y", useOffset=False)
    return _finish(fig, axes, f"Theorem 4.1 and scale invariance, measured ({R.scale})", R, ("theory",))


def _by_layer(run: Run, metric: str) -> pd.Series:
    """``metric`` at the run's first measured step (initialisation), by layer."""
    df = run.metrics[(run.metrics["metric"] == metric) & run.metrics["layer"].notna()]
    if df.empty:
        return pd.Series(dtype=float)
    df = df[df["step"] == df["step"].min()]
    return df.groupby("layer")["value"].mean().sort_index()


def _signal_panel(ax, R: RunSet, runs: list[Run], metric: str, by_depth: bool) -> None:
    depths = sorted({R.config(r).get("model.depth") for r in runs}, key=lambda d: (d is None, d)) if by_depth else [None]
    shades = dict(zip(depths, np.linspace(1.0, 0.45, max(len(depths), 1))))
    for norm, ls in (("none", "--"), ("batch", "-")):
        for depth in depths:
            group = [r for r in runs if r.norm == norm and (not by_depth or R.config(r).get("model.depth") == depth)]
            table = pd.concat([_by_layer(r, metric) for r in group], axis=1) if group else pd.DataFrame()
            if table.empty:
                continue
            name, colour = norm_look(norm)
            colour = np.array(plt.matplotlib.colors.to_rgb(colour)) * shades[depth]
            label = f"{name}" + (f", VGG-{depth}" if by_depth else "")
            ax.plot(table.index, table.mean(axis=1), ls, color=colour, marker="o", ms=2.5, lw=1.1, label=label)
            if table.shape[1] > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colour, alpha=0.15, lw=0)


def signal(root: RunSet | Path, scale: str | None = None, sweeps: Sequence[str | Path] = ()):
    """At initialisation: |dL/dW| and the effective rank per layer, VGG-11..19 and the DLN, standard vs BN."""
    R, exps = as_runset(root, scale, sweeps), ("signal_cnn", "signal_dln")
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return _empty("signal", R, exps)
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 3.6 * len(rows)), squeeze=False)
    for (exp, runs), (ax_g, ax_r) in zip(rows, axes):
        dln = exp.endswith("dln")
        what = "DLN" if dln else "VGG"
        _signal_panel(ax_g, R, runs, "sig_grad_norm", by_depth=not dln)
        _signal_panel(ax_r, R, runs, "sig_rank", by_depth=not dln)
        ax_g.set(title=f"{what} at init: |dL/dW| per layer", xlabel="layer", ylabel="|dL/dW|", yscale="log")
        ax_r.set(title=f"{what} at init: effective rank of the batch's outputs", xlabel="layer",
                 ylabel="exp(entropy of singular values)", yscale="log")
    return _finish(fig, axes, f"Signal propagation at initialisation ({R.scale})", R, exps)


FIGURES["curvature"] = (curvature, ("curvature_cnn", "curvature_dln"))
FIGURES["theory"] = (theory, ("theory",))
FIGURES["signal"] = (signal, ("signal_cnn", "signal_dln"))
