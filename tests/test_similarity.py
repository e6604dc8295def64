"""``grade --similarity`` on a synthetic class of notebook 03, built from the course's handout.

No kernel runs: the similarity is measured on the submitted files. The class has 22
submissions: two copies (one with every name changed and its cells in another order, one with
only its answers changed), their two sources, 16 students who each wrote their own answers and
explored on their own (any two of them with one of the three short answers written alike, as
honest students do), and two who handed in the handout untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from helper_lib.tools.book import handout
from helper_lib.tools.pages import COLOURS, contrast_ratio
from helper_lib.tools.similarity import compare, notebook_code, write_similarity

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "notebooks" / "03_logvar_trick.ipynb"
NOTEBOOK = "03_logvar_trick"

#: Four ways each to answer 03.1, 03.2 and 03.3, as different students write them.
ANSWERS = {
    1: ["answer_1 = (torch.exp(torch.tensor([-4.0, 0.0, 2.0]) / 2), 2 * math.log(0.1))",
        "sigmas = [math.exp(v / 2) for v in (-4, 0, 2)]\nanswer_1 = (sigmas, math.log(0.1 ** 2))",
        "lv = torch.tensor([-4., 0., 2.])\nsig = lv.div(2).exp()\n"
        "answer_1 = (sig.tolist(), float(torch.log(torch.tensor(0.01))))",
        "answer_1 = ([math.sqrt(math.exp(x)) for x in [-4, 0, 2]], 2.0 * math.log(1 / 10))"],
    2: ["def grad_logvar(mu, logvar, eps):\n    logvar = logvar.clone().requires_grad_(True)\n"
        "    z = mu + torch.exp(logvar / 2) * eps\n    z.sum().backward()\n"
        "    return logvar.grad\n\nanswer_2 = grad_logvar",
        "def f(mu, logvar, eps):\n    lv = logvar.detach().requires_grad_()\n"
        "    (mu + (0.5 * lv).exp() * eps).sum().backward()\n    return lv.grad\n\nanswer_2 = f",
        "def g(m, l, e):\n    l = l.clone().requires_grad_()\n    s = torch.exp(l / 2)\n"
        "    (grad,) = torch.autograd.grad((m + s * e).sum(), l)\n    return grad\n\n"
        "answer_2 = g",
        "answer_2 = lambda mu, logvar, eps: 0.5 * torch.exp(logvar / 2) * eps  # by hand"],
    3: ["answer_3 = [0.5, -1.0]",
        "mu.grad = None\nkl = kl_divergence(mu, logvar)\nkl.backward()\n"
        "answer_3 = mu.grad.tolist()",
        "q2 = Normal(mu, torch.exp(logvar / 2))\nloss = (q2.sample() ** 2).sum() + 0.5 * "
        "(mu ** 2).sum()\nmu.grad = None\nloss.backward()\nanswer_3 = [float(v) for v in mu.grad]",
        "answer_3 = list(mu.detach().numpy() * 1.0)"],
}

#: What each honest student explored on their own: sixteen different cells, and two to spare.
EXPLORATIONS = [
    "xs = torch.linspace(-3, 3, 7)\nfor x in xs:\n    print(x, torch.exp(x / 2))",
    "draws = ConvVAE.reparameterize(torch.zeros(500), torch.full((500,), -2.0))\n"
    "print(draws.mean(), draws.std())",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
    "ax.hist(torch.randn(4000).numpy(), bins=40)\nax.set_title('standard normal')",
    "table = {k: math.exp(k) ** 0.5 for k in range(-4, 5)}\nprint(table)",
    "torch.manual_seed(7)\nr = Normal(1.0, 2.0).rsample((3,))\nprint(r.requires_grad, r)",
    "def sd_from_logvar(v):\n    return math.sqrt(math.exp(v))\n\n"
    "print(sd_from_logvar(-4), sd_from_logvar(2))",
    "print(torch.exp(torch.tensor(-9.0) / 2), torch.exp(torch.tensor(3.0) / 2))",
    "w = torch.tensor([0.2, 0.4], requires_grad=True)\nloss = (w ** 3).sum()\n"
    "loss.backward()\nprint(w.grad, 3 * w.detach() ** 2)",
    "import numpy as np\narr = np.random.default_rng(0).normal(size=1000)\n"
    "print(arr.mean().round(3), arr.var().round(3))",
    "for n in (10, 100, 1000):\n    print(n, torch.randn(n).std().item())",
    "q_test = Normal(torch.tensor(0.0), torch.tensor(1.0))\n"
    "print(q_test.log_prob(torch.tensor(0.0)), -0.5 * math.log(2 * math.pi))",
    "print(ConvVAE.reparameterize.__doc__)",
    "help(torch.distributions.Normal.rsample)",
    "c = torch.ones(3, requires_grad=True)\nd = (c * torch.arange(3.0)).sum()\n"
    "d.backward()\nassert torch.equal(c.grad, torch.arange(3.0))",
    "vals = []\nwhile len(vals) < 5:\n    vals.append(float(torch.rand(())))\n"
    "print(sorted(vals))",
    "print(f'{math.log(0.01):.4f} {2 * math.log(0.1):.4f}')",
    "grid = torch.meshgrid(torch.arange(3), torch.arange(2), indexing='ij')\nprint(grid)",
    "with torch.no_grad():\n    tmp = torch.exp(torch.tensor([1.0, 2.0]))\n"
    "print(tmp.requires_grad)",
]

#: bob's own exploration, which trudy copies whole (every student's code is otherwise theirs).
BOB_OWN = [
    "grads = []\nfor trial in range(25):\n    m = torch.tensor([1.5, -0.5], requires_grad=True)\n"
    "    lv = torch.tensor([-1.0, 0.5], requires_grad=True)\n"
    "    z_trial = ConvVAE.reparameterize(m, lv)\n    (z_trial ** 2).sum().backward()\n"
    "    grads.append(torch.cat([m.grad, lv.grad]))\nstacked = torch.stack(grads)\n"
    "print('mean gradient', stacked.mean(0))\nprint('spread', stacked.std(0))",
    "eps_grid = torch.linspace(-3, 3, 13)\nresponse = {}\nfor e in eps_grid.tolist():\n"
    "    lvv = torch.tensor(0.3, requires_grad=True)\n    zz = 1.0 + torch.exp(lvv / 2) * e\n"
    "    zz.backward()\n    response[round(e, 2)] = lvv.grad.item()\n"
    "assert all(abs(v - 0.5 * math.exp(0.15) * k) < 1e-5 for k, v in response.items())",
]
#: alice's own exploration, which mallory copies with every name changed.
ALICE_OWN = [
    "variances = torch.logspace(-3, 2, 11)\nlogvars = torch.log(variances)\n"
    "for v, lv in zip(variances, logvars):\n    s = torch.exp(lv / 2)\n"
    "    print(f'{v:10.4f} {lv:8.3f} {s:8.4f} {s * s - v:+.2e}')",
    "def empirical(mu0, logvar0, count):\n    mus = torch.full((count,), mu0)\n"
    "    lvs = torch.full((count,), logvar0)\n    out = ConvVAE.reparameterize(mus, lvs)\n"
    "    return out.mean().item(), out.var().item()\n\n"
    "for mu0, logvar0 in [(0.0, 0.0), (2.0, -2.0), (-1.0, 1.5)]:\n"
    "    print(mu0, logvar0, empirical(mu0, logvar0, 20000), math.exp(logvar0))",
]
#: mallory's renaming of alice's names.
RENAMED = {"variances": "vs", "logvars": "log_v", "lv": "lvar", "s": "sd", "v": "var_",
           "empirical": "moments", "mu0": "m", "logvar0": "lvar0", "count": "n_draws",
           "mus": "means", "lvs": "logvs", "out": "res", "grad_logvar": "gradient_wrt_lv",
           "sigmas": "stds"}


def _with_answers(base: nbformat.NotebookNode, answers: list[str],
                  own: list[str]) -> nbformat.NotebookNode:
    """The handout with its three answer stubs answered (each still calling its check), and the
    student's own cells after the last of them."""
    nb = nbformat.reads(nbformat.writes(base), as_version=4)
    stubs = [c for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    for cell, answer, k in zip(stubs, answers, (1, 2, 3), strict=True):
        cell.source = f'{answer}\ncheck("03.{k}", answer_{k})'
    nb.cells += [nbformat.v4.new_code_cell(c) for c in own]
    return nb


def _rename(code: str) -> str:
    return re.sub(r"\b(" + "|".join(map(re.escape, RENAMED)) + r")\b",
                  lambda m: RENAMED[m[1]], code)


@pytest.fixture(scope="module")
def synthetic_class(tmp_path_factory) -> tuple[Path, dict[str, Path], str]:
    """``(folder, {student: notebook}, the handout's code)``: 22 submissions of notebook 03."""
    base = handout(SOURCE)
    folder = tmp_path_factory.mktemp("similar") / "SUBMISSIONS"
    books: dict[str, nbformat.NotebookNode] = {}
    books["alice"] = _with_answers(base, [ANSWERS[1][0], ANSWERS[2][0], ANSWERS[3][1]],
                                   ALICE_OWN)
    mallory = nbformat.reads(nbformat.writes(books["alice"]), as_version=4)
    for cell in mallory.cells:
        if cell.cell_type == "code":
            cell.source = _rename(cell.source)
    answers = [c for c in mallory.cells if "answer" in c.metadata.get("tags", [])]
    own = mallory.cells[-2:]
    rest = [c for c in mallory.cells[:-2] if c not in answers]
    mallory.cells = rest[:8] + own[::-1] + rest[8:] + answers[::-1]  # another order
    books["mallory"] = mallory
    books["bob"] = _with_answers(base, [ANSWERS[1][1], ANSWERS[2][1], ANSWERS[3][0]], BOB_OWN)
    books["trudy"] = _with_answers(base, [ANSWERS[1][2], ANSWERS[2][3], ANSWERS[3][3]],
                                   BOB_OWN)  # bob's notebook, only the answers changed
    for i, own in enumerate(EXPLORATIONS[:16]):  # honest: an exploration of their own, and
        a, b = divmod(i, 4)  # answers from the four ways: any two share one answer at most
        picks = [ANSWERS[1][a], ANSWERS[2][b], ANSWERS[3][(a + b) % 4]]
        books[f"honest{i:02d}" if i else "zoë <script>alert(1)</script>"] = _with_answers(
            base, picks, [own])
    books["blank1"] = base
    books["blank2"] = nbformat.reads(nbformat.writes(base), as_version=4)
    paths = {}
    for student, nb in books.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / "lab3.ipynb")
        paths[student] = folder / student / "lab3.ipynb"
    return folder, paths, notebook_code_of(base)


