"""``grade --shard K/N`` and ``grade merge DIR... --out OUT``: one class graded on N machines.

Every shard is given the whole class. It examines every file (cheap: no kernel), runs only its
share, and writes what a one-machine run writes for those students, plus ``shard.json``: the
run's identity (:func:`run_id`), helper_lib's version, the settings, ``K/N``, the whole class in
order, and its rows. A student's shard is fixed by a hash of their name
(:func:`shard_of`), so adding a student moves no one else.

``grade merge`` checks the manifests before it writes anything: one run, one version (this
grader's too), every shard from 1 to N once, every student in exactly one of them. It then
writes ``grades.csv`` byte for byte as the one-machine run does (same rows, same order, same
writer), ``scores.png``, the Canvas and Moodle exports the shards were asked for, and copies
the shards' reports, feedback pages, Gradescope results and similarity report. It builds all of
it in a folder beside ``OUT`` and renames that to ``OUT`` at the end: a refused or failed merge
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..assets.project import VERSION
from .grades import GradingError, write_grades

__all__ = ["MANIFEST", "merge", "parse_shard", "run_id", "shard_of", "write_manifest"]

#: The manifest's file name in a shard's output folder.
MANIFEST = "shard.json"
_KIND = "helper_lib grade shard"
_SHARD = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")
#: What a shard's folder holds per student besides its report, copied by ``merge``.
_PER_STUDENT = (("feedback", ".html"), ("gradescope", ".json"), ("answers", ".json"))


def parse_shard(text: str) -> tuple[int, int]:
    """``(K, N)`` from ``"K/N"`` (1 ≤ K ≤ N).

    Raises:
        GradingError: not two whole numbers, or K out of range.
    """
    match = _SHARD.fullmatch(text)
    if match is None:
        raise GradingError(f"--shard {text!r} is not K/N: two whole numbers, this shard's and "
                           "the number of shards (1/4, 2/4, 3/4, 4/4)")
    k, n = int(match[1]), int(match[2])
    if n < 1 or not 1 <= k <= n:
        raise GradingError(f"--shard {k}/{n} is out of range: K goes from 1 to N, and N is at "
                           "least 1")
    return k, n


def shard_of(student: str, n: int) -> int:
    """The shard (1 to ``n``) that grades ``student``: from the SHA-256 of the name, so that it
    is the same on every machine and Python, and adding a student moves no one else."""
    digest = hashlib.sha256(student.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def run_id(entries: Sequence[tuple[str, str]], settings: Mapping[str, Any]) -> str:
    """A run's identity: the SHA-256 of helper_lib's version, the settings that change grades
    and each student with what they handed in (``(student, digest of their file or the reason
    it was not read)``, in the class's order). Shards given the same class and settings agree
    on it without being told; a changed file, setting or version gives another."""
    text = json.dumps({"version": VERSION, "settings": settings, "class": entries},
                      sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def write_manifest(out: Path, run: str, shard: tuple[int, int], settings: Mapping[str, Any],
                   students: Sequence[str], report_names: Sequence[str], columns: Sequence[str],
                   notebooks: Sequence[str], rows: Sequence[Mapping[str, Any]],
                   mine: Sequence[str], roster: Mapping[str, Any] | None) -> Path:
    """Write ``out/shard.json``: the run, the version, ``shard`` (K, N), the settings, the whole
    class in order (``students`` and their report file names), the grade columns and notebooks,
    this shard's students (``mine``) and rows, and the roster the exports need."""
    path = Path(out) / MANIFEST
    path.write_text(json.dumps({
        "kind": _KIND, "run": run, "version": VERSION, "shard": list(shard),
        "settings": dict(settings), "class": list(students), "report_names": list(report_names),
        "columns": list(columns), "notebooks": list(notebooks), "students": list(mine),
        "rows": list(rows), "roster": roster}, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def _read(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GradingError(f"{folder}: no {MANIFEST}: not the output of grade --shard") from None
    except (OSError, ValueError) as err:
        raise GradingError(f"{path}: unreadable ({type(err).__name__})") from None
    keys = ("run", "version", "shard", "settings", "class", "report_names", "columns",
            "notebooks", "students", "rows", "roster")
    if not isinstance(data, dict) or data.get("kind") != _KIND or any(k not in data
                                                                       for k in keys):
        raise GradingError(f"{path}: not a manifest of grade --shard")
    return data


def _check(folders: Sequence[Path], manifests: Sequence[Mapping[str, Any]]) -> int:
    """The number of shards, once the manifests are shown to be one whole run.

    Raises:
        GradingError: what makes them no whole run, in one line.
    """
    first, where = manifests[0], folders[0]
    for folder, m in zip(folders, manifests, strict=True):
        if m["version"] != first["version"]:
            raise GradingError(f"shards of different helper_lib versions: {where} "
                               f"({first['version']}) and {folder} ({m['version']})")
        if (m["run"], m["settings"], m["class"], m["shard"][1]) != (
                first["run"], first["settings"], first["class"], first["shard"][1]):
            raise GradingError(f"shards of different runs: {where} (run {first['run']}, "
                               f"{first['shard'][1]} shards) and {folder} (run {m['run']}, "
                               f"{m['shard'][1]} shards): grade every shard with the same "
                               "submissions, options and version")
    if first["version"] != VERSION:
        raise GradingError(f"the shards were graded by helper_lib {first['version']}, and this "
                           f"is {VERSION}: merge them with the version that graded them")
    n = first["shard"][1]
    seen: dict[int, Path] = {}
    for folder, m in zip(folders, manifests, strict=True):
        k = m["shard"][0]
        if k in seen:
            raise GradingError(f"shard {k}/{n} is given twice: {seen[k]} and {folder}")
        seen[k] = folder
    missing = [f"{k}/{n}" for k in range(1, n + 1) if k not in seen]
    if missing:
        raise GradingError(f"shard {', '.join(missing)} missing: merge needs all {n} "
                           f"(given {', '.join(f'{k}/{n}' for k in sorted(seen))})")
    graded = [s for m in manifests for s in m["students"]]
    if sorted(graded) != sorted(first["class"]) or len(set(graded)) != len(graded):
        raise GradingError("the shards' students are not the class, each once: a manifest "
                           "was edited")
    for folder, m in zip(folders, manifests, strict=True):
        names = dict(zip(first["class"], first["report_names"], strict=True))
        for student in m["students"]:
            if not (folder / "reports" / f"{names[student]}.json").is_file():
                raise GradingError(f"{folder}: the report of {student!r} is missing")
    return n


def merge(folders: Sequence[str | os.PathLike], out: str | os.PathLike,
          log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Merge the output folders of ``grade --shard 1/N`` ... ``N/N`` into ``out``: the same
    ``grades.csv`` as a one-machine run (byte for byte), ``scores.png``, the exports, and every
    student's report, feedback page and Gradescope results. Returns the rows of ``grades.csv``.

    Raises:
        GradingError: no folders, ``out`` already holds grades, a folder that is no shard, or
            shards that are not one whole run of this version (:func:`_check`); nothing is
            written then.
    """
    from . import lms

    if not folders:
        raise GradingError("grade merge: no shard folders given (grade merge DIR... --out OUT; "
                           "to grade a folder named merge, write ./merge)")
    paths, out = [Path(f) for f in folders], Path(out)
    if (out / "grades.csv").exists():
        raise GradingError(f"{out} already holds grades (grades.csv): choose another --out or "
                           "remove it first")
    if out.is_dir() and any(out.iterdir()):
        raise GradingError(f"{out} is not empty: grade merge writes a folder of its own")
    manifests = [_read(p) for p in paths]
    n = _check(paths, manifests)
    order = sorted(range(n), key=lambda i: manifests[i]["shard"][0])
    first = manifests[order[0]]
    names = dict(zip(first["class"], first["report_names"], strict=True))
    rows_of = {row["student"]: row for m in manifests for row in m["rows"]}
    rows = [rows_of[s] for s in first["class"]]
    folder_of = {s: paths[i] for i in range(n) for s in manifests[i]["students"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}-merging-", dir=out.parent))
    build.chmod(0o755)  # as a folder that grade makes (mkdtemp's is private)
    try:
        (build / "reports").mkdir()
        reports = []
        for student in first["class"]:
            source = folder_of[student] / "reports" / f"{names[student]}.json"
            shutil.copyfile(source, build / "reports" / source.name)
            reports.append((names[student], json.loads(source.read_text(encoding="utf-8"))))
            for sub, ext in _PER_STUDENT:
                extra = folder_of[student] / sub / f"{names[student]}{ext}"
                if extra.is_file():
                    (build / sub).mkdir(exist_ok=True)
                    shutil.copyfile(extra, build / sub / extra.name)
        write_grades(build, rows, first["columns"])
        settings = first["settings"]
        roster = lms.Roster.from_json(first["roster"]) if first["roster"] else None
        lms.write_exports(build, [r for r in reports], first["notebooks"],
                          [f for f in settings.get("formats", []) if f != "gradescope"],
                          roster, log)
        similar = paths[order[0]] / "similarity.html"
        if similar.is_file():
            shutil.copyfile(similar, build / "similarity.html")
        if out.is_dir():
            out.rmdir()  # empty, as checked above
        os.replace(build, out)  # all of it at once
    finally:
        shutil.rmtree(build, ignore_errors=True)
    log(f"merged {n} shard(s) of run {first['run']} ({len(rows)} submissions): "
        f"{out / 'grades.csv'}")
    return rows
