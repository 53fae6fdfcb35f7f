"""Configs mirror code: every registry and its conf/ group hold the same names, and every name the
figures, claims and specialising configs refer to exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from bnstudy import reference
from bnstudy.claims import CLAIMS
from bnstudy.data import DATASETS
from bnstudy.figures import FIGURES
from bnstudy.models import MODELS
from bnstudy.norms import NORMS, norm_look
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


def test_every_norm_is_drawn_in_a_colour_of_its_own():
    """A label and a colour are optional in a norm's registration: every registered norm still gets both, no two
    norms alike."""
    looks = [norm_look(n) for n in NORMS]
    assert len({colour for _, colour in looks}) == len(NORMS) and all(label for label, _ in looks)


def test_each_scale_labels_its_runs_with_its_own_name(compose_config):
    for scale in options("scale"):
        assert compose_config(f"scale={scale}")["scale"] == scale
    assert compose_config()["scale"] == "none" and compose_config("experiment=fig1")["scale"] == "none"


def test_experiments_figures_claims_and_specialising_configs_name_what_exists():
    experiments = set(options("experiment"))
    for stem in experiments:
        assert OmegaConf.load(CONF / "experiment" / f"{stem}.yaml")["name"] == stem
    assert {e for f in FIGURES.values() for e in f.experiments} <= experiments
    tables = {path.parts[0] for path in reference.tables()}  # make tutorials' CSVs, which two tutorial claims read
    assert {e for c in CLAIMS.values() for e in c.experiments} <= experiments | tables
    pairs = {f"{e}_{s}" for e in experiments for s in options("scale")}
    assert set(options("experiment_scale")) <= pairs  # conf/experiment_scale/<experiment>_<scale>.yaml
