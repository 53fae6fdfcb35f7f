"""Post-hoc measures on a finished run: new questions of old runs, without retraining.

``measure_run(run_dir)`` loads the run's config (``summary.json``) and final weights (``final.pt``,
``weights_only=True``), then runs the curvature, Theorem 4.1 and signal measures at those weights and
writes their rows to ``<run dir>/posthoc.csv`` (the columns of ``metrics.csv``, ``step`` = the run's
last step) with the settings used in ``posthoc.json``.

A separate file, not rows appended to ``metrics.csv``: the run's own records are never modified (a
resumed run truncates ``metrics.csv`` to its checkpoint's offset, and readers take every row there as
logged during training), and a reader can tell at a glance which numbers came later. Rerunning
replaces the rows of the metrics it recomputes and keeps the others.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field
from io import StringIO
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
from omegaconf import OmegaConf

from bnstudy.config import MODEL_SCHEMAS, Config, ConfigError, MeasureConf
from bnstudy.data import load_dataset
from bnstudy.measures.curvature import (BATCH_SHARPNESS, BETA_LIMIT, HESS_LMAX, HESS_LMIN, HESS_RESIDUAL, MODES,
                                        fixed_subset, gradient_curvature, hessian_top_eigenvalue, mode)
from bnstudy.measures.functional import trainable_params
from bnstudy.measures.signal import SignalHooks
from bnstudy.measures.theorem41 import THM41_METRICS, Theorem41Hooks
from bnstudy.models import build_model
from bnstudy.build import LOSSES, loss_name
from bnstudy.records import (COLUMNS, FINAL, POSTHOC_CSV, POSTHOC_JSON, format_rows, read_json, write_json_atomic,
                             write_text_atomic)



class PosthocError(RuntimeError):
    """The run folder cannot be measured as asked; the message names the file and the fix."""


@dataclass
class PosthocConf:
    samples: int = 4096  # Hessian subset of the training data
    chunk: int = 0  # 0: the run's train.batch_size
    modes: list[str] = field(default_factory=lambda: list(MODES))
    iters: int = 20
    tol: float = 1e-3
    seed: int = 0
    device: str = "cpu"


def load_run(run_dir: Path, device: str = "cpu") -> tuple[Config, torch.nn.Module, dict]:
    """(config, model at its final weights, summary) of a finished run folder."""
    run_dir = Path(run_dir)
    try:
        summary = read_json(run_dir / "summary.json")
    except (OSError, ValueError) as e:
        raise PosthocError(f"{run_dir}/summary.json cannot be read ({e}): is {run_dir} a run folder?") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("config"), dict):
        raise PosthocError(f"{run_dir}/summary.json is not a summary bnstudy wrote (no config in it): "
                           f"is {run_dir} a run folder?")
    if summary.get("status") not in ("completed", "diverged"):
        raise PosthocError(f"{run_dir} is {summary.get('status')!r}, not finished: resume it first "
                           f"(python -m experiments.train hydra.run.dir={run_dir} ...)")
    if not (run_dir / FINAL).exists():
        raise PosthocError(f"{run_dir}/{FINAL} is missing (a run from before final.pt, or train.save_final=false): "
                           "rerun it with train.save_final=true")
    raw = dict(summary["config"])
    raw.pop("measure", None)  # post hoc runs its own measures; the run's schedule is not needed
    model_name = (raw.get("model") or {}).get("name")
    if model_name not in MODEL_SCHEMAS:
        raise PosthocError(f"{run_dir}/summary.json names model {model_name!r}; known: {sorted(MODEL_SCHEMAS)}")
    schema = OmegaConf.structured(Config(model=MODEL_SCHEMAS[model_name](), measure=MeasureConf()))
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(schema, raw))
    except Exception as e:
        raise PosthocError(f"{run_dir}/summary.json's config does not fit this version of bnstudy "
                           f"({' '.join(str(e).split())})") from None
    data = load_dataset(cfg.data)
    model = build_model(cfg.model, cfg.norm, data.input_shape, data.num_classes)
    try:
        state = torch.load(run_dir / FINAL, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:
        raise PosthocError(f"{run_dir}/{FINAL} cannot be loaded safely ({type(e).__name__}): rerun the run") from e
    return cfg, model.to(device), {"summary": summary, "data": data.to(device)}


def earlier_rows(run_dir: Path) -> pd.DataFrame | None:
    """The rows of an earlier ``posthoc.csv`` (None where there is none), read before anything is measured:
    a link at either output file, or a ``posthoc.csv`` that is not what this module writes, is refused in
    one line naming it (never followed, never overwritten)."""
    from bnstudy.runs import BadRunError, load_metrics

    for path in (Path(run_dir) / POSTHOC_CSV, Path(run_dir) / POSTHOC_JSON):
        if path.is_symlink():
            raise PosthocError(f"{path} is a symbolic link: bnstudy never reads or writes through a link; "
                               f"remove the link, then rerun")
        if path.exists() and not path.is_file():
            raise PosthocError(f"{path} is not a file: move it away, then rerun")
    path = Path(run_dir) / POSTHOC_CSV
    if not path.exists():
        return None
    try:
        return load_metrics(path)
    except BadRunError as e:
        raise PosthocError(f"{path} is not a posthoc.csv bnstudy wrote ({e}): move it away or delete it, "
                           f"then rerun") from None


def measure_run(run_dir: Path, conf: Optional[PosthocConf] = None) -> pd.DataFrame:
    """Measure the run at its final weights; write posthoc.csv/json; return the new rows."""
    conf = conf or PosthocConf()
    run_dir = Path(run_dir)
    old = earlier_rows(run_dir)
    cfg, model, extra = load_run(run_dir, conf.device)
    data, summary = extra["data"], extra["summary"]
    loss_fn = LOSSES[loss_name(cfg, data)]
    step = int(summary.get("step") or cfg.train.steps)
    chunk = conf.chunk or cfg.train.batch_size
    torch.manual_seed(cfg.seed)
    x, y = fixed_subset(data.x_train, data.y_train, conf.samples, cfg.seed * 1000 + conf.seed)
    if len(x) < chunk:
        raise PosthocError(f"--samples={len(x)} is below the chunk size {chunk}: raise --samples")
    params = {n: p.detach() for n, p in trainable_params(model).items()}
    rows: list[tuple] = []
    for m in conf.modes:
        res = hessian_top_eigenvalue(model, loss_fn, params, x, y, m, chunk, conf.iters, conf.tol, conf.seed)
        rows += [(step, HESS_LMAX[m], None, None, None, res.top), (step, HESS_LMIN[m], None, None, None, res.bottom),
                 (step, HESS_RESIDUAL[m], None, None, None, res.residual)]
    xb, yb = x[:chunk], y[:chunk]  # one training-size batch of the subset, in train mode
    with mode(model, "train"):
        gc = gradient_curvature(model, loss_fn, params, xb, yb)
        rows += [(step, BATCH_SHARPNESS, None, None, None, gc.batch_sharpness),
                 (step, BETA_LIMIT, None, None, None, gc.beta_limit)]
        thm = Theorem41Hooks({i: b.norm for i, b in enumerate(model.blocks, 1)})
        sig = SignalHooks(model.blocks, model.residual_units)
        thm.attach()
        sig.attach()
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        try:
            model.zero_grad(set_to_none=True)
            loss_fn(model(xb), yb).backward()
            for i, t in thm.collect().items():
                rows += [(step, name, i, None, None, v) for name, v in zip(THM41_METRICS, t.values())]
            rows += [(step, name, i, None, None, v) for name, i, v in sig.rows()]
        finally:
            model.zero_grad(set_to_none=True)
            with torch.no_grad():  # the forward above moved the running statistics: put them back
                for n, b in model.named_buffers():
                    b.copy_(buffers[n])
    new = pd.read_csv(StringIO(",".join(COLUMNS) + "\n" + format_rows(rows)), dtype={"metric": str})
    if old is not None:
        new_all = pd.concat([old[~old["metric"].isin(set(new["metric"]))], new], ignore_index=True)
    else:
        new_all = new
    write_text_atomic(run_dir / POSTHOC_CSV, new_all.to_csv(index=False))
    write_json_atomic(run_dir / POSTHOC_JSON, {"settings": asdict(conf), "chunk": chunk, "samples": len(x),
                                               "step": step, "weights": FINAL,
                                               "at": datetime.datetime.now().astimezone().isoformat(timespec="seconds")})
    return new


__all__ = ["POSTHOC_CSV", "POSTHOC_JSON", "PosthocConf", "PosthocError", "load_run", "measure_run", "ConfigError"]
