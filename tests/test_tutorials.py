"""The tutorials' claims: model options, the train-mode eval, the at-init measurements, and each rule of
``bnstudy.tutorials`` pinned on small fake runs (holds, does not hold, borderline) with their numbers."""

from __future__ import annotations

import copy
import json
import math
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

import bnstudy.tutorials as T
from bnstudy.config import ConfigError, DLNConf, NormConf, SmallCNNConf
from bnstudy.measures.at_init import layer_gradient_norms, saved_activation_bytes
from bnstudy.models import build_model
from bnstudy.records import read_metrics
from bnstudy.train import evaluate_batch_stats

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


# ----------------------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize("b, expected", [((6.0, 7.0), T.HOLDS), ((3.0, 4.0), T.FAILS), ((5.2, 5.3), T.BORDERLINE),
                                         ((3.0, 8.0), T.BORDERLINE), ((math.nan, 1.0), T.NOT_RUN)])
def test_judge_on_a_ratio_with_10_percent_tolerance(b, expected):
    assert T.judge(b, 5.0, 0.1, ratio=True) == expected


def test_judge_absolute_tolerance():
    assert [T.judge((v, v), 0.02, 0.01) for v in (0.031, 0.029, 0.011, 0.009)] == \
        [T.HOLDS, T.BORDERLINE, T.BORDERLINE, T.FAILS]


# ----------------------------------------------------------------------------------- fake run tables
def _run(experiment, norm="none", seed=0, lr=0.1, test_acc=0.8, train_eval_acc=0.85, batchstat_acc=math.nan,
         batch_size=128, init_scale=1.0, dropout=0.0, momentum=0.1, position="before", curve=None, steps=300):
    curve = curve if curve is not None else pd.Series([0.5, 0.8], index=[10.0, 20.0])
    return dict(experiment=experiment, norm=norm, lr=lr, seed=seed, status="completed", steps=steps,
                batch_size=batch_size, init_scale=init_scale, dropout=dropout, momentum=momentum, position=position,
                test_acc=test_acc, train_eval_acc=train_eval_acc, batchstat_acc=batchstat_acc, train_acc=curve)


def _curve(hit_step: int, final=0.9, steps=300) -> pd.Series:
    """Train accuracy windows every 10 steps: 0.2 until ``hit_step``, ``final`` from there on."""
    idx = np.arange(10, steps + 1, 10, dtype=float)
    return pd.Series(np.where(idx >= hit_step, final, 0.2), index=idx)


def _speed_runs(std_hit: int, bn_hit: int) -> pd.DataFrame:
    return pd.DataFrame([_run("tut_lr", "none", curve=_curve(std_hit), test_acc=0.85),
                         _run("tut_lr", "batch", curve=_curve(bn_hit), test_acc=0.87)])


@pytest.mark.parametrize("std_hit, bn_hit, expected, shown", [(100, 10, T.HOLDS, "10x"), (40, 10, T.FAILS, "4x"),
                                                             (50, 10, T.BORDERLINE, "5x")])
def test_speedup_rule(std_hit, bn_hit, expected, shown):
    r = T.rule_speedup(_speed_runs(std_hit, bn_hit), 5, "q", T.UNSTABLE, "1a")
    assert (r.verdict, r.seeds) == (expected, 1)
    assert f"at own best lrs (standard 0.1, BN 0.1): {shown}" in r.evidence


def test_speedup_when_standard_never_gets_there_is_a_lower_bound():
    runs = _speed_runs(1000, 100)  # standard never reaches the target in 300 steps: >= 300 / 100 = 3x
    r = T.rule_speedup(runs, 5, "q", T.UNSTABLE, "1a")
    assert r.verdict == T.BORDERLINE and ">= 3x" in r.evidence


