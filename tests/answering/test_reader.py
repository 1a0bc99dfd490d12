"""The reader: the span search on its own, the real generators reading a span, and the short
answer through the answer pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answering.reader import _EXAMPLES, NO_ANSWER, Reader, _trim, align, locate, reader_template
from rag.documents import Chunk, SearchHit
from rag.generation.spans import log_softmax, search_span

VOCAB = 8
END = 0


def _dist(**probs: float) -> np.ndarray:
    """A log-probability vector over a toy vocabulary: token ids given as t1=..., the rest share
    what is left."""
    values = np.full(VOCAB, 1e-6)
    for name, p in probs.items():
        values[int(name[1:])] = p
    return np.log(values / values.sum())


def _follower(table: dict[tuple[int, ...], np.ndarray], read: list[int]):
    """follow() over a table from token prefixes to next-token distributions; counts steps."""

    def follow(tokens):
        for n in range(1, len(tokens) + 1):
            read.append(1)
            yield table[tuple(tokens[:n])]

    return follow


def test_span_search_takes_the_start_and_end_the_model_prefers():
    # text: 5 6 2 3 4 ; the model would start at 2, go on to 3, then stop.
    text = [5, 6, 2, 3, 4]
    first = _dist(t2=0.6, t5=0.3, t6=0.1)
    table = {
        (2,): _dist(t3=0.9, t0=0.05),
        (2, 3): _dist(t0=0.9, t4=0.05),
        (2, 3, 4): _dist(t0=0.9),
        (5,): _dist(t6=0.5, t0=0.1),
        (5, 6): _dist(t2=0.5, t0=0.1),
        (5, 6, 2): _dist(t3=0.5, t0=0.1),
        (5, 6, 2, 3): _dist(t0=0.5, t4=0.5),
        (5, 6, 2, 3, 4): _dist(t0=0.9),
        (6,): _dist(t0=0.1, t2=0.5),
        (6, 2): _dist(t3=0.5),
        (6, 2, 3): _dist(t0=0.5),
        (6, 2, 3, 4): _dist(t0=0.5),
    }
    read: list[int] = []
    choice = search_span(first, [text], [END], _follower(table, read), method="span", starts=3)
    assert (choice.text, choice.start, choice.end) == (0, 2, 4)
    expected = np.log(0.6) + table[(2,)][3] + table[(2, 3)][END]
    assert choice.logprob == pytest.approx(expected, abs=1e-3)
    # The starts that cannot beat it are given up early: fewer steps than reading every path in full.
    assert len(read) < 3 + 5 + 4


def test_greedy_copies_while_the_next_token_beats_ending():
    text = [2, 3, 4]
    first = _dist(t2=0.9)
    table = {(2,): _dist(t3=0.6, t0=0.3), (2, 3): _dist(t4=0.2, t0=0.7), (2, 3, 4): _dist(t0=0.9)}
    choice = search_span(first, [text], [END], _follower(table, []), method="greedy")
    assert (choice.start, choice.end) == (0, 2)


def test_span_search_over_nothing_finds_nothing():
    assert search_span(_dist(t1=1.0), [[]], [END], lambda tokens: iter(())) is None
    with pytest.raises(ValueError, match="method"):
        search_span(_dist(t1=1.0), [[1]], [END], lambda tokens: iter(()), method="beam")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_prompts_examples_copy_their_answers_and_end_on_not_answering(language):
    # the model learns from the examples to copy the shortest words of the passage: each answer
    # is in its passage, and the last example is the passage that does not say
    examples = _EXAMPLES[language]
    assert all(answer in passage for passage, _, answer in examples[:-1])
    assert examples[-1][2] == NO_ANSWER[language]
    kinds = {" ".join(question.split()[:2]) if language == "en" else question[-4:] for _, question, _ in examples}
    assert len(kinds) == len(examples)  # no two examples ask the same way
    messages = reader_template(language).format_messages(passage="P", question="Q")
    assert len(messages) == 2 * len(examples) + 2  # the rules, each example asked and answered, the question


def test_log_softmax_sums_to_one():
    assert np.exp(log_softmax(np.array([1.0, 2.0, 3.0]))).sum() == pytest.approx(1.0)


def test_spans_are_trimmed_of_what_only_punctuates_them():
    text = "It opens at 7:30 (Beijing time), ends in New York. Acme Ltd. runs it."
    for piece, expected in [
        ("New York.", "New York"),
        (" 7:30 (Beijing time", "7:30 (Beijing time"),
        ("(Beijing time)", "(Beijing time)"),
        ("Acme Ltd.", "Acme Ltd."),
        ("“7:30”", "7:30"),
    ]:
        source = text if piece in text else f"x {piece} y"
        start = source.index(piece)
        a, b = _trim(source, start, start + len(piece))
        assert source[a:b] == expected


def test_locate_and_align_find_text_with_other_white_space_and_case():
    passage = "Rules:\nThe nightly hotel limit is\n240 pounds in London."
    assert passage[slice(*locate(passage, "The nightly hotel limit is 240 pounds in London."))].startswith(
        "The nightly"
    )
    assert locate(passage, "Not in it.") is None
    sentence = "The nightly hotel limit is 240 pounds in London."
    assert sentence[slice(*align(sentence, "240 Pounds"))] == "240 pounds"
    assert align(sentence, "three hundred dollars") is None


def _hit(text: str, source: str = "doc.md") -> SearchHit:
    return SearchHit(
        chunk=Chunk(id="c1", text=text, source=source, page=None, section=None, kind="text", start=0, end=len(text)),
        score=1.0,
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ["span", "greedy"])
def test_the_onnx_generator_reads_a_verbatim_span(method):
    from tests.generators import shared_onnx

    text = "Trips are booked 14 days ahead.\nThe daily meal allowance is 45 euros per person."
    hit = _hit(text)
    reader = Reader(shared_onnx(), method=method)
    reading = reader.read(
        "What is the daily meal allowance?", [hit], [(1, "The daily meal allowance is 45 euros per person.")], "en"
    )
    assert reading is not None
    assert text[reading.span.start : reading.span.end] == reading.span.text
    assert "45 euros" in reading.span.text and len(reading.span.text) <= len("45 euros per person")
    assert reading.evidence.text == "The daily meal allowance is 45 euros per person."
    assert reading.logprob < 0 and 0 < reading.confidence <= 1


@pytest.mark.slow
def test_the_transformers_generator_reads_the_same_span_as_onnx():
    from tests.generators import shared_onnx, shared_smollm2

    messages = [
        {
            "role": "user",
            "content": "Passage: The pump runs at 3400 rpm and is serviced every year.\n"
            "Question: How fast does the pump run?",
        }
    ]
    texts = ["The pump runs at 3400 rpm and is serviced every year."]
    a = shared_onnx().extract(messages, texts, prefix="Answer:")
    b = shared_smollm2().extract(messages, texts, prefix="Answer:")
    assert (a.start, a.end) == (b.start, b.end)
    assert a.logprob == pytest.approx(b.logprob, abs=0.05)
    assert "3400" in texts[0][a.start : a.end]


def test_a_generator_without_probabilities_is_read_by_aligning_what_it_writes():
    """An OpenAI-compatible server shows no log-probabilities: its written answer is found in
    the sentence (method "align"), and one that is not there is no answer."""
    from tests.generators import ScriptedGenerator

    sentence = "The nightly hotel limit is 240 pounds in London and 210 euros in Paris."
    hit = _hit("Hotels\n\n" + sentence)
    reading = Reader(ScriptedGenerator("Answer: 240 Pounds [1]")).read(
        "What is the nightly hotel limit in London?", [hit], [(1, sentence)], "en"
    )
    assert reading.method == "align" and reading.span.text == "240 pounds"
    assert hit.chunk.text[reading.span.start : reading.span.end] == "240 pounds"
    for written in ("Answer: unknown", "Answer: three hundred dollars"):
        assert Reader(ScriptedGenerator(written)).read("What is the limit?", [hit], [(1, sentence)], "en") is None


def test_a_span_made_only_of_the_questions_words_is_never_chosen():
    # The model likes to start at token 2 ("Internet2"), which the question already says.
    text = [2, 3, 4]
    first = _dist(t2=0.8, t3=0.15)
    table = {
        (2,): _dist(t0=0.9, t3=0.05),
        (2, 3): _dist(t0=0.9),
        (2, 3, 4): _dist(t0=0.9),
        (3,): _dist(t4=0.5, t0=0.4),
        (3, 4): _dist(t0=0.9),
    }
    free = search_span(first, [text], [END], _follower(table, []), starts=2)
    assert (free.start, free.end) == (0, 1)
    fresh = [[False, True, True]]
    choice = search_span(first, [text], [END], _follower(table, []), starts=2, fresh=fresh)
    assert choice.start >= 1 or choice.end > 1  # it says something the question does not


def test_fresh_tokens_mark_what_the_question_does_not_say():
    from rag.generation.spans import fresh_tokens

    text = "Internet2 is a consortium"
    offsets = [(0, 5), (5, 9), (9, 12), (12, 14), (14, 25)]  # Inter|net2| is| a| consortium
    assert fresh_tokens(text, offsets, "What is Internet2?") == [False, False, False, False, True]
    zh = "约翰是一名医生"
    assert fresh_tokens(zh, [(0, 2), (2, 3), (3, 5), (5, 7)], "约翰是谁？") == [False, False, True, True]


def test_asked_how_many_a_span_starting_on_a_figure_ranks_higher():
    from rag.generation.spans import FIGURE_BONUS, nearness

    text = "莱索托只有一个国际机场"
    offsets = [(i, i + 1) for i in range(len(text))]
    counted = nearness(text, offsets, "莱索托有几个国际机场？")
    plain = nearness(text, offsets, "莱索托的国际机场叫什么？")
    at = text.index("一")
    assert counted[at][0] - plain[at][0] == pytest.approx(FIGURE_BONUS)
    assert counted[0][0] == plain[0][0]


def test_a_chinese_span_starting_where_the_question_asks_ranks_higher():
    from rag.generation.spans import NEAR_BONUS, SLOT_BONUS, nearness

    text = "纽波特又被译为新港，也被称为夏季白宫。"
    offsets = [(i, i + 1) for i in range(len(text))]
    starts = [start for start, _ in nearness(text, offsets, "纽波特又被译为什么？")]
    assert starts[text.index("新")] == pytest.approx(SLOT_BONUS)
    # no other Chinese start gets a bonus: "每周[一]" asked "每周哪天" must not cut "周一" in two
    assert sum(1 for bonus in starts if bonus) == 1
    english = nearness("London: 250 euros", [(0, 6), (6, 7), (7, 11), (11, 17)], "What is the limit for London?")
    assert english[2][0] == pytest.approx(NEAR_BONUS)  # after "London", a word of the question


def test_a_chinese_span_ending_where_the_question_goes_on_after_asking_ranks_higher():
    from rag.generation.spans import NEAR_BONUS, SLOT_BONUS, nearness

    text = "周二至周日开放，每周一闭馆整理。"
    offsets = [(i, i + 1) for i in range(len(text))]
    ends = [end for _, end in nearness(text, offsets, "图书馆每周哪天闭馆？")]
    # the span ending before "闭馆", what the question says right after "哪天", ranks highest
    assert ends[text.index("闭") - 1] == pytest.approx(NEAR_BONUS + SLOT_BONUS)
    # before "整理", no word of the question: nothing
    assert ends[text.index("整") - 1] == 0.0


def test_the_words_right_after_a_chinese_asking_word():
    from rag.text.questions import after_asking_zh

    assert after_asking_zh("图书馆每周哪天闭馆？") == "闭馆"
    assert after_asking_zh("熊猫基地早上什么时候开门？") == "开门"
    assert after_asking_zh("纽波特又被译为什么？") == ""


def test_a_no_answer_word_alone_is_no_answer():
    from rag.answering.reader import NO_ANSWER
    from rag.generation.spans import NO_ANSWER_WORDS, fresh_tokens

    assert set(NO_ANSWER.values()) <= NO_ANSWER_WORDS
    text = "主角是无外流老剑客"
    offsets = [(i, i + 1) for i in range(len(text))]
    flags = fresh_tokens(text, offsets, "剑客生涯的主角是谁？")
    assert not flags[text.index("无")] and flags[text.index("外")]
    english = fresh_tokens("an unknown man", [(0, 2), (2, 10), (10, 14)], "Who came?")
    assert english == [False, False, True]
