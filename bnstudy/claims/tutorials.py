"""What two BatchNorm tutorials say (T1a-T9), judged on the runs of ``make tutorials``.

The tutorials are "The Unstable World of Deep Learning" (:data:`UNSTABLE`) and a BatchNorm explainer
(:data:`EXPLAINER`); each claim quotes their words verbatim. Registered with ``group="tutorials"``: REPORT.md
shows them in their own section, only when their runs exist, and they do not count among the paper's claims.

Each check sees one seed's runs, as every claim does (``bnstudy.claims.verdicts.judge``, ``SEED_RULE``): its
best lr, its ranges and differences are that seed's. Runs are read through :class:`Results` (the runs each
``tut_*`` experiment means, ``bnstudy.runs``); :func:`table` gives one row per run with the settings the
tutorials sweep and its final values (a diverged run at chance accuracy). The two measurements that need no
training are CSVs under the results folder (``experiments.tutorials``): :data:`GRADIENTS_CSV` (one row per
norm, depth, seed and layer: judged per seed) and :data:`MEMORY_CSV` (seed-free: judged once).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from bnstudy.claims.base import BN, STANDARD, Claim, ClaimResult, Notes, Part, Results, claim
from bnstudy.claims.text import fmt_g
from bnstudy.train import TEST_ACC, TRAIN_ACC, TRAIN_EVAL_ACC

UNSTABLE = "The Unstable World of Deep Learning"
EXPLAINER = "the BatchNorm explainer"
GROUP = "tutorials"
SCALE = "quick"
"""The tutorials' experiments run at quick scale only (their conf sets ``scale: quick``)."""

GRADIENTS_CSV = Path("tut_gradients") / SCALE / "gradients.csv"
MEMORY_CSV = Path("tut_memory") / SCALE / "memory.csv"
"""Where ``python -m experiments.tutorials gradients|memory`` writes, under the results folder."""

SETTINGS = {"batch_size": ("train.batch_size", 128), "init_scale": ("model.init_scale", 1.0),
            "dropout": ("model.dropout", 0.0), "momentum": ("norm.momentum", 0.1),
            "position": ("norm.position", "before")}
"""The settings the tutorial experiments sweep: the column of :func:`table`, the config key, its default."""

ACC_MARGIN = 0.02
"""Every accuracy comparison (T3, T4a, T4b, T6a-c, T8): a difference counts when it is at least 2 points: the
sampling error of a difference of two to four test accuracies on 2,000 samples is 1.3-1.8 points (binomial, at
accuracy 0.8), so a smaller one is not told from noise."""

TARGET_FRAC = 0.9
"""T1a, T1b: "faster" = fewer steps to 90% of the pair's best final train accuracy (near the top of the climb,
where a speed-up is felt; never reaching it counts as infinitely many steps)."""

SPEEDUP = {"T1a": 5.0, "T1b": 10.0}
"""T1a "Often 5-10x faster", T1b "10-14x fewer training steps": the low end of each range."""

TRAINS_FRAC = 0.5
"""T2: an lr 'trains' when its final test accuracy is at least half-way from chance to the best accuracy the
same network reaches on the grid (so an lr at which it diverges or stalls does not)."""

LR_FACTOR = 10.0
"""T2: "Can use learning rates 10-100x larger": the low end."""

GRAD_FACTOR = 10.0
"""T5: gradients "vanish or explode" = change by an order of magnitude: BN's per-layer |dL/dW| at the deepest
depth within 10x of each other, and its median at least 1/10 of the shallowest depth's."""

DISCREPANCY = 0.01
"""T7: "different behavior" = BN's eval-mode and train-mode test accuracy differ by at least 1 point somewhere
(20 of the 2,000 test samples, net: both modes classify the same samples, so there is no sampling error
between two test sets)."""

OVERHEAD = 0.10
"""T9: a "memory overhead" = BN's model saves at least 10% more activation memory for the backward than the
standard one (deterministic bytes; the step time is shown, not judged: it is timed on a possibly shared CPU)."""


