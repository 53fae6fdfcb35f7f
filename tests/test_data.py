"""bnstudy.data: small files in the real on-disk formats are read back value for value."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from bnstudy.config import DataConf
from bnstudy.data import (
    CIFAR_TEST_FILE,
    CIFAR_TRAIN_FILES,
    DATASETS,
    FASHION_SYSTEM_DIR,
    BatchSampler,
    DatasetFormatError,
    DatasetNotFoundError,
    TensorData,
    load_dataset,
    read_idx,
    safe_unpickle,
)

IMAGES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABELS = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}


# ------------------------------------------------------------------------------------------ writers
def idx_bytes(arr: np.ndarray) -> bytes:
    header = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(arr)
    if gz:
        path, data = path.with_name(path.name + ".gz"), gzip.compress(data)
    path.write_bytes(data)
    return path


def write_idx_dataset(directory: Path, seed: int = 0, n=(12, 7), hw=(5, 4), gz=(True, True)):
    """Four IDX files (train/test images and labels); ``gz`` per split. Returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for (split, count), zipped in zip(zip(("train", "test"), n), gz):
        images = rng.integers(0, 256, size=(count, *hw), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        write_idx(directory / IMAGES[split], images, zipped)
        write_idx(directory / LABELS[split], labels, zipped)
        out[split] = (images, labels)
    return out


def write_cifar(directory: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0):
    """The five training batches and the test batch as CIFAR-10's python pickles."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    parts = {}
    for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE):
        n = n_test if name == CIFAR_TEST_FILE else per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img{i}.png".encode() for i in range(n)]}
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        parts[name] = (data, np.array(labels))
    train = [parts[name] for name in CIFAR_TRAIN_FILES]
    x_train, y_train = (np.concatenate(arrays) for arrays in zip(*train))
    return (x_train, y_train, *parts[CIFAR_TEST_FILE])


def unit(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32)) / 255


def conf(**kw) -> DataConf:
    return DataConf(**kw)


# --------------------------------------------------------------------------------- MNIST / Fashion
@pytest.mark.parametrize("gz", [(True, True), (False, False), (True, False)])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_fashion_mnist_values(tmp_path, gz, layout):
    directory = tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw"
    written = write_idx_dataset(directory, gz=gz)
    data = load_dataset(conf(name="fashion_mnist", root=str(tmp_path), normalize=False))
    for split, (x, y) in (("train", (data.x_train, data.y_train)), ("test", (data.x_test, data.y_test))):
        images, labels = written[split]
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(images), 1, 5, 4)
        assert torch.equal(x[:, 0], unit(images))
        assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    assert data.name == "fashion_mnist" and data.num_classes == 10 and data.input_shape == (1, 5, 4)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_mnist_torchvision_layout_prefers_it(tmp_path):
    written = write_idx_dataset(tmp_path / "MNIST" / "raw", seed=1, gz=(False, True))
    write_idx_dataset(tmp_path, seed=2)  # a second copy in the root itself is the fallback only
    data = load_dataset(conf(name="mnist", root=str(tmp_path), normalize=False))
    assert torch.equal(data.x_train[:, 0], unit(written["train"][0]))
    assert torch.equal(data.y_test, torch.from_numpy(written["test"][1].astype(np.int64)))
    assert data.name == "mnist"


def test_normalize_uses_training_statistics(tmp_path):
    written = write_idx_dataset(tmp_path, n=(50, 9), hw=(6, 6))
    data = load_dataset(conf(name="fashion_mnist", root=str(tmp_path)))
    train = written["train"][0].astype(np.float64) / 255
    mean, std = train.mean(), train.std()
    assert abs(data.x_train.double().mean()) < 1e-6
    assert abs(data.x_train.double().std(correction=0) - 1) < 1e-5
    expected_test = (written["test"][0].astype(np.float64) / 255 - mean) / std
    np.testing.assert_allclose(data.x_test[:, 0].numpy(), expected_test, rtol=1e-5, atol=1e-5)


def test_train_and_test_size_keep_the_first_samples(tmp_path):
    written = write_idx_dataset(tmp_path, n=(20, 10))
    data = load_dataset(conf(name="fashion_mnist", root=str(tmp_path), train_size=6, test_size=3))
    images = written["train"][0][:6].astype(np.float64) / 255
    expected = (images - images.mean()) / images.std()  # statistics of the kept samples only
    np.testing.assert_allclose(data.x_train[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(data.y_train, torch.from_numpy(written["train"][1][:6].astype(np.int64)))
    assert data.x_test.shape[0] == 3
    assert torch.equal(data.y_test, torch.from_numpy(written["test"][1][:3].astype(np.int64)))
    with pytest.raises(ValueError, match="data.train_size"):
        load_dataset(conf(name="fashion_mnist", root=str(tmp_path), train_size=21))


# ------------------------------------------------------------------------------------------ CIFAR
def test_cifar10_values(tmp_path):
    x_train, y_train, x_test, y_test = write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_dataset(conf(name="cifar10", root=str(tmp_path), normalize=False))
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert data.num_classes == 10 and data.input_shape == (3, 32, 32)
    # rows hold the R, G and B planes one after the other, batches in the order 1..5
    assert torch.equal(data.x_train[5, 1], unit(x_train[5, 1024:2048].reshape(32, 32)))
    assert torch.equal(data.x_train.reshape(20, -1), unit(x_train))
    assert torch.equal(data.x_test.reshape(6, -1), unit(x_test))
    assert torch.equal(data.y_train, torch.from_numpy(y_train)) and data.y_train.dtype == torch.int64
    assert torch.equal(data.y_test, torch.from_numpy(y_test))


def test_cifar10_normalize_per_channel(tmp_path):
    x_train, _, x_test, _ = write_cifar(tmp_path / "cifar-10-batches-py", per_batch=6)
    data = load_dataset(conf(name="cifar10", root=str(tmp_path)))
    x = data.x_train.double()
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    std = x.std(dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(std, torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)
    planes = x_train.reshape(-1, 3, 1024).astype(np.float64) / 255
    mean, std = planes.mean(axis=(0, 2)), planes.std(axis=(0, 2))
    expected = (x_test.reshape(-1, 3, 1024) / 255 - mean[:, None]) / std[:, None]
    np.testing.assert_allclose(data.x_test.reshape(-1, 3, 1024).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_malicious_cifar_pickle_is_refused_and_never_runs(tmp_path):
    """A ``__reduce__`` planted in a batch would run ``touch <marker>`` under ``pickle.load``."""
    directory, marker = tmp_path / "cifar-10-batches-py", tmp_path / "pwned"
    write_cifar(directory)

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for payload in ({b"data": Evil(), b"labels": [0]}, Evil(), [Evil()]):
        (directory / "data_batch_2").write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(DatasetFormatError, match=r"data_batch_2: not a CIFAR-10 batch .*refused global posix.system"):
            load_dataset(conf(name="cifar10", root=str(tmp_path)))
        assert not marker.exists()
    for module, name in (("builtins", "eval"), ("numpy", "load"), ("subprocess", "Popen")):
        evil = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x001\x85R."
        with pytest.raises(pickle.UnpicklingError, match=f"refused global {module}.{name}"):
            safe_unpickle(evil)


def test_cifar_python_batch_as_python2_wrote_it(tmp_path):
    """The official files name numpy.core.multiarray (numpy 1) and hold Python 2 str as bytes."""
    directory = tmp_path / "cifar-10-batches-py"
    x_train, y_train, _, _ = write_cifar(directory)
    for name in CIFAR_TRAIN_FILES:
        raw = (directory / name).read_bytes()
        (directory / name).write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    data = load_dataset(conf(name="cifar10", root=str(tmp_path), normalize=False))
    assert torch.equal(data.x_train.reshape(20, -1), unit(x_train))
    assert torch.equal(data.y_train, torch.from_numpy(y_train))


def write_cifar_bin(directory: Path, per_batch: int = 4, n_test: int = 6, seed: int = 1):
    """The binary version: <name>.bin, each record a label byte then the 3072 pixel bytes."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    parts = {}
    for name in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE):
        n = n_test if name == CIFAR_TEST_FILE else per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        (directory / f"{name}.bin").write_bytes(np.concatenate([labels[:, None], data], axis=1).tobytes())
        parts[name] = (data, labels)
    x_train, y_train = (np.concatenate(a) for a in zip(*[parts[name] for name in CIFAR_TRAIN_FILES]))
    return (x_train, y_train, *parts[CIFAR_TEST_FILE])


