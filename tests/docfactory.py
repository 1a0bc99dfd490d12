"""Real documents of every supported type, written on the fly for tests.

Each ``make_*`` function writes one file at ``path`` (creating parent folders) and returns
the path. The good ones are genuine files produced by the format's own library (python-docx,
python-pptx, the email package) or written to the format's spec (a hand-built PDF with a
correct cross-reference table), so parsers see what users would give them. The bad ones
reproduce each failure class the parser must report. ``make_mixed_folder`` lays out one of
everything, for ingestion and API tests.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

Section = tuple[str, Sequence[str]]


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --- good files ------------------------------------------------------------------------


def make_txt(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Plain text in any encoding (``"utf-16"`` writes a BOM, ``"gb18030"`` a legacy file)."""
    path = _prepare(path)
    path.write_bytes(text.encode(encoding))
    return path


def make_md(
    path: str | Path,
    title: str,
    paragraphs: Sequence[str],
    sections: Sequence[Section] = (),
    table: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Markdown: ``# title``, its paragraphs, then ``## heading`` sections, then a table."""
    lines = [f"# {title}", ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    for heading, body in sections:
        lines += [f"## {heading}", ""]
        for paragraph in body:
            lines += [paragraph, ""]
    if table:
        lines.append("| " + " | ".join(table[0]) + " |")
        lines.append("|" + "---|" * len(table[0]))
        for row in table[1:]:
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    path = _prepare(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def make_html(
    path: str | Path,
    title: str,
    paragraphs: Sequence[str],
    sections: Sequence[Section] = (),
    table: Sequence[Sequence[str]] | None = None,
) -> Path:
    """An HTML page with an ``<h1>``, paragraphs, ``<h2>`` sections and an optional table."""
    from html import escape

    body = [f"<h1>{escape(title)}</h1>"] + [f"<p>{escape(p)}</p>" for p in paragraphs]
    for heading, texts in sections:
        body.append(f"<h2>{escape(heading)}</h2>")
        body += [f"<p>{escape(p)}</p>" for p in texts]
    if table:
        rows = [
            "<tr>" + "".join(f"<{tag}>{escape(cell)}</{tag}>" for cell in row) + "</tr>"
            for tag, row in [("th", table[0])] + [("td", r) for r in table[1:]]
        ]
        body.append("<table>" + "".join(rows) + "</table>")
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    path = _prepare(path)
    path.write_text(page, encoding="utf-8")
    return path


def make_docx(
    path: str | Path,
    title: str,
    paragraphs: Sequence[str],
    sections: Sequence[Section] = (),
    table: Sequence[Sequence[str]] | None = None,
) -> Path:
    """A Word document: title as Heading 1, sections as Heading 2, an optional table."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    for heading, texts in sections:
        document.add_heading(heading, level=2)
        for paragraph in texts:
            document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    path = _prepare(path)
    document.save(str(path))
    return path


def make_pptx(path: str | Path, slides: Sequence[Section], notes: Sequence[str] = ()) -> Path:
    """A slide deck: one slide per ``(title, bullet points)`` pair; ``notes[i]`` are slide i's speaker notes."""
    import pptx

    deck = pptx.Presentation()
    layout = deck.slide_layouts[1]  # "Title and Content"
    for number, (title, bullets) in enumerate(slides):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        for i, bullet in enumerate(bullets):
            paragraph = body.paragraphs[0] if i == 0 else body.add_paragraph()
            paragraph.text = bullet
        if number < len(notes) and notes[number]:
            slide.notes_slide.notes_text_frame.text = notes[number]
    path = _prepare(path)
    deck.save(str(path))
    return path


def make_pdf(path: str | Path, pages: Sequence[str], title: str | None = None) -> Path:
    """A real text PDF, one page per string (Latin-1 text; blank lines separate paragraphs).

    Written by hand to the PDF 1.4 spec with the standard Helvetica font and a byte-exact
    cross-reference table, so pdfminer extracts the text without any PDF-writing library.
    ``title``, when given, is set in a large font at the top of the first page.
    """
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the page tree exists
    page_tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    page_ids: list[int] = []
    for number, text in enumerate(pages, start=1):
        stream = _pdf_page_stream(text, title if number == 1 else None)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (page_tree, font, content)
            )
        )
    kids = b" ".join(b"%d 0 R" % i for i in page_ids)
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % page_tree
    objects[page_tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        xref_at,
    )
    path = _prepare(path)
    path.write_bytes(bytes(out))
    return path


def _pdf_escape(line: str) -> bytes:
    raw = line.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _pdf_page_stream(text: str, title: str | None) -> bytes:
    ops = [b"BT", b"72 720 Td"]
    if title:
        ops += [b"/F1 20 Tf", b"(" + _pdf_escape(title) + b") Tj", b"0 -36 Td"]
    ops += [b"/F1 11 Tf"]
    for line in _wrap(text, width=90):
        if line:
            ops.append(b"(" + _pdf_escape(line) + b") Tj")
        ops.append(b"0 -15 Td" if line else b"0 -12 Td")
    ops.append(b"ET")
    return b"\n".join(ops)


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for raw in text.splitlines():
        words, current = raw.split(), ""
        if not words:
            lines.append("")
            continue
        for word in words:
            if current and len(current) + 1 + len(word) > width:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        lines.append(current)
    return lines


CHROMIUM = Path("/usr/bin/chromium")


def make_pdf_in_browser(path: str | Path, html: str) -> Path:
    """A PDF as people make them: ``html`` printed by headless Chromium (``--print-to-pdf``),
    with its default running head (date and title) and foot (address and "page/pages") on every
    page and its fonts embedded (CJK text needs a CJK font installed, e.g. fonts-wqy-microhei)."""
    path = _prepare(path)
    page = path.with_suffix(".html")
    page.write_text(html, encoding="utf-8")
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--print-to-pdf={path}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    page.unlink()
    return path


def make_csv(path: str | Path, rows: Sequence[Sequence[str]]) -> Path:
    """A UTF-8 CSV file; the first row is the header."""
    path = _prepare(path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def make_json(path: str | Path, data: Any) -> Path:
    """Any JSON value, written as UTF-8 with Chinese left unescaped."""
    path = _prepare(path)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def make_eml(
    path: str | Path,
    subject: str,
    body: str,
    sender: str = "alice@example.com",
    to: str = "bob@example.com",
    html: str | None = None,
) -> Path:
    """An RFC 822 email with a plain-text body (and an HTML alternative when given)."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = "Mon, 03 Jun 2024 10:00:00 +0000"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    path = _prepare(path)
    path.write_bytes(bytes(message))
    return path


# --- bad files -------------------------------------------------------------------------


def make_empty(path: str | Path, content: str = "") -> Path:
    """A file with no text: zero bytes by default, or only the white space given."""
    path = _prepare(path)
    path.write_text(content, encoding="utf-8")
    return path


def make_corrupt_pdf(path: str | Path) -> Path:
    """A file that starts like a PDF and then is garbage (a truncated download)."""
    path = _prepare(path)
    path.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pa" + os.urandom(512))
    return path


def make_corrupt_docx(path: str | Path) -> Path:
    """Random bytes with a .docx (or .pptx) name: not a zip archive at all."""
    path = _prepare(path)
    path.write_bytes(b"\x89\x13\x00garbage" + os.urandom(1024))
    return path


def make_binary_txt(path: str | Path) -> Path:
    """Binary data (NUL bytes, control codes) behind a text extension."""
    path = _prepare(path)
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    return path


def make_undecodable_txt(path: str | Path) -> Path:
    """Bytes no text encoding reads as text: random high bytes (no control bytes, so not
    "binary" by that test either). Latin-1 text, once the example here, is now read."""
    import random

    path = _prepare(path)
    rng = random.Random(13)
    path.write_bytes(bytes(rng.randrange(0x80, 0x100) for _ in range(2000)))
    return path


# --- a folder of everything -----------------------------------------------------------

# Distinct facts per file, so retrieval tests can tell which file answered.
FACTS = {
    "guide.md": "The Zephyr pump runs at 3400 rpm.",
    "notes.txt": "The harbour lighthouse was built in 1887.",
    "page.html": "Quokkas live on Rottnest Island.",
    "report.pdf": "The Halvorsen bridge is 812 metres long.",
    "manual.docx": "The Orion kettle boils water in 95 seconds.",
    "deck.pptx": "Project Lumen launches in March 2031.",
    "prices.csv": "Cobalt widget costs 42 dollars.",
    "config.json": "The default retry limit is 7.",
    "memo.eml": "The quarterly review moved to Thursday 14 November.",
    "长城.txt": "长城全长约两万一千公里，始建于春秋战国时期。",
    "熊猫.md": "大熊猫主要生活在四川的竹林里，每天要吃十几公斤竹子。",
}


def make_mixed_folder(root: str | Path) -> dict[str, list[str]]:
    """Write one good file of every supported type plus one of each bad kind under ``root``.

    Returns ``{"good": [...], "bad": [...]}`` with names relative to ``root`` (forward
    slashes). The facts each good file holds are in :data:`FACTS`.
    """
    root = Path(root)
    make_md(root / "guide.md", "Zephyr Pump Guide", ["Read this before servicing the pump.", FACTS["guide.md"]])
    make_txt(root / "notes.txt", "Harbour notes\n\n" + FACTS["notes.txt"] + " It is painted red and white.\n")
    make_html(root / "page.html", "Island Wildlife", [FACTS["page.html"], "They are small marsupials."])
    make_pdf(
        root / "docs" / "report.pdf",
        ["Bridges of the North\n\nAn overview of notable bridges in the region.", FACTS["report.pdf"]],
    )
    make_docx(root / "docs" / "manual.docx", "Orion Kettle Manual", [FACTS["manual.docx"], "Descale it monthly."])
    make_pptx(root / "deck.pptx", [("Project Lumen", [FACTS["deck.pptx"], "The team has six members."])])
    make_csv(
        root / "prices.csv",
        [["item", "price", "note"], ["Cobalt widget", "42", FACTS["prices.csv"]], ["Iron gear", "7", "in stock"]],
    )
    make_json(root / "config.json", {"service": {"retries": 7, "note": FACTS["config.json"]}})
    make_eml(root / "memo.eml", "Quarterly review", FACTS["memo.eml"] + "\n\nPlease update your calendars.\n")
    make_txt(root / "中文" / "长城.txt", "长城简介\n\n" + FACTS["长城.txt"] + "它是世界文化遗产。\n")
    make_md(root / "中文" / "熊猫.md", "大熊猫", [FACTS["熊猫.md"], "它们是中国的国宝。"])
    good = [
        "guide.md",
        "notes.txt",
        "page.html",
        "docs/report.pdf",
        "docs/manual.docx",
        "deck.pptx",
        "prices.csv",
        "config.json",
        "memo.eml",
        "中文/长城.txt",
        "中文/熊猫.md",
    ]

    make_empty(root / "bad" / "empty.txt")
    make_corrupt_pdf(root / "bad" / "corrupt.pdf")
    make_corrupt_docx(root / "bad" / "corrupt.docx")
    make_binary_txt(root / "bad" / "binary.txt")
    make_undecodable_txt(root / "bad" / "undecodable.txt")
    _prepare(root / "bad" / "broken.json").write_text('{"a": [1, 2', encoding="utf-8")
    bad = [
        "bad/empty.txt",
        "bad/corrupt.pdf",
        "bad/corrupt.docx",
        "bad/binary.txt",
        "bad/undecodable.txt",
        "bad/broken.json",
    ]
    return {"good": good, "bad": bad}
