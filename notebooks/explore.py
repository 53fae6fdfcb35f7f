# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Explore a results folder
#
# Load every run under a results folder, see its config and status, compare runs in a few lines and
# re-draw a paper figure with bnstudy's own plotting functions (`bnstudy.figures`), all from the CSVs the
# runs wrote; nothing here trains, except when the folder holds no runs at all: then the notebook runs a
# tiny sweep into a temporary folder first, so it always has something to show (this is what the test
# suite does, `tests/test_notebooks.py`).
#
# Set the parameters in the next cell: `RESULTS` is any folder that `python -m experiments.train` wrote
# into (`results/` by default; a relative path is taken from the repository root).

# %% tags=["parameters"]
RESULTS = "results"  # a results folder (relative: from the repository root)
FIGURE = None  # a key of bnstudy.figures.FIGURES (quick, fig1 ... fig5, browser); None: the first with runs
SCALE = None  # quick | paper; None: the scale most runs have
DEMO_DIR = None  # where the tiny sweep goes if RESULTS holds no runs (None: a new temporary folder)

# %%
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from omegaconf import OmegaConf

import bnstudy.records
from bnstudy.figures import FIGURES
from bnstudy.runs import BadRunError, RunSet, find_runs, load_metrics

# %matplotlib inline

REPO = Path(bnstudy.records.__file__).resolve().parents[1]  # the repository (bnstudy is installed editable)
pd.set_option("display.max_columns", 30, "display.width", 200, "display.precision", 4)

# %% [markdown]
# ## Load the runs
#
# `find_runs` gives one row per run dir (a folder holding `summary.json` / `metrics.csv`): its path,
# status, identity (name, scale, model, norm, data, lr, seed), its `final_*` metrics and every config
# setting as a dotted column. If the folder holds no runs, a tiny sweep (the DLN of Fig. 4, 20 steps,
# standard vs BatchNorm, two seeds each, a few seconds on a CPU) fills a temporary folder, written
# exactly as any sweep is: `python -m experiments.train -m ... hydra.sweep.dir=<tmp>/<name>/<scale>/<stamp>`.

# %%
root = Path(RESULTS).expanduser()
root = root if root.is_absolute() else REPO / root
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # incomplete runs are listed below with their status
    runs = find_runs(root, include_incomplete=True)

