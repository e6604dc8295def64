"""Every number in the prose comes from an output: find the numbers a notebook's markdown
quotes that none of its outputs print.

The site build runs :func:`unbacked_numbers` on the notebooks executed in full mode; an empty
list means every quoted result is printed by a cell the reader can see.

**What counts as a number in the prose** (markdown cells, LaTeX included):

* a *decimal number*, written with a fractional part: 0.32, −484.02, $-0.25$, 13.84, 1.0,
  0.000, 1,000.5 (a sign, ``-`` or ``−``, and thousands separators are allowed);
* a *percentage*, integer or decimal: 83 %, 3.8 %, ``86\\%``, 5 percent; in a range such as
  58–66 % both ends are percentages;
* a power of ten with a negative exponent: 1e-3, 5·10⁻⁴, $5 \\cdot 10^{-4}$, 10⁻³.

Plain integers are not counted (epochs, 28 × 28, 784, k = 50, 2,000 images, years, section
and notebook numbers): they are too often definitions or settings rather than results. Nor is
anything in inline code or code blocks, link targets and URLs, HTML tags and comments, digits
glued to a word (L17.5, conv2d), version numbers (3.11.7), or a number right after *Section*,
*Table*, *Figure*, *Eq.*, *version* or *Python*. Each range end (0.2–0.4) and a number after
± (±1.00) is a number of its own.

The markdown is read by the parser that renders it on the course site, nbconvert's mistune
with its math rules: the prose is what the reader sees (emphasis, escapes and entities
resolved, math kept as written), split into paragraphs, headings, list items and table rows,
and these into sentences. HTML, in a markdown cell or an output, is read with BeautifulSoup.

**What backs a number.** The evidence of a notebook is every number in the *text* outputs of
its code cells (streams, ``text/plain``, ``text/html`` without scripts and styles,
``text/markdown``, ``text/latex``; not images, not errors) and every numeric literal in its
code cells (not in comments): a value set in the code, such as a parameter 0.1, is shown to the
reader too. A number in notebook N may be backed by the evidence of N or of any notebook N's
markdown names: "notebook 05", "Notebook 2", "notebooks 04 and 06", or a link to
``05_name.ipynb``; a name stands for every notebook whose file name starts with that number
(``05_*.ipynb``, ``05b_*.ipynb``).

**Matching.** A prose number with d decimals is backed by an evidence number with at least d
decimals that rounds to it, i.e. lies within half a unit of its last digit: 0.32 is backed by
0.3214 or 0.32, not by 0.3 or 0.33; 9.21 is not backed by 9.22. Decimals of 5e-4 count as 4.
Signs are ignored, as prose states magnitudes: "a gap of 0.32 nats" is backed by -0.32. A
percentage p is backed by a printed percentage that rounds to p, or by a printed fraction f
(without %) with at least d + 2 decimals and 100 f rounding to p: 38 % by 38 %, 38.2 % or
0.382; "3 %" by 3.2 % but not by 3.8 %. A number without % is never backed by a percentage.

**Quoted numbers.** A sentence that cites its source in parentheses is exempt, all its
numbers: an author and year, "(Burda et al., 2016, Table 1)", "Burda et al. (2016)",
"(Smith & Topin, 2019)", or a parenthesis that starts with a lecture reference, "(L17.5)",
"(lecture L17.4, 12:30)". The reader sees the citation, so keep measured numbers out of such
sentences. A number in a derivation ("ln 9 ≈ 2.197") is not exempt: a cell must print it.
"""

from __future__ import annotations

import html
import io
import re
import tokenize
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import PurePath
from typing import Any
from urllib.parse import unquote

from bs4 import BeautifulSoup
from nbconvert.filters.markdown_mistune import MarkdownWithMath

__all__ = ["ProseNumber", "OutputNumber", "Unbacked", "prose_numbers", "output_numbers",
           "code_numbers", "named_notebooks", "is_backed", "unbacked_numbers",
           "format_unbacked"]


