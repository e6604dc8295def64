"""Where the course lives: its public address and version, and every link built from them.

:data:`REPOSITORY` is the **one** place the address is written. The notebooks' install cells,
the README's and the site's "Open in Colab" / Binder links, ``pyproject.toml``'s URLs and the
download address of the pretrained models all come from it; ``tests/test_project.py`` fails if
any of them disagree. Links pin the version (the git tag ``v<version>``), so a notebook opened
from a link installs the library and downloads the models that were tested with it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["VERSION", "REPOSITORY", "TAG", "REPO_ROOT", "CLONE_ROOT", "install_source",
           "pretrained_base_url", "colab_url", "binder_url", "launch_links"]

#: The package's version: ``helper_lib.__version__`` and the package metadata read it here.
VERSION = "0.4.0"
#: The repository's public address (the one place it is written).
REPOSITORY = "https://github.com/stat453-vae/vae-lectures"
#: The git tag of this version: links and downloads pin it.
TAG = f"v{VERSION}"

#: The folder that holds the ``helper_lib`` package: the checkout's root for an editable install,
#: ``site-packages`` for a pip install. The one place the repository's root is computed.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The checkout helper_lib runs from (an editable install), or ``None`` for a pip install.
CLONE_ROOT: Path | None = (REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file()
                           and (REPO_ROOT / "data").is_dir() else None)


def _owner_repo() -> str:
    return REPOSITORY.removeprefix("https://github.com/")


def install_source() -> str:
    """What the notebooks' install cell hands to ``pip install``: this version from git."""
    return f"git+{REPOSITORY}@{TAG}"


def pretrained_base_url() -> str:
    """The default download address of ``data/pretrained/`` at this version (no final slash)."""
    return f"{REPOSITORY}/raw/{TAG}/data/pretrained"


def colab_url(notebook: str) -> str:
    """Open ``notebooks/<notebook>`` (e.g. ``"05_conv_vae_mnist.ipynb"``) in Google Colab."""
    return f"https://colab.research.google.com/github/{_owner_repo()}/blob/{TAG}/notebooks/{notebook}"


def binder_url(notebook: str) -> str:
    """Open ``notebooks/<notebook>`` in JupyterLab on mybinder.org (built from ``binder/``)."""
    return f"https://mybinder.org/v2/gh/{_owner_repo()}/{TAG}?labpath=notebooks%2F{notebook}"


def launch_links(notebook: str) -> str:
    """The two launch links of a notebook in Markdown (README and site). Plain text, no badge
    images, so that the offline site loads nothing from the network."""
    return f"[Colab]({colab_url(notebook)}) · [Binder]({binder_url(notebook)})"
