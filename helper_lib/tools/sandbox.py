"""A sandbox for running untrusted notebooks: bubblewrap namespaces, an unprivileged user and
resource limits, without Docker.

:func:`protections` says what this machine offers; :func:`sandbox_command` builds the command
line; :func:`limits` is the ``preexec_fn`` that sets the resource limits in the child. Inside,
the process sees the Python installation, a copy of ``helper_lib`` without its checks, the
shipped models and the datasets, all read-only; it can write only its scratch folder (mounted
at :data:`WORK`) and a private ``/tmp``; it has no network (its own network namespace) and its
own PID namespace, so it cannot see or signal any process outside; as root, the grader drops it
to ``nobody`` (uid 65534) with no capabilities and ``no_new_privs``.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LIB", "NOBODY", "WORK", "DEFAULT_PROCESSES", "TMP_MB", "Protection", "ProcessCap",
           "limits", "pids_cgroup_root", "protections", "sandbox_command"]

#: Where the sandbox sees its scratch folder, and the read-only library copy.
WORK = "/grader/work"
LIB = "/grader/lib"
NOBODY = 65534
#: Processes and threads one submission may have at once (a Jupyter kernel with torch uses a
#: few dozen).
DEFAULT_PROCESSES = 512
#: The size of the sandbox's private ``/tmp`` (a tmpfs: it takes memory, not disk).
TMP_MB = 256


@dataclass(frozen=True)
class Protection:
    """One protection: its name, whether it is active here, and what it does (or why not)."""

    name: str
    active: bool
    detail: str

    def __str__(self) -> str:
        return f"{'✓' if self.active else '✗'} {self.name}: {self.detail}"


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _bwrap_works(bwrap: str) -> tuple[bool, str]:
    try:
        run = subprocess.run([bwrap, *_namespaces(), "--die-with-parent", "--ro-bind", "/",
                              "/", *_drop(), "true"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, str(err)
    return run.returncode == 0, run.stderr.strip().splitlines()[-1] if run.stderr else ""


def _drop() -> list[str]:
    """As root: become nobody with no groups, no capabilities, no new privileges (the prefix of
    the command inside the sandbox)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def protections(timeout: float, memory_mb: int,
                processes: int = DEFAULT_PROCESSES) -> list[Protection]:
    """What a sandboxed run gets on this machine, protection by protection."""
    bwrap = _bwrap()
    works, why = _bwrap_works(bwrap) if bwrap else (False, "bubblewrap (bwrap) is not installed")
    root = os.geteuid() == 0
    dropped = bool(_drop()) if root else True
    who = (f"runs as uid {NOBODY} (nobody), no capabilities, no new privileges" if root and
           dropped else f"runs as uid {os.geteuid()}, not root" if not root else
           "is root: setpriv (util-linux) is missing")
    sandbox_detail = why if not works else ""
    return [
        Protection("unprivileged", dropped and works, who if works else sandbox_detail),
        Protection("filesystem", works, "sees Python, helper_lib (without its checks), the "
                   "models and the data read-only; writes only its scratch folder"
                   if works else sandbox_detail),
        Protection("no network", works, "its own network namespace, loopback only"
                   if works else sandbox_detail),
        Protection("cannot signal the grader", works, "its own PID namespace: no process "
                   "outside is visible" if works else sandbox_detail),
        Protection("time limit", True, f"{timeout:g} s per submission, then the whole sandbox "
                   "is killed"),
        Protection("memory limit", True, f"{memory_mb:,} MB of data per process (RLIMIT_DATA), "
                   "512 MB per written file, no core dumps"),
        Protection("process limit", True, f"{processes} processes and threads per submission, "
                   + ("in a pids cgroup of its own" if pids_cgroup_root() else
                      "by RLIMIT_NPROC (per user: shared by the submissions running at once)")),
    ]


