"""The exercises' checkable parts, and how an answer becomes plain data.

Every exercise of the series keeps its open question and adds an answer that a program can
check: a number, an array, a boolean, a function or images. The student puts it into a named
variable (``answer_1``, ``answer_2``, ...) in a cell of its own, tagged ``answer``, and calls
``check("03.1", answer_1)`` (:mod:`helper_lib.tools.checks`) to learn whether it is right.

This module holds what may be public: which variable answers which exercise, the stub that
the handouts show, the inputs on which a function answer is called, and :func:`to_plain`, which
turns an answer into JSON-like data (numbers, lists, strings, booleans; never a pickle). The
grader (:mod:`helper_lib.tools.grading`) runs the same conversion inside the sandbox and scores the
plain data in its own process with :mod:`helper_lib.tools.checks`, which the sandbox cannot see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EXERCISES", "MAX_ANSWER_BYTES", "NOTEBOOKS", "UNANSWERED", "AnswerTooLarge",
           "Exercise", "exercise", "function_inputs", "harvest", "to_plain"]

#: The plain form of an answer that is still the handout's stub (``...``) or was never assigned.
UNANSWERED = {"unanswered": True}
#: The largest JSON text one submission's answers may take.
MAX_ANSWER_BYTES = 4_000_000
_MAX_STRING = 200  # characters kept of a string answer
_MAX_ITEMS = 200_000  # numbers kept of one array answer


class AnswerTooLarge(ValueError):
    """An answer whose plain form exceeds the caps."""


@dataclass(frozen=True)
class Exercise:
    """One exercise's checkable part.

    Attributes:
        id: ``"NN.k"``: notebook number, exercise number.
        notebook: the source notebook's stem (``"03_logvar_trick"``).
        variable: the answer's name in the notebook (``"answer_1"``).
        expects: what the answer is, in words (the handout's stub says it).
        function: the answer is a function, called on :func:`function_inputs`.
        full_mode_only: the reference comes from the shipped models, so in smoke mode the
            check says so instead of judging.
    """

    id: str
    notebook: str
    variable: str
    expects: str
    function: bool = False
    full_mode_only: bool = False

    @property
    def stub(self) -> str:
        """The answer cell of the handout: a stub, then the check."""
        return (f"{self.variable} = ...  # your answer: {self.expects}\n"
                f'check("{self.id}", {self.variable})')


def _ex(id_: str, notebook: str, expects: str, function: bool = False,
        full: bool = False) -> Exercise:
    number = id_.split(".")[1]
    return Exercise(id_, notebook, f"answer_{number}", expects, function, full)


_N01, _N02, _N03 = "01_vae_overview", "02_sampling_from_a_vae", "03_logvar_trick"
_N04, _N05, _N06 = "04_vae_loss", "05_conv_vae_mnist", "06_evaluating_the_vae"
_N07, _N08, _N09 = "07_measuring_the_claims", "08_inside_the_latent_space", "09_latent_arithmetic"

#: Every exercise's checkable part, by id.
EXERCISES: dict[str, Exercise] = {e.id: e for e in [
    _ex("01.1", _N01, "(autoencoder parameters, VAE parameters) at latent_dim = 10, two ints"),
    _ex("01.2", _N01, "a function (size, stride, padding, kernel) -> output size", function=True),
    _ex("01.3", _N01, "three booleans: (autoencoder gives the same z twice, VAE gives the "
                      "same z twice, VAE gives the same mu twice)"),
    _ex("02.1", _N02, "100 images [100, 1, 28, 28], the autoencoder's decodes of 100 draws "
                      "from your fitted Gaussian", full=True),
    _ex("02.2", _N02, "three numbers: for 300 draws z ~ N(0, I) decoded at s * z, s = 0.5, 1, "
                      "3, the mean squared pixel distance to the nearest of the first 2,000 "
                      "test images", full=True),
    _ex("02.3", _N02, "a function (mu [N, D], logvar [N, D]) -> [D], the second moment "
                      "E[z_j^2] of the codes per dimension", function=True),
    _ex("03.1", _N03, "([sigma for log sigma^2 = -4, 0, 2], the log sigma^2 that gives "
                      "sigma = 0.1)"),
    _ex("03.2", _N03, "a function (mu, logvar, eps) -> autograd's gradient of "
                      "z = mu + exp(logvar / 2) * eps, summed, with respect to logvar",
        function=True),
    _ex("03.3", _N03, "the gradient on mu with sample(), as a list of two numbers"),
    _ex("04.1", _N04, "(target with the largest BCE of a perfect prediction, that BCE, the BCE "
                      "at target 0, the BCE at target 1)"),
    _ex("04.2", _N04, "the KL in nats, a number"),
    _ex("04.3", _N04, "a function latent_dim -> the beta that the colleague's loss hides",
        function=True),
    _ex("05.1", _N05, "12 numbers: the mean absolute pixel change between neighbouring "
                      "images on the walk z_1 = -6, ..., 6", full=True),
    _ex("05.2", _N05, "the digits (a sorted list of ints) whose decoded class mean the "
                      "classifier assigns to another class", full=True),
    _ex("06.1", _N06, "three numbers: the estimate with k = 1, 5, 25 on the first 100 test "
                      "images, nats per image", full=True),
    _ex("06.2", _N06, "a number: the mean ink of the eight lowest-ELBO images divided by the "
                      "mean ink of all IW_ITEMS images", full=True),
    _ex("07.1", _N07, "the active dimensions of the beta = 3 model, a sorted list of ints",
        full=True),
    _ex("07.2", _N07, "a function features [N, F] -> (Frechet distance between two random "
                      "halves, between the first and the second half)", function=True),
    _ex("07.3", _N07, "(trace of the fitted covariance, does the fitted Gaussian give a lower "
                      "Frechet distance: a boolean)", full=True),
    _ex("08.1", _N08, "the first snapshot step at which the means spread more than 0.5 "
                      "along both principal axes, an int", full=True),
    _ex("09.1", _N09, "the share of prior draws in low-q(z) regions at D = 16, a number in "
                      "[0, 1]", full=True),
    _ex("09.2", _N09, "a function vector [16] -> the mean ink of vae16.decode(codes_test + m * "
                      "vector) for each m in SLANT_MULTIPLES (five numbers)",
        function=True, full=True),
]}

#: The exercises of each notebook, in order.
NOTEBOOKS: dict[str, list[Exercise]] = {}
for _e in EXERCISES.values():
    NOTEBOOKS.setdefault(_e.notebook, []).append(_e)


def exercise(exercise_id: str) -> Exercise:
    """The exercise ``"NN.k"``; a ``KeyError`` that lists the known ids otherwise."""
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"no exercise {exercise_id!r}; known: {', '.join(EXERCISES)}") from None


def function_inputs(exercise_id: str) -> list[tuple[Any, ...]]:
    """The argument sets on which a function answer is called (the same everywhere: built
    from fixed seeds, so the notebook, the sandbox and the grader agree)."""
    import torch

    if exercise_id == "01.2":  # (size, stride, padding, kernel)
        return [(7, 1, 1, 3), (7, 2, 1, 3), (13, 2, 0, 3), (27, 1, 0, 3), (5, 3, 2, 4),
                (10, 2, 0, 2), (1, 1, 0, 5), (4, 4, 1, 6)]
    if exercise_id == "02.3":
        out = []
        for seed, (n, d) in enumerate([(50, 2), (200, 3), (1000, 16)]):
            g = torch.Generator().manual_seed(seed)
            out.append((2 * torch.randn(n, d, generator=g) + 0.5,
                        torch.randn(n, d, generator=g) - 1.0))
        return out
    if exercise_id == "03.2":
        out = []
        for seed, shape in enumerate([(4, 3), (1, 2), (8, 5)]):
            g = torch.Generator().manual_seed(100 + seed)
            out.append(tuple(torch.randn(*shape, generator=g) for _ in range(3)))
        return out
    if exercise_id == "04.3":
        return [(1,), (2,), (16,), (32,)]
    if exercise_id == "07.2":  # two populations: the second half is shifted by 0.5 per feature
        out = []
        for seed, (n, f) in enumerate([(2000, 6), (4000, 3)]):
            x = torch.randn(n, f, generator=torch.Generator().manual_seed(200 + seed))
            x[n // 2:] += 0.5
            out.append((x,))
        return out
    if exercise_id == "09.2":
        return [(2 * torch.randn(16, generator=torch.Generator().manual_seed(300)),)]
    raise KeyError(f"exercise {exercise_id} takes no function answer")


def _plain_number(x: float) -> float | str:
    if math.isnan(x) or math.isinf(x):
        return repr(x)  # JSON has no NaN; "nan", "inf" are never right anyway
    return float(f"{x:.6g}")


def to_plain(value: Any, depth: int = 0) -> Any:
    """An answer as JSON-like data: tensors and arrays as nested lists (6 significant
    digits), numbers, booleans, strings (capped), lists, tuples (as lists) and dicts with
    string keys. ``...`` (the handout's stub) becomes :data:`UNANSWERED`; anything else a
    ``{"unsupported": type name}``.

    Raises:
        AnswerTooLarge: an array of more than 200,000 numbers, or nesting deeper than 8.
    """
    if depth > 8:
        raise AnswerTooLarge("an answer nested deeper than 8 levels")
    if value is Ellipsis:
        return dict(UNANSWERED)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else float(value)
    if isinstance(value, float):
        return _plain_number(value)
    if isinstance(value, str):
        return value[:_MAX_STRING]
    type_name = type(value).__module__ + "." + type(value).__qualname__
    if type_name.startswith(("torch.", "numpy.")) and hasattr(value, "tolist"):
        size = getattr(value, "numel", None)
        n = size() if callable(size) else getattr(value, "size", 1)
        if n > _MAX_ITEMS:
            raise AnswerTooLarge(f"an array of {n:,} numbers (at most {_MAX_ITEMS:,})")
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        return to_plain(value.tolist(), depth + 1)
    if isinstance(value, (list, tuple)):
        if len(value) > _MAX_ITEMS:
            raise AnswerTooLarge(f"a list of {len(value):,} items (at most {_MAX_ITEMS:,})")
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        return {str(k)[:_MAX_STRING]: to_plain(v, depth + 1) for k, v in list(value.items())[:100]}
    return {"unsupported": type_name[:_MAX_STRING]}


def _plain_calls(exercise_id: str, function: Callable[..., Any]) -> dict[str, Any]:
    results = []
    for args in function_inputs(exercise_id):
        copies = tuple(a.clone() if hasattr(a, "clone") else a for a in args)
        try:
            results.append(to_plain(function(*copies)))
        except AnswerTooLarge:
            raise
        except Exception as err:  # the student's function failed on this input
            results.append({"error": f"{type(err).__name__}: {err}"[:_MAX_STRING]})
    return {"calls": results}


def answer_to_plain(exercise_id: str, value: Any) -> Any:
    """The plain form of one exercise's answer (a function answer: its results on
    :func:`function_inputs`)."""
    ex = exercise(exercise_id)
    if value is not Ellipsis and ex.function:
        if not callable(value):
            return {"not_a_function": type(value).__name__[:_MAX_STRING]}
        return _plain_calls(exercise_id, value)
    return to_plain(value)


def harvest(namespace: Mapping[str, Any], notebook: str) -> str:
    """The answers of ``notebook`` found in ``namespace`` (a kernel's globals), as JSON text:
    ``{exercise id: plain answer}``, each missing or failing one recorded as such.

    Raises:
        AnswerTooLarge: the JSON text would exceed :data:`MAX_ANSWER_BYTES`.
    """
    answers: dict[str, Any] = {}
    for ex in NOTEBOOKS.get(notebook, []):
        if ex.variable not in namespace:
            answers[ex.id] = {"missing": True}
            continue
        try:
            answers[ex.id] = answer_to_plain(ex.id, namespace[ex.variable])
        except AnswerTooLarge as err:
            answers[ex.id] = {"too_large": str(err)}
    text = json.dumps(answers)
    if len(text) > MAX_ANSWER_BYTES:
        raise AnswerTooLarge(f"the answers take {len(text):,} bytes "
                             f"(at most {MAX_ANSWER_BYTES:,})")
    return text
