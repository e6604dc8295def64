"""A sandbox for running untrusted notebooks: bubblewrap namespaces, an unprivileged user and
resource limits, without Docker.

:func:`protections` says what this machine offers; :func:`sandbox_command` builds the command
line; :func:`limits` is the ``preexec_fn`` that sets the resource limits in the child, and
:class:`RunCap` caps its processes and CPU. Inside, the process sees the Python installation, a
copy of ``helper_lib`` without its checks, the shipped models and the datasets, all read-only;
it can write only its scratch folder (a tmpfs of a bounded size at :data:`WORK`, which holds a
copy of the submission and vanishes with the sandbox) and a private ``/tmp`` (another); it has
no network (its own network namespace) and its own PID namespace, so it cannot see or signal
any process outside; as root, the grader drops it to ``nobody`` (uid 65534) with no
capabilities and ``no_new_privs``. Nothing inside names the host's folders: the mounts come
from a staging folder of the grader's, bubblewrap reads its own command line from a file
descriptor (so ``/proc/1/cmdline`` shows none of it), and the files of an editable install
that name the clone are hidden.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DATASETS", "DEFAULT_DISK_MB", "DEFAULT_PROCESSES", "LIB", "NOBODY", "TMP_MB", "WORK",
           "ZYGOTE_CAPABILITIES", "Protection", "RunCap", "SandboxCommand", "cgroup_roots",
           "cores_for", "cpu_shared", "hidden_files", "limits", "protections", "sandbox_command"]

#: Where the sandbox sees its scratch folder, the read-only library copy, and the datasets.
WORK = "/grader/work"
LIB = "/grader/lib"
DATASETS = "/grader/datasets"
NOBODY = 65534
#: Processes and threads one submission may have at once (a Jupyter kernel with torch uses a
#: few dozen).
DEFAULT_PROCESSES = 512
#: The size of a submission's scratch folder (a tmpfs: it takes memory, not disk).
DEFAULT_DISK_MB = 512
#: The size of the sandbox's private ``/tmp`` (another tmpfs).
TMP_MB = 256
#: What the zygote (:mod:`~helper_lib.tools.zygote`) keeps of root's capabilities: entering a
#: run's namespaces (``setns``), becoming nobody, emptying the bounding set. Its children drop
#: them all before any runner or kernel starts.
ZYGOTE_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_SETUID", "CAP_SETGID",
                       "CAP_SETPCAP")


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


def protections(timeout: float, memory_mb: int, processes: int = DEFAULT_PROCESSES,
                disk_mb: int = DEFAULT_DISK_MB, jobs: int = 1,
                output_kb: int = 1000) -> list[Protection]:
    """What a sandboxed run gets on this machine, protection by protection. The CPU share is
    missing only where ``jobs`` runs share the machine and there is no cpu cgroup."""
    bwrap = _bwrap()
    works, why = _bwrap_works(bwrap) if bwrap else (False, "bubblewrap (bwrap) is not installed")
    root = os.geteuid() == 0
    dropped = bool(_drop()) if root else True
    who = (f"runs as uid {NOBODY} (nobody), no capabilities, no new privileges" if root and
           dropped else f"runs as uid {os.geteuid()}, not root" if not root else
           "is root: setpriv (util-linux) is missing")
    sandbox_detail = why if not works else ""
    cgroups = cgroup_roots()
    cpu = ("an equal share of the CPU beside the other runs, in a cpu cgroup of its own"
           if "cpu" in cgroups else
           f"{len(cores_for(0, jobs))} of {len(os.sched_getaffinity(0))} cores each, in a "
           "cpuset cgroup of its own" if cpu_shared() else
           "alone on the machine (--jobs 1)" if jobs <= 1 else
           f"no cpuset or cpu cgroup here: {jobs} runs at once could starve each other "
           "(use --jobs 1)")
    inside = [venv for venv in _python_roots() if any(_within(venv, host)
                                                       for host in _host_folders())]
    return [
        Protection("unprivileged", dropped and works, who if works else sandbox_detail),
        Protection("filesystem", works, ("sees Python, helper_lib (without its checks), the "
                   "models and the data read-only, and none of the host's folders" +
                   (f" (but the Python environment lies in {inside[0]}, whose path it sees)"
                    if inside else "") if works else sandbox_detail)),
        Protection("no network", works, "its own network namespace, loopback only"
                   if works else sandbox_detail),
        Protection("cannot signal the grader", works, "its own PID namespace: no process "
                   "outside is visible" if works else sandbox_detail),
        Protection("time limit", True, f"{timeout:g} s per submission, then the whole sandbox "
                   "is killed"),
        Protection("memory limit", True, f"{memory_mb:,} MB of data per process (RLIMIT_DATA), "
                   "512 MB per written file, no core dumps"),
        Protection("disk limit", works, f"a scratch folder of {disk_mb:,} MB and a /tmp of "
                   f"{TMP_MB} MB (tmpfs), private, gone when the run ends"
                   if works else sandbox_detail),
        Protection("process limit", True, f"{processes} processes and threads per submission, "
                   + ("in a pids cgroup of its own" if "pids" in cgroups else
                      "by RLIMIT_NPROC (per user: shared by the submissions running at once)")),
        Protection("CPU share", jobs <= 1 or cpu_shared(), cpu),
        Protection("output", True, f"the last {output_kb:,} kB of its stdout and stderr kept, "
                   "the rest dropped; its result read up to 4.2 MB"),
    ]


def limits(memory_mb: int, cap: RunCap | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that sets the child's resource limits (inherited by everything it
    starts): private memory, file size, core dumps, and with ``cap`` its processes, threads and
    CPU (:class:`RunCap`)."""

    def apply() -> None:
        os.setsid()  # its own session: the grader kills the whole group on timeout
        data = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (data, data))
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 2**20, 512 * 2**20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if cap is not None:
            cap.join()

    return apply


