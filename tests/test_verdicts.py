"""The claim rules read as the paper words them (3b, 4a, 4b, 6b), seed agreement and "why not", each pinned
on small fake runs: held, not held, and on the border of its threshold."""

from __future__ import annotations

import math

import pytest

from bnstudy.claims import FAILS, HOLDS, check_claims
from bnstudy.claims.base import NOT_REPRODUCED, OPEN_CHOICE
from bnstudy.report import render_report
from test_claims import CHANCE, by_id, ramp, write_run

DLN = dict(acc=None, data="gaussian", model="dln")
DECAY = lambda s: 1e4 * math.exp(-s / 50)  # a DLN loss that keeps falling (every step live)


# ---------------------------------------------------------------------------------------------- 3b
def noise_tree(root, noise_final: float, std_final: float = 0.90, leave_at: int = 100):
    write_run(root, "fig2", "none", 0.1, acc=ramp(std_final, 40))
    write_run(root, "fig2", "noise", 0.1, acc=lambda s: 0.1 if s < leave_at else noise_final)


@pytest.mark.parametrize("noise_final, verdict", [
    (0.12, HOLDS),  # never leaves chance
    (0.85, FAILS),  # 5 points below: still trains
    (0.80, HOLDS),  # exactly 10 points below: far below (the border counts)
    (0.81, FAILS),  # 9 points below
])
def test_3b_rule(tmp_path, noise_final, verdict):
    noise_tree(tmp_path, noise_final)
    r = by_id(check_claims(tmp_path, "quick"))["3b"]
    assert r.verdict == verdict, r.evidence
    if noise_final > 0.15:  # it left chance: when, and how far below the standard network it ends
        assert "standard+noise leaves chance at step 100" in r.evidence  # rolling median of 5 windows
        assert f"{0.90 - noise_final:.3f} below the standard network's 0.900" in r.evidence
    else:
        assert "leaves chance at step never" in r.evidence
    assert (r.why_not.startswith(NOT_REPRODUCED) and "leaves chance at step 100" in r.why_not) == (verdict == FAILS)


# ---------------------------------------------------------------------------------------------- 4a
def ics_run(root, exp, norm, lr, cos, layer=3):
    """One run whose ICS cosine is ``cos`` at ``layer`` (or ``{layer: cos}`` for several layers)."""
    kw = DLN | {"loss": DECAY} if exp.endswith("dln") else {"acc": ramp(0.9, 60, start=0.3)}
    per_layer = cos if isinstance(cos, dict) else {layer: cos}
    meas = {}
    for L, c in per_layer.items():
        meas[("ics_cos", L)] = lambda s, c=c: c
        meas[("ics_l2", L)] = lambda s, c=c: 1 - c
    write_run(root, exp, norm, lr, measures=meas, **kw)


@pytest.mark.parametrize("bn_cos, verdict, count", [
    ((0.4, 0.5, 0.9), HOLDS, "2 of 3"),  # BN not lower in 2 of 3 (a majority), lower in one
    ((0.9, 0.95, 0.5), FAILS, "1 of 3"),
    ((0.4, 0.95, None), FAILS, "1 of 2"),  # half is not a majority
])
def test_4a_majority_rule(tmp_path, bn_cos, verdict, count):
    layers = {i + 1: cos for i, cos in enumerate(bn_cos) if cos is not None}
    ics_run(tmp_path, "fig3_cnn", "none", 0.1, {L: 0.6 for L in layers})
    ics_run(tmp_path, "fig3_cnn", "batch", 0.1, layers)
    r = by_id(check_claims(tmp_path, "quick"))["4a"]
    assert r.verdict == verdict, r.evidence
    assert f"{count} comparisons not lower with BN (needs more than 50%)" in r.evidence
    for i, cos in enumerate(bn_cos):  # each comparison listed
        if cos is not None:
            assert f"fig3_cnn lr 0.1 layer {i + 1}: median cos(G,G') BN {cos:.3f} vs standard 0.600" in r.evidence


def test_4a_tolerance_border(tmp_path):
    ics_run(tmp_path, "fig3_cnn", "none", 0.1, 0.60)
    ics_run(tmp_path, "fig3_cnn", "batch", 0.1, 0.62)  # standard + ICS_COS_TOL: still "not lower"
    assert by_id(check_claims(tmp_path, "quick"))["4a"].verdict == HOLDS


