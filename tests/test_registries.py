"""Configs mirror code: every registry and its conf/ group hold the same names, and every name the
figures, claims and specialising configs refer to exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bnstudy.claims import CLAIMS
from bnstudy.data import DATASETS
from bnstudy.figures import FIGURES
from bnstudy.models import MODELS
from bnstudy.norms import NORM_LOOK, NORMS
from bnstudy.build import OPTIMIZERS

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("group, registry", [("norm", NORMS), ("model", MODELS), ("data", DATASETS),
                                             ("optim", OPTIMIZERS)])
def test_each_registry_and_its_conf_group_hold_the_same_names(group, registry, compose_config):
    """Every option composes to a name its registry knows, and every registry entry has an option of its name
    (a variant such as model=vgg_quick may share a name: it is vgg, narrower)."""
    names = {opt: compose_config(f"{group}={opt}")[group]["name"] for opt in options(group)}
    assert set(names.values()) == set(registry), f"conf/{group} vs the {group} registry"
    assert set(registry) <= set(names), f"every {group} entry needs conf/{group}/<its name>.yaml"
    assert all(names[n] == n for n in registry), f"conf/{group}/<name>.yaml must set name: <name>"


def test_every_shipped_norm_has_a_figure_label_and_colour():
    assert set(NORM_LOOK) == set(NORMS)
    assert len({colour for _, colour in NORM_LOOK.values()}) == len(NORM_LOOK)


def test_each_scale_labels_its_runs_with_its_own_name(compose_config):
    for scale in options("scale"):
        assert compose_config(f"scale={scale}")["scale"] == scale
    assert compose_config()["scale"] == "none" and compose_config("experiment=fig1")["scale"] == "none"


def test_experiments_figures_claims_and_specialising_configs_name_what_exists():
    experiments = set(options("experiment"))
    for stem in experiments:
        assert OmegaConf.load(CONF / "experiment" / f"{stem}.yaml")["name"] == stem
    assert {e for _, exps in FIGURES.values() for e in exps} <= experiments
    assert {e for c in CLAIMS.values() for e in c.experiments} <= experiments
    pairs = {f"{e}_{s}" for e in experiments for s in options("scale")}
    assert set(options("experiment_scale")) <= pairs  # conf/experiment_scale/<experiment>_<scale>.yaml
