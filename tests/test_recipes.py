"""docs/extending.md's recipes, followed as written: a norm (one registration and one config file), a measurement
(one module), an experiment with its figure (one config and one module) and a claim (one module).

The fast tests run a recipe's code in a temporary registry (``Registry.restored``). The end-to-end test copies
the suite, adds each recipe's file exactly as the page shows it (a file that exists gets the block appended:
the norm's registration in ``bnstudy/norms.py``) and edits nothing else; then it trains the new experiment,
draws the new figure, writes REPORT.md and runs the registry and import checks in the copy. If the page and the
code drift apart, this fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from bnstudy.measures import MEASURES
from bnstudy.measures.registry import build_measure_conf
from bnstudy.measures.scale_invariance import SCALE_METRICS
from bnstudy.measures.schedule import Probes
from bnstudy.models import MODELS, VGGConf, build_model, glorot_init
from bnstudy.norms import NORMS, NormConf, norm_look
from bnstudy.build import LOSSES

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"
RECIPE_FILES = {"bnstudy/norms.py", "conf/norm/meanabs.yaml", "bnstudy/measures/weight_norm.py",
                "conf/experiment/weight_norm.yaml", "bnstudy/figures/weight_norm.py", "bnstudy/claims/weight_norm.py"}


def recipes() -> dict[str, str]:
    """{path: code} of every fenced block of the page whose first line names a file (``# bnstudy/...``), that
    line left out."""
    out = {}
    for code in re.findall(r"```(?:python|yaml)\n(.*?)```", DOC.read_text(), re.S):
        first, _, rest = code.partition("\n")
        if m := re.fullmatch(r"# ((?:bnstudy|conf)/[\w/]+\.(?:py|yaml))", first.strip()):
            out[m.group(1)] = rest
    return out


def test_the_page_shows_one_file_per_step_and_nothing_else():
    """A norm: its registration and a config file; a measurement, a figure, a claim: a module each; the
    experiment: its config. Nothing else is to be edited."""
    assert set(recipes()) == RECIPE_FILES


# ------------------------------------------------------------------------------------------ the norm
def _meanabs_norm():
    """The page's norm registered in NORMS (call inside ``NORMS.restored()``)."""
    import bnstudy.norms

    exec(compile(recipes()["bnstudy/norms.py"], "docs/extending.md", "exec"), vars(bnstudy.norms))


def test_a_norm_registered_without_optional_metadata_is_drawn_measured_and_built():
    """The RMS norm gives no label, colour or scale invariance: figures label it by its name in a colour of its
    own, every model builds with it, and its blocks are scale-invariant (asked of the module), so the
    scale-invariance measurement writes its rows (a list of known norm classes gave it none)."""
    with NORMS.restored():
        _meanabs_norm()
        entry = NORMS["meanabs"]
        assert (entry.label, entry.colour, entry.scale_invariant, entry.batch_statistics) == (None, None, True, False)
        label, colour = norm_look("meanabs")
        assert label == "meanabs" and colour not in {n.colour for n in NORMS.values() if n.colour}
        for name, model in MODELS.items():
            cfg = model.schema(**({"width": 0.125} if name == "vgg" else {}))
            shape = (10,) if name == "dln" else (1, 28, 28)
            net = build_model(cfg, NormConf(name="meanabs"), shape, None if name == "dln" else 10)
            # (a ViT's units are not: the skip path carries the unscaled input past the norm)
            assert name == "vit" or all(b.scale_invariant for b in net.blocks), name
            assert net(torch.randn(4, *shape)).shape[0] == 4

        torch.manual_seed(0)
        net = build_model(VGGConf(depth=11, width=0.125), NormConf(name="meanabs"), (1, 28, 28), 10)
        glorot_init(net)
        measure = build_measure_conf()()
        measure.scale_invariance.every = 1
        probes = Probes(measure, net, LOSSES["cross_entropy"], lr=0.1, seed=0)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
        due = probes.due(0)
        probes.before_forward(0, due)
        loss = LOSSES["cross_entropy"](net(x), y)
        opt.zero_grad()
        loss.backward()
        before = probes.snapshot()
        opt.step()
        rows = probes.after_step(0, x, y, before, None)
        assert {(r.metric, r.layer) for r in rows} == {(m, i) for m in SCALE_METRICS for i in range(1, 9)}
    assert "meanabs" not in NORMS


# ------------------------------------------------------------------------------------------ end to end
def _copy_of_the_suite(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("bnstudy", "conf", "experiments", "hydra_plugins", "tests"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "Makefile"):
        shutil.copy(ROOT / name, dest / name)
    for rel, code in recipes().items():
        path = dest / rel
        if path.exists():
            path.write_text(path.read_text().rstrip("\n") + "\n\n\n" + code)
        else:
            path.write_text(code)
    return dest


@pytest.mark.slow
def test_the_recipes_as_written_train_draw_judge_and_report(tmp_path):
    suite = _copy_of_the_suite(tmp_path / "suite")
    env = {**os.environ, "PYTHONPATH": str(suite), "TQDM_DISABLE": "1"}

    def run(*args: str, timeout: int = 600) -> str:
        done = subprocess.run([sys.executable, *args], cwd=suite, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    where = run("-c", "import bnstudy.norms, bnstudy.figures; print(bnstudy.norms.__file__)")
    assert where.strip() == str(suite / "bnstudy" / "norms.py")  # the copy's code, not this checkout's
    run("-m", "experiments.train", "-m", "experiment=weight_norm", "scale=tiny", "seed=0", "progress=false",
        "hydra.sweep.dir=results/weight_norm/tiny/s")
    jobs = {}
    for summary in sorted((suite / "results" / "weight_norm" / "tiny" / "s").glob("*/summary.json")):
        jobs[json.loads(summary.read_text())["config"]["norm"]["name"]] = summary.parent
    assert sorted(jobs) == ["batch", "meanabs", "none"]
    rows = {norm: (d / "metrics.csv").read_text() for norm, d in jobs.items()}
    assert all(",weight_norm,1,," in text and ",weight_norm,2,," in text for text in rows.values())
    assert ",si_wnorm,8,," in rows["meanabs"] and ",si_wnorm,8,," in rows["batch"]  # scale-invariant blocks
    assert ",si_wnorm," not in rows["none"]

    run("-m", "experiments.figures", "weight_norm", "--scale", "tiny", "--results", "results")
    figures = suite / "results" / "figures"
    assert (figures / "weight_norm_tiny.png").stat().st_size > 10_000
    drawn_from = "weight_norm (tiny): sweep s; 3 runs, 1 seed, 20 steps"
    assert (figures / "weight_norm_tiny.runs.txt").read_text() == drawn_from + "\n"

    run("-m", "experiments.report", "--results", "results", "--scale", "tiny")
    report = (suite / "results" / "REPORT.md").read_text()
    assert "### weight_norm_tiny" in report
    assert (f"*The norm of the first blocks' weights over training, standard vs BN vs the RMS norm. Drawn from: "
            f"{drawn_from}.*") in report
    w1 = next(line for line in report.splitlines() if line.startswith("| W1. With BN, SGD grows the norm"))
    assert re.search(r"\| \*\*(holds|does not hold)\*\* \|", w1) and r"lr 0.1: \|\|W_1\|\| end / start " in w1

    run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_registries.py", "tests/test_imports.py")


def test_the_measurement_recipe_registers_and_measures(monkeypatch):
    """The page's measurement module, run in a temporary registry (tests/test_registry.py checks what it
    measures)."""
    module = types.ModuleType("bnstudy.measures.weight_norm")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with MEASURES.restored():
        exec(compile(recipes()["bnstudy/measures/weight_norm.py"], "docs/extending.md", "exec"), vars(module))
        conf = build_measure_conf()()
        assert conf.weight_norm.every == 0 and module.WEIGHT_NORM in MEASURES
    assert "weight_norm" not in MEASURES
