"""Measurements: plain functions of (model, batch, options) returning numbers, usable outside training.

``schedule.py`` wraps them for the training loop (every-N-steps, rows for the CSV); nothing here
writes files or changes the model: probes run on copies of the buffers and replay the RNG state, so
a run with measurements on trains bit-for-bit like the same run with them off.
"""

from bnstudy.measures.activations import LayerMoments, layer_moments, moment_shift, sample_units
from bnstudy.measures.functional import RNGState, loss_and_grads, trainable_params
from bnstudy.measures.ics import gradient_ics
from bnstudy.measures.landscape import eta_grid, landscape

__all__ = [
    "LayerMoments",
    "RNGState",
    "eta_grid",
    "gradient_ics",
    "landscape",
    "layer_moments",
    "loss_and_grads",
    "moment_shift",
    "sample_units",
    "trainable_params",
]
