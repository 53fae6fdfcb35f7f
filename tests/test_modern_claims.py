"""Claims M1-M8 (make modern) on small synthetic runs whose verdict is known: each rule held, not held, at its
border, and with seeds that split; then the report section that shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bnstudy.claims import FAILS, HOLDS, MIXED, NOT_RUN, check_claims, check_group
from bnstudy.claims import modern as M
from bnstudy.report import render_report
from bnstudy.runs import RunSet
from conftest import fake_config, sweeping, write_fake_run
from test_claims import by_id, write_run

_n = {"i": 0}


def modern(root: Path) -> dict:
    return by_id(check_group(root, "modern"))


# ------------------------------------------------------------------------------------------ M1, M2: smoothness
def smooth(root: Path, exp: str, norm: str, lr: float, beta: float, band: float, pred: float, seed: int = 0):
    write_run(root, exp, norm, lr, seed=seed, model=exp, measures={
        "beta": lambda s: beta, "landscape_loss_min": lambda s: 1.0, "landscape_loss_max": lambda s: 1.0 + band,
        "grad_pred_max": lambda s: pred})


@pytest.mark.parametrize("factor, expected", [(2.0, HOLDS), (M.SMOOTH_MIN_RATIO, HOLDS),
                                              (M.SMOOTH_MIN_RATIO * 0.99, FAILS)])
def test_m1_every_unnormalised_resnet_against_bn_at_its_border(tmp_path, factor, expected):
    smooth(tmp_path, "resnet", "batch", 0.1, 1.0, 0.1, 1.0)
    for norm in M.UNNORMALISED:
        smooth(tmp_path, "resnet", norm, 0.1, 2.0, 0.2, 2.0 if norm != "skipinit" else factor)
    r = modern(tmp_path)["M1"]
    assert r.verdict == expected, r.evidence
    assert "resnet lr 0.1 max ||g-g'||: SkipInit / BN" in r.evidence


def test_m1_a_diverged_standard_network_is_left_out_not_judged(tmp_path):
    """The unnormalised ResNet-20 diverges: its comparisons are left out with a note; the others decide."""
    smooth(tmp_path, "resnet", "batch", 0.1, 1.0, 0.1, 1.0)
    write_run(tmp_path, "resnet", "none", 0.1, status="diverged", stop=20, acc=lambda s: 0.1, model="resnet",
              measures={"beta": lambda s: 50.0})
    smooth(tmp_path, "resnet", "fixup", 0.1, 2.0, 0.2, 2.0)
    r = modern(tmp_path)["M1"]
    assert r.verdict == HOLDS and "resnet none lr=0.1 seed=0" in r.excluded


def test_m2_seeds_that_split_are_mixed(tmp_path):
    for seed, factor in ((0, 2.0), (1, 1.0)):
        smooth(tmp_path, "vit", "none", 0.1, 2.0, 0.2, 2.0, seed=seed)
        for norm in M.VIT_NORMS:
            smooth(tmp_path, "vit", norm, 0.1, 2.0 / factor, 0.2 / factor, 2.0 / factor, seed=seed)
    assert modern(tmp_path)["M2"].verdict == MIXED


# ------------------------------------------------------------------------------------------ M3: Xiong, gradients
def signal_run(root: Path, exp: str, norm: str, depth: int, grads=(), branch=()) -> None:
    _n["i"] += 1
    cfg = fake_config(exp, norm=norm, model=exp.split("_")[0], steps=1)
    cfg["model"]["depth"] = depth
    rows = [(0, "train_loss", None, None, None, 2.3), (1, "train_loss", None, None, None, 2.3)]
    rows += [(0, "sig_grad_norm", i, None, None, g) for i, g in enumerate(grads, 1)]
    rows += [(0, "sig_branch_ratio", i, None, None, b) for i, b in enumerate(branch, 1)]
    write_fake_run(root / exp / "quick" / "2024-01-01_00-00-00_x" / str(_n["i"]), rows, cfg, step=1)


@pytest.mark.parametrize("post_last, expected", [(2.5, HOLDS), (1.25, HOLDS), (1.24, FAILS)])
def test_m3_post_ln_last_unit_gradient_against_pre_ln(tmp_path, monkeypatch, post_last, expected):
    sweeping(monkeypatch, {"vit_signal": {"model.depth": (2, 8)}})
    signal_run(tmp_path, "vit_signal", "layer", 8, [1, 1, 1, 1.0])
    signal_run(tmp_path, "vit_signal", "post_layer", 8, [1, 0.5, 0.8, post_last])
    signal_run(tmp_path, "vit_signal", "layer", 2, [1, 1, 1, 1.0])  # shallow: shown, not judged
    signal_run(tmp_path, "vit_signal", "post_layer", 2, [1, 1, 1, 0.1])
    r = modern(tmp_path)["M3"]
    assert r.verdict == expected, r.evidence
    assert "fewer than 4 layers" in r.evidence or "ViT, 2 layers" in r.evidence


# ------------------------------------------------------------------------------------------ M4: Xiong, warm-up
@pytest.mark.parametrize("post_cold, pre_cold, expected", [
    (0.70, 0.82, HOLDS),             # post-LN needs it (13 points), pre-LN comparable (1 point)
    (0.80, 0.82, FAILS),             # post-LN within 3 points without warm-up: warm-up not needed
    (0.70, 0.75, FAILS),             # pre-LN 8 points below without it: not comparable
    (0.83 - M.WARMUP_TOL - 0.001, 0.83 - M.WARMUP_TOL, HOLDS),  # both borders
])
def test_m4_warmup_at_the_largest_lr(tmp_path, post_cold, pre_cold, expected):
    for exp, post, pre in (("vit_adam", post_cold, pre_cold), ("vit_warmup", 0.83, 0.83)):
        write_run(tmp_path, exp, "post_layer", 0.01, test_acc=post, model="vit")
        write_run(tmp_path, exp, "layer", 0.01, test_acc=pre, model="vit")
        write_run(tmp_path, exp, "post_layer", 0.003, test_acc=0.5, model="vit")  # a smaller lr: shown only
        write_run(tmp_path, exp, "layer", 0.003, test_acc=0.83, model="vit")
    r = modern(tmp_path)["M4"]
    assert r.verdict == expected, r.evidence


def test_m4_needs_both_experiments(tmp_path):
    write_run(tmp_path, "vit_adam", "post_layer", 0.01, model="vit")
    r = modern(tmp_path)["M4"]
    assert r.verdict == NOT_RUN and "vit_warmup not run (make vit_warmup)" in r.evidence


# ------------------------------------------------------------------------------------------ M5: De & Smith
@pytest.mark.parametrize("exponent, expected", [(0.5, HOLDS), (0.26, HOLDS), (0.24, FAILS), (0.9, FAILS)])
def test_m5_downscaling_exponent(tmp_path, monkeypatch, exponent, expected):
    sweeping(monkeypatch, {"resnet_signal": {"model.depth": (20, 56)}})
    units = range(1, 28)
    signal_run(tmp_path, "resnet_signal", "batch", 56, branch=[u ** -exponent for u in units])
    signal_run(tmp_path, "resnet_signal", "none", 56, branch=[1.0 for _ in units])
    signal_run(tmp_path, "resnet_signal", "batch", 20, branch=[1.0] * 9)  # shallower: shown only
    signal_run(tmp_path, "resnet_signal", "none", 20, branch=[1.0] * 9)
    r = modern(tmp_path)["M5"]
    assert r.verdict == expected, r.evidence
    assert "ResNet-56" in r.evidence


def test_m5_bn_above_the_standard_network_is_not_downscaled(tmp_path):
    signal_run(tmp_path, "resnet_signal", "batch", 20, branch=[u ** -0.5 for u in range(1, 10)])
    signal_run(tmp_path, "resnet_signal", "none", 20, branch=[0.1] * 9)
    assert modern(tmp_path)["M5"].verdict == FAILS


# ------------------------------------------------------------------------------------------ M6, M7: train without
@pytest.mark.parametrize("acc, status, expected", [(0.85, "completed", HOLDS), (0.5, "completed", HOLDS),
                                                   (0.49, "completed", FAILS), (0.85, "diverged", FAILS)])
def test_m6_m7_train_half_way_from_chance_to_bn(tmp_path, acc, status, expected):
    """Chance 0.1, BN 0.9: half-way is 0.5."""
    write_run(tmp_path, "resnet", "batch", 0.1, test_acc=0.9, model="resnet")
    for norm in ("skipinit", "fixup"):
        write_run(tmp_path, "resnet", norm, 0.1, test_acc=acc, model="resnet", status=status,
                  stop=200 if status == "completed" else 50)
    r = modern(tmp_path)
    assert r["M6"].verdict == expected and r["M7"].verdict == expected, r["M6"].evidence


def test_report_has_the_modern_section_only_when_its_runs_exist(tmp_path):
    report = lambda: render_report(check_claims(tmp_path), [], "quick", root=tmp_path, runs=RunSet(tmp_path, "quick"))
    write_run(tmp_path, "fig1", "batch", 0.1)
    assert "## Residual networks and transformers" not in report()
    write_run(tmp_path, "resnet", "batch", 0.1, test_acc=0.9, model="resnet")
    write_run(tmp_path, "resnet", "skipinit", 0.1, test_acc=0.8, model="resnet")
    text = report()
    assert "## Residual networks and transformers" in text and "M6. SkipInit trains" in text
    assert text.index("## Residual networks and transformers") > text.index("## Claims")


def test_modern_claims_quote_their_sources_verbatim():
    """Each claim's words are a source's in quotation marks, checked against public copies of its abstract; the
    words the helper search could not find in any abstract (SkipInit's description, Fixup's "maximal learning rate")
    are not quoted."""
    from bnstudy.claims import CLAIMS, PAPER

    modern_claims = {k: c for k, c in CLAIMS.items() if c.group == "modern"}
    assert set(modern_claims) == {f"M{i}" for i in range(1, 9)}
    for c in modern_claims.values():
        assert c.quote == PAPER and c.paper.count('"') >= 2 and c.rule, c.id
        assert "maximal learning rate" not in c.paper and "initialized to 0" not in c.paper
    assert "by a normalizing factor on the order of the square root of the network depth" in modern_claims["M5"].paper
    assert "the expected gradients of the parameters near the output layer are large" in modern_claims["M3"].paper
