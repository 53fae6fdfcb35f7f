"""Section 1, ``step``: the suite's training step against a bare PyTorch loop; section 5, ``switches``:
``train.channels_last`` / ``train.tf32`` off and on, back to back."""

from __future__ import annotations

from bnstudy.build import set_tf32
from experiments.bench.common import RATIO_TARGET, Bench, alternate, bare_run, med, model_cases, suite_run

# ------------------------------------------------------------------------------------------ 1. step
def section_step(bench: Bench) -> None:
    s = bench.sizes
    for case in model_cases(bench.args, s):
        data = bench.data(case.data)
        slow = case.slow
        repeats = s.vgg16_repeats_cpu if slow else s.repeats
        cfg1 = bench.config(case.overrides, 1, case.threads)
        if not s.tiny:
            bare_run(bench, cfg1, data, 1)  # warm-up: kernels, allocator
        if s.tiny:
            steps = s.min_steps
        elif slow:
            steps = s.vgg16_steps_cpu
        else:
            per_step = bare_run(bench, cfg1, data, 3) / 3
            steps = int(min(s.max_steps, max(s.min_steps, round(s.target_s / per_step))))
        cfg = bench.config(case.overrides, steps, case.threads)
        if not (slow or s.tiny):
            suite_run(bench, bench.config(case.overrides, 2, case.threads), data)  # warm-up of the suite's path
        fixed, done = [], steps

        def suite_ms() -> float:
            nonlocal done
            loop, outside, done = suite_run(bench, cfg, data)
            fixed.append(1000 * outside)
            return 1000 * loop / done

        suite, bare = alternate(repeats, suite_ms, lambda: 1000 * bare_run(bench, cfg, data, steps) / steps)
        b_ms, s_ms = med(bare), med(suite)
        ratio = med([a / b for a, b in zip(suite, bare)])  # each pair ran back to back: load drifts cancel
        note = (f"steps={steps} batch={cfg.train.batch_size} repeats={repeats} threads={case.threads or bench.threads}"
                f" data={data.name}" + (f" (suite stopped at {done})" if done != steps else ""))
        bench.step_ms[case.name] = dict(bare_ms=b_ms, suite_ms=s_ms, cfg=cfg, data=data)
        bench.row("step", case.name, "bare_ms_per_step", b_ms, "ms", note=note)
        bench.row("step", case.name, "suite_ms_per_step", s_ms, "ms", note=note)
        bench.row("step", case.name, "suite_steps_per_s", 1000 / s_ms, "steps/s", note=note)
        bench.row("step", case.name, "suite_outside_loop_ms_per_run", med(fixed), "ms",
                  note="run() beyond the loop: summary/CSV files, final metrics")
        bench.check("step", case.name, "suite_over_bare", ratio, "x", RATIO_TARGET,
                    note=f"median of {repeats} back-to-back pairs; ratio of medians {s_ms / b_ms:.3f}, of minima "
                         f"{min(suite) / min(bare):.3f}; spread suite {min(suite):.3g}..{max(suite):.3g} "
                         f"bare {min(bare):.3g}..{max(bare):.3g} ms")
        print(f"  step {case.name:16s} bare {b_ms:9.3f} ms  suite {s_ms:9.3f} ms  ratio {ratio:.3f}  "
              f"({note})", flush=True)


# ------------------------------------------------------------------------------------------ 5. switches
def section_switches(bench: Bench) -> None:
    """The performance switches' effect on the suite's step: ``train.channels_last`` (and ``train.tf32`` on
    CUDA), each run off and on back to back (off/on alternating), on the VGG the device trains at scale."""
    s = bench.sizes
    cuda = bench.device.type == "cuda"
    model = "vgg16" if cuda or s.tiny else "vgg_quick"
    switches = ["train.channels_last"] + (["train.tf32"] if cuda else [])
    for case in [c for c in model_cases(bench.args, s) if c.name.split("/")[0] == model]:
        data = bench.data(case.data)
        base = {k: False for k in switches}
        if s.tiny:
            steps = s.min_steps
        else:
            suite_run(bench, bench.config(case.overrides, 2, case.threads, set=base), data)  # warm-up
            loop, _, done = suite_run(bench, bench.config(case.overrides, 5, case.threads, set=base), data)
            steps = int(min(s.max_steps, max(s.min_steps, round(s.target_s / (loop / done)))))
        for switch in switches:
            def step_ms(on: bool) -> float:
                loop, _, done = suite_run(bench, bench.config(case.overrides, steps, case.threads,
                                                              set={**base, switch: on}), data)
                return 1000 * loop / done

            off, on = alternate(s.repeats, lambda: step_ms(False), lambda: step_ms(True))
            speedup = med([t_off / t_on for t_off, t_on in zip(off, on)])
            note = f"steps={steps} repeats={s.repeats}; off {med(off):.4g} ms, on {med(on):.4g} ms per step"
            bench.row("switches", case.name, f"{switch.split('.')[1]}_speedup", speedup, "x", note=note)
            print(f"  switches {case.name:16s} {switch:20s} off {med(off):8.3f} ms  on {med(on):8.3f} ms  "
                  f"speed-up {speedup:.3f}x", flush=True)
    set_tf32(bench.args.tf32)  # the process-wide flag back to the bench's own setting


