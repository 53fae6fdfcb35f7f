"""What an experiment is as configured: the settings its sweep composes at a scale, from ``conf/``.

The paper's claims are verdicts about runs of an experiment *as configured* (its steps, lrs, model and
data at the chosen scale). A run is **canonical** when its recorded config equals the config that
``experiment=<name> scale=<scale>`` composes for its own sweep point (its norm, lr and whatever else the
experiment sweeps, each value one the sweep lists), except the seed and the settings that do not change a
run's numbers (:data:`FREE`). Any other finished run of the experiment is **exploratory**: it is drawn and
judged when asked, labelled with how it differs ("train.steps 300 (not 800)", "optim.lr 0.3 not in the
experiment (0.1, 0.5)"), and never counted among the paper's verdicts.

Each sweep point is composed through Hydra's compose API from the suite's ``conf/`` (once per process and
point); a swept value that no interpolation reads (``optim.lr``, ``model.depth``) is substituted into the
point's composed config instead of composing again. A setting that one side does not record (a key added
by a later version of the suite) is no difference.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from bnstudy.records import RESUME_FREE, flatten

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

FREE = (*sorted(RESUME_FREE), "data.root", "data.download")
"""Settings that do not change a run's numbers: how it is carried out (``bnstudy.records.RESUME_FREE``) and where
its data is read from. Never a difference between two runs' settings (a key, or a prefix ending in '.')."""

SEED = "seed"


def is_free(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in FREE)


