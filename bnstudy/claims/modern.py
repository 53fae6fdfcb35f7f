"""Claims M1-M8: the paper's question asked of residual networks and transformers (``make modern``).

Registered with ``group="modern"`` and reported in their own section; judged like every claim (each seed alone,
``bnstudy.claims.verdicts``). The sources' words are quoted from their abstracts (checked against public copies
of each abstract); where the suite carries the paper's own thesis to networks the paper did not measure, the
words are the paper's and the claim says what is carried over. The experiments (conf/experiment): ``resnet``,
``resnet_signal`` (ResNet-20: standard, BN, Fixup, SkipInit), ``vit``, ``vit_adam``, ``vit_warmup``,
``vit_signal`` (ViT: pre-LN ``layer``, post-LN ``post_layer``, pre-RMSNorm ``rms``, ``none``), and the curvature
experiments (figure only).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from bnstudy.claims.base import (BN, FAILS, HOLDS, STANDARD, Claim, ClaimResult, Notes, Part, Results, claim,
                                 lrs_with_both, need, one)
from bnstudy.claims.beyond import EPS
from bnstudy.claims.curves import (EARLY_FRAC, ICS_COS_TOL, ICS_MAJORITY, MIN_COMMON_STEPS, SMOOTH_MIN_RATIO, _band,
                                   compare)
from bnstudy.claims.accuracy import LP_TOL
from bnstudy.claims.liveness import LiveRun
from bnstudy.claims.text import fmt_g
from bnstudy.measures.ics import ICS_COS
from bnstudy.measures.landscape import BETA, GRAD_PRED_MAX
from bnstudy.measures.signal import SIG_BRANCH, SIG_GRAD_NORM
from bnstudy.norms import norm_look
from bnstudy.runs import layers_of
from bnstudy.train import TEST_ACC

FIXUP, SKIPINIT, PRE_LN, POST_LN, RMS = "fixup", "skipinit", "layer", "post_layer", "rms"
UNNORMALISED = (STANDARD, FIXUP, SKIPINIT)
"""The ResNet's variants without a normalisation layer: each compared with BN (claim M1)."""
VIT_NORMS = (PRE_LN, POST_LN, RMS)
"""The ViT's normalisations: each compared with the ViT without one (claim M2)."""
VIT_UNNORMALISED = (STANDARD, SKIPINIT)
"""The ViT's variants without a normalisation layer: no norm, and SkipInit's scalar (ReZero's form), which trains
at the SGD lrs where the ViT with no norm diverges."""

NAMES = {STANDARD: "standard", BN: "BN", FIXUP: "Fixup", SKIPINIT: "SkipInit", PRE_LN: "pre-LN", POST_LN: "post-LN",
         RMS: "pre-RMSNorm"}
"""How the evidence names each norm (in a transformer, ``layer`` is pre-LN)."""


def name_of(norm: str) -> str:
    return NAMES.get(norm, norm_look(norm)[0])


SANTURKAR = ("Santurkar et al. 2018, abstract (of BatchNorm, measured on a VGG and a DLN): \"it makes the "
             "optimization landscape significantly smoother. This smoothness induces a more predictive and stable "
             "behavior of the gradients, allowing for faster training.\"")

TRAINS_FRACTION = 0.5
"""Claims M6, M7: a normalisation-free ResNet "can train" when it ends live and its final test accuracy is at least
half-way from chance to BN's at the same lr: it learns most of what the normalised network learns, not merely
something (a network stuck near chance also 'runs')."""

WARMUP_TOL = LP_TOL
"""Claim M4: "comparable results" without warm-up = final test accuracy at most 3 points below the same network's
with warm-up (the tolerance of "comparable" in claim 6a); warm-up "helpful" = more than that below."""

GRAD_NEAR_OUTPUT_MIN = 1.25
"""Claim M3: post-LN's gradients near the output "are large" = its |dL/dW| at the last unit at least 1.25x pre-LN's
at the same depth (the margin of claims 5a-d: a fifth; Xiong et al.'s theory puts the ratio at order sqrt(depth))."""

SQRT_EXPONENT = (0.25, 0.75)
"""Claim M5: BN downscales the branch "by a normalizing factor on the order of the square root of the network depth"
= the fitted exponent a of branch/skip ~ unit^(-a) over the deepest network's units lies in (0.25, 0.75): closer to
1/2 than to 0 (no downscaling) or 1. Fitted by least squares on log-log, from the network's third unit on (the first
units are not yet in the regime)."""


