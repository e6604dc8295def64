"""Inside a sandbox of its own: a process that has imported torch, helper_lib and Jupyter's
kernel once, and forks a fresh child for each submission (docs/grading.md, "A process per
submission, forked from a zygote").

Each run of a submission starts Python, nbclient and a kernel that imports torch: most of a
short notebook's run (notebook 03 takes 4.9 s alone, and 1.8 s forked from here, on the 2-core
AMD EPYC). This process pays that once. The grader starts it in a bubblewrap sandbox with the
runs' read-only mounts and no scratch folder, as root with the few capabilities it needs to
enter another sandbox (:data:`~helper_lib.tools.sandbox.ZYGOTE_CAPABILITIES`), and sends it a
request per submission over a socket: the run's own sandbox (bubblewrap made it, with the
submission's scratch folder; a process in it holds it open) as its namespaces' files, and the
pipes for the run's output and result. For each request it forks a child that

1. joins the run's cgroups and sets its resource limits,
2. enters every namespace of the run's sandbox (``setns``: mounts, PIDs, network, IPC, UTS,
   cgroup), then forks once more so that the child is inside the run's PID namespace,
3. becomes ``nobody`` with no capabilities (bounding, ambient and inheritable sets emptied)
   and ``no_new_privs``, checks all of it in ``/proc/self/status``, and stops if anything is
   not as it must be,
4. forks the kernel (:func:`_kernel`), then runs :mod:`grading_run` against it as the runner.

No submission's code ever runs in this process, and every child is forked from it, so each
submission gets a process that no earlier one touched: what a submission changes (a global,
a patched module, torch's settings, a file) lives in its own copy of memory and in its own
sandbox, and is gone with them. The process reads only what the grader sends over the socket.
"""

from __future__ import annotations

import array
import asyncio
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from .sandbox import NOBODY, ZYGOTE_CAPABILITIES, RunCap, limits

#: One request: its JSON text, and the file descriptors that come with it.
MAX_REQUEST = 1 << 16
_CLONE = {"mnt": 0x00020000, "cgroup": 0x02000000, "uts": 0x04000000, "ipc": 0x08000000,
          "pid": 0x20000000, "net": 0x40000000}
#: The descriptors of a request, in order: the run sandbox's namespaces (``/proc/PID/ns/*``,
#: opened by the grader), and its pipes.
FDS = (*_CLONE, "alive", "log", "result")
#: What the zygote's child writes to the run's result pipe (and log) when it could not start
#: the run, before any code of the submission ran: the grader then runs the submission from
#: scratch. A runner's result starts with ``{``, so no submission can fake it.
ZYGOTE_FAILED = "zygote: the run could not start:"

