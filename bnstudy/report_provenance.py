"""What made the runs a report reads: the provenance table of REPORT.md and its mixed-runs warning.

Each run's ``summary.json`` holds an ``environment`` block (``bnstudy.provenance``). The table has one
row per distinct (commit, libraries, device) with the experiments and the number of runs it made. The
warning, printed at the top of the report, names each figure (and the claims drawn from it) whose runs
come from more than one commit, torch version or device: numbers from such a mix are not one
experiment's. The runs are the ones the claims and figures use (``bnstudy.runs.RunSet``: the runs each
experiment means, ``bnstudy.runs.SELECTION_RULE``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bnstudy.provenance import get
from bnstudy.records import read_json

# what may not differ within one figure: column -> how it is read from an environment block
MIX_FIELDS = {"commit": lambda e: _commit(e), "torch": lambda e: get(e, "libraries.torch"),
              "device": lambda e: _device(e)}
NOT_RECORDED = "not recorded"


def _commit(env: dict | None) -> str:
    commit = get(env, "code.commit")
    if not env:
        return NOT_RECORDED
    if commit is None:
        return f"no git (bnstudy {get(env, 'code.version')})"
    return commit[:10] + (f"+dirty:{get(env, 'code.diff_sha256')[:8]}" if get(env, "code.dirty") else "")


def _device(env: dict | None) -> str:
    if not env:
        return NOT_RECORDED
    d = get(env, "device") or {}
    if d.get("type") == "cuda":
        return f"{d.get('gpu')} (CUDA {d.get('cuda')}, cuDNN {d.get('cudnn')})"
    return f"{d.get('cpu_model')} ({d.get('cpu_count')} cores)"


def figure_experiments() -> dict[str, tuple[str, ...]]:
    """Each registered figure and the experiments it draws (``bnstudy.figures.FIGURES``; a claim names its
    figure as "Fig. N")."""
    from bnstudy.figures import FIGURES

    return {name: f.experiments for name, f in FIGURES.items()}


def run_environments(runs_by_experiment: dict[str, list[Path]]) -> pd.DataFrame:
    """One row per run: experiment, path, and the provenance columns (commit, versions, device, ...)."""
    rows = []
    for name, paths in runs_by_experiment.items():
        for path in paths:
            try:
                env = read_json(Path(path) / "summary.json").get("environment")
            except (OSError, ValueError):
                env = None
            rows.append({
                "experiment": name, "path": str(path), "commit": _commit(env), "device": _device(env),
                "python": get(env, "python") or NOT_RECORDED,
                **{lib: get(env, f"libraries.{lib}") or NOT_RECORDED
                   for lib in ("torch", "torchvision", "hydra-core", "numpy", "pandas")},
                "lock": NOT_RECORDED if not env else {True: "yes", False: "no"}.get(get(env, "lock.matches"), "no lock"),
                "threads": get(env, "threads.intra_op") or NOT_RECORDED,
            })
    return pd.DataFrame(rows)


def provenance_table(df: pd.DataFrame) -> str:
    """Markdown: one row per distinct environment, with its experiments and run count."""
    if df.empty:
        return "No runs."
    cols = ["commit", "python", "torch", "torchvision", "hydra-core", "numpy", "pandas", "lock", "device", "threads"]
    groups = df.astype({"threads": str}).groupby(cols, sort=True)
    lines = ["| runs | experiments | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for key, sub in groups:
        cells = [str(len(sub)), ", ".join(sorted(sub["experiment"].unique())), *map(str, key)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def mixed_warnings(df: pd.DataFrame, claims_by_figure: dict[str, list[str]] | None = None) -> list[str]:
    """One line per figure whose runs mix commits, torch versions or devices."""
    out = []
    if df.empty:
        return out
    for fig, experiments in figure_experiments().items():
        sub = df[df["experiment"].isin(experiments)]
        mixes = []
        for col in MIX_FIELDS:
            counts = sub[col].value_counts()
            if len(counts) > 1:
                mixes.append(f"{len(counts)} {col}{'s' if col != 'torch' else ' versions'} ("
                             + ", ".join(f"{v}: {n} run{'s' if n > 1 else ''}" for v, n in counts.items()) + ")")
        if mixes:
            claims = (claims_by_figure or {}).get(fig) or []
            also = f" and claim{'s' if len(claims) > 1 else ''} {', '.join(claims)}" if claims else ""
            out.append(f"{fig}{also} mix runs from " + "; ".join(mixes))
    return out


def figure_of_claim(figure_label: str) -> str | None:
    """"Fig. 3" or "Fig. 4a" -> "fig3", "fig4"; "the browser reproduction" -> "browser"."""
    if "browser" in str(figure_label):
        return "browser"
    digits = "".join(ch for ch in str(figure_label) if ch.isdigit())
    return f"fig{digits}" if digits and f"fig{digits}" in figure_experiments() else None


def sections(root: Path, scale: str, results: list | None = None) -> tuple[str, str]:
    """(warning block for the top of the report, "## Provenance" section) for the runs the claims read."""
    from bnstudy.claims import Results  # the claims' own run selection

    R = Results(root if not isinstance(root, (str, Path)) else Path(root), scale)  # a folder or a RunSet
    df = run_environments({name: [r.path for r in R.runs(name)] for name in R.runset.names()})
    claims_by_figure: dict[str, list[str]] = {}
    for r in results or []:
        fig = figure_of_claim(r.figure)
        if fig:
            claims_by_figure.setdefault(fig, []).append(r.id)
    warnings = mixed_warnings(df, claims_by_figure)
    top = ""
    if warnings:
        top = "\n".join(["> **Warning: mixed runs.** These numbers do not come from one code version, torch "
                         "version and device; a difference between curves may come from the mix:", ">",
                         *[f"> - {w}" for w in warnings]])
    body = "\n".join(["## Provenance", "",
                      "What made the runs this report reads (each run's `environment` in `summary.json`).", "",
                      provenance_table(df)])
    return top, body
