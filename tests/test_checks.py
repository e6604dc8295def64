"""The exercises' checks accept the notebooks' own solutions and reject plausible wrong answers.

``tests/data/solution_answers.json.gz`` holds the answers that the source notebooks' solutions
give in full mode, harvested through the grader's sandbox (regenerate it with
``python -m helper_lib grade notebooks/... --keep-answers``; the slow test in
test_grading.py grades the source notebooks afresh). The smoke-mode runs of the notebooks
(test_open_anywhere.py) run every check in strict mode too.
"""

from __future__ import annotations

import builtins
import gzip
import json
import math
import re
from pathlib import Path

import pytest
import torch

from helper_lib.assets.project import VERSION
from helper_lib.tools.checks import Verdict, check, score
from helper_lib.tools.exercises import (
    EXERCISES,
    NOTEBOOKS,
    UNANSWERED,
    AnswerTooLarge,
    answer_to_plain,
    function_inputs,
    harvest,
    to_plain,
)

SOLUTIONS = json.loads(gzip.decompress(
    (Path(__file__).parent / "data" / "solution_answers.json.gz").read_bytes()))


def _calls(exercise_id, function):
    return answer_to_plain(exercise_id, function)


def _shipped(name):
    from helper_lib.checkpoints import load_pretrained

    return load_pretrained(name)