def limits(memory_mb: int, processes: ProcessCap | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that sets the child's resource limits (inherited by everything it
    starts): private memory, file size, core dumps, and with ``processes`` the number of
    processes and threads (:class:`ProcessCap`)."""

    def apply() -> None:
        os.setsid()  # its own session: the grader kills the whole group on timeout
        data = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 2**20, 512 * 2**20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if processes is not None:
            processes.join()

    return apply


def pids_cgroup_root() -> Path | None:
    """A cgroup folder where this process may make a child cgroup with a ``pids`` limit: cgroup
    v1's ``pids`` hierarchy, or a cgroup v2 root that hands the ``pids`` controller down; else
    ``None`` (then :class:`ProcessCap` falls back to ``RLIMIT_NPROC``)."""
    v1, v2 = Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")
    if (v1 / "cgroup.procs").is_file() and os.access(v1, os.W_OK):
        return v1
    try:
        if "pids" in (v2 / "cgroup.subtree_control").read_text().split() and \
                os.access(v2, os.W_OK):
            return v2
    except OSError:
        pass
    return None


class ProcessCap:
    """At most ``max_processes`` processes and threads for one run, so that a fork bomb ends
    that run and the machine notices nothing.

    Where the machine has a pids cgroup (:func:`pids_cgroup_root`), the run gets a cgroup of
    its own with ``pids.max``; leaving the ``with`` block kills what is left in it and removes
    it. Elsewhere the run gets ``RLIMIT_NPROC``, which the kernel counts per user: the
    submissions that run at once as ``nobody`` then share it.
    """

    def __init__(self, max_processes: int = DEFAULT_PROCESSES) -> None:
        self.max_processes = max_processes
        self.path: Path | None = None

    def __enter__(self) -> ProcessCap:
        root = pids_cgroup_root()
        if root is not None:
            try:
                self.path = Path(tempfile.mkdtemp(dir=root, prefix="vae-grade-"))
                (self.path / "pids.max").write_text(str(self.max_processes))
            except OSError:
                self.__exit__()
        return self

    def join(self) -> None:
        """In the child, before it runs the command: enter the cgroup (or set RLIMIT_NPROC)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))
        else:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.max_processes,) * 2)

    def kill_all(self) -> None:
        """Kill every process left in the run's cgroup (nothing without one)."""
        if self.path is None:
            return
        for _ in range(50):  # what is left of the run, whatever it forked
            try:
                left = (self.path / "cgroup.procs").read_text().split()
            except OSError:
                break
            if not left:
                break
            for pid in left:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.path is None:
            return
        self.kill_all()
        try:
            self.path.rmdir()
        except OSError:
            pass
        self.path = None


def _python_roots() -> list[str]:
    roots = {sys.base_prefix, sys.prefix, sys.exec_prefix}
    for p in sys.path:  # site-packages outside the prefix (a user site, say)
        if p and Path(p).is_dir() and "site-packages" in p:
            roots.add(p)
    return sorted(r for r in roots if Path(r).exists())


def _namespaces() -> list[str]:
    """Every namespace but the user one as root (so that setpriv inside can become nobody, a
    real uid of the machine); all of them, the user one included, for anyone else."""
    if os.geteuid() == 0:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try"]
    return ["--unshare-all"]


def sandbox_command(argv: Sequence[str], scratch: Path, lib: Path, datasets: Path | None,
                    pretrained: Path) -> list[str]:
    """The command that runs ``argv`` inside the sandbox.

    bubblewrap sets up the namespaces and the mounts; as root it runs with the grader's rights
    (it reads a Python under ``/root``, say), and ``setpriv`` inside drops to nobody before
    ``argv`` starts, with no capabilities and ``no_new_privs``.

    Args:
        argv: the command inside (paths as the sandbox sees them).
        scratch: the submission's scratch folder, writable, seen at :data:`WORK`.
        lib: a folder holding the sandbox's copy of ``helper_lib``, seen at :data:`LIB`.
        datasets: the MNIST files' folder, read-only at ``/grader/datasets``.
        pretrained: the shipped models, read-only where the copy of helper_lib looks for them.
    """
    bwrap = _bwrap()
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    cmd = [bwrap, *_namespaces(), "--die-with-parent", "--new-session",
           "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(TMP_MB * 2**20), "--tmpfs", "/tmp"]
    binds = [("--ro-bind", root, root) for root in _python_roots()]
    binds += [("--ro-bind", str(lib), LIB)]
    if datasets is not None and datasets.is_dir():
        binds += [("--ro-bind", str(datasets), "/grader/datasets")]
    binds += [("--bind", str(scratch), WORK)]
    made: set[str] = {"/", "/usr", "/etc", "/tmp", "/proc", "/dev"}
    for _, _, dest in binds:  # the folders above each mount point: traversable by nobody
        for parent in reversed(Path(dest).parents):
            if str(parent) not in made:
                made.add(str(parent))
                cmd += ["--perms", "0755", "--dir", str(parent)]
    for flag, source, dest in binds:
        cmd += [flag, source, dest]
        if dest == LIB:  # the models, where the copy of helper_lib looks for them
            cmd += ["--ro-bind", str(pretrained), f"{LIB}/data/pretrained"]
    cmd += ["--chdir", WORK, "--"]
    return cmd + _drop() + list(argv)
