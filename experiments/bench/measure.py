"""Section 3, ``measure``: each registered measurement's cost in training-step equivalents, against the
cost it states (``MEASURES[name].cost``).

For each entry of ``bnstudy.measures.MEASURES`` (none is named here): a run with its ``bench_settings``
(it, and what it needs, due at every step) against a run with none, back to back; (t_on - t_off) / t_off
against the summed stated passes of the measurements that config turns on. An entry with a
``bench_floor`` (arithmetic it cannot avoid) also gets that floor, the bare loop doing it after every
backward, and a budget of 1.2x the floor when that is above the 0-pass budget.
"""

from __future__ import annotations

from typing import Callable

from bnstudy.data import TensorData
from bnstudy.measures.registry import enabled, node_of, ordered, total_cost
from experiments.bench.common import (MEASURE_SLACK, ZERO_PASS_BUDGET, Bench, alternate, bare_run, med,
                                      suite_run)

Variant = tuple[str, dict, type]  # (name, config keys to set, its registry entry)


def variants(tiny: bool) -> list[Variant]:
    """One per registered measurement, in row order: its bench settings as dotted config keys."""
    return [(c.name, {f"measure.{k}": v for k, v in c.bench_settings(tiny).items()}, c) for c in ordered()]


def floor_of(bench: Bench, cfg, entry, data: TensorData, steps: int, repeats: int) -> float | None:
    """The bare loop with the entry's ``bench_floor`` arithmetic after every backward (on the outputs of
    its ``hook_layers``' probes) against the bare loop, in steps: the measurement's minimum, paid where the
    suite pays it (after the backward, with the caches the step left), median over back-to-back pairs;
    None if the entry states no floor."""
    conf = node_of(cfg.measure, entry)
    arithmetic: Callable | None = entry.bench_floor(conf)
    if arithmetic is None:
        return None
    layers = entry.bench_layers(conf)
    off, on = alternate(repeats, lambda: bare_run(bench, cfg, data, steps),
                        lambda: bare_run(bench, cfg, data, steps, arithmetic, layers))
    return med([t_on / t_off - 1 for t_on, t_off in zip(on, off)])


def section_measure(bench: Bench) -> None:
    s = bench.sizes
    models = [("small_cnn/batch", ["model=small_cnn", "data=fashion_mnist", "norm=batch"], "fmnist"),
              ("vgg_quick/batch", ["model=vgg_quick", "data=fashion_mnist", "norm=batch"], "fmnist")]
    if bench.args.models:
        keep = set(bench.args.models.split(","))
        models = [m for m in models if m[0].split("/")[0] in keep or m[0] in keep] or models[:1]
    if s.tiny:
        models = models[:1]
    for case, overrides, kind in models:
        data = bench.data(kind)
        if s.tiny:
            steps = s.min_steps
        else:
            suite_run(bench, bench.config(overrides, 2), data)  # warm-up
            loop, _, done = suite_run(bench, bench.config(overrides, 10), data)
            steps = int(min(s.max_steps, max(5, round(s.measure_target_s / (loop / done)))))
        measured = variants(s.tiny)
        for _, extra, _ in measured if not s.tiny else []:  # warm-up of each measurement's code path
            suite_run(bench, bench.config(overrides, 2, set=extra), data)
        times: dict[str, list[float]] = {"off": [], **{name: [] for name, _, _ in measured}}
        costs: dict[str, list[float]] = {name: [] for name, _, _ in measured}
        for r in range(s.measure_repeats):
            for name, extra, _ in measured:  # each measured run next to its own run with none: off, on, off, on
                for which in (("off", name) if r % 2 == 0 else (name, "off")):
                    more = extra if which == name else {}
                    loop, _, done = suite_run(bench, bench.config(overrides, steps, set=more), data)
                    times[which].append(1000 * loop / done)
                costs[name].append(times[name][-1] / times["off"][-1] - 1)
        bench.row("measure", case, "step_ms_measurements_off", med(times["off"]), "ms",
                  note=f"steps={steps} repeats={s.measure_repeats}")
        for name, extra, entry in measured:
            cfg = bench.config(overrides, steps, set=extra)
            on_now = enabled(cfg.measure)  # the entry and any it rides on (beta_act: the landscape)
            passes = total_cost(cfg.measure)
            own = entry.cost(node_of(cfg.measure, entry))
            stated = "; ".join(c.cost(node_of(cfg.measure, c)).why for c in on_now if c is not entry)
            stated = own.why + (f" + {stated}" if stated else "")
            cost = med(costs[name])  # median over back-to-back (off, on) pairs
            budget = MEASURE_SLACK * passes if passes else ZERO_PASS_BUDGET
            per = f"; {cost / own.units:.3g} per {own.per}" if own.per else ""
            floor = floor_of(bench, cfg, entry, data, steps, s.measure_repeats)
            if floor is not None:
                bench.row("measure", f"{case} {name}", "floor_step_equivalents", floor, "steps",
                          note=f"bare loop + the arithmetic {name} cannot avoid, after each backward")
                budget = max(budget, MEASURE_SLACK * floor)
                per = f"; bare floor {floor:.3g} step"
            bench.row("measure", f"{case} {name}", "step_ms_measured", med(times[name]), "ms",
                      note=f"every=1, steps={steps}")
            bench.check("measure", f"{case} {name}", "cost_step_equivalents", cost, "steps", budget,
                        note=f"stated {passes:g}: {stated}{per}")
            print(f"  measure {case} {name:20s} {cost:7.3f} step-eq (stated {passes:g}, budget {budget:.3g}){per}",
                  flush=True)
