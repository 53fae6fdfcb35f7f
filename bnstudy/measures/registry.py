"""``MEASURES``: the registry of measurements the training loop can run, and the base class of its entries.

A measurement is one class in one module of ``bnstudy/measures/``, registered with ``@register``. The
class says everything the loop and the tools need to know about it:

- ``Conf``: its config schema (a dataclass with an ``every`` schedule), the ``measure.<node>`` node;
- ``needs_rng`` / ``needs_snapshot`` / ``hook_layers()``: what it needs from the step (torch's RNG
  state captured before the forward, for noisy BN's noise to be replayed in its probe passes, and its
  phase run between a capture and a restore of torch's RNG; copies of w_t and g_t kept across the
  optimiser's step; the outputs of some blocks' probes on the training forward);
- ``phases``: when in the step it runs (``after_backward``: w_t with g_t in ``.grad``; ``after_step``:
  w_{t+1} after the optimiser's update); ``due(step)`` says at which steps;
- ``cost(conf)``: its stated cost in extra forward+backward passes per measured step (the bench checks it);
- ``metrics(conf)``: the metric names of the rows it returns (constants defined in its module).

Entries are evaluation only: they work on copies of the buffers, take gradients with
``torch.autograd.grad`` and put torch's RNG back, so training with them on is training with them off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple, Optional

import torch

from bnstudy.measures.functional import LossFn, Params, RNGState
from bnstudy.registry import Registry

PHASES = ("before_forward", "after_backward", "after_step")


class _RowFields(NamedTuple):
    step: int
    metric: str
    layer: Optional[int]  # 1-based block index
    unit: Optional[int]  # channel / unit index within the layer
    eta: Optional[float]  # landscape step size
    value: Any  # a number, or a 0-d tensor (the writer reads a flush's tensors back in one transfer)


class Row(_RowFields):
    """One observation of metrics.csv, its fields the CSV's columns in order. Build it as
    ``Row(step, METRIC, value, layer=..., unit=..., eta=...)`` (the optional columns by keyword)."""

    __slots__ = ()

    def __new__(cls, step: int, metric: str, value: Any, *, layer: Optional[int] = None,
                unit: Optional[int] = None, eta: Optional[float] = None) -> "Row":
        return super().__new__(cls, step, metric, layer, unit, eta, value)


def is_due(every: int, step: int) -> bool:
    return every > 0 and step % every == 0


EVERY_BLOCK = tuple(range(1, 257))
"""More blocks than any model here has: ``bench_layers`` for a floor that reads every block."""


@dataclass
class Context:
    """What every measurement of a run may use: the model and its loss, the lr, the run's seed, and
    the model's blocks by 1-based index (``layer_params[i]``: the parameter names of block i, its
    weight, bias and norm gamma/beta; ``weight_of[i]``: the name of its weight W_i)."""

    model: torch.nn.Module  # a bnstudy.models.BlockNet
    loss_fn: LossFn
    lr: float
    seed: int
    layer_params: dict[int, list[str]]
    weight_of: dict[int, str]

    data: Any = None  # the run's bnstudy.data.TensorData (on the device), for measures on a fixed subset
    batch_size: int = 0  # train.batch_size (chunks of batch statistics for measures in train mode)

    @classmethod
    def of(cls, model, loss_fn: LossFn, lr: float, seed: int, data: Any = None, batch_size: int = 0) -> "Context":
        names = {id(p): n for n, p in model.named_parameters()}
        return cls(model, loss_fn, lr, seed,
                   {i: [names[id(p)] for p in b.parameters()] for i, b in enumerate(model.blocks, 1)},
                   {i: names[id(b.layer.weight)] for i, b in enumerate(model.blocks, 1)},
                   data, batch_size)


@dataclass
class Step:
    """What the loop hands a phase: the step, its batch and loss, the RNG state captured before its
    forward (None unless a due measurement needs it and ``measure.fix_noise``), the probe outputs
    captured on its forward (block index -> tensor), and (after_step) the snapshot (w_t, g_t)."""

    step: int
    x: torch.Tensor
    y: torch.Tensor
    loss: Optional[torch.Tensor] = None
    rng: Optional[RNGState] = None
    captured: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    before: Optional[tuple[Params, Params]] = None


@dataclass
class Cost:
    """Stated extra passes (one forward + one backward = one training step's worth) per measured step,
    ``units`` of what they scale with (``per``: "layer", "eta" or ""), and why no more."""

    passes: float
    why: str
    per: str = ""
    units: int = 1


class Measurement:
    """Base class of a registered measurement (subclass it, set the class attributes, override the phases).

    One instance per run, built only when ``enabled(conf)``; it keeps its own state between steps
    (``state_dict``/``load_state_dict`` go into the checkpoint, so a resumed run measures as one that
    never stopped).
    """

    name: ClassVar[str] = ""  # the registry key (required, unique)
    Conf: ClassVar[Optional[type]] = None  # its config schema; None: it reads another entry's node
    node: ClassVar[str] = ""  # its node under measure. (default: its name)
    order: ClassVar[float] = 100.0  # rows of one step come in this order (then by name)
    phases: ClassVar[tuple[str, ...]] = ("after_backward",)
    needs_rng: ClassVar[bool] = False  # it runs forward passes (which may draw noise): see the module doc
    needs_snapshot: ClassVar[bool] = False

    def __init__(self, conf: Any, ctx: Context):
        self.conf, self.ctx = conf, ctx

    # ---------------------------------------------------------------- declared
    @classmethod
    def enabled(cls, conf: Any) -> bool:
        """Whether the run has this measurement at all (default: its ``every`` > 0)."""
        return conf.every > 0

    @classmethod
    def cost(cls, conf: Any) -> Cost:
        raise NotImplementedError

    @classmethod
    def metrics(cls, conf: Any) -> list[str]:
        """The metric names its rows carry with this config."""
        raise NotImplementedError

    @classmethod
    def checks(cls, conf: Any, n_layers: Optional[int]) -> list[tuple[bool, str]]:
        """(ok, message naming the key and the fix) for each value that cannot work; ``n_layers``: the
        model's block count, None before the model exists."""
        return []

    @classmethod
    def bench_settings(cls, tiny: bool) -> dict[str, Any]:
        """``measure.``-relative keys that turn it on at every step, for the bench's cost section."""
        return {f"{cls.node}.every": 1}

    @classmethod
    def bench_floor(cls, conf: Any) -> Optional[Callable[[dict[int, torch.Tensor]], None]]:
        """The arithmetic it cannot avoid (if that can exceed a 0-pass budget), run by the bench's bare loop
        after every backward on the outputs of ``hook_layers``' probes; None: no floor."""
        return None

    @classmethod
    def bench_layers(cls, conf: Any) -> list[int]:
        """Blocks whose probe outputs the bench's floor reads (default: ``hook_layers``); may name more blocks
        than a model has (the bench hooks those it has: ``EVERY_BLOCK`` is every block)."""
        return cls.hook_layers(conf)

    @classmethod
    def hook_layers(cls, conf: Any) -> list[int]:
        """Blocks whose probe outputs it reads from ``Step.captured`` (on steps where it is due)."""
        return []

    def due(self, step: int) -> bool:
        """Whether it runs at ``step`` (default: its ``every`` schedule)."""
        return is_due(self.conf.every, step)

    # ---------------------------------------------------------------- phases
    def before_forward(self, step: int) -> None:
        """Before the step's forward (phase ``before_forward``): attach hooks that observe the training
        forward/backward itself (e.g. tensor hooks for gradients at a layer); rows come in a later phase."""

    def after_backward(self, s: Step) -> list[Row]:
        return []

    def after_step(self, s: Step) -> list[Row]:
        return []

    # ---------------------------------------------------------------- resume
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


MEASURES: Registry[type[Measurement]] = Registry("measurement")
"""Every measurement by name (each module of ``bnstudy.measures`` registers its own: the package imports them all)."""


def register(cls: type[Measurement]) -> type[Measurement]:
    """Class decorator: register the measurement under its ``name`` (a class attribute: the class is its own
    metadata: schema, needs, phases, cost, metrics), its node defaulting to its name."""
    if not set(cls.phases) <= set(PHASES):
        raise ValueError(f"measurement {cls.name}: phases {cls.phases} must be among {PHASES}")
    MEASURES.add(cls.name, cls)
    if not cls.node:
        cls.node = cls.name
    return cls


def ordered() -> list[type[Measurement]]:
    """The entries in the order their rows are written."""
    return sorted(MEASURES.values(), key=lambda c: (c.order, c.name))


def schemas() -> dict[str, type]:
    """Config node name -> schema, one per entry that owns a node (by name)."""
    return {c.node: c.Conf for c in sorted(MEASURES.values(), key=lambda c: c.node) if c.Conf is not None}


def node_of(measure_conf: Any, cls: type[Measurement]) -> Any:
    return getattr(measure_conf, cls.node)


def build_measure_conf() -> type:
    """The ``measure`` group's schema: one field per registered node, plus ``fix_noise``."""
    fields = [(node, schema, dataclasses.field(default_factory=schema)) for node, schema in schemas().items()]
    fields.append(("fix_noise", bool, dataclasses.field(default=True)))
    cls = dataclasses.make_dataclass("MeasureConf", fields)
    cls.__module__, cls.__qualname__ = "bnstudy.measures", "MeasureConf"  # importable by name (pickle)
    cls.__doc__ = ("One node per registered measurement (bnstudy.measures.MEASURES); fix_noise: replay the "
                   "step's noise (noisy BN) in every probe of a measurement.")
    return cls


def node_defaults() -> dict[str, Any]:
    """``{"measure.<node>.<field>": default}`` for every registered node, flattened as
    ``bnstudy.records.flatten`` flattens a config (lists as tuples). Merged under a config recorded before
    a measurement was registered, it reads that config as what it meant: the measurement off."""
    out: dict[str, Any] = {}
    for node, schema in schemas().items():
        for f in dataclasses.fields(schema):
            v = f.default_factory() if f.default is dataclasses.MISSING else f.default
            out[f"measure.{node}.{f.name}"] = tuple(v) if isinstance(v, list) else v
    return out


def enabled(measure_conf: Any) -> list[type[Measurement]]:
    """The entries this config turns on, in row order."""
    return [c for c in ordered() if c.enabled(node_of(measure_conf, c))]


def checks(measure_conf: Any, n_layers: Optional[int] = None) -> list[tuple[bool, str]]:
    """Every entry's checks, and each node's schedule >= 0."""
    out = [(node_of(measure_conf, c).every >= 0, f"measure.{c.node}.every={node_of(measure_conf, c).every} "
            f"must be >= 0 (0 = off)") for c in ordered() if c.Conf is not None]
    for c in ordered():
        out += c.checks(node_of(measure_conf, c), n_layers)
    return out


def layer_check(key: str, layers: list[int], n_layers: Optional[int]) -> list[tuple[bool, str]]:
    """Layers that must be blocks of the model (1-based)."""
    if n_layers is None:
        return []
    bad = [i for i in layers if not 1 <= i <= n_layers]
    return [(not bad, f"{key}={list(layers)}: layers must lie in 1..{n_layers} for this model")]


def metric_names(measure_conf: Any = None) -> list[str]:
    """Every metric the registered measurements write (with this config's options; default: the schemas'
    defaults), in row order."""
    names: list[str] = []
    for c in ordered():
        conf = node_of(measure_conf, c) if measure_conf is not None else _default_node(c)
        names += [m for m in c.metrics(conf) if m not in names]
    return names


def _default_node(cls: type[Measurement]) -> Any:
    owner = next(c for c in MEASURES.values() if c.node == cls.node and c.Conf is not None)
    return owner.Conf()


def total_cost(measure_conf: Any) -> float:
    """Stated extra passes of one step where every enabled measurement is due."""
    return sum(c.cost(node_of(measure_conf, c)).passes for c in enabled(measure_conf))


