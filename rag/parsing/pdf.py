"""PDF files: partitioned with unstructured's fast strategy, running heads and feet dropped,
and an empty result explained."""

from __future__ import annotations

import importlib.util
import io
import logging
import re
import unicodedata
from pathlib import Path

from rag.documents import Element
from rag.errors import ParseError
from rag.parsing.chinese import _SENTENCE_END, chinese_is_paragraph, chinese_is_title
from rag.parsing.elements import _to_elements
from rag.parsing.failures import _describe
from rag.text import cjk_ratio


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
    pages: dict[tuple[str, str], set] = {}
    for element in elements:
        if element.kind in ("Header", "Footer") and len(element.text) <= _MAX_RUNNING_HEAD:
            pages.setdefault(_edge_shape(element), set()).add(element.page)
    tidy: list[Element] = []
    section: str | None = None
    for element in elements:
        text = _LIGATURES.sub(lambda m: unicodedata.normalize("NFKC", m.group()), element.text)
        kind = element.kind
        if kind != "Table":
            text = _CJK_WRAP.sub("", text)
        if kind in ("Header", "Footer"):
            if len(pages.get(_edge_shape(element), ())) > 1 or _PAGE_NUMBER.match(text):
                continue
            if kind == "Header" and _reads_like_heading(text):
                kind = "Title"
        if kind == "Title":
            section = text
        tidy.append(Element(text=text, kind=kind, page=element.page, section=section))
    return tidy


def _edge_shape(element: Element) -> tuple[str, str]:
    """What a page head or foot is recognised by on other pages: its kind and its text,
    lower-cased, with white space folded and numbers blanked."""
    return element.kind, re.sub(r"\d+", "#", " ".join(element.text.lower().split()))


def _reads_like_heading(text: str) -> bool:
    """Short, mostly letters, and not a sentence: a heading rather than a line of running text
    or a date."""
    letters = len(_LETTER.findall(text))
    if letters * 2 < len(text.replace(" ", "")):
        return False
    if cjk_ratio(text) >= 0.5:
        return chinese_is_title(text) and not chinese_is_paragraph(text)
    return len(text.split()) <= 12 and not text.endswith(_SENTENCE_END + (",", ":", ";"))


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
