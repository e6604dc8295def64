"""``python -m helper_lib grade SUBMISSION.ipynb ... --out DIR``: grade a class's notebooks.

Each submission is re-executed from scratch in a sandbox (:mod:`helper_lib.tools.sandbox`), with a
time and a memory limit and no network, as an unprivileged process that sees no other
submission, no grades and no reference answers. Its answers come out as plain JSON
(:mod:`helper_lib.tools.exercises`), capped in size, and are scored here, in the grader's
process, by :mod:`helper_lib.tools.checks`. Two submissions run at once on a 2-core machine.

Writes ``DIR/grades.csv`` (a row per submission, a column per exercise, ``total``),
``DIR/reports/<student>.json`` (every point lost, with its reason) and ``DIR/scores.png``; on
request, from the same reports, the platforms' files (:mod:`helper_lib.tools.lms`), a feedback
page per student (:mod:`helper_lib.tools.feedback`) and a similarity report
(:mod:`helper_lib.tools.similarity`). ``--shard K/N`` grades a share of the class for
``grade merge`` (:mod:`helper_lib.tools.shards`).

The sandbox runs the grader's own helper_lib, whatever version wrote the handout. A handout
records that version (``helper_lib.version`` in its metadata, :func:`helper_lib.tools.book
.handout`); a submission that records another one is graded all the same, with a note in its
report and one warning on the console (:func:`version_note`).
"""

from __future__ import annotations

import compileall
import functools
import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assets.project import VERSION
from .book import notebook_title
from .exercises import EXERCISES, MAX_ANSWER_BYTES, NOTEBOOKS
from .grades import GradingError, csv_cell, write_grades  # noqa: F401 (their home before)
from .sandbox import (
    DATASETS,
    DEFAULT_DISK_MB,
    DEFAULT_PROCESSES,
    LIB,
    WORK,
    RunCap,
    SandboxCommand,
    cores_for,
    cpu_shared,
    hidden_files,
    limits,
    protections,
    sandbox_command,
)
from .zygote import HOLDER, ZYGOTE_FAILED, Zygote, ZygoteError, holder_pid

__all__ = ["DEFAULT_MEMORY_MB", "DEFAULT_TIMEOUT_S", "GradingError", "RunOutput", "Submission",
           "csv_cell", "expected_notebooks", "grade", "parse_json", "parse_result", "recognise",
           "recorded_version", "run_with_log_tail", "students", "version_note", "write_grades"]

DEFAULT_TIMEOUT_S = 300
DEFAULT_MEMORY_MB = 4000
#: How much of a submission's stdout and stderr the grader keeps: the last 1 MB.
LOG_TAIL_BYTES = 1_000_000
_CHECKS_STUB = '''"""In the grader's sandbox the checks are absent: they run outside."""


def check(exercise_id, answer):
    print(f"· exercise {exercise_id}: scored by the grader after the run")
'''


@dataclass
class Submission:
    """One file to grade: its student, its path, and the course notebook it answers."""

    student: str
    path: Path
    notebook: str | None  # None: not a readable notebook (graded 0 with the reason)
    problem: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    #: the helper_lib version its notebook records (:func:`recorded_version`)
    version: str | None = None
    #: what its report notes besides the scores (a handout of another version)
    notes: list[str] = field(default_factory=list)


