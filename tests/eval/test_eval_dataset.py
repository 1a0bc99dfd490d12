"""The JSONL QA-set loader: good lines load, bad ones are reported by line number."""

from __future__ import annotations

import json

import pytest

from eval.dataset import DatasetError, load_qa, select

GOOD = [
    {"id": "en-1", "question": "How many days?", "answers": ["14 days", "14"], "gold_docs": ["policy.md"]},
    {"id": "zh-1", "question": "铁观音原产于哪里？", "answers": ["福建安溪"], "gold_docs": ["茶叶指南.md"]},
    {"question": "Which bands?", "answers": [], "answers_all_of": [["2.4 GHz", "5 GHz"]], "gold_docs": ["faq.txt"]},
    {"id": 7, "question": "What is the capital of Australia?", "answers": []},
]


def write(tmp_path, lines):
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_good_lines_load_with_defaults(tmp_path):
    path = write(tmp_path, [json.dumps(x, ensure_ascii=False) for x in GOOD])
    qa = load_qa(path)
    assert qa.problems == []
    en, zh, groups, none = qa.items
    assert (en.id, en.lang, en.answerable, en.gold_docs) == ("en-1", "en", True, ["policy.md"])
    assert (zh.lang, zh.answers) == ("zh", ["福建安溪"])
    assert groups.id == "line-3" and groups.answerable and groups.answers_all_of == [["2.4 GHz", "5 GHz"]]
    assert none.id == "7" and none.answerable is False and none.gold_docs == []


def test_bad_lines_are_reported_with_line_numbers_and_skipped(tmp_path):
    lines = [
        json.dumps(GOOD[0]),  # 1 ok
        '{"id": "x", "question": "broken", ',  # 2 bad JSON
        "",  # 3 blank: ignored
        json.dumps({"id": "q", "answers": ["a"]}),  # 4 no question
        json.dumps({"id": "r", "question": "Q?", "answers": "a"}),  # 5 a string is accepted as one answer
        json.dumps({"id": "s", "question": "Q?", "answers": [1, 2]}),  # 6 answers not strings
        json.dumps({"id": "en-1", "question": "again?", "answers": ["a"]}),  # 7 duplicate id
        json.dumps({"id": "t", "question": "Q?", "answers": ["a"], "answerable": False}),  # 8 contradiction
        json.dumps({"id": "u", "question": "Q?", "answers": [], "answerable": True}),  # 9 no gold answer
        json.dumps({"id": "v", "question": "Q?", "answers_all_of": [[]]}),  # 10 empty group
        "[1, 2]",  # 11 not an object
        json.dumps({"id": "w", "question": "Q?", "answers": ["a"], "lang": "fr"}),  # 12 unknown lang
    ]
    qa = load_qa(write(tmp_path, lines))
    assert [i.id for i in qa.items] == ["en-1", "r"]
    by_line = {p.line: p.message for p in qa.problems}
    assert sorted(by_line) == [2, 4, 6, 7, 8, 9, 10, 11, 12]
    assert "not valid JSON" in by_line[2]
    assert "'question'" in by_line[4]
    assert "'answers'" in by_line[6]
    assert "duplicate id 'en-1' (first on line 1)" in by_line[7]
    assert "'answerable' is false" in by_line[8]
    assert "neither" in by_line[9]
    assert "answers_all_of" in by_line[10]
    assert "JSON object" in by_line[11]
    assert "lang" in by_line[12]
    assert str(qa.problems[0]).startswith("line 2: ")


def test_strict_mode_raises_on_the_first_bad_line(tmp_path):
    path = write(tmp_path, [json.dumps(GOOD[0]), "{oops"])
    with pytest.raises(DatasetError, match="line 2: not valid JSON"):
        load_qa(path, strict=True)


def test_unusable_files_are_one_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_qa(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="no usable question.*line 1"):
        load_qa(write(tmp_path, ["not json"]))
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_qa(binary)


def test_byte_order_mark_and_windows_paths(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        "\ufeff" + json.dumps({"question": "Q?", "answers": ["a"], "gold_docs": ["sub\\a.txt"]}), encoding="utf-8"
    )
    assert load_qa(path).items[0].gold_docs == ["sub/a.txt"]


def test_sample_is_seeded_and_keeps_file_order(tmp_path):
    lines = [json.dumps({"id": str(i), "question": f"Q{i}?", "answers": ["a"]}) for i in range(50)]
    items = load_qa(write(tmp_path, lines)).items
    a = select(items, sample=10, seed=1)
    assert [i.id for i in a] == [i.id for i in select(items, sample=10, seed=1)]
    assert [int(i.id) for i in a] == sorted(int(i.id) for i in a)
    assert [i.id for i in a] != [i.id for i in select(items, sample=10, seed=2)]
    assert [i.id for i in select(items, limit=3)] == ["0", "1", "2"]
    assert len(select(items, sample=10, seed=1, limit=4)) == 4


def test_question_type_is_a_field_and_other_fields_stay_extra(tmp_path):
    lines = [
        json.dumps({"id": "b", "question": "Q?", "answers": ["a"], "type": " bridge ", "level": "hard"}),
        json.dumps({"id": "n", "question": "Q?", "answers": ["a"]}),
        json.dumps({"id": "e", "question": "Q?", "answers": ["a"], "type": ""}),
        json.dumps({"id": "x", "question": "Q?", "answers": ["a"], "type": 3}),
    ]
    qa = load_qa(write(tmp_path, lines))
    bridge, untyped, empty = qa.items
    assert (bridge.type, bridge.extra) == ("bridge", {"level": "hard"})
    assert bridge.to_dict()["type"] == "bridge"
    assert untyped.type is None and empty.type is None and untyped.to_dict()["type"] is None
    assert [(p.line, "'type'" in p.message) for p in qa.problems] == [(4, True)]
