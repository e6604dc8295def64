"""MNIST and Fashion-MNIST loaders built on ``torchvision.datasets``.

Images come out as float tensors of shape ``[B, 1, 28, 28]`` with pixels in ``[0, 1]``
(exactly what ``ToTensor`` gives), labels as ``int64`` tensors of shape ``[B]``.

Where the data lives, in order of precedence: the ``root`` argument, the environment variable
``VAE_DATA_DIR``, then ``data/`` in the clone if it holds the files, else ``<cache>/data``
(:func:`helper_lib.downloads.cache_dir`), where downloads go. A relative ``VAE_DATA_DIR`` is taken
relative to the current folder if it exists there, else relative to the repository, so the
README's ``VAE_DATA_DIR=../shared/data`` also works in a Jupyter kernel, which runs in
``notebooks/``. torchvision expects ``<root>/MNIST/raw/`` (or ``<root>/FashionMNIST/raw/``)
holding the four uncompressed IDX files.

Missing files are downloaded once (:func:`fetch_raw_files`), unless ``VAE_DATA_DIR`` is set or
``download=False``: from torchvision's mirrors, or from ``$VAE_DATA_URL/MNIST/<name>.gz`` and
``$VAE_DATA_URL/FashionMNIST/<name>.gz`` when that is set. Each file is checked against the
sha256 of the official uncompressed file, which this module carries (:data:`RAW_SHA256`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
)
from torchvision import datasets, transforms
from torchvision.datasets.mnist import read_image_file, read_label_file

from .downloads import DownloadError, cache_dir, check_base_url, fetch
from .project import CLONE_ROOT
from .utils import SettingsError, check_whole_number

__all__ = [
    "DATA_ENV_VAR",
    "DATA_URL_ENV_VAR",
    "RAW_SHA256",
    "fetch_raw_files",
    "dataset_folder",
    "data_mirrors",
    "BINARIZED_TEST_SEED",
    "DynamicallyBinarized",
    "shuffle_generator",
    "DatasetNotFoundError",
    "DatasetCorruptError",
    "resolve_data_root",
    "load_split",
    "get_dataloaders",
]

DATA_ENV_VAR = "VAE_DATA_DIR"
#: Overrides torchvision's mirrors: files are fetched as ``$VAE_DATA_URL/<folder>/<name>.gz``.
DATA_URL_ENV_VAR = "VAE_DATA_URL"
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Whether helper_lib runs from a checkout (then ``<repo>/data`` is the default data folder).
IN_CLONE = CLONE_ROOT is not None

_DATASETS: dict[str, type[datasets.MNIST]] = {
    "mnist": datasets.MNIST,
    "binarized-mnist": datasets.MNIST,  # MNIST's files, binarized in get_dataloaders
    "fashion-mnist": datasets.FashionMNIST,
}
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


#: sha256 of the official uncompressed IDX files (the same as the course's ``SHA256SUMS``).
RAW_SHA256: dict[str, dict[str, str]] = {
    "MNIST": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # noqa: E501
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # noqa: E501
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",  # noqa: E501
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",  # noqa: E501
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # noqa: E501
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # noqa: E501
    },
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's raw files are missing and could not be downloaded."""


class DatasetCorruptError(ValueError):
    """A raw IDX file is there but truncated or corrupted; the message names the file."""


def _corrupt_file(raw: Path, train: bool) -> tuple[Path, str] | None:
    """The first of the split's two IDX files that torchvision cannot read, and why."""
    prefix = "train" if train else "t10k"
    images = raw / f"{prefix}-images-idx3-ubyte"
    labels = raw / f"{prefix}-labels-idx1-ubyte"
    counts = []
    for path, reader, ndim in ((images, read_image_file, 3), (labels, read_label_file, 1)):
        try:
            tensor = reader(str(path))
        except Exception as err:  # torchvision's parser raises assertion, value or shape errors
            lines = str(err).strip().splitlines()
            return path, lines[0] if lines else "its IDX header or its size is wrong"
        if tensor.ndim != ndim:
            return path, f"expected {ndim} dimensions, found shape {tuple(tensor.shape)}"
        counts.append(len(tensor))
    if counts[0] != counts[1]:
        return images, f"{counts[0]} images but {counts[1]} labels in {labels.name}"
    return None


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$VAE_DATA_DIR``, else ``<repo>/data`` in a
    clone that holds the files there, else ``<cache>/data`` (where downloads go)."""
    if root is not None:
        return Path(root).expanduser().resolve()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_absolute() and not path.is_dir() and (REPO_ROOT / path).is_dir():
            return (REPO_ROOT / path).resolve()  # e.g. ../shared/data seen from notebooks/
        return path.resolve()
    clone = REPO_ROOT / "data"
    if IN_CLONE and any((clone / cls.__name__ / "raw").is_dir() for cls in _DATASETS.values()):
        return clone  # a clone that already holds the files (where torchvision used to put them)
    return cache_dir() / "data"


def dataset_folder(dataset: str) -> str:
    """The folder of ``dataset``'s files under the data root: ``"MNIST"`` or ``"FashionMNIST"``."""
    return _dataset_class(dataset).__name__


