"""Measurements: plain functions of (model, batch, options) returning numbers, usable outside training,
and ``MEASURES``, the registry of what the training loop can measure (``registry.py``).

Every module of this package is imported here, so a module that registers a measurement
(``@register``) is all it takes to add one: its class brings its config node ``measure.<name>`` (the
``measure`` schema ``MeasureConf`` is built from the registry), its schedule, needs, phases, stated cost
and metric names. ``schedule.Probes`` runs the enabled ones for the training loop. Nothing here writes
files or changes the model: probes run on copies of the buffers and replay the RNG state, so a run
with measurements on trains bit-for-bit like the same run with them off.

Cost per measured step, beyond the training step's own forward+backward (P = landscape points):

| measurement | extra passes | why no more |
| --- | --- | --- |
| training loss / accuracy, loss change, gradient cosine (``grad_cos_prev``) | 0 | read off the training step |
| activation samples, moments, quantiles, moment shift / drift | 0 (a read of the layer, a sort per chosen unit) | forward hooks on the training forward |
| gradient ICS (per layer i in ``ics.layers``) | 1 forward + 1 backward, the backward stopping at W_i | G is the training gradient |
| loss landscape, gradient predictiveness, effective beta (weights) | P forward + P backward, shared by all three | g(w) is the training gradient |
| effective beta w.r.t. activations (``beta_wrt=activations``) | (1 + P) forward + (1 + P) backward, the backward stopping at h | the layers below h are not differentiated |

Each entry states its cost (``MEASURES[name].cost(conf)``); ``python -m experiments.bench`` checks it.
"""

from bnstudy.measures.registry import MEASURES, Measurement, Row, build_measure_conf, metric_names, register
from bnstudy.registry import collect

collect(__name__, __path__)  # every module: its @register runs

MeasureConf = build_measure_conf()

from bnstudy.measures.activations import (ActivationsConf, LayerMoments, layer_moments, moment_shift,  # noqa: E402
                                          sample_units, units_matrix)
from bnstudy.measures.functional import RNGState, loss_and_grads, trainable_params  # noqa: E402
from bnstudy.measures.ics import ICSConf, gradient_ics  # noqa: E402
from bnstudy.measures.landscape import LandscapeConf, LandscapeResult, activation_beta, eta_grid, landscape  # noqa: E402
from bnstudy.measures.loss_change import LossChangeConf  # noqa: E402

__all__ = [
    "MEASURES",
    "ActivationsConf",
    "ICSConf",
    "LandscapeConf",
    "LandscapeResult",
    "LayerMoments",
    "LossChangeConf",
    "MeasureConf",
    "Measurement",
    "RNGState",
    "Row",
    "activation_beta",
    "eta_grid",
    "gradient_ics",
    "landscape",
    "layer_moments",
    "loss_and_grads",
    "metric_names",
    "moment_shift",
    "register",
    "sample_units",
    "trainable_params",
    "units_matrix",
]
