"""The measurement schedule (``bnstudy.measures.schedule.Probes``): what is due when, and its rows."""

from __future__ import annotations

import pytest
import torch

from bnstudy.config import ActivationsConf, DLNConf, ICSConf, LandscapeConf, LossChangeConf, MeasureConf, NormConf
from bnstudy.measures.loss_change import LOSS_CHANGE
from bnstudy.measures.schedule import Probes, is_due
from bnstudy.models import build_model
from bnstudy.build import LOSSES

MSE = LOSSES["mse_sum"]


def _model():
    torch.manual_seed(0)
    return build_model(DLNConf(num_layers=3, dim=3), NormConf(name="batch"), (3,), None)


def test_is_due_and_due_flags():
    assert [s for s in range(7) if is_due(3, s)] == [0, 3, 6]
    assert not any(is_due(0, s) for s in range(5))
    cfg = MeasureConf(activations=ActivationsConf(every=2), ics=ICSConf(every=3), landscape=LandscapeConf(every=5),
                      loss_change=LossChangeConf(every=4))
    p = Probes(cfg, _model(), MSE, lr=0.1, seed=0)
    d = p.due(3)  # ICS only (and step 4's loss change needs L_3)
    assert (d.hooks, d.snapshot, d.rng, d.after_backward, d.after_step) == (False, True, True, True, True)
    d = p.due(5)
    assert (d.hooks, d.snapshot, d.rng, d.after_backward, d.after_step) == (False, False, True, True, False)
    d = p.due(4)  # activations (hooks) and the loss change
    assert (d.hooks, d.snapshot, d.rng, d.after_backward, d.after_step) == (True, False, False, True, False)
    d = p.due(13)
    assert (d.hooks, d.snapshot, d.rng, d.after_backward, d.after_step) == (False, False, False, False, False)
    cfg.fix_noise = False
    assert not Probes(cfg, _model(), MSE, lr=0.1, seed=0).due(0).rng


def _losses_and_rows(every: int, steps: int, probes: Probes | None = None):
    model = _model()
    probes = probes or Probes(MeasureConf(loss_change=LossChangeConf(every=every)), model, MSE, lr=0.1, seed=0)
    g = torch.Generator().manual_seed(1)
    losses, rows = [], []
    for step in range(steps):
        x, y = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
        loss = MSE(model(x), y)
        losses.append(loss.item())
        if probes.due(step).after_backward:
            rows += probes.after_backward(step, x, y, loss, None)
    return losses, rows, probes


def test_loss_change_is_the_difference_of_successive_losses():
    losses, rows, _ = _losses_and_rows(every=2, steps=7)
    got = {r.step: float(r.value) for r in rows if r.metric == LOSS_CHANGE}
    assert sorted(got) == [2, 4, 6]  # step 0 has no predecessor
    for t, v in got.items():
        assert v == pytest.approx(abs(losses[t] - losses[t - 1]), rel=1e-6)


def test_probe_state_round_trips():
    _, _, probes = _losses_and_rows(every=1, steps=3)
    state = probes.state_dict()
    fresh = Probes(MeasureConf(loss_change=LossChangeConf(every=1)), _model(), MSE, lr=0.1, seed=0)
    fresh.load_state_dict(state)
    assert state == {LOSS_CHANGE: {"prev_loss": probes.entries[0].prev}} and probes.entries[0].prev is not None
    assert torch.equal(fresh.entries[0].prev, probes.entries[0].prev)


def test_unknown_beta_variant_fails_with_its_key():
    cfg = MeasureConf(landscape=LandscapeConf(every=1, points=2, beta_wrt="hessian"))
    with pytest.raises(ValueError, match="beta_wrt"):
        Probes(cfg, _model(), MSE, lr=0.1, seed=0)