def data_mirrors(dataset: str) -> list[str]:
    """The addresses (ending in ``/``) that ``<name>.gz`` is appended to:
    ``$VAE_DATA_URL/<folder>/`` when that is set, else torchvision's mirrors."""
    cls = _dataset_class(dataset)
    env = os.environ.get(DATA_URL_ENV_VAR, "").strip()
    if env:
        return [f"{check_base_url(env, DATA_URL_ENV_VAR)}/{cls.__name__}/"]
    return list(cls.mirrors)


def fetch_raw_files(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """Download whichever of the dataset's four IDX files are missing under
    ``<root>/<folder>/raw/`` (gunzipped, each verified against :data:`RAW_SHA256`).

    Returns the ``raw`` folder. Raises :class:`helper_lib.downloads.DownloadError` when a file
    cannot be fetched (the message lists every address tried).
    """
    folder = dataset_folder(dataset)
    raw = resolve_data_root(root) / folder / "raw"
    mirrors = data_mirrors(dataset)
    for name, digest in RAW_SHA256[folder].items():
        if not (raw / name).is_file():
            fetch([f"{m}{name}.gz" for m in mirrors], raw / name, digest, gunzip=True,
                  what=f"{folder}/{name}")
    return raw


def _dataset_class(dataset: str) -> type[datasets.MNIST]:
    try:
        return _DATASETS[dataset.lower()]
    except KeyError:
        raise SettingsError(
            f"unknown dataset {dataset!r}; choose one of {sorted(_DATASETS)}"
        ) from None


def _missing_data_message(folder: Path, cause: str) -> str:
    files = "\n".join(f"  - {name}" for name in RAW_FILES)
    return (
        f"{cause}\n"
        f"Expected these four uncompressed IDX files in {folder}:\n{files}\n"
        f"Put them there, or point the environment variable {DATA_ENV_VAR} at the folder that "
        f"contains '{folder.parent.name}/raw/' (for this course: export "
        f"{DATA_ENV_VAR}=/path/to/shared/data), or pass root=... (--data-root on the "
        f"command line)."
    )


def load_split(
    dataset: str = "mnist",
    train: bool = True,
    root: str | os.PathLike | None = None,
    download: bool = True,
) -> datasets.MNIST:
    """One split as a torchvision dataset with ``ToTensor``; clear error if the files are missing.

    Raises:
        DatasetNotFoundError: the raw files are absent and downloading is off or failed.
        DatasetCorruptError: a raw file is there but truncated or corrupted (named).
    """
    cls = _dataset_class(dataset)
    data_root = resolve_data_root(root)
    raw = data_root / cls.__name__ / "raw"
    # With VAE_DATA_DIR set (and no root), the files are where it points: nothing is fetched.
    download = download and (root is not None or not os.environ.get(DATA_ENV_VAR))
    fetch_error = ""
    if download and not all((raw / f).is_file() for f in RAW_FILES):
        try:
            fetch_raw_files(dataset, data_root)
        except DownloadError as err:
            fetch_error = str(err)
    try:
        return cls(str(data_root), train=train, download=False, transform=transforms.ToTensor())
    except (RuntimeError, OSError, ValueError, AssertionError) as err:
        # Files present but unreadable: name the bad file instead of a parser traceback.
        bad = _corrupt_file(raw, train) if all((raw / f).is_file() for f in RAW_FILES) else None
        if bad is not None:
            path, why = bad
            raise DatasetCorruptError(
                f"{path} is truncated or corrupted ({why}). Replace it with an intact copy, "
                f"or point the environment variable {DATA_ENV_VAR} (--data-root on the command "
                "line) at a folder with intact files."
            ) from None
        # else torchvision's "Dataset not found"
        if fetch_error:
            cause = f"{cls.__name__} not found in {raw}, and downloading it failed: {fetch_error}"
        elif download:
            cause = f"{cls.__name__} not found in {raw} ({err})."
        elif os.environ.get(DATA_ENV_VAR) and root is None:
            cause = (f"{cls.__name__} not found in {raw}, where {DATA_ENV_VAR} points (with "
                     f"{DATA_ENV_VAR} set, nothing is downloaded; unset it to download).")
        else:
            cause = f"{cls.__name__} not found in {raw}, and download=False."
        raise DatasetNotFoundError(_missing_data_message(raw, cause)) from None


def _as_tensor_dataset(ds: datasets.MNIST) -> TensorDataset:
    """The whole split in memory: images ``[N, 1, 28, 28]`` float32 in [0, 1], labels ``[N]``."""
    images = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)  # identical to ToTensor
    return TensorDataset(images, ds.targets.clone())


