"""Inside the sandbox: execute one submission and write its answers as JSON.

``python -m helper_lib.tools.grading_run SUBMISSION NOTEBOOK SECONDS OUT`` runs the submission from
scratch (its stored outputs are dropped) with nbclient, cell by cell, each cell limited to what
is left of the time budget; a cell that fails or runs out of time is recorded and the next one
runs. Then one more cell harvests the answers (:func:`helper_lib.tools.exercises.harvest`) into
``OUT``. Everything here runs beside the untrusted kernel, so the grader treats ``OUT`` as
untrusted data: it reads at most a few MB of it, and scores it itself.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

#: The last cell: loads exercises.py afresh from the read-only library (a submission that patched
#: the imported helper_lib.tools.exercises, or redefined check, changes nothing) and writes the
#: answers.
HARVEST = ("import importlib.util as _util, sys as _sys\n"
           "_spec = _util.spec_from_file_location('_vae_harvest', {module!r})\n"
           "_harvest = _sys.modules['_vae_harvest'] = _util.module_from_spec(_spec)\n"
           "_spec.loader.exec_module(_harvest)\n"
           "with open({out!r}, 'w') as _f:\n"
           "    _f.write(_harvest.harvest(globals(), {notebook!r}))")


def main(argv: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    submission, notebook, seconds, out = argv[0], argv[1], float(argv[2]), argv[3]
    deadline = time.monotonic() + seconds - 10  # keep time for the harvest
    nb = nbformat.read(submission, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    answers_file = str(Path(out).with_suffix(".answers.json"))
    module = str(Path(__file__).resolve().parent / "exercises.py")
    nb.cells.append(nbformat.v4.new_code_cell(HARVEST.format(module=module, out=answers_file,
                                                             notebook=notebook)))
    harvest_index = len(nb.cells) - 1

    def timeout(cell: object) -> int:
        if cell is nb.cells[harvest_index]:
            return 8
        return max(1, int(deadline - time.monotonic()))

    client = NotebookClient(nb, timeout_func=timeout, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", resources={"metadata": {"path": "."}})
    errors: list[dict[str, object]] = []
    result: dict[str, object] = {"errors": errors, "dead_kernel": False}
    try:
        client.execute()
    except DeadKernelError as err:
        result["dead_kernel"] = str(err)[:300]
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and len(errors) < 20:
                errors.append({"cell": index, "error": f"{output.get('ename')}: "
                                                       f"{str(output.get('evalue'))[:200]}"})
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