def test_cifar10_binary_version_values(tmp_path):
    x_train, y_train, x_test, y_test = write_cifar_bin(tmp_path / "cifar-10-batches-bin")
    write_cifar(tmp_path / "cifar-10-batches-py")  # other values: the binary version is preferred
    data = load_dataset(conf(name="cifar10", root=str(tmp_path), normalize=False))
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (6, 3, 32, 32)
    assert torch.equal(data.x_train[5, 1], unit(x_train[5, 1024:2048].reshape(32, 32)))
    assert torch.equal(data.x_train.reshape(20, -1), unit(x_train))
    assert torch.equal(data.x_test.reshape(6, -1), unit(x_test))
    assert torch.equal(data.y_train, torch.from_numpy(y_train.astype(np.int64)))
    assert torch.equal(data.y_test, torch.from_numpy(y_test.astype(np.int64)))
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetFormatError, match="test_batch.bin: .* not a whole number of 3073-byte records"):
        load_dataset(conf(name="cifar10", root=str(tmp_path)))


def test_offline_download_is_one_clear_error(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetNotFoundError, match="MNIST could not be downloaded into .*check the internet"):
        load_dataset(conf(name="mnist", root=str(tmp_path), download=True))


# ---------------------------------------------------------------------------------------- missing
def test_missing_fashion_mnist_says_apt_get(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(conf(name="fashion_mnist", root=str(tmp_path)))
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and "data.root" in message
    assert str(tmp_path) in message and "train-images-idx3-ubyte" in message


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_download_datasets_say_data_download(tmp_path, name):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(conf(name=name, root=str(tmp_path)))
    assert "data.download=true" in str(err.value) and str(tmp_path) in str(err.value)


def test_missing_file_is_named(tmp_path):
    write_idx_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset(conf(name="fashion_mnist", root=str(tmp_path)))


def test_mnist_download_goes_through_torchvision(tmp_path, monkeypatch):
    calls = []

    class FakeMNIST:  # stands in for torchvision's downloader: writes the raw files it would fetch
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_idx_dataset(Path(root) / "MNIST" / "raw", seed=3, gz=(False, False))

    monkeypatch.setattr("torchvision.datasets.MNIST", FakeMNIST)
    data = load_dataset(conf(name="mnist", root=str(tmp_path), download=True, normalize=False))
    assert calls == [(str(tmp_path), True, True)]
    expected = write_idx_dataset(tmp_path / "check", seed=3)
    assert torch.equal(data.x_train[:, 0], unit(expected["train"][0]))
    load_dataset(conf(name="mnist", root=str(tmp_path), download=True))
    assert len(calls) == 1  # present now: no second download


def test_cifar10_download_goes_through_torchvision(tmp_path, monkeypatch):
    class FakeCIFAR10:
        def __init__(self, root, train, download):
            write_cifar(Path(root) / "cifar-10-batches-py")

    monkeypatch.setattr("torchvision.datasets.CIFAR10", FakeCIFAR10)
    data = load_dataset(conf(name="cifar10", root=str(tmp_path), download=True))
    assert data.x_train.shape == (20, 3, 32, 32)


# ---------------------------------------------------------------------------------------- corrupt
def test_read_idx_round_trip(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for gz in (False, True):
        path = write_idx(tmp_path / f"a{gz}", arr, gz)
        np.testing.assert_array_equal(read_idx(path, 3), arr)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda b: b"\x00\x00\x08\x01" + b[4:], "magic"),  # labels' magic on an images file
        (lambda b: b"\x00\x00\x0d\x03" + b[4:], "magic"),  # float type code
        (lambda b: b"GIF8" + b[4:], "magic"),
        (lambda b: b[:-5], "bytes"),  # truncated data
        (lambda b: b[:10], "header"),  # truncated header
        (lambda b: b"", "magic"),
    ],
)
def test_corrupt_idx_names_the_file(tmp_path, damage, match):
    write_idx_dataset(tmp_path, gz=(False, False))
    path = tmp_path / IMAGES["train"]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetFormatError, match=match) as err:
        load_dataset(conf(name="fashion_mnist", root=str(tmp_path)))
    assert str(path) in str(err.value) and "apt-get" in str(err.value)


