"""The claim checks (``bnstudy.claims``) on small synthetic results trees where each verdict is known."""

from __future__ import annotations

import math
import os
from pathlib import Path

from bnstudy.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_RUN, ClaimResult, check_claims
from bnstudy.report import render_report
from conftest import fake_config, write_fake_run

STEPS = 200  # planned steps of every synthetic run
LOG = 10  # train_loss/train_acc every LOG steps
EVAL = 50
MEASURE = 20  # ICS / landscape every MEASURE steps
_job = {"n": 0}


def write_run(root: Path, exp: str, norm: str, lr: float, *, seed: int = 0, scale: str = "quick",
              acc=lambda s: 0.9, test_acc: float | None = None, loss=None, status: str = "completed",
              stop: int = STEPS, measures: dict | None = None, data: str = "fashion_mnist",
              model: str = "vgg_quick", sweep: str = "2024-01-01_00-00-00_x") -> Path:
    """One run dir: train_acc ``acc(step)`` (None: regression, loss only), test acc, and per-step measures
    ``{metric: f(step)}`` (``("ics_cos", 3)``-style keys for per-layer metrics) logged every MEASURE steps."""
    _job["n"] += 1
    loss = loss or (lambda s: 2.3 * (1 - (acc(s) if acc else 0)) + 0.05)
    rows = []
    for s in range(LOG, stop + 1, LOG):
        rows.append((s, "train_loss", None, None, None, loss(s)))
        if acc:
            rows.append((s, "train_acc", None, None, None, acc(s)))
    if acc:
        for s in range(0, stop + 1, EVAL):
            rows.append((s, "test_acc", None, None, None, test_acc if test_acc is not None else acc(s) - 0.02))
    for key, fn in (measures or {}).items():
        metric, layer = key if isinstance(key, tuple) else (key, None)
        rows += [(s, metric, layer, None, None, fn(s)) for s in range(0, stop, MEASURE)]
    cfg = fake_config(exp, scale=scale, norm=norm, lr=lr, seed=seed, model=model, data=data, steps=STEPS,
                      log_every=LOG)
    return write_fake_run(root / exp / scale / sweep / str(_job["n"]), rows, cfg, status=status, step=stop)


def by_id(results: list[ClaimResult]) -> dict[str, ClaimResult]:
    return {r.id: r for r in results}


def ramp(final: float, at: int, start: float = 0.1):
    """Accuracy rising linearly from ``start`` to ``final`` by step ``at``, then flat."""
    return lambda s: start + (final - start) * min(s / at, 1.0)


CHANCE = lambda s: 0.1


# ------------------------------------------------------------------------------------------ claims 1, 2
def fig1_tree(root: Path, bn_better: bool = True) -> None:
    if bn_better:
        write_run(root, "fig1", "batch", 0.1, acc=ramp(0.95, 40), test_acc=0.88)
        write_run(root, "fig1", "none", 0.1, acc=ramp(0.90, 150), test_acc=0.84)
        write_run(root, "fig1", "batch", 0.5, acc=ramp(0.93, 40), test_acc=0.86)
        write_run(root, "fig1", "none", 0.5, acc=ramp(0.5, 50), status="diverged", stop=60, test_acc=0.5)
    else:
        write_run(root, "fig1", "batch", 0.1, acc=ramp(0.85, 150), test_acc=0.80)
        write_run(root, "fig1", "none", 0.1, acc=ramp(0.92, 40), test_acc=0.86)
        write_run(root, "fig1", "batch", 0.5, acc=ramp(0.80, 150), test_acc=0.78)
        write_run(root, "fig1", "none", 0.5, acc=ramp(0.91, 40), test_acc=0.85)


