"""What the course ships and where it comes from.

* :mod:`helper_lib.assets.project`: the version, the repository's address and root, and the links
  built from them.
* :mod:`helper_lib.assets.downloads`: verified, atomic downloads into the user cache.
* :mod:`helper_lib.assets.datasets`: MNIST's and Fashion-MNIST's files: found, downloaded,
  checked (:func:`~helper_lib.assets.datasets.load_split`).
* :mod:`helper_lib.assets.pretrained`: the shipped models' files: from the clone, the cache or
  the repository, each checked against ``pretrained_files.json``.
"""
