"""The course as a static site, built offline: executed pages, reveal.js slides, handouts.

``python -m helper_lib book --out build/site`` runs :func:`build_site`:

1. every notebook in ``notebooks/`` is executed with nbclient, in full mode (the shipped
   models) or, with ``VAE_SMOKE=1`` / ``--smoke``, in smoke mode;
2. each becomes one HTML page (nbconvert's JupyterLab template with a navigation bar; the
   cells tagged ``solution`` closed in ``<details>``) and one reveal.js slide deck (from the
   cells' slide metadata; ``?print-pdf`` lays it out for printing);
3. each also becomes a student copy without the solutions and without outputs, in
   ``handouts/``;
4. ``index.html`` is the README, with the links to notebooks pointing at their pages.

Nothing is fetched from the network, at build time or when the pages are read: MathJax 2.7
comes from the ``jupyter-server-mathjax`` package and reveal.js 5 from ``sphinx-revealjs``
(both from ``requirements.txt``) and are copied into ``_static/``; require.js, jQuery, the
widget manager and mermaid, which nbconvert's templates load from CDNs, are left out. Widgets
are shown as their static PNG fallback. See ``docs/site.md``.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from ..assets.project import REPO_ROOT, VERSION, binder_url, colab_url, launch_links
from ..utils import smoke_mode
from .prose_numbers import Unbacked, format_unbacked, unbacked_numbers

__all__ = ["BookError", "SiteReport", "asset_folders", "notebook_title",
           "execute_notebook", "build_site"]

TEMPLATES = Path(__file__).resolve().parent / "book_templates"
#: A file that marks a folder as written by :func:`build_site`, so a rebuild may empty it.
MARKER = ".vae-site"
#: The pygments style of the code on the pages and slides (accessible-pygments, WCAG AAA).
CODE_STYLE = "a11y-high-contrast-light"
SITE_TITLE = "Variational autoencoders, lecture by lecture"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class BookError(RuntimeError):
    """The site cannot be built (a missing package, a failing notebook, an unsafe --out)."""


@dataclass
class SiteReport:
    """What :func:`build_site` wrote: the folder, the pages and the seconds per notebook."""

    out: Path
    pages: list[str] = field(default_factory=list)
    slides: list[str] = field(default_factory=list)
    handouts: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    smoke: bool = False
    #: full-mode builds: the prose numbers no output backs (:mod:`helper_lib.tools.prose_numbers`)
    unbacked: list[Unbacked] = field(default_factory=list)
    #: executed builds: the figures that do not say what they show, ``"name, cell N: why"``
    #: (:func:`helper_lib.tools.accessibility.figure_problems`)
    mute_figures: list[str] = field(default_factory=list)
    #: full-mode builds: alt texts' numbers that no output prints
    #: (:func:`helper_lib.tools.accessibility.unbacked_alt_numbers`)
    alt_numbers: list[str] = field(default_factory=list)


def asset_folders() -> dict[str, Path]:
    """The folders of MathJax and reveal.js inside their pip packages (and a check that the
    code style, :data:`CODE_STYLE`, is installed).

    Raises:
        BookError: a package is missing, with the command that installs it.
    """
    try:
        import jupyter_server_mathjax
        import sphinx_revealjs
    except ImportError as err:
        raise BookError(f"{err.name} is missing; the site needs it for offline MathJax and "
                        f"reveal.js: pip install -r requirements.txt") from None
    found = {
        "mathjax": Path(jupyter_server_mathjax.__file__).parent / "static",
        "reveal.js": Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs",
    }
    for name, folder in found.items():
        if not folder.is_dir():
            raise BookError(f"{name} not found in {folder}; reinstall its package")
    from pygments.styles import get_style_by_name
    from pygments.util import ClassNotFound

    try:
        get_style_by_name(CODE_STYLE)
    except ClassNotFound:
        raise BookError(f"the code style {CODE_STYLE!r} is missing: pip install "
                        "accessible-pygments (or pip install -r requirements.txt)") from None
    return found


#: A level-1 Markdown heading with text: ``# text`` on a line of its own (indented by at most
#: three spaces, as CommonMark allows).
_HEADING = re.compile(r"^ {0,3}#[ \t]+(\S.*)$", flags=re.MULTILINE)


def notebook_title(nb: Mapping[str, Any], fallback: str = "") -> str:
    """The notebook's title: the text of the first ``# heading`` line in its Markdown cells,
    else ``fallback``.

    The one rule for a title: the site's pages and navigation show it, and the grader
    (:func:`helper_lib.tools.grading.recognise`) recognises a course notebook by it when its
    metadata does not say. Safe on any JSON: cells that are not Markdown cells with text are
    skipped.
    """
    cells = nb.get("cells")
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source")
        match = _HEADING.search(source) if isinstance(source, str) else None
        if match:
            return match.group(1).strip()
    return fallback


def _drop_widget_views(nb: nbformat.NotebookNode) -> None:
    """Keep widget outputs' static fallbacks (PNG, text) and drop the live view, whose
    JavaScript would come from a CDN; drop the saved widget state too."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data is not None and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if set(data) <= {"text/plain"}:
                    continue  # nothing but the widget's text repr is left
            outputs.append(out)
        if "outputs" in cell:
            cell.outputs = outputs