@functools.cache
def _titles() -> dict[str, str]:
    """The title (:func:`helper_lib.tools.book.notebook_title`) of each course notebook: a
    fallback for metadata a tool dropped; read once per run, and only in a clone, where the
    notebooks are."""
    import nbformat

    from ..assets.project import CLONE_ROOT

    out: dict[str, str] = {}
    if CLONE_ROOT is None:
        return out
    for path in sorted((CLONE_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        title = notebook_title(nbformat.read(path, as_version=4))
        if title:
            out[title] = path.stem
    return out


def _metadata(nb: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's ``helper_lib`` metadata (what the course's notebooks and handouts
    record), or ``{}`` where the notebook has none or something else than a dict."""
    metadata = nb.get("metadata")
    named = metadata.get("helper_lib") if isinstance(metadata, Mapping) else None
    return dict(named) if isinstance(named, Mapping) else {}


def _examine(path: Path) -> tuple[str | None, str, Any]:
    """``(course notebook, "", the parsed notebook)``, or ``(None, why, None)`` for a file
    that is not a readable notebook.

    Raises:
        GradingError: a readable notebook that is none of the course's.
    """
    import nbformat

    try:
        if path.stat().st_size > 50_000_000:
            return None, "the file is larger than 50 MB", None
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    except (OSError, UnicodeDecodeError) as err:
        return None, f"cannot read the file: {err}"[:300], None
    except Exception as err:  # nbformat raises several kinds for JSON that is no notebook
        return None, f"not a notebook: {type(err).__name__}: {err}"[:300], None
    named = _metadata(nb).get("notebook")
    if isinstance(named, str) and named in NOTEBOOKS:
        return named, "", nb
    title = notebook_title(nb)
    stem = _titles().get(title)
    if stem in NOTEBOOKS:
        return stem, "", nb
    raise GradingError(f"{path}: not a notebook of this course (no helper_lib.notebook in its "
                       f"metadata, and its title {title[:60]!r} is none of the course's)")


def recognise(path: Path) -> tuple[str | None, str]:
    """``(course notebook, "")`` for a notebook of the course, ``(None, why)`` for a file that
    is not a readable notebook.

    The notebook is recognised from its content: the ``helper_lib.notebook`` entry of its
    metadata (the course's notebooks and handouts carry it), else its title
    (:func:`helper_lib.tools.book.notebook_title`).

    Raises:
        GradingError: a readable notebook that is none of the course's.
    """
    notebook, problem, _ = _examine(path)
    return notebook, problem


#: A version as helper_lib writes one (``0.3.0``, ``0.4.0.dev1+g1234``), shown as it is.
_PLAIN_VERSION = re.compile(r"[0-9A-Za-z.+_-]{1,40}")


def recorded_version(nb: Mapping[str, Any]) -> str | None:
    """The helper_lib version that wrote the notebook, as its metadata records it
    (``helper_lib.version``, written by :func:`helper_lib.tools.book.handout`), made safe to
    print: ``None`` where none is recorded; a plain version string as it is; any other string
    as its ``repr`` (at most 40 characters of it, and ``…``); anything else (a list, a dict, a
    number) as ``<its JSON type>``. A hostile value can therefore neither crash the grader nor
    put more than a short line on its console."""
    named = _metadata(nb)
    if "version" not in named:
        return None
    version = named["version"]
    if isinstance(version, str):
        if _PLAIN_VERSION.fullmatch(version):
            return version
        return repr(version[:40]) + ("…" if len(version) > 40 else "")
    kinds = {bool: "boolean", int: "number", float: "number", type(None): "null"}
    kind = kinds.get(type(version)) or ("object" if isinstance(version, Mapping) else
                                        "array" if isinstance(version, list) else "value")
    return f"<{kind}>"


def version_note(nb: Mapping[str, Any]) -> str | None:
    """What a submission's report says about the helper_lib version its notebook records:
    nothing (``None``) for this grader's version; a warning for another one, or for a value that
    is no version at all; a mild note where none is recorded (a handout written before handouts
    recorded it, or a notebook not made from a handout). The score is never changed."""
    version = recorded_version(nb)
    if version == VERSION:
        return None
    if version is None:
        return (f"the notebook records no helper_lib version (a handout from before handouts "
                f"recorded it, or a notebook not made from a handout); graded with helper_lib "
                f"{VERSION}")
    if not _PLAIN_VERSION.fullmatch(version):
        return (f"the notebook's helper_lib.version metadata holds {version}, no version; graded "
                f"with helper_lib {VERSION}")
    return (f"the notebook was handed out by helper_lib {version}, and graded with helper_lib "
            f"{VERSION}: its checks may differ from those the student saw")


def students(paths: Sequence[Path]) -> list[str]:
    """The student of each file: the folder below the submissions' common folder
    (``SUBMISSIONS/<student>/<notebook>.ipynb``), or, for files that sit in that common folder
    itself, the file's name without ``.ipynb``."""
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    names = []
    for p in resolved:
        below = p.relative_to(common).parts
        names.append(below[0] if len(below) > 1 else p.stem)
    return names


def _collect(paths: Sequence[Path], log: Callable[[str], None]) -> list[tuple[str, Path]]:
    """``(student, file)`` for every submission: a file named on the command line (its student
    by :func:`students`), and every ``*.ipynb`` below a folder named there
    (``FOLDER/<student>/...``, or ``FOLDER/<student>.ipynb``). Below a folder, hidden files and
    folders (Jupyter's ``.ipynb_checkpoints`` among them) and folders whose name ends in
    ``.ipynb`` are skipped, and the log says so; a link is kept, to be refused as a link."""
    pairs: list[tuple[str, Path]] = []
    files = [p for p in paths if not p.is_dir()]
    pairs += zip(students(files), files, strict=True) if files else []
    for folder in (p for p in paths if p.is_dir()):
        skipped = []
        for f in sorted(folder.rglob("*.ipynb")):
            rel = f.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts):
                skipped.append(f"{rel} (hidden)")
            elif f.is_dir() and not f.is_symlink():
                skipped.append(f"{rel} (a folder)")
            else:
                pairs.append((rel.parts[0] if len(rel.parts) > 1 else f.stem, f))
        if skipped:
            log(f"skipped {len(skipped)} in {folder}: " + ", ".join(skipped[:10])
                + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""))
    return pairs


def _submission(student: str, files: Sequence[Path]) -> Submission:
    """What one student handed in, as one :class:`Submission`: a course notebook to run, or a
    row with the reason it gets no points (two files, a link, not a notebook of the course)."""
    path = files[0]
    if len(files) > 1:
        return Submission(student, path, None, f"{len(files)} files for one student ("
                          + ", ".join(f.name for f in files[:5])[:200]
                          + "): hand in one notebook; none was graded")
    if path.is_symlink():
        return Submission(student, path, None, "a link, not a file: not followed")
    try:
        if not stat.S_ISREG(path.lstat().st_mode):  # a FIFO would hang the reading
            return Submission(student, path, None, "not a regular file (a FIFO, a device or a "
                              "socket): not read")
    except OSError as err:
        return Submission(student, path, None, f"cannot read the file: {err}"[:300])
    try:
        notebook, problem, nb = _examine(path)
    except GradingError as err:
        return Submission(student, path, None, str(err).removeprefix(f"{path}: ")[:300])
    except Exception as err:  # whatever a file does, it is that student's row
        return Submission(student, path, None,
                          f"could not examine it: {type(err).__name__}: {err}"[:300])
    sub = Submission(student, path, notebook, problem)
    if nb is not None:
        sub.version = recorded_version(nb)
        sub.notes = [note for note in [version_note(nb)] if note]
    return sub


#: What a spreadsheet reads as a formula at the start of a cell (OWASP, "CSV Injection").
def _report_names(students: Sequence[str]) -> list[str]:
    """A safe, unique file name (without ``.json``) for each student's report: the name itself
    where it is short and plain, else its plain characters cut to 80 and a hash of the whole."""
    import hashlib

    out, used = [], set()
    for name in students:
        plain = re.sub(r"[^0-9A-Za-z._-]", "_", name)[:80].lstrip(".") or "student"
        if plain != name or plain.lower() in used:
            plain += "-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        used.add(plain.lower())
        out.append(plain)
    return out


def _library_copy(root: Path, pretrained: Path, sandboxed: bool = True) -> Path:
    """A copy of helper_lib for the sandbox, without its checks (a stub says where they are)
    and compiled, with the mount point for the models (unsandboxed: a link to them)."""
    import helper_lib

    lib = root / "lib"
    shutil.copytree(Path(helper_lib.__file__).parent, lib / "helper_lib",
                    ignore=shutil.ignore_patterns("__pycache__", "checks.py"))
    (lib / "helper_lib" / "tools" / "checks.py").write_text(_CHECKS_STUB)
    (lib / "pyproject.toml").write_text("# marks the copy as a checkout: the models are in data/\n")
    if sandboxed:
        (lib / "data" / "pretrained").mkdir(parents=True)
    else:
        (lib / "data").mkdir()
        (lib / "data" / "pretrained").symlink_to(pretrained)
    compileall.compile_dir(lib / "helper_lib", quiet=1)
    for p in [lib, *lib.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() else 0o644)
    return lib


def _shared_files() -> dict[str, bytes]:
    """What every run's scratch folder starts with besides the submission: matplotlib's font
    list (``.mpl/fontlist-*.json``), which a run would otherwise spend seconds building."""
    import matplotlib
    from matplotlib import font_manager  # noqa: F401 - builds the font list if it is missing

    return {f".mpl/{font_list.name}": font_list.read_bytes()
            for font_list in Path(matplotlib.get_cachedir()).glob("fontlist-*.json")}


def _inputs(notebooks: set[str | None]) -> Path:
    """Fetch (where missing) what the submissions read, since the sandbox has no network: the
    datasets, and the shipped models; returns the models' folder."""
    from ..assets.pretrained import PRETRAINED_DIR, manifest, pretrained_file
    from ..data import get_dataloaders

    get_dataloaders("mnist", batch_size=256)
    if "09_latent_arithmetic" in notebooks:
        get_dataloaders("fashion-mnist", batch_size=256)
    if PRETRAINED_DIR.is_dir():
        return PRETRAINED_DIR
    return [pretrained_file(name) for name in manifest()][0].parent  # a pip install: the cache


def _stage(root: Path, source: Path, name: str) -> Path:
    """A copy of the folder ``source`` at ``root/name``, made of hard links where the two share
    a file system (else of copies), for the sandbox to mount: its mounts then name the grader's
    staging folder, never the clone or the data's folder."""
    dest = root / name
    shutil.copytree(source, dest, symlinks=False, copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns(".*", "__pycache__"))
    return dest


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _datasets_stage(root: Path) -> Path | None:
    """The raw dataset files the notebooks read, staged (:func:`_stage`) under ``root``."""
    from ..assets.datasets import resolve_data_root

    data, stage = resolve_data_root(), root / "datasets"
    for name in ("MNIST", "FashionMNIST"):
        if (data / name / "raw").is_dir():
            _stage(stage / name, data / name / "raw", "raw")
    return stage if stage.is_dir() else None


def _run_one(sub: Submission, lib: Path, root: Path, timeout: float, memory_mb: int,
             pretrained: Path, sandboxed: bool = True, processes: int = DEFAULT_PROCESSES,
             disk_mb: int = DEFAULT_DISK_MB, cpus: Sequence[int] | None = None,
             datasets: Path | None = None, output_bytes: int = LOG_TAIL_BYTES,
             shared: Mapping[str, bytes] | None = None,
             hidden: Sequence[str] | None = None, zygote: Zygote | None = None) -> None:
    """Run one submission (sandboxed: in a scratch tmpfs of ``disk_mb`` MB; else in a scratch
    folder under ``root``), and keep what its run sent back in ``sub.result``. ``shared`` and
    ``hidden`` are the same for every run of a class (:func:`grade` reads them once): the files
    each scratch folder starts with besides the submission (:func:`_shared_files`), and the
    files the sandbox shows empty (:func:`~helper_lib.tools.sandbox.hidden_files`). With a
    ``zygote`` the run is forked from it (:func:`_forked_run`); where it cannot take the run,
    the run starts from scratch."""
    from ..assets.datasets import resolve_data_root

    if sub.path.is_symlink():  # checked when it was collected; the file may have changed since
        raise GradingError("a link, not a file")
    files = {"submission.ipynb": sub.path.read_bytes(),
             **(_shared_files() if shared is None else shared)}
    scratch = None
    if not sandboxed:
        scratch = Path(tempfile.mkdtemp(dir=root, prefix="run-"))
        for name, data in files.items():
            (scratch / name).parent.mkdir(exist_ok=True)
            (scratch / name).write_bytes(data)
    work, lib_at = (WORK, LIB) if sandboxed else (str(scratch), str(lib))
    data_at = DATASETS if sandboxed else str(resolve_data_root())
    env = _run_env(work, lib_at, data_at)
    t0 = time.perf_counter()
    run = None
    if zygote is not None and sandboxed:
        try:
            run = _forked_run(zygote, sub, files, lib, datasets, pretrained, disk_mb, hidden, env,
                              timeout, memory_mb, processes, cpus, output_bytes)
        except ZygoteError as err:
            sub.notes.append(f"started from scratch: the zygote could not take the run ({err})")
            t0 = time.perf_counter()
    if run is None:
        run = _exec_run(sub, files, lib, datasets, pretrained, disk_mb, hidden, env, timeout,
                        memory_mb, processes, cpus, output_bytes, sandboxed, scratch, work,
                        lib_at)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    _read_run(sub, run, timeout, t0)


def _run_env(work: str, lib_at: str, data_at: str) -> dict[str, str]:
    """The environment of a run (and of the zygote, which imports what the runs import)."""
    return {"PATH": "/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8", "PYTHONPATH": lib_at,
            "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{work}/.mpl",
            "VAE_SMOKE": "0", "VAE_DATA_DIR": data_at, "VAE_CACHE_DIR": f"{work}/cache",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "JUPYTER_PLATFORM_DIRS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def _exec_run(sub: Submission, files: Mapping[str, bytes], lib: Path, datasets: Path | None,
              pretrained: Path, disk_mb: int, hidden: Sequence[str] | None,
              env: Mapping[str, str], timeout: float, memory_mb: int, processes: int,
              cpus: Sequence[int] | None, output_bytes: int, sandboxed: bool,
              scratch: Path | None, work: str, lib_at: str) -> RunOutput:
    """A run started from scratch: the runner (``grading_run.py``) as a new Python process,
    in a sandbox of its own; it starts the kernel as a process of its own."""
    result_read, result_write = os.pipe()
    # the runner as a script: ``-m helper_lib.tools.grading_run`` would import torch for nothing
    argv = [sys.executable, f"{lib_at}/helper_lib/tools/grading_run.py", f"{work}/submission.ipynb",
            str(sub.notebook), str(timeout), str(result_write)]
    launch = (sandbox_command(argv, files, lib, datasets, pretrained, disk_mb, hidden)
              if sandboxed else SandboxCommand(argv, ()))
    inherited = [*launch.pass_fds, result_write]

    def close_inherited() -> None:  # once each: another thread may reuse a closed number
        while inherited:
            os.close(inherited.pop())

    try:
        with RunCap(processes, cpus) as cap:
            return run_with_log_tail(launch.cmd, env, timeout + 5, limits(memory_mb, cap),
                                     keep=output_bytes, cleanup=cap.kill_all, cwd=scratch,
                                     pass_fds=(*launch.pass_fds, result_write),
                                     result_fd=result_read, on_start=close_inherited)
    finally:
        close_inherited()
        os.close(result_read)


def _forked_run(zygote: Zygote, sub: Submission, files: Mapping[str, bytes], lib: Path,
                datasets: Path | None, pretrained: Path, disk_mb: int,
                hidden: Sequence[str] | None, env: Mapping[str, str], timeout: float,
                memory_mb: int, processes: int, cpus: Sequence[int] | None,
                output_bytes: int) -> RunOutput:
    """A run forked from the zygote (:mod:`helper_lib.tools.zygote`). bubblewrap makes the run's
    sandbox as for a run from scratch (the same mounts, scratch folder and limits, in the run's
    cgroups), with a holder process in it (:data:`~helper_lib.tools.zygote.HOLDER`) in place
    of the runner; the zygote's child for the run enters it and runs the runner and the
    kernel there. The sandbox ends when that child ends (the holder's stdin closes), or at the
    time limit.

    Raises:
        ZygoteError: the zygote could not take the run (nothing of the submission ran).
    """
    ready_read, ready_write = os.pipe()
    info_read, info_write = os.pipe()
    alive_read, alive_write = os.pipe()
    result_read, result_write = os.pipe()
    holder = [sys.executable, "-I", "-S", "-c", HOLDER.format(ready=ready_write)]
    launch = sandbox_command(holder, files, lib, datasets, pretrained, disk_mb, hidden,
                             info_fd=info_write)
    inherited = [*launch.pass_fds, ready_write, info_write, alive_read]
    mine = [ready_read, info_read, alive_write, result_read, result_write]

    def close_inherited() -> None:
        while inherited:
            os.close(inherited.pop())

    try:
        with RunCap(processes, cpus) as cap:
            request = {"argv": [f"{WORK}/submission.ipynb", str(sub.notebook), str(timeout)],
                       "env": dict(env), "memory_mb": memory_mb, "cwd": WORK,
                       "cgroups": {k: str(folder) for k, folder in cap.paths.items()},
                       "processes": processes}

            def hand_over(log_write: int) -> None:
                zygote.hand_over(request, holder_pid(info_read, ready_read), alive_write,
                                 log_write, result_write)
                for fd in (alive_write, result_write):  # the run's child holds them now
                    mine.remove(fd)
                    os.close(fd)

            run = run_with_log_tail(launch.cmd, env, timeout + 5, limits(memory_mb, cap),
                                    keep=output_bytes, cleanup=cap.kill_all,
                                    pass_fds=(*launch.pass_fds, ready_write, info_write),
                                    result_fd=result_read, on_start=close_inherited,
                                    stdin=alive_read, hand_over=hand_over)
    finally:
        close_inherited()
        for fd in mine:
            os.close(fd)
    if run.result.startswith(ZYGOTE_FAILED.encode()):  # before the submission ran
        raise ZygoteError(run.result[len(ZYGOTE_FAILED):].decode("utf-8", "replace")
                          .strip()[:200])
    return run


def _start_zygote(lib: Path, datasets: Path | None, pretrained: Path,
                  hidden: Sequence[str] | None, log: Callable[[str], None]) -> Zygote | None:
    """The zygote for a class's runs (:mod:`helper_lib.tools.zygote`), or ``None`` where it
    cannot run (not root, or ``VAE_GRADE_ZYGOTE=0``): the runs then start from scratch."""
    if os.environ.get("VAE_GRADE_ZYGOTE", "1") == "0":
        log("runs start from scratch: VAE_GRADE_ZYGOTE=0")
        return None
    if os.geteuid() != 0:
        log("runs start from scratch: forking them from a zygote needs root")
        return None
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    argv = [sys.executable, "-c", "from helper_lib.tools.zygote import main, preload; "
            f"preload(); main({child.fileno()})"]
    try:
        launch = sandbox_command(argv, None, lib, datasets, pretrained, hidden=hidden,
                                 zygote=True)
        zygote = Zygote(launch, _run_env(WORK, LIB, DATASETS), parent, child.fileno())
    except (ZygoteError, OSError, RuntimeError) as err:
        log(f"runs start from scratch: {err}")
        parent.close()
        return None
    finally:
        child.close()
    log("runs are forked from a zygote that imported torch, helper_lib and the kernel once")
    return zygote


def _read_run(sub: Submission, run: RunOutput, timeout: float, t0: float) -> None:
    """Keep what a run sent back in ``sub.result`` (and what went wrong in ``sub.problem``)."""
    if run.timed_out:
        sub.problem = f"ran past the time limit of {timeout:g} s and was killed"
    sub.result = {"seconds": round(time.perf_counter() - t0, 1), "errors": []}
    info, answers, why = parse_result(run.result, run.result_overflow)
    if info is not None:
        errors = info.get("errors")
        sub.result["errors"] = [e for e in (errors if isinstance(errors, list) else [])
                                if isinstance(e, dict)][:20]
        if info.get("dead_kernel") not in (None, False):
            sub.problem = sub.problem or "the kernel died (out of memory, or killed)"
    elif not sub.problem:
        tail = run.log.decode("utf-8", "replace").strip().splitlines()[-3:] if run.log else []
        sub.problem = (f"the run ended without a result ({why})"
                       + (f": {' | '.join(tail)}" if tail else ""))[:300]
    sub.result["answers"] = _only(answers, sub.notebook)
    if sub.result["answers"] is None and not sub.problem:
        sub.problem = f"no answers came out of the run ({why})" if why else \
            "no answers came out of the run"


#: How deeply a result's JSON may nest (the answers are numbers, arrays of arrays at most).
MAX_RESULT_DEPTH = 16
#: The most a run's report (its first line: cell errors, a dead kernel) may take.
MAX_INFO_BYTES = 200_000


def parse_result(data: bytes, overflow: bool = False) -> tuple[dict[str, Any] | None,
                                                                Any, str]:
    """``(run report, answers, "")`` from what a run sent back (:mod:`grading_run`'s two
    parts), or ``None`` for either and the reason (an unreadable report: both ``None``).

    The bytes came from beside an untrusted kernel, so each part is size-capped (the report at
    :data:`MAX_INFO_BYTES`, the answers at ``MAX_ANSWER_BYTES``) and parsed only when its JSON
    nests at most :data:`MAX_RESULT_DEPTH` levels deep (:func:`parse_json`): no input makes
    the grader recurse, hang or run out of memory.
    """
    if overflow:
        return None, None, f"the result: over {MAX_INFO_BYTES + MAX_ANSWER_BYTES:,} bytes"
    if not data:
        return None, None, "nothing was sent back"
    head, newline, rest = data.partition(b"\n")
    info, why = parse_json(head, MAX_INFO_BYTES, "the run's report")
    if not isinstance(info, dict):  # then nothing of it is trusted, the answers neither
        return None, None, why or "the run's report: no JSON object"
    if not newline or not rest:
        return info, None, "the harvest sent no answers"
    answers, why = parse_json(rest, MAX_ANSWER_BYTES, "the answers")
    return info, answers, why


def parse_json(text: bytes, max_bytes: int, what: str = "the text") -> tuple[Any, str]:
    """``(parsed JSON, "")``, or ``(None, why)`` for text over ``max_bytes``, nested deeper
    than :data:`MAX_RESULT_DEPTH`, or not JSON."""
    if len(text) > max_bytes:
        return None, f"{what}: over {max_bytes:,} bytes"
    if _nesting(text) > MAX_RESULT_DEPTH:  # bounded before the parser recurses
        return None, f"{what}: nested deeper than {MAX_RESULT_DEPTH} levels"
    try:
        return json.loads(text), ""
    except (ValueError, RecursionError) as err:
        return None, f"{what}: not valid JSON ({type(err).__name__})"


def _nesting(text: bytes) -> int:
    """How deeply the arrays and objects of the JSON ``text`` nest (brackets inside strings do
    not count), in C speed: the strings are blanked by a regular expression, and the brackets'
    running sum is taken by NumPy."""
    import numpy as np

    code = np.frombuffer(_JSON_STRING.sub(b'""', text), dtype=np.uint8)
    steps = (np.isin(code, (ord("["), ord("{"))).astype(np.int32)
             - np.isin(code, (ord("]"), ord("}"))).astype(np.int32))
    return int(np.cumsum(steps).max(initial=0))


#: A JSON string, or an unterminated one up to the end: possessive, and anchored at the end for
#: a string that never closes, so that the search is linear (a text of ``"\\"\\...`` made the
#: plain pattern quadratic: 40 kB took 5 s).
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+\\?(?:"|\Z)', re.DOTALL)


@dataclass
class RunOutput:
    """What :func:`run_with_log_tail` got from a run."""

    log: bytes  # the tail of its stdout and stderr
    timed_out: bool
    result: bytes = b""  # what it wrote to its result pipe, up to the cap
    result_overflow: bool = False  # it wrote more than the cap (the rest was dropped)


class _Reader:
    """Reads a stream to its end in a thread of its own, keeping its last (``tail``) or its
    first ``keep`` bytes; :attr:`dropped` says whether bytes were left out."""

    def __init__(self, stream: Any, keep: int, tail: bool) -> None:
        self.stream, self.keep, self.tail = stream, keep, tail
        self.buffer, self.dropped = bytearray(), False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while chunk := self.stream.read1(1 << 16):
            if self.tail:
                self.buffer.extend(chunk)
                if len(self.buffer) > 2 * self.keep:
                    del self.buffer[:-self.keep]
            elif len(self.buffer) <= self.keep:
                self.buffer.extend(chunk[:self.keep + 1 - len(self.buffer)])
            self.dropped = self.dropped or len(self.buffer) > self.keep

    def value(self) -> bytes:
        return bytes(self.buffer[-self.keep:] if self.tail else self.buffer[:self.keep])


def run_with_log_tail(cmd: Sequence[str], env: Mapping[str, str], timeout: float,
                      preexec_fn: Callable[[], None] | None = None,
                      keep: int = LOG_TAIL_BYTES,
                      cleanup: Callable[[], None] | None = None, cwd: Path | None = None,
                      pass_fds: Sequence[int] = (), result_fd: int | None = None,
                      on_start: Callable[[], None] | None = None, stdin: int | None = None,
                      hand_over: Callable[[int], None] | None = None) -> RunOutput:
    """Run ``cmd`` with its stdout and stderr on one pipe, of which only the last ``keep``
    bytes are kept, however much it writes; it is killed after ``timeout`` seconds. When it
    ends, what it left behind is killed too: its process group (``preexec_fn`` makes it a
    session leader), and whatever ``cleanup`` kills (:meth:`RunCap.kill_all`: the run's
    cgroups). With ``result_fd`` (the read end of a pipe whose write end is in ``pass_fds``)
    the first ``MAX_INFO_BYTES + MAX_ANSWER_BYTES + 1`` bytes written to it are kept too, and
    the rest dropped. ``on_start`` runs once the process has started: it must close this
    process's copies of ``pass_fds`` (the pipe's write end among them), or the result pipe
    never ends. ``stdin``: a descriptor for its standard input (else none). ``hand_over`` runs
    next, with the write end of the output pipe, for a zygote to pass on to the run
    (:meth:`helper_lib.tools.zygote.Zygote.hand_over`); if it raises, the process is killed
    and the error raised here.

    A submission's output is its own to flood (a shell command, a subprocess, a copy of the
    file descriptor all write to this pipe), so the grader's memory stays bounded by ``keep``.
    """
    log_read, log_write = os.pipe()
    try:
        proc = subprocess.Popen(cmd, env=dict(env), stdin=subprocess.DEVNULL if stdin is None
                                else stdin, stdout=log_write, stderr=log_write,
                                preexec_fn=preexec_fn, cwd=cwd, pass_fds=tuple(pass_fds))
    except BaseException:
        os.close(log_read)
        os.close(log_write)
        raise
    if hand_over is None:
        os.close(log_write)
    log = _Reader(os.fdopen(log_read, "rb"), keep, tail=True)
    if on_start is not None:
        on_start()
    if hand_over is not None:
        try:
            hand_over(log_write)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            if cleanup is not None:
                cleanup()
            proc.wait()
            raise
        finally:
            os.close(log_write)
    result = None
    if result_fd is not None:
        result = _Reader(os.fdopen(os.dup(result_fd), "rb"), MAX_INFO_BYTES + MAX_ANSWER_BYTES,
                         tail=False)
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    try:  # the run, or what it left running in the background
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if cleanup is not None:
        cleanup()
    proc.wait()
    for reader in (log, result):
        if reader is not None:
            reader.thread.join(timeout=10)
            if not reader.thread.is_alive():  # else a process that escaped still holds the pipe
                reader.stream.close()
    if result is None:
        return RunOutput(log.value(), timed_out)
    return RunOutput(log.value(), timed_out, result.value(), result.dropped)


def _only(data: Any, notebook: str | None) -> dict[str, Any] | None:
    """The answers as a dict with only ``notebook``'s exercise ids kept, or ``None``."""
    if not isinstance(data, dict):
        return None
    wanted = {ex.id for ex in NOTEBOOKS.get(str(notebook), [])}
    return {k: v for k, v in data.items() if k in wanted}


def _score(sub: Submission) -> dict[str, Any]:
    from .checks import score

    exercises = NOTEBOOKS.get(str(sub.notebook), [])
    answers = sub.result.get("answers") or {}
    rows = {}
    for ex in exercises:
        if ex.id not in answers:
            rows[ex.id] = {"points": 0, "status": "no answer",
                           "message": sub.problem or f"{ex.variable} was not harvested"}
            continue
        try:
            verdict = score(ex.id, answers[ex.id])
            rows[ex.id] = {"points": verdict.points, "status": verdict.status,
                           "message": verdict.message}
        except Exception as err:  # a malformed answer must not stop the others
            rows[ex.id] = {"points": 0, "status": "wrong",
                           "message": f"could not score it: {type(err).__name__}: {err}"[:300]}
    return rows


def _digest(sub: Submission) -> str:
    """What a run's identity records of a submission (:func:`helper_lib.tools.shards.run_id`):
    its file's SHA-256 where it was read as a notebook, else the reason it was not."""
    import hashlib

    if sub.notebook is None or sub.path.is_symlink():
        return "not run: " + sub.problem
    try:
        return hashlib.sha256(sub.path.read_bytes()).hexdigest()
    except OSError as err:
        return f"unreadable: {err}"


def expected_notebooks(names: Sequence[str] | None) -> set[str] | None:
    """The course notebooks that ``--notebook`` names (``"03"`` or ``"03_logvar_trick"``), or
    ``None`` for no restriction.

    Raises:
        GradingError: a name that is none of the course's notebooks.
    """
    if not names:
        return None
    found = set()
    for name in names:
        match = [nb for nb in NOTEBOOKS if nb == name or nb.split("_", 1)[0] == name]
        if not match:
            raise GradingError(f"--notebook {name!r} is none of the course's notebooks: "
                               + ", ".join(sorted(NOTEBOOKS)))
        found.update(match)
    return found


def grade(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
          timeout: float = DEFAULT_TIMEOUT_S, memory_mb: int = DEFAULT_MEMORY_MB,
          jobs: int | None = None, unprotected: bool = False, keep_answers: bool = False,
          log: Callable[[str], None] = print,
          notebooks: Sequence[str] | None = None,
          processes: int = DEFAULT_PROCESSES,
          disk_mb: int = DEFAULT_DISK_MB,
          output_kb: int = LOG_TAIL_BYTES // 1000,
          formats: Sequence[str] = (),
          roster: str | os.PathLike | None = None,
          feedback: bool = False,
          similarity: bool = False,
          shard: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Grade the notebooks ``paths`` (files, or folders searched for ``*.ipynb``) into ``out``.

    ``keep_answers`` also writes each submission's harvested answers (plain JSON) to
    ``out/answers/<student>.json``. ``notebooks`` (``--notebook``) names the course notebooks
    this run grades: a submission of another one gets a row that says so, and no points.
    ``processes`` caps each run's processes and threads, ``disk_mb`` its scratch folder,
    ``output_kb`` how much of its output (the last) the grader keeps;
    ``jobs`` runs at once get equal shares of the CPU where the machine has a cpu or cpuset
    cgroup (:class:`~helper_lib.tools.sandbox.RunCap`), and without one ``jobs`` defaults to 1.
    ``formats`` (``canvas``, ``moodle``, ``gradescope``) writes the platforms' files, Canvas's
    and Moodle's with the identities of ``roster`` (:mod:`helper_lib.tools.lms`); ``feedback``
    writes ``out/feedback/<student>.html`` (:mod:`helper_lib.tools.feedback`); ``similarity``
    writes ``out/similarity.html`` (:mod:`helper_lib.tools.similarity`). ``shard`` ``(K, N)``
    runs only the students of shard K of N and writes its manifest for ``grade merge``
    (:mod:`helper_lib.tools.shards`): there the Canvas and Moodle files are left to the merge,
    and the similarity report (which compares the whole class, and runs no kernel) to shard 1.
    Returns the rows of ``grades.csv``.

    One submission never costs another its grade: a file that is no notebook of the course,
    two files of one student, a link, a run that fails and a result that cannot be read each
    become that student's row, with 0 points and the reason in the report.

    Raises:
        GradingError: bad input (nothing is graded): no submissions, a path that does not exist,
            ``out`` already holds grades, an unknown ``notebooks`` name or format, a roster that
            cannot be read or that Canvas or Moodle needs and is not given, a shard out of
            range, or a missing protection without ``unprotected``.
    """
    from . import lms, shards

    expected = expected_notebooks(notebooks)
    unknown = [f for f in formats if f not in lms.FORMATS]
    if unknown:
        raise GradingError(f"--format {unknown[0]!r} is none of {', '.join(lms.FORMATS)}")
    formats = list(dict.fromkeys(formats))
    if shard is not None:
        shard = shards.parse_shard(f"{shard[0]}/{shard[1]}")
    lms_formats = [f for f in formats if f in ("canvas", "moodle")]
    if lms_formats and roster is None:
        raise GradingError(f"--format {lms_formats[0]} needs --roster FILE: a CSV with a "
                           f"'student' column and the platform's identities (docs/grading.md)")
    the_roster = lms.read_roster(roster, lms_formats) if roster is not None else None
    if similarity:
        try:
            import copydetect  # noqa: F401 - the matching (helper_lib.tools.similarity)
        except ImportError:
            raise GradingError("--similarity needs copydetect: pip install 'helper_lib[grading]' "
                               "(or pip install -r requirements.txt in the clone)") from None
    if the_roster is not None and not lms_formats:
        log("note: --roster is read only by --format canvas and --format moodle")
    for p in map(Path, paths):
        if not p.exists() and not p.is_symlink():
            raise GradingError(f"{p}: no such file or folder")
    pairs = _collect([Path(p) for p in paths], log)
    if not pairs:
        raise GradingError("no submissions to grade (an empty list, or folders without "
                           ".ipynb files)")
    out = Path(out)
    if (out / "grades.csv").exists():
        raise GradingError(f"{out} already holds grades (grades.csv): choose another --out or "
                           "remove it first")
    by_student: dict[str, list[Path]] = {}
    for name, f in pairs:
        by_student.setdefault(name, []).append(f)
    subs = [_submission(name, files) for name, files in by_student.items()]
    for sub in subs:
        if expected is not None and sub.notebook is not None and sub.notebook not in expected:
            sub.problem = (f"this is {sub.notebook}, and this run grades "
                           f"{', '.join(sorted(expected))} only: not graded")
            sub.notebook = None
    whole = subs  # the class; with --shard, only this shard's share of it is run
    columns = [ex for ex in EXERCISES if any(EXERCISES[ex].notebook == s.notebook for s in whole)]
    report_names = dict(zip([s.student for s in whole], _report_names([s.student for s in whole]),
                            strict=True))
    if shard is not None:
        subs = [s for s in whole if shards.shard_of(s.student, shard[1]) == shard[0]]
        settings = {"timeout": timeout, "memory_mb": memory_mb, "processes": processes,
                    "disk_mb": disk_mb, "output_kb": output_kb, "unprotected": unprotected,
                    "notebooks": sorted(expected) if expected else None,
                    "keep_answers": keep_answers, "formats": formats, "feedback": feedback,
                    "similarity": similarity,
                    "roster": the_roster.to_json() if the_roster is not None else None}
        run = shards.run_id([(s.student, _digest(s)) for s in whole], settings)
        log(f"shard {shard[0]}/{shard[1]} of run {run}: {len(subs)} of the class's "
            f"{len(whole)} submission(s)")
    if jobs is None:
        jobs = max(1, min(len(subs), len(os.sched_getaffinity(0)))) if cpu_shared() else 1
    shields = protections(timeout, memory_mb, processes, disk_mb, jobs, output_kb)
    missing = [p for p in shields if not p.active]
    for p in shields:
        log(str(p))
    if missing and not unprotected:
        raise GradingError("unprotected: " + "; ".join(f"{p.name} ({p.detail})" for p in missing)
                           + ". Install bubblewrap (apt-get install bubblewrap) or pass "
                             "--unprotected to run the submissions without these protections")
    sandboxed = not any(p.name == "filesystem" for p in missing)
    if missing:
        log("WARNING: --unprotected: the submissions run without the protections marked ✗")
    other = [s for s in subs if s.version is not None and s.version != VERSION]
    if other:  # once, before the runs: the instructor may stop and grade with that version
        named = ", ".join(f"{s.student} ({s.version})" for s in other[:10])
        more = f" and {len(other) - 10} more" if len(other) > 10 else ""
        log(f"WARNING: {len(other)} submission(s) record another helper_lib version than this "
            f"grader's {VERSION}, so their checks may differ; graded all the same, with a note "
            f"in their reports: {named}{more}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "reports").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vae-grade-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        pretrained = _inputs({s.notebook for s in subs})
        datasets = None
        if sandboxed:  # what the sandbox mounts, staged here: its mounts name no host folder
            pretrained, datasets = _stage(root, pretrained, "models"), _datasets_stage(root)
        lib = _library_copy(root, pretrained, sandboxed)
        runnable = [s for s in subs if s.notebook is not None]
        shared, hidden = _shared_files(), (hidden_files() if sandboxed else [])
        zygote = _start_zygote(lib, datasets, pretrained, hidden, log) if sandboxed else None
        done, slots = 0, queue.SimpleQueue()
        for slot in range(jobs):  # the cores of each run at once, where only a cpuset shares them
            slots.put(slot)

        def work(sub: Submission) -> None:
            nonlocal done
            slot = slots.get()
            try:
                _run_one(sub, lib, root, timeout, memory_mb, pretrained, sandboxed, processes,
                         disk_mb, cores_for(slot, jobs), datasets, output_kb * 1000,
                         shared=shared, hidden=hidden, zygote=zygote)
            except Exception as err:  # one submission never costs another its grade
                sub.problem = f"the run failed: {type(err).__name__}: {err}"[:300]
                sub.result.setdefault("errors", [])
            finally:
                slots.put(slot)
            done += 1
            log(f"[{done}/{len(runnable)}] {sub.student}: {sub.notebook}, "
                f"{sub.result.get('seconds', 0):.0f} s" + (f" ({sub.problem})" if sub.problem
                                                          else ""))

        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                list(pool.map(work, runnable))
        finally:
            if zygote is not None:
                zygote.close()
    t_score, rows, reports = time.perf_counter(), [], []
    for sub in subs:
        file_name = report_names[sub.student]
        scored = _score(sub) if sub.notebook is not None else {}
        row: dict[str, Any] = {"student": sub.student}
        row.update({c: scored[c]["points"] if c in scored else "" for c in columns})
        row["total"] = sum(v["points"] for v in scored.values())
        rows.append(row)
        report = {"student": sub.student, "file": str(sub.path), "notebook": sub.notebook,
                  "problem": sub.problem or None, "total": row["total"],
                  "of": len(NOTEBOOKS.get(str(sub.notebook), [])), "exercises": scored,
                  "cell_errors": sub.result.get("errors", []),
                  "seconds": sub.result.get("seconds"),
                  "protections": [str(p) for p in shields], "notes": sub.notes}
        (out / "reports" / f"{file_name}.json").write_text(json.dumps(report, indent=1,
                                                                      ensure_ascii=False))
        reports.append((file_name, report))
        if keep_answers:
            (out / "answers").mkdir(exist_ok=True)
            (out / "answers" / f"{file_name}.json").write_text(
                json.dumps(sub.result.get("answers")))
    write_grades(out, rows, columns)
    log(f"graded {len(subs)} submission(s) in {time.perf_counter() - t0:.0f} s with {jobs} "
        f"at a time (scoring: {time.perf_counter() - t_score:.1f} s): {out / 'grades.csv'}, "
        f"{out / 'reports'}/, {out / 'scores.png'}")
    if feedback:
        from .feedback import write_feedback

        log(f"feedback: a page per student in {write_feedback(out, reports)}/")
    notebooks_graded = list(dict.fromkeys(EXERCISES[c].notebook for c in columns))
    for path in lms.write_exports(out, reports, notebooks_graded, formats, the_roster, log,
                                  whole_class=shard is None):
        if path.suffix == ".csv":
            log(f"{path.stem}: {path}")
    if "gradescope" in formats:
        log(f"gradescope: a results.json per student in {out / 'gradescope'}/")
    if similarity and (shard is None or shard[0] == 1):
        from .similarity import write_similarity

        write_similarity(out, [(s.student, s.path, s.notebook) for s in whole], log)
    if shard is not None:
        shards.write_manifest(out, run, shard, settings, [s.student for s in whole],
                              [report_names[s.student] for s in whole], columns,
                              notebooks_graded, rows, [s.student for s in subs],
                              settings["roster"])
        log(f"shard {shard[0]}/{shard[1]} written; merge all {shard[1]} with: python -m "
            "helper_lib grade merge DIR... --out OUT")
    return rows
