"""Known answers for the residual networks, the transformer, their norms and the lr warm-up (issue: the paper's
question for the networks trained today).

Closed forms: a residual unit whose branch is zero at initialisation (Fixup, SkipInit) is the identity; a pre-LN
unit's branch sees LN(x), so ``out(c x) - c x = out(x) - x``; a post-LN unit's tokens have mean 0 and variance 1 at
init; RMSNorm of a constant vector is its sign; option A's shortcut is a subsample and zero channels; Fixup's
rescaling is L^-1/2 of He's std; the first step of a warm-up of k steps is the step at lr / k. End to end: every
measurement on every step leaves training bit-for-bit, on both new models.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from bnstudy.build import lr_at, validate
from bnstudy.config import (Config, DataConf, ICSConf, LandscapeConf, MeasureConf, NormConf, OptimConf, ResNetConf,
                            TrainConf, ViTConf, VGGConf)
from bnstudy.data import TensorData
from bnstudy.measures.registry import schemas
from bnstudy.measures.signal import SIG_BRANCH
from bnstudy.models import build_model
from bnstudy.models.resnet import BasicUnit, option_a
from bnstudy.norms import NORMS, RMSNorm
from bnstudy.records import read_metrics
from bnstudy.runs import RunSet
from bnstudy.schema import ConfigError
from bnstudy.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors; the CPU is shared


def resnet(norm: str, depth: int = 8, width: float = 0.5, shape=(3, 8, 8)):
    torch.manual_seed(0)
    return build_model(ResNetConf(depth=depth, width=width), NormConf(name=norm), shape, 10)


def vit(norm: str, depth: int = 2, dim: int = 16):
    torch.manual_seed(0)
    return build_model(ViTConf(depth=depth, dim=dim, heads=4, patch=4), NormConf(name=norm), (1, 8, 8), 10)


# ------------------------------------------------------------------------------------------ shapes and refusals
@pytest.mark.parametrize("depth", [8, 14, 20])
def test_resnet_has_a_block_per_conv_and_two_per_unit(depth):
    model = resnet("batch", depth)
    assert len(model.blocks) == depth - 1 and len(model.residual_units) == (depth - 2) // 2
    assert model(torch.randn(4, 3, 8, 8)).shape == (4, 10)


def test_vit_has_the_patch_embedding_then_two_units_per_layer():
    model = vit("layer", depth=3)
    assert len(model.blocks) == 1 + 2 * 3 and len(model.residual_units) == 6
    assert model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert model.blocks[1].layer is model.blocks[1].layer  # the attention's output projection
    assert [type(b.first).__name__ for b in model.blocks[1:3]] == ["Attention", "Sequential"]


@pytest.mark.parametrize("model_cfg, norm, words", [
    (VGGConf(depth=11, width=0.125), "fixup", "no residual branch"),
    (VGGConf(depth=11, width=0.125), "skipinit", "model=resnet or model=vit"),
    (ResNetConf(depth=8), "post_layer", "a transformer's option"),
    (ViTConf(depth=1, dim=8, heads=2, patch=4), "fixup", "norm=skipinit"),
    (ResNetConf(depth=9), "batch", r"6n \+ 2"),
    (ViTConf(depth=1, dim=8, heads=3, patch=4), "layer", "must divide model.dim"),
    (ViTConf(depth=1, dim=8, heads=2, patch=3), "layer", "must divide the image side"),
])
def test_impossible_combinations_are_refused_naming_the_fix(model_cfg, norm, words):
    shape = (1, 8, 8) if isinstance(model_cfg, ViTConf) else (3, 32, 32)
    with pytest.raises(ConfigError, match=words):
        build_model(model_cfg, NormConf(name=norm), shape, 10)


# ------------------------------------------------------------------------------------------ known answers
@pytest.mark.parametrize("norm", ["fixup", "skipinit"])
def test_a_unit_with_a_zero_branch_at_init_is_the_identity(norm):
    model = resnet(norm)
    unit = next(u for u in model.modules() if isinstance(u, BasicUnit) and u.stride == 1)
    x = torch.rand(4, unit.c_out, 8, 8)  # non-negative: what a ReLU before it hands on
    assert torch.equal(unit(x), x)
    v = vit("skipinit")
    tokens = torch.randn(4, 5, 16)
    assert all(torch.equal(u(tokens), tokens) for u in v.blocks[1:])


def test_fixup_initialisation_follows_its_three_rules():
    model = resnet("fixup", depth=20, width=2.0)  # 9 branches of m = 2 layers: L^(-1/(2m-2)) = 1/3
    units = [u for u in model.modules() if isinstance(u, BasicUnit)]
    assert len(units) == 9
    for u in units:
        assert not u.conv2.layer.weight.any()  # the last layer of each branch: 0
        w = u.conv1.layer.weight
        he = math.sqrt(2 / (w.shape[1] * w.shape[2] * w.shape[3]))
        assert w.std().item() == pytest.approx(he / 3, rel=0.1)
        assert u.scale.scale.item() == 1.0 and u.scale.bias.item() == 0.0  # multiplier 1, bias 0
        assert u.conv1.layer.bias_in.bias.item() == 0.0 and u.conv1.norm.bias.item() == 0.0
    classifier = model.head[-1].inner
    assert not classifier.weight.any() and not classifier.bias.any()  # the classification layer: 0
    # the stem is not in a branch: He's std, not rescaled
    stem = model.blocks[0].layer.weight
    assert stem.std().item() == pytest.approx(math.sqrt(2 / 27), rel=0.25)


def test_option_a_shortcut_subsamples_and_pads_zero_channels():
    x = torch.randn(2, 3, 6, 6)
    out = option_a(x, 5, 2)
    assert out.shape == (2, 5, 3, 3)
    assert torch.equal(out[:, :3], x[:, :, ::2, ::2]) and not out[:, 3:].any()


def test_pre_ln_branch_sees_the_normalised_input():
    unit = vit("layer").blocks[2]  # an MLP unit
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        delta, scaled = unit(x) - x, unit(7.5 * x) - 7.5 * x
    assert torch.allclose(delta, scaled, atol=1e-5)  # x + f(LN(x)): the branch adds the same for c x
    with torch.no_grad():  # and that is the MLP on LN(x), written out
        h = F.layer_norm(x, (16,), eps=1e-5)
        by_hand = F.linear(F.gelu(F.linear(h, unit.first[0].weight, unit.first[0].bias)), unit.layer.weight,
                           unit.layer.bias)
    assert torch.allclose(delta, by_hand, atol=1e-6)


def test_post_ln_units_hand_on_tokens_of_mean_zero_and_variance_one():
    model = vit("post_layer")
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        for unit in model.blocks[1:]:
            x = unit(x)
            assert torch.allclose(x.mean(-1), torch.zeros(3, 5), atol=1e-5)
            assert torch.allclose(x.var(-1, unbiased=False), torch.ones(3, 5), atol=1e-3)


def test_rms_norm_of_a_constant_vector_is_its_sign_and_ignores_scale():
    norm = RMSNorm(6, eps=0.0)
    for c in (3.0, -0.25):
        assert torch.allclose(norm(torch.full((2, 6), c)), torch.full((2, 6), math.copysign(1.0, c)))
    x = torch.randn(4, 6)
    assert torch.allclose(norm(x), norm(11 * x), atol=1e-6)
    assert torch.allclose(norm(x), x / x.pow(2).mean(-1, keepdim=True).sqrt(), atol=1e-6)
    assert NORMS["rms"].scale_invariant and not NORMS["rms"].batch_statistics
    spatial = RMSNorm(3, eps=0.0, spatial=True)
    img = torch.randn(2, 3, 4, 4)
    assert torch.allclose(spatial(img).pow(2).mean((1, 2, 3)), torch.ones(2), atol=1e-5)


def test_residual_only_norms_normalise_nothing_by_themselves():
    for name in ("fixup", "skipinit"):
        assert NORMS[name].residual == name and not NORMS[name].scale_invariant
    assert NORMS["post_layer"].residual == "post" and NORMS["post_layer"].scale_invariant


# ------------------------------------------------------------------------------------------ warm-up and Adam
def test_warmup_lr_is_linear_then_constant():
    optim = OptimConf(lr=0.2, warmup=4)
    assert [lr_at(optim, s) for s in range(6)] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])
    assert lr_at(OptimConf(lr=0.2), 0) == 0.2


def _data(n: int = 48, shape=(1, 8, 8)) -> TensorData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)
    return TensorData("synthetic", x, y, x[:16].clone(), y[:16].clone(), 3)


def _config(model, norm: str, optim: OptimConf, steps: int, measure: MeasureConf | None = None) -> Config:
    return Config(model=model, norm=NormConf(name=norm), data=DataConf(), optim=optim, measure=measure or MeasureConf(),
                  train=TrainConf(steps=steps, batch_size=12, log_every=1, eval_every=2, eval_size=16,
                                  eval_batch_size=16, checkpoint_every=0, device="cpu"), progress=False)


def test_the_first_warmup_step_is_the_step_at_lr_over_warmup(tmp_path):
    small = ViTConf(depth=1, dim=8, heads=2, patch=4)
    runs = {}
    for key, optim in (("warm", OptimConf(lr=0.4, warmup=4)), ("low", OptimConf(lr=0.1))):
        trainer = Trainer(_config(small, "layer", optim, 1), tmp_path / key, data=_data())
        trainer.run()
        runs[key] = trainer.parts.model.state_dict()
    assert all(torch.equal(runs["warm"][k], runs["low"][k]) for k in runs["low"])


def test_adam_refuses_sgd_momentum():
    cfg = _config(ViTConf(depth=1, dim=8, heads=2, patch=4), "layer", OptimConf(name="adam", lr=1e-3, momentum=0.9), 1)
    with pytest.raises(ConfigError, match="optim.betas"):
        validate(cfg)


# ------------------------------------------------------------------------------------------ measurements
def _every(measure: MeasureConf) -> MeasureConf:
    for node in schemas():
        getattr(measure, node).every = 1
    measure.hessian.every, measure.hessian.samples, measure.hessian.iters = 2, 24, 5
    return measure


@pytest.mark.parametrize("model, norm", [
    (ResNetConf(depth=8, width=0.25), "batch"), (ResNetConf(depth=8, width=0.25), "fixup"),
    (ViTConf(depth=1, dim=8, heads=2, patch=4), "post_layer"), (ViTConf(depth=1, dim=8, heads=2, patch=4), "rms"),
])
def test_measurements_leave_training_bit_for_bit_on_the_new_models(tmp_path, model, norm):
    measure = _every(MeasureConf(ics=ICSConf(layers=[1, 3]), landscape=LandscapeConf(points=2, beta_layer=2)))
    measure.activations.layers, measure.activations.samples = [1, 2], 4
    optim = OptimConf(lr=0.05, momentum=0.9)
    on = Trainer(_config(model, norm, optim, 3, measure), tmp_path / "on", data=_data())
    on.run()
    off = Trainer(_config(model, norm, optim, 3), tmp_path / "off", data=_data())
    off.run()
    rows_on, rows_off = read_metrics(tmp_path / "on" / "metrics.csv"), read_metrics(tmp_path / "off" / "metrics.csv")
    new = set(rows_on["metric"]) - set(rows_off["metric"])
    assert {"ics_l2", "landscape_loss", "beta", "hess_lmax_train", "sig_rank", SIG_BRANCH} <= new
    assert rows_on[~rows_on["metric"].isin(new)].reset_index(drop=True).equals(rows_off)
    s_on, s_off = on.parts.model.state_dict(), off.parts.model.state_dict()
    assert all(torch.equal(s_on[k], s_off[k]) for k in s_off)
    ratios = rows_on[(rows_on["metric"] == SIG_BRANCH) & (rows_on["step"] == 0)]["value"]
    assert len(ratios) == len(on.parts.model.residual_units)
    if norm == "fixup":
        assert (ratios == 0).all()  # every branch is zero at init: it adds nothing to the skip path


def test_branch_ratio_is_the_rms_of_what_the_branch_adds_over_the_skip_path(tmp_path):
    cfg = _config(ResNetConf(depth=8, width=0.5), "batch", OptimConf(lr=0.05), 1,
                  dataclasses.replace(MeasureConf(), signal=type(MeasureConf().signal)(every=1)))
    data = _data(shape=(3, 8, 8))
    trainer = Trainer(cfg, tmp_path / "run", data=data)
    torch.manual_seed(0)
    fresh = build_model(cfg.model, cfg.norm, (3, 8, 8), 3)
    trainer.run()
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    logged = rows[rows["metric"] == SIG_BRANCH].sort_values("layer")["value"].tolist()
    x = data.x_train[trainer.parts.sampler.indices(0)]
    by_hand = []
    with torch.no_grad():
        h = fresh.body[0](x)
        for unit in fresh.body[1:]:
            branch = unit.scale(unit.conv2(unit.conv1(h)))
            skip = option_a(h, unit.c_out, unit.stride)
            by_hand.append((branch.double().pow(2).mean().sqrt() / skip.double().pow(2).mean().sqrt()).item())
            h = unit(h)
    assert logged == pytest.approx(by_hand, rel=1e-6)


def test_posthoc_logs_the_branch_ratio_at_a_resnets_final_weights(tmp_path, monkeypatch):
    """python -m experiments.curvature on a finished ResNet run: sig_branch_ratio per residual unit, by hand at the
    final weights on post hoc's batch (the rows come from the hooks the training step logs with)."""
    import bnstudy.posthoc as posthoc
    from bnstudy.measures.curvature import fixed_subset

    cfg = _config(ResNetConf(depth=8, width=0.5), "batch", OptimConf(lr=0.05), 2)
    data = _data(shape=(3, 8, 8))
    trainer = Trainer(cfg, tmp_path, data=data)
    trainer.run()
    monkeypatch.setattr(posthoc, "load_dataset", lambda _cfg: data)  # the run's in-memory data, not a download
    conf = posthoc.PosthocConf(samples=24, iters=3, modes=["train"])
    rows = posthoc.measure_run(tmp_path, conf)
    logged = rows[rows["metric"] == SIG_BRANCH].sort_values("layer")["value"].tolist()
    model = trainer.parts.model.train()
    x, _ = fixed_subset(data.x_train, data.y_train, 24, cfg.seed * 1000 + conf.seed)
    by_hand = []
    with torch.no_grad():
        h = model.body[0](x[:cfg.train.batch_size])
        for unit in model.body[1:]:
            branch, skip = unit.scale(unit.conv2(unit.conv1(h))), option_a(h, unit.c_out, unit.stride)
            by_hand.append((branch.double().pow(2).mean().sqrt() / skip.double().pow(2).mean().sqrt()).item())
            h = unit(h)
    assert len(logged) == len(model.residual_units) == 3
    assert logged == pytest.approx(by_hand, rel=1e-6)


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.conf_spec  # the runs judged as conf/ composes the experiments (their depths told apart)
def test_the_signal_experiments_run_draw_and_are_judged(tmp_path):
    """make modern's two at-initialisation sweeps at tiny scale through experiments.together (as make modern runs
    them): every job finishes, the figure is written, and M3 and M5 are judged on the runs (not "not run")."""
    import subprocess
    import sys
    from pathlib import Path

    from bnstudy.claims import NOT_RUN, check_group

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "experiments.together", "resnet_signal", "vit_signal", "--scale", "tiny", "--seeds", "0",
           "--results", str(tmp_path), "--run-id", "t", "--workers", "1", "--figures", "modern_signal", "--",
           "progress=false"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(tmp_path.glob("*_signal/tiny/t/*/summary.json"))) == 32
    assert (tmp_path / "figures" / "modern_signal_tiny.png").stat().st_size > 10_000
    results = {r.id: r for r in check_group(RunSet(tmp_path, "tiny"), "modern")}
    assert results["M3"].verdict != NOT_RUN and "ViT, 4 layers" in results["M3"].evidence
    assert "ViT, 16 layers" in results["M3"].evidence
    assert results["M5"].verdict != NOT_RUN and "ResNet-110" in results["M5"].evidence
