"""Text decoding: UTF-8 first, then BOMs, BOM-less UTF-16, Chinese legacy encodings and what
charset-normalizer finds; binary data is refused."""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Sequence
from pathlib import Path

from rag.errors import ParseError
from rag.parsing.failures import _binary_error
from rag.text import CJK_RE

# Share of control characters above which decoded "text" is treated as binary data.
_MAX_CONTROL_SHARE = 0.01


# C0/C1 control characters other than the white-space ones (tab, newlines, form feed).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]+")
# Bytes that text in an ASCII-compatible encoding hardly ever holds: C0 controls other than
# tab, line feed, vertical tab, form feed, carriage return, SUB (an old end-of-file mark) and
# ESC (ISO-2022 shifts). Random or binary data is ~11% such bytes.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 26, 27)) + b"\x7f"
_TEXT_BYTES = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
# How much of a file the encoding tests look at; the whole file is then decoded strictly.
_SAMPLE_BYTES = 256 * 1024
# Share of a sample's characters that must read as plausible text (or, for a Chinese encoding,
# its ideographs that must be among the commonest) for a decoding to be taken.
_MIN_PLAUSIBLE = 0.9
# charset-normalizer's guesses that are all "Latin script, 8 bits": between them, bytes alone
# cannot tell French in cp1252 from Czech in cp1250 ("crème" / "crčme"), so the Western one
# is taken unless the other reads clearly better (see _western_score).
_LATIN_FAMILY = frozenset(
    {
        "cp1250",
        "cp1252",
        "cp1254",
        "cp1257",
        "cp1258",
        "latin_1",
        "iso8859_2",
        "iso8859_3",
        "iso8859_4",
        "iso8859_9",
        "iso8859_10",
        "iso8859_13",
        "iso8859_14",
        "iso8859_15",
        "iso8859_16",
        "mac_latin2",
        "mac_roman",
        "mac_iceland",
        "mac_turkish",
        "cp437",
        "cp850",
        "cp852",
        "cp858",
        "cp775",
        "cp1125",
        "hp_roman8",
        "cp037",
        "cp500",
        "cp1140",
    }
)


def _read_text(path: Path, data: bytes) -> str:
    """Decode a text-format file, refusing binary data and undecodable bytes."""
    text = _decode(path, data)
    if not text.strip():
        raise ParseError(f"{path} contains only white space; add text to it or remove it.")
    controls = sum(map(len, _CONTROL_CHARS.findall(text)))
    if "\x00" in text or controls > _MAX_CONTROL_SHARE * len(text):
        raise _binary_error(path)
    return text


def _control_share(data: bytes) -> float:
    """Share of ``data`` that is control bytes no text file holds (see _CONTROL_BYTES)."""
    return len(data.translate(None, _TEXT_BYTES)) / len(data) if data else 0.0


def _decode(path: Path, data: bytes) -> str:
    """The text of ``data``: UTF-8 when it is valid UTF-8 (most files, and the fast path), then
    a byte-order mark, BOM-less UTF-16, GB18030/GBK or Big5, or what charset-normalizer finds;
    refuses binary data and bytes that no encoding reads as plausible text."""
    try:
        return data.decode("utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8")
    except UnicodeDecodeError:
        pass
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise ParseError(
                    f"{path} starts with a {encoding.upper()} byte-order mark but is not valid {encoding.upper()}; "
                    "re-save it as UTF-8 and retry."
                ) from None
    text = _utf16_without_bom(data)
    if text is not None:
        return text
    text = _mostly_utf8(data)
    if text is not None:
        return text
    if b"\x00" in data or _control_share(data[:_SAMPLE_BYTES]) > _MAX_CONTROL_SHARE:
        raise _binary_error(path)
    text = _chinese_legacy(data)
    if text is not None:
        return text
    text = _detected(data)
    if text is not None:
        return text
    raise ParseError(
        f"{path} is not in a text encoding we recognise (tried UTF-8, UTF-16, GB18030, Big5, and "
        "charset-normalizer's guesses); re-save it as UTF-8 and retry."
    )


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 text with a few stray bytes (a bad copy, a file cut mid-character), with those bytes
    replaced: when its valid multi-byte characters outnumber the bad bytes fiftyfold. Text in an
    8-bit encoding has almost no valid UTF-8 sequences, so it never passes."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    wide = sum(1 for ch in text[:200_000] if ord(ch) > 127) - min(bad, 200_000)
    return text if bad and wide >= 50 * bad else None