_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 4, 24, 38, 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), f"prctl({option})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _bound(keep: set[int]) -> None:
    """Empty the bounding set of every capability but ``keep`` (numbers; needs CAP_SETPCAP)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in set(range(last + 1)) - keep:
        _prctl(_PR_CAPBSET_DROP, cap)


def _hold(keep: set[int]) -> None:
    """Hold the capabilities ``keep`` (numbers) as permitted and effective, none inheritable
    and none ambient."""
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # version 3: two words
    data[0].effective = data[0].permitted = sum(1 << cap for cap in keep)  # all below 32
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def enter(fds: dict[str, int]) -> None:
    """Enter the run sandbox's namespaces, ``fds[name]`` each (a ``/proc/PID/ns/<name>`` file,
    checked to be of that kind); the PID namespace holds for this process's children. The
    grader opens the files, which needs the right to read the holder (``CAP_SYS_PTRACE`` for
    root and a process of nobody): the zygote needs no such right."""
    for name, flag in _CLONE.items():
        _check(_libc.setns(fds[name], flag), f"setns({name})")
        os.close(fds[name])


def drop_privileges() -> None:
    """Become ``nobody`` with no groups, no capabilities and ``no_new_privs``, as ``setpriv
    --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all
    --no-new-privs`` does; then check it (:func:`unprivileged`) and raise if it did not hold."""
    _bound(set())  # while root still has CAP_SETPCAP
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)  # empties the permitted and effective sets
    _hold(set())
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    wrong = unprivileged()
    if wrong:
        raise PermissionError("the run would keep privileges: " + "; ".join(wrong))


def unprivileged(status: str | None = None) -> list[str]:
    """What in ``/proc/self/status`` (or ``status``) is not as an unprivileged run needs it:
    every uid and gid ``nobody``, no supplementary groups, no capability in any set,
    ``no_new_privs``. Empty when all holds."""
    if status is None:
        with open("/proc/self/status") as f:
            status = f.read()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    want = {"Uid": " ".join([str(NOBODY)] * 4), "Gid": " ".join([str(NOBODY)] * 4),
            "Groups": "", "CapInh": "0" * 16, "CapPrm": "0" * 16, "CapEff": "0" * 16,
            "CapBnd": "0" * 16, "CapAmb": "0" * 16, "NoNewPrivs": "1"}
    return [f"{key} is {' '.join(fields.get(key, '(missing)').split())!r}"
            for key, value in want.items() if " ".join(fields.get(key, "?").split()) != value]


class _ForkedProcess:
    """What jupyter_client's provisioner needs of a ``Popen``, for a child that was forked."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            except ChildProcessError:
                self.returncode = -1
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel was forked already (:func:`start_kernel_first`): starting
    it hands jupyter_client that process instead of launching a new one."""

    forked: _ForkedProcess | None = None

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        assert self.provisioner is not None and self.forked is not None
        self.provisioner.process = self.forked  # type: ignore[attr-defined]
        self.provisioner.pid = self.forked.pid  # type: ignore[attr-defined]
        self.provisioner.pgid = os.getpgid(self.forked.pid)  # type: ignore[attr-defined]
        self._reconcile_connection_info(self.provisioner.connection_info)


def start_kernel_first(keep: Sequence[int] = ()) -> ForkedKernelManager:
    """Fork this process into an IPython kernel before anything else runs here (so there is no
    event loop or ZeroMQ context to share), and return the manager that the runner's nbclient
    "starts" it with. ``keep``: descriptors that this process keeps and the kernel must not
    hold (the result pipe); the kernel closes them first."""
    # The ports and key are chosen here and read by the kernel, so jupyter_client must not
    # choose others when it "starts" it (its port cache; Curve keys, off as for a new kernel).
    km = ForkedKernelManager(kernel_name="python3", cache_ports=False)
    if km.has_trait("transport_encryption"):
        km.transport_encryption = "disabled"
    km.write_connection_file()
    pid = os.fork()
    if pid == 0:
        _kernel(km.connection_file, keep)
    km.forked = _ForkedProcess(pid)
    return km


def _kernel(connection_file: str, close: Sequence[int]) -> None:
    """The forked kernel: as ``python -m ipykernel_launcher -f FILE`` would run, in this process."""
    code = 1
    try:
        for fd in close:
            os.close(fd)
        _prctl(_PR_SET_DUMPABLE, 1)  # as an exec'd kernel is; the runner stays not dumpable
        if sys.path and sys.path[0] == "":  # ipykernel_launcher's start; IPython puts it back
            del sys.path[0]
        # as jupyter_client launches a kernel: it watches its parent, the runner, and ends
        # with it (ipykernel read its default when the zygote imported it: pass it on)
        os.environ["JPY_PARENT_PID"] = str(os.getppid())
        argv = ["-f", connection_file, f"--IPKernelApp.parent_handle={os.getppid()}"]
        sys.argv = ["ipykernel_launcher", *argv]
        asyncio.set_event_loop(asyncio.new_event_loop())
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=argv)
        code = 0
    except BaseException:  # noqa: BLE001 - the kernel's end, whatever it was
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(request: dict[str, Any], fds: dict[str, int]) -> None:
    """The forked child of one request (it never returns): see the module's text."""
    code, started = 70, False
    try:
        os.dup2(fds["log"], 1)
        os.dup2(fds["log"], 2)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        cap = RunCap(int(request["processes"]))  # the run's, made by the grader: joined here
        cap.paths = {controller: Path(folder) for controller, folder in request["cgroups"].items()}
        limits(int(request["memory_mb"]), cap)()  # a session, rlimits, the cgroups
        enter(fds)
        os.chdir(request["cwd"])
        child = os.fork()  # the first process of this run inside its PID namespace
        if child:
            os.close(fds["result"])
            code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
            return
        os.close(fds["alive"])  # the sandbox lasts as long as the parent above, not longer
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        keep = {0, 1, 2, fds["result"]}
        for fd in map(int, os.listdir("/proc/self/fd")):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        drop_privileges()
        os.environ.clear()
        os.environ.update(request["env"])
        from . import grading_run

        km = start_kernel_first(keep=[fds["result"]])
        started = True  # from here on the submission's code runs
        code = grading_run.main([*request["argv"], str(fds["result"])], km)
    except BaseException as err:  # noqa: BLE001 - said on the run's log, and the run ends
        said = f"{ZYGOTE_FAILED} {type(err).__name__}: {err}\n".encode()
        for fd in (2, fds["result"]) if not started else (2,):
            try:
                os.write(fd, said)
            except OSError:
                pass
    finally:
        os._exit(code)