# ------------------------------------------------------------------------------------------ the runs
def table(R: Results, name: str) -> pd.DataFrame:
    """One row per run of experiment ``name`` in ``R`` (one seed in a check; every seed for the figure):
    norm, lr, seed, steps, the swept :data:`SETTINGS`, final test accuracy (eval mode), train accuracy on the
    training set (eval mode), test accuracy in train mode (``test_batchstat_acc``; NaN where not measured),
    final train accuracy (mean of the last 5% of the run's windows), the train-accuracy curve and the run."""
    rows = []
    for r in R.runs(name):
        cfg = R.runset.config(r)
        settings = {col: default if cfg.get(key) is None else cfg[key] for col, (key, default) in SETTINGS.items()}
        batchstat = r.final_eval("test_batchstat_acc") if not r.series("test_batchstat_acc").empty else math.nan
        rows.append({"norm": r.norm, "lr": r.lr, "seed": r.seed, "steps": r.steps, **settings,
                     TEST_ACC: r.final_eval(TEST_ACC), TRAIN_EVAL_ACC: r.final_eval(TRAIN_EVAL_ACC),
                     "batchstat_acc": batchstat, "final_train": r.final_train(TRAIN_ACC),
                     TRAIN_ACC: r.series(TRAIN_ACC).dropna(), "run": r})
    cols = ["norm", "lr", "seed", "steps", *SETTINGS, TEST_ACC, TRAIN_EVAL_ACC, "batchstat_acc", "final_train",
            TRAIN_ACC, "run"]
    return pd.DataFrame(rows, columns=cols)


def best_lr(df: pd.DataFrame, norm: str) -> Optional[float]:
    """The lr with the highest final test accuracy of ``norm`` (the mean over the table's seeds)."""
    g = df[df["norm"] == norm].groupby("lr")[TEST_ACC].mean()
    return float(g.idxmax()) if len(g) else None


def read_csv(R: Results, path: Path) -> Optional[pd.DataFrame]:
    """A tutorial CSV under the results folder (None when it is missing or unreadable)."""
    p = Path(R.root) / path
    if not p.is_file():
        return None
    try:
        return pd.read_csv(p)
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def csv_seeds(path: Path):
    """``seeds_of`` for a claim on a CSV with a seed column: the seeds it holds."""
    def seeds(R: Results) -> list:
        df = read_csv(R, path)
        return sorted(df["seed"].unique().tolist()) if df is not None and "seed" in df else []
    return seeds


def _need(R: Results, c: Claim, name: str, norms: tuple[str, ...] = (STANDARD, BN),
          column: str = "norm") -> tuple[pd.DataFrame, Notes, Optional[ClaimResult]]:
    """The experiment's table for this seed, its notes, and ``not run`` when a needed norm/setting is missing."""
    notes = Notes()
    notes.extend(R.notes(name))
    df = table(R, name)
    missing = sorted(set(norms) - set(df[column])) if len(df) else list(norms)
    if missing:
        return df, notes, c.not_run(f"{name} has no {', '.join(map(str, missing))} runs (make tutorials)", notes)
    for r in df["run"]:
        if r.diverged:
            notes.add(f"{r.label}: diverged at step {r.step} - counted at chance accuracy")
    return df, notes, None


def said(source: str, *quotes: str) -> str:
    """A tutorial's words as the report shows them: the source, then each verbatim quote."""
    return f"{source}: " + "; ".join(f"\"{q}\"" for q in quotes)


# ------------------------------------------------------------------------------------------ speed-up
def steps_to(curve: pd.Series, target: float) -> float:
    """The first logged step whose train-accuracy window reaches ``target`` (inf: never)."""
    hit = curve[curve >= target]
    return float(hit.index[0]) if len(hit) else math.inf


