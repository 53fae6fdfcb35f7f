"""Datasets held in memory as tensors, and seeded index batching.

Every dataset is read once into float32 / int64 tensors (a few hundred MB at most), so a training step
draws its batch by indexing instead of decoding samples one by one through PIL. The raw formats (IDX
for (Fashion-)MNIST, CIFAR-10's binary batches or its python pickles) are parsed here directly: that is
fast and needs torchvision only to download. No file is ever unpickled with ``pickle.load``: the CIFAR-10
python batches go through ``SafeUnpickler``, which admits only what the real files hold, so a data folder
from the internet or a colleague cannot run code. ``BatchSampler`` makes the batch of step t a pure function of
(seed, t), so a resumed run sees exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bnstudy.config import ConfigError, DataConf
from bnstudy.registry import Registry

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DEFAULT_ROOT = "~/.cache/bnstudy/data"
IDX_FILES = {  # split -> (images, labels); each may also be stored gzipped, with ".gz" appended
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_BIN_SUFFIX = ".bin"  # cifar-10-batches-bin: the same names + .bin, rows of 1 label byte + 3072 pixels
CIFAR_IMAGE_BYTES = 3 * 32 * 32
NUM_CLASSES = 10  # all three image datasets

FASHION_HINT = (
    "sudo apt-get install dataset-fashion-mnist, or set data.root=<dir with the IDX files>, "
    "or data.download=true (needs internet)"
)
DOWNLOAD_HINT = "set data.download=true (needs internet) or data.root=<dir>"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk; the message says where it was looked for and how to get it."""


class DatasetFormatError(ValueError):
    """A dataset file is corrupt or truncated; the message names the file and how to get it again."""


@dataclass
class TensorData:
    """A whole dataset as tensors: images (N, C, H, W) or vectors (N, D); class labels or targets."""

    name: str
    x_train: torch.Tensor  # float32
    y_train: torch.Tensor  # int64 class labels, or float32 (N, D) regression targets
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int | None  # None for regression
    target_matrix: torch.Tensor | None = None  # gaussian only: y = x @ target_matrix.T
    files: tuple[Path, ...] = ()  # the files read (their sha256 goes into the run's provenance)

    def to(self, device: torch.device | str) -> TensorData:
        """A copy with every tensor on ``device`` (done once, so batches are sliced on the device)."""
        moved = {
            key: getattr(self, key).to(device)
            for key in ("x_train", "y_train", "x_test", "y_test", "target_matrix")
            if getattr(self, key) is not None
        }
        return replace(self, **moved)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


# ------------------------------------------------------------------------------------- raw formats
def _read_bytes(path: Path, hint: str) -> bytearray:
    """The file's bytes, gunzipped when they start with the gzip magic, whatever the file's name.

    A bytearray, so that arrays viewing it are writable and torch.from_numpy can share them.
    """
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return bytearray(raw)
    try:
        return bytearray(gzip.decompress(raw))
    except (EOFError, OSError, zlib.error) as exc:  # truncated stream, bad header or CRC
        raise DatasetFormatError(_corrupt(path, f"bad gzip data ({exc})", hint)) from exc


def _corrupt(path: Path, problem: str, hint: str) -> str:
    return f"{path}: {problem}. The file is corrupt or truncated; delete it and get it again: {hint}"


