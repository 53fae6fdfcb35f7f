"""final.pt and ``python -m experiments.curvature`` on a finished run: new rows, the run's files untouched."""

from __future__ import annotations

import pytest
import torch

from bnstudy.config import Config, DataConf, DLNConf, MeasureConf, NormConf, OptimConf, TrainConf
from bnstudy.measures.curvature import fixed_subset, hessian_top_eigenvalue
from bnstudy.measures.functional import trainable_params
from bnstudy.posthoc import POSTHOC_CSV, POSTHOC_JSON, PosthocConf, measure_run
from bnstudy.records import read_json
from bnstudy.build import LOSSES
from bnstudy.train import Trainer
from experiments import curvature as cli


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors; the CPU is shared


def _run(tmp_path, norm: str, save_final: bool = True):
    cfg = Config(model=DLNConf(num_layers=4, dim=4), norm=NormConf(name=norm),
                 data=DataConf(name="gaussian", dim=4, num_train=64, num_test=16), optim=OptimConf(lr=1e-3),
                 measure=MeasureConf(),
                 train=TrainConf(steps=5, batch_size=32, loss="mse_sum", log_every=5, eval_every=0,
                                 checkpoint_every=0, device="cpu", save_final=save_final),
                 progress=False)
    trainer = Trainer(cfg, tmp_path)
    trainer.run()
    return trainer


def test_final_weights_are_saved_and_load_weights_only(tmp_path):
    trainer = _run(tmp_path / "on", "batch")
    state = torch.load(tmp_path / "on" / "final.pt", weights_only=True)
    ref = trainer.parts.model.state_dict()
    assert state.keys() == ref.keys() and all(torch.equal(state[k], ref[k]) for k in ref)  # running stats too
    _run(tmp_path / "off", "batch", save_final=False)
    assert not (tmp_path / "off" / "final.pt").exists()


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_posthoc_measures_a_finished_run_without_touching_it(tmp_path, norm):
    trainer = _run(tmp_path, norm)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    conf = PosthocConf(samples=64, iters=30, tol=1e-8)
    rows = measure_run(tmp_path, conf)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name in before}
    assert after == before  # metrics.csv, summary.json, final.pt: byte for byte
    got = rows.set_index(["metric", rows["layer"].fillna(0)])["value"]
    assert set(rows["step"]) == {5}
    # the same numbers from the library on the trainer's own final model
    m, data = trainer.parts.model, trainer.parts.data
    x, y = fixed_subset(data.x_train, data.y_train, 64, 0)
    params = {n: p.detach() for n, p in trainable_params(m).items()}
    for mode_name in ("train", "eval"):
        ref = hessian_top_eigenvalue(m, LOSSES["mse_sum"], params, x, y, mode_name, 32, 30, 1e-8)
        assert got[(f"hess_lmax_{mode_name}", 0)] == pytest.approx(ref.top, rel=1e-6)
    if norm == "none":  # no batch statistics: train and eval mode are one function
        assert got[("hess_lmax_train", 0)] == pytest.approx(got[("hess_lmax_eval", 0)], rel=1e-5)
        assert not rows["metric"].str.startswith("thm41").any()
    else:
        assert got[("hess_lmax_train", 0)] != pytest.approx(got[("hess_lmax_eval", 0)], rel=1e-3)
        for layer in (1, 2, 3):
            assert got[("thm41_lhs", layer)] == pytest.approx(got[("thm41_rhs", layer)], rel=1e-3)
    assert abs(got[("batch_sharpness", 0)]) <= got[("beta_limit", 0)]
    assert {("sig_rank", i) for i in (1, 2, 3)} <= set(got.index)
    assert read_json(tmp_path / POSTHOC_JSON)["samples"] == 64
    # rerun: the rows of the recomputed metrics are replaced, not duplicated
    measure_run(tmp_path, conf)
    text = (tmp_path / POSTHOC_CSV).read_text()
    assert text.count("hess_lmax_train") == 1


def test_cli_refuses_a_run_without_final_weights_in_one_line(tmp_path, capsys):
    _run(tmp_path, "batch", save_final=False)
    assert cli.main([str(tmp_path), "--samples", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "final.pt is missing" in err and "train.save_final=true" in err
    assert not (tmp_path / POSTHOC_CSV).exists()
    assert cli.main([str(tmp_path / "nowhere")]) == 2
    assert "summary.json cannot be read" in capsys.readouterr().err
