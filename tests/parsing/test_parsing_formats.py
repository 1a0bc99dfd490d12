"""Parsing PDF (also printed by a browser), Word, PowerPoint, CSV, JSON and e-mail files, and a
mixed folder of them, in this process and in a spawned worker.

All files are written on the fly by ``tests/docfactory.py``; the network is cut off
(``tests/parsing/conftest.py``).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import re
from pathlib import Path

import pytest

from rag.documents import Element
from rag.errors import ParseError
from rag.parsing import SUPPORTED_SUFFIXES, parse_file
from tests import docfactory
from tests.parsing.conftest import (
    MAX,
    _block_network,
    _network_attempts,
    _without_space,
    assert_helpful,
    assert_well_formed,
    by_text,
    texts,
)


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


# --- in a worker process --------------------------------------------------------------


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
