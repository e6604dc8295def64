import os

import pytest
import torch
from torchvision import datasets, transforms

from helper_lib.assets.datasets import DATA_ENV_VAR, DatasetNotFoundError, resolve_data_root
from helper_lib.data import get_dataloaders


def test_batches_have_the_documented_shapes_and_range(mnist_loaders):
    train, valid, test = mnist_loaders
    x, y = next(iter(train))
    assert valid is None
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert len(train.dataset) == 2048
    assert len(test.dataset) == 10_000


def test_in_memory_path_equals_torchvision_totensor():
    root = resolve_data_root()
    reference = datasets.MNIST(str(root), train=False, download=False,
                               transform=transforms.ToTensor())
    _, _, test = get_dataloaders(batch_size=16)  # in_memory=True by default
    x, y = next(iter(test))  # the test loader is not shuffled
    expected = torch.stack([reference[i][0] for i in range(16)])
    assert torch.equal(x, expected)
    assert y.tolist() == [reference[i][1] for i in range(16)]


def test_classic_loader_gives_the_same_test_batches():
    _, _, fast = get_dataloaders(batch_size=32)
    _, _, slow = get_dataloaders(batch_size=32, in_memory=False)
    xf, yf = next(iter(fast))
    xs, ys = next(iter(slow))
    assert torch.equal(xf, xs) and torch.equal(yf, ys)


def test_shuffling_is_seeded():
    def first_labels(seed):
        train, _, _ = get_dataloaders(batch_size=32, seed=seed, train_subset=512)
        return next(iter(train))[1].tolist()

    assert first_labels(1) == first_labels(1)
    assert first_labels(1) != first_labels(2)
    # and two epochs of one loader see different orders
    train, _, _ = get_dataloaders(batch_size=32, seed=3, train_subset=512)
    assert next(iter(train))[1].tolist() != next(iter(train))[1].tolist()


def test_validation_split_is_random_disjoint_and_seeded():
    train, valid, _ = get_dataloaders(batch_size=1000, validation_fraction=0.1, seed=5)
    assert len(valid.dataset) == 6000 and len(train.dataset) == 54_000
    v_images = valid.dataset.tensors[0]
    t_images = train.dataset.tensors[0]
    # random, not the last 6,000 images: its labels follow the overall class mix
    counts = torch.bincount(valid.dataset.tensors[1], minlength=10)
    assert counts.min() > 450
    full, _, _ = get_dataloaders(batch_size=1000)
    all_images = full.dataset.tensors[0]
    assert not torch.equal(v_images, all_images[-6000:])
    # disjoint: no validation image is also a training image (compare by hashing rows)
    v_keys = {hash(row.numpy().tobytes()) for row in v_images[:500].flatten(1)}
    t_keys = {hash(row.numpy().tobytes()) for row in t_images.flatten(1)}
    assert not v_keys & t_keys
    # seeded
    _, valid2, _ = get_dataloaders(batch_size=1000, validation_fraction=0.1, seed=5)
    assert torch.equal(valid2.dataset.tensors[0], v_images)


def test_missing_data_raises_one_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        get_dataloaders(root=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in message
    assert DATA_ENV_VAR in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert resolve_data_root() == (tmp_path / "env").resolve()
    monkeypatch.delenv(DATA_ENV_VAR)
    # Then the cache (where downloads go), unless the clone's data/ already holds the files.
    import helper_lib.assets.datasets as data

    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    clone_has_files = any((data.REPO_ROOT / "data" / d / "raw").is_dir()
                          for d in ("MNIST", "FashionMNIST"))
    expected = data.REPO_ROOT / "data" if clone_has_files else tmp_path / "cache" / "data"
    assert resolve_data_root() == expected
    monkeypatch.setattr(data, "IN_CLONE", False)  # a pip install: never site-packages/data
    assert resolve_data_root() == tmp_path / "cache" / "data"


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="dataset"):
        get_dataloaders("cifar10")
    with pytest.raises(ValueError, match="validation_fraction"):
        get_dataloaders(validation_fraction=1.5)


def test_fashion_mnist_loads_too():
    train, _, _ = get_dataloaders("fashion-mnist", batch_size=8, train_subset=64)
    x, y = next(iter(train))
    assert x.shape == (8, 1, 28, 28) and int(y.max()) <= 9


def test_a_relative_data_dir_also_works_from_the_notebooks_folder(monkeypatch, tmp_path):
    from helper_lib.assets.project import REPO_ROOT

    real = resolve_data_root()
    monkeypatch.chdir(REPO_ROOT)
    relative = os.path.relpath(real, REPO_ROOT)  # e.g. ../shared/data, as in the README
    monkeypatch.setenv(DATA_ENV_VAR, relative)
    assert resolve_data_root() == real
    monkeypatch.chdir(REPO_ROOT / "notebooks")  # where a Jupyter kernel starts
    assert resolve_data_root() == real
    # a relative folder that exists from the current folder wins
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_ENV_VAR, "notebooks")
    assert resolve_data_root() == tmp_path / "notebooks"


def test_binarized_batches_differ_across_workers_and_epochs_and_repeat_with_the_seed():
    """With num_workers > 0 every worker used to hold a copy of the same generator, so the
    workers (and the epochs) drew identical bits."""
    from torch.utils.data import DataLoader

    from helper_lib.data import DynamicallyBinarized

    def epochs(seed: int) -> list[list[torch.Tensor]]:
        images = torch.full((8, 1, 28, 28), 0.5)  # every image alike: only the draws differ
        ds = DynamicallyBinarized(images, torch.zeros(8, dtype=torch.long),
                                  generator=torch.Generator().manual_seed(1))
        loader = DataLoader(ds, batch_size=4, num_workers=2,
                            generator=torch.Generator().manual_seed(seed))
        return [[x for x, _ in loader] for _ in range(2)]

    first = epochs(0)
    (a, b), (c, _) = first
    assert not torch.equal(a, b), "the two workers drew the same bits"
    assert not torch.equal(a, c), "the next epoch drew the same bits"
    assert set(a.unique().tolist()) == {0.0, 1.0}
    again = epochs(0)
    assert all(torch.equal(x, y) for e, f in zip(first, again, strict=True)
               for x, y in zip(e, f, strict=True)), "the same seed gives the same bits"
