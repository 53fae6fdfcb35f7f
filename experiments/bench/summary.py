"""The bench's opening summary, and whether the machine's load made the run unreliable.

Terms (docs/performance.md, "Terms used by make bench"): a **step-equivalent** is a cost in training
steps of the same model on the same batch; the **floor** is the bare arithmetic a measurement cannot
avoid, timed in the bare loop; the **budget** is what a measurement may cost before the bench flags it
(1.2x its stated passes, 0.2 step for a 0-pass one, or 1.2x its floor when that is higher).

A run is **loaded** (its times unreliable, its flags not failures) when the 1-minute load average says
other processes competed for the cores: at least one core's worth before the bench started, or at
least one more than the bench's own threads when it ended.
"""

from __future__ import annotations

import math
import re

LOAD_MARGIN = 1.0  # one core's worth of other work


def load_verdict(info: dict[str, str]) -> str | None:
    """Why the run was loaded (one phrase), or None when nothing else competed for the cores."""
    before = float(info["load_avg"].split()[0])
    try:  # not recorded where the bench loaded the machine itself (make_all_run --busy)
        after = float(info.get("load_avg_end", info["load_avg"]).split()[0])
    except ValueError:
        after = before
    own = min(int(info["threads"]), int(info["cores"]))
    if before >= LOAD_MARGIN:
        return f"load average {before:.2f} before it started, on {info['cores']} cores"
    if after >= own + LOAD_MARGIN:
        return f"load average {after:.2f} at its end, above its own {own} thread(s) on {info['cores']} cores"
    return None


def _value(rows, section, metric):
    return [(r["case"], float(r["value"]), r) for r in rows if r["section"] == section and r["metric"] == metric]


def _g(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.3g}"


def summary_lines(rows: list[dict], info: dict[str, str]) -> list[str]:
    """The few lines that open the bench's output."""
    why = load_verdict(info)
    lines = [f"machine: {info['cpu']}, {info['cores']} cores, bench threads {info['threads']}, device {info['device']}",
             (f"LOADED: {why}: the times below are unreliable and their flags are not failures; rerun on an "
              f"idle machine" if why else
              f"load: {info['load_avg'].split()[0]} before, {info.get('load_avg_end', '?').split()[0]} after: "
              f"nothing else competed for the cores")]
    ratios = _value(rows, "step", "suite_over_bare")
    if ratios:
        lines.append("suite / bare (target <= 1.05): " + ", ".join(f"{c} {_g(v)}" for c, v, _ in ratios))
    share = _value(rows, "data", "data_share_of_step")
    if share:
        lines.append(f"data: {_g(share[0][1])}% of a small-CNN step (target <= 5%)")
    costs = _value(rows, "measure", "cost_step_equivalents")
    if costs:
        lines.append("measurements, cost / stated passes / budget in step-equivalents (a flag: *):")
        by_case: dict[str, list[str]] = {}
        for case, v, r in costs:
            model, name = case.split(" ", 1)
            stated = re.match(r"stated ([\d.]+)", r.get("note") or "")
            budget = (r.get("target") or "").replace("<=", "").strip()
            flag = "*" if r.get("status") not in ("PASS", "") else ""
            by_case.setdefault(model, []).append(f"{name} {_g(v)}/{stated.group(1) if stated else '?'}/"
                                                 f"{_g(float(budget)) if budget else '?'}{flag}")
        lines += [f"  {model}: " + ", ".join(items) for model, items in by_case.items()]
    walls = _value(rows, "make_all", "wall_s")
    if walls:
        parts = [f"{c} {v:.0f} s" for c, v, _ in walls if c != "total" and not math.isnan(v)]
        total = next((v for c, v, _ in walls if c == "total"), float("nan"))
        lines.append(f"make all walls (training loops): {', '.join(parts)}; total {total:.0f} s")
    timed = _value(rows, "make_all_run", "wall_s") + _value(rows, "make_all_run", "ratio")
    if timed:
        lines.append("make all, run end to end: " + ", ".join(
            f"{c} {v:.0f} s" if r["unit"] == "s" else f"{c} {v:.2f}x{' (target ' + r['target'] + ')' if r.get('target') else ''}"
            for c, v, r in timed))
        same = _value(rows, "make_all_run", "identical")
        if same:
            lines.append(f"  beside the busy process, metrics.csv byte-identical to the idle run's: {same[0][1]:.0f} "
                         f"{same[0][2]['note']}")
    lines.append("terms (step-equivalent, floor, budget, suite / bare, loaded): docs/performance.md")
    return lines
