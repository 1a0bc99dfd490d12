"""When a local generation stops early: a stop sequence in the new text, the reader hanging up,
or the model repeating itself (a sentence, or in Chinese a clause, it already wrote).

:class:`_StopOnText` and :class:`_StopOnLoop` are transformers stopping criteria; the
ONNX Runtime worker (:mod:`rag.generation.onnx.worker`) uses :func:`cycles` and
:func:`repeats_itself` in its own decoding loop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from rag.generation.base import find_stop


class _StopOnText:
    """Stops generation once the new text holds a stop sequence, or when the reader hung up."""

    def __init__(self, tokenizer: Any, prompt_tokens: int, stops: Sequence[str], cancel: threading.Event) -> None:
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens
        self.stops = [s for s in stops if s]
        # Enough trailing tokens to contain the longest stop sequence (a token is >= 1 character
        # for text, and a few extra cover tokens that straddle the start of the sequence).
        self.window = max((len(s) for s in self.stops), default=0) + 4
        self.cancel = cancel
        self.visible = False  # the text before the window shows a visible character

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = self.cancel.is_set()
        if not done and self.stops:
            generated = input_ids[0, self.prompt_tokens :]
            cut = max(0, generated.shape[0] - self.window)
            if not self.visible and cut:
                self.visible = bool(self.tokenizer.decode(generated[:cut], skip_special_tokens=True).strip())
            text = self.tokenizer.decode(generated[cut:], skip_special_tokens=True)
            done = find_stop(text, self.stops, started=self.visible) is not None
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _StopOnLoop:
    """Stops generation when the model starts repeating a whole sentence or line it already wrote.

    Small greedy models fall into loops ("The allowance is 45 euros. The allowance is 45 euros.
    ...") that would otherwise run to ``max_new_tokens``; nothing after the first repeat is
    worth the time. The repeat itself stays in the text (the stream has shown it already),
    so callers that care remove it (the answer pipeline does).
    """

    min_chars = 12

    def __init__(self, tokenizer: Any, prompt_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        generated = input_ids[0, self.prompt_tokens :].tolist()
        done = cycles(generated)
        if not done:
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            done = repeats_itself(text, self.min_chars)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def cycles(tokens: Sequence[int], min_tokens: int = 12, max_period: int = 40, times: int = 3) -> bool:
    """Whether ``tokens`` end in the same run of tokens ``times`` times in a row (a run of at
    least two tokens, ``min_tokens`` in all): the clause-level loop a small model falls into
    in Chinese ("是一种节奏，是一种节奏，是一种节奏，"), which has no sentence end to catch."""
    n = len(tokens)
    for period in range(2, max_period + 1):
        if period * times > n:
            break
        if period * times < min_tokens:
            continue
        unit = tokens[n - period :]
        if all(tokens[n - k * period : n - (k - 1) * period] == unit for k in range(2, times + 1)):
            return True
    return False


def repeats_itself(text: str, min_chars: int = 12) -> bool:
    """Whether the last complete sentence or line of ``text`` already occurred earlier in it."""
    from rag.text import split_sentences

    if not text or text[-1] not in "\n .。!！?？":
        return False
    units = [u.strip() for u in split_sentences(text.replace("\n", "\n\n"))]
    units = [u for u in units if u]
    if len(units) < 2:
        return False
    last = units[-1]
    weight = len(last) + sum(1 for ch in last if ord(ch) >= 0x2E80)  # a CJK character says about two letters' worth
    return weight >= min_chars and last in units[:-1]
