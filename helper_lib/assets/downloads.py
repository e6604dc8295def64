"""Fetching a file once: verified, atomic, with a progress bar, one process at a time.

:func:`fetch` is the one download path of the course. The pretrained models
(:mod:`helper_lib.assets.pretrained`) and the MNIST / Fashion-MNIST files
(:mod:`helper_lib.assets.datasets`) both go through it, from the real servers and from the tests'
loopback server alike:

* the file is checked against a sha256 that **the package carries**, never one from the server;
* it is written to ``.<name>.partial`` beside its destination and renamed only once its hash is
  right, so a truncated, tampered or wrong download is deleted and never seen under its name;
* a lock file (``filelock``, which torch itself depends on) lets two kernels that want the same
  file at once download it once: the second waits, then finds it in place;
* a server that is down, answers 404, or accepts the connection and then stalls gives one clear
  error within :data:`TIMEOUT_S` seconds per address. It names the file, every address tried,
  the expected hash, and how to put the file in place by hand.

Why not ``torch.hub.download_url_to_file``, torchvision's ``download_url`` or pooch:
``docs/downloads.md`` (measured: the first has no timeout, the second checks an md5 of the
compressed file, none of them holds a lock between processes).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from ..utils import SettingsError
from .project import VERSION

__all__ = ["CACHE_ENV_VAR", "TIMEOUT_S", "DownloadError", "cache_dir", "check_base_url",
           "sha256_file", "fetch"]

#: Overrides the cache folder (default: the platform's user cache, e.g. ``~/.cache/helper_lib``).
CACHE_ENV_VAR = "VAE_CACHE_DIR"
#: Seconds one connection attempt, or one wait for the next bytes, may take before giving up.
TIMEOUT_S = 10.0
#: Seconds a process waits for another one that is downloading the same file.
LOCK_WAIT_S = 900.0
_CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be fetched or verified; the message says what to do instead."""


def cache_dir() -> Path:
    """The user cache: ``$VAE_CACHE_DIR``, else the platform's (``platformdirs``): on Linux
    ``~/.cache/helper_lib``, on macOS ``~/Library/Caches/helper_lib``, on Windows
    ``%LOCALAPPDATA%\\helper_lib\\Cache``. Not created here."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("helper_lib", appauthor=False))


def check_base_url(url: str, variable: str) -> str:
    """``url`` without a final slash, or :class:`SettingsError` if it is not http(s)/file."""
    if not url.startswith(("http://", "https://", "file://")) or len(url.split("://", 1)[1]) == 0:
        raise SettingsError(f"{variable} must be an http://, https:// or file:// address, got "
                            f"{url!r}")
    return url.rstrip("/")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DownloadError(
            f"cannot write to the cache folder {folder} ({err.strerror or err}). Point the "
            f"environment variable {CACHE_ENV_VAR} at a folder you can write to."
        ) from None


def _download(url: str, partial: Path, gunzip: bool, label: str) -> None:
    """Stream ``url`` into ``partial`` (gunzipped on the way if asked); raise on any failure."""
    request = urllib.request.Request(url, headers={"User-Agent": f"helper_lib/{VERSION}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, \
            open(partial, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gunzip else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                  leave=False, file=sys.stderr, mininterval=0.5) as bar:
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                bar.update(len(chunk))
                out.write(inflate.decompress(chunk) if inflate else chunk)
        if total is not None and received != total:
            raise DownloadError(f"the transfer stopped after {received:,} of {total:,} bytes")
        if inflate is not None:
            if not inflate.eof:
                raise DownloadError("the gzip stream is truncated")
            out.write(inflate.flush())


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, BaseException) else err
        if isinstance(err, str):
            return err
    if isinstance(err, TimeoutError | socket.timeout):
        return f"no answer within {TIMEOUT_S:g} s"
    if isinstance(err, http.client.HTTPException):
        return f"not an HTTP server ({type(err).__name__})"
    if isinstance(err, zlib.error):
        return f"not a gzip file ({err})"
    return str(err) or type(err).__name__


def fetch(urls: Sequence[str], dest: str | os.PathLike, sha256: str, *, gunzip: bool = False,
          what: str | None = None) -> Path:
    """``dest``, downloaded from the first of ``urls`` that gives a file whose sha256 (after
    gunzipping, if ``gunzip``) is ``sha256``; nothing is fetched when ``dest`` already has it.

    Args:
        urls: addresses to try in turn (mirrors).
        dest: where the file goes; its folder is created.
        sha256: the hex digest the package carries for this file.
        gunzip: the addresses serve ``.gz`` files; ``dest`` is the uncompressed file.
        what: how the file is named in messages (default: its file name).

    Raises:
        DownloadError: no address gave the right file (the message names the file, each
            address and what went wrong there, the expected hash, and how to put the file in
            place by hand), or the folder is not writable.
    """
    dest = Path(dest)
    what = what or dest.name
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    _writable_folder(dest.parent)
    lock = FileLock(str(dest.parent / f".{dest.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process that is downloading {what} ...", file=sys.stderr)
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout:
            raise DownloadError(f"another process has been downloading {dest} for over "
                                f"{LOCK_WAIT_S:g} s; if none is, delete {lock.lock_file}") from None
    try:
        if dest.is_file():
            if sha256_file(dest) == sha256:  # the other process finished it
                return dest
            dest.unlink()
            print(f"{dest} was not the expected file (damaged, or from another version); "
                  "fetching it again", file=sys.stderr)
        partial = dest.parent / f".{dest.name}.partial"
        if partial.exists():
            partial.unlink()
            print(f"removed an unfinished download of {what} left by an interrupted run",
                  file=sys.stderr)
        tried = []
        for url in urls:
            try:
                _download(url, partial, gunzip, what)
            except (OSError, http.client.HTTPException, zlib.error, ValueError) as err:
                partial.unlink(missing_ok=True)
                tried.append(f"  {url}: {_reason(err)}")
                continue
            actual = sha256_file(partial)
            if actual != sha256:
                partial.unlink()
                tried.append(f"  {url}: a wrong file (sha256 {actual}); deleted, not used")
                continue
            os.replace(partial, dest)
            return dest
        raise DownloadError(
            f"could not fetch {what}. Tried:\n" + "\n".join(tried) + "\n"
            f"Expected sha256: {sha256}\n"
            f"To put it in place by hand, save the file as {dest} (check it with "
            f"`sha256sum {dest.name}`)."
        )
    finally:
        lock.release()