# ------------------------------------------------------------------------------------------ helpers
def _need(R: Results, c: Claim, names: tuple[str, ...]) -> tuple[list[str], Notes, ClaimResult | None]:
    """``need``, naming the experiments themselves as the make targets (each of make modern's is its own)."""
    return need(R, c, names, targets=names)


def smoothness_parts(R: Results, name: str, pairs: Iterable[tuple[str, str]], notes: Notes) -> list[Part]:
    """The paper's three landscape measures (loss band, max ||g - g'||, effective beta): ``worse``'s median over
    ``better``'s over their common live steps >= SMOOTH_MIN_RATIO, for each (worse, better) pair and lr that ran."""
    groups, parts = R.groups(name), []
    measures = (("loss band", _band), ("max ||g-g'||", lambda r: r.series(GRAD_PRED_MAX).dropna()),
                ("beta", lambda r: r.series(BETA).dropna()))
    for worse, better in pairs:
        lw, lb = name_of(worse), name_of(better)
        for lr in lrs_with_both(groups, worse, better):
            for mname, fn in measures:
                label = f"{name} lr {fmt_g(lr)} {mname}: {lw} / {lb}"
                cmp = compare(label, groups[(worse, lr)], groups[(better, lr)], fn, notes, "landscape")
                ok = cmp.ratio >= SMOOTH_MIN_RATIO if cmp.conclusive else None
                parts.append(Part(label, [(f"median {lw}", cmp.med_std, "g"), (lb, cmp.med_bn, "g"),
                                          ("ratio", cmp.ratio, "x"), (f"first {EARLY_FRAC:.0%} of steps", cmp.early_ratio,
                                                                      "x")],
                                  ok, f"{lb} smoother", f"{lb} not smoother",
                                  lenient=None if ok is None else cmp.ratio > 1))
    return parts


SMOOTH_RULE = (f"per lr and measure (loss band, max ||g-g'||, effective beta, Fig. 4's), over the steps where both "
               f"are live: the unnormalised network's median / the normalised one's >= {SMOOTH_MIN_RATIO:g} (claims "
               f"5a-c's rule: at least a fifth smaller; >= {MIN_COMMON_STEPS} common live steps, else left out); holds "
               f"when every decided comparison does")


def depth_of(R: Results, r: LiveRun) -> int:
    return int(R.runset.config(r).get("model.depth", 0) or 0)


def by_depth(R: Results, name: str) -> dict[int, dict[str, LiveRun]]:
    """A signal experiment's runs (one seed) by model depth, then by norm."""
    out: dict[int, dict[str, LiveRun]] = {}
    for r in R.runs(name):
        out.setdefault(depth_of(R, r), {})[r.norm] = r
    return dict(sorted(out.items()))


def final_acc(runs: list[LiveRun]) -> float:
    """The group's (one seed's) final test accuracy; a diverged run's is chance."""
    return one(runs, lambda r: r.final_eval(TEST_ACC))


def trains(run_acc: float, bn_acc: float, chance: float) -> bool:
    return run_acc >= chance + TRAINS_FRACTION * (bn_acc - chance) - EPS


def trains_parts(R: Results, norm: str, notes: Notes) -> list[Part]:
    """M6/M7: ``norm``'s ResNet against BN's at each lr of ``resnet`` (the standard network's shown beside it)."""
    groups, parts = R.groups("resnet"), []
    for lr in lrs_with_both(groups, norm, BN):
        r = one(groups[(norm, lr)], lambda r: r)
        acc, bn = final_acc(groups[(norm, lr)]), final_acc(groups[(BN, lr)])
        values = [(f"final test acc {name_of(norm)}", acc), ("BN", bn)]
        if (STANDARD, lr) in groups:
            values.append(("standard (no norm, He init)", final_acc(groups[(STANDARD, lr)])))
        if r.diverged:
            notes.add(f"{r.label}: diverged at step {r.step} - counted at chance accuracy")
        parts.append(Part(f"resnet lr {fmt_g(lr)}", values, not r.diverged and trains(acc, bn, r.chance),
                          "trains", "does not train"))
    return parts


