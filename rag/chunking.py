"""Structure-aware chunking, sized in the embedder's own tokens.

A document arrives as a list of elements (titles, paragraphs, list items, tables). Chunks
follow that structure:

* a section (a title and the elements under it) stays in one chunk when it fits;
* small neighbouring sections are packed together up to the size limit;
* a section too big for one chunk is cut at sentence ends (English and Chinese marks), with
  a few sentences of overlap between neighbours so a fact split across the cut is still found;
* a table is a chunk of its own (split by rows when it is too big);
* a single sentence longer than the limit is cut by tokens as a last resort.

Sizes are counted with the embedder's tokenizer, and every chunk is checked against the
embedder's maximum sequence length, because sentence-transformers silently truncates longer
input and the cut-off text would be unsearchable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.documents import Chunk, Element
from rag.text.sentences import split_sentences

TokenCounter = Callable[[Sequence[str]], list[int]]
ELEMENT_SEPARATOR = "\n\n"
# Raised whenever a change cuts the same elements into other chunks (see PARSER_VERSION).
CHUNKER_VERSION = 1


@dataclass
class _Piece:
    """A run of text with its place in the document and its token count."""

    text: str
    start: int
    tokens: int
    page: int | None
    section: str | None
    table: bool = False


class Chunker:
    """Turns a document's elements into chunks of at most ``max_tokens`` embedder tokens."""

    def __init__(
        self,
        count_tokens: TokenCounter,
        max_tokens: int,
        overlap_tokens: int = 32,
        split_tokens: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        if max_tokens < 16:
            raise ValueError("chunk size must be at least 16 tokens")
        self.count_tokens = count_tokens
        self.max_tokens = max_tokens
        self.overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))
        self._split_tokens = split_tokens

    def chunk(self, source: str, elements: Sequence[Element]) -> list[Chunk]:
        """Chunk one document; ``source`` is its path relative to the ingested root."""
        sections = self._sections(elements)
        chunks: list[Chunk] = []
        seen: dict[str, int] = {}
        for group in self._pack(sections):
            text = "".join(p.text for p in group).strip()
            if not text:
                continue
            first = group[0]
            lead = len(group[0].text) - len(group[0].text.lstrip())
            start = first.start + lead
            chunks.append(
                Chunk(
                    id=_chunk_id(source, text, seen),
                    text=text,
                    source=source,
                    page=first.page,
                    section=first.section,
                    kind="table" if first.table else "text",
                    start=start,
                    end=start + len(text),
                )
            )
        return chunks

    # -- structure -----------------------------------------------------------------------

    def _sections(self, elements: Sequence[Element]) -> list[list[_Piece]]:
        """Group elements into sections (a title starts one); tables stand alone."""
        sections: list[list[_Piece]] = []
        current: list[_Piece] = []
        offset = 0
        texts = [e.text for e in elements]
        counts = self.count_tokens([t + ELEMENT_SEPARATOR for t in texts]) if texts else []
        for element, tokens in zip(elements, counts):
            piece = _Piece(
                text=element.text + ELEMENT_SEPARATOR,
                start=offset,
                tokens=tokens,
                page=element.page,
                section=element.section,
                table=element.kind == "Table",
            )
            offset += len(piece.text)
            if piece.table:
                if current:
                    sections.append(current)
                sections.append([piece])
                current = []
            elif element.kind == "Title" and current:
                sections.append(current)
                current = [piece]
            else:
                current.append(piece)
        if current:
            sections.append(current)
        return sections

    def _pack(self, sections: list[list[_Piece]]) -> list[list[_Piece]]:
        """Pack whole sections together while they fit; split the ones that do not."""
        groups: list[list[_Piece]] = []
        pending: list[_Piece] = []
        pending_tokens = 0
        for section in sections:
            size = sum(p.tokens for p in section)
            is_table = section[0].table
            if size > self.max_tokens:
                if pending:
                    groups.append(pending)
                    pending, pending_tokens = [], 0
                groups.extend(self._split_section(section))
                continue
            if is_table:
                if pending:
                    groups.append(pending)
                    pending, pending_tokens = [], 0
                groups.append(section)
                continue
            if pending_tokens + size <= self.max_tokens:
                pending.extend(section)
                pending_tokens += size
            else:
                groups.append(pending)
                pending, pending_tokens = list(section), size
        if pending:
            groups.append(pending)
        return groups

    # -- splitting -----------------------------------------------------------------------

    def _split_section(self, section: list[_Piece]) -> list[list[_Piece]]:
        """Cut an oversized section at sentence ends (table rows for tables), with overlap."""
        units: list[_Piece] = []
        for piece in section:
            parts = _split_lines(piece.text) if piece.table else split_sentences(piece.text)
            counts = self.count_tokens(parts)
            offset = piece.start
            for part, tokens in zip(parts, counts):
                unit = _Piece(part, offset, tokens, piece.page, piece.section, piece.table)
                offset += len(part)
                if tokens > self.max_tokens:
                    units.extend(self._split_long(unit))
                else:
                    units.append(unit)

        groups: list[list[_Piece]] = []
        current: list[_Piece] = []
        current_tokens = 0
        for unit in units:
            if current and current_tokens + unit.tokens > self.max_tokens:
                groups.append(current)
                current = self._overlap(current, unit.tokens)
                current_tokens = sum(p.tokens for p in current)
            current.append(unit)
            current_tokens += unit.tokens
        if current:
            groups.append(current)
        return groups

    def _overlap(self, previous: list[_Piece], incoming: int) -> list[_Piece]:
        """The tail of ``previous`` to repeat at the start of the next chunk."""
        if not self.overlap_tokens or previous[-1].table:
            return []
        carried: list[_Piece] = []
        total = 0
        for piece in reversed(previous):
            if total + piece.tokens > self.overlap_tokens or total + piece.tokens + incoming > self.max_tokens:
                break
            carried.insert(0, piece)
            total += piece.tokens
        return carried

    def _split_long(self, unit: _Piece) -> list[_Piece]:
        """Cut one over-long sentence into token windows (last resort, no overlap)."""
        if self._split_tokens is not None:
            parts = self._split_tokens(unit.text, self.max_tokens)
        else:
            parts = _split_by_halving(unit.text, self.max_tokens, self.count_tokens)
        out: list[_Piece] = []
        offset = unit.start
        for part, tokens in zip(parts, self.count_tokens(parts)):
            out.append(_Piece(part, offset, tokens, unit.page, unit.section, unit.table))
            offset += len(part)
        return out


def _split_lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    return lines or [text]


def _split_by_halving(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Split text into pieces under ``max_tokens`` by repeated halving at white space."""
    if count([text])[0] <= max_tokens or len(text) < 2:
        return [text]
    middle = len(text) // 2
    cut = text.rfind(" ", 0, middle)
    cut = cut + 1 if cut > 0 else middle
    return _split_by_halving(text[:cut], max_tokens, count) + _split_by_halving(text[cut:], max_tokens, count)


def _chunk_id(source: str, text: str, seen: dict[str, int]) -> str:
    """A content hash: the same text from the same file keeps its id across runs.

    The id leaves out the offset, so an unchanged paragraph keeps its id (and its embedding)
    when text above it is edited; repeats of the same text in one file are numbered.
    """
    digest = hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:24]
    occurrence = seen.get(digest, 0)
    seen[digest] = occurrence + 1
    return digest if occurrence == 0 else f"{digest}-{occurrence}"