def _wrong_answers() -> dict[str, object]:
    """A plausible wrong answer per exercise: the mistake a student is likely to make."""
    from helper_lib.models import ConvAutoencoder, ConvVAE, count_parameters

    s = SOLUTIONS
    ae = _shipped("conv_ae_mnist")
    with torch.no_grad():  # the autoencoder's decodes of N(0, I): the unfitted prior
        prior_images = ae.decode(torch.randn(100, 2, generator=torch.Generator().manual_seed(1)))
    vae = _shipped("conv_vae_mnist")
    z_axis2 = torch.stack([torch.zeros(13), torch.linspace(-6, 6, 13)], dim=1)
    with torch.no_grad():
        walk2 = vae.decode(z_axis2)
    return {
        "01.1": [count_parameters(ConvAutoencoder(2)), count_parameters(ConvVAE(2))],
        "01.2": _calls("01.2", lambda n, stride, padding, k: (n - 1) * stride + k),  # no padding
        "01.3": [True, True, True],
        "02.1": to_plain(prior_images),
        "02.2": [s["02.2"][1]] * 3,  # the same distance at every scale
        "02.3": _calls("02.3", lambda mu, logvar: mu.pow(2).mean(0)),  # sigma forgotten
        "03.1": [[math.exp(-4), 1.0, math.exp(2)], math.log(0.1)],  # sigma = exp(log sigma^2)
        "03.2": _calls("03.2", lambda mu, logvar, eps: torch.exp(logvar / 2) * eps),  # no 1/2
        "03.3": [0.0, 0.0],  # "sample() passes no gradient at all"
        "04.1": [0.5, 0.0, 0.0, 0.0],  # "a perfect prediction costs nothing"
        "04.2": 0.5 + 0.5 * (0.25 - 1),  # ln sigma^2 forgotten
        "04.3": _calls("04.3", lambda d: float(d)),  # the KL multiplied, not divided
        "05.1": to_plain((walk2[1:] - walk2[:-1]).abs().mean(dim=(1, 2, 3))),  # the z_2 axis
        "05.2": [],
        "06.1": [s["06.1"][0]] * 3,  # the ELBO three times
        "06.2": 1.0,
        "07.1": list(range(16)),
        "07.2": _calls("07.2", lambda f: (_fd(f[: len(f) // 2], f[len(f) // 2:]),) * 2),
        "07.3": [s["07.3"][0], True],
        "08.1": 235,  # the end of epoch 1: the larger axis only
        "09.1": 0.5,
        "09.2": _calls("09.2", lambda v: [s["09.2"]["calls"][0][2]] * 5),  # ignores the vector
    }


def _fd(a, b):
    from helper_lib.analysis.sample_quality import frechet_distance, gaussian_stats

    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def test_the_fixture_covers_every_exercise():
    assert sorted(SOLUTIONS) == sorted(EXERCISES)
    assert sum(len(v) for v in NOTEBOOKS.values()) == len(EXERCISES) == 22


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_each_check_accepts_its_solution_and_rejects_a_plausible_wrong_answer(exercise_id):
    right = score(exercise_id, SOLUTIONS[exercise_id])
    assert right.status == "correct" and right.points == 1, right
    wrong = score(exercise_id, _WRONG[exercise_id])
    assert wrong.status == "wrong" and wrong.points == 0, wrong
    assert wrong.message.startswith("hint: ")
    assert score(exercise_id, dict(UNANSWERED)).status == "unanswered"


_WRONG = _wrong_answers()


#: A number as a hint writes it: ``2,000``, ``0.08``, ``.5``, ``23``, ``8 %`` (the sign apart).
_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d*\.\d+|\d+)(\s*%)?")


def _numbers_written(text: str) -> list[tuple[float, int]]:
    """Each number in ``text`` with the decimals it is written to: ``8 %`` is (0.08, 2)."""
    found = []
    for digits, percent in _NUMBER.findall(text):
        digits = digits.replace(",", "")
        value, decimals = float(digits), len(digits.partition(".")[2])
        found.append((value / 100, decimals + 2) if percent else (value, decimals))
    return found


def _reference_numbers(reference) -> list[float]:
    """The numbers of a plain reference answer, nested lists flattened (no booleans)."""
    if isinstance(reference, list):
        return [n for item in reference for n in _reference_numbers(item)]
    return [] if isinstance(reference, bool) else [float(reference)]


def _leaks(reference: float, text: str) -> list[tuple[float, int]]:
    """The numbers of ``text`` that are ``reference`` rounded (or cut) to the decimals they are
    written with. A whole number counts only for a reference of 10 or more (``1`` is not 0.82
    leaked), and a small whole reference (0, 1, ...) is a fact that a hint may state."""
    r = abs(reference)
    if r == int(r) and r < 10:
        return []
    return [(v, d) for v, d in _numbers_written(text)
            if (d > 0 or r >= 10) and abs(r - v) < 10.0 ** -d]


#: Exercises answered by a function are left out: their references are the checker's own
#: inputs' results, and 01.2's hint shows one on purpose. 02.1's are 100 images.
_VALUE_ANSWERS = sorted(e for e, ref in SOLUTIONS.items()
                        if not isinstance(ref, dict) and len(_reference_numbers(ref)) <= 20)


def test_the_leak_scan_finds_a_reference_however_it_is_written():
    assert _VALUE_ANSWERS == ["01.1", "01.3", "02.2", "03.1", "03.3", "04.1", "04.2", "05.1",
                              "05.2", "06.1", "06.2", "07.1", "07.3", "08.1", "09.1"]
    assert _reference_numbers([[0.135335, 1.0, 2.71828], -4.60517]) == [
        0.135335, 1.0, 2.71828, -4.60517]
    for written in ("0.08", "0.080", ".08", "8 %", "8.0%", "0.1"):
        assert _leaks(0.08, f"hint: the fraction is {written}."), written
    for written in ("-4.6", "−4.61", "4.605", "4.60517", "4.6052"):
        assert _leaks(-4.60517, f"hint: log(0.01) = {written}"), written
    assert _leaks(251147, "the count is 251,147") and _leaks(23.1603, "about 23 at s = 0.5")
    assert _leaks(0.818147, "0.81 or 0.82, roughly") == [(0.81, 2), (0.82, 2)]
    for clean, reference in [("1 %, 0.5, 2,000 and 300 draws", 0.08), ("½(μ² − 1)", 0.818147),
                             ("from 0 to 1", 0.0), ("0.5 and 1", 1.0), ("0.71", 0.818147)]:
        assert _leaks(reference, clean) == [], (clean, reference)


def test_a_hint_never_contains_the_reference_value():
    """The hint says which step went wrong; it does not print the number to copy, to any number
    of decimals."""
    for exercise_id in _VALUE_ANSWERS:
        message = score(exercise_id, _WRONG[exercise_id]).message
        for n in _reference_numbers(SOLUTIONS[exercise_id]):
            assert _leaks(n, message) == [], (exercise_id, n, message)


def test_function_answers_are_called_on_the_checkers_own_inputs():
    seen = []

    def spy(n, stride, padding, kernel):
        seen.append((n, stride, padding, kernel))
        return (n - 1) * stride - 2 * padding + kernel

    assert score("01.2", answer_to_plain("01.2", spy)).status == "correct"
    assert seen == function_inputs("01.2")
    assert score("01.2", answer_to_plain("01.2", 13)).message.startswith("hint: expected a "
                                                                          "function")
    failing = answer_to_plain("01.2", lambda *a: 1 / 0)
    assert "ZeroDivisionError" in score("01.2", failing).message


def test_check_prints_the_verdict_and_raises_only_in_strict_mode(monkeypatch, capsys):
    monkeypatch.delenv("VAE_CHECK_STRICT", raising=False)
    monkeypatch.setenv("VAE_SMOKE", "0")
    verdict = check("04.2", 0.125)
    assert isinstance(verdict, Verdict) and verdict.status == "wrong"
    assert "✗ exercise 04.2: wrong. hint:" in capsys.readouterr().out
    assert check("04.2", ...).status == "unanswered"
    assert "not answered yet" in capsys.readouterr().out
    monkeypatch.setenv("VAE_CHECK_STRICT", "1")
    with pytest.raises(AssertionError, match="04.2"):
        check("04.2", 0.125)
    assert check("04.2", SOLUTIONS["04.2"]).points == 1


def test_in_smoke_mode_the_full_mode_checks_say_so(monkeypatch):
    monkeypatch.setenv("VAE_SMOKE", "1")
    monkeypatch.setenv("VAE_CHECK_STRICT", "1")
    assert check("06.1", [-500.0, -499.0, -498.0]).status == "full mode only"
    assert check("03.1", SOLUTIONS["03.1"]).status == "correct"  # closed forms work anywhere
    full_only = {e for e, ex in EXERCISES.items() if ex.full_mode_only}
    assert full_only == {"02.1", "02.2", "05.1", "05.2", "06.1", "06.2", "07.1", "07.3",
                         "08.1", "09.1", "09.2"}


def test_harvest_gives_capped_plain_json_and_never_a_pickle():
    namespace = {"answer_1": (torch.tensor([0.1353, 1.0, 2.7183]), -4.6052),
                 "answer_2": lambda mu, logvar, eps: 0.5 * torch.exp(logvar / 2) * eps}
    data = json.loads(harvest(namespace, "03_logvar_trick"))
    assert data["03.1"] == [[0.1353, 1.0, 2.7183], -4.6052]
    assert set(data["03.2"]) == {"calls"} and len(data["03.2"]["calls"]) == 3
    assert data["03.3"] == {"missing": True}
    assert score("03.2", data["03.2"]).status == "correct"
    huge = json.loads(harvest({"answer_1": torch.zeros(300_000)}, "03_logvar_trick"))
    assert "too_large" in huge["03.1"] and score("03.1", huge["03.1"]).status == "wrong"
    assert to_plain(object())["unsupported"] == "builtins.object"
    assert to_plain(float("nan")) == "nan"
    with pytest.raises(AnswerTooLarge):
        to_plain([[[[[[[[[[1]]]]]]]]]])


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds, names it reads) - enough to see what a handout would miss."""
    import ast

    tree = ast.parse(source)
    bound, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound, read


@pytest.mark.parametrize("stem", sorted(NOTEBOOKS))
def test_the_handout_stubs_every_answer_and_needs_nothing_from_a_solution(stem):
    from helper_lib.tools.book import handout

    source = Path(__file__).resolve().parent.parent / "notebooks" / f"{stem}.ipynb"
    nb = handout(source)
    assert nb.metadata["helper_lib"] == {"notebook": stem, "version": VERSION}
    assert not [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    answers = [c.source for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    assert answers == [ex.stub for ex in NOTEBOOKS[stem]]
    defined: set[str] = set(dir(builtins)) | {"get_ipython", "display"}
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.source.lstrip().startswith(("%", "!")):
            continue
        bound, read = _names(cell.source)
        missing = read - defined - bound
        assert not missing, f"{stem}: the handout reads {missing} that only a solution defines"
        defined |= bound


@pytest.mark.parametrize("stem", ["04_vae_loss"])  # the others: statically, above
def test_a_handout_runs_top_to_bottom_and_says_not_answered_yet(stem, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    from helper_lib.tools.book import handout

    monkeypatch.setenv("VAE_SMOKE", "1")
    monkeypatch.setenv("VAE_CHECK_STRICT", "1")
    nb = handout(Path(__file__).resolve().parent.parent / "notebooks" / f"{stem}.ipynb")
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    said = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells
            if "answer" in c.metadata.get("tags", [])]
    assert len(said) == len(NOTEBOOKS[stem])
    for text, ex in zip(said, NOTEBOOKS[stem], strict=True):
        assert f"exercise {ex.id}: unanswered. not answered yet" in text, text
