"""MNIST, binarized MNIST and Fashion-MNIST loaders: :func:`get_dataloaders`.

Images come out as float tensors of shape ``[B, 1, 28, 28]`` with pixels in ``[0, 1]``
(exactly what ``ToTensor`` gives), labels as ``int64`` tensors of shape ``[B]``. By default the
whole split is held in memory and batched by indexing (the fast path); binarized MNIST draws its
pixels anew for every batch (:class:`DynamicallyBinarized`).

Where the files are, and how they are downloaded and verified when they are missing, is
:mod:`helper_lib.assets.datasets` (:func:`~helper_lib.assets.datasets.load_split`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

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

from .assets.datasets import load_split
from .utils import SettingsError, check_whole_number

if TYPE_CHECKING:
    from torchvision.datasets import MNIST

__all__ = ["get_dataloaders", "BINARIZED_TEST_SEED", "DynamicallyBinarized", "shuffle_generator"]


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
        root: data folder; defaults to ``$VAE_DATA_DIR``, then ``data/`` in a clone that holds
            the files, else the user cache's ``data/``, where downloads go
            (:func:`helper_lib.assets.datasets.resolve_data_root`).
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


def _as_tensor_dataset(ds: MNIST) -> TensorDataset:
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
