"""The three models of the protocol, all built from numbered ``Block``s and one norm factory, and their
registry ``MODELS`` (the ``model`` config group): a builder registered with ``@model(name, schema=...)``, its
config schema (a dataclass subclassing :class:`ModelConf`) beside it. A new model is its schema, its
registration here and ``conf/model/<name>.yaml``.

A ``Block`` is ``layer -> norm -> activation`` (or ``layer -> activation -> norm`` with
``norm.position=after``), then dropout when ``model.dropout > 0``. Its ``probe`` (an ``nn.Identity``)
sits right after the norm: the point whose values the paper's activation histograms show, where noisy
BN injects its noise, and where the activation-variant of effective beta perturbs. Measurements address
blocks by their 1-based index, as the paper numbers layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from omegaconf import MISSING
from torch import nn

from bnstudy.norms import NORMS, NormConf, make_norm
from bnstudy.registry import Registry
from bnstudy.schema import ConfigError, ranged

# ------------------------------------------------------------------------------------------ schemas
@dataclass
class ModelConf:
    """Fields shared by every model. ``name`` is the key in :data:`MODELS`."""

    name: str = MISSING
    activation: str = "relu"  # relu | identity
    init: str = "glorot"  # glorot | default (PyTorch's own)
    init_scale: float = ranged(1.0, gt=0)  # conv/linear weights x this after init (the tutorials' init sweep)
    bias: bool = True
    dropout: float = ranged(0.0, ge=0, lt=1)  # dropout probability after every block (0 = no dropout module)


@dataclass
class SmallCNNConf(ModelConf):
    """Seed 001's CNN: conv 5x5 (8) -> pool -> conv 5x5 (16) -> pool -> linear."""

    name: str = "small_cnn"
    channels: list[int] = ranged(factory=lambda: [8, 16], ge=1)
    kernel_size: int = ranged(5, ge=1)


@dataclass
class VGGConf(ModelConf):
    """CIFAR VGG: 3x3 convs with max-pools, one linear classifier. depth in {11, 13, 16, 19}."""

    name: str = "vgg"
    depth: int = ranged(16, ge=11, le=19)  # 11, 13, 16 or 19 (VGG_LAYOUTS)
    width: float = ranged(1.0, gt=0)  # channel multiplier (quick scale uses narrow nets)


@dataclass
class DLNConf(ModelConf):
    """Deep linear network: ``num_layers`` square ``dim`` x ``dim`` linear layers, no non-linearity."""

    name: str = "dln"
    num_layers: int = ranged(25, ge=1)
    dim: int = ranged(10, ge=1)
    activation: str = "identity"
    norm_last: bool = False  # [open] normalise after the output layer too (default: hidden layers only)


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


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": lambda: nn.ReLU(), "identity": nn.Identity}


def _activation(name: str) -> nn.Module:
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


class BlockNet(nn.Module):
    """A stack of Blocks (with pooling in between for CNNs) and a head. ``blocks[i-1]`` is layer i."""

    def __init__(self, body: list[nn.Module], head: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.head = head
        self.blocks = [m for m in self.body if isinstance(m, Block)]  # views, not new submodules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def block(self, index: int) -> Block:
        """Layer ``index`` (1-based, as the paper numbers layers)."""
        if not 1 <= index <= len(self.blocks):
            raise ConfigError(f"layer {index} is out of range: this model has layers 1..{len(self.blocks)}")
        return self.blocks[index - 1]


def _block(layer: nn.Module, cfg: ModelConf, norm: NormConf, features: int, spatial: bool) -> Block:
    return Block(layer, make_norm(norm, features, spatial), _activation(cfg.activation), norm.position == "after",
                 cfg.dropout, NORMS[norm.name].scale_invariant)


@model("small_cnn", schema=SmallCNNConf)
def small_cnn(cfg: SmallCNNConf, norm: NormConf, input_shape: tuple, num_classes: int) -> BlockNet:
    """Seed 001's MNIST CNN: [conv 5x5 -> norm -> ReLU -> max-pool 2] x 2 -> linear."""
    c, h, w = input_shape
    body: list[nn.Module] = []
    for out in cfg.channels:
        body += [_block(nn.Conv2d(c, out, cfg.kernel_size, bias=cfg.bias), cfg, norm, out, True), nn.MaxPool2d(2)]
        c, h, w = out, (h - cfg.kernel_size + 1) // 2, (w - cfg.kernel_size + 1) // 2
    return BlockNet(body, nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes)))


