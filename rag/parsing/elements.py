"""unstructured's elements turned into ours, each with the nearest title above it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rag.documents import Element
from rag.parsing.chinese import _looks_like_cjk_sentence

logger = logging.getLogger(__name__)


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
