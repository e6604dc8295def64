"""Downloads of pretrained files and datasets, against a loopback HTTP server (never the internet):
verified by the package's own hashes, atomic, reused from the cache, and every failure one
clear message."""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock
from loopback import Loopback

from helper_lib.assets import downloads, pretrained
from helper_lib.assets.datasets import RAW_SHA256, fetch_raw_files
from helper_lib.assets.downloads import DownloadError, fetch
from helper_lib.assets.pretrained import (
    PRETRAINED_DIR,
    PretrainedUnavailableError,
    locate,
    manifest,
    pretrained_file,
)
from helper_lib.checkpoints import load_pretrained, load_pretrained_history
from helper_lib.data import get_dataloaders
from helper_lib.utils import SettingsError

BLOB = os.urandom(200_000)
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def server():
    with Loopback({"/f/blob.bin": BLOB}) as srv:
        yield srv


@pytest.fixture
def outside_the_clone(tmp_path, monkeypatch):
    """helper_lib as a pip install sees it: no clone folder, an empty cache."""
    monkeypatch.setattr(pretrained, "CLONE_PRETRAINED_DIR", None)
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetch_verifies_writes_atomically_and_reuses_the_file(server, tmp_path):
    dest = tmp_path / "sub" / "blob.bin"
    assert fetch([f"{server.url}/f/blob.bin"], dest, BLOB_SHA) == dest
    assert dest.read_bytes() == BLOB
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".")] == [
        ".blob.bin.lock"]  # no partial file left
    fetch([f"{server.url}/f/blob.bin"], dest, BLOB_SHA)
    assert server.requests == ["/f/blob.bin"], "a file in place is never fetched again"


def test_a_tampered_file_is_refused_deleted_and_named(server, tmp_path):
    server.files["/f/blob.bin"] = BLOB[:-1] + b"x"
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError) as err:
        fetch([f"{server.url}/f/blob.bin"], dest, BLOB_SHA)
    text = str(err.value)
    assert "a wrong file" in text and BLOB_SHA in text and f"{server.url}/f/blob.bin" in text
    assert "by hand" in text and str(dest) in text
    assert not dest.exists() and not (tmp_path / ".blob.bin.partial").exists()


def test_a_truncated_transfer_is_refused(server, tmp_path):
    server.truncate.add("/f/blob.bin")
    with pytest.raises(DownloadError, match="stopped after 100,000 of 200,000 bytes"):
        fetch([f"{server.url}/f/blob.bin"], tmp_path / "blob.bin", BLOB_SHA)
    assert not (tmp_path / "blob.bin").exists()


def test_404_and_a_server_that_is_down_each_give_one_clear_error(server, tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch([f"{server.url}/f/nothing.bin"], tmp_path / "n.bin", BLOB_SHA)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="Connection refused|actively refused"):
        fetch([f"http://127.0.0.1:{closed_port}/x.bin"], tmp_path / "x.bin", BLOB_SHA)
    assert time.perf_counter() - t0 < 5


def test_a_server_that_stalls_gives_up_within_30_seconds(server, tmp_path, monkeypatch):
    assert downloads.TIMEOUT_S * 2 < 30  # a connection and a read: the worst case is 2 timeouts
    monkeypatch.setattr(downloads, "TIMEOUT_S", 1.5)
    server.stall.add("/f/blob.bin")
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match="no answer within 1.5 s"):
        fetch([f"{server.url}/f/blob.bin"], tmp_path / "blob.bin", BLOB_SHA)
    assert time.perf_counter() - t0 < 5


def test_the_next_mirror_is_tried(server, tmp_path):
    dest = fetch([f"{server.url}/missing/blob.bin", f"{server.url}/f/blob.bin"],
                 tmp_path / "blob.bin", BLOB_SHA)
    assert dest.read_bytes() == BLOB


def test_a_partial_download_of_a_killed_run_is_removed(server, tmp_path, capsys):
    (tmp_path / ".blob.bin.partial").write_bytes(b"half")
    fetch([f"{server.url}/f/blob.bin"], tmp_path / "blob.bin", BLOB_SHA)
    assert "removed an unfinished download" in capsys.readouterr().err
    assert (tmp_path / "blob.bin").read_bytes() == BLOB