def _lr_runs(std_acc: dict, bn_acc: dict) -> pd.DataFrame:
    return pd.DataFrame([_run("tut_lr", n, lr=lr, test_acc=a) for n, accs in (("none", std_acc), ("batch", bn_acc))
                         for lr, a in accs.items()])


GRID = [0.01, 0.03, 0.1, 0.3, 1, 3, 10]


def _accs(largest_trained: float, best=0.85) -> dict:
    return {lr: (best if lr <= largest_trained else 0.1) for lr in GRID}


@pytest.mark.parametrize("std_max, bn_max, expected", [(0.1, 1, T.HOLDS), (0.1, 0.1, T.FAILS), (0.1, 0.3, T.FAILS),
                                                       (0.3, 10, T.HOLDS), (3, 10, T.BORDERLINE)])
def test_higher_lr_rule(std_max, bn_max, expected):
    r = T.rule_higher_lr(_lr_runs(_accs(std_max), _accs(bn_max)))
    assert r.verdict == expected
    assert f"{bn_max / std_max:.3g}x" in r.evidence


def test_trains_means_half_way_from_chance_to_best():
    acc = pd.Series({0.1: 0.9, 0.3: 0.51, 1.0: 0.49})  # half-way from 0.1 to 0.9 is 0.5
    assert T.lr_profile(acc) == (0.3, 0.1, 0.1)


@pytest.mark.parametrize("std_accs, bn_accs, expected", [
    ([0.5, 0.8, 0.85, 0.8, 0.3], [0.84, 0.85, 0.86, 0.85, 0.83], T.HOLDS),   # 55 vs 3 points
    ([0.84, 0.85, 0.86, 0.85, 0.83], [0.5, 0.8, 0.85, 0.8, 0.3], T.FAILS),
    ([0.82, 0.85, 0.86, 0.85, 0.82], [0.85, 0.86, 0.86, 0.85, 0.85], T.BORDERLINE),  # 4 vs 1 point: 3 < 5 +- 2
])
def test_init_rule(std_accs, bn_accs, expected):
    scales = [0.1, 0.3, 1, 3, 10]
    runs = pd.DataFrame([_run("tut_init", n, init_scale=s, test_acc=a) for n, accs in (("none", std_accs),
                         ("batch", bn_accs)) for s, a in zip(scales, accs)])
    assert T.rule_init(runs).verdict == expected


def _reg(gaps: dict, tests: dict) -> pd.DataFrame:
    return pd.DataFrame([_run("tut_reg", n, dropout=d, test_acc=tests[(n, d)], train_eval_acc=tests[(n, d)] + gaps[(n, d)])
                         for (n, d) in gaps])


@pytest.mark.parametrize("gap_std, gap_bn, expected", [(0.2, 0.1, T.HOLDS), (0.1, 0.12, T.FAILS), (0.1, 0.085, T.BORDERLINE)])
def test_implicit_regularisation_rule(gap_std, gap_bn, expected):
    runs = _reg({("none", 0.0): gap_std, ("batch", 0.0): gap_bn}, {("none", 0.0): 0.8, ("batch", 0.0): 0.8})
    r = T.rule_implicit_regularisation(runs)
    assert r.verdict == expected and f"gap standard {gap_std:.3f}, BN {gap_bn:.3f}" in r.evidence


@pytest.mark.parametrize("gain_std, gain_bn, expected", [(0.03, 0.0, T.HOLDS), (0.0, 0.01, T.FAILS),
                                                         (0.012, 0.0, T.BORDERLINE),
                                                         (-0.01, -0.03, T.FAILS)])  # no need for dropout at all
def test_dropout_rule(gain_std, gain_bn, expected):
    tests = {("none", 0.0): 0.8, ("none", 0.3): 0.8 + gain_std, ("batch", 0.0): 0.82, ("batch", 0.3): 0.82 + gain_bn}
    r = T.rule_dropout(_reg({k: 0.1 for k in tests}, tests))
    assert r.verdict == expected


