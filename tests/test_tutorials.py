"""The tutorials' claims: model options, the train-mode eval, the at-init measurements, and each claim of
``bnstudy.claims.tutorials`` pinned on small fake runs (holds, does not hold, its border, seeds that split, and
the cases the experiment cannot decide) with their numbers."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

import bnstudy.claims.tutorials as T
from bnstudy.claims import FAILS, HOLDS, INCONCLUSIVE, MIXED, NOT_RUN, check_claims, check_group
from bnstudy.config import ConfigError, DLNConf, NormConf, SmallCNNConf
from bnstudy.measures.at_init import layer_gradient_norms, saved_activation_bytes
from bnstudy.models import build_model
from bnstudy.records import read_metrics
from bnstudy.report import render_report
from bnstudy.runs import RunSet
from bnstudy.train import evaluate_batch_stats

from conftest import sweeping, write_fake_run

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ model options
def _cnn(norm="batch", **kw):
    torch.manual_seed(0)
    return build_model(SmallCNNConf(**kw), NormConf(name=norm), (1, 28, 28), 10)


def test_defaults_build_the_same_model_as_before():
    m = _cnn()
    assert all(b.dropout is None for b in m.blocks)  # no module: same state dict, same RNG draws
    assert not any(isinstance(x, nn.Dropout) for x in m.modules())
    assert list(m.state_dict()) == list(_cnn(dropout=0.0, init_scale=1.0).state_dict())


def test_init_scale_multiplies_every_weight_and_nothing_else():
    a, b = _cnn(), _cnn(init_scale=2.5)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        factor = 2.5 if name.endswith("layer.weight") or name == "head.1.weight" else 1.0
        torch.testing.assert_close(pb, pa * factor, rtol=0, atol=0)


def test_dropout_after_every_block_in_training_only():
    m = _cnn(dropout=0.5)
    assert [b.dropout.p for b in m.blocks] == [0.5, 0.5]
    x = torch.randn(4, 1, 28, 28)
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    torch.manual_seed(1)
    a = m(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, m(x))


@pytest.mark.parametrize("kw, message", [({"dropout": 1.0}, "model.dropout=1.0 must lie in [0, 1)"),
                                         ({"init_scale": 0.0}, "model.init_scale=0.0 must be > 0")])
def test_bad_options_name_the_fix(kw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        _cnn(**kw)


def test_batch_size_sweep_scales_steps_and_lr():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=tut_batch", "train.batch_size=4", "norm=batch"])
    o = OmegaConf.to_object(cfg)
    assert (o.train.steps, o.train.log_every, o.train.eval_every) == (3200, 320, 3200)
    assert o.optim.lr == pytest.approx(0.1 * 4 / 128) and o.train.eval_batch_stats


# ----------------------------------------------------------------------------- train-mode evaluation
def test_evaluate_batch_stats_is_train_mode_per_batch_and_leaves_no_trace():
    m = _cnn(dropout=0.5)
    with torch.no_grad():  # move the running statistics away from their init
        for blk in m.blocks:
            blk.norm.running_mean.fill_(0.3)
            blk.norm.running_var.fill_(2.0)
    x, y = torch.randn(24, 1, 28, 28), torch.randint(0, 10, (24,))
    state = copy.deepcopy(m.state_dict())
    rng = torch.get_rng_state()
    loss, acc = evaluate_batch_stats(m, x, y, 8)
    # by hand: BN on each batch of 8 with its own statistics, dropout off
    ref = copy.deepcopy(m).eval()
    for blk in ref.blocks:
        blk.norm.train()
    with torch.no_grad():
        out = torch.cat([ref(x[i:i + 8]) for i in range(0, 24, 8)])
    assert acc.item() == pytest.approx((out.argmax(1) == y).double().mean().item())
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-6)
    m.eval()
    with torch.no_grad():
        assert not torch.allclose(m(x), out)  # eval mode (running statistics) differs
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), rng)


# -------------------------------------------------------------------------------- at-init measurements
def test_saved_activation_bytes_of_a_linear_layer_is_its_input():
    layer = nn.Linear(16, 4, bias=False)
    x = torch.randn(32, 16, requires_grad=False)
    assert saved_activation_bytes(layer, x, None, lambda out, y: out.sum()) == 32 * 16 * 4
    bn = nn.Sequential(nn.Linear(16, 4, bias=False), nn.BatchNorm1d(4))
    # BN also saves its input (32 x 4 floats) and the batch's mean and inverse std (2 x 4 floats)
    assert saved_activation_bytes(bn, x, None, lambda out, y: out.sum()) == 32 * 16 * 4 + 32 * 4 * 4 + 2 * 4 * 4


def test_layer_gradient_norms_match_autograd_and_grow_with_bn():
    torch.manual_seed(0)
    m = build_model(DLNConf(num_layers=3, dim=5, activation="relu", bias=False), NormConf(name="none"), (5,), None)
    x, y = torch.randn(16, 5), torch.randn(16, 5)
    loss_fn = lambda out, t: (out - t).pow(2).sum(1).mean()
    norms = layer_gradient_norms(m, x, y, loss_fn)
    loss_fn(m(x), y).backward()
    expected = [b.layer.weight.grad.norm().item() for b in m.blocks] + [m.head.weight.grad.norm().item()]
    assert norms == pytest.approx(expected)


# ----------------------------------------------------------------------------------------- fake runs
GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10)
SWEPT = {"tut_lr": {"norm": ("none", "batch"), "optim.lr": GRID},
         "tut_init": {"norm": ("none", "batch"), "model.init_scale": (0.1, 0.3, 1, 3, 10)},
         "tut_reg": {"norm": ("none", "batch"), "model.dropout": (0, 0.3)},
         "tut_batch": {"train.batch_size": (2, 4, 8, 16, 32, 128), "norm": ("none", "batch", "group", "layer")},
         "tut_momentum": {"norm.momentum": (0.01, 0.1, 0.5), "train.batch_size": (8, 128)},
         "tut_placement": {"norm.position": ("before", "after"), "optim.lr": (0.1, 1)}}
"""The tutorial experiments' sweeps as conf/ lists them: a fake run is canonical, told apart by these keys."""


