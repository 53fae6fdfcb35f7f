"""Figures of the measurements beyond the paper (``make curvature``, ``make theory``, ``make signal``).

Drawn from the runs' CSVs alone, like every figure (``bnstudy.figures.base``):

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnstudy.figures.base import empty, figure, finish, plot_metric, spread
from bnstudy.measures.curvature import BATCH_SHARPNESS, BETA_LIMIT, HESS_LMAX
from bnstudy.measures.scale_invariance import SI_DNORM2, SI_DNORM2_PRED, SI_EFF_LR, SI_WNORM
from bnstudy.measures.signal import SIG_GRAD_NORM, SIG_RANK
from bnstudy.measures.theorem41 import THM41_GAIN, THM41_LHS, THM41_RHS, THM41_RHS_PRINTED
from bnstudy.norms import norm_look, norm_uses_batch_statistics
from bnstudy.runs import Run, RunSet, layers_of

CURVATURE, SIGNAL = ("curvature_cnn", "curvature_dln"), ("signal_cnn", "signal_dln")


def _two_over_lr(ax, runs: list[Run]) -> None:
    """Dashed grey line(s) at 2/lr, the largest curvature gradient descent at lr is stable on."""
    for lr in sorted({r.lr for r in runs}):
        ax.axhline(2 / lr, color="0.4", ls=":", lw=1.2, label=f"2/lr = {2 / lr:g}")


@figure("curvature", experiments=CURVATURE, group="beyond",
        caption="Beyond the paper: the Hessian's top eigenvalue in train mode (batch statistics, solid) and eval "
                "mode (running statistics, dashed), the batch sharpness g'Hg/|g|^2 and beta_limit |Hg|/|g|, against "
                "2/lr (dotted), standard vs BN: the CNN (SGD, lr 0.1) and the DLN (full-batch GD, lr 1e-6).")
def curvature(R: RunSet):
    """lambda_max (train and eval mode), batch sharpness and beta_limit against 2/lr, CNN and DLN."""
    exps = CURVATURE
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return empty("curvature", R, exps)
    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 3.4 * len(rows)), squeeze=False)
    for (exp, runs), (ax_h, ax_s, ax_b) in zip(rows, axes):
        what = "DLN (full-batch GD)" if exp.endswith("dln") else "CNN (SGD)"
        plot_metric(ax_h, runs, HESS_LMAX["train"], label_suffix=", train mode")
        for norm in sorted({r.norm for r in runs}):  # without batch statistics the two modes are one function
            same = not norm_uses_batch_statistics(norm)
            plot_metric(ax_h, [r for r in runs if r.norm == norm], HESS_LMAX["eval"], linestyle=":" if same else "--",
                        label_suffix=", eval mode (= train mode: no batch statistics)" if same else ", eval mode")
        plot_metric(ax_s, runs, BATCH_SHARPNESS)
        plot_metric(ax_b, runs, BETA_LIMIT)
        for ax, title in ((ax_h, "lambda_max of the Hessian"), (ax_s, "batch sharpness g'Hg / |g|^2"),
                          (ax_b, "beta_limit |Hg| / |g|")):
            _two_over_lr(ax, runs)
            ax.set(title=f"{what}: {title}", xlabel="step")
            if ax is ax_s:  # g'Hg can be negative (the gradient along a direction of negative curvature)
                ax.set_yscale("symlog", linthresh=2 / max(r.lr for r in runs) / 100)
            else:
                ax.set_yscale("log")
    return finish(fig, axes, f"Curvature against 2/lr: train-mode vs eval-mode Hessian ({R.scale})", R, exps)


def _ratio(run: Run, num: str, den: str, layer: float) -> pd.Series:
    a, b = run.series(num, layer), run.series(den, layer)
    return (a / b).dropna()


@figure("theory", experiments=("theory",), group="beyond",
        caption="Beyond the paper: Theorem 4.1's lhs/rhs per BN layer in the proof's form (1/m: 1 = equality) and "
                "as printed (1/sqrt m: above 1 violates it), BN's gain gamma^2/sigma^2, and the weights BN follows: "
                "|w|, the effective lr lr/|w|^2 and the norm growth against lr^2|g|^2 (BN at lr 0.1 solid, 0.5 "
                "dashed).")
def theory(R: RunSet):
    """Theorem 4.1's sides (both forms), BN's gain, and scale invariance (|w|, lr/|w|^2, norm growth)."""
    runs = R.runs("theory")
    if not runs:
        return empty("theory", R, ("theory",))
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.8))
    layers = spread(layers_of(runs, THM41_LHS))
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

    per_layer(axes[0, 0], lambda r, l: (_ratio(r, THM41_LHS, THM41_RHS, l) - 1).abs(), layers,
              "Thm 4.1, proof's form (1/m): |lhs / rhs - 1|", "distance from equality")
    per_layer(axes[0, 1], lambda r, l: _ratio(r, THM41_LHS, THM41_RHS_PRINTED, l), layers,
              "Thm 4.1 as printed (1/sqrt m): lhs / rhs (> 1 violates it)", "|dL/dy|^2 / rhs_printed")
    axes[0, 1].axhline(1, color="0.4", ls=":", lw=1.2)
    per_layer(axes[0, 2], lambda r, l: r.series(THM41_GAIN, l), layers,
              "BN's gain gamma^2 / sigma^2 (mean over units)", "gamma^2 / sigma^2")
    si_layers = spread(layers_of(runs, SI_WNORM))
    colours.update(dict(zip(si_layers, plt.get_cmap("viridis")(np.linspace(0.1, 0.85, max(len(si_layers), 1))))))
    per_layer(axes[1, 0], lambda r, l: r.series(SI_WNORM, l), si_layers, "|w| of the weights BN follows", "|w|")
    per_layer(axes[1, 1], lambda r, l: r.series(SI_EFF_LR, l), si_layers, "effective lr = lr / |w|^2", "lr / |w|^2")
    per_layer(axes[1, 2], lambda r, l: _ratio(r, SI_DNORM2, SI_DNORM2_PRED, l), si_layers,
              "|w_t+1|^2 - |w_t|^2 against lr^2 |g_t|^2", "measured / predicted", yscale="linear")
    axes[1, 2].ticklabel_format(axis="y", useOffset=False)
    return finish(fig, axes, f"Theorem 4.1 and scale invariance, measured ({R.scale})", R, ("theory",))


def _signal_panel(ax, R: RunSet, runs: list[Run], metric: str, by_depth: bool) -> None:
    depths = sorted({R.config(r).get("model.depth") for r in runs}, key=lambda d: (d is None, d)) if by_depth else [None]
    shades = dict(zip(depths, np.linspace(1.0, 0.45, max(len(depths), 1))))
    for norm, ls in (("none", "--"), ("batch", "-")):
        for depth in depths:
            group = [r for r in runs if r.norm == norm and (not by_depth or R.config(r).get("model.depth") == depth)]
            table = pd.concat([r.at_init(metric) for r in group], axis=1) if group else pd.DataFrame()
            if table.empty:
                continue
            name, colour = norm_look(norm)
            colour = np.array(plt.matplotlib.colors.to_rgb(colour)) * shades[depth]
            label = f"{name}" + (f", VGG-{depth}" if by_depth else "")
            ax.plot(table.index, table.mean(axis=1), ls, color=colour, marker="o", ms=2.5, lw=1.1, label=label)
            if table.shape[1] > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=colour, alpha=0.15, lw=0)


@figure("signal", experiments=SIGNAL, group="beyond",
        caption="Beyond the paper: at initialisation, |dL/dW| and the effective rank of the batch's outputs per "
                "layer, VGG-11/13/16/19 (darker: deeper) and the 25-layer DLN, standard (dashed) vs BN (solid).")
def signal(R: RunSet):
    """At initialisation: |dL/dW| and the effective rank per layer, VGG-11..19 and the DLN, standard vs BN."""
    exps = SIGNAL
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return empty("signal", R, exps)
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 3.6 * len(rows)), squeeze=False)
    for (exp, runs), (ax_g, ax_r) in zip(rows, axes):
        dln = exp.endswith("dln")
        what = "DLN" if dln else "VGG"
        _signal_panel(ax_g, R, runs, SIG_GRAD_NORM, by_depth=not dln)
        _signal_panel(ax_r, R, runs, SIG_RANK, by_depth=not dln)
        ax_g.set(title=f"{what} at init: |dL/dW| per layer", xlabel="layer", ylabel="|dL/dW|", yscale="log")
        ax_r.set(title=f"{what} at init: effective rank of the batch's outputs", xlabel="layer",
                 ylabel="exp(entropy of singular values)", yscale="log")
    return finish(fig, axes, f"Signal propagation at initialisation ({R.scale})", R, exps)
