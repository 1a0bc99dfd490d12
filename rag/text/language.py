"""Which language a text is in, and the character classes that tell Chinese from the rest.

Chinese has no spaces between words, so the other text helpers ask here whether a piece of text
is Chinese before they split or tokenise it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# CJK Unified Ideographs (+ extension A and compatibility ideographs).
CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{CJK_RANGES}]")


def cjk_ratio(text: str) -> float:
    """Share of letters in ``text`` that are CJK ideographs (0.0 for text without letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if CJK_RE.match(ch)) / len(letters)


def detect_language(text: str) -> str:
    """``"zh"`` when Chinese characters make up a fair share of the letters, else ``"en"``."""
    return "zh" if cjk_ratio(text) >= 0.2 else "en"


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds at least one Chinese (CJK) ideograph."""
    return bool(CJK_RE.search(text))


def normalize(text: str) -> str:
    """NFKC-fold (full-width letters and digits to ASCII) and lowercase."""
    return unicodedata.normalize("NFKC", text).lower()


def join_nonempty(parts: Iterable[str | None], sep: str = " ") -> str:
    """The parts that are neither ``None`` nor empty, joined by ``sep``."""
    return sep.join(p for p in parts if p)
