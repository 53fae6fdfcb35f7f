"""Effective beta w.r.t. one layer's activations (the browser reproduction's variant of Fig. 4c).

Switched on by ``measure.landscape.beta_wrt=activations`` (with ``measure.landscape.every`` > 0): it
reads the landscape's node (its eta grid, its schedule, ``beta_layer``) and runs right after it.
"""

from __future__ import annotations

from bnstudy.measures.functional import trainable_params
from bnstudy.measures.landscape import LandscapeConf, activation_beta, eta_grid
from bnstudy.measures.registry import Cost, Measurement, Row, Step, layer_check, register

BETA_ACT = "beta_act"  # max over eta of ||g(h) - g(h - eta g(h))|| / ||eta g(h)||, h block beta_layer's output


@register
class ActivationBeta(Measurement):
    """:func:`bnstudy.measures.landscape.activation_beta` at w_t on the step's batch, the step's noise replayed."""

    name = BETA_ACT
    node = "landscape"  # Conf None: the landscape entry owns the node
    order = 31
    needs_rng = True

    def __init__(self, conf: LandscapeConf, ctx):
        super().__init__(conf, ctx)
        self.etas = eta_grid(ctx.lr, conf.eta_min, conf.eta_max, conf.points, conf.spacing)

    @classmethod
    def enabled(cls, conf: LandscapeConf) -> bool:
        return conf.every > 0 and conf.beta_wrt == "activations"

    @classmethod
    def cost(cls, conf: LandscapeConf) -> Cost:
        p = conf.points
        return Cost(1 + p, f"(1 + P) forward and backward (P={p}; beta w.r.t. layer-{conf.beta_layer} activations), "
                           "the backward stopping at h", "eta", p)

    @classmethod
    def metrics(cls, conf: LandscapeConf) -> list[str]:
        return [BETA_ACT]

    @classmethod
    def checks(cls, conf: LandscapeConf, n_layers):
        return layer_check("measure.landscape.beta_layer", [conf.beta_layer], n_layers) if cls.enabled(conf) else []

    @classmethod
    def bench_settings(cls, tiny: bool) -> dict:
        return {"landscape.every": 1, "landscape.points": 2 if tiny else 8, "landscape.beta_wrt": "activations"}

    def after_backward(self, s: Step) -> list[Row]:
        c, layer = self.ctx, self.conf.beta_layer
        params = {n: p.detach() for n, p in trainable_params(c.model).items()}
        res = activation_beta(c.model, c.loss_fn, s.x, s.y, c.model.block(layer).probe, self.etas, params, s.rng)
        return [Row(s.step, BETA_ACT, res.beta, layer=layer)]
