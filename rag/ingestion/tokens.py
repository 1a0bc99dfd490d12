"""Counting and cutting tokens as the embedder does, for chunking in processes that hold no
embedder (the parsing workers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

COUNT_MEMO_CHARS = 50_000_000


def remembering(count: Callable[[Sequence[str]], list[int]]) -> Callable[[Sequence[str]], list[int]]:
    """``count`` (texts -> token counts), remembering recent answers.

    The chunker counts a section's elements, then the sentences of a section too big for one
    chunk: an element that is one sentence is counted twice, and repetitive files repeat whole
    paragraphs. Remembering halves the tokenising of a one-line 10 MB file. What is held is
    bounded by characters (COUNT_MEMO_CHARS).
    """
    memo: dict[str, int] = {}
    held = 0

    def counted(texts: Sequence[str]) -> list[int]:
        nonlocal held
        if not texts:
            return []
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if missing:
            if held > COUNT_MEMO_CHARS:
                memo.clear()
                held = 0
            for text, n in zip(missing, count(missing)):
                memo[text] = n
                held += len(text)
        return [memo[t] for t in texts]

    return counted


def token_functions(source: str) -> tuple[Callable[[Sequence[str]], list[int]], Callable[[str, int], list[str]]]:
    """Token counting and cutting with the tokenizer at ``source``, as the embedder counts.

    A model folder with a ``tokenizer.json`` is read with the ``tokenizers`` library alone:
    importing transformers took most of a parsing worker's ~7 s start (same tokens; tested).
    ``"python:MODULE"`` (embedders that are not transformers models, ``rag/embedders/``) calls
    that module's ``token_functions()``. Anything else goes through ``transformers.AutoTokenizer``.
    """
    if source.startswith("python:"):
        import importlib

        module_count, module_split = importlib.import_module(source.removeprefix("python:")).token_functions()
        return remembering(module_count), module_split
    path = Path(source) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        fast = Tokenizer.from_file(str(path))
        fast.no_truncation()
        fast.no_padding()

        @remembering
        def count(texts: Sequence[str]) -> list[int]:
            return [len(e.ids) for e in fast.encode_batch(list(texts), add_special_tokens=False)] if texts else []

        def offsets(text: str) -> list[tuple[int, int]]:
            return fast.encode(text, add_special_tokens=False).offsets
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)

        def count(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            ids = tokenizer(
                list(texts),
                add_special_tokens=False,
                return_attention_mask=False,
                return_token_type_ids=False,
                verbose=False,
            )["input_ids"]
            return [len(i) for i in ids]

        def offsets(text: str) -> list[tuple[int, int]]:
            return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
                "offset_mapping"
            ]

    def split(text: str, max_tokens: int) -> list[str]:
        marks = offsets(text)
        cuts = [marks[i][0] for i in range(max_tokens, len(marks), max_tokens)]
        bounds = [0, *cuts, len(text)]
        return [text[a:b] for a, b in zip(bounds, bounds[1:]) if text[a:b]]

    return count, split
