"""Section 2, ``data``: the suite's in-memory batching against ``torch.utils.data.DataLoader`` (over a
``TensorDataset`` and over torchvision's per-sample Fashion-MNIST), and its share of a small-CNN step."""

from __future__ import annotations

import torch

from bnstudy.data import BatchSampler, TensorData
from experiments.bench.common import DATA_SHARE_TARGET, Bench, Timer, med, suite_run

def torchvision_fmnist(data: TensorData):
    """torchvision's own FashionMNIST dataset object (its __getitem__: uint8 -> PIL -> transforms) over
    uint8 images; the real files when installed, else the random tensors mapped back to 0..255."""
    import torchvision.transforms as T
    from torchvision.datasets import FashionMNIST

    x = data.x_train.detach().cpu()
    images = ((x - x.amin()) / (x.amax() - x.amin()) * 255).round().to(torch.uint8)[:, 0]
    ds = FashionMNIST.__new__(FashionMNIST)  # without its __init__, which wants the files in its own layout
    ds.data, ds.targets = images, data.y_train.detach().cpu()
    ds.transform, ds.target_transform = T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))]), None
    ds[0]  # fails here, not in the timing, if torchvision's internals changed
    return ds


def section_data(bench: Bench) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    s, dev = bench.sizes, bench.device
    data = bench.data("fmnist")
    b, n = 128 if not s.tiny else 64, len(data.x_train)
    bench.set_threads(None)
    per_epoch = n // b
    results: dict[str, list[float]] = {"suite_in_memory": [], "dataloader_tensordataset": [],
                                       "dataloader_torchvision_fmnist": []}
    cpu_x, cpu_y = data.x_train.cpu(), data.y_train.cpu()
    loaders = {
        "dataloader_tensordataset": DataLoader(TensorDataset(cpu_x, cpu_y), batch_size=b, shuffle=True,
                                               drop_last=True, pin_memory=dev.type == "cuda"),
        "dataloader_torchvision_fmnist": DataLoader(torchvision_fmnist(data), batch_size=b, shuffle=True,
                                                    drop_last=True, pin_memory=dev.type == "cuda"),
    }
    k = min(s.data_batches, per_epoch)
    for r in range(s.repeats):
        sampler = BatchSampler(n, b, seed=r, device=dev)
        with Timer(bench) as t:  # one epoch: its permutation and every batch
            for step in range(per_epoch):
                idx = sampler.indices(step)
                x, y = data.x_train[idx], data.y_train[idx]
        results["suite_in_memory"].append(1000 * t.s / per_epoch)
        for name, loader in loaders.items():
            with Timer(bench) as t:
                for i, (x, y) in enumerate(loader):
                    x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                    if i + 1 == k:
                        break
            results[name].append(1000 * t.s / k)
    notes = {"suite_in_memory": f"BatchSampler.indices + indexing, {per_epoch} batches (one epoch)",
             "dataloader_tensordataset": f"num_workers=0, {k} batches",
             "dataloader_torchvision_fmnist": f"torchvision FashionMNIST.__getitem__ (PIL, ToTensor, Normalize), "
                                              f"num_workers=0, {k} batches"}
    for name, ms in results.items():
        bench.row("data", name, "ms_per_batch", med(ms), "ms", note=f"batch={b} data={data.name} " + notes[name])
    step_ms = _small_cnn_step_ms(bench)
    in_memory = med(results["suite_in_memory"])
    bench.check("data", "small_cnn/none", "data_share_of_step", 100 * in_memory / step_ms, "%", DATA_SHARE_TARGET,
                note=f"suite in-memory batch {in_memory:.4g} ms / suite step {step_ms:.4g} ms")
    tv = med(results["dataloader_torchvision_fmnist"])
    bench.row("data", "small_cnn/none", "torchvision_share_of_step", 100 * tv / (step_ms - in_memory + tv), "%",
              note="the same step fed by the torchvision per-sample DataLoader instead")
    for name, ms in results.items():
        print(f"  data {name:32s} {med(ms):8.4f} ms/batch", flush=True)


def _small_cnn_step_ms(bench: Bench) -> float:
    got = bench.step_ms.get("small_cnn/none")
    if got:
        return got["suite_ms"]
    cfg = bench.config(["model=small_cnn", "data=fashion_mnist", "norm=none"], 20)
    data = bench.data("fmnist")
    suite_run(bench, bench.config(["model=small_cnn", "data=fashion_mnist"], 2), data)
    return med([1000 * (lambda r: r[0] / r[2])(suite_run(bench, cfg, data)) for _ in range(3)])


