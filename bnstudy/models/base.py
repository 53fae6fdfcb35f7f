"""What every model is built from: numbered ``Block``s, one norm factory, the registry ``MODELS`` (the ``model``
config group) and ``build_model``. A builder is registered with ``@model(name, schema=...)``, its config schema
(a dataclass subclassing :class:`ModelConf`) beside it, in a module of this package (``plain``: the paper's
small CNN, VGG and DLN; ``resnet``; ``vit``). A new model is its schema, its registration in a module here and
``conf/model/<name>.yaml``.

A ``Block`` is ``layer -> norm -> activation`` (or ``layer -> activation -> norm`` with
``norm.position=after``), then dropout when ``model.dropout > 0``. Its ``probe`` (an ``nn.Identity``)
sits right after the norm: the point whose values the paper's activation histograms show, where noisy
BN injects its noise, and where the activation-variant of effective beta perturbs. Measurements address
blocks by their 1-based index, as the paper numbers layers. A residual network's blocks sit inside its residual
units (``BlockNet.blocks`` finds them in forward order); each unit marks its skip path and its branch's
contribution with :class:`ResidualProbes`, where the signal measurement reads their sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import MISSING
from torch import nn

from bnstudy.norms import NORMS, RESIDUAL, NormConf, make_norm, residual_scheme
from bnstudy.registry import Registry
from bnstudy.schema import ConfigError, ranged

# ------------------------------------------------------------------------------------------ schemas
@dataclass
class ModelConf:
    """Fields shared by every model. ``name`` is the key in :data:`MODELS`."""

    name: str = MISSING
    activation: str = "relu"  # relu | identity | gelu
    init: str = "glorot"  # glorot | he | default (PyTorch's own)
    init_scale: float = ranged(1.0, gt=0)  # conv/linear weights x this after init (the tutorials' init sweep)
    bias: bool = True
    dropout: float = ranged(0.0, ge=0, lt=1)  # dropout probability after every block (0 = no dropout module)


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Model:
    """A registered model: its builder ``build(cfg, norm, input_shape, num_classes) -> BlockNet`` and its
    config schema (stored in Hydra's ConfigStore as ``model/<name>_schema`` by ``bnstudy.config``)."""

    name: str
    build: Callable[..., "BlockNet"]
    schema: type

    def __call__(self, *args, **kwargs) -> "BlockNet":
        return self.build(*args, **kwargs)


MODELS: Registry[Model] = Registry("model")
"""Every model by name (the ``model`` config group's names), in registration order."""


def model(name: str, *, schema: type):
    """Decorator: register ``build(cfg, norm, input_shape, num_classes) -> BlockNet`` as model ``name``, with
    its config schema (a :class:`ModelConf` dataclass whose ``name`` defaults to ``name``)."""
    if not (isinstance(schema, type) and issubclass(schema, ModelConf)):
        raise ValueError(f"model {name!r}: schema={schema!r} must be a dataclass subclassing ModelConf")

    def register(build: Callable[..., "BlockNet"]):
        MODELS.add(name, Model(name, build, schema))
        return build
    return register


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": lambda: nn.ReLU(), "identity": nn.Identity,
                                                  "gelu": lambda: nn.GELU()}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"model.activation={name!r} is unknown; valid: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class Block(nn.Module):
    """One normalised layer: the unit measurements address by index. ``scale_invariant``: whether its norm
    divides out a positive rescaling of the layer's output (its registration says: ``bnstudy.norms.Norm``)."""

    def __init__(self, layer: nn.Module, norm: nn.Module, activation: nn.Module, norm_after: bool,
                 dropout: float = 0.0, scale_invariant: bool = False):
        super().__init__()
        self.layer, self.norm, self.activation = layer, norm, activation
        self.scale_invariant = scale_invariant
        self.probe = nn.Identity()
        self.norm_after = norm_after
        # no module at all when off: the same submodules, state dict and RNG draws as before the option
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(x)
        if self.norm_after:
            x = self.probe(self.norm(self.activation(x)))
        else:
            x = self.activation(self.probe(self.norm(x)))
        return x if self.dropout is None else self.dropout(x)