def cgroup_roots() -> dict[str, Path]:
    """The cgroup folders where this process may make a child cgroup, by controller: ``pids``,
    ``cpuset`` and ``cpu`` where the machine has them (cgroup v1's hierarchies, or a cgroup v2
    root that hands those controllers down, then all map to the same folder). Empty where there
    is none (then :class:`RunCap` falls back to ``RLIMIT_NPROC``, and shares no CPU)."""
    found: dict[str, Path] = {}
    for controller in ("pids", "cpuset", "cpu"):
        v1 = Path("/sys/fs/cgroup") / controller
        if (v1 / "cgroup.procs").is_file() and os.access(v1, os.W_OK):
            found[controller] = v1
    v2 = Path("/sys/fs/cgroup")
    try:
        handed_down = (v2 / "cgroup.subtree_control").read_text().split()
    except OSError:
        handed_down = []
    for controller in ("pids", "cpuset", "cpu"):
        if controller not in found and controller in handed_down and os.access(v2, os.W_OK):
            found[controller] = v2
    return found


def cpu_shared() -> bool:
    """Whether :class:`RunCap` can give each run cores of its own (a cpuset or cpu cgroup)."""
    return bool({"cpuset", "cpu"} & set(cgroup_roots()))


def cores_for(slot: int, jobs: int) -> list[int]:
    """The cores that run ``slot`` of ``jobs`` at once gets: an equal share of the cores this
    process may use, at least one, the slots' shares apart where there are enough cores."""
    cores = sorted(os.sched_getaffinity(0))
    each = max(1, len(cores) // max(1, jobs))
    start = (slot * each) % len(cores)
    return (cores * 2)[start:start + each]


class RunCap:
    """Caps on one run: at most ``max_processes`` processes and threads, so that a fork bomb
    ends that run and the machine notices nothing; and with ``cpus`` an equal share of the CPU,
    so that a run spinning on every core leaves its neighbours theirs.

    Where the machine has the cgroup controllers (:func:`cgroup_roots`), the run gets a cgroup
    of its own: ``pids.max``; and a cpu cgroup of the default weight (``cpu.shares`` 1024 in
    v1, ``cpu.weight`` 100 in v2), so that the scheduler shares the CPU equally between the runs
    at once, however many processes each starts, and lets one use what another leaves idle;
    without a cpu controller, a cpuset cgroup confines the run to the cores ``cpus``. Leaving
    the ``with`` block kills what is left in the cgroups and removes them. Unlike a session's
    autogroup or an affinity mask, which a process may leave or widen, a cgroup binds whatever
    the run does. Without a pids cgroup the run gets ``RLIMIT_NPROC``, which the kernel counts
    per user: the submissions that run at once as ``nobody`` then share it. Without either CPU
    controller there is no CPU share (:attr:`cpu_capped` is false).
    """

    def __init__(self, max_processes: int = DEFAULT_PROCESSES,
                 cpus: Sequence[int] | None = None) -> None:
        self.max_processes = max_processes
        self.cpus = list(cpus) if cpus else None
        self.paths: dict[str, Path] = {}  # controller: the run's cgroup folder

    @property
    def path(self) -> Path | None:
        """The run's pids cgroup folder, or ``None``."""
        return self.paths.get("pids")

    @property
    def cpu_capped(self) -> bool:
        return bool({"cpuset", "cpu"} & set(self.paths))

    def __enter__(self) -> RunCap:
        roots = cgroup_roots()
        wanted = ["pids"]
        if self.cpus:
            wanted.append("cpu" if "cpu" in roots else "cpuset")
        made: dict[Path, Path] = {}  # a v2 root serves every controller with one folder
        for controller in (c for c in wanted if c in roots):
            try:
                root = roots[controller]
                if root not in made:
                    made[root] = Path(tempfile.mkdtemp(dir=root, prefix="vae-grade-"))
                folder = self.paths[controller] = made[root]
                self._configure(controller, folder, root)
            except OSError:
                self.paths.pop(controller, None)
        return self

    def _configure(self, controller: str, folder: Path, root: Path) -> None:
        if controller == "pids":
            (folder / "pids.max").write_text(str(self.max_processes))
        elif controller == "cpuset":
            if (folder / "cpuset.mems").exists() and not (folder / "cpuset.mems").read_text(
                    ).strip():  # v1 starts a child empty: it must name the memory nodes too
                (folder / "cpuset.mems").write_text((root / "cpuset.mems").read_text())
            (folder / "cpuset.cpus").write_text(",".join(map(str, self.cpus)))
        elif (folder / "cpu.weight").exists():
            (folder / "cpu.weight").write_text("100")
        else:
            (folder / "cpu.shares").write_text("1024")

    def join(self) -> None:
        """In the child, before it runs the command: enter the cgroups (or set RLIMIT_NPROC)."""
        for folder in dict.fromkeys(self.paths.values()):
            (folder / "cgroup.procs").write_text(str(os.getpid()))
        if "pids" not in self.paths:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.max_processes,) * 2)

    def kill_all(self) -> None:
        """Kill every process left in the run's cgroups (nothing without one)."""
        for folder in dict.fromkeys(self.paths.values()):
            for _ in range(50):  # what is left of the run, whatever it forked
                try:
                    left = (folder / "cgroup.procs").read_text().split()
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
        self.kill_all()
        for folder in dict.fromkeys(self.paths.values()):
            try:
                folder.rmdir()
            except OSError:
                pass
        self.paths = {}


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


