"""Inside the sandbox: execute one submission and send back its answers.

``python grading_run.py SUBMISSION NOTEBOOK SECONDS RESULT_FD`` runs the submission from
scratch (its stored outputs are dropped) with nbclient, cell by cell, each cell limited to what
is left of the time budget; a cell that fails or runs out of time is recorded and the next one
runs. Then one more cell harvests the answers (:func:`helper_lib.tools.exercises.harvest`) and
shows them as display data of its own type (:data:`MIME`), which reach this process over the
kernel's messages. Nothing goes through a file: the result is written to the file descriptor
``RESULT_FD``, a pipe to the grader that no process but this one holds, in two parts:

    {"errors": [...], "dead_kernel": false}\\n<the answers' JSON text>

This process makes itself non-dumpable first, so the kernel, which runs as the same user,
cannot open its file descriptors through ``/proc``. Everything here runs beside the untrusted
kernel all the same, so the grader reads a bounded amount of the pipe, and scores it itself.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

#: The display-data type that carries the harvested answers out of the kernel.
MIME = "application/vnd.helper-lib.answers+json"

#: The last cell: loads exercises.py afresh from the read-only library (a submission that patched
#: the imported helper_lib.tools.exercises, or redefined check, changes nothing) and shows the
#: answers as display data.
HARVEST = ("import importlib.util as _util, sys as _sys\n"
           "from IPython.display import publish_display_data as _publish\n"
           "_spec = _util.spec_from_file_location('_vae_harvest', {module!r})\n"
           "_harvest = _sys.modules['_vae_harvest'] = _util.module_from_spec(_spec)\n"
           "_spec.loader.exec_module(_harvest)\n"
           "_publish({{{mime!r}: _harvest.harvest(globals(), {notebook!r})}})")


def _not_dumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)``: ``/proc/<this process>`` then belongs to root, and no
    process of the same user (the kernel) can open this one's file descriptors."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def skip_unused_iri_checker() -> None:
    """Keep jsonschema from importing ``rfc3987_syntax``, before nbformat is imported.

    jsonschema (which nbformat validates with) imports that optional checker of the ``iri``
    formats eagerly, and it builds about 35 Lark parsers as it does: ``import nbformat, nbclient``
    takes 1.7 s with it and 0.4 s without (AMD EPYC; jsonschema issue #1428). No notebook
    schema uses those formats, and jsonschema skips a checker whose import fails. Every graded
    run pays the import once (docs/grading.md)."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:  # the grader stopped reading: the result was too large
        pass


def main(argv: list[str], km: object = None) -> int:
    """Run the submission; ``km``: the kernel manager of a kernel forked already (the
    zygote's, :func:`helper_lib.tools.zygote.start_kernel_first`), else nbclient starts one."""
    submission, notebook, seconds, result_fd = argv[0], argv[1], float(argv[2]), int(argv[3])
    _not_dumpable()
    os.set_inheritable(result_fd, False)  # the kernel, and anything it starts, never gets it
    skip_unused_iri_checker()
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    deadline = time.monotonic() + seconds - 10  # keep time for the harvest
    nb = nbformat.read(submission, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    module = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exercises.py")
    nb.cells.append(nbformat.v4.new_code_cell(HARVEST.format(module=module, mime=MIME,
                                                             notebook=notebook)))
    harvest = nb.cells[-1]

    def timeout(cell: object) -> int:
        if cell is harvest:
            return 8
        return max(1, int(deadline - time.monotonic()))

    client = NotebookClient(nb, km=km, timeout_func=timeout, allow_errors=True,
                            interrupt_on_timeout=True, kernel_name="python3",
                            resources={"metadata": {"path": "."}})
    errors: list[dict[str, object]] = []
    result: dict[str, object] = {"errors": errors, "dead_kernel": False}
    try:
        client.execute()
    except DeadKernelError as err:
        result["dead_kernel"] = str(err)[:300]
    except Exception as err:  # nbclient itself failed: say so, and send what there is
        result["failed"] = f"{type(err).__name__}: {err}"[:300]
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and len(errors) < 20:
                errors.append({"cell": index, "error": f"{output.get('ename')}: "
                                                       f"{str(output.get('evalue'))[:200]}"})
    answers = [o["data"][MIME] for o in harvest.get("outputs", [])
               if o.get("output_type") == "display_data" and isinstance(o.get("data"), dict)
               and isinstance(o["data"].get(MIME), str)]
    _send(result_fd, json.dumps(result).encode() + b"\n" + (answers[-1].encode() if answers
                                                            else b""))
    os.close(result_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
