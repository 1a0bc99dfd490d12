"""Every way a file can be bad, each a ParseError of one sentence that names the file and says
what to do.

All files are written on the fly by ``tests/docfactory.py``; the network is cut off
(``tests/parsing/conftest.py``).
"""

from __future__ import annotations

import pytest

from rag.errors import ParseError
from rag.parsing import parse_file
from tests import docfactory
from tests.parsing.conftest import MAX, assert_helpful

# --- bad input -------------------------------------------------------------------------


def test_unsupported_suffix(tmp_path):
    path = docfactory.make_txt(tmp_path / "picture.png", "not really a picture")
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "unsupported", ".png")


@pytest.mark.parametrize(
    "name, content", [("empty.txt", ""), ("blank.md", " \n\t\n  "), ("empty.pdf", ""), ("empty.docx", "")]
)
def test_empty_files(tmp_path, name, content):
    path = docfactory.make_empty(tmp_path / name, content)
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path)
    assert "empty" in str(error.value) or "white space" in str(error.value)


def test_file_over_the_size_limit(tmp_path):
    path = docfactory.make_txt(tmp_path / "big.txt", "word " * 1000)
    with pytest.raises(ParseError) as error:
        parse_file(path, max_bytes=1000)
    assert_helpful(error, path, "limit", "max_file_mb")
    assert parse_file(path, max_bytes=5000)  # exactly at the limit is fine


def test_corrupt_pdf(tmp_path):
    path = docfactory.make_corrupt_pdf(tmp_path / "broken.pdf")
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "damaged")


def test_pdf_that_is_not_a_pdf(tmp_path):
    path = docfactory.make_txt(tmp_path / "fake.pdf", "just some text with the wrong name")
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "not a PDF")


def test_pdf_without_text(tmp_path):
    path = docfactory.make_pdf(tmp_path / "scan.pdf", [""])
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "no extractable text")


def test_password_protected_pdf(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    plain = docfactory.make_pdf(tmp_path / "plain.pdf", ["Secret plans for the harbour."])
    writer = pypdf.PdfWriter(clone_from=str(plain))
    writer.encrypt("hunter2", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    writer.write(str(path))
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "password")


@pytest.mark.parametrize("name, label", [("broken.docx", "Word document"), ("broken.pptx", "PowerPoint deck")])
def test_corrupt_office_files(tmp_path, name, label):
    path = docfactory.make_corrupt_docx(tmp_path / name)
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, f"not a valid {label}")


def test_zip_that_is_not_a_docx(tmp_path):
    import zipfile

    path = tmp_path / "archive.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "not a valid Word document")


@pytest.mark.parametrize("name", ["data.txt", "data.md", "data.csv", "data.json", "data.html"])
def test_binary_data_behind_a_text_extension(tmp_path, name):
    path = docfactory.make_binary_txt(tmp_path / name)
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "binary")


def test_control_characters_without_nul_bytes_are_binary(tmp_path):
    path = tmp_path / "weird.txt"
    path.write_bytes(bytes(range(1, 9)) * 200 + b"a little text")
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "binary")


def test_undecodable_text(tmp_path):
    path = docfactory.make_undecodable_txt(tmp_path / "undecodable.txt")
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "UTF-8")


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "pump", "rpm": 3400,', encoding="utf-8")
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "not valid JSON", "line 1")


def test_missing_file(tmp_path):
    path = tmp_path / "gone.txt"
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path)


def test_unexpected_errors_inside_unstructured_become_parse_errors(tmp_path, monkeypatch):
    import unstructured.partition.html as html_module

    def explode(*args, **kwargs):
        raise RuntimeError("something deep inside\nwent wrong")

    monkeypatch.setattr(html_module, "partition_html", explode)
    path = docfactory.make_html(tmp_path / "page.html", "Title", ["Body text here."])
    with pytest.raises(ParseError) as error:
        parse_file(path, MAX)
    assert_helpful(error, path, "RuntimeError", "something deep inside went wrong")
    assert isinstance(error.value.__cause__, RuntimeError)
