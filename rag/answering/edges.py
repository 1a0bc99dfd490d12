"""Where a short answer starts and ends.

The reader picks a span of a sentence (:mod:`rag.answering.reader`); a small model often picks
part of the answer: one word of a name ("Manning" for "Peyton Manning"), one end of a range
("1939" for "1870 to 1939", "12公尺" for "0至12公尺"), one item of a list ("阎王角龙" for
"阎王角龙、黎明角龙、古角龙、辽宁角龙"), part of a table cell ("银针" for "白毫银针"), or runs
into a bracket it does not close ("American Sign Language (ASL"). The rules here make such a
span whole, from the text around it; they know nothing of any corpus, only how names, ranges,
lists and tables are written in English and Chinese. Echoed question words are cut off the
edges too (:func:`trim_echo`).

The checks ``trimmed`` and ``whole`` (:mod:`rag.answering.checks`) apply them.
"""

from __future__ import annotations

import re

from rag.text.language import has_cjk
from rag.text.questions import ASKS_AMOUNT
from rag.text.tokens import tagged_words

# Words that only link a span's edge to the question's words: "45 euros [on business trips]".
LINKING_EN = frozenset(
    """a an the of in on at by for to from with about as into onto over under per and or
    is are was were be been being has have had do does did its it their his her this that these those""".split()
)
WORD_RE = re.compile(r"[\w'’.\-]+|[^\w\s]", re.UNICODE)


# Units a bare figure is read with: measures, money, time, shares (English and Chinese).
_UNITS_EN = (
    r"%|percent|per\s?cent|rpm|mph|km/h|kph|km|kilometres?|kilometers?|metres?|meters?|cm|mm|miles?|"
    r"feet|foot|inch(?:es)?|yards?|acres?|hectares?|sq\.?\s?(?:mi|km|ft|m)|"
    r"square\s(?:miles?|kilometres?|kilometers?|metres?|meters?|feet|foot)|"
    r"kg|kilograms?|grams?|mg|lbs?|pounds?|(?:kilo|mega|giga)?(?:tons?|tonnes?)|ounces?|oz|"
    r"litres?|liters?|ml|gallons?|°[CF]?|degrees?|kw|kwh|mw|gw|watts?|volts?|hz|khz|mhz|ghz|"
    r"kb|mb|gb|tb|bytes?|bits?|euros?|eur|dollars?|usd|yuan|rmb|yen|gbp|cents?|"
    r"seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|decades?|centuries|"
    r"million|billion|trillion|thousand|hundred"
)
# One- and two-letter units that are also words ("in", "m", "s") only when written onto the figure.
_UNITS_ATTACHED = r"m|s|h|g|l|v|w|ft|mi|in"
UNIT_AFTER_EN = re.compile(rf"(?:\s?(?:{_UNITS_EN})|(?:{_UNITS_ATTACHED}))\b(?!-)", re.IGNORECASE)
UNIT_AFTER_ZH = re.compile(
    r"\s?(?:%|％|‰|[多余]?(?:万|亿|千|百)?(?:公里|千米|米|厘米|毫米|公分|公尺|公斤|千克|克|吨|斤|升|毫升|元|美元|"
    r"欧元|英镑|日元|美金|港元|港币|块|岁|年|个月|月|日|天|周|小时|分钟|秒|倍|度|摄氏度|平方米|平方公里|亩|人|次|"
    r"家|所|项|件|本|册|台|辆|座|层|名|位|种|篇|部|集|届|章|节|页|张|头|只|条|号|路|个))"
)


def _bare(word: str) -> str:
    """A word as compared with the question's: lower case, without edge quotes or full stops,
    nor a possessive ("Oxford's" -> "oxford")."""
    return re.sub(r"['’]s$", "", word.lower().strip(".'’?"))