def test_fig1_bn_better_holds(tmp_path):
    fig1_tree(tmp_path)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["1a"].verdict == HOLDS
    assert "0.880" in r["1a"].evidence and "0.840" in r["1a"].evidence  # test acc BN vs std at lr 0.1
    assert "0.950" in r["1a"].evidence and "0.900" in r["1a"].evidence  # final train acc
    assert r["1b"].verdict == HOLDS
    # 80% of 0.95 = 0.76: BN at step 40, the standard ramp at 130 (more than 2x: significantly faster)
    assert "lr 0.1: steps to 80% of BN's final train acc, BN 40; standard 130 -> BN faster" in r["1b"].evidence
    assert "standard never -> BN faster" in r["1b"].evidence  # the diverged std run at lr 0.5
    assert r["2"].verdict == HOLDS
    assert "standard at lr 0.5: final test acc 0.100; standard at lr 0.1 0.840; BN at lr 0.5 0.860" in r["2"].evidence
    assert "fig1 none lr=0.5 seed=0: diverged at step 60" in r["2"].excluded
    for other in ("3a", "3b", "4a", "4b", "5a", "5b", "5c", "6a", "6b"):
        assert r[other].verdict == NOT_RUN, other


def test_fig1_standard_better_does_not_hold(tmp_path):
    fig1_tree(tmp_path, bn_better=False)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["1a"].verdict == FAILS and "BN not higher" in r["1a"].evidence
    assert r["1b"].verdict == FAILS
    assert r["2"].verdict == FAILS and "does not lose accuracy" in r["2"].evidence


def test_empty_and_other_scale_not_run(tmp_path):
    assert all(r.verdict == NOT_RUN for r in check_claims(tmp_path, "quick"))
    fig1_tree(tmp_path)
    assert all(r.verdict == NOT_RUN for r in check_claims(tmp_path, "paper"))


def test_each_seed_is_judged_alone_and_latest_run_wins(tmp_path):
    write_run(tmp_path, "fig1", "batch", 0.1, seed=0, acc=ramp(0.9, 40), test_acc=0.80)
    write_run(tmp_path, "fig1", "batch", 0.1, seed=1, acc=ramp(0.9, 40), test_acc=0.90)
    write_run(tmp_path, "fig1", "none", 0.1, seed=0, acc=ramp(0.8, 40), test_acc=0.70)
    old = write_run(tmp_path, "fig1", "none", 0.1, seed=1, acc=ramp(0.8, 40), test_acc=0.99)
    new = write_run(tmp_path, "fig1", "none", 0.1, seed=1, acc=ramp(0.8, 40), test_acc=0.76, sweep="2024-02-01")
    os.utime(old / "summary.json", (1, 1))  # older
    # a run still going (no lock held: reads as interrupted) is not used, and is noted
    write_run(tmp_path, "fig1", "none", 0.1, seed=2, acc=CHANCE, status="running", stop=20)
    r = by_id(check_claims(tmp_path, "quick"))["1a"]
    assert r.verdict == HOLDS and r.seeds == "2/2" and r.per_seed == {0: HOLDS, 1: HOLDS}
    # seed 0: BN 0.80 vs 0.70; seed 1: BN 0.90 vs the later run's 0.76 (the superseded 0.99 is not read)
    assert "lr 0.1: final test acc: BN 0.850 [0.800, 0.900]; standard 0.730 [0.700, 0.760] -> BN higher 2/2" in r.evidence
    assert f"superseded by the later {new}" in r.excluded
    assert "interrupted" in r.excluded


# ----------------------------------------------------------------------------------------------- claim 3
def test_fig2_noise(tmp_path):
    write_run(tmp_path, "fig2", "batch", 0.1, acc=ramp(0.92, 40))
    write_run(tmp_path, "fig2", "noisy_batch", 0.1, acc=ramp(0.90, 50))
    write_run(tmp_path, "fig2", "none", 0.1, acc=ramp(0.88, 100))
    write_run(tmp_path, "fig2", "noise", 0.1, acc=lambda s: 0.11)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["3a"].verdict == HOLDS
    assert "noisy BN vs BN: final train acc noisy BN 0.900; BN 0.920 -> nearly as BN" in r["3a"].evidence
    assert "noisy BN vs standard: final train acc noisy BN 0.900; standard 0.880 -> noisy BN better" in r["3a"].evidence
    assert r["3b"].verdict == HOLDS
    assert "standard+noise: final train acc 0.110; leaves chance at step never (chance + margin 0.15) -> never trains" \
        in r["3b"].evidence


