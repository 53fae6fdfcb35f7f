"""Every experiment composes at both scales; a tiny real sweep runs end to end into CSVs and figures."""

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

import bnstudy.config  # noqa: F401
from bnstudy.figures import FIGURES, draw
from bnstudy.records import COLUMNS, read_metrics

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if not p.stem.startswith("_"))


def compose_cfg(overrides):
    """(job config without the hydra node, hydra node)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, hydra_cfg


@pytest.mark.parametrize("scale", ["quick", "paper", "tiny"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, scale):
    cfg, hydra_cfg = compose_cfg([f"experiment={experiment}", f"scale={scale}"])
    obj = OmegaConf.to_object(cfg)  # resolves every interpolation against the schema
    assert obj.name == experiment
    if experiment.startswith("tut_"):  # the tutorials' claims: always the small CNN at quick scale, accuracy only
        assert (obj.model.name, obj.data.name, obj.scale, obj.train.threads) == ("small_cnn", "fashion_mnist", "quick", 1)
        return
    assert obj.scale == scale  # runs are filed under the chosen scale
    assert "norm" in hydra_cfg.sweeper.params
    if experiment.startswith(("resnet", "vit")):  # make modern: the residual network or the transformer
        model = experiment.split("_")[0]
        data = "cifar10" if scale == "paper" else "fashion_mnist"
        assert (obj.model.name, obj.data.name) == (model, data)
        if experiment.endswith("_signal"):  # at initialisation, one step at every scale; the sweep varies the depth
            assert obj.train.steps == 1 and obj.measure.signal.every == 1 and "model.depth" in hydra_cfg.sweeper.params
        else:
            steps = {"paper": 15000, "tiny": 20}.get(scale) or (400 if model == "resnet" or "adam" in experiment
                                                               or "warmup" in experiment else 600)
            assert obj.train.steps == steps
        if model == "resnet":
            assert experiment.endswith("_signal") or obj.model.depth == {"tiny": 8}.get(scale, 20)
            assert obj.model.width == (1.0 if scale == "paper" else 0.25)
        else:
            assert obj.model.patch == (4 if scale == "paper" else 7)  # 32x32 CIFAR, 28x28 Fashion-MNIST
        assert obj.optim.name == ("adam" if experiment in ("vit_adam", "vit_warmup") else "sgd")
        assert obj.optim.warmup == ({"paper": 1500, "quick": 40, "tiny": 5}[scale] if experiment == "vit_warmup" else 0)
    elif experiment.startswith("signal_"):  # at initialisation: one step of the scale's model (or the DLN)
        assert obj.train.steps == 1 and obj.measure.signal.every == 1
        assert (obj.model.name, obj.data.name) == (("dln", "gaussian") if experiment.endswith("_dln") else
                                                   ("vgg", {"paper": "cifar10"}.get(scale, "fashion_mnist")))
    elif experiment.endswith("_dln"):  # the DLN is the paper's at every scale; quick runs 4,000 of its steps
        assert (obj.model.name, obj.model.num_layers, obj.data.name) == ("dln", 25, "gaussian")
        steps = {"quick": (4000, 100), "paper": (10000, 250), "tiny": (40, 10)}[scale]
        assert (obj.train.steps, obj.train.measure_every) == steps  # conf/experiment_scale/
        assert (obj.train.batch_size, obj.train.loss) == (1000, "mse_sum")
    elif experiment == "dln_sweep":  # the loss-scale sweep: the paper's DLN, its full 10,000 steps
        assert (obj.model.name, obj.model.num_layers, obj.train.steps, obj.train.loss) == ("dln", 25, 10000, "mse_sum")
        assert obj.measure.grad_cos_prev.every == 10 and obj.measure.ics.layers == [9, 17]
    elif experiment not in ("quick", "browser"):
        expected = {"quick": ("vgg", 11, "fashion_mnist", 800), "paper": ("vgg", 16, "cifar10", 15000),
                    "tiny": ("vgg", 11, "fashion_mnist", 20)}[scale]
        assert (obj.model.name, obj.model.depth, obj.data.name, obj.train.steps) == expected
    elif experiment == "browser":  # seed 001 at paper scale runs on MNIST
        assert obj.data.name == {"quick": "fashion_mnist", "paper": "mnist", "tiny": "fashion_mnist"}[scale]
    from bnstudy.measures import MEASURES

    measured = [m for m in MEASURES if getattr(getattr(obj.measure, m, None), "every", 0)]
    if experiment not in ("vit_adam", "vit_warmup"):  # those two: what warm-up does to accuracy and loss, only
        assert measured, "every experiment measures something beyond accuracy"


PAPER_LAYERS = {  # (experiment, measurement): (the paper's layers, quick scale's proportional ones)
    ("fig1", "activations"): ([3, 11], [2, 7]),  # Fig. 1c
    ("fig2", "activations"): ([2, 9, 13], [1, 6, 8]),  # Figs. 2 and 8
    ("fig3_cnn", "ics"): ([5, 10], [3, 6]),  # Fig. 3, VGG
    ("fig3_dln", "ics"): ([9, 17], [9, 17]),  # Fig. 3, DLN (the same DLN at both scales)
    ("fig4_dln", "activations"): ([1, 11, 24], [1, 11, 24]),  # Fig. 9
}


@pytest.mark.parametrize("key", PAPER_LAYERS)
def test_the_papers_layers(key):
    """Paper scale measures the layers the paper's figures show; quick scale round(k x 8 / 13) of VGG-11's 8."""
    (experiment, measure), (paper, quick) = key, PAPER_LAYERS[key]
    for scale, layers in (("paper", paper), ("quick", quick), ("tiny", quick)):
        obj = OmegaConf.to_object(compose_cfg([f"experiment={experiment}", f"scale={scale}"])[0])
        assert getattr(obj.measure, measure).layers == layers, (experiment, scale)
    if not experiment.endswith("dln"):  # the README's mapping
        assert [round(k * 8 / 13) for k in paper] == quick


def test_fig3_dln_cfg_job_shows_layers_9_and_17():
    out = subprocess.run([sys.executable, "-m", "experiments.train", "experiment=fig3_dln", "scale=paper", "--cfg",
                          "job"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    ics = OmegaConf.create(out).measure.ics
    assert list(ics.layers) == [9, 17]


def test_paper_scale_is_appendix_a():
    obj = OmegaConf.to_object(compose_cfg(["experiment=fig1", "scale=paper"])[0])
    assert (obj.optim.name, obj.optim.momentum, obj.optim.weight_decay) == ("sgd", 0.0, 0.0)
    assert (obj.train.batch_size, obj.model.init, obj.norm.position) == (128, "glorot", "before")


def test_each_figure_reads_existing_experiments():
    for name, entry in FIGURES.items():
        assert set(entry.experiments) <= set(EXPERIMENTS), name


def test_tiny_sweep_end_to_end(tmp_path):
    """Hydra multirun through the real entry point -> long-format CSVs -> a figure file."""
    sweep = tmp_path / "fig4_dln" / "quick" / "sweep"
    cmd = [sys.executable, "-m", "experiments.train", "-m", "experiment=fig4_dln", "scale=quick", "train.steps=30",
           "train.measure_every=10", "train.log_every=5", "data.num_train=200", "train.batch_size=200",
           "measure.landscape.points=3", "progress=false", f"hydra.sweep.dir={sweep}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2  # norm none, batch
    for job in jobs:
        df = read_metrics(job / "metrics.csv")
        assert list(df.columns) == COLUMNS
        assert sorted(df.loc[df.metric == "train_loss", "step"]) == [5, 10, 15, 20, 25, 30]
        assert sorted(df.loc[df.metric == "beta", "step"]) == [0, 10, 20]
        assert df.loc[df.metric == "landscape_loss", "eta"].nunique() == 3
        assert (df.loc[df.metric == "beta", "value"] > 0).all()
        s = json.loads((job / "summary.json").read_text())
        loop = dt.datetime.fromisoformat(s["finished_at"]) - dt.datetime.fromisoformat(s["started_at"])
        assert loop.total_seconds() == pytest.approx(s["wall_time_s"], abs=0.01)
    paths = draw(["fig4"], tmp_path, "quick", tmp_path / "figures")
    assert [p.name for p in paths] == ["fig4_quick.png", "fig4_quick.pdf"]
    assert all(p.stat().st_size > 10_000 for p in paths)

    footer = FIGURES["fig4"](tmp_path, "quick").texts[-1].get_text()
    assert footer.splitlines() == ["fig4_cnn (quick): no finished runs",
                                   "fig4_dln (quick): sweep sweep; 2 runs, 1 seed, 30 steps"]