def read_idx(path: str | Path, ndim: int, hint: str = DOWNLOAD_HINT) -> np.ndarray:
    """A uint8 IDX file (the MNIST format), plain or gzipped, as an array.

    Layout: two zero bytes, type code 0x08 (unsigned byte), the number of dimensions, each dimension
    as a big-endian int32, then the data; anything else (or a size that does not match) is refused.
    """
    path = Path(path)
    data = _read_bytes(path, hint)
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DatasetFormatError(
            _corrupt(path, f"bad magic number 0x{data[:4].hex()} (expected 0x0000080{ndim})", hint)
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        problem = f"{len(data)} bytes, shorter than its {header}-byte header"
        raise DatasetFormatError(_corrupt(path, problem, hint))
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if min(dims) < 0 or len(data) != expected:
        raise DatasetFormatError(
            _corrupt(path, f"{len(data)} bytes, but its header {dims} needs {expected}", hint)
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that admits only what CIFAR-10's python batches hold: dicts, lists, bytes, str,
    ints and numpy's array reconstruction. Any other global (``os.system``, ``builtins.eval``, ...) is
    refused before it is looked up, so a ``__reduce__`` planted in a data file never runs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in a protocol-2 pickle written by Python 3: encode(str, "latin1")
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: a CIFAR-10 batch holds only "
                                         "dicts, lists, bytes, str, ints and numpy arrays")
        if name == "_reconstruct":  # numpy 2 moved numpy.core to numpy._core; old files name the old one
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        if module == "_codecs":
            import codecs
            return codecs.encode
        return getattr(np, name)


def safe_unpickle(data: bytes):
    """``pickle.loads`` through ``SafeUnpickler`` (Python 2's str read as bytes, as in the real files)."""
    return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()


def read_cifar_batch(path: str | Path, hint: str = DOWNLOAD_HINT) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch as (uint8 images (N, 3, 32, 32), labels (N,)).

    The official format is a pickled dict with b'data' (N, 3072: the R, G, B planes of each 32x32
    image) and b'labels'. It is read with ``SafeUnpickler``: nothing in the file can run code.
    """
    path = Path(path)
    try:
        batch = safe_unpickle(path.read_bytes())
        images, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    except Exception as exc:  # a damaged (or hostile) pickle can fail in many ways
        raise DatasetFormatError(_corrupt(path, f"not a CIFAR-10 batch ({exc!r})", hint)) from exc
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != CIFAR_IMAGE_BYTES:
        problem = f"data is {images.dtype} {images.shape}, not uint8 (N, 3072)"
        raise DatasetFormatError(_corrupt(path, problem, hint))
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise DatasetFormatError(_corrupt(path, f"{labels.dtype} {labels.shape} labels for {len(images)} images", hint))
    _check_labels(labels, path, hint)
    return images.reshape(-1, 3, 32, 32), labels


def read_cifar_bin(path: str | Path, hint: str = DOWNLOAD_HINT) -> tuple[np.ndarray, np.ndarray]:
    """One batch of CIFAR-10's binary version (``cifar-10-batches-bin``): no pickle at all.

    Each record is 1 label byte followed by the 3072 pixel bytes (R, G, B planes of a 32x32 image).
    """
    path = Path(path)
    raw = np.frombuffer(_read_bytes(path, hint), np.uint8)
    record = 1 + CIFAR_IMAGE_BYTES
    if raw.size == 0 or raw.size % record:
        problem = f"{raw.size} bytes, not a whole number of {record}-byte records"
        raise DatasetFormatError(_corrupt(path, problem, hint))
    rows = raw.reshape(-1, record)
    labels = rows[:, 0].copy()
    _check_labels(labels, path, hint)
    return np.ascontiguousarray(rows[:, 1:]).reshape(-1, 3, 32, 32), labels


def _check_labels(labels: np.ndarray, path: Path, hint: str) -> None:
    if labels.size and not 0 <= labels.min() <= labels.max() < NUM_CLASSES:
        raise DatasetFormatError(_corrupt(path, f"labels outside 0..{NUM_CLASSES - 1}", hint))


# ---------------------------------------------------------------------------------------- locating
def _find_files(
    dirs: list[Path], names: list[str], suffixes: tuple[str, ...], what: str, hint: str
) -> dict[str, Path]:
    """Each name's file in the first directory holding all of them (under any of ``suffixes``)."""
    report = []
    for d in dirs:
        if not d.is_dir():
            report.append(f"{d} (no such directory)")
            continue
        found = {name: next((d / (name + s) for s in suffixes if (d / (name + s)).is_file()), None)
                 for name in names}
        missing = [name for name, path in found.items() if path is None]
        if not missing:
            return found
        report.append(f"{d} (missing {', '.join(missing)})")
    raise DatasetNotFoundError(f"{what} not found; looked in: {'; '.join(report)}. To get it: {hint}")


def _locate(
    cfg: DataConf, dirs: list[Path], names: list[str], suffixes: tuple[str, ...], what: str, hint: str,
    tv_class: str,
) -> dict[str, Path]:
    """Find the files; if they are missing and ``cfg.download``, fetch them with torchvision first."""
    try:
        return _find_files(dirs, names, suffixes, what, hint)
    except DatasetNotFoundError:
        if not cfg.download:
            raise
    import torchvision.datasets  # slow import, needed only here

    try:  # fetches both splits
        getattr(torchvision.datasets, tv_class)(str(_root(cfg)), train=True, download=True)
    except (OSError, RuntimeError) as exc:  # offline (URLError is an OSError; torchvision raises RuntimeError)
        reason = " ".join(str(exc).split())  # torchvision's message spans lines
        raise DatasetNotFoundError(
            f"{what} could not be downloaded into {_root(cfg)} ({type(exc).__name__}: {reason}): check the internet "
            f"connection, or copy the files there yourself and set data.download=false"
        ) from exc
    return _find_files(dirs, names, suffixes, what, hint)


def _root(cfg: DataConf) -> Path:
    return Path(cfg.root or DEFAULT_ROOT).expanduser()


# ---------------------------------------------------------------------------------------- datasets
def _keep(requested: int | None, available: int, key: str) -> int:
    """How many leading samples ``data.train_size`` / ``data.test_size`` keep."""
    if requested is None:
        return available
    if not 1 <= requested <= available:
        raise ConfigError(f"{key}={requested}, but the split has {available} samples")
    return requested


def _image_data(
    name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, cfg: DataConf
) -> TensorData:
    """uint8 (N, C, H, W) arrays -> float32 tensors in [0, 1], standardised per channel with the
    statistics of the kept training samples (so the test set is never looked at)."""
    n_train = _keep(cfg.train_size, len(x_train), "data.train_size")
    n_test = _keep(cfg.test_size, len(x_test), "data.test_size")
    u_train, u_test = torch.from_numpy(x_train[:n_train]), torch.from_numpy(x_test[:n_test])
    xs = [u.float().div_(255) for u in (u_train, u_test)]
    if cfg.normalize:
        mean, std = _channel_stats(u_train)
        for x in xs:
            x.sub_(mean).div_(std)
    ys = [torch.from_numpy(y[:n].astype(np.int64)) for y, n in ((y_train, n_train), (y_test, n_test))]
    return TensorData(name, xs[0], ys[0], xs[1], ys[1], NUM_CLASSES)


def _channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W) on the [0, 1] scale,
    shaped (1, C, 1, 1). Computed from a 256-bin histogram per channel: exact, and several times
    faster than a float reduction over the whole set."""
    channels = range(images.shape[1])
    counts = torch.stack([torch.bincount(images[:, c].reshape(-1), minlength=256) for c in channels]).double()
    levels = torch.arange(256, dtype=torch.float64) / 255
    total = counts.sum(1, keepdim=True)
    mean = (counts * levels).sum(1, keepdim=True) / total
    std = ((counts * (levels - mean) ** 2).sum(1, keepdim=True) / total).sqrt()
    std = torch.where(std > 0, std, 1.0)  # a constant channel is only centred
    return mean.float().view(1, -1, 1, 1), std.float().view(1, -1, 1, 1)


def _idx_dataset(
    name: str, cfg: DataConf, dirs: list[Path], what: str, hint: str, tv_class: str
) -> TensorData:
    names = [f for pair in IDX_FILES.values() for f in pair]
    files = _locate(cfg, dirs, names, ("", ".gz"), what, hint, tv_class)
    splits = []
    for image_name, label_name in IDX_FILES.values():
        images = read_idx(files[image_name], 3, hint)
        labels = read_idx(files[label_name], 1, hint)
        if len(images) != len(labels):
            problem = f"{len(labels)} labels for the {len(images)} images of {files[image_name]}"
            raise DatasetFormatError(_corrupt(files[label_name], problem, hint))
        _check_labels(labels, files[label_name], hint)
        splits += [images[:, None], labels]
    return replace(_image_data(name, *splits, cfg), files=tuple(files.values()))


DATASETS: Registry[Callable[[DataConf], TensorData]] = Registry("dataset")
"""Every dataset by name (the ``data`` config group's names): a loader registered with ``@dataset(name)``."""


def dataset(name: str):
    """Decorator: register ``load(cfg: DataConf) -> TensorData`` as dataset ``name``."""
    def register(load: Callable[[DataConf], TensorData]):
        DATASETS.add(name, load)
        return load
    return register


@dataset("fashion_mnist")
def load_fashion_mnist(cfg: DataConf) -> TensorData:
    """Fashion-MNIST, by default from the Debian package; ``data.root`` may hold the IDX files
    directly or in torchvision's layout (``<root>/FashionMNIST/raw``)."""
    if cfg.root:
        dirs = [_root(cfg), _root(cfg) / "FashionMNIST" / "raw"]
    else:
        dirs = [FASHION_SYSTEM_DIR, _root(cfg) / "FashionMNIST" / "raw"]
    return _idx_dataset("fashion_mnist", cfg, dirs, "Fashion-MNIST", FASHION_HINT, "FashionMNIST")


@dataset("mnist")
def load_mnist(cfg: DataConf) -> TensorData:
    """MNIST in torchvision's layout (``<root>/MNIST/raw``) or as IDX files directly in the root."""
    dirs = [_root(cfg) / "MNIST" / "raw", _root(cfg)]
    return _idx_dataset("mnist", cfg, dirs, "MNIST", DOWNLOAD_HINT, "MNIST")


@dataset("cifar10")
def load_cifar10(cfg: DataConf) -> TensorData:
    """CIFAR-10 from its binary batches (``<root>/cifar-10-batches-bin``, read without any pickle) when
    they are there, else from the python batches in ``<root>/cifar-10-batches-py`` (torchvision's
    layout, which ``data.download=true`` fetches), read with ``SafeUnpickler``."""
    names = [*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE]
    try:
        bin_dirs = [_root(cfg) / "cifar-10-batches-bin", _root(cfg)]
        found = _find_files(bin_dirs, [n + CIFAR_BIN_SUFFIX for n in names], ("",), "CIFAR-10", DOWNLOAD_HINT)
        files = {n: found[n + CIFAR_BIN_SUFFIX] for n in names}
        read = read_cifar_bin
    except DatasetNotFoundError:
        dirs = [_root(cfg) / "cifar-10-batches-py", _root(cfg)]
        files = _locate(cfg, dirs, names, ("",), "CIFAR-10 (python or binary version)", DOWNLOAD_HINT, "CIFAR10")
        read = read_cifar_batch
    train = [read(files[name]) for name in CIFAR_TRAIN_FILES]
    x_test, y_test = read(files[CIFAR_TEST_FILE])
    x_train, y_train = (np.concatenate(parts) for parts in zip(*train))
    return replace(_image_data("cifar10", x_train, y_train, x_test, y_test, cfg), files=tuple(files.values()))


@dataset("gaussian")
def make_gaussian(cfg: DataConf) -> TensorData:
    """The deep linear network's regression y = A x, x ~ N(0, I), A_ij ~ N(0, 1); not normalised.

    Drawn from ``data_seed`` alone (A, then train x, then test x), so runs with different seeds fit
    the same task.
    """
    g = torch.Generator().manual_seed(cfg.data_seed)
    a = torch.randn(cfg.dim, cfg.dim, generator=g)
    x_train = torch.randn(cfg.num_train, cfg.dim, generator=g)
    x_test = torch.randn(cfg.num_test, cfg.dim, generator=g)
    x_train = x_train[: _keep(cfg.train_size, cfg.num_train, "data.train_size")].clone()
    x_test = x_test[: _keep(cfg.test_size, cfg.num_test, "data.test_size")].clone()
    return TensorData("gaussian", x_train, x_train @ a.T, x_test, x_test @ a.T, None, target_matrix=a)


def load_dataset(cfg: DataConf) -> TensorData:
    """The dataset ``cfg.name`` from the ``DATASETS`` registry."""
    if cfg.name not in DATASETS:
        raise ConfigError(f"unknown dataset data.name={cfg.name!r}; valid: {', '.join(sorted(DATASETS))}")
    return DATASETS[cfg.name](cfg)


# ---------------------------------------------------------------------------------------- batching
class BatchSampler:
    """Seeded, stateless-by-step batching: the batch of step t is a pure function of (seed, t).

    Epoch e is a permutation of range(n) from its own generator, seeded with seed * 1_000_003 + e,
    cut into n // batch_size batches (the remainder is dropped). Nothing depends on earlier calls
    or on torch's global RNG, so resuming at any step replays the batches of an uninterrupted run.
    The current epoch's permutation is cached on ``device``: consecutive steps cost one slice. Full-batch
    training (batch_size == n) takes the samples in their stored order at every step: a new
    permutation per step would cost more than a DLN step's bookkeeping and change nothing but the
    order of a sum.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be positive, got {batch_size}")
        if batch_size > n:
            raise ValueError(
                f"train.batch_size={batch_size} is larger than the training set (n={n} samples); "
                "lower train.batch_size or keep more samples (data.train_size)"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.device = torch.device(device)
        self.steps_per_epoch = n // batch_size
        self._epoch: int | None = None
        self._perm: torch.Tensor | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s order of the samples (on the CPU)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=generator)

    def indices(self, step: int) -> torch.Tensor:
        """The int64 sample indices of step ``step`` (0-based), on ``device``."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if self.batch_size == self.n:  # full batch (the DLN): order changes nothing but summation order
            if self._perm is None:
                self._perm = torch.arange(self.n, device=self.device)
            return self._perm
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            perm = self.permutation(epoch)
            if self.device.type == "cuda":  # pinned + non_blocking: the copy waits for no queued kernel
                perm = perm.pin_memory()
            self._perm = perm.to(self.device, non_blocking=True)
            self._epoch = epoch
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]
