"""Chunking with the real embedder's tokenizer: sizes, structure, offsets and ids."""

import pytest

from rag.chunking import ELEMENT_SEPARATOR, Chunker
from rag.documents import Element


@pytest.fixture(scope="module")
def chunker_factory(embedder):
    def make(max_tokens=None, overlap=32):
        return Chunker(embedder.count_tokens, max_tokens or embedder.max_tokens, overlap, embedder.split_tokens)

    return make


def joined(elements):
    return "".join(e.text + ELEMENT_SEPARATOR for e in elements)


def long_english(n):
    return " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(n))


def long_chinese(n):
    return "".join(f"第{i}句话介绍了大语言模型的训练方法和应用场景。" for i in range(n))


def test_no_chunk_exceeds_the_embedder_limit(embedder, chunker_factory):
    chunker = chunker_factory()
    elements = [
        Element("Introduction", "Title", 1, "Introduction"),
        Element(long_english(120), "NarrativeText", 1, "Introduction"),
        Element("中文部分", "Title", 2, "中文部分"),
        Element(long_chinese(150), "NarrativeText", 2, "中文部分"),
        Element("x" * 5000, "NarrativeText", 3, "中文部分"),  # one "word" with no break at all
        Element("无标点" * 600, "NarrativeText", 3, "中文部分"),  # Chinese with no punctuation
    ]
    chunks = chunker.chunk("doc.md", elements)
    counts = embedder.count_tokens([c.text for c in chunks])
    assert max(counts) <= embedder.max_tokens
    # Nothing is lost: every element's text appears inside some chunk.
    everything = "".join(c.text for c in chunks)
    for element in elements:
        for piece in element.text[:50], element.text[-50:]:
            assert piece in everything


def test_chinese_splits_at_sentence_marks(embedder, chunker_factory):
    chunker = chunker_factory(max_tokens=64, overlap=0)
    chunks = chunker.chunk("zh.txt", [Element(long_chinese(40), "NarrativeText")])
    assert len(chunks) > 3
    assert all(c.text.endswith("。") for c in chunks)


def test_overlap_repeats_the_last_sentence(embedder, chunker_factory):
    chunker = chunker_factory(max_tokens=60, overlap=20)
    chunks = chunker.chunk("en.txt", [Element(long_english(30), "NarrativeText")])
    assert len(chunks) > 2
    first_last_sentence = chunks[0].text.split(". ")[-1]
    assert chunks[1].text.startswith(first_last_sentence.rstrip(".")[:20])


def test_small_sections_are_packed_and_tables_stand_alone(chunker_factory):
    chunker = chunker_factory()
    elements = [
        Element("Alpha", "Title", 1, "Alpha"),
        Element("Alpha is the first letter.", "NarrativeText", 1, "Alpha"),
        Element("Beta", "Title", 1, "Beta"),
        Element("Beta is the second letter.", "NarrativeText", 1, "Beta"),
        Element("name | value\nalpha | 1\nbeta | 2", "Table", 2, "Beta"),
        Element("Gamma comes after the table.", "NarrativeText", 2, "Beta"),
    ]
    chunks = chunker.chunk("t.md", elements)
    assert [c.kind for c in chunks] == ["text", "table", "text"]
    assert "Alpha is the first letter." in chunks[0].text and "Beta is the second" in chunks[0].text
    assert chunks[0].section == "Alpha" and chunks[1].page == 2


def test_offsets_point_into_the_joined_document(chunker_factory):
    chunker = chunker_factory(max_tokens=50, overlap=10)
    elements = [
        Element("Heading", "Title", None, "Heading"),
        Element(long_english(25), "NarrativeText", None, "Heading"),
    ]
    text = joined(elements)
    for chunk in chunker.chunk("o.txt", elements):
        assert text[chunk.start : chunk.end] == chunk.text


def test_ids_are_stable_and_survive_edits_elsewhere(chunker_factory):
    chunker = chunker_factory(max_tokens=60, overlap=0)
    body = [
        Element(long_english(12), "NarrativeText"),
        Element("Title two", "Title"),
        Element(long_english(6), "NarrativeText"),
    ]
    first = [c.id for c in chunker.chunk("a.md", body)]
    again = [c.id for c in chunker.chunk("a.md", body)]
    assert first == again and len(set(first)) == len(first)
    edited = [Element("A new opening paragraph.", "NarrativeText")] + body
    assert set(first) & {c.id for c in chunker.chunk("a.md", edited)}
    assert not set(first) & {c.id for c in chunker.chunk("b.md", body)}  # the path is part of the id


def test_parsing_workers_count_and_cut_tokens_as_the_embedder_does(embedder):
    """Workers read tokenizer.json with the tokenizers library alone (no transformers import);
    the counts and cuts must be the embedder's own, or chunks could overflow the model."""
    from rag.ingestion import token_functions

    count, split = token_functions(embedder.tokenizer_source)
    texts = [
        "The pump runs at 3,400 rpm; service it yearly.",
        "长城位于中国北方，全长约两万一千公里。",
        "Mixed 文本 with ÜMLAUTS, emoji 🙂 and URLs https://example.com/a_b?c=1",
        "word " * 700,
        "",
        "   ",
    ]
    assert count(texts) == embedder.count_tokens(texts)
    for text in texts:
        assert split(text, 50) == [piece for piece in embedder.split_tokens(text, 50) if piece]
    assert count([]) == []