def test_per_seed_steps_are_listed_in_seed_order(tmp_path):
    """The runs are found in the file system's order; the evidence lists them by seed (a redrawn report
    reads the same as the one it redraws)."""
    for seed, at in ((2, 180), (0, 100), (1, 140)):  # written out of order
        write_run(tmp_path, "fig2", "none", 0.1, seed=seed, acc=ramp(0.88, 60))
        write_run(tmp_path, "fig2", "noise", 0.1, seed=seed, acc=lambda s, at=at: 0.1 if s < at else 0.5)
    r = by_id(check_claims(tmp_path, "quick"))
    assert "leaves chance at step 140 [100, 180]" in r["3b"].evidence, r["3b"].evidence
    assert r["3b"].per_seed == {0: FAILS, 1: FAILS, 2: FAILS} and r["3b"].seeds == "0/3"


def test_fig2_noise_fails(tmp_path):
    write_run(tmp_path, "fig2", "batch", 0.1, acc=ramp(0.95, 40))
    write_run(tmp_path, "fig2", "noisy_batch", 0.1, acc=ramp(0.80, 50))  # 15 points below BN
    write_run(tmp_path, "fig2", "none", 0.1, acc=ramp(0.88, 100))
    write_run(tmp_path, "fig2", "noise", 0.1, acc=ramp(0.85, 100))  # the noise does not stop it
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["3a"].verdict == FAILS and "noisy BN 0.800; BN 0.950 -> more than 0.03 below BN" in r["3a"].evidence
    assert r["3b"].verdict == FAILS and "-> trains" in r["3b"].evidence


def test_fig2_without_noise_or_standard_run(tmp_path):
    write_run(tmp_path, "fig2", "batch", 0.1, acc=ramp(0.92, 40))
    write_run(tmp_path, "fig2", "noisy_batch", 0.1, acc=ramp(0.91, 50))
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["3a"].verdict == NOT_RUN and "standard, BN and noisy-BN" in r["3a"].evidence  # needs the standard net
    assert r["3b"].verdict == NOT_RUN


# ----------------------------------------------------------------------------------------------- claim 4
def ics(cos_std: float, cos_bn: float, root: Path, exp: str = "fig3_cnn", lr: float = 0.1, dln: bool = False):
    kw = dict(acc=None, data="gaussian", model="dln", loss=lambda s: 1e4 * math.exp(-s / 50)) if dln else \
        dict(acc=ramp(0.9, 60, start=0.3))
    for norm, cos in (("none", cos_std), ("batch", cos_bn)):
        write_run(root, exp, norm, lr, measures={("ics_cos", 3): lambda s, c=cos: c,
                                                 ("ics_l2", 3): lambda s, c=cos: 1 - c}, **kw)


def test_ics_claims(tmp_path):
    ics(0.6, 0.4, tmp_path)
    ics(0.99, 0.1, tmp_path, "fig3_dln", 1e-6, dln=True)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["4a"].verdict == HOLDS
    assert "fig3_cnn lr 0.1 layer 3: median cos(G,G') BN 0.400; standard 0.600" in r["4a"].evidence
    assert "fig3_dln lr 1e-06 layer 3" in r["4a"].evidence
    assert r["4b"].verdict == HOLDS and "median cos(G,G') standard 0.990; BN 0.100 -> as the paper" in r["4b"].evidence


def test_ics_claims_fail(tmp_path):
    ics(0.3, 0.8, tmp_path)  # BN's G and G' more alike: ICS lower with BN
    ics(0.5, 0.9, tmp_path, "fig3_dln", 1e-6, dln=True)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["4a"].verdict == FAILS and "lower with BN" in r["4a"].evidence
    assert r["4b"].verdict == FAILS


def test_flat_dln_loss_is_not_live(tmp_path):
    """A DLN whose loss never moves is not live: 4a leaves its ICS out and says why; 4b judges the whole run
    (a DLN's loss plateau is not a dead classifier) and shows the live steps (none) beside it."""
    write_run(tmp_path, "fig3_dln", "none", 1e-7, acc=None, data="gaussian", model="dln", loss=lambda s: 5e3,
              measures={("ics_cos", 3): lambda s: 1.0})
    write_run(tmp_path, "fig3_dln", "batch", 1e-7, acc=None, data="gaussian", model="dln",
              loss=lambda s: 1e4 * math.exp(-s / 50), measures={("ics_cos", 3): lambda s: 0.1})
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["4a"].verdict == INCONCLUSIVE and r["4b"].verdict == HOLDS
    assert "fig3_dln none lr=1e-07 seed=0: whole run not live: loss flat" in r["4a"].excluded
    assert "lr 1e-07 layer 3: median cos(G,G') standard 1.000; BN 0.100 -> as the paper" in r["4b"].evidence


