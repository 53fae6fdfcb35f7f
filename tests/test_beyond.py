"""Claims beyond the paper (B1-B11) on small synthetic runs whose verdict is known, each held and not held,
and the report section and figures that show them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bnstudy.claims import BEYOND, CLAIMS, FAILS, HOLDS, NOT_RUN, check_beyond, check_claims
from bnstudy.claims import beyond as B
from bnstudy.report import render_report
from bnstudy.runs import RunSet
from conftest import fake_config, write_fake_run
from test_claims import MEASURE, STEPS, by_id, write_run

_n = {"i": 0}


def _curv(root: Path, exp: str, norm: str, lr: float, lmax_train, lmax_eval, sharp, beta, seed: int = 0):
    write_run(root, exp, norm, lr, seed=seed, acc=None if exp.endswith("dln") else (lambda s: 0.9),
              model="dln" if exp.endswith("dln") else "vgg_quick",
              measures={"hess_lmax_train": lmax_train, "hess_lmax_eval": lmax_eval, "batch_sharpness": sharp,
                        "beta_limit": beta})


def curvature_tree(root: Path, *, at_edge: bool = True, bn_gap: float = 5.0, bn_lower: bool = True) -> None:
    """Standard at 2/lr (or 0.3 of it) in its second half; BN's eval-mode lambda ``bn_gap`` x its train mode."""
    for exp, lr in (("curvature_cnn", 0.1), ("curvature_dln", 1e-6)):
        edge = 2 / lr * (1.0 if at_edge else 0.3)
        rise = lambda s, e=edge: e * min(1.0, 0.2 + s / (STEPS / 2))
        _curv(root, exp, "none", lr, rise, rise, rise, lambda s, e=edge: 1.5 * e)
        f = 0.2 if bn_lower else 3.0
        _curv(root, exp, "batch", lr, lambda s, e=edge: f * e, lambda s, e=edge: f * e * bn_gap,
              lambda s, e=edge: f * e, lambda s, e=edge: f * e)


def test_curvature_claims_hold_on_a_tree_at_the_edge(tmp_path):
    curvature_tree(tmp_path)
    r = by_id(check_beyond(tmp_path))
    for cid in ("B1", "B2", "B3", "B4", "B5"):
        assert r[cid].verdict == HOLDS, (cid, r[cid].evidence)
    assert "median 1" in r["B1"].evidence and "eval / train median 5" in r["B2"].evidence
    assert "BN / standard hess_lmax_train median 0.2" in r["B3"].evidence


def test_curvature_claims_fail_away_from_the_edge_and_without_a_mode_gap(tmp_path):
    curvature_tree(tmp_path, at_edge=False, bn_gap=1.2, bn_lower=False)
    r = by_id(check_beyond(tmp_path))
    for cid in ("B1", "B2", "B3", "B4", "B5"):
        assert r[cid].verdict == FAILS, (cid, r[cid].evidence)
    assert "median 0.3" in r["B1"].evidence


def test_edge_band_is_inclusive_at_its_bounds(tmp_path):
    """Borderline: a median exactly at the band's upper edge holds; just past it does not."""
    hi = B.EOS_BAND[1]
    for exp, factor in (("curvature_dln", hi), ("curvature_cnn", hi * 1.01)):
        lr = 1e-6 if exp.endswith("dln") else 0.1
        _curv(tmp_path, exp, "none", lr, lambda s: factor * 2 / lr, lambda s: 1.0, lambda s: factor * 2 / lr,
              lambda s: 1.0)
    r = by_id(check_beyond(tmp_path))
    assert r["B1"].verdict == HOLDS and r["B4"].verdict == FAILS


def theory_tree(root: Path, *, exact: bool = True, adapts: bool = True) -> None:
    for lr in (0.1, 0.5):
        wnorm = (lambda s, lr=lr: 1 + (lr / 0.1) * s / 50) if adapts else (lambda s: 1.0)
        measures = {}
        for layer in (1, 2):
            measures.update({
                ("thm41_lhs", layer): lambda s: 2.0,
                ("thm41_rhs", layer): (lambda s: 2.0 * (1 + 1e-5)) if exact else (lambda s: 1.9),
                ("thm41_rhs_printed", layer): lambda s: 1.5,
                ("si_cos", layer): (lambda s: 1e-6) if exact else (lambda s: 0.05),
                ("si_dnorm2", layer): lambda s: 1e-4,
                ("si_dnorm2_pred", layer): (lambda s: 1e-4 * (1 + 1e-4)) if exact else (lambda s: 2e-4),
                ("si_eff_lr", layer): lambda s, lr=lr, w=wnorm: lr / w(s) ** 2,
            })
        write_run(root, "theory", "batch", lr, measures=measures)


