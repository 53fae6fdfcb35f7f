"""One registry style for every kind of entry the suite looks up by name.

Norms (``bnstudy.norms.NORMS``), models (``bnstudy.models.MODELS``), datasets (``bnstudy.data.DATASETS``),
measurements (``bnstudy.measures.MEASURES``), figures (``bnstudy.figures.FIGURES``), claims
(``bnstudy.claims.CLAIMS``), report sections (``bnstudy.report.SECTIONS``), optimisers and losses
(``bnstudy.build.OPTIMIZERS``, ``LOSSES``) are each a :class:`Registry`: a name -> entry mapping
filled by a decorator placed on the code it describes, whose arguments are the entry's metadata (a norm's
label, colour and scale invariance; a model's schema; a figure's experiments and caption; a claim's group).
Optional metadata may be left out: each registry says what it means then.

A registry whose entries live in a package is **collected** by importing every module of the package
(:func:`collect`: measures, figures, claims), so a new entry is one decorated definition in one module,
with no list to extend anywhere. ``with REGISTRY.restored():`` puts a registry back as it was (tests).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class Registry(dict[str, T]):
    """Name -> entry, in registration order. ``kind`` names what it holds in messages ("norm", "figure")."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``: a name must be new (a second definition is a mistake, named)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name {name!r}: give a non-empty name")
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({_where(self[name])} and {_where(entry)})")
        self[name] = entry
        return entry

    def unknown(self, name: object, key: str = "") -> str:
        """The one-line message for a name this registry does not hold: the key, the name and the valid ones."""
        what = f"{key}={name!r}" if key else f"{self.kind} {name!r}"
        return f"{what} is unknown; valid: {', '.join(sorted(self))}"

    @contextlib.contextmanager
    def restored(self) -> Iterator["Registry[T]"]:
        """Yield the registry; afterwards it holds exactly the entries it held before (a test's registrations go)."""
        saved = dict(self)
        try:
            yield self
        finally:
            self.clear()
            self.update(saved)


def _where(entry: object) -> str:
    fn = getattr(entry, "__wrapped__", None) or next((getattr(entry, a) for a in ("draw", "check", "build", "body")
                                                     if callable(getattr(entry, a, None))), entry)
    return getattr(fn, "__module__", type(entry).__module__) or "?"


def collect(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of ``package`` (``path``: its ``__path__``) in name order, so that each one's
    registrations run; return their names. A package's ``__init__`` calls it once."""
    names = sorted(m.name for m in pkgutil.iter_modules(path))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
