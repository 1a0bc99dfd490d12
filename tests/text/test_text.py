from rag.text import detect_language, scoring_tokens, search_tokens, split_sentences


def test_sentences_english_and_chinese_keep_every_character():
    text = "大语言模型很强大。它能回答问题吗？能！Pi is 3.14 in value. Is it? Yes\n\nNew paragraph"
    sentences = split_sentences(text)
    assert "".join(sentences) == text
    assert sentences[:3] == ["大语言模型很强大。", "它能回答问题吗？", "能！"]
    assert "Pi is 3.14 in value. " in sentences  # a decimal point is not a sentence end
    assert sentences[-1] == "New paragraph"


def test_chinese_ellipsis_and_semicolon_end_sentences():
    assert split_sentences("第一；第二……第三") == ["第一；", "第二……", "第三"]


def test_search_tokens_segment_chinese_and_lowercase_english():
    tokens = search_tokens("大语言模型的原理 and BERT Models")
    assert "语言" in tokens and "模型" in tokens  # jieba words
    assert "语" in tokens  # single characters too
    assert "的" not in tokens and "and" not in tokens  # stop words dropped
    assert "bert" in tokens and "models" in tokens


def test_full_width_text_is_folded():
    assert search_tokens("ＧＰＴ４") == ["gpt4"]


def test_scoring_tokens_are_characters_for_chinese_words_for_english():
    assert scoring_tokens("光荣和ω-force 2023年") == ["光", "荣", "和", "ω", "force", "2023", "年"]


def test_detect_language():
    assert detect_language("《战国无双3》是由哪两个公司合作开发的？") == "zh"
    assert detect_language("How many points did the Panthers surrender?") == "en"
    assert detect_language("什么是 Transformer 模型") == "zh"
