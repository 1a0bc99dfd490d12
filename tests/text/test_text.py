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


def test_a_mark_inside_brackets_that_soon_close_ends_no_sentence():
    # a title with an exclamation mark, an abbreviation inside an English name in brackets, and
    # a semicolon between two glosses: each stays in the sentence it belongs to
    title = "《大小姐×执事！》是上月司所著的轻小说。后来改编为动画。"
    assert split_sentences(title) == ["《大小姐×执事！》是上月司所著的轻小说。", "后来改编为动画。"]
    name = "底特律圣保罗座堂（Cathedral Church of St. Paul）是主教座堂。它建于1824年。"
    assert split_sentences(name)[0] == "底特律圣保罗座堂（Cathedral Church of St. Paul）是主教座堂。"
    glosses = "巴吞他尼府（泰文：ปทุมธานี；英文：Pathum Thani）是泰国的一个府。"
    assert split_sentences(glosses) == [glosses]


def test_a_bracket_never_closed_does_not_swallow_the_text():
    text = "括号（没有闭合。后面的句子很长，" + "很长" * 40 + "。最后一句。"
    sentences = split_sentences(text)
    assert sentences[0] == "括号（没有闭合。"
    assert "".join(sentences) == text
    # a paragraph break always ends a sentence, even inside an open bracket
    assert split_sentences("（第一段。\n\n第二段）") == ["（第一段。\n\n", "第二段）"]


def test_an_initial_is_no_sentence_end():
    assert split_sentences("卫斯理是英国作家J. K. 罗琳笔下的人物。") == ["卫斯理是英国作家J. K. 罗琳笔下的人物。"]
    assert split_sentences("He met John F. Kennedy. Then he left.") == ["He met John F. Kennedy. ", "Then he left."]


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