#: The seed of the one fixed binarization of binarized MNIST's test (and validation) images,
#: the same whatever ``seed`` a run uses, so that every model is scored on the same bits.
BINARIZED_TEST_SEED = 0


class DynamicallyBinarized(TensorDataset):
    """Images whose pixels are drawn anew as Bernoulli(x) every time a batch is read.

    "Dynamic binarization" (e.g. Burda et al., 2016): each epoch sees a fresh binary version of
    every training image, which acts as a regularizer and makes a Bernoulli decoder's
    likelihood a proper probability. Indexed like a ``TensorDataset`` (the in-memory loader
    passes a list of indices and gets the whole batch); the draws come from ``generator``
    (inside DataLoader workers, from each worker's own seeded RNG), so a run is reproducible
    from its seed (a resumed run continues with fresh draws).
    """

    def __init__(self, images: Tensor, labels: Tensor, generator: torch.Generator) -> None:
        super().__init__(images, labels)
        self.generator = generator

    def __getitem__(self, index):  # noqa: ANN001 - an int or a list of ints
        images, labels = super().__getitem__(index)
        # A DataLoader worker holds a copy of ``generator`` in the state it had when the workers
        # started, so every worker (and every epoch) would draw the same bits. There, draw from
        # the worker's own torch RNG instead: the DataLoader seeds it anew for each worker and
        # epoch from its own generator, so a run stays reproducible from its seed.
        in_worker = torch.utils.data.get_worker_info() is not None
        return torch.bernoulli(images, generator=None if in_worker else self.generator), labels