if runs.empty:
    root = Path(DEMO_DIR) if DEMO_DIR else Path(tempfile.mkdtemp(prefix="bnstudy-explore-"))
    root.mkdir(parents=True, exist_ok=True)
    demo = [
        "experiment=fig4_dln", "scale=quick", "norm=none,batch", "seed=0,1", "train.steps=20", "train.batch_size=100",
        "data.num_train=200", "data.num_test=100", "train.log_every=2", "train.eval_every=10",
        "train.measure_every=10", "progress=false", f"hydra.sweep.dir={root}/fig4_dln/quick/demo",
    ]
    print(f"no runs under {RESULTS!r}: running a tiny sweep into {root}")
    proc = subprocess.run([sys.executable, "-m", "experiments.train", "-m", *demo], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"the demo sweep failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    runs = find_runs(root, include_incomplete=True)

runs["run"] = [str(Path(p).relative_to(root)) for p in runs["path"]]
print(f"{len(runs)} runs under {root}")
runs["status"].value_counts()

# %% [markdown]
# ## Runs, their status and their configs
#
# The identity columns, then only the settings that differ between runs (every other setting is the same
# for all of them), then the command-line overrides each run was started with (`.hydra/overrides.yaml`).
# A run that is `interrupted` or `failed` resumes from its checkpoint when rerun with
# `hydra.run.dir=<its dir>` (README).

# %%
identity = ["run", "status", "step", "steps", "name", "scale", "model", "norm", "data", "lr", "seed"]
runs[identity]

# %%
settings = [c for c in runs.columns if "." in c or c in ("name", "scale", "seed", "resume", "progress")]
varying = [c for c in settings if runs[c].astype(str).nunique() > 1]
print(f"{len(settings)} settings, {len(varying)} differ between runs")
runs[["run", *varying]]


# %%
def overrides(path: str) -> str:
    file = Path(path) / ".hydra" / "overrides.yaml"
    return " ".join(OmegaConf.load(file)) if file.exists() else ""


runs["overrides"] = runs["path"].map(overrides)
runs[["run", "overrides"]]

# %% [markdown]
# ## Compare runs
#
# Final metrics as one wide table (`pivot_table`, mean over seeds), then a metric's curve per run from the
# long-format `metrics.csv` (one observation per row: step, metric, layer, unit, eta, value).

# %%
finals = [c for c in runs.columns if c.startswith("final_")]
done = runs[runs["status"].isin(["completed", "diverged"])]
done.pivot_table(index=["name", "norm"], columns="lr", values=finals, aggfunc="mean")

# %%
# the spread over seeds of one final metric
key = next(c for c in ("final_test_acc", "final_test_loss", "final_train_loss") if c in finals)
done.pivot_table(index=["name", "norm", "lr"], values=key, aggfunc=["mean", "min", "max", "count"])

# %%
def metrics_of(r) -> pd.DataFrame | None:
    """One run's metrics (``load_metrics``: checked, duplicate rows resolved); None for a corrupt CSV."""
    try:
        return load_metrics(Path(r.path) / "metrics.csv").assign(experiment=r.name, run=f"{r.norm} lr={r.lr:g}", seed=r.seed)
    except BadRunError as e:
        print(f"skipped {r.path}: {e}")  # one line naming it; the other runs go on
        return None


metric = "train_loss"
curves = pd.concat([m for r in done.itertuples() if (m := metrics_of(r)) is not None])


def distinct_colours(n: int) -> list:
    """n colours that differ: tab10 up to 10 runs, tab20 up to 20, then evenly spaced along turbo."""
    if n <= 10:
        return list(plt.cm.tab10.colors[:n])
    if n <= 20:
        return list(plt.cm.tab20.colors[:n])
    return [plt.cm.turbo(i / (n - 1)) for i in range(n)]


# one panel per experiment (each has its own schedule and steps); each run's curve on its own steps
chosen = curves[curves["metric"] == metric]
experiments_ = sorted(chosen["experiment"].unique())
fig, axes = plt.subplots(len(experiments_), 1, figsize=(7, 2.8 * len(experiments_)), squeeze=False)
for ax, name in zip(axes[:, 0], experiments_):
    one = chosen[chosen["experiment"] == name]
    labels = sorted(one["run"].unique())
    for colour, label in zip(distinct_colours(len(labels)), labels):
        mean = one[one["run"] == label].groupby("step")["value"].mean()  # over seeds
        ax.plot(mean.index, mean.values, color=colour, label=label)
    ax.set(title=f"{name}: {metric} (mean over seeds)", xlabel="step", yscale="log")
    ax.legend(fontsize=7, ncol=2)
fig.tight_layout()

# %%
# every metric the runs recorded, and at how many steps
curves.groupby(["metric"])["step"].nunique().rename("steps recorded").to_frame().T

# %% [markdown]
# ## Re-draw a figure
#
# `bnstudy.figures.FIGURES` maps a figure name to its entry: its drawing function (`draw`) and the experiments
# it reads (`experiments`); the function reads the runs each experiment means (`bnstudy.runs.RunSet`: printed
# below) and returns a matplotlib Figure whose footer names the sweeps, seeds and steps it shows: the same code
# as `python -m experiments.figures`. `RunSet(root, scale, sweeps=[...])` reads named sweep folders instead.

# %%
names = set(done["name"])
available = [name for name, entry in FIGURES.items() if names & set(entry.experiments)]
print("figures with runs here:", available)
figure = FIGURE or (available[0] if available else None)
scale = SCALE or (done["scale"].mode().iat[0] if len(done) else "quick")
if figure is None:
    print("no run here belongs to an experiment of bnstudy.figures.FIGURES")
else:
    entry = FIGURES[figure]
    run_set = RunSet(root, scale)
    for e in entry.experiments:
        print(run_set.experiment(e).describe())
    fig = entry.draw(run_set)
    assert fig.axes, f"{figure} drew nothing"
    display(fig)
    plt.close(fig)