# ----------------------------------------------------------------------------------------------- claim 5
def landscape(root: Path, exp: str, norm: str, lr: float, scale: float, acc=ramp(0.9, 60, start=0.3), **kw):
    """Landscape measures ``scale`` times a decaying profile (early values 10x the late ones)."""
    prof = lambda s: scale * (10.0 if s < STEPS / 4 else 1.0)
    meas = {"landscape_loss_min": lambda s: 1.0, "landscape_loss_max": lambda s: 1.0 + prof(s),
            "grad_pred_max": prof, "beta": prof}
    if exp == "browser":
        meas[("beta_act", 2)] = prof
    return write_run(root, exp, norm, lr, acc=acc, measures=meas, **kw)


def test_smoothness_holds(tmp_path):
    landscape(tmp_path, "fig4_cnn", "none", 0.1, 5.0)
    landscape(tmp_path, "fig4_cnn", "batch", 0.1, 0.05)
    r = by_id(check_claims(tmp_path, "quick"))
    for cid in ("5a", "5b", "5c"):
        assert r[cid].verdict == HOLDS, (cid, r[cid].evidence)
        assert "standard/BN 100x" in r[cid].evidence and "fig4_dln" not in r[cid].evidence
    assert ("fig4_cnn lr 0.1 max ||g-g'||: median standard 5; BN 0.05; standard/BN 100x; first 25% of steps "
            "standard/BN 100x -> BN smoother") in r["5b"].evidence


def test_smoothness_standard_smoother_does_not_hold(tmp_path):
    landscape(tmp_path, "fig4_cnn", "none", 0.1, 0.1)
    landscape(tmp_path, "fig4_cnn", "batch", 0.1, 1.0)
    r = by_id(check_claims(tmp_path, "quick"))
    assert all(r[c].verdict == FAILS for c in ("5a", "5b", "5c"))
    assert "0.1x" in r["5c"].evidence


def test_dead_standard_run_is_excluded_not_a_win(tmp_path):
    """The trap: standard at lr 0.5 is stuck at chance with beta ~ 0. Counted, it would make the standard
    network look smoother; it must be left out (and reported), so the verdict rests on lr 0.1 only."""
    landscape(tmp_path, "fig4_cnn", "none", 0.1, 2.0)
    landscape(tmp_path, "fig4_cnn", "batch", 0.1, 0.2)
    spike = lambda s: 0.3 if s == 110 else 0.1  # one noisy window (holding measured step 100): still dead
    landscape(tmp_path, "fig4_cnn", "none", 0.5, 1e-6, acc=spike)  # dead: flat landscape
    landscape(tmp_path, "fig4_cnn", "batch", 0.5, 0.3)
    landscape(tmp_path, "fig4_cnn", "noisy_batch", 0.5, 0.3)  # not part of the BN-vs-standard claim
    r = by_id(check_claims(tmp_path, "quick"))
    for cid in ("5a", "5b", "5c"):
        assert r[cid].verdict == HOLDS, (cid, r[cid].evidence)
        assert "fig4_cnn lr 0.5" in r[cid].evidence and "lr 0.5" in r[cid].evidence and "-> left out" in r[cid].evidence
        assert ("fig4_cnn none lr=0.5 seed=0: whole run not live: train acc at chance (<= 0.15)"
                in r[cid].excluded)


def test_seed001_claim_reads_the_browser_runs(tmp_path):
    landscape(tmp_path, "browser", "none", 0.1, 2.0)
    landscape(tmp_path, "browser", "batch", 0.1, 0.2)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["5d"].verdict == HOLDS, r["5d"].evidence
    assert "browser lr 0.1 beta (activations): median standard" in r["5d"].evidence
    assert all(r[c].verdict == NOT_RUN for c in ("5a", "5b", "5c"))  # the paper's claim: fig4 only


