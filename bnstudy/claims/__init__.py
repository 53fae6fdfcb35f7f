"""The paper's claims as programmatic checks over the run records (``metrics.csv`` + ``summary.json``).

``check_claims(results_root, scale)`` reads the runs each experiment means at one scale under
``results_root`` (canonical runs: the experiments as configured, ``bnstudy.canonical``) and returns one
:class:`ClaimResult` per registered claim, in report order (``bnstudy.report`` renders them into REPORT.md).
The package, by what each part does:

==============  ========================================================================================
``liveness``    which logged steps count: live windows (not at chance, finite and decreasing loss) and
                a run's final values (a diverged run at chance accuracy and infinite loss): ``LiveRun``
``base``        verdicts, the :data:`CLAIMS` registry (``@claim``, each claim in a group of ``GROUPS``),
                ``Results`` (the runs a claim reads)
``verdicts``    per-seed judging (``judge``: each seed alone, :data:`SEED_RULE`), the evidence over seeds,
                the "why not"; ``check_claims`` (the paper's) and ``check_group``
``accuracy``    claims 1a, 1b, 2, 3a, 3b, 6a, 6b (final accuracy and loss)
``curves``      claims 4a, 4b (gradient ICS) and 5a-5d (loss landscape, predictiveness, beta)
``beyond``      claims B1-B11 of later work (curvature, Theorem 4.1, scale invariance, signal at init),
                registered with ``group="beyond"`` and checked by ``check_group(..., "beyond")``
``tutorials``   claims T1a-T9 of two BatchNorm tutorials (``make tutorials``), registered with
                ``group="tutorials"`` and checked by ``check_group(..., "tutorials")``
``text``        how numbers are written in the evidence
==============  ========================================================================================

Verdicts: ``holds``, ``does not hold``, ``mixed`` (the seeds split with no majority), ``inconclusive`` (the
experiment ran but every comparison it needs was left out, e.g. one side was never live) and ``not run``
(the experiment, or a run the claim needs, is missing). A check sees **one seed's runs** at a time; the
claim's verdict aggregates the seeds' verdicts by :data:`SEED_RULE` and nothing is averaged across seeds
before it is judged. The evidence shows each number as the median over the seeds and its range.

**Adding a claim.** Write a function in the module of its kind (or a new module here: every module of the
package is imported) and register it; the report picks it up, in id order (numbers, then letters: 1a, 1b, 2,
..., 10a)::

    from bnstudy.claims.base import BN, STANDARD, Claim, ClaimResult, Part, Results, claim, experiment_groups, one
    from bnstudy.measures.landscape import BETA  # a metric's name: the constant of the module that writes it

    @claim("7", "BN's effective beta is below standard's", figure="Fig. 4", experiments=("fig4_cnn",),
           paper='§3.1: "the loss exhibits a significantly better “effective” β-smoothness"',
           rule="standard / BN >= 1.25 (why this threshold, in one line)")
    def claim_7(R: Results, c: Claim) -> ClaimResult:
        groups, notes = experiment_groups(R, c.experiments[0])   # {(norm, lr): [the seed's run]}, notes
        if (BN, 0.1) not in groups:
            return c.not_run("fig4_cnn has no BN run at lr 0.1", notes)
        b = one(groups[(BN, 0.1)], lambda r: r.series(BETA).median())
        s = one(groups[(STANDARD, 0.1)], lambda r: r.series(BETA).median())
        return c.result([Part("lr 0.1", {"beta standard": s, "BN": b}, s / b >= 1.25, "BN smaller", "not")], notes)

``paper`` holds the source's verbatim words in quotation marks with their section or figure; the suite's own
wording is registered with ``quote=PARAPHRASE`` and labelled so; ``group="beyond"`` or ``"tutorials"`` reports
a claim in its group's section, never among the paper's (docs/extending.md, "Adding a claim"). A ``LiveRun``
gives ``series(metric, layer)``, ``final_train(metric)``, ``final_eval(metric)`` and ``live_at(steps)``;
thresholds are module constants whose docstring says why (the report cites the rule). Test it in
``tests/test_claims.py`` on a synthetic tree whose verdict is known: holds, does not hold, the border, and
seeds that split.
"""

from bnstudy.claims.base import (BN, CLAIMS, FAILS, GROUPS, HOLDS, INCONCLUSIVE, MIXED, NOT_RUN, PAPER, PARAPHRASE,
                                 STANDARD, VERDICTS, Claim, ClaimResult, Part, Results, claim, ordered)
from bnstudy.claims.liveness import LiveRun
from bnstudy.claims.verdicts import SEED_RULE, check_claims, check_group, judge
from bnstudy.registry import collect

collect(__name__, __path__)  # every module: its @claim registrations run

__all__ = ["BN", "CLAIMS", "FAILS", "GROUPS", "HOLDS", "INCONCLUSIVE", "MIXED", "NOT_RUN", "PAPER", "PARAPHRASE",
           "SEED_RULE", "STANDARD", "VERDICTS", "Claim", "ClaimResult", "LiveRun", "Part", "Results", "check_claims",
           "check_group", "claim", "judge", "ordered"]
