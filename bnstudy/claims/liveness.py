"""Liveness: which logged steps of a run count in a claim, and a run's final values.

A dead run (stuck at chance, or a loss that stays flat) or a diverged one has a trivially flat landscape
(beta ~ 0) and would "win" every smoothness claim, so the curve claims compare *live* measurements only.
A measurement at step ``s`` belongs to the training-log window that contains step ``s`` (the first
``train_loss``/``train_acc`` row logged at a step > ``s``); it is live when that window's loss is finite
and below :data:`DIVERGENCE_LOSS`, and

* classifiers: the window's train accuracy (rolling median over :data:`LIVE_SMOOTH_WINDOWS` windows) is
  above chance + :data:`CHANCE_MARGIN`;
* regression (the DLN): the loss is still decreasing: over the next :data:`DLN_WINDOW_FRAC` of the run
  (the previous one at the end of the run) it falls by at least :data:`DLN_MIN_DECREASE` (relative).

Measurements after a run stopped (diverged) have no window and are not live. Final values
(:meth:`LiveRun.final_train`, :meth:`LiveRun.final_eval`) count a diverged run at chance accuracy (its weights
are gone: the last logged test accuracy would be stale) and at an infinite loss.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cached_property
from typing import Iterable

import numpy as np
import pandas as pd

from bnstudy import runs
from bnstudy.train import TRAIN_ACC, TRAIN_LOSS

CHANCE_MARGIN = 0.05
"""A classifier is 'at chance' when its accuracy is <= 1/num_classes + this (0.15 for 10 classes).
Used for liveness (claims 4-5), for 'BN trains at the high lr' (2) and 'noise stops training' (3b)."""

LIVE_SMOOTH_WINDOWS = 5
"""Liveness of a classifier uses the centred rolling median of its train accuracy over this many logged
windows, so that one noisy window above the threshold does not make a dead run live (nor one below it a
live run dead)."""

NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10}
"""Classes per dataset (chance = 1/num_classes); a dataset not listed with train_acc rows counts 10."""

DEFAULT_NUM_CLASSES = 10
"""num_classes for a classification dataset missing from :data:`NUM_CLASSES`."""

DIVERGENCE_LOSS = 1e6
"""A logged training loss above this (or NaN/inf) marks the window diverged (as ``train.divergence_loss``)."""

FINAL_WINDOW_FRAC = 0.05
"""'Final' train accuracy/loss = mean of the logged values in the last 5% of the run's planned steps
(at least the last logged value): the per-window train metrics are noisy. Final test accuracy = last eval."""

DLN_WINDOW_FRAC = 0.1
"""DLN liveness: the look-ahead (look-back at the end of the run) span, as a fraction of planned steps."""

DLN_MIN_DECREASE = 1e-3
"""DLN liveness: the minimum relative loss decrease over :data:`DLN_WINDOW_FRAC` of the run for 'decreasing'."""


class LiveRun(runs.Run):
    """A finished run as the claims see it: classifier or regression, chance level, final values and the
    steps where it is live. Its identity and metrics are the run reader's (``bnstudy.runs.Run``)."""

    @classmethod
    def of(cls, run: runs.Run) -> "LiveRun":
        return cls(**{f.name: getattr(run, f.name) for f in dataclasses.fields(run)})

    @cached_property
    def classify(self) -> bool:
        return bool((self.metrics["metric"] == TRAIN_ACC).any()) or self.data in NUM_CLASSES

    @property
    def chance(self) -> float:
        return 1.0 / NUM_CLASSES.get(self.data, DEFAULT_NUM_CLASSES)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    # -------------------------------------------------------------------------------- final values
    def final_train(self, metric: str) -> float:
        """Mean of ``metric`` over the last :data:`FINAL_WINDOW_FRAC` of the planned steps; a diverged
        run: chance (accuracy) or inf (loss)."""
        if self.diverged:
            return self.chance if metric.endswith("acc") else math.inf
        s = self.series(metric).dropna()
        if s.empty:
            return math.nan
        last = s.index.max()
        return float(s[s.index > last - max(self.steps * FINAL_WINDOW_FRAC, 1e-9)].mean())

    def final_eval(self, metric: str) -> float:
        """The last logged value of an eval ``metric`` (test_acc, ...); a diverged run: chance or inf."""
        if self.diverged:
            return self.chance if metric.endswith("acc") else math.inf
        s = self.series(metric).dropna()
        return float(s.iloc[-1]) if len(s) else math.nan

    # ------------------------------------------------------------------------------------ liveness
    @cached_property
    def _windows(self) -> pd.DataFrame:
        """The training-log windows: step (end, exclusive), loss, acc, live, reason."""
        loss = self.series(TRAIN_LOSS)
        out = pd.DataFrame({"loss": loss})
        if self.classify:
            out["acc"] = self.series(TRAIN_ACC).reindex(out.index)
        reason = pd.Series("", index=out.index, dtype=object)
        bad = ~np.isfinite(out["loss"].to_numpy()) | (out["loss"].abs() > DIVERGENCE_LOSS).to_numpy()
        reason[bad] = f"loss not finite or > {DIVERGENCE_LOSS:g} (diverged)"
        if self.classify:
            thr = self.chance + CHANCE_MARGIN
            smooth = out["acc"].rolling(LIVE_SMOOTH_WINDOWS, center=True, min_periods=1).median()
            stuck = ~bad & ~(smooth > thr).to_numpy()
            reason[stuck] = f"train acc at chance (<= {thr:.2f})"
        else:
            reason[~bad & ~self._decreasing(out["loss"])] = (
                f"loss flat (< {DLN_MIN_DECREASE:.1%} decrease over {DLN_WINDOW_FRAC:.0%} of the run)")
        out["reason"] = reason
        out["live"] = reason == ""
        return out

    def _decreasing(self, loss: pd.Series) -> np.ndarray:
        steps, vals = loss.index.to_numpy(dtype=float), loss.to_numpy(dtype=float)
        span = max(self.steps * DLN_WINDOW_FRAC, 1.0)
        ok = np.zeros(len(vals), dtype=bool)
        for i, (s, v) in enumerate(zip(steps, vals)):
            ahead = (steps > s) & (steps <= s + span)
            if steps.max() >= s + span and ahead.any():  # a full window ahead
                ok[i] = np.nanmin(vals[ahead]) < v * (1 - DLN_MIN_DECREASE)
            else:  # the end of the run: the window behind
                behind = (steps < s) & (steps >= s - span)
                if not behind.any():
                    ok[i] = bool(np.isfinite(v))  # too short a run to tell
                else:
                    ok[i] = v < np.nanmax(vals[behind]) * (1 - DLN_MIN_DECREASE)
        return ok

    def live_at(self, steps: Iterable[float]) -> tuple[np.ndarray, list[str]]:
        """Whether the run is live at each measured step, and why not (empty reason where live)."""
        steps = np.asarray(list(steps), dtype=float)
        w = self._windows
        if w.empty:
            return np.zeros(len(steps), bool), ["no training log"] * len(steps)
        ends = w.index.to_numpy(dtype=float)
        idx = np.searchsorted(ends, steps, side="right")  # first window end > s: the window holding step s
        live, reasons = np.zeros(len(steps), bool), []
        for i, j in enumerate(idx):
            if j >= len(ends):
                reasons.append("after the run stopped" + (" (diverged)" if self.diverged else ""))
                continue
            live[i] = bool(w["live"].iloc[j])
            reasons.append(w["reason"].iloc[j])
        return live, reasons