def _receive(sock: socket.socket) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The next request, or ``None`` when the grader has closed the socket."""
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(len(FDS) * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    if len(fds) != len(FDS):
        for fd in fds:
            os.close(fd)
        raise ValueError(f"a request came with {len(fds)} file descriptors, not {len(FDS)}")
    return json.loads(data), dict(zip(FDS, fds, strict=True))


#: The numbers of :data:`~helper_lib.tools.sandbox.ZYGOTE_CAPABILITIES` (linux/capability.h).
_CAP_NUMBERS = {"CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_SYS_CHROOT": 18,
                "CAP_SYS_ADMIN": 21}


def main(control_fd: int) -> int:
    """Serve the grader's requests on ``control_fd`` until it closes it. First the zygote keeps
    its own capabilities only: bubblewrap leaves the bounding set whole, and puts them in the
    inheritable and ambient sets too, which nothing here needs."""
    keep = {_CAP_NUMBERS[name] for name in ZYGOTE_CAPABILITIES}
    _bound(keep)
    _hold(keep)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the children are reaped as they end
    sock = socket.socket(fileno=control_fd)
    sock.sendall(b"ready")
    while True:
        received = _receive(sock)
        if received is None:
            return 0
        request, fds = received
        if os.fork() == 0:
            sock.close()
            _run(request, fds)
        for fd in fds.values():
            os.close(fd)


def preload() -> None:
    """What every run would import: the runner's nbclient, the kernel, torch and helper_lib."""
    from .grading_run import skip_unused_iri_checker

    skip_unused_iri_checker()
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import nbclient  # noqa: F401
    import nbformat  # noqa: F401
    import torch  # noqa: F401

    import helper_lib  # noqa: F401
    import helper_lib.utils  # noqa: F401


if __name__ == "__main__":
    preload()
    sys.exit(main(int(sys.argv[1])))


# The grader's end ---------------------------------------------------------------------------

#: The process that holds a run's sandbox open: not dumpable (nothing in the sandbox may open
#: its descriptors), it says it is running (a byte on ``ready``), then waits for its stdin to
#: end, which happens when the zygote's child for the run ends.
HOLDER = ("import ctypes, os; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); os.write({ready}, b'.'); "
          "os.close({ready}); os.read(0, 1)")


class ZygoteError(RuntimeError):
    """The zygote could not start, or could not take a run (the run then starts from scratch)."""


class Zygote:
    """The grader's end of a zygote: start it (``launch``: its sandbox's command,
    :func:`~helper_lib.tools.sandbox.sandbox_command` with ``zygote=True``, whose ``argv`` runs
    :func:`main` on ``control_fd``, the other end of ``control``), then :meth:`hand_over` each
    run's sandbox to it, and :meth:`close` it."""

    def __init__(self, launch: Any, env: dict[str, str], control: socket.socket,
                 control_fd: int, timeout: float = 120) -> None:
        self._lock = threading.Lock()
        self._errors = tempfile.TemporaryFile()
        self.sock = control
        self.proc = subprocess.Popen(launch.cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._errors, stderr=subprocess.STDOUT,
                                     pass_fds=(*launch.pass_fds, control_fd),
                                     start_new_session=True)
        launch.close()
        self.sock.settimeout(timeout)
        try:
            ready = self.sock.recv(16)
        except OSError as err:
            ready = f"{err}".encode()
        if ready != b"ready":
            self.close()
            raise ZygoteError(f"the zygote did not start: {self.errors() or ready!r}")
        self.sock.settimeout(None)

    def errors(self) -> str:
        """The last lines of what the zygote wrote (empty while it works)."""
        self._errors.seek(0)
        lines = self._errors.read()[-4000:].decode("utf-8", "replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def hand_over(self, request: dict[str, Any], sandbox_pid: int, alive: int, log: int,
                  result: int) -> None:
        """Ask the zygote to run ``request`` in the namespaces of ``sandbox_pid`` (the holder);
        the descriptors are sent, not closed."""
        if self.proc.poll() is not None:
            raise ZygoteError(f"the zygote has ended: {self.errors()}")
        namespaces: list[int] = []
        try:
            for name in _CLONE:
                namespaces.append(os.open(f"/proc/{sandbox_pid}/ns/{name}",
                                          os.O_RDONLY | os.O_CLOEXEC))
            fds = array.array("i", [*namespaces, alive, log, result])
            with self._lock:
                self.sock.sendmsg([json.dumps(request).encode()],
                                  [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as err:
            raise ZygoteError(f"the zygote took no run: {err}") from None
        finally:
            for fd in namespaces:
                os.close(fd)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - it is stopped either way
            self.proc.kill()
            self.proc.wait()
        self._errors.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def holder_pid(info: int, ready: int, timeout: float = 30) -> int:
    """The host's pid of a run sandbox's holder (:data:`HOLDER`), once it is running: bubblewrap
    writes its first process's pid to ``info``; the holder is that process's one child."""
    try:
        text = b""
        while select.select([info], [], [], timeout)[0]:
            chunk = os.read(info, 4096)
            if not chunk:
                break
            text += chunk
            if text.rstrip().endswith(b"}"):
                break
        first = int(json.loads(text)["child-pid"])
        if not select.select([ready], [], [], timeout)[0] or os.read(ready, 1) != b".":
            raise ZygoteError("the run's sandbox did not start")
        with open(f"/proc/{first}/task/{first}/children") as f:
            children = f.read().split()
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ZygoteError(f"the run's sandbox did not start: {err}") from None
    if len(children) != 1:
        raise ZygoteError(f"the run's sandbox has {len(children)} processes, not one")
    return int(children[0])
