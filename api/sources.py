"""Citations as people read them: ``[1] travel-policy.md, p. 2, "Hotels"``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SOURCES_HEADING = "Sources:"


def source_label(citation: Mapping[str, Any]) -> str:
    """Where a cited passage comes from: file, page and section, whichever are known."""
    parts = [str(citation.get("source") or "?")]
    if citation.get("page"):
        parts.append(f"p. {citation['page']}")
    if citation.get("section"):
        parts.append(f"\u201c{citation['section']}\u201d")
    return ", ".join(parts)


REASONING_HEADING = "Steps:"


def sources_block(
    citations: Sequence[Mapping[str, Any]],
    evidence: Mapping[str, Any] | None = None,
    reasoning: Sequence[Mapping[str, Any]] = (),
) -> str:
    """A "Sources:" list to append to an answer's text; empty when nothing is cited. A short
    answer's evidence sentence is quoted under the source it comes from; a multi-hop answer's
    steps (what each hop asked and found, with its citation) are listed under the sources."""
    if not citations:
        return ""
    lines = []
    for c in citations:
        lines.append(f"[{c.get('number')}] {source_label(c)}")
        if evidence and evidence.get("passage") == c.get("number") and evidence.get("text"):
            lines.append(f"    > {evidence['text']}")
    block = "\n\n" + SOURCES_HEADING + "\n" + "\n".join(lines)
    if reasoning:
        steps = []
        for number, hop in enumerate(reasoning, start=1):
            cited = f" [{hop['citation']}]" if hop.get("citation") else ""
            found = hop.get("value") or hop.get("finding") or "(nothing found)"
            steps.append(f"{number}. {hop.get('question', '')} -> {found}{cited}")
        block += "\n\n" + REASONING_HEADING + "\n" + "\n".join(steps)
    return block


def strip_sources(text: str) -> str:
    """An earlier answer without the "Sources:" list we appended to it (history stays clean)."""
    cut = text.rfind("\n\n" + SOURCES_HEADING + "\n")
    return text[:cut] if cut >= 0 else text