@dataclass(frozen=True)
class ProseNumber:
    """A number quoted in markdown: its text, value, decimals, whether it is a percentage
    (``value`` is then in percent), whether a citation exempts it, and its sentence."""

    text: str
    value: float
    decimals: int
    percent: bool
    sentence: str
    cited: bool = False


@dataclass(frozen=True)
class OutputNumber:
    """A number printed by a cell or written in its code; ``decimals`` as printed (5e-4: 4)."""

    text: str
    value: float
    decimals: int
    percent: bool = False


@dataclass(frozen=True)
class Unbacked:
    """A prose number of ``notebook`` (markdown cell ``cell``) that no evidence backs, with
    the nearest evidence numbers (within 10 %), each as ``"text (notebook)"``."""

    notebook: str
    cell: int
    number: ProseNumber
    nearest: tuple[str, ...] = ()

    def __str__(self) -> str:
        near = f" (nearest: {', '.join(self.nearest)})" if self.nearest else " (nothing near)"
        return f"{self.notebook}, cell {self.cell}: {self.number.text}{near}\n    " \
               f"{self.number.sentence}"


_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUP = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_PROSE = re.compile(rf"""
    (?<![\w.^])
    (?P<sign>[-−+](?=\d))?
    (?P<int>\d{{1,3}}(?:(?:,|\{{,\}})\d{{3}})+(?!\d)|\d+)
    (?P<frac>\.\d+)?
    (?!\d)(?!\.\d)
    (?:[eE](?P<e>[-−+]?\d+)
      |\s*(?:\\cdot|\\times|×|·|⋅)\s*10\s*(?:\^\s*\{{?\s*(?P<tex>[-−+]?\d+)\s*\}}?
                                          |(?P<sup>[⁻⁺]?[{_SUP}]+))
      |\^\s*\{{\s*(?P<pow>[-−]\d+)\s*\}}|\^(?P<pow1>[-−]?\d)|(?P<powsup>⁻[{_SUP}]+))?
    (?P<pct>\s*(?:\\[,;:!]|~|[\u00a0\u2009\u202f])?\s*(?:\\%|%|percent\b|per\s+cent\b))?
""", re.VERBOSE)
_OUTPUT = re.compile(r"(?<![\w.])(?P<sign>[-−+])?"
                     r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)(?!\d)"
                     r"(?:[eE](?P<e>[-+]?\d+))?(?P<pct>\s?%)?")
_REFERENCE = re.compile(r"\b(?:[Ss]ection|[Ss]ec\.|§|[Tt]able|[Ff]igure|[Ff]ig\.|[Ee]q\.|"
                        r"[Ee]quation|[Vv]ersion|Python)\s*$")
_CITATION = re.compile(
    r"\(\s*[A-Z][\w'’-]+(?:\s+(?:et\s+al\.|(?:&|and)\s+[A-Z][\w'’-]+))?,?\s+(?:19|20)\d\d[a-z]?"
    r"\b[^()]*\)"                                                       # (Burda et al., 2016)
    r"|\b[A-Z][\w'’-]+(?:\s+(?:et\s+al\.|(?:&|and)\s+[A-Z][\w'’-]+))?\s+\((?:19|20)\d\d[a-z]?"
    r"\b[^()]*\)"                                                       # Burda et al. (2016)
    r"|\(\s*(?:[Ll]ecture\s+)?L\d+\.\d+\b[^()]*\)")                     # (L17.5), (lecture L17.4)