def speedup_part(label: str, std: pd.Series, bn: pd.Series, factor: float, judged: bool = True) -> Part:
    """Standard's steps / BN's steps to TARGET_FRAC of the pair's best final train accuracy (``std``, ``bn``:
    rows of :func:`table`). Standard never there: the ratio is a lower bound (its planned steps / BN's), which
    decides only when it reaches ``factor``; BN never there: 0."""
    target = TARGET_FRAC * max(std["final_train"], bn["final_train"])
    s, b = steps_to(std[TRAIN_ACC], target), steps_to(bn[TRAIN_ACC], target)
    if math.isinf(b):
        ratio, ok, note = (math.nan, None, "neither reaches it") if math.isinf(s) else (0.0, False, "BN never does")
    elif math.isinf(s):
        ratio = std["steps"] / b
        ok, note = (True if ratio >= factor else None), "standard never does: a lower bound"
    else:
        ratio, ok, note = s / b, s / b >= factor, ""
    values = [("standard / BN steps", ratio, "x"), ("BN steps", b, "step"), ("standard steps", s, "step"),
              ("BN's lr", bn["lr"], "g"), ("standard's lr", std["lr"], "g")]
    return Part(label, values, ok if judged else None, f">= {factor:g}x", f"< {factor:g}x", info=not judged, note=note)


def _speedup(R: Results, c: Claim) -> ClaimResult:
    factor = SPEEDUP[c.id]
    df, notes, missing = _need(R, c, "tut_lr")
    if missing:
        return missing
    lr_s, lr_b = best_lr(df, STANDARD), best_lr(df, BN)
    row = lambda norm, lr: df[(df["norm"] == norm) & (df["lr"] == lr)].iloc[0]
    parts = [speedup_part("each at its best lr", row(STANDARD, lr_s), row(BN, lr_b), factor)]
    if ((df["norm"] == BN) & (df["lr"] == lr_s)).any():
        parts.append(speedup_part("both at standard's best lr (shown)", row(STANDARD, lr_s), row(BN, lr_s), factor,
                                  judged=False))
    return c.result(parts, notes)


SPEEDUP_RULE = ("tut_lr, standard and BN each at its own best lr (highest final test accuracy of the seed's runs): "
                f"the standard network's steps to {TARGET_FRAC:.0%} of the pair's best final train accuracy / BN's "
                ">= {factor:g} (the low end of the range). Standard never reaching it gives a lower bound that "
                "decides only when it reaches the factor (else left out); BN never reaching it: 0")


@claim("T1a", "BN trains 5-10x faster", figure="tutorials", experiments=("tut_lr",), group=GROUP,
       paper=said(UNSTABLE, "Faster convergence: Often 5-10x faster training"),
       rule=SPEEDUP_RULE.format(factor=SPEEDUP["T1a"]))
def claim_t1a(R: Results, c: Claim) -> ClaimResult:
    return _speedup(R, c)


@claim("T1b", "BN needs 10-14x fewer training steps", figure="tutorials", experiments=("tut_lr",), group=GROUP,
       paper=f"{EXPLAINER}, its table's row \"Faster training\": \"10-14x fewer training steps\"",
       rule=SPEEDUP_RULE.format(factor=SPEEDUP["T1b"]))
def claim_t1b(R: Results, c: Claim) -> ClaimResult:
    return _speedup(R, c)


# ---------------------------------------------------------------------------------- learning rates
def largest_training_lr(acc_by_lr: pd.Series) -> float:
    """The largest lr whose final test accuracy is at least TRAINS_FRAC of the way from chance to the best."""
    best = acc_by_lr.max()
    return float(acc_by_lr[acc_by_lr >= 0.1 + TRAINS_FRAC * (best - 0.1)].index.max())


@claim("T2", "BN can use 10-100x larger learning rates", figure="tutorials", experiments=("tut_lr",), group=GROUP,
       paper=said(UNSTABLE, "Higher learning rates: Can use learning rates 10-100x larger"),
       rule=f"tut_lr's grid (half-decades 0.003-10): the largest lr that trains (final test accuracy at least "
            f"half-way from chance to the same network's best), BN's / standard's >= {LR_FACTOR:g} (the low end). "
            f"Below it on the grid, it does not hold only when BN fails at its next lr and that lr is at most "
            f"{LR_FACTOR:g}x standard's (the true ratio is then below {LR_FACTOR:g}); otherwise the grid cannot "
            f"tell (left out)")