def _binarize_once(ds: TensorDataset, seed: int) -> TensorDataset:
    images, labels = ds.tensors
    bits = torch.bernoulli(images, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(bits, labels)


def _make_loader(
    ds: Dataset, batch_size: int, shuffle: bool, seed: int, in_memory: bool, num_workers: int
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    if in_memory:
        # Whole batches by fancy indexing: the sampler yields a list of indices, the tensor
        # dataset returns the stacked batch, and no per-sample collate work is done.
        inner = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
        batches = BatchSampler(inner, batch_size=batch_size, drop_last=False)
        return DataLoader(ds, sampler=batches, batch_size=None, num_workers=num_workers)
    return DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers
    )


def shuffle_generator(loader: DataLoader) -> torch.Generator | None:
    """The generator that orders ``loader``'s batches, or ``None`` (unshuffled, or shuffled
    from torch's global RNG). Training saves and restores its state, so a resumed run sees the
    batches an uninterrupted one would.

    Works for the loaders of :func:`get_dataloaders` (a batch sampler around a random sampler)
    and for a plain ``DataLoader(..., shuffle=True, generator=g)``.
    """
    if getattr(loader, "generator", None) is not None:
        return loader.generator
    sampler = getattr(loader, "sampler", None)
    inner = getattr(sampler, "sampler", sampler)  # get_dataloaders': BatchSampler(RandomSampler)
    return getattr(inner, "generator", None)


def _subset(ds: Dataset, indices: torch.Tensor) -> Dataset:
    if isinstance(ds, DynamicallyBinarized):
        return DynamicallyBinarized(*(t[indices] for t in ds.tensors), ds.generator)
    if isinstance(ds, TensorDataset):  # keep the fast path: slice the tensors themselves
        return TensorDataset(*(t[indices] for t in ds.tensors))
    return Subset(ds, indices.tolist())


def get_dataloaders(
    dataset: str = "mnist",
    batch_size: int = 256,
    validation_fraction: float = 0.0,
    root: str | os.PathLike | None = None,
    download: bool = True,
    num_workers: int = 0,
    seed: int = 123,
    train_subset: int | None = None,
    in_memory: bool = True,
) -> tuple[DataLoader, DataLoader | None, DataLoader]:
    """Train, validation and test loaders for MNIST, binarized MNIST or Fashion-MNIST.

    Each batch is ``(images, labels)``: images ``[B, 1, 28, 28]`` float32 in ``[0, 1]``,
    labels ``[B]`` int64.

    ``"binarized-mnist"`` is MNIST with pixels in {0, 1}, the standard setting for Bernoulli
    log-likelihoods in papers: training images are binarized dynamically (every pixel drawn as
    Bernoulli(x) anew each time a batch is read, :class:`DynamicallyBinarized`), validation and
    test images once, with the fixed seed :data:`BINARIZED_TEST_SEED`. The expected value of a
    binarized pixel is the grey value it came from.

    Args:
        dataset: ``"mnist"``, ``"binarized-mnist"`` or ``"fashion-mnist"``.
        batch_size: images per batch (the last batch may be smaller).
        validation_fraction: share of the training split held out, drawn at random (seeded).
            ``0`` means no validation loader (``None`` is returned in its place).
        root: data folder; defaults to ``$VAE_DATA_DIR``, then ``<repo>/data``.
        download: download missing files (needs internet; never when ``VAE_DATA_DIR`` is set
            and ``root`` is not given).
        num_workers: DataLoader worker processes.
        seed: seeds the split, the subset and the training shuffle (a ``torch.Generator``),
            so the same seed gives the same batches.
        train_subset: if given, train on only this many randomly chosen images (smoke runs).
        in_memory: the fast path. The whole split is held as one tensor and batched by
            indexing, with no per-sample PIL/ToTensor work (about 60x faster per epoch than a
            plain DataLoader on a 2-core CPU). ``False`` gives the classic per-sample loader.

    Raises:
        DatasetNotFoundError: the files are missing and could not be downloaded.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise SettingsError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    check_whole_number("batch_size", batch_size, 1, "the lecture uses 256")
    if train_subset is not None:
        check_whole_number("train_subset", train_subset, 1)

    binarized = dataset.lower() == "binarized-mnist"
    if binarized and not in_memory:
        raise SettingsError("binarized-mnist needs in_memory=True")
    train_raw = load_split(dataset, train=True, root=root, download=download)
    test_raw = load_split(dataset, train=False, root=root, download=download)
    train_ds: Dataset = _as_tensor_dataset(train_raw) if in_memory else train_raw
    test_ds: Dataset = _as_tensor_dataset(test_raw) if in_memory else test_raw
    fixed_ds = train_ds  # where the validation images come from
    if binarized:
        test_ds = _binarize_once(test_ds, BINARIZED_TEST_SEED)
        fixed_ds = _binarize_once(train_ds, BINARIZED_TEST_SEED + 1)
        train_ds = DynamicallyBinarized(*train_ds.tensors,
                                        generator=torch.Generator().manual_seed(seed + 1))

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train_raw), generator=generator)
    n_valid = int(round(validation_fraction * len(train_raw)))
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    if train_subset is not None:
        train_idx = train_idx[:train_subset]
    if n_valid or train_subset is not None:
        train_ds_split = _subset(train_ds, train_idx)
    else:
        train_ds_split = train_ds

    train_loader = _make_loader(train_ds_split, batch_size, True, seed, in_memory, num_workers)
    valid_loader = (
        _make_loader(_subset(fixed_ds, valid_idx), batch_size, False, seed, in_memory, num_workers)
        if n_valid
        else None
    )
    test_loader = _make_loader(test_ds, batch_size, False, seed, in_memory, num_workers)
    return train_loader, valid_loader, test_loader
