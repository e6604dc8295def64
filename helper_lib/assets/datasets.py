"""Where MNIST and Fashion-MNIST's files are, and how they arrive: found, downloaded, verified.

Where the data lives, in order of precedence: the ``root`` argument, the environment variable
``VAE_DATA_DIR``, then ``data/`` in the clone if it holds the files, else ``<cache>/data``
(:func:`helper_lib.assets.downloads.cache_dir`), where downloads go. A relative ``VAE_DATA_DIR``
is taken relative to the current folder if it exists there, else relative to the repository, so
the README's ``VAE_DATA_DIR=../shared/data`` also works in a Jupyter kernel, which runs in
``notebooks/``. torchvision expects ``<root>/MNIST/raw/`` (or ``<root>/FashionMNIST/raw/``)
holding the four uncompressed IDX files.

Missing files are downloaded once (:func:`fetch_raw_files`), unless ``VAE_DATA_DIR`` is set or
``download=False``: from torchvision's mirrors, or from ``$VAE_DATA_URL/MNIST/<name>.gz`` and
``$VAE_DATA_URL/FashionMNIST/<name>.gz`` when that is set. Each file is checked against the
sha256 of the official uncompressed file, which this module carries (:data:`RAW_SHA256`).
:func:`load_split` gives one split as a torchvision dataset, with one clear error when the files
are missing or corrupt; :mod:`helper_lib.data` makes the loaders from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..utils import SettingsError
from .downloads import DownloadError, cache_dir, check_base_url, fetch
from .project import CLONE_ROOT, REPO_ROOT

if TYPE_CHECKING:
    from torchvision.datasets import MNIST

__all__ = ["DATA_ENV_VAR", "DATA_URL_ENV_VAR", "RAW_FILES", "RAW_SHA256", "DatasetNotFoundError",
           "DatasetCorruptError", "resolve_data_root", "dataset_folder", "data_mirrors",
           "fetch_raw_files", "load_split"]

DATA_ENV_VAR = "VAE_DATA_DIR"


#: Overrides torchvision's mirrors: files are fetched as ``$VAE_DATA_URL/<folder>/<name>.gz``.
DATA_URL_ENV_VAR = "VAE_DATA_URL"




#: Whether helper_lib runs from a checkout (then ``<repo>/data`` is the default data folder).
IN_CLONE = CLONE_ROOT is not None


#: torchvision's dataset class for each name, which is also the data folder's name. torchvision is
#: imported only when a split is read: importing it takes 1.5 s (its ops import torch._dynamo),
#: which ``import helper_lib`` (every kernel, every command) should not pay.
_DATASETS: dict[str, str] = {
    "mnist": "MNIST",
    "binarized-mnist": "MNIST",  # MNIST's files, binarized in get_dataloaders
    "fashion-mnist": "FashionMNIST",
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
    from torchvision.datasets.mnist import read_image_file, read_label_file

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
    if IN_CLONE and any((clone / name / "raw").is_dir() for name in _DATASETS.values()):
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

    Returns the ``raw`` folder. Raises :class:`helper_lib.assets.downloads.DownloadError` when a
    file cannot be fetched (the message lists every address tried).
    """
    folder = dataset_folder(dataset)
    raw = resolve_data_root(root) / folder / "raw"
    mirrors = data_mirrors(dataset)
    for name, digest in RAW_SHA256[folder].items():
        if not (raw / name).is_file():
            fetch([f"{m}{name}.gz" for m in mirrors], raw / name, digest, gunzip=True,
                  what=f"{folder}/{name}")
    return raw


def _dataset_class(dataset: str) -> type[MNIST]:
    try:
        name = _DATASETS[dataset.lower()]
    except KeyError:
        raise SettingsError(
            f"unknown dataset {dataset!r}; choose one of {sorted(_DATASETS)}"
        ) from None
    from torchvision import datasets

    return getattr(datasets, name)


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
) -> MNIST:
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
        from torchvision import transforms

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