def test_truncated_gzip_names_the_file(tmp_path):
    write_idx_dataset(tmp_path)
    path = tmp_path / (LABELS["test"] + ".gz")
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="gzip") as err:
        load_dataset(conf(name="fashion_mnist", root=str(tmp_path)))
    assert str(path) in str(err.value)


def test_label_count_and_range_are_checked(tmp_path):
    write_idx_dataset(tmp_path, gz=(False, False))
    write_idx(tmp_path / LABELS["train"], np.zeros(11, np.uint8), gz=False)
    with pytest.raises(DatasetFormatError, match="11 labels for the 12 images"):
        load_dataset(conf(name="fashion_mnist", root=str(tmp_path)))
    write_idx(tmp_path / LABELS["train"], np.full(12, 10, np.uint8), gz=False)
    with pytest.raises(DatasetFormatError, match="labels outside"):
        load_dataset(conf(name="fashion_mnist", root=str(tmp_path)))


def test_corrupt_cifar_batch_names_the_file(tmp_path):
    directory = tmp_path / "cifar-10-batches-py"
    write_cifar(directory)
    (directory / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetFormatError, match="data_batch_3"):
        load_dataset(conf(name="cifar10", root=str(tmp_path)))
    with open(directory / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(DatasetFormatError, match="data_batch_3.*3072"):
        load_dataset(conf(name="cifar10", root=str(tmp_path)))


# --------------------------------------------------------------------------------------- gaussian
def test_gaussian_is_a_linear_map():
    data = load_dataset(conf(name="gaussian", dim=7, num_train=30, num_test=11, data_seed=5))
    a = data.target_matrix
    assert a.shape == (7, 7) and data.x_train.shape == (30, 7) and data.x_test.shape == (11, 7)
    assert torch.equal(data.y_train, data.x_train @ a.T) and torch.equal(data.y_test, data.x_test @ a.T)
    assert data.num_classes is None and data.input_shape == (7,) and data.y_train.dtype == torch.float32
    g = torch.Generator().manual_seed(5)  # the documented draw order: A, train x, test x
    assert torch.equal(a, torch.randn(7, 7, generator=g))
    assert torch.equal(data.x_train, torch.randn(30, 7, generator=g))


def test_gaussian_depends_on_data_seed_only():
    torch.manual_seed(1)
    first = load_dataset(conf(name="gaussian", data_seed=3))
    torch.manual_seed(2)
    again = load_dataset(conf(name="gaussian", data_seed=3))
    other = load_dataset(conf(name="gaussian", data_seed=4))
    for key in ("x_train", "y_train", "x_test", "y_test", "target_matrix"):
        assert torch.equal(getattr(first, key), getattr(again, key))
        assert not torch.equal(getattr(first, key), getattr(other, key))


def test_gaussian_train_size_and_omegaconf_input():
    cfg = OmegaConf.structured(DataConf(name="gaussian", num_train=40, train_size=25))
    data = load_dataset(cfg)
    full = load_dataset(conf(name="gaussian", num_train=40))
    assert torch.equal(data.x_train, full.x_train[:25])
    assert torch.equal(data.y_train, data.x_train @ data.target_matrix.T)


def test_registry_and_unknown_name():
    assert set(DATASETS) == {"fashion_mnist", "mnist", "cifar10", "gaussian"}
    with pytest.raises(ValueError, match="'imagenet'; valid: cifar10, fashion_mnist, gaussian, mnist"):
        load_dataset(conf(name="imagenet"))


def test_to_moves_every_tensor():
    data = load_dataset(conf(name="gaussian", num_train=4, num_test=3))
    moved = data.to("meta")
    for key in ("x_train", "y_train", "x_test", "y_test", "target_matrix"):
        assert getattr(moved, key).device.type == "meta" and getattr(data, key).device.type == "cpu"
    labels = torch.zeros(2, dtype=torch.int64)
    image = TensorData("x", torch.zeros(2, 1, 3, 3), labels, torch.zeros(2, 1, 3, 3), labels, 10)
    assert image.to("meta").target_matrix is None and image.to("meta").num_classes == 10


# ------------------------------------------------------------------------------------------ sampler
def test_each_epoch_is_a_permutation():
    sampler = BatchSampler(n=103, batch_size=10, seed=7)
    assert sampler.steps_per_epoch == 10
    epochs = []
    for epoch in range(3):
        batches = [sampler.indices(epoch * 10 + i) for i in range(10)]
        assert all(b.dtype == torch.int64 and b.shape == (10,) for b in batches)
        seen = torch.cat(batches)
        assert len(set(seen.tolist())) == 100 and 0 <= seen.min() and seen.max() < 103  # 3 dropped
        generator = torch.Generator().manual_seed(7 * 1_000_003 + epoch)
        assert torch.equal(seen, torch.randperm(103, generator=generator)[:100])
        epochs.append(seen)
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[1], epochs[2])