# ------------------------------------------------------------------------------------------ the paper's thesis
@claim("M1", "ResNet-20: with BatchNorm the landscape is smoother than without it (the standard network, Fixup, "
       "SkipInit), as on the VGG", figure="modern_resnet", experiments=("resnet",), group="modern",
       paper=SANTURKAR + " Carried over here to a residual network: does BN smooth it against every way of training "
                         "it without a norm?",
       rule=SMOOTH_RULE + "; each of standard, Fixup and SkipInit against BN")
def claim_m1(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    return c.result(smoothness_parts(R, "resnet", [(n, BN) for n in UNNORMALISED], notes), notes)


@claim("M2", "ViT: each normalisation (pre-LN, post-LN, pre-RMSNorm) makes the landscape smoother than none (no "
       "norm, or SkipInit)",
       figure="modern_vit", experiments=("vit",), group="modern",
       paper=SANTURKAR + " Carried over here to a transformer: does LayerNorm, before or after the residual branch, "
                         "or RMSNorm, do for it what BatchNorm does for the VGG?",
       rule=SMOOTH_RULE + "; each of no norm and SkipInit against each of pre-LN, post-LN and pre-RMSNorm (plain SGD, "
                          "as the paper)")
def claim_m2(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    pairs = [(plain, n) for plain in VIT_UNNORMALISED for n in VIT_NORMS]
    return c.result(smoothness_parts(R, "vit", pairs, notes), notes)


@claim("M8", "Gradient ICS is not lower with normalisation in ResNet-20 and the ViT (claim 4a carried over)",
       figure="modern_resnet", experiments=("resnet", "vit"), group="modern",
       paper="§2.2: \"networks with BatchNorm often exhibit an increase in ICS\" (of the VGG and the DLN). Carried over "
             "here to BN in ResNet-20 and to each transformer normalisation against no norm",
       rule=f"per experiment x lr x layer x (unnormalised, normalised) pair (ResNet: standard, Fixup, SkipInit against "
            f"BN; ViT: no norm, SkipInit against pre-LN, post-LN, pre-RMSNorm), over the steps where both are live: the normalised "
            f"network's median cos(G,G') <= the unnormalised one's + {ICS_COS_TOL} (claim 4a's rule); holds when more "
            f"than {ICS_MAJORITY:.0%} of the decided comparisons do")
def claim_m8(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    parts = []
    for name, pairs in (("resnet", [(plain, BN) for plain in UNNORMALISED]),
                        ("vit", [(plain, n) for plain in VIT_UNNORMALISED for n in VIT_NORMS])):
        groups = R.groups(name)
        for plain, normed in pairs:
            for lr in lrs_with_both(groups, plain, normed):
                a, b = groups[(plain, lr)], groups[(normed, lr)]
                for layer in layers_of(a + b, ICS_COS):
                    label = f"{name} lr {fmt_g(lr)} layer {fmt_g(layer)}: {name_of(normed)} vs {name_of(plain)}"
                    cmp = compare(label, a, b, lambda r, L=layer: r.series(ICS_COS, L), notes, "ICS")
                    parts.append(Part(label, [(f"median cos(G,G') {name_of(normed)}", cmp.med_bn),
                                              (name_of(plain), cmp.med_std)],
                                      cmp.med_bn <= cmp.med_std + ICS_COS_TOL if cmp.conclusive else None,
                                      "not lower", "lower with the norm"))
    decided = [p.ok for p in parts if p.ok is not None]
    if not decided:
        return c.result(parts, notes)
    k, n = sum(decided), len(decided)
    verdict_ok = k > ICS_MAJORITY * n
    parts.append(Part("comparisons not lower with the norm", {"fraction": k / n}, verdict_ok,
                      f"more than {ICS_MAJORITY:.0%}", f"not more than {ICS_MAJORITY:.0%}", info=True))
    return c.result(parts, notes, HOLDS if verdict_ok else FAILS)


# ------------------------------------------------------------------------------------------ Xiong et al. 2020
@claim("M3", "Post-LN: at initialisation the gradients near the output are large (against pre-LN)",
       figure="modern_signal", experiments=("vit_signal",), group="modern",
       paper="Xiong et al. 2020, abstract: \"Specifically, we prove with mean field theory that at initialization, "
             "for the original-designed Post-LN Transformer, which places the layer normalization between the "
             "residual blocks, the expected gradients of the parameters near the output layer are large.\"",
       rule=f"each depth of vit_signal with 4 or more layers: post-LN's |dL/dW| of the last unit's last linear (the "
            f"MLP's W^2, \"near the output\") >= {GRAD_NEAR_OUTPUT_MIN:g} x pre-LN's (at least a fifth larger: "
            f"claims 5a-d's margin); holds when every such depth does; shallower networks are shown, not judged")
def claim_m3(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    parts = []
    for depth, by_norm in by_depth(R, "vit_signal").items():
        post, pre = by_norm.get(POST_LN), by_norm.get(PRE_LN)
        if post is None or pre is None:
            continue
        gp, gq = post.at_init(SIG_GRAD_NORM), pre.at_init(SIG_GRAD_NORM)
        if gp.empty or gq.empty:
            continue
        last_p, last_q = float(gp.iloc[-1]), float(gq.iloc[-1])
        ratio = last_p / last_q if last_q > 0 else math.nan
        values = [("|dL/dW| at the last unit, post-LN", last_p, "g"), ("pre-LN", last_q, "g"),
                  ("post / pre", ratio, "x"), ("post-LN last / first unit", float(gp.iloc[-1] / gp.iloc[1]), "x"),
                  ("pre-LN last / first unit", float(gq.iloc[-1] / gq.iloc[1]), "x")]
        decided = depth >= 4 and not math.isnan(ratio)
        parts.append(Part(f"ViT, {depth} layers", values, ratio >= GRAD_NEAR_OUTPUT_MIN * (1 - EPS) if decided else None,
                          "large", "not large", lenient=None if not decided else ratio > 1,
                          note="" if depth >= 4 else "fewer than 4 layers: shown, not judged"))
    if not parts:
        return c.not_run("vit_signal has no depth with both post-LN and pre-LN runs", notes)
    return c.result(parts, notes)


@claim("M4", "Post-LN needs the lr warm-up at a large lr; pre-LN trains as well without it",
       figure="modern_warmup", experiments=("vit_adam", "vit_warmup"), group="modern",
       paper="Xiong et al. 2020, abstract: \"Therefore, using a large learning rate on those gradients makes the "
             "training unstable. The warm-up stage is practically helpful for avoiding this problem.\" ... \"We show "
             "in our experiments that Pre-LN Transformers without the warm-up stage can reach comparable results "
             "with baselines while requiring significantly less training time and hyper-parameter tuning on a wide "
             "range of applications.\" (Adam, as theirs)",
       rule=f"at the largest lr of both experiments (\"a large learning rate\"): post-LN without warm-up ends more than "
            f"{WARMUP_TOL * 100:.0f} points of test accuracy below post-LN with it (warm-up \"helpful\"), and pre-LN "
            f"without warm-up at most {WARMUP_TOL * 100:.0f} points below pre-LN with it (\"comparable\": claim 6a's "
            f"tolerance); the other lrs are shown, not judged")
def claim_m4(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    if len(ran) < 2:
        lacking = [n for n in c.experiments if n not in ran]
        return c.not_run(f"{' and '.join(lacking)} not run (make {' '.join(lacking)})", notes)
    cold, warm = R.groups("vit_adam"), R.groups("vit_warmup")
    lrs = sorted({lr for (n, lr) in cold if (n, lr) in warm})
    parts = []
    for lr in lrs:
        judged = lr == max(lrs)
        for norm, needs in ((POST_LN, True), (PRE_LN, False)):
            if (norm, lr) not in cold or (norm, lr) not in warm:
                continue
            a, w = final_acc(cold[(norm, lr)]), final_acc(warm[(norm, lr)])
            notes.diverged(cold[(norm, lr)] + warm[(norm, lr)], "chance accuracy")
            gap = w - a
            ok = gap > WARMUP_TOL + EPS if needs else gap <= WARMUP_TOL + EPS
            label = f"{name_of(norm)}, Adam lr {fmt_g(lr)}"
            parts.append(Part(label, [("final test acc without warm-up", a), ("with", w),
                                      ("warm-up's gain", gap, "pt")],
                              ok if judged else None, "needs it" if needs else "comparable without",
                              "does not need it" if needs else "not comparable without", info=not judged))
    if not parts:
        return c.not_run("vit_adam and vit_warmup share no lr with post-LN or pre-LN runs", notes)
    return c.result(parts, notes)


# ------------------------------------------------------------------------------------------ De & Smith 2020
@claim("M5", "At initialisation BN downscales each residual branch relative to the skip path, by a factor of order "
       "sqrt(depth)", figure="modern_signal", experiments=("resnet_signal",), group="modern",
       paper="De & Smith 2020, abstract: \"We show that this key benefit arises because, at initialization, batch "
             "normalization downscales the residual branch relative to the skip connection, by a normalizing factor "
             "on the order of the square root of the network depth.\"",
       rule=f"the deepest ResNet of resnet_signal, per residual unit l at init: r_l = RMS(branch) / RMS(skip). BN "
            f"downscales: BN's r at the last unit is below the standard network's (He init, no norm); of order "
            f"sqrt(depth): the exponent a of r_l ~ l^(-a), least squares on log-log from the third unit on, lies in "
            f"({SQRT_EXPONENT[0]:g}, {SQRT_EXPONENT[1]:g}) (closer to 1/2 than to 0 or 1)")
def claim_m5(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    depths = by_depth(R, "resnet_signal")
    top = max((d for d, by in depths.items() if BN in by and STANDARD in by), default=None)
    if top is None:
        return c.not_run("resnet_signal has no depth with both standard and BN runs", notes)
    bn, sd = depths[top][BN].at_init(SIG_BRANCH), depths[top][STANDARD].at_init(SIG_BRANCH)
    if len(bn) < 4 or sd.empty:
        return c.result([Part(f"ResNet-{top}", {}, None, note="fewer than 4 residual units measured")], notes)
    units = bn.index.to_numpy(dtype=float)
    keep = units >= 3
    slope = float(np.polyfit(np.log(units[keep]), np.log(bn.to_numpy(dtype=float)[keep]), 1)[0])
    lo, hi = SQRT_EXPONENT
    parts = [Part(f"ResNet-{top}: BN below standard at the last unit",
                  [("RMS(branch)/RMS(skip), BN", float(bn.iloc[-1]), "g"), ("standard", float(sd.iloc[-1]), "g"),
                   ("BN at the first unit", float(bn.iloc[0]), "g")],
                  float(bn.iloc[-1]) < float(sd.iloc[-1]), "downscaled", "not downscaled"),
             Part(f"ResNet-{top}: BN's exponent", [("a in r ~ l^-a", -slope, "g"), ("units", float(len(bn)), "g")],
                  lo < -slope < hi, "order sqrt(depth)", "not order sqrt(depth)")]
    for d, by in depths.items():
        if d != top and BN in by and len(r := by[BN].at_init(SIG_BRANCH)):
            parts.append(Part(f"ResNet-{d}: BN's ratio at the last unit", [("r", float(r.iloc[-1]), "g")], info=True))
    return c.result(parts, notes)


@claim("M6", "SkipInit trains the residual network without normalisation (batch 128)", figure="modern_resnet",
       experiments=("resnet",), group="modern",
       paper="De & Smith 2020, abstract: \"We use this insight to develop a simple initialization scheme that can "
             "train deep residual networks without normalization.\" (the scheme: SkipInit, a learnable scalar at the "
             "end of each residual branch initialised to zero)",
       rule=f"per lr of resnet: SkipInit's ResNet-20 ends live, its final test accuracy at least "
            f"{TRAINS_FRACTION:.0%} of the way from chance to BN's at that lr (it learns most of what BN learns); "
            f"holds when every lr does. The standard network (no norm, no SkipInit) is shown beside it")
def claim_m6(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    return c.result(trains_parts(R, SKIPINIT, notes), notes)


# ------------------------------------------------------------------------------------------ Zhang et al. 2019
@claim("M7", "Fixup trains the residual network without normalisation as stably as with it", figure="modern_resnet",
       experiments=("resnet",), group="modern",
       paper="Zhang, Dauphin & Ma 2019, abstract: \"We find training residual networks with Fixup to be as stable as "
             "training with normalization -- even for networks with 10,000 layers.\"",
       rule=f"per lr of resnet (plain SGD, one lr for every parameter): Fixup's ResNet-20 ends live with a final "
            f"test accuracy at least {TRAINS_FRACTION:.0%} of the way from chance to BN's at that lr (\"as stable\": "
            f"it trains wherever BN does); holds when every lr does")
def claim_m7(R: Results, c: Claim) -> ClaimResult:
    ran, notes, missing = _need(R, c, c.experiments)
    if missing:
        return missing
    return c.result(trains_parts(R, FIXUP, notes), notes)
