"""The figure of ``make tutorials``: one panel per tutorial claim, from the runs and CSVs alone (registered with
``@figure``, shown in REPORT.md's tutorials section).

Panels read the runs as the claims do (``bnstudy.claims.tutorials.table``: the runs each ``tut_*`` experiment
means, with their final values): speed-up curves at each net's best lr, accuracy against lr and against init
scale, the train-test gap with and without dropout, gradient norms at init by layer, accuracy against batch size
per norm, eval- minus train-mode accuracy, placement, and BN's memory/time overhead. Several seeds are drawn as
their mean (the claims judge each seed alone).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnstudy.claims import tutorials as T
from bnstudy.claims.base import BN, STANDARD, Results
from bnstudy.figures.base import figure, footer, mark_empty, write_footer
from bnstudy.norms import norm_look
from bnstudy.runs import RunSet
from bnstudy.train import TEST_ACC, TRAIN_ACC, TRAIN_EVAL_ACC

CHANCE = 0.1  # 10 classes
EXPERIMENTS = ("tut_lr", "tut_init", "tut_reg", "tut_batch", "tut_momentum", "tut_placement")


def _label(norm: str) -> str:
    return norm_look(norm)[0]


def _colour(norm: str) -> str:
    return norm_look(norm)[1]


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}: not run", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _speed(ax, df: pd.DataFrame) -> None:
    for norm in (STANDARD, BN):
        lr = T.best_lr(df, norm)
        if lr is None:
            continue
        curves = [r for r in df[(df["norm"] == norm) & (df["lr"] == lr)][TRAIN_ACC]]
        mean = pd.concat(curves, axis=1).mean(axis=1)
        ax.plot(mean.index, mean.to_numpy(), color=_colour(norm), label=f"{_label(norm)}, lr {lr:g}")
    ax.set(title="Speed-up: train acc at each net's best lr", xlabel="step", ylabel="train accuracy (window)")


def _by(ax, df: pd.DataFrame, x: str, title: str, xlabel: str, norms=(STANDARD, BN)) -> None:
    for norm in norms:
        g = df[df["norm"] == norm].groupby(x)[TEST_ACC].mean()
        if len(g):
            ax.plot(g.index.astype(float), g.to_numpy(), "o-", color=_colour(norm), label=_label(norm))
    ax.set(title=title, xlabel=xlabel, ylabel="final test accuracy", xscale="log")
    ax.axhline(CHANCE, color="grey", lw=0.8, ls=":")


def _gap(ax, df: pd.DataFrame) -> None:
    labels, train, test, colours = [], [], [], []
    for norm in (STANDARD, BN):
        for d in sorted(df["dropout"].astype(float).unique()):
            sel = df[(df["norm"] == norm) & np.isclose(df["dropout"].astype(float), d)]
            labels.append(f"{'BN' if norm == BN else 'std'}{' + drop ' + format(d, 'g') if d else ''}")
            train.append(sel[TRAIN_EVAL_ACC].mean())
            test.append(sel[TEST_ACC].mean())
            colours.append(_colour(norm))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, train, 0.4, color=colours, alpha=0.45, label="train (1,000 samples)")
    ax.bar(x + 0.2, test, 0.4, color=colours, label="test")
    for i, (a, b) in enumerate(zip(train, test)):
        ax.text(i, max(a, b) + 0.01, f"gap {a - b:.3f}", ha="center", fontsize=7)
    low = min([0.5, *(v - 0.05 for v in train + test if v == v)])  # a diverged bar (chance) stays visible
    ax.set(title="Regularisation: train vs test accuracy", xticks=x, ylim=(max(low, 0.0), 1.08), ylabel="accuracy")
    ax.set_xticklabels(labels, fontsize=7)


def _gradients(ax, grads: pd.DataFrame) -> None:
    g = grads.groupby(["norm", "depth", "layer"])["value"].mean().reset_index()
    depths = sorted(g["depth"].unique())
    for norm in (STANDARD, BN):
        for i, depth in enumerate(depths):
            sel = g[(g["norm"] == norm) & (g["depth"] == depth)]
            ax.plot(sel["layer"], sel["value"], color=_colour(norm), alpha=0.35 + 0.65 * (i + 1) / len(depths),
                    label=f"{_label(norm)}, depth {depth}")
    ax.set(title="Gradients at init: ||dL/dW|| by layer", xlabel="layer (1 = input side)", yscale="log")


def _discrepancy(ax, df: pd.DataFrame) -> None:
    df = df[(df["norm"] == BN) & df["batchstat_acc"].notna()]
    for m, sel in df.groupby("momentum"):
        g = (sel[TEST_ACC] - sel["batchstat_acc"]).groupby(sel["batch_size"]).mean()
        ax.plot(g.index.astype(float), 100 * g.to_numpy(), "o-", label=f"BN momentum {m:g}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(title="Train/inference: eval - train mode test acc", xlabel="batch size", ylabel="points", xscale="log")


def _placement(ax, df: pd.DataFrame) -> None:
    piv = df.pivot_table(index="lr", columns="position", values=TEST_ACC)
    x = np.arange(len(piv))
    for k, (pos, alpha) in enumerate((("before", 1.0), ("after", 0.5))):
        if pos in piv:
            ax.bar(x + (k - 0.5) * 0.4, piv[pos], 0.4, color=_colour(BN), alpha=alpha, label=f"BN {pos} ReLU")
    low = min([0.5, *(v - 0.05 for v in piv.to_numpy().ravel() if v == v)])  # a diverged bar (chance) stays visible
    ax.set(title="Placement: BN before vs after the ReLU", xticks=x, ylim=(max(low, 0.0), 0.95),
           ylabel="final test accuracy")
    ax.axhline(0.1, color="grey", lw=0.8, ls=":")  # chance
    ax.set_xticklabels([f"lr {lr:g}" for lr in piv.index])


def _memory(ax, mem: pd.DataFrame) -> None:
    v = mem.pivot_table(index=["model", "metric"], columns="norm", values="value")
    over = 100 * (v[BN] / v[STANDARD] - 1)
    metrics = [m for m in ("params", "saved_bytes", "step_ms", "peak_bytes") if m in over.index.get_level_values(1)]
    models = list(over.index.get_level_values(0).unique())
    x = np.arange(len(metrics))
    for k, model in enumerate(models):
        ax.bar(x + (k - (len(models) - 1) / 2) * 0.35, [over[(model, m)] for m in metrics], 0.35, label=model)
    ax.set(title="Memory/time overhead of BN", xticks=x, ylabel="BN / standard - 1 (%)")
    ax.set_xticklabels(metrics, fontsize=7)


@figure("tutorials", experiments=EXPERIMENTS, group="tutorials",
        caption="What two BatchNorm tutorials say, measured on the small CNN: one panel per claim (T1a-T9).")
def tutorials(runs: RunSet):
    """The nine panels; a panel whose experiment has not run says so. Always the quick-scale runs."""
    R = Results(runs if runs.scale == T.SCALE else RunSet(runs.root, T.SCALE))
    grads = T.read_csv(R, T.GRADIENTS_CSV)
    mem = T.read_csv(R, T.MEMORY_CSV)
    fig, axes = plt.subplots(3, 3, figsize=(13, 11))
    a = axes.ravel()
    tables = {name: T.table(R, name) for name in EXPERIMENTS}
    panels = [
        ("tut_lr", lambda ax, d: _speed(ax, d)),
        ("tut_lr", lambda ax, d: _by(ax, d, "lr", "Learning rate sweep", "learning rate")),
        ("tut_init", lambda ax, d: _by(ax, d, "init_scale", "Init scale sweep (x Glorot)", "weight scale")),
        ("tut_reg", _gap),
        ("tut_batch", lambda ax, d: _by(ax, d, "batch_size", "Batch size (same samples, lr x batch/128)",
                                        "batch size", norms=(STANDARD, BN, "group", "layer"))),
        ("tut_placement", _placement),
    ]
    for ax, (name, draw) in zip(a[[0, 1, 2, 3, 5, 7]], panels):
        d = tables[name]
        draw(ax, d) if len(d) else _empty(ax, name)
    _gradients(a[4], grads) if grads is not None else _empty(a[4], "tut_gradients")
    both = pd.concat([tables["tut_batch"], tables["tut_momentum"]], ignore_index=True)
    _discrepancy(a[6], both) if len(both) else _empty(a[6], "tut_batch")
    _memory(a[8], mem) if mem is not None else _empty(a[8], "tut_memory")
    for ax in a:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    seeds = len({s for d in tables.values() for s in d["seed"]})
    fig.suptitle(f"What the tutorials say, measured (small CNN, Fashion-MNIST; {seeds} seed(s))")
    fig.tight_layout()
    write_footer(fig, footer(R.runset, tuple(tables)))
    if not any(len(d) for d in tables.values()) and grads is None and mem is None:
        mark_empty(fig)
    return fig