def _utf16_without_bom(data: bytes) -> str | None:
    """``data`` as UTF-16 (little or big endian) without a BOM, when it reads as text that way."""
    if len(data) < 2 or len(data) % 2:
        return None
    best: tuple[float, str] | None = None
    for encoding in ("utf-16-le", "utf-16-be"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        score = _plausible_share(text[: _SAMPLE_BYTES // 2])
        if score >= _MIN_PLAUSIBLE and (best is None or score > best[0]):
            best = (score, text)
    return best[1] if best else None


def _plausible_share(text: str) -> float:
    """Share of characters that ordinary English, Western European or Chinese text is made of:
    printable ASCII and white space, Latin-1 letters, general and CJK punctuation, full-width
    forms, and the commonest Chinese characters. Text decoded with the wrong encoding lands
    all over Unicode instead."""
    if not text:
        return 0.0
    common = _common_hanzi()
    good = 0
    for ch in text:
        code = ord(ch)
        if (
            32 <= code < 127
            or ch in "\t\n\r\f"
            or 0xC0 <= code <= 0xFF
            or 0x2000 <= code <= 0x206F
            or 0x3000 <= code <= 0x303F
            or 0xFF00 <= code <= 0xFFEF
            or ch in common
        ):
            good += 1
    return good / len(text)


def _chinese_legacy(data: bytes) -> str | None:
    """``data`` as GB18030 (a superset of GBK and GB2312) or Big5, when one of them reads as
    real Chinese; GB18030 when both do.

    Either encoding accepts most byte pairs, so a clean decode proves little, and detectors
    confuse short Chinese texts with Korean or Japanese. Real Chinese text is nearly all made
    of the commonest characters of its script (GB2312's first level, 3,755 characters, for
    simplified; Big5's first level, 5,401, for traditional); the same bytes read with the wrong
    encoding give rare characters, symbols and kana.
    """
    best: tuple[float, str] | None = None
    for encoding, common in (("gb18030", _common_hanzi("gb2312")), ("big5", _common_hanzi("big5"))):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        score = _chinese_score(text[:100_000], common)
        if score >= _MIN_PLAUSIBLE and (best is None or score > best[0]):
            best = (score, text)
    return best[1] if best else None


def _chinese_score(text: str, common: frozenset[str]) -> float:
    """Share of the non-ASCII characters of ``text`` that are common Chinese characters or
    CJK/full-width punctuation; 0 when it holds no Chinese character at all."""
    frequent = rare = marks = others = 0
    for ch in text:
        code = ord(ch)
        if code < 128:
            continue
        if ch in common:
            frequent += 1
        elif CJK_RE.match(ch):
            rare += 1
        elif 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF or 0x2010 <= code <= 0x2027:
            marks += 1
        else:
            others += 1
    if not frequent:
        return 0.0
    return (frequent + marks) / (frequent + rare + marks + others)


@functools.cache
def _common_hanzi(encoding: str = "") -> frozenset[str]:
    """The first (most frequent) level of GB2312 or Big5, or both when ``encoding`` is ''."""
    if not encoding:
        return _common_hanzi("gb2312") | _common_hanzi("big5")
    trails: Sequence[int]
    if encoding == "gb2312":
        leads, trails = range(0xB0, 0xD8), range(0xA1, 0xFF)
    else:
        leads, trails = range(0xA4, 0xC7), [*range(0x40, 0x7F), *range(0xA1, 0xFF)]
    found = set()
    for lead in leads:
        for trail in trails:
            try:
                ch = bytes((lead, trail)).decode(encoding)
            except UnicodeDecodeError:
                continue
            if CJK_RE.match(ch):
                found.add(ch)
    return frozenset(found)


def _detected(data: bytes) -> str | None:
    """``data`` decoded with the encoding charset-normalizer finds, or None if it finds none."""
    import charset_normalizer

    sample = data
    if len(data) > _SAMPLE_BYTES:
        # Cut at a line end so the sample does not end inside a multi-byte character.
        cut = data.rfind(b"\n", 0, _SAMPLE_BYTES)
        sample = data[: cut + 1] if cut > 0 else data[:_SAMPLE_BYTES]
    # UTF-16 and UTF-32 without a BOM were tried already, against what text is made of; the
    # detector also guesses them for binary data with a repeating pattern.
    matches = [m for m in charset_normalizer.from_bytes(sample) if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        return None
    encodings = [m.encoding for m in matches]
    if encodings[0] in _LATIN_FAMILY:
        western = _decode_western(data)
        if western is not None and _western_score(western[:100_000]) >= _western_score(str(matches[0])[:100_000]):
            return western
    for encoding in encodings:  # the sample decoded; the rest of the file may not
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def _decode_western(data: bytes) -> str | None:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # bytes cp1252 leaves undefined: ISO 8859-1 maps every byte
        return data.decode("latin-1")


_WORD_CHAR = re.compile(r"[A-Za-z]")


# Non-ASCII punctuation of English and Western European text (cp1252's curly quotes, dashes,
# ellipsis, euro sign, guillemets, degree sign).
_WESTERN_MARKS = frozenset("‘’‚‛“”„–—…€•«»°·‹›\u00a0")


def _western_score(text: str) -> float:
    """Share of the non-ASCII characters next to an ASCII letter that are letters or common
    Western punctuation: in the right 8-bit encoding, accented letters sit inside words
    ("crème", "café’s"); in a wrong one they often come out as symbols ("cr³me")."""
    fine = inside = 0
    for i, ch in enumerate(text):
        if ord(ch) < 128:
            continue
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if _WORD_CHAR.match(before) or _WORD_CHAR.match(after):
            inside += 1
            fine += ch.isalpha() or ch in _WESTERN_MARKS
    return fine / inside if inside else 1.0