# ---------------------------------------------------------------------------------------------- 4b
@pytest.mark.parametrize("std_cos, bn_cos, verdict, words", [
    (0.99, 0.1, HOLDS, "BN 0.100 (uncorrelated"),
    (0.99, -0.9, FAILS, "BN -0.900 (anti-correlated"),  # anti-correlated is not uncorrelated
    (0.99, 0.5, HOLDS, "BN 0.500 (uncorrelated"),  # the border: |cos| <= 0.5
    (0.99, -0.51, FAILS, "BN -0.510 (anti-correlated"),
    (0.89, 0.1, FAILS, "standard 0.890 (correlated"),  # standard below 0.9: has ICS
])
def test_4b_rule_with_the_sign(tmp_path, std_cos, bn_cos, verdict, words):
    ics_run(tmp_path, "fig3_dln", "none", 1e-6, std_cos)
    ics_run(tmp_path, "fig3_dln", "batch", 1e-6, bn_cos)
    r = by_id(check_claims(tmp_path, "quick"))["4b"]
    assert r.verdict == verdict, r.evidence
    assert words in r.evidence and "lr 1e-06 layer 3: median cos(G,G') over the whole run" in r.evidence


def test_4b_names_the_oscillation_and_judges_the_whole_run(tmp_path):
    """Standard flips its gradient every step for the first 100 steps (cos(g_t-1, g_t) = -1), its loss
    plateaus after step 100 (not live): the whole run decides and the live-step median is shown."""
    loss = lambda s: 1e4 * math.exp(-s / 50) if s <= 100 else 1e4 * math.exp(-2)
    write_run(tmp_path, "fig3_dln", "none", 1e-6, loss=loss, **DLN,
              measures={("ics_cos", 9): lambda s: -0.2 if s < 100 else 0.99,
                        "grad_cos_prev": lambda s: -1.0 if s < 100 else 0.9})
    ics_run(tmp_path, "fig3_dln", "batch", 1e-6, 0.1, layer=9)
    r = by_id(check_claims(tmp_path, "quick"))["4b"]
    assert r.verdict == FAILS  # whole-run median of 5 x -0.2 and 5 x 0.99 = 0.395 < 0.9
    assert "standard 0.395 (uncorrelated; live steps -0.200, 5/10)" in r.evidence
    assert "standard oscillates at 5/10 logged steps, steps 0-80 (median cos(g_t-1, g_t) there -1.000)" in r.evidence


def test_4b_why_not_names_the_loss_scale_when_the_sweep_shows_it(tmp_path):
    ics_run(tmp_path, "fig3_dln", "none", 1e-6, -0.2, layer=9)
    ics_run(tmp_path, "fig3_dln", "batch", 1e-6, 0.1, layer=9)
    r = by_id(check_claims(tmp_path, "quick"))["4b"]
    assert r.why_not.startswith(NOT_REPRODUCED) and "make dln_sweep" in r.why_not
    for lr, std in ((1e-6, -0.2), (5e-7, 0.98)):  # the sweep (paper scale): holds at the halved loss's lr
        for norm, cos in (("none", std), ("batch", 0.1)):
            write_run(tmp_path, "dln_sweep", norm, lr, scale="paper", loss=DECAY, **DLN,
                      measures={("ics_cos", 9): lambda s, c=cos: c})
    results = check_claims(tmp_path, "quick")
    r = by_id(results)["4b"]
    assert r.why_not.startswith(OPEN_CHOICE)
    assert "lr 5e-07: holds (layer 9 standard 0.980 / BN 0.100)" in r.why_not
    assert "lr 1e-06: does not hold" in r.why_not
    md = render_report(results, [], "quick", date="d", root=tmp_path,
                       runs=__import__("bnstudy.runs", fromlist=["RunSet"]).RunSet(tmp_path, "quick"))
    assert "## Why not" in md and f"- **4b** (does not hold): {OPEN_CHOICE}" in md
    assert "## The DLN's loss scale (make dln_sweep)" in md and "| 5e-07 | ½·sum at lr 1e-06 |" in md


# ---------------------------------------------------------------------------------------------- 6b
@pytest.mark.parametrize("late, verdict", [(0.5, HOLDS), (1.0, FAILS), (0.99, HOLDS), (0.995, FAILS)])
def test_6b_compares_the_curves(tmp_path, late, verdict):
    """l1's loss is 2x BN's for the first 30% of the run, then ``late`` x BN's: the median ratio over the
    run decides (0.99 is the border), and the ratio at 10/25/50/100% of the run is shown."""
    write_run(tmp_path, "fig5_dln", "batch", 1e-6, loss=lambda s: 100.0, **DLN)
    write_run(tmp_path, "fig5_dln", "l1", 1e-6, loss=lambda s: 200.0 if s <= 60 else 100.0 * late, **DLN)
    r = by_id(check_claims(tmp_path, "quick"))["6b"]
    assert r.verdict == verdict, r.evidence
    assert f"at 10% 2.0000, 25% 2.0000, 50% {late:.4f}, 100% {late:.4f} of the run" in r.evidence
    assert f"median over the run {late:.4f}" in r.evidence


