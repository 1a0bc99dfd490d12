"""Old import path: the answer checks now live in :mod:`rag.answering` (citations, refusal,
quote, repairs). Kept so code written against ``rag.citations`` keeps working."""

from rag.answering.citations import (  # noqa: F401 - re-exported
    MARKER_RE,
    best_supporting_passage,
    build_citations,
    clean_markers,
    figures_in,
    only_asks,
    parse_markers,
    snippet_around,
    support,
    support_units,
)
from rag.answering.quote import best_sentence, complete_lead_in, names_only_a_heading  # noqa: F401
from rag.answering.refusal import REFUSALS, is_refusal, refusal_text  # noqa: F401
from rag.answering.repairs import drop_repeats  # noqa: F401