def test_theory_claims(tmp_path):
    theory_tree(tmp_path / "a")
    r = by_id(check_beyond(tmp_path / "a"))
    assert [r[c].verdict for c in ("B6", "B7", "B8", "B9")] == [HOLDS, FAILS, HOLDS, HOLDS]
    assert "lhs > rhs_printed at 40 of 40" in r["B7"].evidence
    theory_tree(tmp_path / "b", exact=False, adapts=False)
    r = by_id(check_beyond(tmp_path / "b"))
    assert [r[c].verdict for c in ("B6", "B8", "B9")] == [FAILS, FAILS, FAILS]
    assert "median over 2 layers 5" in r["B9"].evidence  # no adaptation: the ratio stays the lrs' ratio


def _signal_run(root: Path, exp: str, norm: str, depth: int | None, grads: list[float], ranks: list[float]):
    _n["i"] += 1
    cfg = fake_config(exp, norm=norm, lr=0.1, model="dln" if depth is None else "vgg_quick", steps=1)
    if depth is not None:
        cfg["model"]["depth"] = depth
    rows = [(0, "train_loss", None, None, None, 2.3), (1, "train_loss", None, None, None, 2.3)]
    rows += [(0, "sig_grad_norm", i, None, None, g) for i, g in enumerate(grads, 1)]
    rows += [(0, "sig_rank", i, None, None, k) for i, k in enumerate(ranks, 1)]
    write_fake_run(root / exp / "quick" / "2024-01-01_00-00-00_x" / str(_n["i"]), rows, cfg, step=1)


def test_signal_claims_read_the_deepest_network(tmp_path):
    for depth in (11, 19):  # the depth-11 runs would say the opposite: only the deepest is judged
        flip = depth == 11
        _signal_run(tmp_path, "signal_cnn", "none", depth, [1e-3, 1e-1, 1.0] if not flip else [1, 1, 1], [20, 5, 1.5])
        _signal_run(tmp_path, "signal_cnn", "batch", depth, [1, 2, 3] if not flip else [1, 100, 1e4], [30, 25, 20])
    _signal_run(tmp_path, "signal_dln", "none", None, [1, 1.1, 1.2], [8, 4, 2])
    _signal_run(tmp_path, "signal_dln", "batch", None, [1, 10, 100], [9, 9, 9])
    r = by_id(check_beyond(tmp_path))
    assert r["B10"].verdict == FAILS  # the DLN: BN's spread 100 vs standard's 1.2
    assert "VGG-19: max/min of |dL/dW| over 3 layers: BN 3 vs standard 1e+03" in r["B10"].evidence
    assert r["B11"].verdict == HOLDS and "VGG-19: effective rank at layer 3: BN 20 vs standard 1.5" in r["B11"].evidence


def test_beyond_claims_are_apart_from_the_papers_and_not_run_without_their_runs(tmp_path):
    assert set(BEYOND) == {f"B{i}" for i in range(1, 12)} and not set(BEYOND) & set(CLAIMS)
    assert all(c.paper and c.rule for c in BEYOND.values())
    r = check_beyond(tmp_path)
    assert {x.verdict for x in r} == {NOT_RUN} and "make curvature" in by_id(r)["B1"].evidence
    report = render_report(check_claims(tmp_path), [], "quick", root=tmp_path, runs=RunSet(tmp_path, "quick"))
    assert "## Beyond the paper" not in report  # no runs: no section
    theory_tree(tmp_path)
    report = render_report(check_claims(tmp_path), [], "quick", root=tmp_path, runs=RunSet(tmp_path, "quick"))
    assert "## Beyond the paper" in report and "| B7. Theorem 4.1 as printed" in report
    assert "Verdicts: 0 holds" in report  # the paper's claims: none ran; B6-B9 are not counted among them


@pytest.mark.parametrize("name", ["curvature", "theory", "signal"])
def test_beyond_figures_draw_from_csvs_and_name_their_runs(tmp_path, name):
    import matplotlib
    matplotlib.use("Agg")
    from bnstudy.figures import FIGURES

    curvature_tree(tmp_path)
    theory_tree(tmp_path)
    _signal_run(tmp_path, "signal_cnn", "none", 11, [1, 2], [3, 2])
    _signal_run(tmp_path, "signal_cnn", "batch", 11, [1, 2], [3, 3])
    fn, exps = FIGURES[name]
    fig = fn(RunSet(tmp_path, "quick"))
    drawn = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert len(drawn) >= 2
    assert all(e in "".join(t.get_text() for t in fig.texts) for e in exps if RunSet(tmp_path, "quick").runs(e))
    if name == "curvature":  # 2/lr drawn where the CNN's lr is 0.1
        assert any(line.get_label() == "2/lr = 20" for ax in fig.axes for line in ax.lines)
