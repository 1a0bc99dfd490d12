"""Counting and cutting text by a model's own tokenizer.

Shared by the embedders and their ONNX query and document encoders, which all count a text's
tokens the way their model reads it; kept here, below all of them, so none imports another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def share_of(ids: Sequence[int], token_id: int | None) -> float:
    """Share of ``ids`` equal to ``token_id`` (0.0 when there is no such token or no ids)."""
    if token_id is None or not ids:
        return 0.0
    return sum(1 for i in ids if i == token_id) / len(ids)


def unknown_ratio(tokenizer: Any, text: str) -> float:
    """Share of the text's tokens that a transformers ``tokenizer`` maps to its unknown token."""
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    return share_of(ids, tokenizer.unk_token_id)


def split_by_counting(text: str, max_tokens: int, count: Callable[[Sequence[str]], list[int]]) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_tokens`` tokens as ``count`` counts them, for
    tokenizers that give no character offsets: each piece is the longest prefix that fits,
    found by bisection, moved back to a space when there is one in its last quarter."""
    pieces: list[str] = []
    rest = text
    while rest:
        if count([rest])[0] <= max_tokens:
            pieces.append(rest)
            break
        low, high = 1, len(rest)  # count(rest[:low]) fits (one character), rest does not
        while high - low > 1:
            middle = (low + high) // 2
            if count([rest[:middle]])[0] <= max_tokens:
                low = middle
            else:
                high = middle
        space = rest.rfind(" ", (3 * low) // 4, low)
        cut = space + 1 if space > 0 else low
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return [p for p in pieces if p]