_NAMED = re.compile(r"\bnotebooks?\s+(\d{1,2}(?:(?:\s*,\s*|\s*,?\s+(?:and|or)\s+|\s*[–-]\s*)"
                    r"\d{1,2}\b)*)|\b(\d{1,2})[a-z]?_[\w-]*\.ipynb", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]*_”’]*\s+(?=[A-Z$(\[*\"“_])")
_ABBREVIATIONS = {"al.", "e.g.", "i.e.", "cf.", "vs.", "fig.", "eq.", "approx.", "resp."}
#: the parser with which nbconvert renders markdown on the site: mistune 3 with nbconvert's
#: math rules (``$…$``, ``$$…$$``, ``\\begin{…}…\\end{…}``); with no renderer it returns the tree
_PARSER = MarkdownWithMath(renderer=None)
_INLINE_HOLDERS = {"paragraph", "block_text", "heading", "def_list_head"}


def _html_text(markup: str) -> str:
    """The text of an HTML fragment, without scripts, styles and comments; tags part words."""
    soup = BeautifulSoup(markup, "html.parser")
    for element in soup(["script", "style"]):
        element.decompose()
    return soup.get_text(" ")


def _inline(tokens: Iterable[Mapping[str, Any]], shown: bool = False) -> str:
    """The prose of inline tokens: text (entities decoded), emphasis, a link's text, an image's
    alt text, and math as written between its delimiters. Code spans, and links whose text is
    their own address (``<https://…>``, a bare URL), are blanked out (as many spaces), or kept
    as written if ``shown`` (the same length: the sentence shown in a message); HTML tags and
    comments become a space."""
    parts = []
    for token in tokens:
        kind, raw = token["type"], token.get("raw", "")
        if kind == "text":
            parts.append(html.unescape(raw))
        elif kind in ("inline_math", "block_math"):
            delimiter = "$" if kind == "inline_math" else "$$"
            parts.append(f"{delimiter}{raw}{delimiter}")
        elif kind == "latex_environment":
            name, body = token["attrs"]["name"], token["attrs"]["body"]
            parts.append(f"\\begin{{{name}}}{body}\\end{{{name}}}")
        elif kind in ("softbreak", "linebreak"):
            parts.append("\n")
        elif kind == "codespan" or (kind == "link" and _is_address(token)):
            text = f"`{raw}`" if kind == "codespan" else _inline(token["children"])
            parts.append(text if shown else " " * len(text))
        elif "children" in token:  # emphasis, strong, a link's text, an image's alt text
            parts.append(_inline(token["children"], shown))
        else:  # inline_html: a tag or a comment
            parts.append(" ")
    return "".join(parts)


def _is_address(link: Mapping[str, Any]) -> bool:
    """Whether a link shows its own address as its text: ``<https://…>``, a bare URL."""
    url = unquote(link["attrs"]["url"]).removeprefix("mailto:")
    return _inline(link["children"]) == url


def _blocks(tokens: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    """The prose of every paragraph, heading, list item, table row (cells joined by `` | ``)
    and HTML block of a syntax tree, in reading order, code blocks left out: each as the text
    to read numbers from and the same text with its code shown (:func:`_inline`)."""
    for token in tokens:
        kind = token["type"]
        if kind in _INLINE_HOLDERS:
            yield _inline(token["children"]), _inline(token["children"], shown=True)
        elif kind in ("table_head", "table_row"):
            cells = [cell["children"] for cell in token["children"]]
            yield " | ".join(map(_inline, cells)), " | ".join(_inline(c, True) for c in cells)
        elif kind == "block_html":
            yield (_html_text(token["raw"]),) * 2
        elif kind != "block_code" and "children" in token:  # lists, quotes, tables
            yield from _blocks(token["children"])


def _sentences(text: str) -> Iterator[tuple[int, int]]:
    """Start and end of every sentence of a block: it is split at a full stop followed by a
    capital, but not after "et al." and other abbreviations."""
    cut = 0
    for match in _SENTENCE_END.finditer(text):
        word = text[cut:match.start() + 1].split()[-1].lower().lstrip("(*_")
        if word not in _ABBREVIATIONS:
            yield cut, match.start() + 1
            cut = match.end()
    yield cut, len(text)


def _to_decimal(digits: str) -> Decimal:
    return Decimal(digits.replace("{,}", "").replace(",", "").replace("_", ""))


def prose_numbers(markdown: str) -> list[ProseNumber]:
    """Every number that the rules of this module count in ``markdown``, in reading order."""
    tokens, _ = _PARSER.parse(markdown)
    return [number for text, shown in _blocks(tokens) for begin, end in _sentences(text)
            for number in _sentence_numbers(text, begin, end, shown)]


def _sentence_numbers(text: str, begin: int, end: int, shown: str) -> list[ProseNumber]:
    """The numbers of the sentence ``text[begin:end]`` of a block's prose (``shown``: the
    block with its code, for the message)."""
    sentence = " ".join(shown[begin:end].split())
    cited = bool(_CITATION.search(text[begin:end]))
    previous: tuple[re.Match[str], bool] | None = None
    raw: list[tuple[re.Match[str], Decimal, int, bool]] = []
    found: list[ProseNumber] = []
    for m in _PROSE.finditer(text, begin, end):
        if _REFERENCE.search(text[max(begin, m.start() - 12):m.start()]):
            continue
        mantissa = _to_decimal(m["int"] + (m["frac"] or ""))
        decimals = len(m["frac"] or "") - 1 if m["frac"] else 0
        power = m["pow"] or m["pow1"] or (m["powsup"] or "").translate(_SUPERSCRIPT)
        exponent = m["e"] or m["tex"] or (m["sup"] or "").translate(_SUPERSCRIPT)
        if power and m["int"] == "10" and not m["frac"]:
            mantissa, decimals = Decimal(1), 0
            exponent = power
        if exponent:
            k = int(exponent.replace("−", "-"))
            mantissa, decimals = mantissa.scaleb(k), decimals - k
        percent = bool(m["pct"])
        if previous is not None and percent and not previous[1]:
            gap = text[previous[0].end():m.start()]
            if re.fullmatch(r"\s*\$?\s*(?:–|—|-|to)\s*\$?\s*", gap):
                raw[-1] = (*raw[-1][:3], True)  # 58–66 %: both ends are percentages
        raw.append((m, mantissa, decimals, percent))
        previous = (m, percent)
    for m, value, decimals, percent in raw:
        if percent or decimals > 0:
            sign = -1 if m["sign"] in ("-", "−") else 1
            found.append(ProseNumber(m.group().strip(), sign * float(value), decimals,
                                     percent, sentence, cited))
    return found


def _parse_output(text: str) -> list[OutputNumber]:
    numbers = []
    for m in _OUTPUT.finditer(text):
        frac = m["num"].partition(".")[2]
        exponent = int(m["e"]) if m["e"] else 0
        value = float(_to_decimal(m["num"]).scaleb(exponent))
        if m["sign"] in ("-", "−"):
            value = -value
        numbers.append(OutputNumber(m.group().strip(), value, len(frac) - exponent,
                                    bool(m["pct"])))
    return numbers


def _output_text(output: Mapping[str, Any]) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return "".join(text) if isinstance(text, list) else text
    data = output.get("data", {})
    parts = []
    for mime in ("text/plain", "text/markdown", "text/latex", "text/html"):
        value = data.get(mime)
        if value is None:
            continue
        value = "".join(value) if isinstance(value, list) else value
        if mime == "text/html":
            value = _html_text(value)
        parts.append(value)
    return "\n".join(parts)


def output_numbers(nb: Mapping[str, Any]) -> list[OutputNumber]:
    """Every number in the text outputs of ``nb``'s code cells (streams, plain text, HTML
    tables, markdown and LaTeX outputs; not images, not errors, not the source code)."""
    numbers = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", _output_text(output))
            numbers.extend(_parse_output(text))
    return numbers


def code_numbers(nb: Mapping[str, Any]) -> list[OutputNumber]:
    """Every numeric literal in ``nb``'s code cells, comments left out (``0.1``, ``5e-4``)."""
    numbers = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            literals = [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
                        if t.type == tokenize.NUMBER]
        except (tokenize.TokenError, SyntaxError):  # not Python after all: drop the comments
            literals = [m.group() for m in _OUTPUT.finditer(re.sub(r"#.*", "", source))]
        for literal in literals:
            if not literal.lower().endswith("j") and literal[:2].lower() not in ("0x", "0o", "0b"):
                numbers.extend(_parse_output(literal.replace("_", "")))
    return numbers


def named_notebooks(markdown: str, names: Iterable[str]) -> set[str]:
    """The ``names`` (file names or stems) that ``markdown`` refers to by number:
    "notebook 05", "notebooks 04 and 06", "notebooks 02–05" or a link to ``05_name.ipynb``."""
    wanted: set[int] = set()
    for match in _NAMED.finditer(markdown):
        if match[2]:
            wanted.add(int(match[2]))
            continue
        for low, high in re.findall(r"(\d+)(?:\s*[–-]\s*(\d+))?", match[1]):
            wanted.update(range(int(low), int(high or low) + 1))
    prefixes = {name: re.match(r"\d+", PurePath(name).name) for name in names}
    return {name for name, m in prefixes.items() if m and int(m.group()) in wanted}


def is_backed(number: ProseNumber, evidence: Iterable[OutputNumber]) -> bool:
    """Whether some evidence number rounds to ``number`` (the rules in the module docstring)."""
    return any(_distance(number, e) <= 0.5 * 10.0 ** -number.decimals * (1 + 1e-9) + 1e-12
               for e in evidence if _comparable(number, e))


def _comparable(number: ProseNumber, e: OutputNumber) -> bool:
    if number.percent and not e.percent:  # a fraction, read in percent
        return e.decimals - 2 >= number.decimals
    return e.percent == number.percent and e.decimals >= number.decimals


def _distance(number: ProseNumber, e: OutputNumber) -> float:
    scale = 100.0 if number.percent and not e.percent else 1.0
    return abs(abs(e.value) * scale - abs(number.value))


def _nearest(number: ProseNumber, evidence: Sequence[tuple[OutputNumber, str]],
             count: int = 3) -> tuple[str, ...]:
    near = []
    for e, source in evidence:
        if e.percent != number.percent and not (number.percent and e.decimals > 0):
            continue  # a percentage is near a percentage or a fraction, a number a number
        if not e.percent and e.decimals <= 0 < number.decimals:
            continue  # an integer says nothing about a decimal's digits
        if _distance(number, e) <= max(0.1 * abs(number.value), 10.0 ** -number.decimals):
            near.append((_distance(number, e), f"{e.text} ({source})"))
    return tuple(dict.fromkeys(text for _, text in sorted(near)))[:count]


def unbacked_numbers(executed: Mapping[str, Any]) -> list[Unbacked]:
    """For each notebook of ``executed`` (name or file name to an executed notebook), the prose
    numbers that neither its evidence nor that of the notebooks it names backs; cited
    sentences are exempt. Sorted by notebook name, then cell."""
    evidence = {name: [(e, PurePath(name).stem) for e in output_numbers(nb)] +
                [(e, f"{PurePath(name).stem}, code") for e in code_numbers(nb)]
                for name, nb in executed.items()}
    found = []
    for name in sorted(executed):
        cells = [(i, "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
                 for i, c in enumerate(executed[name]["cells"]) if c["cell_type"] == "markdown"]
        sources = {name} | named_notebooks("\n\n".join(s for _, s in cells), executed)
        pool = [item for source in sorted(sources) for item in evidence[source]]
        for index, markdown in cells:
            for number in prose_numbers(markdown):
                if not number.cited and not is_backed(number, (e for e, _ in pool)):
                    found.append(Unbacked(PurePath(name).stem, index, number,
                                          _nearest(number, pool)))
    return found


def format_unbacked(items: Sequence[Unbacked]) -> str:
    """One readable message: each unbacked number with its notebook, cell and sentence."""
    if not items:
        return "every number in the prose is backed by an output"
    return f"{len(items)} numbers in the prose are printed by no cell:\n" + \
        "\n".join(str(item) for item in items)
