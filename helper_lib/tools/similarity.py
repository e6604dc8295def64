"""``grade --similarity``: pairs of submissions ranked by how alike their code cells are.

The matching is copydetect's (PyPI ``copydetect``, MIT): the winnowing fingerprints of Schleimer,
Wilkerson and Aiken (2003), as MOSS uses them, on Pygments' tokens, with every variable,
function and class name and every string's text replaced by one letter, and comments and spacing
dropped. Renaming variables therefore changes nothing, and neither does the order of the cells:
only runs of at least :data:`NOISE` such characters that two submissions share count. Every
fingerprint of the course's own starter code, the handout's code cells
(:func:`helper_lib.tools.book.handout`), is removed first, so what every student was given is
never counted as shared.

It reads the submitted files only (no kernel runs), and compares submissions of the same course
notebook. A pair's score is the mean of two shares: how much of each one's own code (its code
less the handout's) is found in the other. The report (``similarity.html``) lists the pairs,
most alike first, with the shared passages marked side by side, and says first that similarity
is a reason to look, not a verdict.

Fingerprints are every k-gram's hash (a winnowing window of 1), so the result does not depend on
Python's per-process string hashing; the notebooks are small enough for that to cost little.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .pages import esc, page

__all__ = ["NOISE", "Pair", "code_of", "compare", "notebook_code", "similarity_html",
           "starter_code", "write_similarity"]

#: The shortest run of filtered characters (names as one letter, no spaces or comments) that
#: counts as shared: copydetect's default noise threshold.
NOISE = 25
#: Pairs listed in the report's table, and pairs shown side by side.
LISTED, SHOWN = 100, 20
_MAX_NOTEBOOK_BYTES = 50_000_000
#: The characters of code read from one notebook (the rest is not compared): the course's
#: notebooks hold 5,000 to 13,000; two notebooks of 1 MB took 21 s to compare.
MAX_CODE = 100_000
_CONTEXT = 3  # lines kept around a shared passage in the side-by-side view


@dataclass(frozen=True)
class Pair:
    """Two submissions of one notebook and what they share.

    Attributes:
        students: the two students, in the class's order.
        notebook: their course notebook.
        score: the mean of ``shares``, from 0 to 1.
        shares: the share of each one's own code (less the handout's) found in the other.
        shared: how many filtered characters of the first one's code are shared.
        spans: for each of the two, the ``(start, end)`` character ranges of its code (as
            :func:`notebook_code` gives it) that the other shares.
    """

    students: tuple[str, str]
    notebook: str
    score: float
    shares: tuple[float, float]
    shared: int
    spans: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


def code_of(nb: Mapping[str, Any]) -> str | None:
    """The code cells of the notebook ``nb`` (parsed JSON), each after a comment line that names
    it (``# cell 3``, counting every cell from 1), at most :data:`MAX_CODE` characters, or
    ``None`` where it has no list of cells. Only the cells' sources are read: outputs, metadata
    and markdown are not code."""
    cells = nb.get("cells") if isinstance(nb, Mapping) else None
    if not isinstance(cells, list):
        return None
    parts = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(map(str, source)) if isinstance(source, list) else str(source)
        parts.append(f"# cell {number}\n{source.rstrip()}\n")
    return "\n".join(parts)[:MAX_CODE]


def notebook_code(path: str | Path) -> str | None:
    """:func:`code_of` the notebook file at ``path``, or ``None`` for a file that is not a
    readable notebook (a link, a FIFO, over 50 MB, not JSON)."""
    try:
        path = Path(path)
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_NOTEBOOK_BYTES:
            return None
        return code_of(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError):
        return None


def starter_code(notebooks: Sequence[str]) -> dict[str, str]:
    """The handout's code (:func:`code_of` :func:`helper_lib.tools.book.handout`) of each of
    ``notebooks`` whose source is in this clone; ``{}`` outside a clone."""
    from ..assets.project import CLONE_ROOT
    from .book import handout

    out: dict[str, str] = {}
    if CLONE_ROOT is None:
        return out
    for notebook in sorted(set(notebooks)):
        source = CLONE_ROOT / "notebooks" / f"{notebook}.ipynb"
        if source.is_file():
            out[notebook] = code_of(handout(source)) or ""
    return out


#: Where a cell starts in :func:`code_of`'s text: its comment line.
_CELL = re.compile(r"^# cell \d+$", re.M)


def _cells(code: str) -> list[tuple[int, str]]:
    """``code`` cut where each cell starts (:data:`_CELL`): ``(where it starts, its text)``."""
    starts = sorted({0, *(m.start() for m in _CELL.finditer(code))})
    return [(a, code[a:b]) for a, b in zip(starts, [*starts[1:], len(code)], strict=True)]


class _Fingerprint:
    """copydetect's fingerprint of a notebook's code, made cell by cell, so that no fingerprint
    spans two cells (their order then does not matter, nor does where the handout's code ends
    and the student's begins), and without ``starter``'s hashes. It has what
    ``copydetect.compare_files`` reads of a ``CodeFingerprint``: ``k``, ``hashes``,
    ``hash_idx``, ``filtered_code``, ``offsets`` and ``token_coverage`` (the filtered
    characters that a kept fingerprint covers, recounted here)."""

    def __init__(self, code: str, starter: set[int]) -> None:
        import numpy as np
        from copydetect import CodeFingerprint

        self.k, self.hashes, self.hash_idx = NOISE, set(), {}
        filtered, rows, at = [], [], 0
        for start, text in _cells(code):
            fp = CodeFingerprint("cell.py", NOISE, 1, language="python", fp=io.StringIO(text))
            offsets = np.asarray(fp.offsets, dtype=np.int64).reshape(-1, 2)
            if not len(offsets):
                offsets = np.zeros((1, 2), dtype=np.int64)
            # copydetect maps a filtered position p to p + the offset of the first row at or
            # after p; shifted, the rows map into the whole text
            rows.append(np.column_stack([np.maximum(offsets[:, 0], 0) + at,
                                         offsets[:, 1] + start - at]))
            for h, positions in fp.hash_idx.items():
                if h not in starter:
                    self.hash_idx.setdefault(h, []).extend(int(i) + at for i in positions)
            filtered.append(fp.filtered_code)
            at += len(fp.filtered_code)
        self.hashes = set(self.hash_idx)
        self.filtered_code = "".join(filtered)
        self.offsets = np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.int64)
        covered = np.zeros(len(self.filtered_code) + NOISE, dtype=bool)
        for positions in self.hash_idx.values():
            for i in positions:
                covered[i:i + NOISE] = True
        self.token_coverage = int(covered.sum())

    @staticmethod
    def hashes_of(code: str) -> set[int]:
        """Every fingerprint of ``code``, cell by cell (the handout's, to leave out)."""
        from copydetect import CodeFingerprint

        return {h for _, text in _cells(code)
                for h in CodeFingerprint("cell.py", NOISE, 1, language="python",
                                         fp=io.StringIO(text)).hashes}


def compare(codes: Mapping[str, tuple[str, str]], starters: Mapping[str, str] | None = None
            ) -> list[Pair]:
    """Every pair of ``codes`` (``{student: (notebook, code)}``, the code as :func:`code_of`
    writes it) of the same notebook that shares anything beyond ``starters`` (``{notebook:
    the handout's code}``), most alike first (by score, then by what they share, then by
    name)."""
    from copydetect import compare_files

    starter_hashes = {nb: _Fingerprint.hashes_of(code) for nb, code in (starters or {}).items()}
    prints = {student: _Fingerprint(code, starter_hashes.get(nb, set()))
              for student, (nb, code) in codes.items()}
    pairs = []
    for a, b in itertools.combinations(codes, 2):
        fa, fb = prints[a], prints[b]
        if codes[a][0] != codes[b][0] or not fa.hashes & fb.hashes:
            continue
        shared, (share_a, share_b), (slices_a, slices_b) = compare_files(fa, fb)
        if shared == 0:
            continue
        spans = tuple(tuple((int(s), int(e)) for s, e in zip(*sl, strict=True))
                      for sl in (slices_a, slices_b))
        shares = (min(1.0, float(share_a)), min(1.0, float(share_b)))
        pairs.append(Pair((a, b), codes[a][0], sum(shares) / 2, shares, int(shared), spans))
    pairs.sort(key=lambda p: (-p.score, -p.shared, p.students))
    return pairs


def _marked(code: str, spans: Sequence[tuple[int, int]]) -> str:
    """``code`` as HTML with ``spans`` in ``<mark>``, and each stretch of more than
    2 × :data:`_CONTEXT` + 1 lines without a shared passage shortened to its ends."""
    pieces, at = [], 0
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        start, end = max(start, 0), min(end, len(code))
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        elif start < end:
            merged.append([start, end])
    for index, (start, end) in enumerate(merged):
        pieces.append(_shortened(code[at:start], first=index == 0, last=False))
        pieces.append(f"<mark>{esc(code[start:end])}</mark>")
        at = end
    pieces.append(_shortened(code[at:], first=not merged, last=True))
    return "".join(pieces)


def _shortened(text: str, first: bool, last: bool) -> str:
    lines = text.split("\n")
    keep_head = 0 if first else _CONTEXT + 1
    keep_tail = 0 if last else _CONTEXT + 1
    if len(lines) <= keep_head + keep_tail + 1:
        return esc(text)
    dropped = len(lines) - keep_head - keep_tail
    gap = f'<span class="muted">⋮ {dropped} line(s) without shared code</span>'
    head = "\n".join(lines[:keep_head])
    tail = "\n".join(lines[len(lines) - keep_tail:]) if keep_tail else ""
    return (esc(head) + ("\n" if keep_head else "") + gap + ("\n" if keep_tail else "")
            + esc(tail))


def similarity_html(pairs: Sequence[Pair], codes: Mapping[str, tuple[str, str]],
                    starters_left_out: Sequence[str], missing_starters: Sequence[str]) -> str:
    """The similarity report: the warning, how it was measured, the table of pairs (at most
    :data:`LISTED`) and the first :data:`SHOWN` side by side."""
    notebooks = sorted({nb for nb, _ in codes.values()})
    body = [f"<h1>Similar code: {len(codes)} submissions of {esc(', '.join(notebooks))}</h1>",
            '<div class="note" role="note"><h2>Similarity is a reason to look, not a '
            "verdict</h2><p>Students share a course, its lectures and the same small answers, "
            "so honest work can look alike; and code copied and then rewritten can pass any "
            "tool. A high score says only where to read first. Read the passages, hear the "
            "students, and follow your institution's process before you conclude anything."
            "</p></div>",
            "<h2>How it was measured</h2>",
            "<p>copydetect's winnowing fingerprints (as MOSS uses them) on the code cells: "
            "names of variables and functions and the text of strings are ignored, so renaming "
            "changes nothing, and so is the order of the cells. Only runs of at least "
            f"{NOISE} characters of that filtered code count. A pair's score is the mean of two "
            "shares: how much of each one's own code is found in the other. "]
    if starters_left_out:
        body[-1] += ("The handout's starter code of " + esc(", ".join(starters_left_out))
                     + " is left out: what every student was given is never shared.")
    if missing_starters:
        body[-1] += (" The handout of " + esc(", ".join(missing_starters)) + " was not found "
                     "(grade ran outside the course's clone), so its starter code counts.")
    body[-1] += "</p>"
    body.append("<h2>Pairs, most alike first</h2>")
    if not pairs:
        body.append("<p>No two submissions share code beyond the handout.</p>")
    else:
        rows = []
        for rank, p in enumerate(pairs[:LISTED], start=1):
            a, b = p.students
            link = (f'<a href="#pair-{rank}">{rank}</a>' if rank <= SHOWN else str(rank))
            rows.append(f'<tr><th scope="row">{link}</th><td>{esc(a)}</td><td>{esc(b)}</td>'
                        f"<td>{esc(p.notebook)}</td><td>{p.score:.0%}</td>"
                        f"<td>{p.shares[0]:.0%}</td><td>{p.shares[1]:.0%}</td></tr>")
        more = (f" The {len(pairs) - LISTED} less alike pairs are not listed."
                if len(pairs) > LISTED else "")
        body += ["<table>", f"<caption>{len(pairs)} pairs share code beyond the handout; the "
                 f"first {min(SHOWN, len(pairs))} are shown side by side below.{esc(more)}"
                 "</caption>",
                 '<thead><tr><th scope="col">Rank</th><th scope="col">First student</th>'
                 '<th scope="col">Second student</th><th scope="col">Notebook</th>'
                 '<th scope="col">Score</th><th scope="col">Share of the first\'s own code in '
                 'the second</th><th scope="col">Share of the second\'s own code in the first'
                 "</th></tr></thead>", "<tbody>", *rows, "</tbody>", "</table>"]
    for rank, p in enumerate(pairs[:SHOWN], start=1):
        a, b = p.students
        body += [f'<h2 id="pair-{rank}">{rank}. {esc(a)} and {esc(b)}: {p.score:.0%}</h2>',
                 "<p>Marked: the passages the other one shares. Lines far from a shared passage "
                 "are left out.</p>", '<div class="pair">']
        for student, spans in ((a, p.spans[0]), (b, p.spans[1])):
            body += [f"<section><h3>{esc(student)}</h3>",
                     f"<pre><code>{_marked(codes[student][1], spans)}</code></pre></section>"]
        body.append("</div>")
    return page("Similar code in the submissions", "\n".join(body))


def write_similarity(out: str | Path, entries: Sequence[tuple[str, Path, str | None]],
                     log: Callable[[str], None] = print,
                     starters: Mapping[str, str] | None = None) -> list[Pair]:
    """Compare the class's submissions (``(student, file, course notebook or None)``; the
    ``None`` ones are skipped) and write ``out/similarity.html``. ``starters``: the handouts'
    code by notebook (default :func:`starter_code`, from this clone). Returns the pairs."""
    codes = {}
    for student, path, notebook in entries:
        code = notebook_code(path) if notebook is not None else None
        if code is not None:
            codes[student] = (notebook, code)
    wanted = sorted({nb for nb, _ in codes.values()})
    starters = starter_code(wanted) if starters is None else dict(starters)
    missing = [nb for nb in wanted if nb not in starters]
    if missing:
        log(f"WARNING: similarity: no handout of {', '.join(missing)} here (not a clone), so "
            "its starter code counts as shared")
    pairs = compare(codes, starters)
    path = Path(out) / "similarity.html"
    path.write_text(similarity_html(pairs, codes, [nb for nb in wanted if nb in starters],
                                    missing), encoding="utf-8")
    top = (f"; most alike: {pairs[0].students[0]} and {pairs[0].students[1]}, "
           f"{pairs[0].score:.0%}" if pairs else "")
    log(f"similarity: {len(pairs)} pair(s) of {len(codes)} submissions share code beyond the "
        f"handout{top}: {path}")
    return pairs