def _grads(spread_bn: float, scale_bn: float) -> pd.DataFrame:
    """Per-layer norms: standard flat at 1; BN geometric from ``spread_bn`` (layer 1) down to 1 (last hidden)
    at the deep depth, times ``scale_bn`` relative to the shallow depth's flat 1."""
    rows = []
    for depth in (4, 8):
        for layer in range(1, depth + 1):
            rows.append(dict(norm="none", depth=depth, seed=0, layer=layer, value=1.0))
            v = 1.0 if depth == 4 else scale_bn * spread_bn ** ((depth - 1 - layer) / (depth - 2))
            rows.append(dict(norm="batch", depth=depth, seed=0, layer=layer, value=v))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("spread, scale, expected", [(3.0, 1.0, T.HOLDS), (1000.0, 1.0, T.FAILS), (1.0, 0.01, T.FAILS),
                                                     (15.0, 1.0, T.BORDERLINE)])
def test_gradient_rule(spread, scale, expected):
    r = T.rule_gradients(_grads(spread, scale))
    assert r.verdict == expected
    assert f"layer spread BN {spread:.3g}x" in r.evidence


def _batch_runs(acc: dict) -> pd.DataFrame:
    return pd.DataFrame([_run("tut_batch", n, batch_size=b, test_acc=a) for n, by in acc.items() for b, a in by.items()])


@pytest.mark.parametrize("bn_small, std_small, expected", [
    (0.70, 0.78, T.HOLDS),       # BN drops 12 points, standard 2: judged min(12, 10) = 10
    (0.79, 0.78, T.FAILS),       # BN drops 3, standard 2: min(3, 1) = 1 < 2 - 1
    (0.775, 0.78, T.BORDERLINE),  # BN drops 4.5, standard 2: min(4.5, 2.5) = 2.5 within 2 +- 1
    (0.83, 0.85, T.FAILS),       # BN improves at batch 2 (-1); the standard net improves more (-5): min(-1, 4) = -1
])
def test_small_batch_rule(bn_small, std_small, expected):
    runs = _batch_runs({"none": {2: std_small, 128: 0.80}, "batch": {2: bn_small, 128: 0.82}})
    assert T.rule_small_batch(runs).verdict == expected


@pytest.mark.parametrize("gn, expected", [({2: 0.81, 16: 0.815, 128: 0.82}, T.HOLDS),   # range 1 vs BN's 7 points
                                          ({2: 0.86, 16: 0.85, 128: 0.77}, T.FAILS),    # 9 vs 7
                                          ({2: 0.76, 16: 0.80, 128: 0.82}, T.BORDERLINE)])  # 6 vs 7
def test_groupnorm_rule(gn, expected):
    runs = _batch_runs({"batch": {2: 0.75, 16: 0.80, 128: 0.82}, "group": gn})
    assert T.rule_groupnorm(runs).verdict == expected


@pytest.mark.parametrize("ln_small, expected", [(0.78, T.HOLDS), (0.74, T.FAILS), (0.758, T.BORDERLINE)])
def test_layernorm_rule(ln_small, expected):
    runs = _batch_runs({"batch": {2: 0.75, 128: 0.82}, "layer": {2: ln_small, 128: 0.80}, "group": {2: 0.77, 128: 0.8}})
    r = T.rule_layernorm(runs)
    assert r.verdict == expected and "GroupNorm - BN +2.0 pt" in r.evidence


@pytest.mark.parametrize("batchstat, expected", [(0.70, T.HOLDS), (0.803, T.FAILS), (0.808, T.BORDERLINE)])
def test_discrepancy_rule(batchstat, expected):
    runs = pd.DataFrame([_run("tut_batch", "batch", batch_size=2, test_acc=0.80, batchstat_acc=batchstat),
                         _run("tut_batch", "batch", batch_size=128, test_acc=0.82, batchstat_acc=0.82),
                         _run("tut_batch", "none", batch_size=2, test_acc=0.80)])
    r = T.rule_discrepancy(runs)
    assert r.verdict == expected and "at batch 128, momentum 0.1: +0.0 pt" in r.evidence


