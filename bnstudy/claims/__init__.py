"""The paper's claims as programmatic checks over the run records (``metrics.csv`` + ``summary.json``).

``check_claims(results_root, scale)`` reads the finished runs of one scale under ``results_root`` and
returns one :class:`ClaimResult` per registered claim, in report order (``bnstudy.report`` renders them
into REPORT.md). The package, by what each part does:

==============  ========================================================================================
``liveness``    which logged steps count: live windows (not at chance, finite and decreasing loss) and
                a run's final values (a diverged run at chance accuracy and infinite loss)
``base``        verdicts, the :data:`CLAIMS` registry (``@claim``), ``Results`` (the runs a claim reads),
                seed means and the notes of what was left out
``accuracy``    claims 1a, 1b, 2, 3a, 3b, 6a, 6b (final accuracy and loss)
``curves``      claims 4a, 4b (gradient ICS) and 5a-5d (loss landscape, predictiveness, beta)
``beyond``      claims B1-B11 of later work (curvature, Theorem 4.1, scale invariance, signal at init),
                registered with ``beyond=True`` and checked by ``check_beyond``
``text``        how numbers are written in the evidence
==============  ========================================================================================

Verdicts: ``holds``, ``does not hold``, ``inconclusive`` (the experiment ran but every comparison it needs
was left out, e.g. one side was never live) and ``not run`` (the experiment, or a run the claim needs, is
missing). Each result carries the numbers behind its verdict and a note of the runs/periods left out.
Aggregation: runs are grouped per (norm, lr); a group's scalar is the mean over its seeds (``n`` is
reported). Of several runs of the same (model, data, norm, lr, seed) the latest finished one is used.

**Adding a claim.** Write a function in the module of its kind (or a new module here, imported below) and
register it; the report picks it up, in id order (numbers, then letters: 1a, 1b, 2, ..., 10a)::

    from bnstudy.claims.base import BN, STANDARD, Claim, ClaimResult, Results, claim, combine, experiment_groups

    @claim("7", "BN's effective beta is below standard's at every lr", figure="Fig. 4",
           experiments=("fig4_cnn",), paper="the paper's sentence, quoted")
    def claim_7(R: Results, c: Claim) -> ClaimResult:
        groups, notes = experiment_groups(R, c.experiments[0])   # {(norm, lr): [Run, ...]}, excluded runs
        if (BN, 0.1) not in groups:
            return c.not_run("fig4_cnn has no BN run at lr 0.1", notes)
        outcomes, parts = [], []
        ...  # one outcome (True / False / None = left out) and one evidence part per comparison
        return c.result(combine(outcomes), parts, notes)

A ``Run`` gives ``series(metric, layer)``, ``final_train(metric)``, ``final_eval(metric)`` and
``live_at(steps)``; thresholds are module constants with a docstring each (the report cites them).
Test it in ``tests/test_claims.py`` on a synthetic tree whose verdict is known.
"""

from bnstudy.claims.base import (BEYOND, BN, CLAIMS, FAILS, HOLDS, INCONCLUSIVE, NOT_RUN, STANDARD, VERDICTS, Claim,
                                 ClaimResult, Results, check_beyond, check_claims, claim, ordered)
from bnstudy.claims.liveness import Run

# the claim modules: importing them registers their claims
from bnstudy.claims import accuracy, beyond, curves  # noqa: E402,F401  (isort: skip)

__all__ = ["BEYOND", "BN", "CLAIMS", "FAILS", "HOLDS", "INCONCLUSIVE", "NOT_RUN", "STANDARD", "VERDICTS", "Claim",
           "ClaimResult", "Results", "Run", "check_beyond", "check_claims", "claim", "ordered"]