# ------------------------------------------------------------------------------------- seeds, 5b note
def test_verdict_says_how_many_seeds_agree(tmp_path):
    for seed, noise_final in ((0, 0.12), (1, 0.12), (2, 0.85)):  # two seeds stopped, one trains
        write_run(tmp_path, "fig2", "none", 0.1, seed=seed, acc=ramp(0.90, 40))
        write_run(tmp_path, "fig2", "noise", 0.1, seed=seed, acc=lambda s, f=noise_final: 0.1 if s < 100 else f)
    r = by_id(check_claims(tmp_path, "quick"))["3b"]
    assert r.verdict == HOLDS and r.seeds == "2/3" and r.verdict_text == "holds, 2/3"  # mean 0.363: 53 points below
    md = render_report([r], [], "quick", date="d")
    assert "| **holds, 2/3** |" in md and " std " not in md


def test_early_ratio_the_other_way_is_noted(tmp_path):
    """5b holds over the run while early in training BN's predictiveness is worse: the evidence says so."""
    prof_std = lambda s: 1.0 if s < 50 else 10.0
    prof_bn = lambda s: 10.0 if s < 50 else 1.0
    for norm, prof in (("none", prof_std), ("batch", prof_bn)):
        write_run(tmp_path, "fig4_cnn", norm, 0.1, acc=ramp(0.9, 60, start=0.3),
                  measures={"grad_pred_max": prof, "beta": prof, "landscape_loss_min": lambda s: 0.0,
                            "landscape_loss_max": prof})
    r = by_id(check_claims(tmp_path, "quick"))["5b"]
    assert r.verdict == HOLDS
    assert "early in training the ratio goes the other way (0.1x: BN's value is 10x the standard network's)" \
        in r.evidence


# ------------------------------------------------------------------------------------ figures 9, 11, sweep
def test_fig11_plots_predictiveness_against_eta_over_lr(tmp_path):
    from bnstudy.figures import fig11
    from conftest import fake_config, write_fake_run

    for i, (norm, scale) in enumerate((("none", 10.0), ("batch", 1.0))):
        rows = [(s, "train_loss", None, None, None, 1.0) for s in (10, 20)]
        rows += [(s, "grad_pred", None, None, eta, scale * eta * (s + 1)) for s in (0, 10, 20) for eta in (0.05, 0.1, 0.4)]
        write_fake_run(tmp_path / "fig4_cnn" / "quick" / "sweep" / str(i), rows,
                       fake_config("fig4_cnn", norm=norm, lr=0.1, steps=30))
    fig = fig11(tmp_path, "quick")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["CNN, step 0", "CNN, step 10", "CNN, step 20"]
    line = axes[1].get_lines()[0]  # standard at step 10: 10 x eta x 11, against eta / lr
    assert list(line.get_xdata()) == pytest.approx([0.5, 1.0, 4.0])
    assert list(line.get_ydata()) == pytest.approx([5.5, 11.0, 44.0])


def test_fig9_and_the_sweep_figure(tmp_path):
    from bnstudy.figures import dln_sweep, fig9
    from conftest import fake_config, write_fake_run

    for i, norm in enumerate(("none", "batch")):
        rows = [(s, "train_loss", None, None, None, 1.0) for s in (10, 20)]
        rows += [(s, "act_sample", L, 0, None, v) for s in (0, 10) for L in (1, 11, 24) for v in range(8)]
        write_fake_run(tmp_path / "fig4_dln" / "quick" / "sweep" / str(i), rows,
                       fake_config("fig4_dln", norm=norm, lr=1e-6, model="dln", data="gaussian", steps=20))
    fig = fig9(tmp_path, "quick")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 6 and titles[0].endswith("layer #1, unit 0") and "layer #24" in titles[-1]
    for i, (norm, lr) in enumerate((("none", 1e-6), ("batch", 1e-6), ("none", 5e-7))):  # paper scale only
        rows = [(s, "train_loss", None, None, None, 100.0 / s) for s in (10, 20)]
        rows += [(s, "grad_cos_prev", None, None, None, -1.0) for s in (10, 20)]
        write_fake_run(tmp_path / "dln_sweep" / "paper" / "sweep" / str(i), rows,
                       fake_config("dln_sweep", scale="paper", norm=norm, lr=lr, model="dln", data="gaussian", steps=20))
    fig = dln_sweep(tmp_path, "quick")  # read from the paper-scale runs
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[0] == "lr 1e-06 (= ½·sum at 2e-06): training loss" and titles[3].startswith("lr 5e-07")
    osc = fig.axes[1].get_lines()[0]
    assert list(osc.get_ydata()) == [-1.0, -1.0]