def test_two_downloads_of_one_file_at_once_fetch_it_once(server, tmp_path, capsys):
    server.slow.add("/f/blob.bin")
    dest = tmp_path / "blob.bin"
    results = []

    def get():
        results.append(fetch([f"{server.url}/f/blob.bin"], dest, BLOB_SHA))

    threads = [threading.Thread(target=get) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join(20)
    assert results == [dest, dest] and dest.read_bytes() == BLOB
    assert server.requests == ["/f/blob.bin"]
    assert "waiting for another process" in capsys.readouterr().err


def test_a_lock_held_elsewhere_is_waited_for(server, tmp_path):
    dest = tmp_path / "blob.bin"
    lock = FileLock(str(tmp_path / ".blob.bin.lock"))
    lock.acquire()
    done = []
    thread = threading.Thread(target=lambda: done.append(fetch(
        [f"{server.url}/f/blob.bin"], dest, BLOB_SHA)))
    thread.start()
    time.sleep(0.5)
    assert not done and server.requests == []
    lock.release()
    thread.join(10)
    assert done == [dest]


def test_a_cache_folder_that_is_not_writable_is_named(server, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DownloadError, match="cannot write to the cache folder .*VAE_CACHE_DIR"):
        fetch([f"{server.url}/f/blob.bin"], blocker / "cache" / "blob.bin", BLOB_SHA)


# --- the pretrained store --------------------------------------------------------------------

def test_the_manifest_the_package_carries_matches_the_shipped_files():
    shipped = {p.name for p in PRETRAINED_DIR.iterdir()
               if p.suffix != ".sha256" and p.name not in ("README.md", "make_pretrained.sh")}
    assert set(manifest()) == shipped
    for name, entry in manifest().items():
        path = PRETRAINED_DIR / name
        assert downloads.sha256_file(path) == entry["sha256"], "run python -m helper_lib manifest"
        assert path.stat().st_size == entry["bytes"]
        sidecar = Path(f"{path}.sha256")
        if sidecar.exists():
            assert sidecar.read_text().split()[0] == entry["sha256"]
    assert manifest()["conv_vae_mnist.pt"]["epochs"] == 50


@pytest.fixture
def pretrained_server():
    with Loopback() as srv:
        srv.add_folder("/models", PRETRAINED_DIR)
        yield srv


def test_outside_a_clone_a_model_is_downloaded_once_then_read_from_the_cache(
        pretrained_server, outside_the_clone, monkeypatch):
    monkeypatch.setenv("VAE_PRETRAINED_URL", f"{pretrained_server.url}/models/")
    assert locate("conv_vae_mnist.pt").where == "missing"
    model = load_pretrained("conv_vae_mnist")
    assert model.latent_dim == 2 and not model.training
    assert load_pretrained_history("conv_vae_mnist").epochs == 50
    assert pretrained_server.requests == ["/models/conv_vae_mnist.pt",
                                          "/models/conv_vae_mnist.history.json"]
    assert locate("conv_vae_mnist.pt").where == "cache"
    assert (outside_the_clone / "pretrained" / "conv_vae_mnist.pt").is_file()
    load_pretrained("conv_vae_mnist")
    assert len(pretrained_server.requests) == 2, "the cached copy is used"


def test_a_damaged_cached_copy_is_fetched_again(pretrained_server, outside_the_clone,
                                                monkeypatch, capsys):
    monkeypatch.setenv("VAE_PRETRAINED_URL", f"{pretrained_server.url}/models")
    path = pretrained_file("conv_ae_mnist.pt")
    path.write_bytes(path.read_bytes()[:1000])
    assert locate("conv_ae_mnist.pt").where == "missing"
    assert load_pretrained("conv_ae_mnist").latent_dim == 2
    assert "was not the expected file" in capsys.readouterr().err


def test_a_tampered_model_on_the_server_is_never_loaded(pretrained_server, outside_the_clone,
                                                        monkeypatch):
    monkeypatch.setenv("VAE_PRETRAINED_URL", f"{pretrained_server.url}/models")
    good = pretrained_server.files["/models/conv_vae_mnist.pt"]
    pretrained_server.files["/models/conv_vae_mnist.pt"] = good[:-8] + b"\0" * 8
    with pytest.raises(PretrainedUnavailableError) as err:
        load_pretrained("conv_vae_mnist")
    text = str(err.value)
    assert manifest()["conv_vae_mnist.pt"]["sha256"] in text and "a wrong file" in text
    assert "50 epochs" in text and "helper_lib doctor" in text and "TRAIN_FROM_SCRATCH" in text
    assert not (outside_the_clone / "pretrained" / "conv_vae_mnist.pt").exists()


def test_nothing_is_fetched_when_the_clone_has_the_file(pretrained_server, monkeypatch):
    monkeypatch.setenv("VAE_PRETRAINED_URL", f"{pretrained_server.url}/models")
    assert pretrained_file("conv_vae_mnist.pt") == PRETRAINED_DIR / "conv_vae_mnist.pt"
    assert pretrained_server.requests == []


def test_bad_names_and_bad_addresses_are_refused_with_the_list(outside_the_clone, monkeypatch):
    with pytest.raises(ValueError, match="unknown pretrained model.*conv_ae_mnist, conv_vae_mnist"):
        load_pretrained("conv_vea_mnist")
    with pytest.raises(ValueError, match="a path, not a model name"):
        load_pretrained("../conv_vae_mnist")
    with pytest.raises(ValueError, match="is a path, not a file name.*conv_vae_mnist.pt"):
        pretrained_file("../../etc/passwd")
    monkeypatch.setenv("VAE_PRETRAINED_URL", "localhost:8000")
    with pytest.raises(SettingsError, match="VAE_PRETRAINED_URL must be an http"):
        load_pretrained("conv_vae_mnist")


def test_an_address_that_is_not_a_http_server_gives_one_error(outside_the_clone, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def garbage():
        conn, _ = listener.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    threading.Thread(target=garbage, daemon=True).start()
    monkeypatch.setenv("VAE_PRETRAINED_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    with pytest.raises(PretrainedUnavailableError, match="not an HTTP server"):
        pretrained_file("conv_vae_mnist.history.json")
    listener.close()


# --- the datasets ----------------------------------------------------------------------------

def test_mnist_is_fetched_from_the_mirror_once_verified_by_the_uncompressed_hash(
        tmp_path, monkeypatch):
    from helper_lib.assets.datasets import resolve_data_root

    here = fetch_raw_files("mnist", resolve_data_root())  # this machine's files, to serve
    with Loopback() as srv:
        srv.add_folder("/data/MNIST", here, gzip_files=True)
        monkeypatch.delenv("VAE_DATA_DIR", raising=False)
        monkeypatch.setenv("VAE_DATA_URL", f"{srv.url}/data")
        raw = fetch_raw_files("mnist", tmp_path / "d")
        for name, digest in RAW_SHA256["MNIST"].items():
            assert downloads.sha256_file(raw / name) == digest
        assert len(srv.requests) == 4
        train, _, test = get_dataloaders("mnist", root=tmp_path / "d", train_subset=64)
        assert len(test.dataset) == 10_000 and len(srv.requests) == 4
        # An altered image file on the mirror is refused by the uncompressed file's hash.
        (raw / "t10k-images-idx3-ubyte").unlink()
        key = "/data/MNIST/t10k-images-idx3-ubyte.gz"
        raw_bytes = gzip.decompress(srv.files[key])
        srv.files[key] = gzip.compress(raw_bytes[:-1] + b"\x01")
        with pytest.raises(DownloadError, match="a wrong file"):
            fetch_raw_files("mnist", tmp_path / "d")


def test_with_vae_data_dir_set_nothing_is_downloaded(tmp_path, monkeypatch):
    from helper_lib.assets.datasets import DatasetNotFoundError

    with Loopback() as srv:
        monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "empty"))
        monkeypatch.setenv("VAE_DATA_URL", f"{srv.url}/data")
        with pytest.raises(DatasetNotFoundError, match="nothing is downloaded"):
            get_dataloaders("mnist")
        assert srv.requests == []


def test_offline_with_the_files_missing_the_error_names_the_folder_and_the_addresses(
        tmp_path, monkeypatch):
    from helper_lib.assets.datasets import DatasetNotFoundError

    monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("VAE_DATA_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DatasetNotFoundError) as err:
        get_dataloaders("fashion-mnist", root=tmp_path)
    text = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in text
    assert f"http://127.0.0.1:{port}/FashionMNIST/train-images-idx3-ubyte.gz" in text
    assert "VAE_DATA_DIR" in text
