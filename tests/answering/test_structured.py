"""Structured content read down to one value: code, ``key=value`` and ``key: value`` lines,
Markdown tables and reference lists, in English and Chinese, through the real parser, index,
retriever and the default reader model."""

from __future__ import annotations

import functools

import pytest

from rag.answering import AnswerPipeline
from rag.answering.quote import reading_units
from rag.config import Settings
from rag.ingestion import ingest_folder

HERON = """# Training the Heron model

The Heron model is trained with the script below.

```python
trainer = HeronTrainer(model_name="heron-base", learning_rate=3e-4, batch_size=64)
trainer.train(epochs=12, warmup_steps=500)
```

## Settings

- max_length: 2048
- dropout = 0.1
- optimizer: AdamW

## Results

| Model | Accuracy | Parameters |
|---|---|---|
| Heron-base | 81.2 | 340M |
| Heron-large | 86.7 | 1.3B |

## References

1. Smith, J. "Scaling laws for herons". Journal of Bird Models, 2021.
2. Li, W. "Heron pretraining at scale". Proceedings of BirdConf, 2023.
"""

EGRET = """# 白鹭模型训练说明

白鹭模型使用下面的脚本训练。

```python
trainer = EgretTrainer(model_name="egret-zh", learning_rate=5e-5, batch_size=32)
trainer.train(epochs=8)
```

## 参数

- 最大长度：1024
- 随机失活 = 0.2

## 结果

| 模型 | 准确率 | 参数量 |
|---|---|---|
| 白鹭-小 | 78.5 | 1.1亿 |
| 白鹭-大 | 84.3 | 7亿 |
"""


def test_structured_lines_are_units_of_their_own():
    units = reading_units(
        "max_length: 2048\ndropout = 0.1\n\nModel | Accuracy\n---|---\nHeron-base | 81.2\n\n"
        'Smith, J. "Scaling laws for herons". Journal of Bird Models, 2021.\n\n'
        "Prose goes on. It is split into sentences."
    )
    assert [u.text for u in units] == [
        "max_length: 2048",
        "dropout = 0.1",
        "Heron-base | 81.2",
        'Smith, J. "Scaling laws for herons". Journal of Bird Models, 2021.',
        "Prose goes on. ",
        "It is split into sentences.",
    ]
    assert units[2].header == "Model | Accuracy"


@functools.lru_cache(maxsize=1)
def _reader_pipeline(root: str) -> AnswerPipeline:
    from pathlib import Path

    base = Path(root)
    (base / "docs").mkdir(parents=True, exist_ok=True)
    (base / "docs" / "heron.md").write_text(HERON, encoding="utf-8")
    (base / "docs" / "白鹭.md").write_text(EGRET, encoding="utf-8")
    settings = Settings.load(env={}, overrides={"index_dir": base / "index", "device": "cpu"})
    ingest_folder(base / "docs", settings)
    from tests.generators import default_generator

    return AnswerPipeline(settings, generator=default_generator())


@pytest.fixture(scope="module")
def structured(tmp_path_factory):
    return _reader_pipeline(str(tmp_path_factory.mktemp("structured")))


@pytest.mark.slow
@pytest.mark.parametrize(
    "question, value",
    [
        ("What learning rate is used to train the Heron model?", "3e-4"),
        ("How many epochs is the Heron model trained for?", "12"),
        ("What is the dropout of the Heron model?", "0.1"),
        ("Which optimizer is used?", "AdamW"),
        ("What accuracy does Heron-large reach?", "86.7"),
        ("How many parameters does Heron-base have?", "340M"),
        ("白鹭-大的准确率是多少？", "84.3"),
        ("白鹭模型的最大长度是多少？", "1024"),
        ("随机失活是多少？", "0.2"),
    ],
)
def test_one_value_is_the_answer(structured, question, value):
    answer = structured.answer(question)
    assert answer.answer_span is not None, answer.answer
    assert answer.answer_span.text == value, (answer.answer, answer.evidence)
    passage = answer.passages[answer.answer_span.passage - 1].chunk.text
    assert passage[answer.answer_span.start : answer.answer_span.end] == value


@pytest.mark.slow
def test_a_reference_entry_is_found_whole(structured):
    answer = structured.answer("Which journal published Smith's paper on scaling laws for herons?")
    assert answer.evidence.text == 'Smith, J. "Scaling laws for herons". Journal of Bird Models, 2021.'
    assert "Bird Models" in answer.answer_span.text
