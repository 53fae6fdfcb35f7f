"""What every figure shares: the ``FIGURES`` registry and its ``@figure`` decorator, the plotting helpers, the
footer naming a figure's runs, and ``draw``/``save``, which write a figure with its runs beside it.

A figure is a function ``fn(R: RunSet) -> matplotlib Figure`` registered with
``@figure(name, experiments=..., caption=...)``: it reads ``R.runs(<experiment>)`` for each experiment it names
(the runs each experiment means: ``bnstudy.runs.SELECTION_RULE``), draws them with :func:`plot_metric` and
the other helpers here, and ends with ``return finish(fig, axes, title, R, experiments)``, which writes the
footer: one line per experiment saying which sweeps, how many runs and seeds and how many steps it shows.
With no run of any of its experiments it returns ``empty(name, R, experiments)``, which :func:`draw` never
writes. Several seeds of one (norm, lr) are drawn as a mean with a min-max band; a diverged run ends in an
x. Norm colours and labels come from the norm registry (``bnstudy.norms.norm_look``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bnstudy.measures.activations import ACT_SAMPLE
from bnstudy.norms import NORMS, norm_look
from bnstudy.paths import FIGURE_RUNS_SUFFIX
from bnstudy.records import write_atomic, write_text_atomic
from bnstudy.registry import Registry
from bnstudy.runs import Run, RunSet, by_norm_lr

plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 9,
                     "axes.grid": True, "grid.alpha": 0.3, "legend.fontsize": 7, "legend.framealpha": 0.7})

GROUPS = ("paper", "beyond", "tutorials", "modern")
"""Where REPORT.md shows a figure: among the figures (the paper's and those beyond it), or in the tutorials' or the
modern networks' own section."""


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Figure:
    """A registered figure: its drawing function, the experiments whose runs it reads, what it shows (REPORT.md's
    caption; the runs it was drawn from are added there) and its group (:data:`GROUPS`). Called with a results
    folder (or a RunSet) and a scale, it draws them."""

    name: str
    draw: Callable[[RunSet], "plt.Figure"]
    experiments: tuple[str, ...]
    caption: str
    group: str = "paper"

    def __call__(self, runs: RunSet | str | Path, scale: Optional[str] = None, sweeps: Sequence[str | Path] = ()):
        return self.draw(as_runset(runs, scale, sweeps))


FIGURES: Registry[Figure] = Registry("figure")
"""Every figure by name (each module of ``bnstudy.figures`` registers its own: the package imports them all)."""


def figure(name: str, *, experiments: Sequence[str], caption: str = "", group: str = "paper"):
    """Decorator: register ``fn(R: RunSet) -> Figure`` as figure ``name``, drawn from the runs of
    ``experiments``; ``caption``: what it shows, one or two sentences (default: its name); ``group``: where
    REPORT.md shows it (:data:`GROUPS`)."""
    if group not in GROUPS:
        raise ValueError(f"figure {name!r}: group={group!r}; valid: {', '.join(GROUPS)}")
    if not experiments:
        raise ValueError(f"figure {name!r}: name the experiments whose runs it draws")

    def register(fn: Callable[[RunSet], "plt.Figure"]):
        FIGURES.add(name, Figure(name, fn, tuple(experiments), caption or f"{name}.", group))
        return fn
    return register


def as_runset(runs: RunSet | str | Path, scale: Optional[str] = None, sweeps: Sequence[str | Path] = ()) -> RunSet:
    """``runs`` itself if it is a RunSet, else the RunSet of ``scale`` (default quick) under the root ``runs``."""
    return runs if isinstance(runs, RunSet) else RunSet(runs, scale or "quick", sweeps)


def load_experiment(root: RunSet | str | Path, experiment: str, scale: str = "quick",
                    sweeps: Sequence[str | Path] = ()) -> list[Run]:
    """The runs ``experiment`` means at ``scale`` (``bnstudy.runs.SELECTION_RULE``)."""
    return as_runset(root, scale, sweeps).runs(experiment)


# ------------------------------------------------------------------------------------------ drawing
def norm_order(norm: str) -> int:
    """A norm's place in the legends: its registration order."""
    names = list(NORMS)
    return names.index(norm) if norm in names else len(names)


def plot_metric(ax, runs: list[Run], metric: str, layer: int | None = None, label_lr: bool = False,
                linestyle: str = "-", label_suffix: str = "", smooth: int = 1, **select) -> None:
    """Mean over seeds with a min-max band, one line per (norm, lr); diverged runs end in an x."""
    for (norm, lr), group in sorted(by_norm_lr(runs).items(), key=lambda kv: (norm_order(kv[0][0]), kv[0][1])):
        if select and not all(getattr(group[0], k) == v for k, v in select.items()):
            continue
        table = pd.concat([r.step_mean(metric, layer) for r in group], axis=1)
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
                s = r.step_mean(metric, layer).dropna()
                if len(s):
                    ax.plot(s.index[-1], s.values[-1], "x", color=color, ms=7, mew=2)


def activation_histogram(ax, run: Run, layer: int, bins: int = 60) -> None:
    """Histograms of one unit's values over training (the paper's distribution plots), as a heat map."""
    df = run.metrics[(run.metrics["metric"] == ACT_SAMPLE) & (run.metrics["layer"] == layer)]
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


def pick(runs: list[Run], norm: str, lr: float | None = None) -> Run | None:
    """One run of ``norm`` (at ``lr``): the lowest lr, then the first seed."""
    matches = [r for r in runs if r.norm == norm and (lr is None or np.isclose(r.lr, lr))]
    return min(matches, key=lambda r: (r.lr, r.seed)) if matches else None


def spread(layers: list[int], k: int = 3) -> list[int]:
    """At most ``k`` layers: the first, the middle and the last."""
    return layers if len(layers) <= k else [layers[0], layers[len(layers) // 2], layers[-1]]




# ------------------------------------------------------------------------------------------ footer
def footer(R: RunSet, experiments: Iterable[str]) -> str:
    """Which runs a figure shows: one line per experiment (sweeps, runs, seeds, steps)."""
    return "\n".join(R.experiment(e).describe() for e in experiments)


def write_footer(fig, text: str) -> None:
    fig.text(0.01, 0.0, text, ha="left", va="top", fontsize=6, color="0.35")


def finish(fig, axes, title: str, R: RunSet, experiments: Iterable[str]):
    """Legends where there are labels, the title, a tight layout and the footer naming the runs."""
    for ax in np.ravel(axes):
        if ax.get_visible() and ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    write_footer(fig, footer(R, experiments))
    return fig


def empty(name: str, R: RunSet | None = None, experiments: Iterable[str] = ()):
    """The figure of an experiment with no finished runs: it says so (``is_empty`` tells it apart)."""
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, f"{name}: no finished runs", ha="center", va="center")
    ax.set_axis_off()
    if R is not None:
        write_footer(fig, footer(R, experiments))
    return mark_empty(fig)


def mark_empty(fig):
    """Mark a figure drawn without a single run (``draw(skipped=...)`` then writes no file of it)."""
    fig.bnstudy_no_runs = True
    return fig


def is_empty(fig) -> bool:
    return bool(getattr(fig, "bnstudy_no_runs", False))


# ------------------------------------------------------------------------------------------ files
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
    their experiments) into ``out_dir/<name>_<scale>.{png,pdf}`` (default ``<root>/figures``), each with its
    footer beside it (``<name>_<scale>.runs.txt``: REPORT.md's caption quotes it). With a ``skipped`` list, a
    figure none of whose experiments has a finished run is not written: its name is appended there instead."""
    R = as_runset(root, scale, sweeps)
    out_dir = Path(out_dir) if out_dir is not None else R.root / "figures"
    written = []
    for name in names:
        if name not in FIGURES:
            raise ValueError(FIGURES.unknown(name))
        fig = FIGURES[name].draw(R)
        if skipped is not None and is_empty(fig):
            plt.close(fig)
            skipped.append(name)
            continue
        written += save(fig, out_dir, f"{name}_{R.scale}")
        write_text_atomic(out_dir / f"{name}_{R.scale}{FIGURE_RUNS_SUFFIX}", footer(R, FIGURES[name].experiments) + "\n")
    return written
