"""The bad-input corpus: broken, odd and hostile files next to good ones, through a real ingest.

A folder is generated with a few good documents in several formats (English and Chinese) and
one or more files of each bad kind: empty and white-space files, random bytes under every text
and office extension, truncated and bomb-like archives, broken and extreme JSON, CSV and HTML,
huge one-line and repetitive text, NUL bytes, legacy encodings (GBK, GB18030, Big5, Latin-1,
cp1252, UTF-16 without a BOM, UTF-8 with one), odd names, links that dangle or loop, a FIFO,
a socket, a device, unreadable files and folders, a file over ``max_file_mb``, hidden files,
odd e-mails, and files that change or vanish while the ingest runs.

Then the real ``python -m ingest FOLDER --index-dir IX --json`` runs as a subprocess, and each
kind is one recorded case: the run did not abort (exit 0: the ingest has no "some files
skipped" exit code, a skipped file is a line in the summary), every good file is in the index
with its text, every bad file is either indexed correctly (the encodings: a known phrase is in
its chunks) or named in the summary's ``failed``/``skipped`` lists with a reason that says
what is wrong, and no file took more than 30 s to prepare or be refused.

Unreadable files need a user the file system refuses: as root (who reads mode-000 files), the
ingest runs under ``setpriv`` without the capabilities that bypass file permissions; without
``setpriv`` those two kinds are left out, and a note says so.

    python -m bench.reliability.bad_inputs            # full size (a 10 MB one-line and a 45 MB file)
    python -m bench.reliability.bad_inputs --quick    # smaller big files, for CI
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from bench.reliability import Outcome

REPO = Path(__file__).resolve().parents[2]
# The bar: no file may take longer than this to be parsed or refused.
MAX_FILE_SECONDS = 30.0
# What a reason must hold (any one of the words, case-insensitive) for a kind to count as named.
ANY_REASON: tuple[str, ...] = ()

ZH = "长城是中国古代的军事防御工程，全长约两万一千公里。它始建于春秋战国时期，秦朝统一后把各段连接起来。"
ZH_TW = "長城是中國古代的軍事防禦工程，全長約兩萬一千公里。它始建於春秋戰國時期。"
EN_ACCENTS = "The café on the Rue de la Paix served crème brûlée to a naïve critic from Zürich."


@dataclass
class Kind:
    """One kind of input: the file(s) it writes and what the ingest must do with them.

    ``expect``: "indexed" (in the index, with ``phrase`` in its chunks when given), "named"
    (in the summary's failed or skipped list, the reason holding one of ``words``), "either"
    (one or the other: a truncated PDF may still give its first page), or "absent" (neither
    indexed nor required in the summary: hidden files, folders)."""

    name: str
    path: str
    expect: str
    make: Callable[[Path], None]
    phrase: str = ""
    words: tuple[str, ...] = ANY_REASON
    needs_no_dac: bool = False  # only testable where permissions are enforced on this user


# -- writers ---------------------------------------------------------------------------------


def _write(path: Path, data: bytes | str, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _pdf(text_lines: list[str]) -> bytes:
    """A one-page text PDF in Helvetica (Latin-1 text), written to the PDF 1.4 layout by hand."""
    body = (
        b"BT /F1 12 Tf 72 720 Td 14 TL "
        + b" ".join(
            b"(" + line.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b") '"
            for line in text_lines
        )
        + b" ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Maintenance memo", level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx(title: str, bullets: list[str]) -> bytes:
    import pptx

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = title
    frame = slide.placeholders[1].text_frame
    for i, bullet in enumerate(bullets):
        (frame.paragraphs[0] if i == 0 else frame.add_paragraph()).text = bullet
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _eml(subject: str | None, body: str | None, attachment: bytes | None = None) -> bytes:
    message = EmailMessage()
    if subject is not None:
        message["Subject"] = subject
    message["From"] = "alice@example.com"
    message["To"] = "bob@example.com"
    message["Date"] = "Mon, 03 Jun 2024 10:00:00 +0000"
    if body is not None:
        message.set_content(body)
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="data.bin")
    return bytes(message)


def _zip_bomb_docx(unpacked_mb: int) -> bytes:
    """A docx whose document part unpacks to ``unpacked_mb`` MB of one repeated byte."""
    good = zipfile.ZipFile(io.BytesIO(_docx(["A small memo."])))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in good.infolist():
            if info.filename != "word/document.xml":
                out.writestr(info, good.read(info))
        with out.open("word/document.xml", "w", force_zip64=True) as part:
            block = b" " * (1 << 20)
            for _ in range(unpacked_mb):
                part.write(block)
    return buffer.getvalue()


def _one_line(size: int) -> str:
    """One line of ``size`` characters: 20 distinct sentences over and over, the marker first."""
    sentences = [f"Sentence {i} of the long line says the harbour pump turns at {3000 + i} rpm." for i in range(20)]
    block = " ".join(sentences) + " "
    return ("LONGLINEMARKER begins here. " + block * (size // len(block) + 1))[:size]


def _repetitive(size: int) -> str:
    para = "The harbour lighthouse keeps its lamp lit from dusk to dawn, and the pump runs at 3400 rpm.\n"
    return "REPETITIVEMARKER opens the file.\n\n" + para * (size // len(para))


# -- the corpus -------------------------------------------------------------------------------


def kinds(quick: bool) -> tuple[list[Kind], list[Kind]]:
    """(good files, bad kinds)."""
    line_mb, repetitive_mb, bomb_mb, array_items = (3, 10, 120, 5_000) if quick else (10, 45, 400, 50_000)
    good = [
        Kind(
            "good markdown",
            "good/guide.md",
            "indexed",
            lambda p: _write(
                p, "# Pump guide\n\nThe Zephyr pump runs at 3400 rpm.\n\n## Service\n\nService it yearly.\n"
            ),
            phrase="The Zephyr pump runs at 3400 rpm.",
        ),
        Kind(
            "good text",
            "good/notes.txt",
            "indexed",
            lambda p: _write(p, "Harbour notes\n\nThe harbour lighthouse was built in 1887.\n"),
            phrase="The harbour lighthouse was built in 1887.",
        ),
        Kind(
            "good Chinese text",
            "good/长城.txt",
            "indexed",
            lambda p: _write(p, "长城简介\n\n" + ZH + "\n"),
            phrase="全长约两万一千公里",
        ),
        Kind(
            "good Chinese markdown",
            "good/熊猫.md",
            "indexed",
            lambda p: _write(p, "# 熊猫\n\n大熊猫主要生活在四川的山区，以竹子为食。\n"),
            phrase="以竹子为食",
        ),
        Kind(
            "good csv",
            "good/parts.csv",
            "indexed",
            lambda p: _write(p, "part,price\ngasket,4 euros\nvalve seal,7 euros\n"),
            phrase="valve seal",
        ),
        Kind(
            "good html",
            "good/page.html",
            "indexed",
            lambda p: _write(p, "<html><body><h1>Launch</h1><p>The launch is on Friday at noon.</p></body></html>"),
            phrase="The launch is on Friday at noon.",
        ),
        Kind(
            "good json",
            "good/config.json",
            "indexed",
            lambda p: _write(p, json.dumps({"kettle": {"power": "2200 watts", "colour": "green"}})),
            phrase="2200 watts",
        ),
        Kind(
            "good docx",
            "good/memo.docx",
            "indexed",
            lambda p: _write(p, _docx(["The boiler is inspected every March."])),
            phrase="The boiler is inspected every March.",
        ),
        Kind(
            "good pptx",
            "good/deck.pptx",
            "indexed",
            lambda p: _write(p, _pptx("Quarterly review", ["Sales rose by twelve percent."])),
            phrase="Sales rose by twelve percent.",
        ),
        Kind(
            "good pdf",
            "good/report.pdf",
            "indexed",
            lambda p: _write(p, _pdf(["Annual report", "The ferry carried 48000 passengers last year."])),
            phrase="The ferry carried 48000 passengers last year.",
        ),
        Kind(
            "good eml",
            "good/mail.eml",
            "indexed",
            lambda p: _write(p, _eml("Office move", "The office moves to the third floor on Monday.")),
            phrase="The office moves to the third floor on Monday.",
        ),
    ]
    random_kinds = [
        Kind(
            f"random bytes as {ext}",
            f"random/noise{ext}",
            "named",
            lambda p, i=i: _write(p, _random(4096, i)),
            words=("binary", "not a", "not valid", "damaged", "encoding", "no text"),
        )
        for i, ext in enumerate([".txt", ".md", ".eml", ".pdf", ".docx", ".pptx", ".json", ".csv", ".html"])
    ]

    def zero_bytes(p: Path) -> None:
        for ext in (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx", ".csv", ".json", ".eml"):
            _write(p.parent / f"zero{ext}", b"")

    def symlinks(target: str) -> Callable[[Path], None]:
        def make(p: Path) -> None:
            p.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, p)

        return make

    def fifo(p: Path) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(p)

    def unix_socket(p: Path) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        server = socket.socket(socket.AF_UNIX)
        here = os.getcwd()
        try:
            os.chdir(p.parent)  # a relative name: socket paths are limited to ~100 bytes
            server.bind(p.name)
        finally:
            os.chdir(here)
            server.close()  # the socket file stays

    def unreadable(p: Path) -> None:
        _write(p, "A secret nobody may read.\n")
        p.chmod(0)

    def unlistable(p: Path) -> None:
        _write(p / "inside.txt", "Nobody can list the folder this is in.\n")
        p.chmod(0)

    def truncated_pdf(p: Path) -> None:
        data = _pdf(["Truncated report", "The truncated PDF mentions the lighthouse keeper."])
        _write(p, data[: len(data) // 2])

    def truncated_docx(p: Path) -> None:
        data = _docx(["This memo was cut short in transit."])
        _write(p, data[: len(data) // 2])

    def deep_json(p: Path) -> None:
        _write(p, "[" * 100_000 + "]" * 100_000)

    def huge_array(p: Path) -> None:
        items = [{"id": i, "name": f"item {i}"} for i in range(array_items)]
        _write(p, json.dumps(items + [{"id": -1, "name": "HUGEARRAYMARKER"}]))

    def over_limit(p: Path) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as handle:  # sparse: costs no disk
            handle.truncate(51 * 1024 * 1024)

    def long_name(p: Path) -> None:
        _write(p, "The long-named file mentions the copper kettle.\n")

    bad = [
        Kind("empty file", "bad/empty.txt", "named", lambda p: _write(p, b""), words=("empty",)),
        Kind("white space only", "bad/blank.txt", "named", lambda p: _write(p, " \n\t\n   \n"), words=("white space",)),
        Kind("zero bytes, every supported extension", "zero/zero.txt", "named", zero_bytes, words=("empty",)),
        Kind("mode 000 file", "bad/noperm.txt", "named", unreadable, words=("permission denied",), needs_no_dac=True),
        Kind(
            "folder that cannot be listed",
            "bad/locked",
            "named",
            unlistable,
            words=("cannot be listed",),
            needs_no_dac=True,
        ),
        Kind("dangling symlink", "links/dangling.md", "named", symlinks("missing-target.md"), words=("dangling",)),
        Kind("symlink loop", "links/loop.txt", "named", symlinks("loop.txt"), words=("loop",)),
        Kind("symlink to a folder above", "links/up", "named", symlinks(".."), words=("link to a folder",)),
        Kind(
            "symlink to a good file",
            "links/alias.txt",
            "indexed",
            symlinks("../good/notes.txt"),
            phrase="The harbour lighthouse was built in 1887.",
        ),
        Kind("symlink to a device", "links/device.txt", "named", symlinks("/dev/null"), words=("device",)),
        Kind("FIFO", "special/pipe.txt", "named", fifo, words=("FIFO",)),
        Kind("unix socket", "special/socket.md", "named", unix_socket, words=("socket",)),
        Kind(
            "folder named like a file",
            "odd/folder.md/inside.txt",
            "indexed",
            lambda p: _write(p, "The file inside a folder called folder.md mentions the red bicycle.\n"),
            phrase="mentions the red bicycle",
        ),
        *random_kinds,
        Kind(
            "truncated PDF",
            "bad/truncated.pdf",
            "either",
            truncated_pdf,
            phrase="lighthouse keeper",
            words=("damaged", "no extractable text", "PDF"),
        ),
        Kind("truncated docx", "bad/truncated.docx", "named", truncated_docx, words=("not a valid", "damaged")),
        Kind(
            "zip-bomb docx",
            "bad/bomb.docx",
            "named",
            lambda p: _write(p, _zip_bomb_docx(bomb_mb)),
            words=("unpack", "zip bomb"),
        ),
        Kind(
            "invalid JSON", "bad/broken.json", "named", lambda p: _write(p, '{"pump": [1, 2'), words=("not valid JSON",)
        ),
        Kind("JSON with a huge array", "big/array.json", "indexed", huge_array, phrase="HUGEARRAYMARKER"),
        Kind("deeply nested JSON", "bad/deep.json", "named", deep_json, words=("nested", "JSON")),
        Kind(
            "CSV with ragged rows",
            "odd/ragged.csv",
            "either",
            lambda p: _write(p, "a,b,c\n1,2\n3,4,5,6,7\nragged row marker,x,y\n"),
            phrase="ragged row marker",
        ),
        Kind(
            "CSV with a 1 MB cell",
            "big/cell.csv",
            "indexed",
            lambda p: _write(p, "name,notes\nbig,CELLMARKER " + "lorem ipsum dolor " * 58_000 + "\nsmall,tiny\n"),
            phrase="CELLMARKER",
        ),
        Kind(
            "HTML with only scripts",
            "bad/scripts.html",
            "named",
            lambda p: _write(
                p, "<html><head><script>var a = 1;</script></head><body><script>alert(1)</script></body></html>"
            ),
            words=("no text",),
        ),
        Kind(
            "HTML with unclosed tags",
            "odd/unclosed.html",
            "indexed",
            lambda p: _write(p, "<html><body><div><p>The unclosed page talks about the blue tram<p><b>more"),
            phrase="the blue tram",
        ),
        Kind(
            f"{line_mb} MB one-line text",
            "big/oneline.txt",
            "either",
            lambda p: _write(p, _one_line(line_mb * 1_000_000)),
            phrase="LONGLINEMARKER begins here.",
            words=("took longer",),
        ),
        Kind(
            f"{repetitive_mb} MB repetitive text",
            "big/repetitive.txt",
            "either",
            lambda p: _write(p, _repetitive(repetitive_mb * 1_000_000)),
            phrase="REPETITIVEMARKER opens the file.",
            words=("took longer",),
        ),
        Kind(
            "NUL bytes in text",
            "bad/nul.txt",
            "named",
            lambda p: _write(p, b"Some text\x00with\x00NUL bytes\x00" * 50),
            words=("binary",),
        ),
        Kind(
            "control characters",
            "bad/controls.md",
            "named",
            lambda p: _write(p, bytes(range(1, 9)) * 300 + b"a little text"),
            words=("binary",),
        ),
        Kind("GBK", "enc/gbk.txt", "indexed", lambda p: _write(p, ZH, "gbk"), phrase="全长约两万一千公里"),
        Kind(
            "GBK, one short sentence",
            "enc/gbk-short.txt",
            "indexed",
            lambda p: _write(p, "员工出差每天的餐费补贴为一百元。", "gbk"),
            phrase="餐费补贴为一百元",
        ),
        Kind(
            "GB18030",
            "enc/gb18030.md",
            "indexed",
            lambda p: _write(p, "# 说明\n\n" + ZH + "𠀀\n", "gb18030"),
            phrase="秦朝统一后把各段连接起来",
        ),
        Kind("Big5", "enc/big5.txt", "indexed", lambda p: _write(p, ZH_TW, "big5"), phrase="全長約兩萬一千公里"),
        Kind("Latin-1", "enc/latin1.txt", "indexed", lambda p: _write(p, EN_ACCENTS, "latin-1"), phrase="crème brûlée"),
        Kind(
            "cp1252",
            "enc/cp1252.txt",
            "indexed",
            lambda p: _write(p, "“Quoted,” she said — the café’s bill was €12.", "cp1252"),
            phrase="café’s bill was €12",
        ),
        Kind(
            "UTF-16 LE without BOM",
            "enc/utf16le.txt",
            "indexed",
            lambda p: _write(p, ZH, "utf-16-le"),
            phrase="始建于春秋战国时期",
        ),
        Kind(
            "UTF-16 BE without BOM",
            "enc/utf16be.txt",
            "indexed",
            lambda p: _write(p, EN_ACCENTS, "utf-16-be"),
            phrase="naïve critic from Zürich",
        ),
        Kind(
            "UTF-8 with BOM",
            "enc/bom.csv",
            "indexed",
            lambda p: _write(p, "name,city\nBOMMARKER,Zürich\n", "utf-8-sig"),
            phrase="BOMMARKER",
        ),
        Kind(
            "UTF-8 with one stray byte",
            "enc/stray.txt",
            "indexed",
            lambda p: _write(p, (ZH * 3).encode("utf-8") + b"\xff" + "北京是首都。".encode()),
            phrase="全长约两万一千公里",
        ),
        Kind(
            "mixed line endings",
            "odd/crlf.txt",
            "indexed",
            lambda p: _write(p, b"Line endings\r\n\r\nThe mixed file mentions the silver spoon.\rAnother line.\n"),
            phrase="mentions the silver spoon",
        ),
        Kind(
            "very long file name", "odd/" + "long-name-" * 24 + "end.txt", "indexed", long_name, phrase="copper kettle"
        ),
        Kind(
            "name with spaces and unicode",
            "odd/my notes – café ünïcødé 文件.txt",
            "indexed",
            lambda p: _write(p, "The unicode-named file mentions the yellow kite.\n"),
            phrase="the yellow kite",
        ),
        Kind(
            "name with a newline",
            "odd/new\nline.txt",
            "indexed",
            lambda p: _write(p, "The file with a newline in its name mentions the green door.\n"),
            phrase="the green door",
        ),
        Kind("file over max_file_mb", "big/over-limit.txt", "named", over_limit, words=("over the",)),
        Kind("hidden file", "odd/.hidden.txt", "absent", lambda p: _write(p, "Hidden files are not indexed.\n")),
        Kind(
            "unsupported type",
            "odd/picture.png",
            "named",
            lambda p: _write(p, b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
            words=("not supported",),
        ),
        Kind(
            "e-mail with no body",
            "mail/nobody.eml",
            "either",
            lambda p: _write(p, _eml("Only a subject line", None)),
            phrase="Only a subject line",
            words=("no text",),
        ),
        Kind(
            "e-mail with only an attachment",
            "mail/attachment.eml",
            "either",
            lambda p: _write(p, _eml("Attached figures", None, _random(2000, 99))),
            phrase="Attached figures",
            words=("no text",),
        ),
        Kind(
            "e-mail of random bytes",
            "mail/random.eml",
            "named",
            lambda p: _write(p, _random(3000, 7)),
            words=("binary",),
        ),
    ]
    return good, bad


# -- running ----------------------------------------------------------------------------------


def _no_dac_prefix() -> list[str] | None:
    """A command prefix under which file permissions hold for this user: none needed when not
    root; as root, ``setpriv`` dropping the capabilities that bypass them; None if impossible."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]
    try:
        if subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode == 0:
            return prefix
    except (OSError, subprocess.TimeoutExpired):
        pass
    return None


VANISHING_TEXT = "This file is deleted after the scan.\n"


def _while_running(process: subprocess.Popen, folder: Path, lines: list[str], events: dict[str, str]) -> None:
    """Read the ingest's progress lines; once its hashing is done (the "ingest:" stage starts,
    then the model loads), change one file and delete another: they were scanned and hashed,
    and are not yet read for parsing."""
    changed, vanishing = folder / "race" / "changing.txt", folder / "race" / "vanishing.txt"
    for line in process.stderr:
        lines.append(line.rstrip("\n"))
        if line.startswith("ingest:") and "done" not in events:
            changed.write_text("The changing file now says VERSIONTWO about the night ferry.\n", encoding="utf-8")
            vanishing.unlink(missing_ok=True)
            events["done"] = f"changed and deleted at {time.monotonic():.1f}"


def _index(index_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> SHA-256, path -> all its chunk text) of the committed index."""
    from rag.index import DB_NAME
    from rag.stores.chunk_store import ChunkStore

    store = ChunkStore(index_dir / DB_NAME, readonly=True)
    try:
        documents = store.documents()
        texts = {path: "\n".join(c.text for c in store.chunks_of(path)) for path in documents}
        return {path: record.sha256 for path, record in documents.items()}, texts
    finally:
        store.close()


def _squash(text: str) -> str:
    return "".join(text.split())


def run(work: Path, quick: bool) -> Outcome:
    """Generate the corpus under ``work``, ingest it once, and record one case per kind."""
    outcome = Outcome("bad inputs")
    started = time.perf_counter()
    work = Path(work) / "bad_inputs"
    _remove(work)
    folder, index_dir = work / "docs", work / "index"
    folder.mkdir(parents=True)
    good, bad = kinds(quick)
    prefix = _no_dac_prefix()
    if prefix is None:
        left_out = [k for k in bad if k.needs_no_dac]
        bad = [k for k in bad if not k.needs_no_dac]
        outcome.notes.append(
            f"running as root without setpriv: left out {', '.join(k.name for k in left_out)} "
            "(root reads mode-000 files)"
        )
    for kind in good + bad:
        kind.make(folder / kind.path)
    _write(folder / "race" / "changing.txt", "The changing file says VERSIONONE about the night ferry.\n")
    _write(folder / "race" / "vanishing.txt", VANISHING_TEXT)
    outcome.notes.append(
        f"{len(good)} good files and {len(bad) + 2} bad kinds "
        f"({sum(1 for p in folder.rglob('*'))} paths) written in {time.perf_counter() - started:.0f} s"
    )

    command = [*prefix, sys.executable, "-m", "ingest", str(folder), "--index-dir", str(index_dir), "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    lines: list[str] = []
    events: dict[str, str] = {}
    t = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The stderr reader is the only reader of stderr: communicate() would read it too, and the
    # two would race for the progress lines the race case waits on.
    reader = threading.Thread(target=_while_running, args=(process, folder, lines, events), daemon=True)
    reader.start()
    out: list[str] = []
    collector = threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True)
    collector.start()
    try:
        process.wait(timeout=1800)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    collector.join(30)
    reader.join(10)
    stdout = "".join(out)
    ingest_s = time.perf_counter() - t
    _restore_permissions(folder)

    aborted = process.returncode != 0
    outcome.record(
        not aborted,
        "the run did not abort",
        f"exit {process.returncode}: {(lines or ['no output'])[-1][:300]}" if aborted else "",
    )
    try:
        report = json.loads(stdout)
        hashes, texts = _index(index_dir)
    except (json.JSONDecodeError, Exception) as exc:  # noqa: BLE001 - no summary or no index: every case fails
        outcome.record(False, "the summary and the index can be read", f"{exc.__class__.__name__}: {exc}")
        outcome.seconds = time.perf_counter() - started
        return outcome
    named = {item["path"]: item["reason"] for item in report["failed"] + report["skipped"]}

    missing = [k.path for k in good if k.path not in texts or _squash(k.phrase) not in _squash(texts[k.path])]
    outcome.record(
        not missing,
        f"all {len(good)} good files are in the index with their text",
        f"missing or without their text: {missing}",
    )
    for kind in bad:
        outcome.record(*_check(kind, folder, texts, named))
    outcome.record(*_check_race(folder, hashes, texts, named, events))

    slowest = report.get("slowest") or [{"path": "?", "seconds": 0.0}]
    top = slowest[0]
    outcome.record(
        top["seconds"] <= MAX_FILE_SECONDS,
        f"no file took more than {MAX_FILE_SECONDS:.0f} s",
        f"{top['path']!r} took {top['seconds']:.1f} s",
    )
    still = [line for line in lines if line.startswith("still parsing")]
    outcome.notes.append(
        f"ingest took {ingest_s:.0f} s (exit {process.returncode}); slowest files: "
        + ", ".join(f"{s['path']!r} {s['seconds']:.1f} s" for s in slowest[:3])
    )
    outcome.notes.append(
        f"{len(report['failed'])} failed and {len(report['skipped'])} skipped, each with a reason; "
        f"{len(texts)} documents indexed; {len(still)} 'still parsing' lines"
    )
    stages = report.get("stage_seconds", {})
    outcome.notes.append(
        "ingest stages: "
        + ", ".join(
            f"{k} {stages[k]:.0f} s" for k in ("load_model", "prepare_and_embed", "embed", "write") if k in stages
        )
        + f"; {report.get('chunks_embedded', 0)} chunks embedded"
    )
    outcome.seconds = time.perf_counter() - started
    _remove(work)
    return outcome


def _check(kind: Kind, folder: Path, texts: dict[str, str], named: dict[str, str]) -> tuple[bool, str, str]:
    """(ok, case, why) for one bad kind."""
    paths = [kind.path]
    if kind.name.startswith("zero bytes"):
        paths = [p.relative_to(folder).as_posix() for p in sorted((folder / kind.path).parent.iterdir())]
    if kind.name == "folder that cannot be listed":
        paths = [kind.path + "/"]
    problems = []
    for path in paths:
        indexed = path in texts
        has_phrase = indexed and (not kind.phrase or _squash(kind.phrase) in _squash(texts[path]))
        reason = named.get(path, "")
        good_reason = bool(reason.strip()) and (not kind.words or any(w.lower() in reason.lower() for w in kind.words))
        if kind.expect == "indexed":
            ok = has_phrase
            why = (
                ""
                if ok
                else (f"indexed without {kind.phrase!r}" if indexed else f"not indexed ({reason or 'not named'})")
            )
        elif kind.expect == "named":
            ok = good_reason and not indexed
            why = (
                ""
                if ok
                else (
                    "indexed"
                    if indexed
                    else f"reason {reason!r} does not say {kind.words}"
                    if reason
                    else "neither indexed nor named"
                )
            )
        elif kind.expect == "either":
            ok = has_phrase or (good_reason and not indexed)
            why = (
                ""
                if ok
                else (
                    f"indexed without {kind.phrase!r}"
                    if indexed
                    else f"reason {reason!r}"
                    if reason
                    else "neither indexed nor named"
                )
            )
        else:  # absent
            ok = not indexed
            why = "" if ok else "indexed"
        if not ok:
            problems.append(f"{path!r}: {why}")
    return not problems, kind.name, "; ".join(problems)


def _check_race(
    folder: Path, hashes: dict[str, str], texts: dict[str, str], named: dict[str, str], events: dict[str, str]
) -> tuple[bool, str, str]:
    """A file rewritten and another deleted after the scan: the rewritten one is recorded with
    the hash of the text that was indexed; the deleted one is named and not indexed."""
    if "done" not in events:
        return False, "files changed and deleted during the ingest", "the ingest never reached its parsing stage"
    changed, vanished = "race/changing.txt", "race/vanishing.txt"
    now = hashlib.sha256((folder / changed).read_bytes()).hexdigest()
    text = texts.get(changed, "")
    problems = []
    if "VERSIONTWO" in text and hashes.get(changed) != now:
        problems.append("the new text is recorded with another hash")
    elif "VERSIONONE" in text and hashes.get(changed) == now:
        problems.append("the old text is recorded with the new hash")
    elif not text and changed not in named:
        problems.append("the changed file is neither indexed nor named")
    # Read before it was deleted (the progress line can reach us after parsing began), it is
    # rightly indexed as read, and the next ingest drops it; else it must be named.
    was = hashlib.sha256(VANISHING_TEXT.encode("utf-8")).hexdigest()
    if vanished in texts:
        if hashes.get(vanished) != was:
            problems.append("the deleted file is in the index with a hash of bytes it never held")
    elif vanished not in named:
        problems.append("the deleted file is neither indexed as read nor named")
    return not problems, "files changed and deleted during the ingest", "; ".join(problems)


def _restore_permissions(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        try:
            if not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) == 0:
                path.chmod(0o755 if path.is_dir() else 0o644)
        except OSError:
            pass


def _remove(path: Path) -> None:
    if path.exists():
        _restore_permissions(path)
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    import argparse

    from bench.reliability.report import print_outcomes

    parser = argparse.ArgumentParser(prog="python -m bench.reliability.bad_inputs", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller big files (CI)")
    parser.add_argument("--work", default="/tmp/rag-reliability", help="scratch folder")
    args = parser.parse_args()
    result = run(Path(args.work), args.quick)
    print_outcomes([result])
    sys.exit(1 if result.failed else 0)