def notebook_code_of(nb: nbformat.NotebookNode) -> str:
    from helper_lib.tools.similarity import code_of

    return code_of(nb)


def test_copies_rank_first_and_honest_pairs_below_them(synthetic_class, tmp_path):
    folder, paths, starter = synthetic_class
    assert len(paths) >= 20
    lines: list[str] = []
    pairs = write_similarity(tmp_path, [(s, p, NOTEBOOK) for s, p in paths.items()],
                             log=lines.append, starters={NOTEBOOK: starter})
    ranked = [set(p.students) for p in pairs]
    assert ranked[0] == {"alice", "mallory"}, pairs[:3]
    assert ranked[1] == {"bob", "trudy"}, pairs[:3]
    assert pairs[0].score > 0.9 and pairs[0].score > pairs[1].score
    honest = [p for p in pairs[2:]]
    assert honest and max(p.score for p in honest) < pairs[1].score - 0.1, honest[:3]
    # the handout is left out: two untouched handouts share nothing, and the blank students
    # appear in no pair
    assert not any({"blank1", "blank2"} & s for s in ranked)
    without = compare({s: (NOTEBOOK, notebook_code(p)) for s, p in paths.items()
                       if s in ("blank1", "blank2", "honest03")})
    assert [set(p.students) for p in without][0] == {"blank1", "blank2"}
    assert without[0].score == pytest.approx(1.0)
    assert "most alike: alice and mallory" in lines[-1]