def trim_echo(span: str, question: str) -> tuple[int, int]:
    """How many characters to cut off the start and the end of ``span``: words the question
    already says, and the little words that tie them on ("45 euros on business trips" asked
    about business trips -> "45 euros"). Nothing is cut when too little would be left.

    Chinese spans lose only what frames their answer: the author or kind before a title in 《》
    (:func:`_before_title_zh`) and the noun a how-many question names after its measure word
    (:func:`_counted_noun_zh`); otherwise CMRC's answers keep the question's words ("罗迪尼亚大陆" asked
    about 大陆). Cut by character pairs, 120 of 500 CMRC answers lost F1 (55.3 -> 44.5 on those;
    "锣鼓点" asked about 锣鼓经 became "点"); cut by whole jieba words at either edge, 32 of 200
    tuning answers changed and F1 fell by 1.0 (EM by 2.5)."""
    if has_cjk(span):
        return _before_title_zh(span), _counted_noun_zh(span, question)
    words = [(m.start(), m.end(), _bare(m.group())) for m in WORD_RE.finditer(span)]
    asked = {_bare(w) for w in WORD_RE.findall(question)} - LINKING_EN
    if len(words) < 2:
        return 0, 0

    def echo(word: str) -> bool:
        return word in asked or word in LINKING_EN or not any(ch.isalnum() for ch in word)

    last = len(words)
    while last > 1 and echo(words[last - 1][2]):
        last -= 1
    first = 0
    while first < last - 1 and (words[first][2] in asked or (words[first][2] in LINKING_EN and first > 0)):
        first += 1
    while first < last - 1 and (words[first][2] in LINKING_EN or not any(ch.isalnum() for ch in words[first][2])):
        first += 1
    kept = words[first:last]
    if not any(w[2] not in asked and w[2] not in LINKING_EN for w in kept):
        return 0, 0
    return kept[0][0], len(span) - kept[-1][1]


# "几届茅盾文学奖", "多少个国际机场": asked how many, the figure and its measure word answer;
# the noun the question goes on with is its own ("第六届茅盾文学奖" -> "第六届"). "哪几种" asks
# for the things, not their number.
_COUNT_ASKED_ZH = re.compile(r"(?<!哪)(?:几|多少)")


def _counted_noun_zh(span: str, question: str) -> int:
    """How many characters to cut off the end of a Chinese ``span``: the noun the question
    names right after asking how many, kept by CMRC's answers in 13 of 119 questions outside the
    bar's sample (units such as "公里" stay: they are read as the figure's unit)."""
    match = _COUNT_ASKED_ZH.search(question)
    if match is None:
        return 0
    unit = UNIT_AFTER_ZH.match(question, match.end())
    # a measure word the unit list lacks ("第几代站房") is still one: the noun starts after it
    after = unit.end() if unit else match.end() + 1
    noun = re.match(r"[\u4e00-\u9fff]{2,}", question[after:])
    if noun is None or not span.endswith(noun.group()):
        return 0
    kept = span[: -len(noun.group())]
    if not _HAS_FIGURE.search(kept):
        return 0
    return len(noun.group())


_TITLE_BEFORE_MAX = 10  # characters before a title that may be cut
_FRAMED_TITLE = re.compile(rf"([^《》]{{1,{_TITLE_BEFORE_MAX}}})(《[^《》]+》)")


def _before_title_zh(span: str) -> int:
    """How many characters to cut off the start of a Chinese ``span`` that ends with a title in
    《》: its author or kind ("古龙的《九月鹰飞》", "好莱坞电影《我与艺妓》") is not the title, and
    109 of 115 of CMRC's answers holding a title (outside the bar's sample) start with it."""
    match = _FRAMED_TITLE.fullmatch(span)
    if match is None or not any(has_cjk(ch) for ch in match.group(1)):
        return 0
    return len(match.group(1))


# --- making a span whole ------------------------------------------------------------------------

_BRACKETS = {"(": ")", "（": "）", "[": "]", "【": "】"}