def test_dead_bn_run_cannot_make_the_claim_hold(tmp_path):
    landscape(tmp_path, "fig4_cnn", "none", 0.1, 2.0)
    landscape(tmp_path, "fig4_cnn", "batch", 0.1, 1e-8, acc=CHANCE)  # dead BN: trivially "smooth"
    r = by_id(check_claims(tmp_path, "quick"))
    for cid in ("5a", "5b", "5c"):
        assert r[cid].verdict == INCONCLUSIVE
        assert "fig4_cnn batch lr=0.1 seed=0: whole run not live" in r[cid].excluded


def test_diverged_run_steps_after_divergence_excluded(tmp_path):
    """Standard diverges at step 120 (loss inf from the window holding step 110): its later measurements,
    near-zero, are left out; before that it is rougher than BN."""
    def loss(s):
        return math.inf if s > 110 else 1.0

    meas_val = lambda s: 3.0 if s < 110 else 1e-9
    write_run(tmp_path, "fig4_cnn", "none", 0.1, acc=ramp(0.9, 60, start=0.3), loss=loss, status="diverged",
              stop=200, measures={"grad_pred_max": meas_val, "beta": meas_val,
                                  "landscape_loss_min": lambda s: 0.0, "landscape_loss_max": meas_val})
    landscape(tmp_path, "fig4_cnn", "batch", 0.1, 0.1)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["5b"].verdict == HOLDS, r["5b"].evidence
    assert "median standard 3; BN 0.55" in r["5b"].evidence  # steps 0..100 only (6): the near-zero ones are left out
    assert "fig4_cnn none lr=0.1 seed=0: 4/10 measured steps not live (steps 120-180)" in r["5b"].excluded
    assert "diverged" in r["5b"].excluded


# ----------------------------------------------------------------------------------------------- claim 6
def test_lp_claims(tmp_path):
    write_run(tmp_path, "fig5_cnn", "batch", 0.1, acc=ramp(0.90, 40))
    write_run(tmp_path, "fig5_cnn", "l1", 0.1, acc=ramp(0.89, 40))
    write_run(tmp_path, "fig5_cnn", "l2", 0.1, acc=ramp(0.91, 40))
    write_run(tmp_path, "fig5_cnn", "linf", 0.1, acc=ramp(0.88, 40))
    dln = dict(acc=None, data="gaussian", model="dln")
    write_run(tmp_path, "fig5_dln", "batch", 1e-6, loss=lambda s: 100.0 / (1 + s), **dln)
    write_run(tmp_path, "fig5_dln", "l1", 1e-6, loss=lambda s: 10.0 / (1 + s), **dln)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["6a"].verdict == HOLDS and "lr 0.1 linf: final train acc 0.880; BN 0.900 -> comparable" in r["6a"].evidence
    assert r["6b"].verdict == HOLDS and "-> l1 lower" in r["6b"].evidence


def test_lp_claims_fail(tmp_path):
    write_run(tmp_path, "fig5_cnn", "batch", 0.1, acc=ramp(0.90, 40))
    write_run(tmp_path, "fig5_cnn", "l1", 0.1, acc=ramp(0.89, 40))
    write_run(tmp_path, "fig5_cnn", "linf", 0.1, acc=CHANCE, status="diverged", stop=50)
    dln = dict(acc=None, data="gaussian", model="dln")
    write_run(tmp_path, "fig5_dln", "batch", 1e-6, loss=lambda s: 10.0 / (1 + s), **dln)
    write_run(tmp_path, "fig5_dln", "l1", 1e-6, loss=lambda s: 100.0 / (1 + s), **dln)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["6a"].verdict == FAILS and "linf: final train acc 0.100" in r["6a"].evidence
    assert "lr 0.1 l2 (not run) -> left out" in r["6a"].evidence and "diverged at step 50" in r["6a"].excluded
    assert r["6b"].verdict == FAILS


