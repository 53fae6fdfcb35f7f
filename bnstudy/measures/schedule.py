"""The training loop's one interface to the measurements: what is due at a step, one call per phase.

``Probes`` builds the run's enabled entries of ``MEASURES`` and serves what they need: forward hooks on
the blocks they read, the RNG state captured before the forward (replayed by their probes when
``measure.fix_noise``), the snapshot (w_t, g_t) kept across the optimiser's step. Around a phase in which
an entry runs probe passes, torch's RNG is captured and put back, so training with measurements on is
bit-for-bit training with them off. It knows no measurement by name.

Runs that share a training trajectory (``bnstudy.train.Trainer`` with ``also=``: the same model, data,
optimiser and seed, other measurements) each have their own ``Probes``, which the loop calls as one
``ProbeSet``; given one ``SharedEntries``, an entry with the same config in several of them is built once
and its rows computed once per phase and step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Optional

import torch

from bnstudy.measures.functional import LossFn, Params, RNGState, trainable_params
from bnstudy.measures.registry import Context, Measurement, Row, Step, checks, enabled, is_due, node_of

if TYPE_CHECKING:
    from bnstudy.models import BlockNet

__all__ = ["Due", "Probes", "ProbeSet", "Row", "is_due"]


@dataclass(frozen=True)
class Due:
    """What the loop must prepare at a step (each flag: some measurement due at the step needs it)."""

    hooks: bool = False  # forward hooks on this forward
    rng: bool = False  # capture the RNG state before the forward
    snapshot: bool = False  # keep w_t, g_t for after the optimiser step
    after_backward: bool = False
    after_step: bool = False


NOTHING_DUE = Due()
DUE_FLAGS = [f.name for f in fields(Due)]


class SharedEntries:
    """The measurement entries of runs that share one trajectory, each (class, config) built once.

    A shared entry runs once per step and phase; the other runs' ``Probes`` get its rows from the memo.
    That gives what each run alone would compute: an entry sees only the model, the step and its own
    state, and its probes replay the step's noise (``measure.fix_noise``); an entry that draws from
    torch's RNG without replaying it is never shared (its values depend on the draws before it).
    """

    def __init__(self) -> None:
        self.entries: dict[tuple, Measurement] = {}
        self.memo: dict[tuple, list[Row]] = {}
        self.memo_step: Optional[int] = None

    def get(self, cls: type[Measurement], conf, ctx: Context, fix_noise: bool) -> Measurement:
        if cls.needs_rng and not fix_noise:
            return cls(conf, ctx)
        key = (cls.name, repr(conf))
        if key not in self.entries:
            self.entries[key] = cls(conf, ctx)
        return self.entries[key]

    def once(self, m: Measurement, phase: str, step: int, run) -> list[Row]:
        """``run()``'s rows, computed at the first call for (entry, phase, step) and reused after it."""
        if step != self.memo_step:
            self.memo, self.memo_step = {}, step
        key = (id(m), phase)
        if key not in self.memo:
            self.memo[key] = run()
        return self.memo[key]