def _host_folders() -> list[Path]:
    """The host's folders that nothing inside the sandbox may name: the clone, the datasets'
    folder and the grader's working directory (``/`` left out: it names nothing)."""
    from ..assets.datasets import resolve_data_root
    from ..assets.project import CLONE_ROOT

    folders = [Path.cwd(), resolve_data_root(), *([CLONE_ROOT] if CLONE_ROOT else [])]
    return [f for f in dict.fromkeys(p.resolve() for p in folders) if f != Path("/")]


def _within(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder)


def hidden_files(roots: Sequence[str] | None = None,
                 folders: Sequence[Path] | None = None) -> list[str]:
    """The files of the mounted Python installation that the sandbox shows empty, because they
    name the host's folders (:func:`_host_folders`): an editable install's finder (and its
    compiled copy), ``.pth`` and ``.egg-link`` files and ``direct_url.json`` records that name
    one of ``folders``. The sandbox runs its own copy of helper_lib, so it needs none of them."""
    folders = _host_folders() if folders is None else folders
    needles = [str(f).encode() for f in folders]
    found = []
    for site in {p for p in sys.path if p and "-packages" in p and Path(p).is_dir()}:
        if roots is not None and not any(_within(site, Path(r)) for r in roots):
            continue
        candidates = [*Path(site).glob("__editable__*"), *Path(site).glob("*.pth"),
                      *Path(site).glob("*.egg-link"), *Path(site).glob("__pycache__/__editable__*"),
                      *Path(site).glob("*.dist-info/direct_url.json")]
        for path in candidates:
            try:
                if path.is_file() and (path.name.startswith("__editable__") or
                                       any(n in path.read_bytes() for n in needles)):
                    found.append(str(path))
            except OSError:
                continue
    return sorted(set(found))


@dataclass
class SandboxCommand:
    """bubblewrap's command line, and the file descriptors it reads (its arguments, the files
    it copies into the scratch folder): pass them to ``subprocess.Popen(pass_fds=...)``, and
    :meth:`close` them once it has started."""

    cmd: list[str]
    pass_fds: tuple[int, ...]

    def close(self) -> None:
        for fd in self.pass_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.pass_fds = ()


