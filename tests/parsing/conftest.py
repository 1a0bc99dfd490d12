"""Shared by the parsing tests: the network cut off for every test, and helpers to check elements.

Every test in this folder runs with the network cut off: a download attempt anywhere in
unstructured, spaCy or NLTK fails the test.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rag.documents import Element
from rag.errors import ParseError

MAX = 10_000_000

# --- no network ------------------------------------------------------------------------

_NETWORK_ATTEMPTS: list[str] = []


def _block_network() -> None:
    """Record and refuse every connection and DNS lookup in this process."""

    def refuse(what: str):
        def call(*args, **kwargs):
            _NETWORK_ATTEMPTS.append(f"{what}{args[:2]!r}")
            raise OSError(f"network is disabled in tests ({what})")

        return call

    socket.socket.connect = refuse("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse("connect_ex")  # type: ignore[method-assign]
    socket.create_connection = refuse("create_connection")  # type: ignore[assignment]
    socket.getaddrinfo = refuse("getaddrinfo")  # type: ignore[assignment]


def _network_attempts() -> list[str]:
    return list(_NETWORK_ATTEMPTS)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Cut the network for each test and fail it if anything tried to connect."""
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, getattr(socket.socket, name))
    monkeypatch.setattr(socket, "create_connection", socket.create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)
    _NETWORK_ATTEMPTS.clear()
    _block_network()  # monkeypatch restores the originals afterwards
    yield
    assert not _NETWORK_ATTEMPTS, f"parsing tried to reach the network: {_NETWORK_ATTEMPTS}"


# --- helpers ---------------------------------------------------------------------------


def texts(elements: list[Element]) -> str:
    return "\n".join(e.text for e in elements)


def by_text(elements: list[Element], fragment: str) -> Element:
    return next(e for e in elements if fragment in e.text)


def assert_well_formed(elements: list[Element]) -> None:
    assert elements
    for e in elements:
        assert e.text and e.text == e.text.strip()
        assert isinstance(e.kind, str) and e.kind
        assert e.page is None or (isinstance(e.page, int) and e.page >= 1)


def assert_helpful(error: pytest.ExceptionInfo[ParseError], path: Path, *words: str) -> None:
    """One sentence, naming the file, saying what to do."""
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message and message.endswith(".")
    assert "Traceback" not in message
    assert any(action in message for action in ("remove it", "retry", "raise max_file_mb")), message
    for word in words:
        assert word.lower() in message.lower(), message


CHINESE = (
    "长城简介\n\n"
    "长城是中国古代的军事防御工程，它东起山海关，西至嘉峪关，绵延一万多\n"
    "里，是世界上最伟大的建筑之一。修建长城的历史可以追溯到春秋战国时\n"
    "期。\n\n"
    "明长城是现存最完整的部分，全长八千八百五十一公里。\n\n"
    "参观信息\n\n"
    "八达岭长城每天早上六点半开放，旺季游客很多。\n"
)


def _without_space(text: str) -> str:
    return "".join(text.split())
