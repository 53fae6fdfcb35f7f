"""Benchmarks (issue 5): what the suite costs beyond a bare PyTorch loop, and where the time goes.

    python -m experiments.bench                   # default sizes: < 5 min on 2 CPU cores
    python -m experiments.bench --full            # longer runs, more repeats, VGG-16 at batch 128 on CPU
    python -m experiments.bench --device cuda     # device-resident data, timed with torch.cuda.synchronize
    python -m experiments.bench --make-all        # also: wall time of `make all` (quick) from the runs' summaries

Sections, all in one process, printed as tables and written to one long-format CSV (``--out``):

1. ``step``: the suite's training step (the real ``Trainer.run``, measurements, eval, checkpoints and the
   progress bar off, ``log_every`` at its default) against a bare hand-written loop (the same model from
   ``build_model``, the same data tensors on the same device, the same SGD, batches indexed from the
   in-memory tensors with precomputed permutations, nothing logged). Suite and bare repeats alternate
   (AB BA AB ...) so machine noise hits both; the table shows medians, and the ratio is the median of
   the per-repeat ratios of each back-to-back (suite, bare) pair, which a load that comes and goes
   between pairs does not bias.
   The suite's time is that of its step loop (every iteration of ``_train``'s ``for step in bar``, taken
   by wrapping the progress bar; read-back and CSV writes on the log schedule included); what ``run()``
   spends outside the loop (summary/CSV files, the final metrics) is shown apart, in ms per run.
2. ``data``: the suite's in-memory batching (``BatchSampler.indices`` + tensor indexing, one epoch,
   its permutation included) against ``torch.utils.data.DataLoader`` over a ``TensorDataset`` and over
   torchvision's ``FashionMNIST`` per-sample path (uint8 -> PIL -> ToTensor -> Normalize), ms per batch;
   and the share of a small-CNN training step spent on data.
3. ``measure``: each registered measurement's cost (every entry of ``bnstudy.measures.MEASURES``) in
   training-step equivalents: a run with just that measurement due at every step against one with
   none, (t_on - t_off) / t_off (median over back-to-back pairs), next to the passes it states
   (``MEASURES[name].cost``). One extra pass = one forward and one backward = one training step's worth
   (the optimiser's update is the difference).
4. ``flops``: achieved FLOP/s of the VGG training steps (FLOPs of one forward+backward counted with
   ``torch.utils.flop_counter.FlopCounterMode``; convolutions and matmuls only) against a large float32
   matmul timed in the same run (``torch.utils.benchmark``).
5. ``switches``: the effect of ``train.channels_last`` (and, on CUDA, ``train.tf32``) on the suite's VGG
   step (VGG-16 on a GPU, the quick VGG on a CPU): each off and on back to back, speed-up = off / on.
6. ``paper_fig1`` (only with ``--sections paper_fig1``): wall time of fig1 at paper scale on this device
   (VGG-16, 4 runs x 15,000 steps) on synthetic CIFAR-10-sized data written in CIFAR-10's own format.
7. ``make_all`` (``--make-all``): per experiment of ``make all``, the wall time (first loop start to last
   loop end, so parallel DLN jobs count once; older summaries: the summed ``wall_time_s``) of the runs
   of its latest quick sweep under ``results/<exp>/quick/`` (training loops only; process start-up, data
   loading and figures are not in it). Nothing is run.
8. ``make_all_run`` (only with ``--sections make_all_run``): ``make all`` run and timed, against a baseline
   revision (``--baseline``) and beside a busy process (``--busy``).
9. ``slurm`` (only with ``--sections slurm``; a SLURM cluster): the per-job overhead of
   ``hydra/launcher=slurm`` against the basic launcher on the same tiny sweep, side by side.

Targets (PASS/FAIL in the table; the bench never fails on them): suite/bare <= 1.05 for every model;
data <= 5% of a small-CNN step; each measurement within 1.2x its stated passes (a 0-pass measurement
within 0.2 step, the same 20% of one step). Activation sampling does no extra pass but must read its
layers and sort the chosen units' N x H x W values for exact quantiles: its budget is 1.2x that bare
arithmetic ("floor": the bare loop doing it after every backward, against the bare loop, back to back)
when the floor is above 0.2 step (any measurement may state such a floor: ``bench_floor``).

Modules, by what they measure: ``common`` (sizes, the Bench, the suite's timed loop and the bare loop),
``step`` (sections 1 and 5), ``data`` (2), ``measure`` (3), ``flops`` (4), ``walls`` (6, 7 and 8), ``slurm``
(9), ``cli`` (arguments, machine, tables, CSV).
"""

from __future__ import annotations

import bnstudy.threads  # noqa: F401  (before torch: idle OpenMP threads sleep, as in the training entry point)