def claim_t2(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_lr")
    if missing:
        return missing
    grid = sorted(df["lr"].unique())
    top = {n: largest_training_lr(df[df["norm"] == n].set_index("lr")[TEST_ACC].sort_index()) for n in (STANDARD, BN)}
    ratio = top[BN] / top[STANDARD]
    above = [lr for lr in grid if lr > top[BN]]
    reach = (above[0] if above else math.inf) / top[STANDARD]  # the ratio had BN trained at its next grid lr
    ok = True if ratio >= LR_FACTOR * (1 - 1e-9) else (False if reach <= LR_FACTOR * (1 + 1e-9) else None)
    note = "" if ok is not None else ("BN trains at the grid's top" if not above else
                                      f"BN fails at {fmt_g(above[0])}, over {LR_FACTOR:g}x standard's")
    return c.result([Part("largest lr that trains", [("BN / standard", ratio, "x"), ("BN", top[BN], "g"),
                                                     ("standard", top[STANDARD], "g")],
                          ok, f">= {LR_FACTOR:g}x", f"< {LR_FACTOR:g}x", note=note)], notes)


# --------------------------------------------------------------------------------------------- init
@claim("T3", "BN makes training less sensitive to the initialisation", figure="tutorials", experiments=("tut_init",),
       group=GROUP,
       paper=said(UNSTABLE, "Reduced sensitivity to initialization: Less dependent on careful weight initialization")
       + f"; {EXPLAINER}, its table's row \"Reduced initialization sensitivity\": \"Less dependent on weight "
         "initialization\"",
       rule=f"tut_init (every weight x 0.1, 0.3, 1, 3, 10 of its Glorot init): the range (best - worst) of the final "
            f"test accuracy over the scales, standard's minus BN's >= {ACC_MARGIN:g} ({100 * ACC_MARGIN:.0f} "
            f"points: beyond the sampling error of a difference of accuracies on 2,000 samples)")
def claim_t3(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_init")
    if missing:
        return missing
    rng = {n: float(np.ptp(df[df["norm"] == n][TEST_ACC].to_numpy())) for n in (STANDARD, BN)}
    d = rng[STANDARD] - rng[BN]
    by_scale = lambda n: [(f"x{fmt_g(k)}", float(v)) for k, v in
                          df[df["norm"] == n].set_index("init_scale")[TEST_ACC].sort_index().items()]
    return c.result([Part("range of test accuracy over the init scales", {"standard": rng[STANDARD], "BN": rng[BN],
                                                                         "narrower with BN by": d},
                          d >= ACC_MARGIN - 1e-12, "narrower with BN", "not narrower",
                          kinds={"narrower with BN by": "pt"}),
                     Part("test accuracy by scale, standard", by_scale(STANDARD), info=True),
                     Part("BN", by_scale(BN), info=True)], notes)


# --------------------------------------------------------------------------------------- regularisation
def _cell(df: pd.DataFrame, norm: str, dropout: float) -> Optional[pd.Series]:
    sel = df[(df["norm"] == norm) & np.isclose(df["dropout"].astype(float), dropout)]
    return sel.iloc[0] if len(sel) else None


REG_SETUP = "tut_reg (1,000 training samples, 30 epochs: a regime that overfits)"


@claim("T4a", "BN's batch noise regularises: a smaller train-test gap", figure="tutorials", experiments=("tut_reg",),
       group=GROUP, paper=said(UNSTABLE, "Implicit regularization: Slight noise from batch statistics acts as "
                                         "regularization"),
       rule=f"{REG_SETUP}, no dropout: the gap (train accuracy on the 1,000 samples - test accuracy), standard's "
            f"minus BN's >= {ACC_MARGIN:g} ({100 * ACC_MARGIN:.0f} points: beyond the sampling error of a difference "
            f"of two gaps)")
def claim_t4a(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_reg")
    cells = {n: _cell(df, n, 0.0) for n in (STANDARD, BN)} if not missing else {}
    if missing or any(v is None for v in cells.values()):
        return missing or c.not_run("tut_reg has no standard and BN runs without dropout", notes)
    gap = {n: float(r[TRAIN_EVAL_ACC] - r[TEST_ACC]) for n, r in cells.items()}
    d = gap[STANDARD] - gap[BN]
    return c.result([Part("train - test gap", {"standard": gap[STANDARD], "BN": gap[BN], "smaller with BN by": d},
                          d >= ACC_MARGIN - 1e-12, "smaller with BN", "not smaller",
                          kinds={"smaller with BN by": "pt"}),
                     Part("test accuracy", {"standard": float(cells[STANDARD][TEST_ACC]),
                                            "BN": float(cells[BN][TEST_ACC])}, info=True)], notes)


@claim("T4b", "BN reduces the need for dropout", figure="tutorials", experiments=("tut_reg",), group=GROUP,
       paper=f"{EXPLAINER}, its table's row \"Regularization effect\": \"Reduces need for dropout\"",
       rule=f"{REG_SETUP}: the need for dropout = the test-accuracy gain from dropout 0.3 (0 where it loses). Only "
            f"testable where dropout helps one of the networks by >= {ACC_MARGIN:g}; then the standard network's "
            f"need minus BN's >= {ACC_MARGIN:g} ({100 * ACC_MARGIN:.0f} points: beyond the sampling error). Dropout "
            f"helping neither network: the experiment cannot test the sentence (left out)")
def claim_t4b(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_reg")
    cells = {(n, d): _cell(df, n, d) for n in (STANDARD, BN) for d in (0.0, 0.3)} if not missing else {}
    if missing or any(v is None for v in cells.values()):
        return missing or c.not_run("tut_reg needs standard and BN with and without dropout", notes)
    gain = {n: float(cells[(n, 0.3)][TEST_ACC] - cells[(n, 0.0)][TEST_ACC]) for n in (STANDARD, BN)}
    testable = max(gain.values()) >= ACC_MARGIN - 1e-12
    d = max(gain[STANDARD], 0.0) - max(gain[BN], 0.0)
    return c.result([Part("dropout's test-accuracy gain", {"standard": gain[STANDARD], "BN": gain[BN],
                                                           "standard's need minus BN's": d},
                          (d >= ACC_MARGIN - 1e-12) if testable else None, "less need with BN", "not less",
                          kinds={k: "pt" for k in ("standard", "BN", "standard's need minus BN's")},
                          note="" if testable else "dropout helps neither network: cannot test")], notes)


# ----------------------------------------------------------------------------------- gradients at init
def gradient_stability(grads: pd.DataFrame) -> pd.DataFrame:
    """Per (norm, depth, seed): ``spread`` = max/min of the hidden layers' gradient norms, and their ``median``
    (the head, layer = depth, is not normalised)."""
    hidden = grads[grads["layer"] < grads["depth"]]
    g = hidden.groupby(["norm", "depth", "seed"])["value"]
    return pd.DataFrame({"spread": g.max() / g.min(), "median": g.median()}).reset_index()


@claim("T5", "BN keeps gradients from vanishing or exploding", figure="tutorials", experiments=("tut_gradients",),
       group=GROUP, seeds_of=csv_seeds(GRADIENTS_CSV),
       paper=said(UNSTABLE, "Gradient stability: Helps prevent vanishing/exploding gradients") + f"; {EXPLAINER}: "
             "\"Gradient flow: Normalization prevents gradients from vanishing or exploding\"",
       rule=f"per-layer |dL/dW| at initialisation of a deep ReLU net (width 64, Glorot), depths 10, 20, 40: at the "
            f"deepest, BN's hidden layers within {GRAD_FACTOR:g}x of each other (none explodes or vanishes against "
            f"another), and BN's median at least 1/{GRAD_FACTOR:g} of its median at the shallowest depth (none "
            f"vanishes with depth): an order of magnitude, the size of change 'vanish' and 'explode' name")
def claim_t5(R: Results, c: Claim) -> ClaimResult:
    grads = read_csv(R, GRADIENTS_CSV)
    if grads is None or not {STANDARD, BN} <= set(grads.get("norm", [])):
        return c.not_run(f"no gradients at init ({GRADIENTS_CSV}: make tutorials)")
    if R.seed is not None:
        grads = grads[grads["seed"] == R.seed]
    st = gradient_stability(grads)
    lo, hi = st["depth"].min(), st["depth"].max()
    at = lambda n, d, col: float(st[(st["norm"] == n) & (st["depth"] == d)][col].iloc[0])
    spread = {n: at(n, hi, "spread") for n in (STANDARD, BN)}
    scale = {n: at(n, hi, "median") / at(n, lo, "median") for n in (STANDARD, BN)}
    per_layer = spread[BN] ** (1 / max(hi - 2, 1))
    return c.result([
        Part(f"depth {hi}: max/min over the hidden layers", {"BN": spread[BN], "standard": spread[STANDARD],
                                                             "BN per layer": per_layer},
             spread[BN] <= GRAD_FACTOR, f"within {GRAD_FACTOR:g}x", f"beyond {GRAD_FACTOR:g}x",
             kinds={"BN": "x", "standard": "x", "BN per layer": "g"}),
        Part(f"median at depth {hi} / at depth {lo}", {"BN": scale[BN], "standard": scale[STANDARD]},
             scale[BN] >= 1 / GRAD_FACTOR, "kept", "vanishes", kinds={"BN": "g", "standard": "g"}),
    ])


# -------------------------------------------------------------------------------------------- batch size
BATCH_SETUP = ("tut_batch (batch 2-128, the same 12,800 samples seen, lr 0.1 x batch/128), final test accuracy "
               "(eval mode)")


def by_batch(df: pd.DataFrame, norm: str) -> pd.Series:
    return df[df["norm"] == norm].set_index("batch_size")[TEST_ACC].sort_index()


@claim("T6a", "BN's accuracy degrades at very small batches", figure="tutorials", experiments=("tut_batch",),
       group=GROUP,
       paper=said(UNSTABLE, "Batch size dependency: Performance can degrade with very small batches")
       + f"; {EXPLAINER}: \"Batch size dependency: Small batches give noisy statistics\"",
       rule=f"{BATCH_SETUP}: BN's accuracy at the largest batch minus at the smallest >= {ACC_MARGIN:g}, and that "
            f"drop minus the standard network's (what the lr scaling does without BN) >= {ACC_MARGIN:g} "
            f"({100 * ACC_MARGIN:.0f} points: beyond the sampling error)")
def claim_t6a(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_batch")
    if missing:
        return missing
    b, s = by_batch(df, BN), by_batch(df, STANDARD)
    if len(b) < 2 or len(s) < 2:
        return c.not_run("tut_batch needs standard and BN at two batch sizes", notes)
    drop_b, drop_s = float(b.iloc[-1] - b.iloc[0]), float(s.iloc[-1] - s.iloc[0])
    span = f"batch {fmt_g(b.index[-1])} minus {fmt_g(b.index[0])}"
    return c.result([
        Part(f"BN's drop, {span}", {"BN": drop_b}, drop_b >= ACC_MARGIN - 1e-12, "degrades", "does not degrade",
             kinds={"BN": "pt"}),
        Part("BN's drop beyond the standard network's", {"BN minus standard": drop_b - drop_s, "standard": drop_s},
             drop_b - drop_s >= ACC_MARGIN - 1e-12, "beyond", "not beyond", kinds={"BN minus standard": "pt",
                                                                                   "standard": "pt"})], notes)


@claim("T6b", "GroupNorm is less sensitive to the batch size than BN", figure="tutorials",
       experiments=("tut_batch",), group=GROUP,
       paper=f"{UNSTABLE}, under \"Group Normalization\": \"Less sensitive to batch size\"",
       rule=f"{BATCH_SETUP}: the range (best - worst) over the batch sizes, BN's minus GroupNorm's >= {ACC_MARGIN:g}. "
            f"Only testable where BN's own range is >= {ACC_MARGIN:g} (a BN that does not depend on the batch size "
            f"leaves nothing to be less sensitive than: left out)")
def claim_t6b(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_batch", (BN, "group"))
    if missing:
        return missing
    rng = {n: float(np.ptp(by_batch(df, n).to_numpy())) for n in (BN, "group")}
    testable = rng[BN] >= ACC_MARGIN - 1e-12
    d = rng[BN] - rng["group"]
    return c.result([Part("range over the batch sizes", {"BN": rng[BN], "GroupNorm": rng["group"],
                                                         "narrower with GroupNorm by": d},
                          (d >= ACC_MARGIN - 1e-12) if testable else None, "less sensitive", "not less sensitive",
                          kinds={"narrower with GroupNorm by": "pt"},
                          note="" if testable else "BN itself does not depend on the batch size: cannot test")], notes)


@claim("T6c", "LayerNorm is better than BN at small batches", figure="tutorials", experiments=("tut_batch",),
       group=GROUP,
       paper=f"{UNSTABLE}, under \"Layer Normalization\": \"Better for variable-length sequences and small batches\"",
       rule=f"{BATCH_SETUP}: at the smallest batch, LayerNorm's accuracy minus BN's >= {ACC_MARGIN:g} "
            f"({100 * ACC_MARGIN:.0f} points: beyond the sampling error); GroupNorm's shown")
def claim_t6c(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_batch", (BN, "layer"))
    if missing:
        return missing
    b, ln = by_batch(df, BN), by_batch(df, "layer")
    small = min(b.index[0], ln.index[0])
    if small not in b.index or small not in ln.index:
        return c.not_run(f"tut_batch has no BN and LayerNorm runs at batch {fmt_g(small)}", notes)
    d = float(ln[small] - b[small])
    values = {"LayerNorm minus BN": d, "LayerNorm": float(ln[small]), "BN": float(b[small])}
    gn = by_batch(df, "group")
    if small in gn.index:
        values["GroupNorm minus BN"] = float(gn[small] - b[small])
    return c.result([Part(f"test accuracy at batch {fmt_g(small)}", values, d >= ACC_MARGIN - 1e-12, "better",
                          "not better", kinds={"LayerNorm minus BN": "pt", "GroupNorm minus BN": "pt"})], notes)


# ------------------------------------------------------------------------------------ train/inference
@claim("T7", "BN behaves differently in training and at inference", figure="tutorials",
       experiments=("tut_batch", "tut_momentum"), group=GROUP,
       paper=said(UNSTABLE, "Training/inference discrepancy: Different behavior during training vs. inference")
       + f"; {EXPLAINER}: \"Train/test discrepancy: Different behavior in train vs. inference modes\"",
       rule=f"BN's test accuracy in eval mode (running statistics) minus in train mode (each test batch of the "
            f"training batch size normalised by its own statistics), at every batch size (tut_batch) and running-"
            f"statistics momentum (tut_momentum): the largest |difference| >= {DISCREPANCY:g} (1 point: 20 of the "
            f"2,000 test samples, net; both modes classify the same samples)")
def claim_t7(R: Results, c: Claim) -> ClaimResult:
    notes = Notes()
    frames = []
    for name in c.experiments:
        notes.extend(R.notes(name))
        frames.append(table(R, name).assign(experiment=name))
    df = pd.concat(frames, ignore_index=True)
    df = df[(df["norm"] == BN) & df["batchstat_acc"].notna()].reset_index(drop=True)
    if df.empty:
        return c.not_run("no BN runs with train-mode test accuracy (make tutorials)", notes)
    diff = (df[TEST_ACC] - df["batchstat_acc"]).astype(float).abs()
    i = int(diff.idxmax())
    return c.result([Part("largest |eval - train mode|", [("|difference|", float(diff[i]), "pt"),
                                                           ("settings", float(len(df)), "g")],
                          float(diff[i]) >= DISCREPANCY - 1e-12, "different", "not different",
                          note=f"at batch {fmt_g(df.loc[i, 'batch_size'])}, momentum {fmt_g(df.loc[i, 'momentum'])}")],
                    notes)


# -------------------------------------------------------------------------------------------- placement
@claim("T8", "The usual placement, BN before the activation, trains at least as well as after it",
       figure="tutorials", experiments=("tut_placement",), group=GROUP,
       paper=said(EXPLAINER, "Typically applied after the linear transformation but before the activation function.")
       + f"; {UNSTABLE}: \"Linear/Conv → BatchNorm → Activation\"",
       rule=f"the sentence describes common practice, not performance: the runs check only that the practice costs "
            f"nothing. tut_placement (BN before vs after the ReLU, lr 0.1 and 1): at every lr, before's final test "
            f"accuracy is at least after's minus {ACC_MARGIN:g} (at least as good, within the {100 * ACC_MARGIN:.0f}-"
            f"point sampling error)")
def claim_t8(R: Results, c: Claim) -> ClaimResult:
    df, notes, missing = _need(R, c, "tut_placement", ("before", "after"), column="position")
    if missing:
        return missing
    parts = []
    for lr in sorted(df["lr"].unique()):
        at = df[df["lr"] == lr].set_index("position")[TEST_ACC]
        if not {"before", "after"} <= set(at.index):
            continue
        d = float(at["before"] - at["after"])
        parts.append(Part(f"lr {fmt_g(lr)}", {"before minus after": d, "before": float(at["before"]),
                                              "after": float(at["after"])},
                          d >= -ACC_MARGIN - 1e-12, "at least as good", "worse", kinds={"before minus after": "pt"}))
    return c.result(parts, notes)


# ----------------------------------------------------------------------------------------------- memory
@claim("T9", "BN adds parameters and activation memory", figure="tutorials", experiments=("tut_memory",),
       group=GROUP, paper=said(UNSTABLE, "Memory overhead: Additional parameters and computations"),
       rule=f"the small CNN and the quick VGG-11 at batch 128: BN / standard - 1 of the bytes autograd saves for the "
            f"backward >= {OVERHEAD:.0%} in each (an overhead a user notices); parameters and step time shown, not "
            f"judged (the step time is timed on a possibly shared CPU)")
def claim_t9(R: Results, c: Claim) -> ClaimResult:
    mem = read_csv(R, MEMORY_CSV)
    if mem is None or not {STANDARD, BN} <= set(mem.get("norm", [])):
        return c.not_run(f"no memory measurement ({MEMORY_CSV}: make tutorials)")
    v = mem.pivot_table(index=["model", "metric"], columns="norm", values="value")
    parts = []
    for model in v.index.get_level_values("model").unique():
        ratio = lambda m: float(v.loc[(model, m), BN] / v.loc[(model, m), STANDARD]) if (model, m) in v.index \
            else math.nan
        added = float(v.loc[(model, "params"), BN] - v.loc[(model, "params"), STANDARD])
        parts.append(Part(f"{model}: saved activations", [("BN / standard", ratio("saved_bytes"), "x")],
                          ratio("saved_bytes") >= (1 + OVERHEAD) * (1 - 1e-12), "overhead", "no overhead"))
        parts.append(Part(f"{model}: parameters and step time", [("parameters added", added, "g"),
                                                                  ("step time BN / standard", ratio("step_ms"), "x")],
                          info=True))
    return c.result(parts)
