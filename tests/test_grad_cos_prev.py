"""The oscillation metric ``grad_cos_prev`` (cos of successive training gradients) against closed forms,
its zero extra passes, and its state across a resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bnstudy.config import Config, DataConf, DLNConf, MeasureConf, NormConf, OptimConf, TrainConf
from bnstudy.data import TensorData
from bnstudy.measures.grad_cos_prev import GRAD_COS_PREV, GradCosPrev, GradCosPrevConf
from bnstudy.measures.registry import Context, Step
from bnstudy.records import read_metrics
from bnstudy.train import Trainer


class Quadratic(nn.Module):
    """L(w) = 1/2 w^T H w, H = diag(h): gradient descent gives g_t = H (I - lr H)^t w_0 in closed form."""

    def __init__(self, w0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))

    def loss(self, h):
        return 0.5 * (self.w * torch.tensor(h, dtype=torch.float64) * self.w).sum()


def _cosines(h, w0, lr, every, steps):
    model = Quadratic(w0)
    m = GradCosPrev(GradCosPrevConf(every=every), Context(model, None, lr, 0, {}, {}))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    rows = []
    for step in range(steps):
        opt.zero_grad()
        loss = model.loss(h)
        loss.backward()
        if m.due(step):
            rows += m.after_backward(Step(step, None, None, loss=loss))
        opt.step()
    return {r.step: float(r.value) for r in rows if r.metric == GRAD_COS_PREV}


def test_one_dimension_is_the_sign_of_one_minus_lr_h():
    # g_{t+1} = (1 - lr h) g_t: cos = +1 below lr h = 1, -1 above (the period-2 oscillation, lr h in (1, 2))
    assert _cosines([4.0], [1.0], lr=0.1, every=1, steps=4) == pytest.approx({1: 1.0, 2: 1.0, 3: 1.0}, abs=1e-15)
    assert _cosines([4.0], [1.0], lr=0.4, every=1, steps=4) == pytest.approx({1: -1.0, 2: -1.0, 3: -1.0}, abs=1e-15)


def test_two_dimensions_by_hand():
    h, w0, lr = [1.0, 10.0], [3.0, 1.0], 0.15  # 1 - lr h = 0.85 and -0.5: the stiff direction flips
    got = _cosines(h, w0, lr, every=2, steps=6)
    assert sorted(got) == [2, 4]  # every=2: steps 2 and 4 against steps 1 and 3; step 0 has no predecessor
    for t in got:
        g = lambda s: [hi * (1 - lr * hi) ** s * wi for hi, wi in zip(h, w0)]  # g_s = H (I - lr H)^s w0
        a, b = g(t - 1), g(t)
        want = sum(x * y for x, y in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))
        assert got[t] == pytest.approx(want, rel=1e-13)
    # t = 2 written out: g_1 = (1 * 0.85 * 3, 10 * -0.5 * 1) = (2.55, -5), g_2 = g_1 * (0.85, -0.5)
    assert got[2] == pytest.approx((2.55**2 * 0.85 - 25 * 0.5) / math.sqrt((2.55**2 + 25) * (2.55**2 * 0.85**2 + 25 * 0.25)),
                                   rel=1e-13)


# ------------------------------------------------------------------------------------ in the loop
def _regression(n=64, dim=3, seed=0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x, a = torch.randn(n, dim, generator=g), torch.randn(dim, dim, generator=g)
    return TensorData("gaussian_test", x, x @ a.T, x[:16].clone(), (x @ a.T)[:16].clone(), None)


def _config(every: int, steps: int = 8, checkpoint_every: int = 0) -> Config:
    measure = MeasureConf()
    measure.grad_cos_prev.every = every
    return Config(model=DLNConf(num_layers=3, dim=3), norm=NormConf(name="noisy_batch"), data=DataConf(),
                  optim=OptimConf(lr=0.01, momentum=0.9), measure=measure, progress=False,
                  train=TrainConf(steps=steps, batch_size=16, log_every=2, eval_every=0, threads=1,
                                  checkpoint_every=checkpoint_every))


def test_no_extra_pass_and_training_unchanged(tmp_path):
    forwards = {}
    trainers = {}
    for every in (0, 1):
        t = Trainer(_config(every), tmp_path / str(every), data=_regression())
        forwards[every] = 0
        t.parts.model.register_forward_hook(lambda *a, e=every: forwards.__setitem__(e, forwards[e] + 1))
        t.run()
        trainers[every] = read_metrics(tmp_path / str(every) / "metrics.csv")
    assert forwards[1] == forwards[0] == 8  # one forward per step, measured or not
    on, off = trainers[1], trainers[0]
    cos = on[on["metric"] == GRAD_COS_PREV]
    assert list(cos["step"]) == list(range(1, 8)) and cos["value"].between(-1, 1).all()
    assert on[on["metric"] != GRAD_COS_PREV].reset_index(drop=True).equals(off)


def test_resumed_run_measures_as_one_that_never_stopped(tmp_path, monkeypatch):
    """Killed right after the checkpoint at step 3: g_2 must come back from the checkpoint for step 3's row."""
    ref = tmp_path / "ref"
    Trainer(_config(1, checkpoint_every=3), ref, data=_regression()).run()
    save = Trainer.save_checkpoint

    def save_then_die(self, *a, **k):
        save(self, *a, **k)
        raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_config(1, checkpoint_every=3), run_dir, data=_regression()).run()
    monkeypatch.undo()
    summary = Trainer(_config(1, checkpoint_every=3), run_dir, data=_regression()).run()
    assert summary["resumed_from"] == 3
    assert (run_dir / "metrics.csv").read_bytes() == (ref / "metrics.csv").read_bytes()