class ResidualProbes(nn.Module):
    """A residual unit's two marks (``nn.Identity``, no parameters): ``skip`` on what the skip path carries to the
    addition, ``branch`` on what the residual branch adds to it (after any multiplier). A unit calls
    ``add(skip, branch)``; forward hooks on the two read the sizes De & Smith (2020) compare."""

    def __init__(self):
        super().__init__()
        self.skip, self.branch = nn.Identity(), nn.Identity()

    def add(self, skip: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return self.skip(skip) + self.branch(branch)


class BlockNet(nn.Module):
    """A stack of Blocks (with pooling in between for CNNs) and a head. ``blocks[i-1]`` is layer i."""

    def __init__(self, body: list[nn.Module], head: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.head = head
        # views, not new submodules: every Block in forward order (a residual unit's inside it)
        self.blocks = [m for m in self.body.modules() if isinstance(m, Block)]
        self.residual_units = [m for m in self.body.modules() if isinstance(m, ResidualProbes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def block(self, index: int) -> Block:
        """Layer ``index`` (1-based, as the paper numbers layers)."""
        if not 1 <= index <= len(self.blocks):
            raise ConfigError(f"layer {index} is out of range: this model has layers 1..{len(self.blocks)}")
        return self.blocks[index - 1]


def block(layer: nn.Module, cfg: ModelConf, norm: NormConf, features: int, spatial: bool,
          act: str | None = None, residual: bool = False) -> Block:
    """``layer`` -> the configured norm -> the activation (``act``, default ``cfg.activation``) as one Block. A norm
    that only a residual network can place (``residual=`` in its registration) is refused unless the block is
    inside a residual branch (``residual=True``: the residual network then does what the norm's scheme says)."""
    scheme = residual_scheme(norm.name)
    if scheme is not None and not residual:
        only = [n for n, e in NORMS.items() if e.residual is not None]
        raise ConfigError(f"norm={norm.name} is a residual network's ({RESIDUAL[scheme]}): model={cfg.name} "
                          f"has no residual branch; use it with model=resnet or model=vit, or pick a norm other than "
                          f"{', '.join(only)}")
    return Block(layer, make_norm(norm, features, spatial), activation(act or cfg.activation),
                 norm.position == "after", cfg.dropout, NORMS[norm.name].scale_invariant)


def glorot_init(model: nn.Module) -> None:
    """Glorot (Xavier) uniform weights and zero biases for every conv/linear layer."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def he_init(model: nn.Module) -> None:
    """He (Kaiming) normal weights, std sqrt(2 / fan_in), and zero biases for every conv/linear layer."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


INITS: dict[str, Callable[[nn.Module], None]] = {"glorot": glorot_init, "he": he_init, "default": lambda m: None}


def scale_weights(model: nn.Module, factor: float) -> None:
    """Multiply every conv/linear weight (not biases, not norm parameters) by ``factor``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(factor)


def build_model(cfg: ModelConf, norm: NormConf, input_shape: tuple, num_classes: int | None) -> BlockNet:
    """Build ``cfg.name`` from the registry with the norm factory, the configured init (then the model's own
    ``after_init``, if it has one) and its scale."""
    if cfg.name not in MODELS:
        raise ConfigError(f"model={cfg.name!r} is unknown; valid: {sorted(MODELS)}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"model.dropout={cfg.dropout} must lie in [0, 1)")
    if not cfg.init_scale > 0:
        raise ConfigError(f"model.init_scale={cfg.init_scale} must be > 0")
    if cfg.init not in INITS:
        raise ConfigError(f"model.init={cfg.init!r} is unknown; valid: {sorted(INITS)}")
    model = MODELS[cfg.name].build(cfg, norm, tuple(input_shape), num_classes)
    INITS[cfg.init](model)
    if hasattr(model, "after_init"):  # a scheme that overrides parts of the init (Fixup's zeros and rescaling)
        model.after_init()
    if cfg.init_scale != 1.0:  # 1.0 touches nothing: weights stay bit-identical
        scale_weights(model, cfg.init_scale)
    return model
