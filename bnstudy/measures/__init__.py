"""Measurements: plain functions of (model, batch, options) returning numbers, usable outside training.

``schedule.py`` wraps them for the training loop (every-N-steps, rows for the CSV); nothing here
writes files or changes the model: probes run on copies of the buffers and replay the RNG state, so
a run with measurements on trains bit-for-bit like the same run with them off.

Cost per measured step, beyond the training step's own forward+backward (P = landscape points):

| measurement | extra passes | why no more |
| --- | --- | --- |
| training loss / accuracy, loss change | 0 | read off the training forward |
| activation samples, moments, quantiles, moment shift / drift | 0 (a read of the layer, a sort per chosen unit) | forward hooks on the training forward |
| gradient ICS (per layer i in ``ics.layers``) | 1 forward + 1 backward, the backward stopping at W_i | G is the training gradient |
| loss landscape, gradient predictiveness, effective beta (weights) | P forward + P backward, shared by all three | g(w) is the training gradient |
| effective beta w.r.t. activations (``beta_wrt=activations``) | (1 + P) forward + (1 + P) backward, the backward stopping at h | the layers below h are not differentiated |
"""

from bnstudy.measures.activations import LayerMoments, layer_moments, moment_shift, sample_units, units_matrix
from bnstudy.measures.functional import RNGState, loss_and_grads, trainable_params
from bnstudy.measures.ics import gradient_ics
from bnstudy.measures.landscape import LandscapeResult, activation_beta, eta_grid, landscape

__all__ = [
    "LandscapeResult",
    "LayerMoments",
    "RNGState",
    "activation_beta",
    "eta_grid",
    "gradient_ics",
    "landscape",
    "layer_moments",
    "loss_and_grads",
    "moment_shift",
    "sample_units",
    "trainable_params",
    "units_matrix",
]
