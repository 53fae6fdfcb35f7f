"""make bench's opening summary, and a loaded run named as such instead of failing."""

from __future__ import annotations

from experiments.bench.summary import load_verdict, summary_lines

INFO = {"cpu": "AMD EPYC", "cores": "2", "threads": "2", "device": "cpu", "load_avg": "0.10 0.20 0.30",
        "load_avg_end": "2.20 1.50 1.00"}
ROWS = [
    dict(section="step", case="small_cnn/none", metric="suite_over_bare", value=1.02, target="<= 1.05", status="PASS", note=""),
    dict(section="data", case="small_cnn/none", metric="data_share_of_step", value=0.96, target="<= 5", status="PASS", note=""),
    dict(section="measure", case="vgg_quick/batch ics", metric="cost_step_equivalents", value=1.59, target="<= 2.4",
         status="PASS", note="stated 2: 1 forward + 1 backward per layer"),
    dict(section="measure", case="vgg_quick/batch activations", metric="cost_step_equivalents", value=0.62,
         target="<= 0.58", status="FAIL", note="stated 0: hooks"),
    dict(section="make_all", case="fig1", metric="wall_s", value=69.7, target="", status="", note=""),
    dict(section="make_all", case="total", metric="wall_s", value=669.2, target="", status="", note=""),
]


def test_summary_opens_with_the_numbers_that_matter():
    lines = summary_lines(ROWS, INFO)
    assert lines[0] == "machine: AMD EPYC, 2 cores, bench threads 2, device cpu"
    assert lines[1].startswith("load: 0.10 before, 2.20 after") and "LOADED" not in lines[1]
    assert "suite / bare (target <= 1.05): small_cnn/none 1.02" in lines
    assert "data: 0.96% of a small-CNN step (target <= 5%)" in lines
    assert "  vgg_quick/batch: ics 1.59/2/2.4, activations 0.62/0/0.58*" in lines
    assert "make all walls (training loops): fig1 70 s; total 669 s" in lines
    assert lines[-1].endswith("docs/performance.md")


def test_a_loaded_machine_is_named_not_failed():
    assert load_verdict(INFO) is None  # the bench's own 2 threads at the end are not a load
    busy_before = {**INFO, "load_avg": "1.41 1.26 1.26"}
    assert "1.41 before it started" in load_verdict(busy_before)
    busy_after = {**INFO, "load_avg_end": "3.50 2.00 1.00"}
    assert "3.50 at its end" in load_verdict(busy_after)
    line = summary_lines(ROWS, busy_after)[1]
    assert line.startswith("LOADED: ") and "unreliable" in line and "not failures" in line
