"""Figures of ``make modern``: the paper's measurements on a residual network and a transformer.

- ``modern_resnet``: ResNet-20 standard / BN / Fixup / SkipInit: test accuracy at both lrs, the paper's loss band,
  gradient predictiveness and effective beta (lowest lr), gradient ICS, and lambda_max in train mode against 2/lr.
- ``modern_vit``: the same for the ViT with pre-LN / post-LN / pre-RMSNorm / no norm (plain SGD).
- ``modern_warmup``: the ViT under Adam, test accuracy with and without the lr warm-up, at each lr.
- ``modern_signal``: at initialisation against depth: the ResNet's RMS(branch) / RMS(skip) per residual unit
  (De & Smith) and |dL/dW| per conv; the ViT's |dL/dW| per unit (Xiong et al.) and effective rank.
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnstudy.figures.base import empty, figure, finish, plot_metric
from bnstudy.measures.curvature import HESS_LMAX
from bnstudy.measures.ics import ICS_COS
from bnstudy.measures.landscape import BETA, GRAD_PRED, LANDSCAPE_LOSS_MAX, LANDSCAPE_LOSS_MIN
from bnstudy.measures.signal import SIG_BRANCH, SIG_GRAD_NORM, SIG_RANK
from bnstudy.norms import norm_look
from bnstudy.runs import Run, RunSet, by_norm_lr, layers_of
from bnstudy.train import TEST_ACC

STYLES = ("-", "--", ":", "-.")


def _by_lr(ax, runs: list[Run], metric: str, layer: int | None = None) -> None:
    """One line per (norm, lr): solid at the lowest lr, dashed at the next."""
    for lr, ls in zip(sorted({r.lr for r in runs}), STYLES):
        plot_metric(ax, [r for r in runs if r.lr == lr], metric, layer=layer, label_lr=True, linestyle=ls)


def _band(ax, runs: list[Run], lo_metric: str, hi_metric: str | None) -> None:
    """The band min..max over eta per step (the mean over seeds), one per norm."""
    for (norm, _lr), group in by_norm_lr(runs).items():
        label, colour = norm_look(norm)
        if hi_metric is None:  # per-eta rows of one metric: its min and max over eta
            rows = [r.metrics[r.metrics["metric"] == lo_metric].groupby("step")["value"] for r in group]
            lo = pd.concat([g.min() for g in rows], axis=1).mean(axis=1)
            hi = pd.concat([g.max() for g in rows], axis=1).mean(axis=1)
        else:
            lo = pd.concat([r.step_mean(lo_metric) for r in group], axis=1).mean(axis=1)
            hi = pd.concat([r.step_mean(hi_metric) for r in group], axis=1).mean(axis=1)
        if len(lo):
            ax.fill_between(lo.index, lo.values, hi.values, color=colour, alpha=0.3, lw=0, label=label)


def _focus(ax, runs: list[Run], metrics: tuple[str, ...]) -> None:
    """Log-scale y-limits spanning the runs that did not diverge: an unnormalised network's loss of 1e14 at its first
    step (before it diverges) would flatten every other curve; its points stay drawn, off the top."""
    kept = [r for r in runs if r.status != "diverged"]
    values = pd.concat([r.metrics.loc[r.metrics["metric"].isin(metrics), "value"] for r in kept]) if kept else None
    if values is None or values.empty:
        return
    values = values[np.isfinite(values) & (values > 0)]
    if len(values):
        ax.set_ylim(values.min() / 2, values.max() * 2)


def _two_over_lr(ax, runs: list[Run]) -> None:
    for lr, ls in zip(sorted({r.lr for r in runs}), STYLES):
        ax.axhline(2 / lr, color="0.4", ls=ls, lw=1.0, label=f"2/lr = {2 / lr:g}")


def _training_figure(R: RunSet, name: str, what: str, title: str):
    """Test accuracy at both lrs, the paper's landscape band, predictiveness and beta, gradient ICS (lowest lr),
    and lambda_max against 2/lr: the runs of experiment ``what`` and of ``what``_curvature (figure ``name``)."""
    exps = (what, f"{what}_curvature")
    runs, curv = R.runs(exps[0]), R.runs(exps[1])
    if not runs and not curv:
        return empty(name, R, exps)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.8))
    lr0 = min(r.lr for r in runs) if runs else None
    low = [r for r in runs if r.lr == lr0]
    at = f", lr {lr0:g}" if runs else ""
    _by_lr(axes[0, 0], runs, TEST_ACC)
    axes[0, 0].set(title=f"test accuracy (solid lr {lr0:g}, dashed the higher lr)" if runs else "test accuracy",
                   xlabel="step", ylabel="accuracy")
    _band(axes[0, 1], low, LANDSCAPE_LOSS_MIN, LANDSCAPE_LOSS_MAX)
    axes[0, 1].set(title=f"loss landscape along the gradient (band over eta){at}", xlabel="step", ylabel="loss",
                   yscale="log")
    _band(axes[0, 2], low, GRAD_PRED, None)
    axes[0, 2].set(title="gradient predictiveness ||g(w) - g(w - eta g)||", xlabel="step", yscale="log")
    plot_metric(axes[1, 0], low, BETA)
    axes[1, 0].set(title=f"effective beta-smoothness{at}", xlabel="step", yscale="log")
    for ax, metrics in ((axes[0, 1], (LANDSCAPE_LOSS_MIN, LANDSCAPE_LOSS_MAX)), (axes[0, 2], (GRAD_PRED,)),
                        (axes[1, 0], (BETA,))):
        _focus(ax, low, metrics)
    for layer, ls in zip(layers_of(low, ICS_COS), STYLES):
        plot_metric(axes[1, 1], low, ICS_COS, layer=layer, linestyle=ls, label_suffix=f", layer #{layer}")
    axes[1, 1].set(title=f"gradient ICS: cos(G, G'){at}", xlabel="step", ylim=(-1.05, 1.05))
    if curv:
        _by_lr(axes[1, 2], curv, HESS_LMAX["train"])
        _two_over_lr(axes[1, 2], curv)
    axes[1, 2].set(title="lambda_max of the Hessian (train mode) against 2/lr", xlabel="step", yscale="log")
    _focus(axes[1, 2], curv, (HESS_LMAX["train"],))
    return finish(fig, axes, f"{title} ({R.scale})", R, exps)


for _name, _what, _title, _caption in (
        ("modern_resnet", "resnet", "ResNet-20: BatchNorm, none, Fixup, SkipInit",
         "ResNet-20 standard (no norm, He init), BN, Fixup and SkipInit: test accuracy at lr 0.1 (solid) and 0.5 "
         "(dashed), the paper's loss band, gradient predictiveness and effective beta, gradient ICS at an early and "
         "a late conv, and lambda_max in train mode against 2/lr."),
        ("modern_vit", "vit", "Vision transformer: pre-LN, post-LN, pre-RMSNorm, none, SkipInit",
         "The ViT with pre-LN, post-LN, pre-RMSNorm, no norm and SkipInit under plain SGD: test accuracy at lr 0.1 "
         "(solid) and 0.5 (dashed), the paper's loss band, gradient predictiveness and effective beta, gradient ICS "
         "at two MLP units, and lambda_max against 2/lr.")):
    figure(_name, experiments=(_what, f"{_what}_curvature"), group="modern", caption=_caption)(
        partial(_training_figure, name=_name, what=_what, title=_title))


@figure("modern_warmup", experiments=("vit_adam", "vit_warmup"), group="modern",
        caption="The ViT under Adam (Xiong et al.'s setting): test accuracy without (solid) and with (dashed) a linear "
                "lr warm-up over the first tenth of training, one panel per lr.")
def modern_warmup(R: RunSet):
    """Test accuracy with and without warm-up, per Adam lr."""
    cold, warm = R.runs("vit_adam"), R.runs("vit_warmup")
    lrs = sorted({r.lr for r in cold + warm})
    if not lrs:
        return empty("modern_warmup", R, ("vit_adam", "vit_warmup"))
    fig, axes = plt.subplots(1, len(lrs), figsize=(5.5 * len(lrs), 3.6), squeeze=False)
    for ax, lr in zip(axes[0], lrs):
        plot_metric(ax, [r for r in cold if r.lr == lr], TEST_ACC, label_suffix=", no warm-up")
        plot_metric(ax, [r for r in warm if r.lr == lr], TEST_ACC, linestyle="--", label_suffix=", warm-up")
        ax.set(title=f"Adam lr {lr:g}: test accuracy", xlabel="step", ylabel="accuracy")
    return finish(fig, axes, f"ViT under Adam: the lr warm-up ({R.scale})", R, ("vit_adam", "vit_warmup"))


def _at_init(ax, R: RunSet, runs: list[Run], metric: str) -> None:
    """``metric`` per layer at initialisation, one line per (norm, depth): the norm's colour, fainter for shallower
    networks (the deepest opaque, with markers)."""
    depths = sorted({R.config(r).get("model.depth") for r in runs}, key=lambda d: (d is None, d))
    alphas = dict(zip(depths, np.linspace(0.3, 1.0, max(len(depths), 1))))
    for norm in dict.fromkeys(r.norm for r in runs):
        for depth in depths:
            group = [r for r in runs if r.norm == norm and R.config(r).get("model.depth") == depth]
            table = pd.concat([r.at_init(metric) for r in group], axis=1) if group else pd.DataFrame()
            if table.empty:
                continue
            label, colour = norm_look(norm)
            deepest = depth == depths[-1]
            ax.plot(table.index, table.mean(axis=1), "-", color=colour, alpha=alphas[depth], marker="o" if deepest else None,
                    ms=2, lw=1.0, label=f"{label} (depth {', '.join(map(str, depths))}: fainter is shallower)"
                    if deepest and norm == runs[0].norm else label if deepest else None)


@figure("modern_signal", experiments=("resnet_signal", "vit_signal"), group="modern",
        caption="At initialisation, against depth (darker: deeper): the ResNet's RMS(branch) / RMS(skip) per residual "
                "unit with 1/sqrt(unit) dotted (De & Smith 2020) and |dL/dW| per conv; the ViT's |dL/dW| per residual "
                "unit (Xiong et al. 2020) and the effective rank of its outputs.")
def modern_signal(R: RunSet):
    """The ResNet's branch/skip ratio and |dL/dW|; the ViT's |dL/dW| and effective rank; at init, against depth."""
    res, vit = R.runs("resnet_signal"), R.runs("vit_signal")
    if not res and not vit:
        return empty("modern_signal", R, ("resnet_signal", "vit_signal"))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    _at_init(axes[0, 0], R, res, SIG_BRANCH)
    units = np.arange(1, max((len(r.at_init(SIG_BRANCH)) for r in res), default=0) + 1)
    if len(units):
        axes[0, 0].plot(units, 1 / np.sqrt(units), ":", color="0.4", lw=1.2, label="1/sqrt(unit)")
    axes[0, 0].set(title="ResNet at init: RMS(branch) / RMS(skip) per residual unit (Fixup, SkipInit: 0)",
                   xlabel="residual unit",
                   xscale="log", yscale="log")
    _at_init(axes[0, 1], R, res, SIG_GRAD_NORM)
    axes[0, 1].set(title="ResNet at init: |dL/dW| per conv", xlabel="layer", ylabel="|dL/dW|", yscale="log")
    _at_init(axes[1, 0], R, vit, SIG_GRAD_NORM)
    axes[1, 0].set(title="ViT at init: |dL/dW| of each unit's last linear", xlabel="block (1: patches)",
                   ylabel="|dL/dW|", yscale="log")
    _at_init(axes[1, 1], R, vit, SIG_RANK)
    axes[1, 1].set(title="ViT at init: effective rank of each block's outputs", xlabel="block", yscale="log")
    return finish(fig, axes, f"Residual networks and transformers at initialisation ({R.scale})", R,
                  ("resnet_signal", "vit_signal"))