def same(a: Any, b: Any) -> bool:
    """Two recorded settings are the same (NaN/None alike, numbers compared as numbers, lists as tuples)."""
    na = lambda v: v is None or (isinstance(v, float) and math.isnan(v))
    if na(a) or na(b):
        return na(a) and na(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def show(v: Any) -> str:
    """A setting's value as the messages write it (0.1, 1e-06, [3, 11])."""
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "[" + ", ".join(show(x) for x in v) + "]"
    return str(v)


@dataclass(frozen=True)
class Spec:
    """The experiment's sweep at one scale: the values each swept key takes, and the composed config (flat,
    without the seed and :data:`FREE` settings) of each point."""

    experiment: str
    scale: str
    swept: dict[str, tuple]  # key -> the values the sweep lists (a group key like "norm": option names)
    points: dict[tuple, dict[str, Any]] = field(repr=False)  # one value per swept key -> flat config

    @property
    def keys(self) -> list[str]:
        return list(self.swept)

    def value_of(self, key: str, config: dict[str, Any]) -> Any:
        """The run's value of a swept key (a config group such as ``norm``: its ``norm.name``)."""
        return config.get(f"{key}.name", config.get(key)) if "." not in key else config.get(key)

    def differences(self, config: dict[str, Any]) -> list[str]:
        """How a run's flat config differs from the experiment as configured ([] = canonical): every setting
        that differs from its sweep point's composed config, then swept values the sweep does not list."""
        outside, point, skip = [], [], set(self.swept)
        for key, allowed in self.swept.items():
            v = self.value_of(key, config)
            match = next((a for a in allowed if same(v, a)), None)
            if match is None:
                outside.append(f"{key} {show(v)} not in the experiment ({', '.join(show(a) for a in allowed)})")
                point.append(allowed[0])  # compare the rest with the sweep's first value
                if "." not in key:  # another group option: its settings are its own
                    skip.add(f"{key}.")
            else:
                point.append(match)
            if "." not in key:
                skip.add(f"{key}.name")
        expected, out = self.points[tuple(point)], []
        for key, want in expected.items():
            if key in skip or any(s.endswith(".") and key.startswith(s) for s in skip):
                continue
            if key in config and not same(config[key], want):
                out.append(f"{key} {show(config[key])} (not {show(want)})")
        return out + outside


def flat_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A nested config as flat settings without the seed and :data:`FREE` keys."""
    return {k: v for k, v in flatten(config).items() if k != SEED and not is_free(k)}


def _parse_sweep(params: dict[str, str]) -> dict[str, tuple]:
    """``{"norm": "none,batch", "optim.lr": "0.1,0.5"}`` -> the values of each key, parsed as Hydra does."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = {}
    for key, text in params.items():
        if key == SEED:
            continue
        ov = parser.parse_override(f"{key}={text}")
        vals = list(ov.sweep_iterator()) if ov.is_sweep_override() else [ov.value()]
        out[key] = tuple(vals)
    return out


def _to_flat(cfg) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return flat_settings(OmegaConf.to_container(OmegaConf.structured(OmegaConf.to_object(cfg))))


def _reads(text: str, key: str) -> bool:
    """Whether some interpolation in the unresolved config ``text`` reads ``key``."""
    return re.search(r"\$\{\s*" + re.escape(key) + r"\s*[}.]", text) is not None or \
        re.search(r"[,(:]\s*\$\{" + re.escape(key) + r"\}", text) is not None


@lru_cache(maxsize=None)
def spec(experiment: str, scale: str, conf_dir: str = str(CONF_DIR)) -> Optional[Spec]:
    """The experiment's :class:`Spec` at ``scale`` (None when ``conf/`` has no such experiment or scale,
    or cannot be read: its runs are then compared with nothing and count as exploratory)."""
    if not (Path(conf_dir) / "experiment" / f"{experiment}.yaml").is_file() or \
            not (Path(conf_dir) / "scale" / f"{scale}.yaml").is_file():
        return None
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import bnstudy.config  # noqa: F401  (registers the schemas)

    base = [f"experiment={experiment}", f"scale={scale}", f"{SEED}=0"]
    was = GlobalHydra.instance().is_initialized()
    if was:  # inside a Hydra app (make all draws figures in-process): compose beside it, then put it back
        saved = GlobalHydra.instance().hydra
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            top = compose("config", overrides=base, return_hydra_config=True)
            params = OmegaConf.to_container(top.hydra.sweeper.params) or {}
            swept = _parse_sweep({str(k): str(v) for k, v in params.items()})
            groups = [k for k in swept if "." not in k]
            values = [k for k in swept if "." in k]
            points: dict[tuple, dict] = {}
            for combo in itertools.product(*(swept[k] for k in groups)):
                over = base + [f"{k}={v}" for k, v in zip(groups, combo)]
                cfg = compose("config", overrides=over)
                text = OmegaConf.to_yaml(cfg)  # unresolved: which swept values an interpolation reads
                read = [k for k in values if _reads(text, k)]
                flat = _to_flat(cfg)
                for vcombo in itertools.product(*(swept[k] for k in values)):
                    chosen = dict(zip(values, vcombo))
                    if read:
                        flat_v = _to_flat(compose("config", overrides=over + [f"{k}={chosen[k]}" for k in values]))
                    else:
                        flat_v = {**flat, **{k: _typed(flat.get(k), v) for k, v in chosen.items()}}
                    key = tuple({**dict(zip(groups, combo)), **chosen}[k] for k in swept)
                    points[key] = flat_v
    except Exception as e:  # noqa: BLE001  (a conf/ that does not compose: say so, compare with nothing)
        import warnings

        warnings.warn(f"cannot compose experiment={experiment} scale={scale} from {conf_dir}: "
                      f"{type(e).__name__}: {str(e).splitlines()[0][:120]}", stacklevel=2)
        return None
    finally:
        if was:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(saved)
    return Spec(experiment, scale, swept, points)


def _typed(current: Any, value: Any) -> Any:
    """A swept value as the schema would store it (an int sweep value into a float field is a float)."""
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def describe(differences: list[str], limit: int = 3) -> str:
    """The differences in one phrase: ``"train.steps 300 (not 800), optim.lr 0.3 not in the experiment ..."``."""
    shown = ", ".join(differences[:limit])
    return shown + (f" and {len(differences) - limit} more" if len(differences) > limit else "")
