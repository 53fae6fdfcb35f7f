"""The measurement registry ``MEASURES``: what each entry declares, the config built from it, and a new
entry run by the training loop's dispatcher (``Probes``) without a word about it anywhere else."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch

from bnstudy.config import ConfigError, DLNConf, NormConf
from bnstudy.measures import MEASURES, MeasureConf, Row, metric_names
from bnstudy.measures.functional import RNGState
from bnstudy.measures.registry import (PHASES, Cost, Measurement, Step, build_measure_conf, checks, enabled,
                                       ordered, schemas)
from bnstudy.measures.schedule import Probes
from bnstudy.models import build_model
from bnstudy.build import LOSSES, validate
from bnstudy.train import LOOP_METRICS

MSE = LOSSES["mse_sum"]


def test_every_entry_declares_its_config_needs_phases_cost_and_metrics():
    assert {"activations", "ics", "landscape", "beta_act", "loss_change"} <= set(MEASURES)
    owners = schemas()
    assert [f.name for f in dataclasses.fields(MeasureConf)] == sorted(owners) + ["fix_noise"]
    names_seen: dict[str, str] = {}
    for name, cls in MEASURES.items():
        assert cls.name == name and cls.node in owners and set(cls.phases) <= set(PHASES) and cls.phases
        conf = owners[cls.node]()
        assert "every" in {f.name for f in dataclasses.fields(conf)}
        assert not cls.enabled(conf)  # off by default: a new measurement changes no existing run
        cost = cls.cost(conf)
        assert isinstance(cost, Cost) and cost.passes >= 0 and cost.why
        for metric in cls.metrics(conf):
            assert metric not in names_seen, f"{metric} declared by {names_seen.get(metric)} and {name}"
            names_seen[metric] = name
    assert metric_names() == [m for c in ordered() for m in c.metrics(owners[c.node]())]
    assert sorted(metric_names()) == sorted(names_seen)
    assert not set(metric_names()) & set(LOOP_METRICS)


def test_row_names_its_columns_and_stays_a_csv_tuple():
    r = Row(7, "ics_cos", 0.5, layer=3)
    assert (r.step, r.metric, r.layer, r.unit, r.eta, r.value) == (7, "ics_cos", 3, None, None, 0.5)
    assert tuple(r) == (7, "ics_cos", 3, None, None, 0.5)  # the CSV's column order
    with pytest.raises(TypeError):
        Row(7, "ics_cos", 3, None, None, 0.5)  # layer, unit, eta only by keyword


def test_validate_takes_the_schedules_and_layers_from_the_registry():
    from bnstudy.config import Config, DataConf, OptimConf, TrainConf

    def cfg(**measure):
        m = MeasureConf()
        for dotted, v in measure.items():
            node, key = dotted.split("__")
            setattr(getattr(m, node), key, v)
        return Config(model=DLNConf(), norm=NormConf(), data=DataConf(), optim=OptimConf(), measure=m,
                      train=TrainConf())

    for node in schemas():
        with pytest.raises(ConfigError, match=f"measure.{node}.every=-1 must be >= 0"):
            validate(cfg(**{f"{node}__every": -1}))
    with pytest.raises(ConfigError, match=r"measure.ics.layers=\[2, 9\]: layers must lie in 1..4"):
        validate(cfg(ics__every=1, ics__layers=[2, 9]), n_layers=4)
    validate(cfg(ics__every=0, ics__layers=[2, 9]), n_layers=4)  # off: its layers are not checked
    with pytest.raises(ConfigError, match="measure.landscape.beta_layer"):
        validate(cfg(landscape__every=1, landscape__beta_wrt="activations", landscape__beta_layer=5), n_layers=4)


# ----------------------------------------------------------------------- a new measurement, end to end
@dataclass
class ToyConf:
    every: int = 0
    layer: int = 1


class Toy(Measurement):
    """Reads everything a measurement can ask for, and reports what it got."""

    name = "toy"
    Conf = ToyConf
    phases = ("after_backward", "after_step")
    needs_rng = True
    needs_snapshot = True

    def __init__(self, conf, ctx):
        super().__init__(conf, ctx)
        self.calls = 0

    @classmethod
    def cost(cls, conf):
        return Cost(0, "test")

    @classmethod
    def metrics(cls, conf):
        return ["toy_act_sum", "toy_moved"]

    @classmethod
    def hook_layers(cls, conf):
        return [conf.layer]

    def after_backward(self, s: Step):
        assert s.rng is not None and s.before is None
        torch.rand(3)  # a draw: the dispatcher puts the RNG back after the phase
        self.calls += 1
        return [Row(s.step, "toy_act_sum", s.captured[self.conf.layer].sum(), layer=self.conf.layer)]

    def after_step(self, s: Step):
        params, grads = s.before
        w = self.ctx.weight_of[1]
        moved = dict(self.ctx.model.named_parameters())[w].detach() - params[w]
        return [Row(s.step, "toy_moved", moved.abs().sum())]

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = state["calls"]


def test_a_new_measurement_is_one_registered_class(monkeypatch):
    monkeypatch.setitem(MEASURES, "toy", Toy)
    Toy.node = "toy"
    Conf = build_measure_conf()  # what bnstudy.measures does at import, with the new entry
    measure = Conf(toy=ToyConf(every=2, layer=2))
    assert [c.name for c in enabled(measure)] == ["toy"] and all(ok for ok, _ in checks(measure))
    torch.manual_seed(0)
    model = build_model(DLNConf(num_layers=3, dim=3), NormConf(name="noisy_batch"), (3,), None)
    probes = Probes(measure, model, MSE, lr=0.1, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = {}
    spy = model.block(2).probe.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o.detach().clone()))
    rows = []
    for step in range(4):
        x, y = torch.randn(5, 3), torch.randn(5, 3)
        due = probes.due(step)
        assert (due.hooks, due.rng, due.snapshot, due.after_backward, due.after_step) == (step % 2 == 0,) * 5
        rng = RNGState.capture() if due.rng else None
        probes.before_forward(step, due)
        loss = MSE(model(x), y)
        opt.zero_grad()
        loss.backward()
        state = torch.get_rng_state()
        if due.after_backward:
            rows += probes.after_backward(step, x, y, loss, rng)
        assert torch.equal(torch.get_rng_state(), state)
        before = probes.snapshot() if due.snapshot else None
        grad = model.block(1).layer.weight.grad.clone()
        opt.step()
        if due.after_step:
            rows += probes.after_step(step, x, y, before, rng)
            moved = [float(r.value) for r in rows if r.metric == "toy_moved" and r.step == step]
            assert moved == [pytest.approx((0.1 * grad).abs().sum().item(), rel=1e-5)]
        if step % 2 == 0:
            sums = [float(r.value) for r in rows if r.metric == "toy_act_sum" and r.step == step]
            assert sums == [pytest.approx(seen["h"].sum().item(), rel=1e-6)]
    assert set(model.block(2).probe._forward_hooks) == {spy.id}  # the dispatcher's hooks are gone
    assert [r.step for r in rows] == [0, 0, 2, 2] and probes.state_dict() == {"toy": {"calls": 2}}


def test_the_readme_example_is_a_working_measurement(monkeypatch):
    """The module shown under "Adding a measurement" registers, is built into the config and measures."""
    import re
    import sys
    import types
    from pathlib import Path

    import bnstudy.measures.registry as registry

    readme = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    section = readme.split("### Adding a measurement", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("bnstudy.measures.weight_norm")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with MEASURES.restored():  # the example's entry goes with the test
        exec(compile(code, "README.md", "exec"), module.__dict__)
        assert "weight_norm" in registry.MEASURES
        _example_measures(measure=build_measure_conf()())
    assert "weight_norm" not in MEASURES


def _example_measures(measure):
    measure.weight_norm.every, measure.weight_norm.layers = 2, [1, 2]
    torch.manual_seed(0)
    model = build_model(DLNConf(num_layers=3, dim=3), NormConf(name="batch"), (3,), None)
    probes = Probes(measure, model, MSE, lr=0.1, seed=0)
    x, y = torch.randn(5, 3), torch.randn(5, 3)
    loss = MSE(model(x), y)
    loss.backward()
    assert probes.due(2).after_backward and not probes.due(1).after_backward
    rows = probes.after_backward(2, x, y, loss, None)
    assert [(r.metric, r.layer) for r in rows] == [("weight_norm", 1), ("weight_norm", 2)]
    assert float(rows[1].value) == pytest.approx(torch.linalg.norm(model.block(2).layer.weight).item())
    assert [m for ok, m in checks(measure, n_layers=1) if not ok] == [
        "measure.weight_norm.layers=[1, 2]: layers must lie in 1..1 for this model"]


def test_a_config_recorded_before_a_measurement_existed_reads_as_it_off():
    """make verify compares configs key by key: a reference run recorded before grad_cos_prev was
    registered has no measure.grad_cos_prev node, and means it off."""
    from omegaconf import OmegaConf

    from bnstudy.measures.registry import node_defaults
    from bnstudy.records import flatten
    from bnstudy.verify import Side, config_changes

    new = OmegaConf.to_container(OmegaConf.structured(MeasureConf()))
    old = {k: v for k, v in new.items() if k != "grad_cos_prev"}
    ref, yours = Side(None, {"config": {"measure": old}}), Side(None, {"config": {"measure": new}})
    assert config_changes(ref, yours) == []
    on = {**new, "grad_cos_prev": {"every": 5}}
    assert config_changes(ref, Side(None, {"config": {"measure": on}})) == ["measure.grad_cos_prev.every 0 -> 5"]
    assert flatten({"measure": new}) == {**node_defaults(), "measure.fix_noise": True}  # every node, every field
