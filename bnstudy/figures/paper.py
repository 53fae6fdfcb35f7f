"""The paper's figures (and the main job's, ``quick``), each registered with ``@figure``: drawn from the runs'
CSVs alone, with a footer naming the runs (``bnstudy.figures.base``)."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import pandas as pd

from bnstudy.figures.base import activation_histogram, empty, figure, finish, norm_order, pick, plot_metric
from bnstudy.measures.activations import ACT_SAMPLE, MOMENT_SHIFT_MEAN, MOMENT_SHIFT_VAR
from bnstudy.measures.beta_act import BETA_ACT
from bnstudy.measures.grad_cos_prev import GRAD_COS_PREV
from bnstudy.measures.ics import ICS_COS, ICS_L2
from bnstudy.measures.landscape import BETA, GRAD_PRED, LANDSCAPE_LOSS_MAX, LANDSCAPE_LOSS_MIN
from bnstudy.measures.loss_change import LOSS_CHANGE
from bnstudy.norms import norm_look
from bnstudy.runs import Run, RunSet, by_norm_lr, layers_of
from bnstudy.train import TEST_ACC, TRAIN_ACC, TRAIN_LOSS

FIG3, FIG4, FIG5 = ("fig3_cnn", "fig3_dln"), ("fig4_cnn", "fig4_dln"), ("fig5_cnn", "fig5_dln")
"""The experiments of the figures that draw a CNN row and a DLN row."""


@figure("fig1", experiments=("fig1",),
        caption="Fig. 1: standard vs BN at lr 0.1 and 0.5, training and test accuracy, and the distribution of one "
                "unit's activations (before the ReLU) over training in two layers (the paper's #3 and #11; "
                "proportional layers at quick scale).")
def fig1(R: RunSet, experiment: str = "fig1"):
    """Standard vs BN at lr 0.1 and 0.5: train/test accuracy; activation histograms (before ReLU)."""
    scale, runs = R.scale, R.runs(experiment)
    if not runs:
        return empty(experiment, R, (experiment,))
    layers = layers_of(runs, ACT_SAMPLE)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    for ax, metric, title in ((axes[0, 0], TRAIN_ACC, "Training accuracy"), (axes[0, 1], TEST_ACC, "Test accuracy")):
        for lr, ls in zip(sorted({r.lr for r in runs}), ("-", "--", ":", "-.")):
            plot_metric(ax, [r for r in runs if r.lr == lr], metric, label_lr=True, linestyle=ls)
        ax.set(title=title, xlabel="step", ylabel="accuracy")
    if layers:
        lr0 = min(r.lr for r in runs)
        for ax, (norm, layer) in zip(axes[1], [("none", layers[-1]), ("batch", layers[-1])]):
            run = pick(runs, norm, lr0)
            if run:
                activation_histogram(ax, run, layer)
    else:
        for ax in axes[1]:
            ax.set_visible(False)
    title = "Fig. 1: standard vs BatchNorm" if experiment == "fig1" else f"{experiment}: standard vs BatchNorm"
    return finish(fig, axes, f"{title} ({scale})", R, (experiment,))


figure("quick", experiments=("quick",),
       caption="The main job: the small CNN with and without BN at lr 0.1 and 0.5, training accuracy and activation "
               "histograms.")(partial(fig1, experiment="quick"))


@figure("fig2", experiments=("fig2",),
        caption="Figs. 2 and 8: standard, BN, noisy BN (Algorithm 1) and the same noise in the standard network: "
                "training accuracy, activation histograms and moment shifts at the paper's layers #2, #9, #13 "
                "(proportional at quick scale).")
def fig2(R: RunSet):
    """Standard vs BN vs noisy BN (and noise alone): accuracy, histograms, moment shifts (Fig. 8)."""
    scale, runs = R.scale, R.runs("fig2")
    if not runs:
        return empty("fig2", R, ("fig2",))
    layers = layers_of(runs, ACT_SAMPLE)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    plot_metric(axes[0, 0], runs, TRAIN_ACC)
    axes[0, 0].set(title="Training accuracy", xlabel="step", ylabel="accuracy")
    for ax, metric, title in ((axes[0, 1], MOMENT_SHIFT_MEAN, "|mean change| between successive steps"),
                              (axes[0, 2], MOMENT_SHIFT_VAR, "|variance change| between successive steps")):
        for layer, ls in zip(layers, ("-", "--")):
            plot_metric(ax, runs, metric, layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
        ax.set(title=title, xlabel="step", yscale="log")
    layer = layers[-1] if layers else None
    for ax, norm in zip(axes[1], ("none", "batch", "noisy_batch")):
        run = pick(runs, norm)
        if run and layer is not None:
            activation_histogram(ax, run, layer)
        else:
            ax.set_visible(False)
    return finish(fig, axes, f"Fig. 2: BatchNorm with noise injected (ICS on purpose) ({scale})", R, ("fig2",))


@figure("fig3", experiments=FIG3,
        caption="Fig. 3: gradient ICS, ||G - G'|| and cos(G, G'), standard vs BN: the CNN at lr 0.1 and 0.01 (the "
                "paper's VGG layers #5, #10), the DLN at lr 1e-6 and 1e-7 (layers #9, #17).")
def fig3(R: RunSet):
    """Gradient ICS (Definition 2.1): ||G - G'|| and cos(G, G') for chosen layers, CNN and DLN."""
    exps = FIG3
    scale = R.scale
    rows = [(exp, lr) for exp in exps for lr in sorted({r.lr for r in R.runs(exp)}, reverse=True)]
    if not rows:
        return empty("fig3", R, exps)
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 2.6 * len(rows)), squeeze=False)
    for (exp, lr), (ax_l2, ax_cos) in zip(rows, axes):
        runs = [r for r in R.runs(exp) if r.lr == lr]
        for layer, ls in zip(layers_of(runs, ICS_L2), ("-", "--", ":")):
            plot_metric(ax_l2, runs, ICS_L2, layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
            plot_metric(ax_cos, runs, ICS_COS, layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
        what = "DLN" if exp.endswith("dln") else "CNN"
        ax_l2.set(title=f"{what}, lr {lr:g}: l2 difference ||G - G'||", xlabel="step", yscale="log")
        ax_cos.set(title=f"{what}, lr {lr:g}: cos angle (G, G')", xlabel="step", ylim=(-1.05, 1.05))
    return finish(fig, axes, f"Fig. 3: gradient-based internal covariate shift ({scale})", R, exps)


def _landscape_row(axes, runs: list[Run], what: str) -> None:
    ax_band, ax_pred, ax_beta = axes
    for (norm, _lr), group in by_norm_lr(runs).items():
        label, color = norm_look(norm)
        lo = pd.concat([r.step_mean(LANDSCAPE_LOSS_MIN) for r in group], axis=1).mean(axis=1)
        hi = pd.concat([r.step_mean(LANDSCAPE_LOSS_MAX) for r in group], axis=1).mean(axis=1)
        ax_band.fill_between(lo.index, lo.values, hi.values, color=color, alpha=0.35, lw=0, label=label)
        pred = [r.metrics[r.metrics["metric"] == GRAD_PRED].groupby("step")["value"] for r in group]
        lo = pd.concat([p.min() for p in pred], axis=1).mean(axis=1)
        hi = pd.concat([p.max() for p in pred], axis=1).mean(axis=1)
        ax_pred.fill_between(lo.index, lo.values, hi.values, color=color, alpha=0.35, lw=0, label=label)
    plot_metric(ax_beta, runs, BETA)
    ax_band.set(title=f"{what}: loss landscape (band over eta)", xlabel="step", ylabel="loss", yscale="log")
    ax_pred.set(title=f"{what}: gradient predictiveness", xlabel="step", ylabel="||g(w) - g(w - eta g)||", yscale="log")
    ax_beta.set(title=f"{what}: effective beta-smoothness", xlabel="step", yscale="log")


@figure("fig4", experiments=FIG4,
        caption="Fig. 4: along the gradient, the loss band (left), the gradient-predictiveness band (middle) and the "
                "effective beta (right), standard vs BN, for the CNN (top) and the DLN (bottom).")
def fig4(R: RunSet):
    """Loss landscape band, gradient predictiveness band, effective beta: CNN and DLN."""
    exps = FIG4
    scale = R.scale
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return empty("fig4", R, exps)
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.2 * len(rows)), squeeze=False)
    for (exp, runs), row in zip(rows, axes):
        _landscape_row(row, runs, "DLN" if exp.endswith("dln") else "CNN")
    return finish(fig, axes, f"Fig. 4: smoothness of the loss landscape ({scale})", R, exps)


@figure("fig5", experiments=FIG5,
        caption="Figs. 5, 12, 13: l1, l2, linf normalisations against standard and BN: CNN training accuracy, DLN "
                "training loss and the landscape measures.")
def fig5(R: RunSet):
    """l1/l2/linf normalisations vs standard and BN: training accuracy (CNN), training loss (DLN), landscape."""
    exps = FIG5
    scale, cnn, dln = R.scale, R.runs("fig5_cnn"), R.runs("fig5_dln")
    if not cnn and not dln:
        return empty("fig5", R, exps)
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    for row, runs, what, metric in ((axes[0], cnn, "CNN", TRAIN_ACC), (axes[1], dln, "DLN", TRAIN_LOSS)):
        if not runs:
            for ax in row:
                ax.set_visible(False)
            continue
        plot_metric(row[0], runs, metric, smooth=1)
        row[0].set(title=f"{what}: training {'accuracy' if metric == TRAIN_ACC else 'loss'}", xlabel="step",
                   yscale="linear" if metric == TRAIN_ACC else "log")
        _landscape_row(row[1:], runs, what)
    return finish(fig, axes, f"Fig. 5: lp normalisations ({scale})", R, exps)


@figure("browser", experiments=("browser",),
        caption="Seed 001's three figures (the browser reproduction): test accuracy at a low and a high lr, the "
                "moment change with noise, the loss change and the effective beta w.r.t. activations.")
def browser(R: RunSet):
    """Seed 001's three figures: test accuracy at low/high lr; moment change with noise; loss change and beta."""
    scale, runs = R.scale, R.runs("browser")
    if not runs:
        return empty("browser", R, ("browser",))
    lrs = sorted({r.lr for r in runs})
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, lr in zip(axes[0, :2], lrs):
        plot_metric(ax, [r for r in runs if r.lr == lr], TEST_ACC)
        ax.set(title=f"Test accuracy, lr {lr:g}", xlabel="step", ylabel="accuracy")
    low = [r for r in runs if r.lr == lrs[0]]
    plot_metric(axes[0, 2], low, TRAIN_ACC)
    axes[0, 2].set(title=f"Training accuracy, lr {lrs[0]:g}", xlabel="step")
    layers = layers_of(low, MOMENT_SHIFT_MEAN)
    plot_metric(axes[1, 0], low, MOMENT_SHIFT_MEAN, layer=layers[-1] if layers else None)
    axes[1, 0].set(title="Change of activation mean between measured steps", xlabel="step", yscale="log")
    plot_metric(axes[1, 1], [r for r in low if r.norm != "noisy_batch"], LOSS_CHANGE, smooth=10)
    axes[1, 1].set(title="Loss change between successive steps", xlabel="step", yscale="log")
    plot_metric(axes[1, 2], [r for r in low if r.norm != "noisy_batch"], BETA_ACT)
    axes[1, 2].set(title="\"Effective\" beta (w.r.t. activations)", xlabel="step", yscale="log")
    return finish(fig, axes, f"The browser reproduction ({scale})", R, ("browser",))


