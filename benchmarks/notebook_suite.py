"""Wall-clock time of the notebooks, executed the way CI and students run them.

    VAE_DATA_DIR=../shared/data python benchmarks/notebook_suite.py            # both modes
    VAE_DATA_DIR=../shared/data python benchmarks/notebook_suite.py --smoke-only

* smoke mode: the whole suite through ``pytest --nbmake notebooks`` with ``VAE_SMOKE=1``
  (exactly what CI runs), timed as one command;
* full mode: each notebook on its own with ``VAE_SMOKE=0`` (pretrained checkpoints loaded),
  executed with nbclient, kernel start-up included.

Run it on an otherwise idle machine: two jobs on 2 cores inflate times 5-6x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def time_smoke_suite() -> float:
    env = {**os.environ, "VAE_SMOKE": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbmake", "-o", "addopts=",
                    "-p", "no:cacheprovider", *map(str, NOTEBOOKS)], cwd=ROOT, env=env,
                   check=True)
    return time.perf_counter() - t0


def time_full_notebook(path: Path) -> float:
    os.environ["VAE_SMOKE"] = "0"
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke-only", action="store_true")
    parser.add_argument("--full-only", action="store_true")
    args = parser.parse_args()
    if os.environ.get("VAE_DATA_DIR"):
        os.environ["VAE_DATA_DIR"] = str(Path(os.environ["VAE_DATA_DIR"]).resolve())
    if not args.full_only:
        print(f"smoke mode, all {len(NOTEBOOKS)} notebooks via nbmake: "
              f"{time_smoke_suite():.1f} s", flush=True)
    if not args.smoke_only:
        for path in NOTEBOOKS:
            print(f"full mode {path.name:34s} {time_full_notebook(path):6.1f} s", flush=True)


if __name__ == "__main__":
    main()