def _live_explorers(executed: list[tuple[str, str, nbformat.NotebookNode]], out: Path,
                    log: Callable[[str], None]) -> None:
    """The notebooks' latent explorers, live on the pages and slides where the models are
    shipped ones (:mod:`helper_lib.tools.site_explorer`); the static pictures stay otherwise."""
    from .site_explorer import RuntimeMissing, explorer_outputs, make_live, write_runtime

    wanted = [name for name, _, nb in executed if explorer_outputs(nb)]
    live = bool(wanted)
    if live:
        log(f"live explorers ({', '.join(wanted)}): exporting the models to ONNX")
        try:
            size = write_runtime(out / "_static" / "explorer", log)
            log(f"live explorers: {size / 1e6:.1f} MB in _static/explorer/")
        except RuntimeMissing as err:
            log(f"live explorers: off, the pages keep the static pictures ({err})")
            live = False
    for _, _, nb in executed:
        make_live(nb, live)


def execute_notebook(path: Path, timeout: int = 600, smoke: bool = False) -> nbformat.NotebookNode:
    """Run ``path`` top to bottom in a fresh kernel whose working folder is the notebook's.

    Raises:
        BookError: a cell failed; the message names the notebook and shows the error.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    # The inline backend, as in Jupyter: an inherited MPLBACKEND=Agg (pytest's, say) would leave
    # every figure as the text "<Figure size ...>".
    env = dict(os.environ, VAE_SMOKE="1" if smoke else "0",
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            store_widget_state=False)
    try:
        # The kernel's own stderr only repeats ipykernel's warning about its local TCP socket;
        # errors in cells reach us through the protocol, a dead kernel as DeadKernelError.
        client.execute(env=env, stderr=subprocess.DEVNULL)
    except CellExecutionError as err:
        raise BookError(f"{path.name} failed while building the site:\n{err}") from None
    _drop_widget_views(nb)
    return nb


def _readme_notebook(readme: Path, names: Sequence[str], table: str) -> nbformat.NotebookNode:
    """The README as a one-cell notebook for the index page, its notebook links retargeted."""
    text = readme.read_text(encoding="utf-8")
    if text.startswith("# "):  # the contents table carries the title already
        text = text.split("\n", 1)[1] if "\n" in text else ""
    for name in names:
        text = text.replace(f"(notebooks/{name}.ipynb)", f"({name}.html)")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(table), nbformat.v4.new_markdown_cell(text)]
    nb.metadata["title"] = SITE_TITLE
    return nb


def _contents_table(entries: Sequence[tuple[str, str]], smoke: bool) -> str:
    mode = ("**smoke mode** (a few hundred images, rough models: for checking the build)"
            if smoke else "full mode, with the shipped models of `data/pretrained/`")
    rows = "\n".join(f"| [{html.escape(title)}]({name}.html) | [slides]({name}.slides.html) | "
                     f"[student notebook](handouts/{name}.ipynb) | "
                     f"{launch_links(name + '.ipynb')} |" for name, title in entries)
    return (f"# {SITE_TITLE}\n\nEvery notebook below was executed for this site in {mode}. "
            "Each has a page, a reveal.js slide deck (add `?print-pdf` to its address and print "
            "to PDF for a handout of the slides) and a student copy without the solutions.\n\n"
            "| notebook | slides | student notebook | run it online |\n|---|---|---|---|\n"
            f"{rows}\n")


def _prepare_out(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise BookError(f"--out {out} is a file")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise BookError(f"--out {out} is not empty and was not written by this command; "
                            f"choose an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by python -m helper_lib book; rebuilt from scratch\n")
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve _static/ as it is


def _copy_assets(out: Path) -> None:
    assets = asset_folders()
    static = out / "_static"
    ignore = shutil.ignore_patterns("*.map", "source", "template", "*.scss", "unpacked",
                                    "localization")
    shutil.copytree(assets["mathjax"], static / "mathjax", ignore=ignore)
    shutil.copytree(assets["reveal.js"], static / "reveal.js", ignore=ignore)


def _copy_readme_images(readme: str, out: Path) -> None:
    """Copy the local images the README shows (``![..](docs/x.png)``) next to the index."""
    for src in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme):
        if "://" in src:
            continue
        source = REPO_ROOT / src
        if source.is_file():
            (out / src).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out / src)


def _stub_answers(nb: nbformat.NotebookNode, stubs: Sequence[str]) -> None:
    """Replace the source of each code cell tagged ``answer``, in order, with the next stub."""
    left = iter(stubs)
    for cell in nb.cells:
        if cell.cell_type == "code" and "answer" in cell.metadata.get("tags", []):
            cell.source = next(left)


def handout(nb_path: Path) -> nbformat.NotebookNode:
    """The student copy: solutions removed, each answer replaced by its stub (``answer_k = ...``,
    which its check reports as not answered yet), outputs cleared. Its metadata records the
    notebook's name, by which the grader recognises it, and the version of helper_lib that wrote
    it, which the grader compares with its own (``{"helper_lib": {"notebook": "03_logvar_trick",
    "version": "0.4.0"}}``).

    nbconvert's preprocessors do the removing and the clearing (``TagRemovePreprocessor``: the
    cells tagged ``solution``; ``ClearOutputPreprocessor``: outputs, execution counts and the
    output-view fields ``collapsed`` / ``scrolled`` of code cells); the stubs come from
    :mod:`helper_lib.tools.exercises`.
    """
    from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

    from .exercises import NOTEBOOKS

    nb = nbformat.read(nb_path, as_version=4)
    resources: dict[str, Any] = {}
    for step in (TagRemovePreprocessor(remove_cell_tags={"solution"}), ClearOutputPreprocessor()):
        nb, resources = step.preprocess(nb, resources)
    _stub_answers(nb, [ex.stub for ex in NOTEBOOKS.get(nb_path.stem, [])])
    nb.metadata["helper_lib"] = {"notebook": nb_path.stem, "version": VERSION}
    return nb


def build_site(
    out: str | os.PathLike,
    notebooks: Sequence[str | os.PathLike] | None = None,
    smoke: bool | None = None,
    execute: bool = True,
    timeout: int = 600,
    log: Callable[[str], None] = print,
    check_numbers: bool = True,
) -> SiteReport:
    """Build the site into ``out`` (emptied first if an earlier build wrote it).

    Args:
        notebooks: the notebooks to include; default every ``notebooks/*.ipynb``, in order.
        smoke: smoke mode (``None``: from ``$VAE_SMOKE``).
        execute: ``False`` converts the notebooks as they are (no outputs); for quick checks.
        timeout: seconds one cell may run.
        log: where progress lines go.
        check_numbers: in a full-mode build of every notebook, fail if a number in the prose or
            in a figure's alt text is printed by no output
            (:func:`helper_lib.tools.prose_numbers.unbacked_numbers`,
            :func:`helper_lib.tools.accessibility.unbacked_alt_numbers`); the report's
            ``unbacked`` and ``alt_numbers`` list them for any executed full-mode build.

    Raises:
        BookError: a notebook is missing or fails, or (``check_numbers``) a number in the prose
            or in an alt text is unbacked.
    """
    from nbconvert import HTMLExporter, SlidesExporter

    out = Path(out)
    smoke = smoke_mode() if smoke is None else smoke
    paths = ([Path(p) for p in notebooks] if notebooks is not None
             else sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    if not paths:
        raise BookError("no notebooks to build")
    for p in paths:
        if not p.is_file():
            raise BookError(f"no notebook {p}")
    asset_folders()  # fail before any work if a package is missing
    _prepare_out(out)
    _copy_assets(out)
    (out / "handouts").mkdir()
    report = SiteReport(out=out, smoke=smoke)
    from traitlets.config import Config

    # Code coloured by accessible-pygments' high-contrast style: pygments' default falls under
    # WCAG AA's 4.5:1 on the cells' grey (comments #408080: 4.17:1).
    style = Config({"CSSHTMLHeaderPreprocessor": {"style": CODE_STYLE}})
    common = dict(extra_template_basedirs=[str(TEMPLATES)],
                  extra_template_paths=[str(TEMPLATES)], config=style)
    page_exporter = HTMLExporter(template_name="vae_page", **common)
    slide_exporter = SlidesExporter(template_name="vae_slides", reveal_theme="white",
                                    reveal_url_prefix="_static/reveal.js", **common)

    executed: list[tuple[str, str, nbformat.NotebookNode]] = []
    for i, path in enumerate(paths, 1):
        if execute:
            log(f"[{i}/{len(paths)}] {path.name}: executing ({'smoke' if smoke else 'full'} mode)")
        t0 = time.perf_counter()
        nb = (execute_notebook(path, timeout=timeout, smoke=smoke) if execute
              else nbformat.read(path, as_version=4))
        report.seconds[path.stem] = time.perf_counter() - t0
        title = notebook_title(nb, path.stem)
        nb.metadata["title"] = title
        executed.append((path.stem, title, nb))
        log(f"[{i}/{len(paths)}] {path.name}: {'executed' if execute else 'converted'} in "
            f"{report.seconds[path.stem]:.1f} s")
    if execute:
        from .accessibility import figure_problems, unbacked_alt_numbers

        figures = sum(1 for _, _, nb in executed for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs if "image/png" in o.get("data", {}))
        report.mute_figures = [f"{name}, {line}" for name, _, nb in executed
                               for line in figure_problems(nb)]
        log(f"figures: {figures}, {len(report.mute_figures)} without a description"
            + "".join(f"\n  {line}" for line in report.mute_figures))
        if not smoke:
            report.alt_numbers = [f"{name}, {line}" for name, _, nb in executed
                                  for line in unbacked_alt_numbers(nb)]
            log(f"figures whose alt text quotes a number no output prints: "
                f"{len(report.alt_numbers)}" + "".join(f"\n  {line}"
                                                      for line in report.alt_numbers))
    if execute and not smoke:
        report.unbacked = unbacked_numbers({name: nb for name, _, nb in executed})
        log(f"prose numbers: {len(report.unbacked)} printed by no output")
        if (report.unbacked or report.alt_numbers) and check_numbers and notebooks is None:
            raise BookError("numbers in the prose or in a figure's alt text that no output "
                            "prints (full mode):\n" + "\n".join(
                                ([format_unbacked(report.unbacked)] if report.unbacked else [])
                                + report.alt_numbers))
    _live_explorers(executed, out, log)
    log("writing the pages, slides and handouts")

    names = [name for name, _, _ in executed]
    for i, (name, _, nb) in enumerate(executed):
        nav = {"site_title": SITE_TITLE, "index": "index.html", "slides": f"{name}.slides.html",
               "handout": f"handouts/{name}.ipynb", "colab": colab_url(f"{name}.ipynb"),
               "binder": binder_url(f"{name}.ipynb")}
        if i > 0:
            nav["prev"] = {"href": f"{names[i - 1]}.html", "title": executed[i - 1][1]}
        if i + 1 < len(executed):
            nav["next"] = {"href": f"{names[i + 1]}.html", "title": executed[i + 1][1]}
        resources = {"metadata": {"name": name}, "vae_nav": nav}
        body, _ = page_exporter.from_notebook_node(copy.deepcopy(nb), resources=resources)
        (out / f"{name}.html").write_text(body, encoding="utf-8")
        slides, _ = slide_exporter.from_notebook_node(copy.deepcopy(nb),
                                                      resources={"metadata": {"name": name}})
        (out / f"{name}.slides.html").write_text(slides, encoding="utf-8")
        nbformat.write(handout(paths[i]), out / "handouts" / f"{name}.ipynb")
        report.pages.append(f"{name}.html")
        report.slides.append(f"{name}.slides.html")
        report.handouts.append(f"handouts/{name}.ipynb")

    readme = REPO_ROOT / "README.md"
    table = _contents_table([(n, t) for n, t, _ in executed], smoke)
    index_nb = _readme_notebook(readme, names, table)
    _copy_readme_images(readme.read_text(encoding="utf-8"), out)
    nav = {"site_title": SITE_TITLE, "next": {"href": f"{names[0]}.html",
                                                "title": executed[0][1]}}
    body, _ = page_exporter.from_notebook_node(index_nb, resources={"metadata": {"name": "index"},
                                                                   "vae_nav": nav})
    (out / "index.html").write_text(body, encoding="utf-8")
    report.pages.insert(0, "index.html")
    (out / "build-info.json").write_text(json.dumps(
        {"smoke": smoke, "executed": execute, "seconds": report.seconds}, indent=1))
    return report