VGG_LAYOUTS = {  # channels per conv, "M" = 2x2 max-pool (the CIFAR forms of VGG-11/13/16/19)
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


@model("vgg", schema=VGGConf)
def vgg(cfg: VGGConf, norm: NormConf, input_shape: tuple, num_classes: int) -> BlockNet:
    """CIFAR VGG: 3x3 convs, norm before ReLU, max-pools, one linear classifier."""
    if cfg.depth not in VGG_LAYOUTS:
        raise ConfigError(f"model.depth={cfg.depth} is unknown; valid: {sorted(VGG_LAYOUTS)}")
    c, h = input_shape[0], input_shape[1]
    body: list[nn.Module] = []
    for item in VGG_LAYOUTS[cfg.depth]:
        if item == "M":
            if h >= 2:  # small inputs (28x28) run out of resolution before the last pools
                body.append(nn.MaxPool2d(2))
                h //= 2
            continue
        out = max(1, round(item * cfg.width))
        body.append(_block(nn.Conv2d(c, out, 3, padding=1, bias=cfg.bias), cfg, norm, out, True))
        c = out
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
    return BlockNet(body, head)


@model("dln", schema=DLNConf)
def dln(cfg: DLNConf, norm: NormConf, input_shape: tuple, num_classes: int | None) -> BlockNet:
    """Deep linear network: W_L ... W_1 x. Hidden layers are Blocks; the output layer is the head."""
    d = cfg.dim
    if len(input_shape) != 1:  # images: the DLN is a regression on Gaussian vectors
        raise ConfigError(f"model=dln needs vector data, not images of shape {input_shape}: add data=gaussian, "
                          f"or run a DLN experiment (experiment=fig3_dln, fig4_dln or fig5_dln)")
    if input_shape != (d,):
        raise ConfigError(f"the DLN needs inputs of shape ({d},), got {input_shape}: set data.dim={d} "
                          f"or model.dim={input_shape[0]}")
    hidden = cfg.num_layers if cfg.norm_last else cfg.num_layers - 1
    body = [_block(nn.Linear(d, d, bias=cfg.bias), cfg, norm, d, False) for _ in range(hidden)]
    head = nn.Identity() if cfg.norm_last else nn.Linear(d, d, bias=cfg.bias)
    return BlockNet(body, head)


def glorot_init(model: nn.Module) -> None:
    """Glorot (Xavier) uniform weights and zero biases for every conv/linear layer."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def scale_weights(model: nn.Module, factor: float) -> None:
    """Multiply every conv/linear weight (not biases, not norm parameters) by ``factor``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(factor)


def build_model(cfg: ModelConf, norm: NormConf, input_shape: tuple, num_classes: int | None) -> BlockNet:
    """Build ``cfg.name`` from the registry with the norm factory, the configured init and its scale."""
    if cfg.name not in MODELS:
        raise ConfigError(f"model={cfg.name!r} is unknown; valid: {sorted(MODELS)}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"model.dropout={cfg.dropout} must lie in [0, 1)")
    if not cfg.init_scale > 0:
        raise ConfigError(f"model.init_scale={cfg.init_scale} must be > 0")
    model = MODELS[cfg.name].build(cfg, norm, tuple(input_shape), num_classes)
    if cfg.init == "glorot":
        glorot_init(model)
    elif cfg.init != "default":
        raise ConfigError(f"model.init={cfg.init!r} is unknown; valid: ['default', 'glorot']")
    if cfg.init_scale != 1.0:  # 1.0 touches nothing: weights stay bit-identical
        scale_weights(model, cfg.init_scale)
    return model