def test_resume_gives_the_same_batches_whatever_the_global_rng():
    steps = range(37)
    straight = BatchSampler(50, 8, seed=3)  # 6 steps per epoch
    reference = [straight.indices(t).clone() for t in steps]
    for start in (0, 5, 6, 17, 36):
        resumed = BatchSampler(50, 8, seed=3)
        for t in range(start, 37):
            torch.manual_seed(1000 + t)  # the training loop's own draws must not matter
            torch.rand(3)
            assert torch.equal(resumed.indices(t), reference[t])
    jumping = BatchSampler(50, 8, seed=3)
    assert all(torch.equal(jumping.indices(t), reference[t]) for t in (30, 2, 31, 2, 0))
    assert not torch.equal(BatchSampler(50, 8, seed=4).indices(0), reference[0])


def test_sampler_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    sampler = BatchSampler(20, 4, seed=0)
    for t in range(12):
        sampler.indices(t)
    assert torch.equal(torch.get_rng_state(), state)


def test_batch_size_checks():
    with pytest.raises(ValueError, match=r"train.batch_size=11.*n=10"):
        BatchSampler(10, 11, seed=0)
    whole = BatchSampler(10, 10, seed=0)
    assert sorted(whole.indices(4).tolist()) == list(range(10))
    with pytest.raises(ValueError):
        whole.indices(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sampler_on_cuda_matches_cpu():
    cpu, gpu = BatchSampler(1000, 64, seed=9), BatchSampler(1000, 64, seed=9, device="cuda")
    for t in (0, 1, 15, 16, 40):
        batch = gpu.indices(t)
        assert batch.is_cuda and torch.equal(batch.cpu(), cpu.indices(t))


# ------------------------------------------------------------------------------- real Fashion-MNIST
@pytest.mark.skipif(
    not FASHION_SYSTEM_DIR.is_dir(), reason=f"no {FASHION_SYSTEM_DIR} (apt-get install dataset-fashion-mnist)"
)
def test_real_fashion_mnist():
    data = load_dataset(DataConf())
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.num_classes == 10
    assert torch.equal(torch.bincount(data.y_train), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(data.y_test), torch.full((10,), 1000))
    std, mean = torch.std_mean(data.x_train, correction=0)
    assert abs(mean) < 1e-4 and abs(std - 1) < 1e-4
