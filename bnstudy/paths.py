"""Output paths: the ``${unique:}`` resolver that keeps two runs started in the same second apart.

Hydra names run and sweep dirs with ``${now:...}``, to the second; two runs (or sweeps) of one
experiment started in the same second would share a folder. ``conf/config.yaml`` appends
``${unique:}``: this process's pid and a short random suffix, cached like ``now`` so every job of one
sweep resolves it to the same value. Passing ``hydra.run.dir=...`` / ``hydra.sweep.dir=...``
explicitly bypasses it, which is how a run or sweep is resumed in place.
"""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf


FIGURE_RUNS_SUFFIX = ".runs.txt"
"""Beside each figure ``<name>_<scale>.png``: its footer, the runs it was drawn from, one line per experiment
(``bnstudy.figures.draw`` writes it; REPORT.md's caption quotes it, so caption and figure count the same runs)."""


def unique_suffix() -> str:
    """``<pid>-<4 hex digits>``: distinct for processes on one machine, and across machines in practice."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def register_resolvers() -> None:
    """Register ``${unique:}`` (once; idempotent)."""
    if not OmegaConf.has_resolver("unique"):
        OmegaConf.register_new_resolver("unique", unique_suffix, use_cache=True)


register_resolvers()