@pytest.mark.parametrize("after, expected", [(0.80, T.HOLDS), (0.83, T.FAILS), (0.815, T.BORDERLINE)])
def test_placement_rule(after, expected):
    runs = pd.DataFrame([_run("tut_placement", "batch", lr=lr, position=p, test_acc=a)
                         for lr in (0.1, 1.0) for p, a in (("before", 0.81), ("after", after))])
    assert T.rule_placement(runs).verdict == expected


@pytest.mark.parametrize("saved, step, expected", [(1.5, 1.0, T.HOLDS), (1.02, 1.03, T.FAILS), (1.08, 1.0, T.BORDERLINE)])
def test_memory_rule(saved, step, expected):
    mem = pd.DataFrame([dict(model="m", norm=n, metric=k, value=v * (f if n == "batch" else 1.0))
                        for n in ("none", "batch") for k, v, f in (("params", 100, 1.01), ("saved_bytes", 1000, saved),
                                                                   ("step_ms", 10, step))])
    r = T.rule_memory(mem)
    assert r.verdict == expected and "params +1.0% (+1)" in r.evidence


def test_every_rule_says_not_run_without_runs(tmp_path):
    assert T.load_runs(ROOT / "results" / "reference").empty  # other experiments' runs only
    results = T.check_tutorials(tmp_path)
    assert len(results) == 13 and {r.verdict for r in results} == {T.NOT_RUN}
    assert not T.has_tutorial_runs(tmp_path)
    text = T.render_section(results)
    assert text.startswith("## What the tutorials say") and "13 not run" in text


# ----------------------------------------------------------------------------------------- end to end
def test_tiny_tutorial_sweep_end_to_end(tmp_path):
    """tut_batch at batch 4 and 8, standard and BN, 30 steps on 200 samples: CSVs, the table, a rule."""
    cmd = [sys.executable, "-m", "experiments.train", "-m", "experiment=tut_batch", "norm=none,batch",
           "train.batch_size=4,8", "train.steps=30", "train.log_every=10", "train.eval_every=30",
           "train.eval_size=64", "data.train_size=200", "progress=false", f"hydra.sweep.dir={tmp_path}/tut_batch/quick/s"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    runs = T.load_runs(tmp_path)
    assert len(runs) == 4 and set(runs["batch_size"]) == {4, 8}
    bn = runs[runs["norm"] == "batch"]
    assert bn["batchstat_acc"].between(0, 1).all() and runs[runs["norm"] == "none"]["batchstat_acc"].isna().all()
    for r in runs.itertuples():
        m = read_metrics(Path(r.path) / "metrics.csv")
        assert float(m[(m["metric"] == "test_acc") & (m["step"] == 30)]["value"].iloc[0]) == r.test_acc
        summary = json.loads((Path(r.path) / "summary.json").read_text())
        assert summary["config"]["optim"]["lr"] == pytest.approx(0.1 * r.batch_size / 128)
    from experiments.report import main as report

    assert report(["--results", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "## What the tutorials say" in text and "| 6a | \"Batch size dependency" in text
    (tmp_path / "empty").mkdir()
    assert report(["--results", str(tmp_path / "empty")]) == 0
    assert "What the tutorials say" not in (tmp_path / "empty" / "REPORT.md").read_text()
    r = T.rule_small_batch(runs)
    drop = lambda n: runs[(runs["norm"] == n) & (runs["batch_size"] == 8)]["test_acc"].iloc[0] - \
        runs[(runs["norm"] == n) & (runs["batch_size"] == 4)]["test_acc"].iloc[0]
    assert r.seeds == 1 and f"BN {100 * drop('batch'):+.1f} pt, standard {100 * drop('none'):+.1f} pt" in r.evidence