def unclosed_bracket(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A span that opens a bracket it does not close ends before it: "American Sign Language
    (ASL" -> "American Sign Language"."""
    span = text[start:end]
    for opening, closing in _BRACKETS.items():
        at = span.rfind(opening)
        if at > 0 and closing not in span[at:]:
            cut = start + len(span[:at].rstrip(" ，,、"))
            return (start, cut) if cut > start else None
    return None


# Capitalised words that open sentences and clauses rather than names.
_NOT_NAMES = frozenset(
    """The A An In On At By For From With And Or But After Before During When While Since As If
    Its His Her Their Our My Your This That These Those It He She They We You I There Here
    Although Though However Because Despite Following Under Over Between Among Of To Into
    Then Thus Also Both Each Every Some Many Most Other Such What Which Who Where Why How""".split()
)
_NAME_WORD = re.compile(r"(?:[A-Z][\w'’\-]*[\w]|[A-Z]|[A-Z]\.)$")
_ROMAN = re.compile(r"[IVXLC]+$")
# Titles before a person's name are not part of it: "Satya Nadella", not "Microsoft CEO Satya
# Nadella" (asked "What Microsoft CEO ...?", the title is the question's own words).
_TITLES = frozenset(
    """President CEO Chairman Chairwoman Director Minister Consul Ambassador Chancellor Secretary
    Governor Senator Mayor Commissioner Professor Dr Sir Lord Lady King Queen Prince Princess
    Emperor Empress Pope Bishop Cardinal Judge Justice General Colonel Captain Premier""".split()
)


def _is_name_word(word: str) -> bool:
    return bool(_NAME_WORD.match(word)) and word not in _NOT_NAMES and not word.endswith(("'s", "’s"))


def whole_name(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A span that is part of a run of capitalised words takes the whole run: "Manning" ->
    "Peyton Manning", "XXXIII" -> "Super Bowl XXXIII", "Academy" -> "Academy Award". Words that
    open sentences ("The", "After"), possessives ("Denver's") and a title before a name
    ("President", and what comes before it) are not taken."""
    span = text[start:end]
    if not span or has_cjk(span):
        return None
    new_start, new_end = start, end
    if span[0].isupper():
        while True:
            match = re.search(r"(\S+) $", text[max(0, new_start - 40) : new_start])
            if match is None or not _is_name_word(match.group(1)) or match.group(1) in _TITLES:
                break
            new_start -= len(match.group(1)) + 1
    last = span.split()[-1] if span.split() else ""
    if last[:1].isupper() and last[-1:].isalnum():
        while True:
            # the next word, without the punctuation after it ("Airport," ends the name)
            match = re.match(r" ([\w'’\-]*\w)(?=(\s|[,.;:!?)\]]|$))", text[new_end : new_end + 40])
            if match is None:
                break
            word = match.group(1)
            if not (_is_name_word(word) or _ROMAN.match(word)):
                break
            new_end += len(word) + 1
            if match.group(2) != " ":
                break
    return (new_start, new_end) if (new_start, new_end) != (start, end) else None


# One end of a range, and what joins it to the other.
_JOIN_ZH = "至到~～－—–-"
_JOIN_EN = r"\s*[-–—]\s*|\s+(?:to|until|till|through)\s+"
_JOIN_FIGURES_EN = _JOIN_EN + r"|\s+(?:and|or)\s+"  # "687 and 760 nm", "two or three"
_FIGURE_EN = re.compile(
    r"(?:\d[\w.,:/]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion)\b",
    re.IGNORECASE,
)
_FIGURE_ZH = "0-9０-９.．:：年月日号时点分秒半零〇一二三四五六七八九十百千万亿"
_HAS_FIGURE = re.compile(r"[0-9０-９零〇一二三四五六七八九十百千万亿]")
# Ranges of words are ranges of days or months ("Monday to Friday"); others are not ("from Paris
# to London" asked where the train goes).
_CALENDAR_EN = (
    r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|January|February|March|April|May|June|July|August|"
    r"September|October|November|December"
)
# Questions about one end of a span of time or numbers: the end they ask for is the answer.
_ONE_END = re.compile(
    r"\b(?:start|starts|started|begin|begins|began|begun|open|opened|opens|found|founded|establish\w*|"
    r"end|ends|ended|finish\w*|close|closed|first|last|earliest|latest|since|born|died|minimum|maximum|"
    r"least|most|lowest|highest)\b|开始|起始|始于|始建|成立|创办|结束|截止|终止|最早|最晚|最后|最初|"
    r"第一|最低|最高|最少|最多|起点|终点|出生|逝世",
    re.IGNORECASE,
)


def _other_end_zh(text: str, at: int, span: str, before: bool) -> int | None:
    """Where the other end of a Chinese range starts (``before``) or ends, the join being at
    ``at``; ``None`` when the other side is not the same kind of thing as ``span``."""
    if _HAS_FIGURE.search(span):
        pattern = re.compile(f"[{_FIGURE_ZH}]+$" if before else f"^[{_FIGURE_ZH}]+")
        piece = text[max(0, at - 20) : at] if before else text[at : at + 20]
        match = pattern.search(piece)
        if match is None or not _HAS_FIGURE.search(match.group()):
            return None
        return at - len(match.group()) if before else at + len(match.group())
    # Not a figure: the other end looks like it (as long, the same first or last character):
    # "中元古代到新元古代", "周一至周五".
    if before and at < len(span):
        return None
    other = text[at - len(span) : at] if before else text[at : at + len(span)]
    if len(other) != len(span) or not all(has_cjk(ch) or ch.isalnum() for ch in other):
        return None
    if other[0] != span[0] and other[-1] != span[-1]:
        return None
    return at - len(span) if before else at + len(span)


def whole_range(text: str, start: int, end: int, question: str) -> tuple[int, int] | None:
    """A span that is one end of a range takes the range, unless the question asks for one
    end of it: "1939" -> "1870 to 1939", "12公尺" -> "0至12公尺", "新元古代" -> "中元古代到新元古代"."""
    span = text[start:end]
    if not span or _ONE_END.search(question):
        return None
    if has_cjk(span) or has_cjk(text[max(0, start - 1) : start]) or has_cjk(text[end : end + 1]):
        if start > 0 and text[start - 1] in _JOIN_ZH and not _is_hyphen_word(text, start - 1):
            other = _other_end_zh(text, start - 1, span, before=True)
            if other is not None:
                return other, end
        if end < len(text) and text[end] in _JOIN_ZH and not _is_hyphen_word(text, end):
            other = _other_end_zh(text, end + 1, span, before=False)
            if other is not None:
                return start, other
        return None
    figure = bool(_FIGURE_EN.match(span))
    word = f"(?i:{_FIGURE_EN.pattern})" if figure else _CALENDAR_EN
    join = _JOIN_FIGURES_EN if figure else _JOIN_EN
    if not figure and not re.fullmatch(_CALENDAR_EN, span):
        return None
    left = re.search(rf"(?:^|(?<=\s))({word})({join})$", text[max(0, start - 40) : start])
    if left is not None:
        return start - len(left.group(0)), end
    right = re.match(rf"({join})({word})(?![\w])", text[end : end + 40])
    if right is not None:
        return start, end + len(right.group(0).rstrip(".,"))
    return None


def _is_hyphen_word(text: str, at: int) -> bool:
    """A hyphen inside a word ("COVID-19") is no range."""
    return text[at] == "-" and at > 0 and text[at - 1].isalpha() and at + 1 < len(text) and text[at + 1].isdigit()


# A list item ends at punctuation and at the words that open or close a list.
_ITEM_BREAK = set("，,。；;：:（）()《》“”\"'！？!?\n\t 　[]【】")
_LIST_OPENERS = set("与和及或为是有如含括盖等在于对将把被从向称叫即")
_LAST_JOINS = ("以及", "和", "及", "与", "或")
_ONE_ITEM = re.compile(r"哪一|哪个|哪位|哪家|哪座|哪条|第几|其中|之一|最|首")
_MAX_ITEM = 20


def _item_before(text: str, at: int) -> int | None:
    """Where the list item ending at ``at`` starts, or ``None`` when there is none. The first
    item of a list starts after the verb or word that opens it ("涵盖[通信卫星]、…"); a title
    in 《》 is one item."""
    if at > 0 and text[at - 1] == "》":
        opened = text.rfind("《", max(0, at - 2 * _MAX_ITEM), at)
        return opened if opened >= 0 and "》" not in text[opened : at - 1] else None
    i = at
    while i > 0 and at - i < _MAX_ITEM and text[i - 1] not in _ITEM_BREAK and text[i - 1] != "、":
        i -= 1
    if at - i >= _MAX_ITEM:
        return None
    if i == 0 or text[i - 1] != "、":
        openers = [k for k in range(i, at) if text[k] in _LIST_OPENERS]
        if openers:
            i = openers[-1] + 1
    return i if i < at else None


def _item_after(text: str, at: int) -> int | None:
    """Where the list item starting at ``at`` ends, or ``None`` when there is none."""
    if text.startswith("《", at):
        closed = text.find("》", at, at + 2 * _MAX_ITEM)
        return closed + 1 if closed > 0 and "《" not in text[at + 1 : closed] else None
    i = at
    while i < len(text) and i - at < _MAX_ITEM and text[i] not in _ITEM_BREAK and text[i] not in "、等":
        i += 1
    return i if i > at and i - at < _MAX_ITEM else None


def whole_list(text: str, start: int, end: int, question: str) -> tuple[int, int] | None:
    """A Chinese span that is one item of a list written with 、 takes the whole list, unless
    the question asks for one of its items: "阎王角龙" -> "阎王角龙、黎明角龙、古角龙、辽宁角龙"."""
    if not has_cjk(text[start:end]) or _ONE_ITEM.search(question) or ASKS_AMOUNT.search(question):
        return None  # asked for one item, or how many ("5卷" is not "5卷、版4卷、文库版3卷")
    new_start, new_end = start, end
    items = [end - start]
    # The span may be the last item, after 和: "钹和[板]".
    join = next((j for j in _LAST_JOINS if text.endswith(j, 0, start)), None)
    if join is not None:
        item = _item_before(text, start - len(join))
        if item is not None and item > 0 and text[item - 1] == "、":
            items.append(start - len(join) - item)
            new_start = item
    while new_start > 1 and text[new_start - 1] == "、":
        item = _item_before(text, new_start - 1)
        if item is None:
            break
        items.append(new_start - 1 - item)
        new_start = item
    while new_end < len(text) and text[new_end] == "、":
        item = _item_after(text, new_end + 1)
        if item is None:
            break
        piece = text[new_end + 1 : item]
        joined = [(piece.find(j), j) for j in _LAST_JOINS if piece.find(j) > 0]
        if item < len(text) and text[item] == "、" or not joined:
            items.append(len(piece))
            new_end = item
            continue
        # The last item, after 和: "鼓、锣、钹和板四类型" ends about as long as the others.
        at, join = min(joined)
        items.append(at)
        new_end = min(item, new_end + 1 + at + len(join) + max(items))
        break
    if new_start == start and new_end == end:
        return None
    return new_start, new_end


_PAIR_JOINS = ("以及", "或者", "和", "及", "与", "或")
_PAIR_MAX = 12  # characters of the other item, at most
_PAIR_BREAK = _ITEM_BREAK | {"、"}


def _noun(flag: str) -> bool:
    return flag.startswith(("n", "vn", "eng")) or flag in {"j", "l", "m", "q", "t"}


def _item_words(words: list[tuple[str, str]], from_right: bool) -> int:
    """How many characters of ``words`` ((word, part of speech), nearest the join first) make
    one item: nouns, with the adjectives among them ("大前锋")."""
    taken = kept = 0
    for word, flag in words:
        if word in _PAIR_JOINS or not (_noun(flag) or flag in {"a", "b"}):
            break
        taken += len(word)
        if _noun(flag) or not from_right:
            kept = taken
    return kept


def whole_pair(text: str, start: int, end: int, question: str) -> tuple[int, int] | None:
    """A Chinese span joined by 和/及/或/与 to a noun beside it takes both, unless the question
    asks for one item or how many: "抗菌消炎药" in "可用作农药和抗菌消炎药" -> "农药和抗菌消炎药",
    "中锋" in "中锋或大前锋" -> "中锋或大前锋". The other item is the run of nouns next to
    the join (jieba's parts of speech), so the verb before it is not taken."""
    if not has_cjk(text[start:end]) or _ONE_ITEM.search(question) or ASKS_AMOUNT.search(question):
        return None
    join = next((j for j in _PAIR_JOINS if text.endswith(j, 0, start)), None)
    if join is not None:
        left = start - len(join)
        clause = left
        while clause > 0 and left - clause < _PAIR_MAX and text[clause - 1] not in _PAIR_BREAK:
            clause -= 1
        taken = _item_words(tagged_words(text[clause:left])[::-1], from_right=False)
        if taken:
            return left - taken, end
    join = next((j for j in _PAIR_JOINS if text.startswith(j, end)), None)
    if join is not None:
        right = end + len(join)
        clause = right
        while clause < len(text) and clause - right < _PAIR_MAX and text[clause] not in _PAIR_BREAK:
            clause += 1
        taken = _item_words(tagged_words(text[right:clause]), from_right=True)
        if taken:
            return start, right + taken
    return None


_MAX_CELL = 20  # characters


def line_around(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the line holding ``text[start:end]`` starts and ends (without its line break)."""
    line_end = text.find("\n", end)
    return text.rfind("\n", 0, start) + 1, len(text) if line_end < 0 else line_end


def whole_cell(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A span that is part of a table cell of one word takes the cell: "银针" -> "白毫银针" in
    "| 六月 | 白茶入门 | 白毫银针 |". A cell of several words ("陈静 Chen Jing") is left to the
    other rules."""
    span = text[start:end]
    if not span or "|" in span or "\n" in span:
        return None
    line_start, line_end = line_around(text, start, end)
    left, right = text.rfind("|", line_start, start), text.find("|", end, line_end)
    if left < 0 or right < 0:
        return None
    cell = text[left + 1 : right]
    cell_start = left + 1 + (len(cell) - len(cell.lstrip()))
    cell_end = right - (len(cell) - len(cell.rstrip()))
    word = text[cell_start:cell_end]
    if (cell_start, cell_end) == (start, end) or len(word) > _MAX_CELL or re.search(r"[\s,，、;；:：()（）]", word):
        return None
    return cell_start, cell_end


_WEEKDAY_ZH = re.compile(r"[一二三四五六日天](?:[至到~～－—–-](?:周|星期|礼拜)?[一二三四五六日天])?")


def whole_weekday(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A Chinese day of the week read without its "周", "星期" or "礼拜" takes it: "一" in
    "每周一闭馆" is "周一", and "一至五" in "周一至五" is "周一至五"; "一" in "每周一次" is a count."""
    if not _WEEKDAY_ZH.fullmatch(text[start:end]) or UNIT_AFTER_ZH.match(text, end):
        return None
    for prefix in ("星期", "礼拜", "周"):
        if text.endswith(prefix, 0, start):
            return start - len(prefix), end
    return None


def whole_span(text: str, start: int, end: int, question: str) -> tuple[int, int, str] | None:
    """The span ``text[start:end]`` made whole (a bracket it opens cut off, then the whole name,
    range, list or pair it is part of), with what was done; ``None`` when it already is."""
    done = []
    for name, rule in (
        ("the whole table cell", lambda a, b: whole_cell(text, a, b)),
        ("an unclosed bracket cut off", lambda a, b: unclosed_bracket(text, a, b)),
        ("the whole name", lambda a, b: whole_name(text, a, b)),
        ("the whole day of the week", lambda a, b: whole_weekday(text, a, b)),
        ("the whole range", lambda a, b: whole_range(text, a, b, question)),
        ("the whole list", lambda a, b: whole_list(text, a, b, question)),
        ("both items", lambda a, b: whole_pair(text, a, b, question)),
    ):
        found = rule(start, end)
        if found is not None and found[0] < found[1]:
            start, end = found
            done.append(name)
    return (start, end, ", ".join(done)) if done else None
