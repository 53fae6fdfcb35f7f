"""The curvature, Theorem 4.1, scale-invariance and signal entries of MEASURES inside the training loop:
training stays bit-for-bit, and the logged values are the library's on the same weights and batch."""

from __future__ import annotations

import pytest
import torch

from bnstudy.config import Config, DataConf, MeasureConf, NormConf, OptimConf, SmallCNNConf, TrainConf
from bnstudy.data import TensorData
from bnstudy.measures.curvature import fixed_subset, hessian_top_eigenvalue
from bnstudy.measures.functional import trainable_params
from bnstudy.models import build_model
from bnstudy.records import read_metrics
from bnstudy.build import LOSSES
from bnstudy.train import Trainer

BEYOND = ("hessian", "grad_curvature", "theorem41", "scale_invariance", "signal")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors; the CPU is shared


def _data(n: int = 48) -> TensorData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 10, 10, generator=g), torch.randint(0, 3, (n,), generator=g)
    return TensorData("synthetic", x, y, x[:16].clone(), y[:16].clone(), 3)


def _config(norm: str, on: bool) -> Config:
    m = MeasureConf()
    if on:
        m.hessian.every, m.hessian.samples, m.hessian.iters, m.hessian.tol = 2, 24, 30, 1e-8
        for name in BEYOND[1:]:
            getattr(m, name).every = 1
    return Config(model=SmallCNNConf(channels=[3, 4], kernel_size=3), norm=NormConf(name=norm), data=DataConf(),
                  optim=OptimConf(lr=0.05), measure=m,
                  train=TrainConf(steps=3, batch_size=12, log_every=1, eval_every=2, eval_size=16,
                                  eval_batch_size=16, checkpoint_every=0, device="cpu", save_final=False),
                  progress=False)


@pytest.mark.parametrize("norm", ["batch", "noisy_batch", "none"])
def test_beyond_measures_leave_training_bit_for_bit_and_log_the_library_values(tmp_path, norm):
    on = Trainer(_config(norm, True), tmp_path / "on", data=_data())
    torch.manual_seed(0)  # the same init as the trainer's (seed 0), for the step-0 Hessian below
    fresh = build_model(on.cfg.model, on.cfg.norm, (1, 10, 10), 3)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), on.parts.model.state_dict().values()))
    on.run()
    off = Trainer(_config(norm, False), tmp_path / "off", data=_data())
    off.run()
    rows_on, rows_off = read_metrics(tmp_path / "on" / "metrics.csv"), read_metrics(tmp_path / "off" / "metrics.csv")
    new = set(rows_on["metric"]) - set(rows_off["metric"])
    assert rows_on[~rows_on["metric"].isin(new)].reset_index(drop=True).equals(rows_off)
    assert all(torch.equal(a, b) for a, b in zip(on.parts.model.state_dict().values(), off.parts.model.state_dict().values()))
    get = lambda metric, step, layer=None: rows_on[(rows_on["metric"] == metric) & (rows_on["step"] == step) & (
        rows_on["layer"].isna() if layer is None else rows_on["layer"] == layer)]["value"].item()
    assert {"hess_lmax_train", "hess_lmax_eval", "batch_sharpness", "beta_limit", "sig_rank"} <= new
    assert sorted(rows_on.loc[rows_on["metric"] == "hess_lmax_train", "step"]) == [0, 2]
    # step 0: the logged lambda_max is the library's on the initial weights and the same subset
    if norm != "noisy_batch":  # (noisy BN: the replayed noise is the step's, not reproducible here)
        with torch.no_grad():  # the step-0 training forward, which moved BN's running statistics before the probe
            fresh(on.parts.data.x_train[on.parts.sampler.indices(0)])
        x, y = fixed_subset(on.parts.data.x_train, on.parts.data.y_train, 24, 0)
        params = {n: p.detach() for n, p in trainable_params(fresh).items()}
        for mode in ("train", "eval"):
            ref = hessian_top_eigenvalue(fresh, LOSSES["cross_entropy"], params, x, y, mode, 12, 30, 1e-8)
            assert get(f"hess_lmax_{mode}", 0) == pytest.approx(ref.top, rel=1e-5)
    for step in range(3):
        assert abs(get("batch_sharpness", step)) <= get("beta_limit", step) * (1 + 1e-9)
        assert {get("sig_rank", step, layer) for layer in (1, 2)} and get("sig_grad_norm", step, 1) > 0
    if norm == "batch":
        for step in range(3):
            for layer in (1, 2):
                assert get("thm41_lhs", step, layer) == pytest.approx(get("thm41_rhs", step, layer), rel=1e-3)
                assert get("thm41_rhs_printed", step, layer) < get("thm41_lhs", step, layer)
                assert abs(get("si_cos", step, layer)) < 1e-4  # BN's eps: not exactly 0
                assert get("si_dnorm2", step, layer) == pytest.approx(get("si_dnorm2_pred", step, layer), rel=1e-2)
    if norm == "none":
        assert not any(m.startswith(("thm41", "si_")) for m in new)  # nothing scale invariant, no BN layer
        assert get("hess_lmax_train", 0) == pytest.approx(get("hess_lmax_eval", 0), rel=1e-5)