def test_l1_tie_with_bn_on_the_dln_is_not_a_win(tmp_path):
    """The quick-scale DLN ends with l1 and BN within 0.04% of each other: that is a tie, not a win."""
    dln = dict(acc=None, data="gaussian", model="dln")
    write_run(tmp_path, "fig5_dln", "batch", 1e-6, loss=lambda s: 12297.4, **dln)
    write_run(tmp_path, "fig5_dln", "l1", 1e-6, loss=lambda s: 12293.0, **dln)
    r = by_id(check_claims(tmp_path, "quick"))
    assert r["6b"].verdict == FAILS and "median over the run 1 ->" in r["6b"].evidence


# ----------------------------------------------------------------------------------------------- report
def test_render_report(tmp_path):
    fig1_tree(tmp_path)
    landscape(tmp_path, "browser", "none", 0.5, 1e-6, acc=CHANCE)
    landscape(tmp_path, "browser", "batch", 0.5, 0.3)
    results = check_claims(tmp_path, "quick")
    md = render_report(results, [Path("results/figures/fig1_quick.png"), Path("fig4_quick.png")], "quick",
                       date="2024-05-01")
    assert md.startswith("# ") and "quick" in md.splitlines()[0] and "2024-05-01" in md
    assert ("| Claim | Figure | The paper says | Rule (threshold: why) | Verdict | Evidence (median over seeds, range) |"
            in md)
    assert "| 1a. BN reaches higher accuracy" in md and "**holds**" in md
    assert "## Excluded runs" in md and "browser none lr=0.5 seed=0: whole run not live" in md
    assert "![fig1_quick](figures/fig1_quick.png)" in md and "(figures/fig4_quick.png)" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(results) and all(line.count(" | ") == 5 for line in table)
    assert "*Fig. 1: standard vs BN at lr 0.1 and 0.5" in md  # every figure has its caption


def test_report_cli(tmp_path, capsys):
    from experiments.report import main

    fig1_tree(tmp_path)
    (tmp_path / "figures").mkdir()
    for name in ("fig1_quick.png", "fig1_paper.png"):
        (tmp_path / "figures" / name).write_bytes(b"\x89PNG")
    assert main(["--results", str(tmp_path), "--scale", "quick"]) == 0
    md = (tmp_path / "REPORT.md").read_text()
    assert "figures/fig1_quick.png" in md and "fig1_paper" not in md
    assert not list(tmp_path.glob(".REPORT.md*"))  # no temp file left
    out = capsys.readouterr().out
    assert "| Claim | Figure | The paper says | Rule (threshold: why) | Verdict |" in out and "REPORT.md" in out


# ------------------------------------------------------------------------------------ registries
def test_every_claim_is_registered_with_the_papers_wording_in_report_order(tmp_path):
    from bnstudy.claims import CLAIMS, ordered

    ids = [c.id for c in ordered()]
    assert ids == ["1a", "1b", "2", "3a", "3b", "4a", "4b", "5a", "5b", "5c", "5d", "6a", "6b"]
    assert all(c.paper and c.summary and c.figure and c.experiments for c in CLAIMS.values())
    results = check_claims(tmp_path, "quick")
    assert [r.id for r in results] == ids and all(r.paper == CLAIMS[r.id].paper for r in results)


def test_a_registered_claim_and_report_section_appear_in_the_report(tmp_path):
    from bnstudy import report
    from bnstudy.claims import CLAIMS, claim

    @claim("99z", "A test claim", figure="Fig. 9", experiments=("fig1",), paper="the test's words")
    def _check(R, c):
        from bnstudy.claims import Part

        if not R.runs("fig1"):
            return c.not_run("no fig1 runs")
        return c.result([Part("fig1", {"runs": len(R.runs("fig1"))}, True, kinds={"runs": "g"})])

    @report.section("Test section", before="Excluded runs")
    def _body(ctx):
        return f"{len(ctx.results)} results"

    try:
        fig1_tree(tmp_path)
        results = check_claims(tmp_path, "quick")
        assert results[-1].id == "99z" and results[-1].verdict == HOLDS and results[-1].evidence == "fig1: runs 4 -> holds"
        md = render_report(results, [], "quick", date="d")
        assert md.index("## Claims") < md.index("## Test section") < md.index("## Excluded runs")
        assert f"{len(results)} results" in md and "| 99z. A test claim | Fig. 9 | the test's words | - | **holds** |" in md
    finally:
        del CLAIMS["99z"], report.SECTIONS["Test section"]
