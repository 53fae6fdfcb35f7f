"""The activations measurement's moment shift between successive steps and its signed drift (Fig. 8),
against the moments of the training forward's own activations, taken by a spy hook at every step."""

from __future__ import annotations

import pytest
import torch

from bnstudy.config import ActivationsConf, DLNConf, MeasureConf, NormConf
from bnstudy.measures.schedule import Probes
from bnstudy.models import build_model
from bnstudy.build import LOSSES

MSE = LOSSES["mse_sum"]
F32 = dict(rel=1e-5, abs=1e-7)  # the measurement sums float32 activations; the spy averages them in float64


def _train(shift: str, drift: str, steps: int = 7):
    """A 3-layer DLN, activations of layer 2 every 3 steps; returns (rows by step, layer-2 unit means by step)."""
    torch.manual_seed(0)
    model = build_model(DLNConf(num_layers=3, dim=3), NormConf(name="none"), (3,), None)
    cfg = MeasureConf(activations=ActivationsConf(every=3, layers=[2], units=3, samples=2, quantiles=[],
                                                  shift=shift, drift=drift))
    probes = Probes(cfg, model, MSE, lr=0.01, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    means, rows = {}, {}
    model.block(2).probe.register_forward_hook(lambda m, i, o: means.__setitem__(len(means), o.detach().double().mean(0)))
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        x, y = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
        due = probes.due(step)
        probes.before_forward(step, due)
        loss = MSE(model(x), y)
        opt.zero_grad()
        loss.backward()
        rows[step] = probes.after_backward(step, x, y, loss, None) if due.after_backward else []
        opt.step()
    return rows, means


def _get(rows, metric, unit):
    return [float(r[5]) for r in rows if r[1] == metric and r[3] == unit]


def test_shift_between_successive_steps_and_signed_drift():
    rows, m = _train("successive", "signed")
    assert rows[2] == [] and rows[5] == []  # the steps before a measured one: moments kept, no rows
    assert _get(rows[0], "moment_shift_mean", 0) == []  # no step before step 0
    for t in (3, 6):
        for u in range(3):
            assert _get(rows[t], "moment_shift_mean", u) == pytest.approx([abs(m[t][u] - m[t - 1][u]).item()], **F32)
            assert _get(rows[t], "moment_drift_mean", u) == pytest.approx([(m[t][u] - m[0][u]).item()], **F32)  # signed
        layer = _get(rows[t], "moment_drift_mean", None)  # the layer row: the mean |drift| over its units
        assert layer == pytest.approx([(m[t] - m[0]).abs().mean().item()], **F32)
    assert any(_get(rows[t], "moment_drift_mean", u)[0] < 0 for t in (3, 6) for u in range(3))


def test_default_shift_between_measured_steps_and_absolute_drift():
    rows, m = _train("measured", "abs")
    assert rows[2] == [] and rows[5] == []  # nothing due there
    for u in range(3):
        assert _get(rows[3], "moment_shift_mean", u) == pytest.approx([abs(m[3][u] - m[0][u]).item()], **F32)
        assert _get(rows[6], "moment_shift_mean", u) == pytest.approx([abs(m[6][u] - m[3][u]).item()], **F32)
        assert _get(rows[6], "moment_drift_mean", u) == pytest.approx([abs(m[6][u] - m[0][u]).item()], **F32)


def test_bad_option_is_refused_by_name():
    from bnstudy.measures.registry import checks

    bad = MeasureConf(activations=ActivationsConf(every=1, shift="between"))
    msgs = [msg for ok, msg in checks(bad, 3) if not ok]
    assert msgs == ["measure.activations.shift='between'; valid: ['measured', 'successive']"]
