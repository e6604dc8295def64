"""Full-mode execution of every notebook (pretrained checkpoints). Slow: ``pytest -m slow``."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_full_mode(path, monkeypatch):
    monkeypatch.setenv("VAE_SMOKE", "0")
    # The root conftest sets MPLBACKEND=Agg for the test process; a kernel with Agg draws
    # figures but never displays them. Let the kernel pick its inline backend, as for a student.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "figures are drawn"
    from helper_lib.tools.accessibility import figure_problems, unbacked_alt_numbers

    assert figure_problems(nb) == [], "every figure says what it shows (issue #34)"
    assert unbacked_alt_numbers(nb) == [], "an output prints every number of every alt text"