@pytest.fixture(autouse=True)
def _tutorial_sweeps(monkeypatch):
    sweeping(monkeypatch, SWEPT)


_job = {"n": 0}
WHERE = {"batch_size": "train", "init_scale": "model", "dropout": "model", "momentum": "norm", "position": "norm"}


def tut(root: Path, exp: str, norm: str = "batch", lr: float = 0.1, seed: int = 0, *, test_acc: float = 0.8,
        train_eval_acc: float | None = None, batchstat: float | None = None, curve: pd.Series | None = None,
        steps: int = 300, **settings) -> Path:
    """A finished tutorial run as bnstudy.train writes it: train-accuracy windows (``curve``, default 0.5 then
    0.8), the final test accuracy, train accuracy (eval mode) and train-mode test accuracy, and its settings
    (batch_size, init_scale, dropout, momentum, position) where its config records them."""
    _job["n"] += 1
    curve = curve if curve is not None else pd.Series([0.5] + [0.8] * (steps // 10 - 1),
                                                      index=range(10, steps + 1, 10))
    rows = [(int(s), "train_loss", None, None, None, 2.3 * (1 - a)) for s, a in curve.items()]
    rows += [(int(s), "train_acc", None, None, None, float(a)) for s, a in curve.items()]
    rows += [(steps, "test_acc", None, None, None, test_acc)]
    rows += [(steps, "train_eval_acc", None, None, None, train_eval_acc if train_eval_acc is not None else test_acc)]
    if batchstat is not None:
        rows.append((steps, "test_batchstat_acc", None, None, None, batchstat))
    cfg = {"name": exp, "scale": "quick", "seed": seed, "model": {"name": "small_cnn"}, "norm": {"name": norm},
           "data": {"name": "fashion_mnist"}, "optim": {"name": "sgd", "lr": lr}, "train": {"steps": steps}}
    for key, value in settings.items():
        cfg[WHERE[key]][key] = value
    return write_fake_run(root / exp / "quick" / "2024-01-01_00-00-00_x" / str(_job["n"]), rows, cfg)


def verdicts(root: Path) -> dict:
    return {r.id: r for r in check_group(root, "tutorials")}


def steps_curve(hit: int, final: float = 0.9, steps: int = 300) -> pd.Series:
    """Train accuracy windows every 10 steps: 0.2 until ``hit``, ``final`` from there on."""
    idx = np.arange(10, steps + 1, 10)
    return pd.Series(np.where(idx >= hit, final, 0.2), index=idx)


# ---------------------------------------------------------------------------------------- speed-up
@pytest.mark.parametrize("std_hit, bn_hit, t1a, t1b, shown", [
    (100, 10, HOLDS, HOLDS, "10x"),      # T1b's border: 10x
    (50, 10, HOLDS, FAILS, "5x"),        # T1a's border: 5x
    (40, 10, FAILS, FAILS, "4x"),
    (1000, 100, INCONCLUSIVE, INCONCLUSIVE, "3x"),  # standard never there: >= 300/100 = 3x decides nothing
    (1000, 50, HOLDS, INCONCLUSIVE, "6x"),           # >= 6x: at least T1a's 5x
    (10, 1000, FAILS, FAILS, "0x"),                  # BN never there
])
def test_speedup(tmp_path, std_hit, bn_hit, t1a, t1b, shown):
    tut(tmp_path, "tut_lr", "none", 0.1, curve=steps_curve(std_hit), test_acc=0.85)
    tut(tmp_path, "tut_lr", "none", 1.0, curve=steps_curve(10), test_acc=0.5)  # faster, but not its best lr
    tut(tmp_path, "tut_lr", "batch", 0.1, curve=steps_curve(bn_hit), test_acc=0.87)
    r = verdicts(tmp_path)
    assert (r["T1a"].verdict, r["T1b"].verdict) == (t1a, t1b)
    assert f"each at its best lr: standard / BN steps {shown};" in r["T1a"].evidence
    assert "BN's lr 0.1; standard's lr 0.1" in r["T1a"].evidence  # the standard net's faster lr 1 is not its best


def test_speedup_seeds_split(tmp_path):
    """Each seed alone at its own best lr: 10x, 10x and 2x hold 2/3 for T1a; two seeds 10x and 2x are mixed."""
    for seed, std_hit in ((0, 100), (1, 100), (2, 20)):
        for root in (tmp_path / "three", tmp_path / "two") if seed != 1 else (tmp_path / "three",):
            tut(root, "tut_lr", "none", 0.1, seed, curve=steps_curve(std_hit), test_acc=0.85)
            tut(root, "tut_lr", "batch", 0.1 if seed else 0.3, seed, curve=steps_curve(10), test_acc=0.87)
    three, two = verdicts(tmp_path / "three")["T1a"], verdicts(tmp_path / "two")["T1a"]
    assert (three.verdict, three.seeds) == (HOLDS, "2/3") and three.per_seed == {0: HOLDS, 1: HOLDS, 2: FAILS}
    assert "each at its best lr: standard / BN steps 10x [2x, 10x]" in three.evidence
    assert "BN's lr 0.1 [0.1, 0.3]" in three.evidence  # each seed's own best lr
    assert (two.verdict, two.seeds) == (MIXED, "1/2") and "the seeds split" in two.why_not


# ---------------------------------------------------------------------------------- learning rates
@pytest.mark.parametrize("std_max, bn_max, expected", [(0.1, 1, HOLDS), (0.1, 0.1, FAILS), (0.1, 0.3, FAILS),
                                                       (0.3, 10, HOLDS), (3, 10, INCONCLUSIVE)])
def test_higher_lr(tmp_path, std_max, bn_max, expected):
    """10x holds; below it, it fails when BN fails at its next grid lr <= 10x standard's (0.3 vs 0.1: next 1 is
    10x); BN training at the grid's top with a ratio below 10 (3.3x) cannot be decided."""
    for norm, top in (("none", std_max), ("batch", bn_max)):
        for lr in GRID:
            tut(tmp_path, "tut_lr", norm, lr, test_acc=0.85 if lr <= top else 0.1)
    r = verdicts(tmp_path)["T2"]
    assert r.verdict == expected and f"largest lr that trains: BN / standard {bn_max / std_max:.3g}x" in r.evidence


def test_trains_means_half_way_from_chance_to_best():
    acc = pd.Series({0.1: 0.9, 0.3: 0.51, 1.0: 0.49})  # half-way from 0.1 to 0.9 is 0.5
    assert T.largest_training_lr(acc) == 0.3


# --------------------------------------------------------------------------------------------- init
@pytest.mark.parametrize("std_accs, bn_accs, expected", [
    ([0.5, 0.8, 0.85, 0.8, 0.3], [0.84, 0.85, 0.86, 0.85, 0.83], HOLDS),   # 55 vs 3 points
    ([0.84, 0.85, 0.86, 0.85, 0.83], [0.5, 0.8, 0.85, 0.8, 0.3], FAILS),
    ([0.81, 0.85, 0.86, 0.85, 0.82], [0.85, 0.86, 0.86, 0.85, 0.83], HOLDS),  # 5 vs 3 points: the border, 2
    ([0.811, 0.85, 0.86, 0.85, 0.82], [0.85, 0.86, 0.86, 0.85, 0.83], FAILS),  # 4.9 vs 3
])
def test_init(tmp_path, std_accs, bn_accs, expected):
    for norm, accs in (("none", std_accs), ("batch", bn_accs)):
        for scale, acc in zip((0.1, 0.3, 1, 3, 10), accs):
            tut(tmp_path, "tut_init", norm, test_acc=acc, init_scale=scale)
    r = verdicts(tmp_path)["T3"]
    assert r.verdict == expected and "test accuracy by scale, standard: x0.1 " in r.evidence


# --------------------------------------------------------------------------------------- regularisation
def reg_runs(root: Path, gaps: dict, tests: dict) -> None:
    for (norm, dropout), gap in gaps.items():
        tut(root, "tut_reg", norm, test_acc=tests[(norm, dropout)], train_eval_acc=tests[(norm, dropout)] + gap,
            dropout=dropout)


@pytest.mark.parametrize("gap_std, gap_bn, expected", [(0.2, 0.1, HOLDS), (0.1, 0.12, FAILS), (0.1, 0.08, HOLDS),
                                                       (0.1, 0.081, FAILS)])
def test_implicit_regularisation(tmp_path, gap_std, gap_bn, expected):
    reg_runs(tmp_path, {("none", 0): gap_std, ("batch", 0): gap_bn}, {("none", 0): 0.8, ("batch", 0): 0.8})
    r = verdicts(tmp_path)["T4a"]
    assert r.verdict == expected and f"train - test gap: standard {gap_std:.3f}; BN {gap_bn:.3f}" in r.evidence


@pytest.mark.parametrize("gain_std, gain_bn, expected", [
    (0.03, 0.0, HOLDS),
    (0.025, 0.005, HOLDS),          # the border: 2 points less need with BN
    (0.03, 0.015, FAILS),
    (0.0, 0.03, FAILS),             # dropout helps BN only: more need with BN
    (-0.01, -0.03, INCONCLUSIVE),   # dropout helps neither: the experiment cannot test the sentence
    (0.015, 0.0, INCONCLUSIVE),     # helps the standard network by less than 2 points: neither, within noise
])
def test_dropout(tmp_path, gain_std, gain_bn, expected):
    tests = {("none", 0): 0.8, ("none", 0.3): 0.8 + gain_std, ("batch", 0): 0.82, ("batch", 0.3): 0.82 + gain_bn}
    reg_runs(tmp_path, {k: 0.1 for k in tests}, tests)
    r = verdicts(tmp_path)["T4b"]
    assert r.verdict == expected
    if expected == INCONCLUSIVE:
        assert "dropout helps neither network: cannot test" in r.why_not


# ----------------------------------------------------------------------------------- gradients at init
def write_grads(root: Path, spreads: dict, scale_bn: float = 1.0) -> None:
    """Per-layer norms at depths 4 and 8: standard flat at 1; BN geometric from ``spreads[seed]`` (layer 1) down
    to 1 (last hidden) at depth 8, times ``scale_bn`` relative to depth 4's flat 1."""
    rows = []
    for seed, spread in spreads.items():
        for depth in (4, 8):
            for layer in range(1, depth + 1):
                rows.append(dict(norm="none", depth=depth, seed=seed, layer=layer, value=1.0))
                v = 1.0 if depth == 4 else scale_bn * spread ** ((depth - 1 - layer) / (depth - 2))
                rows.append(dict(norm="batch", depth=depth, seed=seed, layer=layer, value=v))
    path = root / T.GRADIENTS_CSV
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.mark.parametrize("spread, scale, expected", [(3.0, 1.0, HOLDS), (10.0, 1.0, HOLDS), (10.5, 1.0, FAILS),
                                                     (1000.0, 1.0, FAILS), (1.0, 0.1, HOLDS), (1.0, 0.09, FAILS)])
def test_gradients(tmp_path, spread, scale, expected):
    write_grads(tmp_path, {0: spread}, scale)
    r = verdicts(tmp_path)["T5"]
    assert r.verdict == expected and f"max/min over the hidden layers: BN {spread:.3g}x" in r.evidence


def test_gradients_are_judged_per_seed_of_the_csv(tmp_path):
    write_grads(tmp_path, {0: 3.0, 1: 3.0, 2: 1000.0})
    r = verdicts(tmp_path)["T5"]
    assert (r.verdict, r.seeds) == (HOLDS, "2/3") and r.per_seed == {0: HOLDS, 1: HOLDS, 2: FAILS}


# -------------------------------------------------------------------------------------------- batch size
def batch_runs(root: Path, acc: dict, batchstat: dict | None = None) -> None:
    for norm, by in acc.items():
        for b, a in by.items():
            tut(root, "tut_batch", norm, 0.1 * b / 128, test_acc=a, batch_size=b,
                batchstat=(batchstat or {}).get((norm, b)))


@pytest.mark.parametrize("bn_small, std_small, expected", [
    (0.70, 0.78, HOLDS),   # BN drops 12 points, standard 2: 10 beyond
    (0.80, 0.80, HOLDS),   # the border: BN drops 2, standard 0
    (0.79, 0.78, FAILS),   # BN drops 3, standard 2: 1 beyond
    (0.83, 0.85, FAILS),   # BN improves at batch 2
])
def test_small_batch(tmp_path, bn_small, std_small, expected):
    batch_runs(tmp_path, {"none": {2: std_small, 128: 0.80}, "batch": {2: bn_small, 128: 0.82}})
    assert verdicts(tmp_path)["T6a"].verdict == expected


@pytest.mark.parametrize("gn, bn, expected", [
    ({2: 0.81, 16: 0.815, 128: 0.82}, {2: 0.75, 16: 0.80, 128: 0.82}, HOLDS),           # range 1 vs BN's 7 points
    ({2: 0.77, 16: 0.80, 128: 0.82}, {2: 0.75, 16: 0.80, 128: 0.82}, HOLDS),            # 5 vs 7: the border
    ({2: 0.86, 16: 0.85, 128: 0.77}, {2: 0.75, 16: 0.80, 128: 0.82}, FAILS),            # 9 vs 7
    ({2: 0.81, 16: 0.815, 128: 0.82}, {2: 0.815, 16: 0.81, 128: 0.82}, INCONCLUSIVE),   # BN's own range 1 point
])
def test_groupnorm(tmp_path, gn, bn, expected):
    batch_runs(tmp_path, {"batch": bn, "group": gn})
    r = verdicts(tmp_path)["T6b"]
    assert r.verdict == expected
    if expected == INCONCLUSIVE:
        assert "BN itself does not depend on the batch size" in r.why_not


@pytest.mark.parametrize("ln_small, expected", [(0.78, HOLDS), (0.77, HOLDS), (0.765, FAILS)])
def test_layernorm(tmp_path, ln_small, expected):
    batch_runs(tmp_path, {"batch": {2: 0.75, 128: 0.82}, "layer": {2: ln_small, 128: 0.80},
                          "group": {2: 0.77, 128: 0.8}})
    r = verdicts(tmp_path)["T6c"]
    assert r.verdict == expected and "GroupNorm minus BN +2.0 pt" in r.evidence


# ------------------------------------------------------------------------------------ train/inference
@pytest.mark.parametrize("batchstat, expected", [(0.70, HOLDS), (0.79, HOLDS), (0.795, FAILS)])
def test_discrepancy(tmp_path, batchstat, expected):
    batch_runs(tmp_path, {"batch": {2: 0.80, 128: 0.82}, "none": {2: 0.80}},
               {("batch", 2): batchstat, ("batch", 128): 0.82})
    r = verdicts(tmp_path)["T7"]
    assert r.verdict == expected and "at batch 2, momentum 0.1" in r.evidence


# -------------------------------------------------------------------------------------------- placement
@pytest.mark.parametrize("after, expected", [(0.80, HOLDS), (0.83, HOLDS), (0.84, FAILS)])
def test_placement_is_at_least_as_good(tmp_path, after, expected):
    """Before the ReLU at 0.81: at least as good as after unless after is more than 2 points better."""
    for lr in (0.1, 1):
        for position, acc in (("before", 0.81), ("after", after)):
            tut(tmp_path, "tut_placement", "batch", lr, test_acc=acc, position=position)
    r = verdicts(tmp_path)["T8"]
    assert r.verdict == expected and "lr 0.1: before minus after" in r.evidence


# ----------------------------------------------------------------------------------------------- memory
@pytest.mark.parametrize("saved, expected", [(1.5, HOLDS), (1.10, HOLDS), (1.09, FAILS)])
def test_memory(tmp_path, saved, expected):
    mem = pd.DataFrame([dict(model="m", norm=n, metric=k, value=v * (f if n == "batch" else 1.0))
                        for n in ("none", "batch") for k, v, f in (("params", 100, 1.01), ("saved_bytes", 1000, saved),
                                                                   ("step_ms", 10, 3.0))])
    (tmp_path / T.MEMORY_CSV).parent.mkdir(parents=True)
    mem.to_csv(tmp_path / T.MEMORY_CSV, index=False)
    r = verdicts(tmp_path)["T9"]
    assert r.verdict == expected and f"m: saved activations: BN / standard {saved:.3g}x" in r.evidence
    assert "parameters added 1; step time BN / standard 3x" in r.evidence  # shown, not judged
    assert r.seeds == ""  # one measurement, no seeds
    assert (r.why_not != "") == (expected == FAILS)


# ---------------------------------------------------------------------------------------------- registry
def test_every_claim_is_not_run_without_runs_and_the_report_leaves_the_section_out(tmp_path):
    results = check_group(tmp_path, "tutorials")
    assert [r.id for r in results] == ["T1a", "T1b", "T2", "T3", "T4a", "T4b", "T5", "T6a", "T6b", "T6c", "T7", "T8",
                                       "T9"]
    assert {r.verdict for r in results} == {NOT_RUN}
    report = render_report(check_claims(tmp_path), [], "quick", root=tmp_path, runs=RunSet(tmp_path, "quick"))
    assert "What the tutorials say" not in report
    tut(tmp_path, "tut_placement", "batch", 0.1, test_acc=0.8, position="before")
    tut(tmp_path, "tut_placement", "batch", 0.1, test_acc=0.7, position="after")
    report = render_report(check_claims(tmp_path), [tmp_path / "figures" / "tutorials_quick.png"], "quick",
                           root=tmp_path, runs=RunSet(tmp_path, "quick"))
    section = report.split("## What the tutorials say")[1].split("\n## ")[0]
    assert "| T8. The usual placement, BN before the activation, trains at least as well as after it |" in section
    assert "**holds**" in section and "**0 of the paper's 13 claims hold**" in report
    assert "![tutorials_quick](figures/tutorials_quick.png)" in section  # its figure here, not among the paper's
    assert "### tutorials_quick" not in report


# ----------------------------------------------------------------------------------------- end to end
def test_tiny_tutorial_sweep_end_to_end(tmp_path):
    """tut_batch at batch 4 and 8, standard and BN, 30 steps on 200 samples: the runs as the claims read them,
    the report's section, a claim's numbers."""
    cmd = [sys.executable, "-m", "experiments.train", "-m", "experiment=tut_batch", "norm=none,batch",
           "train.batch_size=4,8", "train.steps=30", "train.log_every=10", "train.eval_every=30",
           "train.eval_size=64", "data.train_size=200", "progress=false",
           f"hydra.sweep.dir={tmp_path}/tut_batch/quick/s"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    runs = T.table(T.Results(tmp_path, "quick"), "tut_batch")
    assert len(runs) == 4 and set(runs["batch_size"]) == {4, 8}
    bn = runs[runs["norm"] == "batch"]
    assert bn["batchstat_acc"].between(0, 1).all() and runs[runs["norm"] == "none"]["batchstat_acc"].isna().all()
    for r in runs.itertuples():
        m = read_metrics(Path(r.run.path) / "metrics.csv")
        assert float(m[(m["metric"] == "test_acc") & (m["step"] == 30)]["value"].iloc[0]) == r.test_acc
        summary = json.loads((Path(r.run.path) / "summary.json").read_text())
        assert summary["config"]["optim"]["lr"] == pytest.approx(0.1 * r.batch_size / 128)
    from experiments.report import main as report

    assert report(["--results", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "## What the tutorials say" in text and "| T6a. BN's accuracy degrades at very small batches |" in text
    (tmp_path / "empty").mkdir()
    assert report(["--results", str(tmp_path / "empty")]) == 0
    assert "What the tutorials say" not in (tmp_path / "empty" / "REPORT.md").read_text()
    r = verdicts(tmp_path)["T6a"]
    acc = lambda n, b: runs[(runs["norm"] == n) & (runs["batch_size"] == b)]["test_acc"].iloc[0]
    drop = acc("batch", 8) - acc("batch", 4)
    assert r.verdict in (HOLDS, FAILS) and f"BN's drop, batch 8 minus 4: BN {100 * drop:+.1f} pt" in r.evidence


def test_make_tutorials_writes_its_runs_under_results(tmp_path):
    """Every training command of `make tutorials` names its sweep folder under RESULTS (the report and figure
    read RESULTS; conf/config.yaml's default folder is results/)."""
    out = subprocess.run(["make", "-n", "tutorials", f"RESULTS={tmp_path}", "RUN_ID=r"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    train = [line for line in out.stdout.splitlines() if "experiments.train" in line]
    assert len(train) == 6, out.stdout
    for line in train:
        name = line.split("experiment=")[1].split()[0]
        assert f"hydra.sweep.dir={tmp_path}/{name}/quick/r" in line, line


def test_the_figure_names_its_runs_and_shows_a_diverged_bar(tmp_path):
    """The placement panel of a run that diverged (test accuracy at chance) draws its bar above the axis' floor,
    and the figure's footer names the runs it was drawn from, as every figure's does."""
    from bnstudy.figures import FIGURES

    tut(tmp_path, "tut_placement", "batch", 1.0, test_acc=0.1, position="after")  # at chance: diverged
    tut(tmp_path, "tut_placement", "batch", 1.0, test_acc=0.76, position="before")
    fig = FIGURES["tutorials"](tmp_path)
    placement = next(ax for ax in fig.axes if ax.get_title().startswith("Placement"))
    assert placement.get_ylim()[0] <= 0.05  # the 0.1 bar is visible
    assert any(t.get_text().startswith("tut_lr (quick): no finished runs") and "tut_placement (quick): sweep" in
               t.get_text() for t in fig.texts)