def test_the_report_says_it_is_no_verdict_and_shows_the_passages(synthetic_class, tmp_path):
    folder, paths, starter = synthetic_class
    pairs = write_similarity(tmp_path, [(s, p, NOTEBOOK) for s, p in paths.items()],
                             log=lambda line: None, starters={NOTEBOOK: starter})
    page = (tmp_path / "similarity.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "<title>Similar code in the submissions</title>" in page
    assert "<h2>Similarity is a reason to look, not a verdict</h2>" in page
    assert "starter code of 03_logvar_trick is left out" in page
    assert page.count("<h1>") == 1 and '<th scope="col">Score</th>' in page
    assert '<th scope="row"><a href="#pair-1">1</a></th><td>alice</td><td>mallory</td>' in page
    assert "<script>" not in page and "zoë &lt;script&gt;alert(1)&lt;/script&gt;" in page
    # pair 1, side by side: alice's own loop and mallory's renamed one, both marked
    section = page.split('id="pair-1"')[1].split('id="pair-2"')[0]
    assert section.count("<section>") == 2 and "<mark>" in section
    marked = " ".join(re.findall(r"<mark>(.*?)</mark>", section, re.S))
    assert "def empirical(mu0, logvar0, count):" in marked
    assert "def moments(m, lvar0, n_draws):" in marked
    assert "find_spec" not in marked and "set_seed(SEED)" not in marked  # the handout's code
    assert len(pairs) < 22 * 21 // 2
    for text, background in COLOURS.values():
        assert contrast_ratio(text, background) >= 4.5, (text, background)