class Probes:
    """The scheduled measurements of one run (the enabled entries of ``MEASURES``, in row order)."""

    def __init__(self, cfg, model: "BlockNet", loss_fn: LossFn, lr: float, seed: int, data=None, batch_size: int = 0,
                 shared: Optional[SharedEntries] = None, ctx: Optional[Context] = None):
        for ok, message in checks(cfg):
            if not ok:
                raise ValueError(message)
        self.cfg, self.model = cfg, model
        self.shared = shared or SharedEntries()
        ctx = ctx or Context.of(model, loss_fn, lr, seed, data, batch_size)
        self.entries: list[Measurement] = [self.shared.get(c, node_of(cfg, c), ctx, cfg.fix_noise) for c in enabled(cfg)]
        self._captured: dict[int, torch.Tensor] = {}
        self._handles: list = []

    # ------------------------------------------------------------------ schedule
    def due(self, step: int) -> Due:
        due = [m for m in self.entries if m.due(step)]
        if not due:
            return NOTHING_DUE
        return Due(hooks=any(m.hook_layers(m.conf) or "before_forward" in m.phases for m in due),
                   rng=self.cfg.fix_noise and any(m.needs_rng for m in due),
                   snapshot=any(m.needs_snapshot for m in due),
                   after_backward=any("after_backward" in m.phases or m.hook_layers(m.conf) for m in due),
                   after_step=any("after_step" in m.phases for m in due))

    def before_forward(self, step: int, due: Due) -> None:
        """Hook the blocks the due measurements read, so the training forward itself yields them."""
        if not due.hooks:
            return
        for m in self.entries:
            if "before_forward" in m.phases and m.due(step):
                self.shared.once(m, "before_forward", step, lambda m=m: m.before_forward(step) or [])
        layers = dict.fromkeys(i for m in self.entries if m.due(step) for i in m.hook_layers(m.conf))
        for i in layers:
            def keep(_m, _inp, out, i=i):
                self._captured[i] = out.detach()
            self._handles.append(self.model.block(i).probe.register_forward_hook(keep))

    def detach_hooks(self) -> None:
        """Remove the step's forward hooks (what they captured stays): after the training forward, before
        any probe pass, so another run's probes passes on a shared trajectory are never captured."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # ------------------------------------------------------------------ phases
    def after_backward(self, step: int, x, y, loss: torch.Tensor, rng: Optional[RNGState]) -> list[Row]:
        """Measurements at w_t with the step's gradient g(w_t) in ``.grad`` (before the update); removes the
        step's forward hooks (the loop calls it at every step where ``due.after_backward``)."""
        self.detach_hooks()
        s = Step(step, x, y, loss=loss, rng=rng, captured=self._captured)
        self._captured = {}
        return self._run("after_backward", s)

    def snapshot(self) -> tuple[Params, Params]:
        """w_t and g(w_t), kept for the measurements that run after the optimiser's step."""
        params = trainable_params(self.model)
        return ({n: p.detach().clone() for n, p in params.items()},
                {n: p.grad.clone() for n, p in params.items() if p.grad is not None})

    def after_step(self, step: int, x, y, before: Optional[tuple[Params, Params]], rng: Optional[RNGState]) -> list[Row]:
        """Measurements at w_{t+1}, the step the optimiser actually took (``before``: the snapshot)."""
        return self._run("after_step", Step(step, x, y, rng=rng, before=before))

    def _run(self, phase: str, s: Step) -> list[Row]:
        due = [m for m in self.entries if phase in m.phases and m.due(s.step)]
        post = RNGState.capture() if any(m.needs_rng for m in due) else None
        rows: list[Row] = []
        for m in due:
            rows += self.shared.once(m, phase, s.step, lambda m=m: getattr(m, phase)(s))
        if post is not None:
            post.restore()
        return rows

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        return {m.name: m.state_dict() for m in self.entries}

    def load_state_dict(self, state: dict) -> None:
        for m in self.entries:
            m.load_state_dict(state[m.name])


class ProbeSet:
    """The ``Probes`` of the runs on one trajectory, called by the loop once per phase: what is due is the
    union of what each run needs, and each phase returns each run's rows apart (a list per run, in order).

    Each run is served as it would be alone: its measurements get the step's RNG state or snapshot only
    where its own schedule asks for them, and with several runs every run's forward hooks come off right
    after the training forward, so one run's probe passes never reach another's hooks.
    """

    def __init__(self, probes: list[Probes]):
        self.probes = probes
        self._dues: list[Due] = [NOTHING_DUE] * len(probes)

    def due(self, step: int) -> Due:
        self._dues = dues = [p.due(step) for p in self.probes]
        if len(dues) == 1 or all(d is NOTHING_DUE for d in dues):
            return dues[0]
        return Due(*(any(getattr(d, flag) for d in dues) for flag in DUE_FLAGS))

    def before_forward(self, step: int) -> None:
        for p, due in zip(self.probes, self._dues):
            p.before_forward(step, due)

    def after_forward(self) -> None:
        if len(self.probes) > 1:
            for p in self.probes:
                p.detach_hooks()

    def after_backward(self, step: int, x, y, loss: torch.Tensor, rng: Optional[RNGState]) -> list[list[Row]]:
        return [p.after_backward(step, x, y, loss, rng if due.rng else None) if due.after_backward else []
                for p, due in zip(self.probes, self._dues)]

    def snapshot(self) -> tuple[Params, Params]:
        return self.probes[0].snapshot()  # the model's, whichever run asks

    def after_step(self, step: int, x, y, before, rng: Optional[RNGState]) -> list[list[Row]]:
        return [p.after_step(step, x, y, before if due.snapshot else None, rng if due.rng else None)
                if due.after_step else [] for p, due in zip(self.probes, self._dues)]

    def state_dicts(self) -> list[dict]:
        return [p.state_dict() for p in self.probes]

    def load_state_dicts(self, states: list[dict]) -> None:
        for p, state in zip(self.probes, states):
            p.load_state_dict(state)
