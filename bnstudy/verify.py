"""Did I reproduce it? Your runs against the committed reference, claim by claim and metric by metric.

``make verify`` (``experiments/verify.py``) prints what this module decides. Each of your runs is paired
with the reference run of its config and seed (failing that, the one whose config differs least, and
the difference named as the likely cause), and each scalar metric (no unit, no eta; per layer
``ics_cos@5``) is compared by the rule that fits it (:data:`RULES`, :func:`rule_of`):

- **identical**: your environment and config are the reference run's (the lock, the CPU model or GPU, the
  determinism switches, the thread count): same seed, same bits.
- **final**: outcomes (accuracy, loss): the last value lies in the band of the reference's seeds of that
  config (min..max).
- **run**: everything measured on one batch at one step (landscape, beta, predictiveness, loss change,
  moment shifts and drifts, ICS, curvature, signal, Theorem 4.1). These are chaotic: one rounding
  difference in the first step moves the last value far (lambda_max at the edge of stability, the
  moments of a network that died). Their median over the later half of your run lies in the band of
  every value the reference's seeds of that config took over the later half of theirs.
- **status**: your run's status (completed, diverged) is one of the reference's seeds'.

Both bands are widened by ``max(abs_tol, rel_tol x |band|, max - min)``: where the reference's values agree
the band is tight; where they do not (a network whose escape from chance is itself chaotic, such as Fig. 2's
standard network with Algorithm 1's noise; lambda_min, which swings from -0.7 to -7 between measurements)
a rerun may land as far from them as they lie from each other (a few seeds, or one, see little of it).

A run whose config the reference has no run of (another lr, norm, loss, number of steps) differs, its
config change named as the cause, whatever its numbers. The claims are compared too (:func:`agree`):
your verdict against the reference's on your seeds; where they differ but one of the reference's seeds,
alone, gives your verdict, the claim is seed-sensitive and it is no failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from bnstudy.canonical import is_free
from bnstudy.measures.registry import node_defaults
from bnstudy.provenance import get
from bnstudy.records import flatten
from bnstudy.runs import METRICS, BadRunError, fmt_g, load_metrics
from bnstudy.train import LOOP_METRICS

ABS_TOL, REL_TOL = 0.02, 0.10
FINAL_METRICS = LOOP_METRICS
"""The outcomes (the training loop's own metrics), compared by their last value (rule ``final``); every other
metric by rule ``run``."""
LATER_HALF = 0.5
"""Rule ``run`` reads a metric's values at steps >= this fraction of its last logged step."""
RULES = {
    "identical": "your environment and config are the reference run's: the same bits",
    "final": "accuracy and loss: the last value in the band of the reference seeds' last values (min..max)",
    "run": "every other metric (one batch, one step: chaotic): the median over the later half of your run in the "
           "band of all values the reference's seeds took over the later half of theirs",
    "status": "completed or diverged, as one of the reference's seeds",
}
WIDENED = ("the bands of final and run are widened by max(abs_tol, rel_tol x |band|, the band's width): a rerun may "
           "land as far from the reference's values as they lie from each other")
# what must match for the identical rule (dotted paths into the environment block)
IDENTITY_FIELDS = ("lock.sha256", "lock.matches", "device.type", "device.cpu_model", "device.gpu",
                   "determinism.deterministic_algorithms", "determinism.tf32_matmul", "determinism.tf32_cudnn",
                   "determinism.flush_denormal", "determinism.cudnn_deterministic", "determinism.cudnn_benchmark",
                   "threads.intra_op")
# what else is worth naming when a run differs
CAUSE_FIELDS = ("code.commit", "code.diff_sha256", "python", "libraries.torch", "libraries.torchvision",
                "libraries.numpy", "libraries.pandas", "libraries.hydra-core", *IDENTITY_FIELDS)


def rule_of(metric: str) -> str:
    """``final`` for the outcomes (:data:`FINAL_METRICS`), ``run`` for every other metric."""
    return "final" if metric.split("@")[0] in FINAL_METRICS else "run"


@dataclass
class Side:
    """One run as the comparison sees it: its config, environment and metrics."""

    path: Path
    summary: dict
    _metrics: pd.DataFrame | None = field(default=None, repr=False)
    shown: tuple[str, ...] = ()  # config keys the label names besides norm, lr and seed (see swept_keys)

    @cached_property
    def config(self) -> dict:
        flat = {**node_defaults(), **flatten(self.summary.get("config") or {})}  # measurements added since: off
        # settings that change no number are left out (the environment's threads and device are compared instead)
        return {k: v for k, v in flat.items() if not is_free(k)}

    @property
    def env(self) -> dict | None:
        env = self.summary.get("environment")
        return env if isinstance(env, dict) else None

    @property
    def seed(self):
        return (self.summary.get("config") or {}).get("seed")

    @property
    def status(self) -> str:
        return str(self.summary.get("status"))

    @cached_property
    def recipe(self) -> str:
        """Its config without the seed: the runs of one reference band share it (norm and lr, and any other
        key the experiment sweeps: signal_cnn's model.depth)."""
        return repr(sorted((k, repr(v)) for k, v in self.config.items() if k != "seed"))

    @property
    def label(self) -> str:
        c = self.summary.get("config") or {}
        lr = get(c, "optim.lr")
        extra = "".join(f"{k.rsplit('.', 1)[-1]}={self.config.get(k)} " for k in self.shown)
        return f"{get(c, 'norm.name')} " + (f"lr={fmt_g(lr)} " if lr is not None else "") + extra + f"seed={self.seed}"

    @cached_property
    def series(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(steps, values) of each metric with no unit and no eta (per layer: ``ics_cos@5``), by step."""
        df = self._metrics if self._metrics is not None else load_metrics(self.path / METRICS)
        df = df[df["unit"].isna() & df["eta"].isna()]
        name = df["metric"].astype(str).where(df["layer"].isna(), df["metric"].astype(str) + "@"
                                              + df["layer"].astype("Int64").astype(str))
        df = df.assign(name=name).sort_values("step", kind="stable")
        return {str(k): (g["step"].to_numpy(float), g["value"].to_numpy(float)) for k, g in df.groupby("name")}

    def last(self, metric: str) -> float:
        steps, vals = self.series.get(metric, (np.array([]), np.array([])))
        return float(vals[-1]) if len(vals) else math.nan

    def later_half(self, metric: str) -> np.ndarray:
        """The finite values of ``metric`` at steps >= :data:`LATER_HALF` of its last logged step."""
        steps, vals = self.series.get(metric, (np.array([]), np.array([])))
        if not len(steps):
            return vals
        vals = vals[steps >= LATER_HALF * steps[-1]]
        return vals[np.isfinite(vals)]


def swept_keys(sides: list[Side]) -> tuple[str, ...]:
    """The config keys besides norm, lr and seed whose values differ among ``sides`` (signal_cnn's
    ``model.depth``): labels name them, so that each run's label is its own."""
    keys = {k for s in sides for k in s.config} - {"seed", "norm.name", "optim.lr"}
    return tuple(sorted(k for k in keys if len({repr(s.config.get(k)) for s in sides}) > 1))


def differing(a: dict | None, b: dict | None, fields) -> list[str]:
    return [f"{f} {get(a, f)!r} -> {get(b, f)!r}" for f in fields if get(a, f) != get(b, f)]


def config_changes(ref: Side, yours: Side) -> list[str]:
    a, b = ref.config, yours.config
    return [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k != "seed" and a.get(k) != b.get(k)]


def match(yours: Side, refs: list[Side]) -> Side:
    """The reference run of the same config and seed, or else the one whose config differs least (same job
    number breaking ties): a run with another lr is still compared, and the lr named as the cause."""
    same = [r for r in refs if r.recipe == yours.recipe and r.seed == yours.seed]
    if same:
        return same[0]
    return min(refs, key=lambda r: (len(config_changes(r, yours)) + (r.seed != yours.seed),
                                    r.path.name != yours.path.name))


@dataclass
class Value:
    """One compared value: the rule, the reference's value (its paired run's last) and band, yours, the verdict."""

    experiment: str
    run: str
    metric: str
    rule: str
    reference: object
    low: float
    high: float
    yours: object
    verdict: str  # identical, ok, DIFFERS

    @property
    def differs(self) -> bool:
        return self.verdict == "DIFFERS"


@dataclass
class RunResult:
    experiment: str
    yours: Side
    ref: Side
    values: list[Value]
    causes: list[str]

    @property
    def other_config(self) -> bool:
        """No reference run has this run's config (it was compared with the nearest)."""
        return self.ref.recipe != self.yours.recipe

    @property
    def differs(self) -> bool:
        return self.other_config or any(v.differs for v in self.values)

    def title(self) -> str:
        return f"{self.experiment} {self.yours.label} (vs reference {self.ref.label})"


def _in(y: float, lo: float, hi: float, abs_tol: float, rel_tol: float) -> bool:
    """``y`` in ``lo..hi`` widened by max(abs_tol, rel_tol x |band|, the band's width)."""
    tol = max(abs_tol, rel_tol * max(abs(lo), abs(hi)), hi - lo)
    return lo - tol <= y <= hi + tol


def compare_value(experiment: str, yours: Side, ref: Side, band_of: list[Side], metric: str, identical: bool,
                  abs_tol: float, rel_tol: float) -> Value:
    """``metric`` of ``yours`` against its paired reference run ``ref`` and the reference seeds ``band_of``."""
    r, y = ref.last(metric), yours.last(metric)
    if identical:
        same = r == y or (math.isnan(r) and math.isnan(y))
        return Value(experiment, yours.label, metric, "identical", r, r, r, y, "identical" if same else "DIFFERS")
    rule = rule_of(metric)
    if rule == "final":
        lasts = [s.last(metric) for s in band_of]
        finite = [v for v in lasts if math.isfinite(v)]
        if math.isfinite(y):
            ok = bool(finite) and _in(y, min(finite), max(finite), abs_tol, rel_tol)
        else:  # NaN or inf: as one of the reference's seeds ended
            ok = any(v == y or (math.isnan(v) and math.isnan(y)) for v in lasts)
        lo, hi = (min(finite), max(finite)) if finite else (math.nan, math.nan)
        return Value(experiment, yours.label, metric, rule, r, lo, hi, y, "ok" if ok else "DIFFERS")
    theirs = np.concatenate([s.later_half(metric) for s in band_of] or [np.array([])])
    mine = yours.later_half(metric)
    y = float(np.median(mine)) if len(mine) else math.nan
    lo, hi = (float(theirs.min()), float(theirs.max())) if len(theirs) else (math.nan, math.nan)
    ok = _in(y, lo, hi, abs_tol, rel_tol) if len(mine) and len(theirs) else not len(mine) and not len(theirs)
    return Value(experiment, yours.label, metric, rule, r, lo, hi, y, "ok" if ok else "DIFFERS")


def compare_run(experiment: str, yours: Side, refs: list[Side], abs_tol: float = ABS_TOL,
                rel_tol: float = REL_TOL) -> RunResult:
    """Every metric of ``yours`` and its status, each by its rule, and the likely causes if any differs."""
    ref = match(yours, refs)
    causes = config_changes(ref, yours)
    seed_changed = ref.seed != yours.seed
    identical = not (differing(ref.env, yours.env, IDENTITY_FIELDS) or causes or seed_changed) \
        and ref.env is not None and yours.env is not None
    band_of = [r for r in refs if r.recipe == ref.recipe]
    statuses = {ref.status} if identical else {r.status for r in band_of}
    same = yours.status in statuses
    values = [Value(experiment, yours.label, "status", "identical" if identical else "status", ref.status,
                    math.nan, math.nan, yours.status, "DIFFERS" if not same else "identical" if identical else "ok")]
    for metric in sorted(set(ref.series) | set(yours.series)):
        values.append(compare_value(experiment, yours, ref, band_of, metric, identical, abs_tol, rel_tol))
    why = []
    if causes or any(v.differs for v in values):
        why = causes + [f"seed {ref.seed} -> {yours.seed}"] * seed_changed + differing(ref.env, yours.env, CAUSE_FIELDS)
        if not why:
            why = ["nothing in the config or the environment differs from the reference run's"]
    return RunResult(experiment, yours, ref, values, why)


def missing_runs(yours: list[Side], refs: list[Side]) -> list[str]:
    """The reference's configs (at each of your seeds) that none of your runs has: never a match unseen."""
    seeds = sorted({y.seed for y in yours}, key=str)
    have = {(y.recipe, y.seed) for y in yours}
    out, seen = [], set()
    for r in refs:
        for seed in seeds:
            if (r.recipe, seed) not in have and (r.recipe, seed) not in seen:
                seen.add((r.recipe, seed))
                out.append(r.label.rsplit("seed=", 1)[0] + f"seed={seed}")
    return out


def metrics_of(side: Side, what: str) -> None:
    """Read ``side``'s metrics now; a CSV that is not the suite's raises BadRunError naming it."""
    try:
        side.series  # noqa: B018
    except BadRunError as e:
        raise BadRunError(f"{what} {e}") from None


# ------------------------------------------------------------------------------------------------ claims
@dataclass
class ClaimRow:
    id: str
    yours: str
    reference: str
    agreement: str  # same, seeds (as one of the reference's seeds), DIFFERS, not run
    note: str = ""

    @property
    def differs(self) -> bool:
        return self.agreement == "DIFFERS"


def agree(yours: list, reference: list, per_seed: dict | None) -> list[ClaimRow]:
    """Claim rows from ``check_claims`` results: yours, the reference's on your seeds, and (where they differ)
    the reference's on each of its seeds alone (``per_seed``: seed -> results, computed by the caller)."""
    ref = {c.id: c.verdict for c in reference}
    rows = []
    for c in yours:
        theirs = ref.get(c.id, "not run")
        if c.verdict == "not run" or theirs == "not run":
            rows.append(ClaimRow(c.id, c.verdict, theirs, "not run",
                                 "not compared: " + ("you did not run it" if c.verdict == "not run" else
                                                     "the reference did not run it")))
        elif c.verdict == theirs:
            rows.append(ClaimRow(c.id, c.verdict, theirs, "same"))
        else:
            seeds = [s for s, rs in (per_seed or {}).items() if {r.id: r.verdict for r in rs}.get(c.id) == c.verdict]
            rows.append(ClaimRow(c.id, c.verdict, theirs, "seeds" if seeds else "DIFFERS",
                                 f"the reference gives it on seed {', '.join(map(str, seeds))} alone" if seeds else ""))
    return rows