@figure("fig9", experiments=("fig4_dln",),
        caption="Fig. 9: the DLN's activation distributions at layers #1, #11, #24 over training, standard vs BN.")
def fig9(R: RunSet):
    """Fig. 9: the DLN's activation distributions over training at the paper's layers #1, #11, #24 (fig4_dln's
    activations), standard vs BN."""
    runs = R.runs("fig4_dln")
    layers = layers_of(runs, ACT_SAMPLE)
    picked = [r for r in (pick(runs, "none"), pick(runs, "batch")) if r is not None]
    if not layers or not picked:
        return empty("fig9", R, ("fig4_dln",))
    fig, axes = plt.subplots(len(layers), len(picked), figsize=(4.5 * len(picked), 2.6 * len(layers)), squeeze=False)
    for row, layer in zip(axes, layers):
        for ax, run in zip(row, picked):
            activation_histogram(ax, run, layer)
    return finish(fig, axes, f"Fig. 9: DLN activation distributions ({R.scale})", R, ("fig4_dln",))


@figure("fig11", experiments=FIG4,
        caption="Fig. 11: gradient predictiveness ||g(w) - g(w - eta g)|| against the step eta, standard vs BN, at a "
                "few steps of training.")
def fig11(R: RunSet):
    """Fig. 11: gradient predictiveness ||g(w) - g(w - eta g)|| against the step eta (the per-eta rows of the
    landscape measurement), standard vs BN, at the first, middle and last measured steps."""
    exps = FIG4
    rows = [(exp, runs) for exp in exps if (runs := R.runs(exp))]
    if not rows:
        return empty("fig11", R, exps)
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.2 * len(rows)), squeeze=False)
    for (exp, runs), row in zip(rows, axes):
        steps = sorted(set().union(*[set(r.metrics.loc[r.metrics["metric"] == GRAD_PRED, "step"]) for r in runs]))
        if not steps:
            for ax in row:
                ax.set_visible(False)
            continue
        for ax, step in zip(row, (steps[0], steps[len(steps) // 2], steps[-1])):
            for (norm, lr), group in sorted(by_norm_lr(runs).items(), key=lambda kv: norm_order(kv[0][0])):
                curves = []
                for r in group:
                    df = r.metrics[(r.metrics["metric"] == GRAD_PRED) & (r.metrics["step"] == step)]
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
    return finish(fig, axes, f"Fig. 11: gradient predictiveness against the step size ({R.scale})", R, exps)


@figure("dln_sweep", experiments=("dln_sweep",),
        caption="The DLN's loss scale: training loss, the oscillation cos(g_t-1, g_t) and cos(G, G') at layers 9 and "
                "17, for standard, BN and l1 at each lr of `make dln_sweep`.")
def dln_sweep(R: RunSet):
    """The DLN's loss scale (``make dln_sweep``): per lr, the training loss, the oscillation cos(g_t-1, g_t)
    and cos(G, G') at the paper's layers, standard / BN / l1. The sweep runs at paper scale: drawn at another
    scale, it reads the paper-scale runs under the same root."""
    runs = R.runs("dln_sweep")
    if not runs and R.scale != "paper":
        runs = RunSet(R.root, "paper").runs("dln_sweep")
    if not runs:
        return empty("dln_sweep", R, ("dln_sweep",))
    lrs = sorted({r.lr for r in runs}, reverse=True)
    fig, axes = plt.subplots(len(lrs), 3, figsize=(13, 2.8 * len(lrs)), squeeze=False)
    for lr, (ax_loss, ax_osc, ax_ics) in zip(lrs, axes):
        at = [r for r in runs if r.lr == lr]
        plot_metric(ax_loss, at, TRAIN_LOSS)
        plot_metric(ax_osc, at, GRAD_COS_PREV)
        for layer, ls in zip(layers_of(at, ICS_COS), ("-", "--", ":")):
            plot_metric(ax_ics, at, ICS_COS, layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
        ax_loss.set(title=f"lr {lr:g} (= ½·sum at {2 * lr:g}): training loss", xlabel="step", yscale="log")
        ax_osc.set(title=f"lr {lr:g}: cos(g_t-1, g_t), successive gradients", xlabel="step", ylim=(-1.05, 1.05))
        ax_ics.set(title=f"lr {lr:g}: cos(G, G')", xlabel="step", ylim=(-1.05, 1.05))
    return finish(fig, axes, "The DLN's loss scale: make dln_sweep (paper scale, summed loss)", R, ("dln_sweep",))
