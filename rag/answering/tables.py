"""Tables read by their row and column names: the cell a question names.

A small model reads a table's columns poorly ("三月 | 半发酵茶的香气 | 铁观音" asked which tea:
"半发酵茶的香气"). When the question names a row by its first cell and a column by its header,
and asks for that column's value, the cell is the answer; the check ``table_cell``
(:mod:`rag.answering.checks`) gives it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.answering.edges import LINKING_EN, WORD_RE
from rag.answering.quote import reading_units
from rag.text.language import has_cjk


def _cells(line: str, offset: int) -> list[tuple[int, int, str]]:
    """The cells of a table row ``line`` (found at ``offset`` of its passage): their start, end
    and text, without the spaces around them."""
    cells = []
    at = 0
    for piece in line.split("|"):
        start = at + len(piece) - len(piece.lstrip())
        text = piece.strip()
        cells.append((offset + start, offset + start + len(text), text))
        at += len(piece) + 1
    if line.strip().startswith("|"):
        cells = cells[1:]
    if line.strip().endswith("|"):
        cells = cells[:-1]
    return cells


def _names(question: str, words: set[str], name: str) -> bool:
    """Whether the question names a table's cell or column ``name``: a Chinese one as it is
    written, another by all its words. A row number ("1", "12") names nothing: any question
    with that figure in it would pick its row."""
    if not name or re.fullmatch(r"\d{1,2}\.?", name):
        return False
    if has_cjk(name):
        return name in question
    wanted = {w.lower() for w in WORD_RE.findall(name) if any(ch.isalnum() for ch in w)} - LINKING_EN
    return bool(wanted) and wanted <= words


# After the column's name, the question asks for its value ("介绍的茶是什么？").
_ASKS_AFTER_ZH = re.compile(r"^(?:是|为|有)?(?:什么|哪|多少|几|谁|多大|多高|多长|多久)")


def named_cell(question: str, passages: Sequence[str]) -> tuple[int, int, int, str, str] | None:
    """The cell of the one table row ``question`` names by its first cell, in the column it
    names and asks for: (1-based passage number, start, end, the cell's text, the column's
    name); ``None`` when there is none, or more than one."""
    lowered = question.lower()
    words = {w.lower().strip("?'’") for w in WORD_RE.findall(question)}
    found: list[tuple[int, int, int, str, str]] = []
    for number, passage in enumerate(passages, start=1):
        for unit in reading_units(passage):
            if not unit.header:
                continue
            offset = passage.find(unit.text)
            row, names = _cells(unit.text, offset), [c[2] for c in _cells(unit.header, 0)]
            if offset < 0 or len(row) != len(names) or len(row) < 2 or not _names(lowered, words, row[0][2].lower()):
                continue
            for (start, end, cell), name in list(zip(row, names))[1:]:
                if not cell or not _names(lowered, words, name.lower()):
                    continue
                after = lowered.split(name.lower(), 1)[1].lstrip() if has_cjk(name) else ""
                if has_cjk(name) and not _ASKS_AFTER_ZH.match(after):
                    continue  # "三月介绍的茶原产于哪里？" asks about the tea, not for it
                found.append((number, start, end, cell, name))
    return found[0] if len({(n, a) for n, a, _, _, _ in found}) == 1 else None
