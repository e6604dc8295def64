"""How long the grader takes for a class, against the notebook's own run (issue #36, item 6).

    VAE_DATA_DIR=../shared/data python benchmarks/grading_throughput.py --copies 40 --rounds 2
    VAE_DATA_DIR=../shared/data python benchmarks/grading_throughput.py --notebook 02 --copies 10

Side by side, one after the other, in turns:

* **own run**: the notebook alone in full mode, the way the site build runs it
  (:func:`helper_lib.tools.book.execute_notebook`: a fresh kernel, 2 threads), timed around
  the call (kernel start and shutdown included, the Python that calls it not);
* **from scratch**: ``python -m helper_lib grade`` of ``--copies`` copies of its solved source
  with ``--jobs 2`` and ``VAE_GRADE_ZYGOTE=0``: each run starts a runner and a kernel of its
  own, as every run did before the zygote;
* **forked**: the same command with the zygote (the default, as root).

The aim is ``copies * own run / cores`` plus a small constant (the grader's own start).
Every class must score full marks, or the script stops. Run it on an otherwise idle machine:
two jobs on 2 cores inflate times 5-6x.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def own_run(notebook: Path) -> float:
    """One run of ``notebook`` alone, in a fresh worker process (seconds around the call)."""
    code = ("import sys, time\nfrom pathlib import Path\n"
            "from helper_lib.tools.book import execute_notebook\n"
            "t = time.perf_counter()\nexecute_notebook(Path(sys.argv[1]))\n"
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code, str(notebook)], check=True,
                         capture_output=True, text=True, env={**os.environ, "VAE_SMOKE": "0"})
    return float(out.stdout.split()[-1])


def grade_class(folder: Path, out: Path, zygote: bool, copies: int) -> float:
    """Grade the class in ``folder`` (whole command, seconds); every row must be full marks."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "VAE_SMOKE": "0", "VAE_GRADE_ZYGOTE": "1" if zygote else "0"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "helper_lib", "grade", str(folder), "--out", str(out),
                    "--jobs", "2"], check=True, capture_output=True, env=env)
    seconds = time.perf_counter() - t
    with open(out / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    exercises = [k for k in rows[0] if k not in ("student", "total")]
    assert len(rows) == copies and all(int(r["total"]) == len(exercises) for r in rows), rows
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebook", default="03", help="the course notebook (default 03)")
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the two graders")
    parser.add_argument("--own-runs", type=int, default=5)
    args = parser.parse_args()
    notebook = next((ROOT / "notebooks").glob(f"{args.notebook}*.ipynb"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"{notebook.name}, {args.copies} copies, {os.cpu_count()} cores: {cpu}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        for i in range(args.copies):
            (folder / f"s{i:03d}").mkdir(parents=True)
            shutil.copyfile(notebook, folder / f"s{i:03d}" / notebook.name)
        own, scratch, forked = [], [], []
        for r in range(max(args.rounds, 1)):
            for _ in range(-(-args.own_runs // max(args.rounds, 1))):
                own.append(own_run(notebook))
            scratch.append(grade_class(folder, Path(tmp) / "out", False, args.copies))
            forked.append(grade_class(folder, Path(tmp) / "out", True, args.copies))
            print(f"round {r + 1}: own runs {', '.join(f'{s:.1f}' for s in own)} s; "
                  f"from scratch {scratch[-1]:.1f} s; forked {forked[-1]:.1f} s", flush=True)
    median = statistics.median(own)
    aim = args.copies * median / (os.cpu_count() or 1)
    print(f"own run, median of {len(own)}: {median:.2f} s; aim {args.copies} x {median:.2f} / "
          f"{os.cpu_count()} = {aim:.1f} s + a small constant")
    for name, times in (("from scratch", scratch), ("forked", forked)):
        print(f"{name}: {', '.join(f'{s:.1f}' for s in times)} s "
              f"(median {statistics.median(times):.1f} s, {statistics.median(times) / aim:.2f} "
              "x the aim)")


if __name__ == "__main__":
    main()
