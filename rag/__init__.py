"""rag: a retrieval-augmented question-answering library.

The pipeline reads as the modules do: parsing -> chunking -> embedding -> stores/index ->
retrieval -> prompting -> generation -> answering. ``ingest``, ``api`` and ``eval`` are thin
front doors onto it.
"""

from rag import offline as _offline

_offline.apply()

__version__ = "0.1.0"
