"""Embedders other than sentence-transformers, one file each, chosen by a short name.

``rag.embedding.EMBEDDERS`` maps each short name (``embed_model = "use-multilingual-v3"``) to
the class in this package that implements it; :func:`rag.embedding.make_embedder` loads it.
"""