def _memfd(name: str, data: bytes) -> int:
    """A file in memory holding ``data``, read from its start (what bubblewrap copies)."""
    fd = os.memfd_create(name)  # close-on-exec: only pass_fds hands it on
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def sandbox_command(argv: Sequence[str], files: Mapping[str, bytes] | None, lib: Path,
                    datasets: Path | None, pretrained: Path,
                    disk_mb: int = DEFAULT_DISK_MB,
                    hidden: Sequence[str] | None = None,
                    info_fd: int | None = None,
                    zygote: bool = False) -> SandboxCommand:
    """The command that runs ``argv`` inside the sandbox.

    bubblewrap sets up the namespaces and the mounts; as root it runs with the grader's rights
    (it reads a Python under ``/root``, say), and ``setpriv`` inside drops to nobody before
    ``argv`` starts, with no capabilities and ``no_new_privs``. bubblewrap reads its options
    from a file descriptor, so the sandbox's ``/proc/1/cmdline`` shows none of the host's paths
    (only ``argv``).

    Args:
        argv: the command inside (paths as the sandbox sees them).
        files: what the scratch folder starts with, ``{path relative to WORK: content}`` (the
            submission, say); the scratch folder is a tmpfs of ``disk_mb`` MB at :data:`WORK`,
            writable by the submission, and gone when the sandbox ends.
        lib: a folder holding the sandbox's copy of ``helper_lib``, seen at :data:`LIB`.
        datasets: the datasets' folder, read-only at :data:`DATASETS`.
        pretrained: the shipped models, read-only where the copy of helper_lib looks for them.
        hidden: the files shown empty, :func:`hidden_files` of the mounted Python (found here
            where not given; a grader passes the list it found once for the whole class).

        info_fd: bubblewrap writes ``{"child-pid": ...}`` here (the sandbox's first process,
            as the host sees it), a descriptor to pass on.
        zygote: the sandbox of :mod:`~helper_lib.tools.zygote` instead: ``files`` is ``None``
            (no scratch folder: nothing in it is writable but a small private ``/tmp``), it
            stays in the host's PID namespace, sees the machine's cgroups, and ``argv`` runs as
            root with :data:`ZYGOTE_CAPABILITIES` only, which it needs to
            enter the runs' sandboxes (it runs no submission's code).

    The mounted folders ``lib``, ``datasets`` and ``pretrained`` show their host paths in the
    sandbox's ``/proc/self/mountinfo``: the grader keeps them in a staging folder of its own.
    """
    bwrap = _bwrap()
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    if zygote:
        if os.geteuid() != 0:
            raise RuntimeError("the zygote needs root (to enter the runs' sandboxes)")
        # as root, bubblewrap would leave it all of root's capabilities: drop them, then add
        args = ["--unshare-ipc", "--unshare-net", "--unshare-uts", "--cap-drop", "ALL"]
        for cap in ZYGOTE_CAPABILITIES:
            args += ["--cap-add", cap]
    else:
        args = list(_namespaces())
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    args += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "lib", "lib64", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(TMP_MB * 2**20), "--tmpfs", "/tmp"]
    roots = _python_roots()
    binds = [("--ro-bind", root, root) for root in roots]
    fds = []
    for path in hidden_files(roots) if hidden is None else hidden:  # an empty file in its place
        fds.append(_memfd("hidden", b""))
        binds += [("--ro-bind-data", str(fds[-1]), path)]
    binds += [("--ro-bind", str(lib), LIB), ("--ro-bind", str(pretrained),
                                             f"{LIB}/data/pretrained")]
    if datasets is not None and datasets.is_dir():
        binds += [("--ro-bind", str(datasets), DATASETS)]
    made: set[str] = {"/", "/usr", "/etc", "/tmp", "/proc", "/dev", *roots}
    for _, _, dest in binds:  # the folders above each mount point: traversable by nobody
        for parent in reversed(Path(dest).parents):
            if str(parent) not in made and not any(_within(parent, Path(r)) for r in roots):
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
    for flag, source, dest in binds:
        args += ([flag, source, dest] if flag != "--ro-bind-data" else
                 ["--perms", "0644", flag, source, dest])
    if zygote:
        if Path("/sys/fs/cgroup").is_dir():  # where its children join their runs' cgroups
            args += ["--bind", "/sys/fs/cgroup", "/sys/fs/cgroup"]
        args += ["--chdir", "/"]
        fds.append(_memfd("bwrap-args", b"".join(a.encode() + b"\0" for a in args)))
        return SandboxCommand([bwrap, "--args", str(fds[-1]), "--", *argv], tuple(fds))
    args += ["--perms", "1777", "--size", str(disk_mb * 2**20), "--tmpfs", WORK]
    for name, data in sorted((files or {}).items()):
        dest = Path(WORK) / name
        for parent in reversed(dest.parents):
            if str(parent) not in made and _within(parent, Path(WORK)) and parent != Path(WORK):
                made.add(str(parent))
                args += ["--perms", "0777", "--dir", str(parent)]
        fds.append(_memfd(name, data))
        args += ["--perms", "0644", "--file", str(fds[-1]), str(dest)]
    args += ["--chdir", WORK]
    fds.append(_memfd("bwrap-args", b"".join(a.encode() + b"\0" for a in args)))
    return SandboxCommand([bwrap, "--args", str(fds[-1]), "--", *_drop(), *argv], tuple(fds))
