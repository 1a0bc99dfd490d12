"""The router: does a question need more than one passage, and which kind of reasoning?

Rules, not a model: they cost microseconds, so a single-hop question pays nothing for the
check, and the kinds they recognise have a fixed shape in both languages:

- ``comparison``: "Who was born earlier, A or B?", "A和B哪个更早？" — one finding per entity,
  then the choice is made by code (dates and numbers compared, or which entity's passage
  states the attribute);
- ``both``: "Are A and B both keyboardists?", "A和B都是…吗？" — yes only if each entity's
  passage states it;
- ``arithmetic``: "How many years after A was B?", "A比B早多少年？" — the values are found
  by reading, the difference, sum or ratio is computed here;
- ``aggregation``: "What are the limits in London and Paris respectively?", "A和B分别是…？" —
  every part answered, each with its citation;
- ``contrast``: "A与B有哪些共同点和不同点？", "How do A and B differ in X?" — what the documents
  say of each, side by side;
- ``bridge`` (:func:`bridge_plan`): "Where was the author of X born?", "X的负责人在几楼办公？" —
  who or what the relation names, then the question about that.

:func:`route` and :func:`bridge_plan` return ``None`` for a question none of the shapes fits; the
stage may still take a second hop when the first one's short answer is not of the kind asked
(:meth:`rag.reasoning.stage.Reasoner.bridged`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.text.language import detect_language

KINDS = ("comparison", "both", "arithmetic", "aggregation", "contrast", "bridge")

# English comparatives, by what decides them: a time ("earlier"), a quantity ("larger").
_EARLY = "earlier earliest first older oldest before sooner".split()
_LATE = "later latest last younger youngest newer newest after recent".split()
_MORE = (
    "more most larger largest bigger biggest longer longest taller tallest higher highest greater "
    "greatest heavier heaviest wider widest deeper deepest faster fastest farther further"
).split()
_LESS = (
    "less least fewer fewest smaller smallest shorter shortest lower lowest lighter lightest narrower "
    "slower slowest closer closest cheaper cheapest"
).split()
# The verb a time comparison asks about; "born" and "founded" read as "When was A born?".
_EN_AUX = {"is", "was", "are", "were", "did", "does", "do", "has", "have", "had"}
_EN_WH = {"which", "who", "what", "whose", "whom"}

_ZH_EARLY = ("早", "先", "老", "久")
_ZH_LATE = ("晚", "后", "新")
_ZH_MORE = ("多", "大", "高", "长", "贵", "重", "远", "宽", "深", "快", "强")
_ZH_LESS = ("少", "小", "低", "短", "便宜", "轻", "近", "窄", "浅", "慢", "弱")

_EN_CHOICE = re.compile(
    r"^(?P<head>.*?\b(?:which|who|what|whose)\b.*?)\s*(?:[,:;]|\s[-–—]\s?)\s*(?P<a>[^,?]+?),?\s+or\s+(?P<b>[^,?]+?)\s*[?.]*\s*$",
    re.IGNORECASE,
)
_EN_CHOICE_TAIL = re.compile(  # "Which is older, A or B" without a comma: "Is A or B older?"
    r"^(?:is|was|are|were|did|does|do)\s+(?P<a>.+?)\s+or\s+(?P<b>.+?)\s+(?P<head>(?:the\s+)?\w+(?:\s+\w+)?)\s*\?\s*$",
    re.IGNORECASE,
)
_EN_BOTH = re.compile(
    r"^(?P<aux>are|were|is|was|do|did|does|have|had|has)\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)\s+"
    r"(?P<q>both|each|all|the same|of the same|from the same|in the same)\b\s*(?P<rest>.*?)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_BOTH_FIRST = re.compile(  # "Are both A and B American musicians?"
    r"^(?P<aux>are|were|do|did|have|had)\s+both\s+(?P<pair>.+?)\s*\?*\s*$", re.IGNORECASE
)
_EN_BOTH_WHAT = re.compile(  # "The LNW-80 and Amstrad PCW are both what kind of machine?"
    r"^(?:the\s+)?(?P<a>.+?)\s+and\s+(?:the\s+)?(?P<b>.+?)\s+(?:are|were)\s+both\s+(?P<rest>(?:what|which)\b.*?)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_SHARED = re.compile(  # "What occupation do A and B share?", "Where are A and B located?"
    r"^(?P<wh>what|which|where|when|in which)\b(?P<noun>.*?)\s+(?:are|were|do|did|is)\s+(?P<a>.+?)\s+and\s+"
    r"(?P<b>.+?)\s+(?P<verb>share|have in common|located|based|from|found)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_CONTRAST = re.compile(  # "What is the difference between A and B?", "How do A and B differ in X?"
    r"^(?:what\s+(?:is|are)\s+the\s+(?:main\s+|key\s+)?(?:differences?|similarities)\s+between\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)"
    r"|how\s+(?:do|does|did)\s+(?P<a2>.+?)\s+and\s+(?P<b2>.+?)\s+(?:differ|compare))"
    r"(?P<rest>\s+(?:in|on|for|regarding|when|as)\b.*?)?\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_BEFORE = re.compile(  # "Was the film X released before the comic book Y?"
    r"^(?P<aux>was|were|is|did|does)\s+(?P<a>.+?)\s+(?P<verb>\w+)\s+(?P<rel>before|after|earlier than|later than)\s+"
    r"(?P<b>.+?)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_ARITH = re.compile(
    r"\bhow\s+(?:many|much)\s+(?P<unit>years?|months?|days?|hours?|minutes?|\w+)?\s*"
    r"(?P<rel>after|before|between|apart|earlier|later|older|younger|more|less|fewer|longer|shorter|"
    r"higher|lower|larger|smaller|in total|combined|altogether|passed|elapsed)\b",
    re.IGNORECASE,
)
_EN_DIFF = re.compile(r"\b(?:difference|differ)\b", re.IGNORECASE)
_EN_TOTAL = re.compile(r"\b(?:in total|combined|altogether|total|sum)\b", re.IGNORECASE)
_EN_RATIO = re.compile(r"\bhow many times\b|\bratio\b", re.IGNORECASE)
_EN_RESPECTIVELY = re.compile(r"\brespectively\b|\beach of\b", re.IGNORECASE)
_EN_PAIR = re.compile(
    r"\b(?P<prep>between|of|for|in|at|by)\s+(?P<a>[^,?]+?)\s+and\s+(?P<b>[^,?]+?)(?:\s+respectively)?\s*\??\s*$",
    re.IGNORECASE,
)
_EN_THAN = re.compile(r"^(?P<pre>.*?)\b(?P<a>[A-Z][^,?]*?)\s+(?:\w+\s+){0,3}?than\s+(?P<b>[^,?]+?)\s*\??\s*$")

_ZH_SEP = r"(?:和|与|跟|及|、|还是)"
# Where the second entity ends: its attribute ("的…"), or the words that ask.
_ZH_ASK = (
    r"的|在|哪|谁|都|均|是不是|是否|分别|各(?:是|为|有|自)|相差|差|一共|总共|合计|加起来|总计|相同|一样|同一|一致|比较|相比|两者|二者"
    r"|[，,]|(?:更|较)|(?:谁|哪)"
)
_ZH_SECOND = re.compile(rf"(?P<b>[^，,？?]+?)(?=(?:{_ZH_ASK}))(?P<rest>.*)$")
_ZH_CONTRAST = re.compile(
    r"(?:共同|不同|相同|相似|共通|重合)(?:点|之处|性)|差异性|相似性|区别|差异|异同|差别|共同|不同|相似|对比|相比之下"
)


@dataclass
class _Pair:
    a: str
    b: str
    rest: str


def _zh_pair(question: str) -> _Pair | None:
    """The two things a Chinese question names: "A和B…" where A and B may hold 与/和 themselves
    ("数学与应用数学专业与数据计算及应用专业"): of the places the question could be split, one where
    both sides end alike ("…专业", "…专业") is taken, else the first."""
    candidates = []
    for sep in re.finditer(_ZH_SEP, question):
        a, after = question[: sep.start()], question[sep.end() :]
        second = _ZH_SECOND.match(after)
        if not a or not second or re.search(r"[，,比]", a):
            continue
        candidates.append(_Pair(a, second.group("b"), second.group("rest")))
    for pair in candidates:
        pair.b = _ZH_B_TAIL.sub("", pair.b) or pair.b
    for pair in candidates:  # both end alike: "…专业" and "…专业"
        if len(pair.a) >= 3 and len(pair.b) >= 3 and pair.b.endswith(pair.a[-2:]):
            return pair
    for pair in candidates:  # "软件工程专业培养" -> "软件工程专业" + "培养…"
        suffix = pair.a[-2:]
        if len(pair.a) >= 3 and len(pair.b) >= 3 and suffix in pair.b:
            cut = pair.b.rfind(suffix) + len(suffix)
            return _Pair(pair.a, pair.b[:cut], pair.b[cut:] + pair.rest)
    return candidates[0] if candidates else None


# Words that close the second name without being part of it ("…专业之间有", "…这两门学科").
_ZH_B_TAIL = re.compile(r"(?:这?两(?:门学科|个专业|个|门|者)|二者|之间|有)+$")
_ZH_ATTR_THAN = re.compile(
    r"^(?P<a>[^比，,]+?)的(?P<attr>[^比，,]+?)比(?P<b>[^，,？?]+?)(?:的(?P=attr))?"
    r"(?P<rest>(?:早|晚|多|少|高|低|大|小|长|短|贵|便宜|重|轻|远|近|快|慢).*)$"
)
_ZH_THAN = re.compile(
    r"^(?P<a>[^比，,]+?)比(?P<b>[^，,？?]+?)(?:的(?P<attr>[^，,？?]+?))?"
    r"(?P<rest>(?:早|晚|多|少|高|低|大|小|长|短|贵|便宜|重|轻|远|近|快|慢).*)$"
)
_ZH_WHICH = re.compile(r"哪一种|哪一个|哪个|哪一家|哪家|哪一位|哪位|哪座|哪部|哪本|哪种|哪所|哪款|哪条|哪一项|哪项|谁")
_ZH_ARITH = re.compile(
    r"(?:相差|差|早|晚|多|少|高|低|大|小|长|短|贵|便宜)(?:了)?(?:多少|几)|一共|总共|合计|加起来|总计|共(?:有|计)?多少|几倍|多少倍"
)
_ZH_SUM = re.compile(r"一共|总共|合计|加起来|总计|共")
_ZH_BOTH = re.compile(r"(?:都|均|全都)")
_ZH_SAME = re.compile(r"相同|一样|同一|一致")
_ZH_RESPECTIVELY = re.compile(r"分别|各(?:是|为|有|自)")
_ZH_COMPARATIVE = re.compile(
    r"(?:更|较|比较)?(?:早|晚|先|后|多|少|大|小|高|低|长|短|贵|便宜|重|轻|远|近|快|慢|新|老|久)(?:一些|一点)?$"
)


@dataclass
class Plan:
    """What the router found: the kind of reasoning and the parts it names."""

    kind: str  # one of KINDS
    entities: list[str] = field(default_factory=list)
    attribute: str = ""  # what is asked of each entity, in the question's words
    direction: str = ""  # comparison/arithmetic: "early", "late", "more", "less"
    operation: str = ""  # arithmetic: "difference", "sum", "ratio"
    sub_questions: list[str] = field(default_factory=list)  # one per entity
    language: str = "en"
    context: str = ""  # words that place the question ("在城东社区图书馆，"), for search

    def to_dict(self) -> dict:
        """The plan as plain data (lists and strings), as an answer's trace records it."""
        return {
            "kind": self.kind,
            "entities": list(self.entities),
            "attribute": self.attribute,
            "direction": self.direction,
            "operation": self.operation,
            "sub_questions": list(self.sub_questions),
            "context": self.context,
        }


def route(question: str, language: str | None = None) -> Plan | None:
    """The plan for a question that names two or more things to compare, combine or list;
    ``None`` for any other (which may still turn out to need a bridge hop)."""
    question = " ".join((question or "").split())
    if not question:
        return None
    language = language or detect_language(question)
    plan = _route_zh(question) if language == "zh" else _route_en(question)
    if plan is None:
        return None
    plan.language = language
    plan.entities = [e for e in (_clean_entity(e, language) for e in plan.entities) if e]
    if len(plan.entities) < 2 or len({e.lower() for e in plan.entities}) < len(plan.entities):
        return None
    plan.sub_questions = [sub_question(plan, e) for e in plan.entities]
    return plan


# -- English -----------------------------------------------------------------------------------


def _direction_en(words: list[str]) -> str:
    lowered = [w.lower() for w in words]
    for word in lowered:
        if word in _EARLY:
            return "early"
        if word in _LATE:
            return "late"
    for word in lowered:
        if word in _MORE:
            return "more"
        if word in _LESS:
            return "less"
    return ""


def _route_en(question: str) -> Plan | None:
    contrast = _EN_CONTRAST.match(question)
    if contrast and not _EN_ARITH.search(question):
        return Plan(
            "contrast",
            [contrast.group("a") or contrast.group("a2"), contrast.group("b") or contrast.group("b2")],
            attribute=_attribute_en(contrast.group("rest") or ""),
        )
    arithmetic = _EN_ARITH.search(question) or _EN_DIFF.search(question) or _EN_RATIO.search(question)
    if arithmetic:
        pair = _EN_PAIR.search(question) or _EN_THAN.search(question)
        if pair:
            operation = "ratio" if _EN_RATIO.search(question) else "sum" if _EN_TOTAL.search(question) else "difference"
            head = question[: pair.start("a")]
            return Plan(
                "arithmetic",
                [pair.group("a"), pair.group("b")],
                attribute=_attribute_en(head),
                operation=operation,
                direction=_direction_en(head.split()),
            )
    match = _EN_BOTH_WHAT.match(question)
    if match:
        return Plan("both", [match.group("a"), match.group("b")], attribute=match.group("rest"), operation="common")
    match = _EN_SHARED.match(question)
    if match:
        wh, noun, verb = match.group("wh").lower(), match.group("noun").strip(), match.group("verb").lower()
        if wh == "where" or verb in ("located", "based", "from", "found"):
            attribute = f"where {verb}"
        else:
            attribute = f"{wh} {noun}".strip()
        return Plan("both", [match.group("a"), match.group("b")], attribute=attribute, operation="common")
    match = _EN_BOTH_FIRST.match(question)
    if match:
        split = _split_names_en(match.group("pair"))
        if split:
            return Plan("both", [split[0], split[1]], attribute=split[2], operation="all")
    match = _EN_BEFORE.match(question)
    if match:
        rel = match.group("rel").lower()
        return Plan(
            "comparison",
            [match.group("a"), match.group("b")],
            attribute=match.group("verb"),
            direction="early" if rel in ("before", "earlier than") else "late",
            operation="yes-no",
        )
    match = _EN_BOTH.match(question)
    if match:
        rest = match.group("rest")
        return Plan(
            "both",
            [match.group("a"), match.group("b")],
            attribute=rest,
            operation="same" if "same" in match.group("q").lower() else "all",
        )
    match = _EN_CHOICE.match(question) or _EN_CHOICE_TAIL.match(question)
    # Two things to choose from are names, a few words each; "Were the tapes restored ... or did
    # they lose ..." chooses between two statements, which is one question.
    if match and all(len(match.group(g).split()) <= 6 for g in ("a", "b")):
        head = match.group("head")
        return Plan(
            "comparison",
            [match.group("a"), match.group("b")],
            attribute=_attribute_en(head),
            direction=_direction_en(head.split()),
        )
    if _EN_RESPECTIVELY.search(question):
        pair = _EN_PAIR.search(question)
        if pair and "prep" in pair.groupdict():
            return Plan(
                "aggregation",
                [pair.group("a"), pair.group("b")],
                attribute=_attribute_en(question[: pair.start("prep")]),
                operation=pair.group("prep").lower(),
            )
    return None


_NAME_JOINERS = {"of", "the", "de", "van", "von", "da", "del", "la", "le", "and", "&"}


def _split_names_en(text: str) -> tuple[str, str, str] | None:
    """ "Joel Madden and Paul Baloff American punk rock singers" -> the two names and the rest:
    the second name is the run of capitalised words after "and" (a lower-case word ends it)."""
    first, sep, after = text.partition(" and ")
    if not sep or not first:
        return None
    words = after.split()
    end = 0
    while end < len(words) and (
        words[end][:1].isupper()
        or words[end][:1].isdigit()
        or (words[end].lower() in _NAME_JOINERS - {"and"} and end + 1 < len(words) and words[end + 1][:1].isupper())
    ):
        end += 1
    # A name is followed by what is asked; an adjective of nationality is capitalised too, so the
    # last capitalised word goes to the rest when it is followed by lower-case words.
    if end == len(words) or end == 0:
        return None
    if end >= 2 and words[end - 1].endswith(("an", "ish", "ese", "ic", "i")) and words[end][:1].islower():
        end -= 1
    return first, " ".join(words[:end]), " ".join(words[end:])


def _attribute_en(head: str) -> str:
    """The question's words about the attribute: no question word, auxiliary or comparative."""
    drop = (
        _EN_WH
        | _EN_AUX
        | set(_EARLY)
        | set(_LATE)
        | set(_MORE)
        | set(_LESS)
        | {
            "how",
            "many",
            "much",
            "the",
            "a",
            "an",
            "than",
            "respectively",
            "between",
            "of",
            "in",
            "there",
            "difference",
            "and",
            "or",
            "both",
            "each",
            "ratio",
            "times",
            "total",
            "combined",
            "altogether",
            "one",
        }
    )
    words = [w.strip(",.?:;") for w in head.split()]
    return " ".join(w for w in words if w and w.lower() not in drop)


def _sub_question_en(plan: Plan, entity: str) -> str:
    attribute = plan.attribute
    if plan.kind == "both":
        tail = attribute.strip() or "described"
        if plan.operation == "common":
            if tail.startswith("where "):  # "Where is A located?"
                return f"Where is {entity} {tail[6:]}?"
            return f"{tail[:1].upper()}{tail[1:]} is {entity}?"
        return f"Is {entity} {tail}?" if plan.operation == "all" else f"What is the {tail} of {entity}?"
    if plan.direction in ("early", "late") or re.search(r"\b(year|born|founded|date|when)\b", attribute, re.I):
        verb = attribute or "founded"
        return f"When was {entity} {verb}?"
    if plan.kind == "arithmetic" or plan.direction in ("more", "less"):
        return f"How many {attribute} {entity}?" if attribute else f"How many for {entity}?"
    if plan.kind == "contrast":
        return f"What is the {attribute} of {entity}?" if attribute else f"What is {entity}?"
    if plan.kind == "aggregation" and attribute:  # "What is the hotel limit in London?"
        prep = plan.operation if plan.operation != "between" else "of"
        if attribute.endswith("s") and not attribute.endswith("ss"):  # "the hotel limits" of each
            attribute = attribute[:-1]
        return f"What is the {attribute} {prep} {entity}?"
    return f"{attribute} {entity}?".strip() if attribute else f"What about {entity}?"


# -- Chinese -----------------------------------------------------------------------------------


def _direction_zh(text: str) -> str:
    """ "冲泡水温更高" -> "more": the comparative after 更/较, else the last one in the text."""
    marked = re.search(r"(?:更|较|比较)(早|晚|先|后|多|少|大|小|高|低|长|短|贵|便宜|重|轻|远|近|快|慢|新|老|久)", text)
    candidates = (
        [marked.group(1)]
        if marked
        else re.findall(r"早|晚|先|后|多|少|大|小|高|低|长|短|贵|便宜|重|轻|远|近|快|慢|新|老|久", text)[::-1]
    )
    for word in candidates:
        for words, direction in ((_ZH_EARLY, "early"), (_ZH_LATE, "late"), (_ZH_MORE, "more"), (_ZH_LESS, "less")):
            if word in words:
                return direction
    return ""


def _route_zh(question: str) -> Plan | None:
    question = question.rstrip("？?。 ")
    if _ZH_ARITH.search(question):
        match = _ZH_ATTR_THAN.match(question) or _ZH_THAN.match(question)
        if match:
            rest = match.group("rest")
            return Plan(
                "arithmetic",
                [match.group("a"), match.group("b")],
                attribute=_attribute_zh(match.group("attr") or ""),
                operation="difference",
                direction=_direction_zh(rest[:1]),
            )
        pair = _zh_pair(question)
        if pair:
            rest = pair.rest
            operation = "ratio" if "倍" in rest else "sum" if _ZH_SUM.search(rest) else "difference"
            return Plan("arithmetic", [pair.a, pair.b], attribute=_attribute_zh(rest), operation=operation)
    pair = _zh_pair(question)
    if pair is None and "，" in question:
        # "在城东社区图书馆，纸质图书和电子书哪一种…": the clause before the comma is context.
        context, _, tail = question.partition("，")
        plan = _route_zh(tail)
        if plan is not None:
            plan.context = re.sub(r"^(?:在|按|根据|对于|关于)", "", context)
        return plan
    if pair is None:
        return None
    a, b, rest = pair.a, pair.b, pair.rest
    if _ZH_CONTRAST.search(rest):  # "A与B在培养方面有哪些共同点和不同点？"
        return Plan("contrast", [a, b], attribute=_contrast_attribute_zh(rest))
    which = _ZH_WHICH.search(rest)
    # "A和B哪个更早": a which-word and then a comparative; "A和谁商讨" is a question about A alone.
    if (which and re.search(r"更|较|最|先|早|晚|后", rest[which.end() :])) or re.match(r"^(?:比较|相比)", rest):
        attribute = _ZH_WHICH.sub(" ", rest)
        return Plan("comparison", [a, b], attribute=_attribute_zh(attribute), direction=_direction_zh(attribute))
    if _ZH_SAME.search(rest):
        return Plan("both", [a, b], attribute=_attribute_zh(_ZH_SAME.split(rest)[0]), operation="same")
    if re.match(r"(?:是不是|是否)", rest):  # "A和B是不是产于福建": yes only if each passage says so
        return Plan("both", [a, b], attribute=re.sub(r"^(?:是不是|是否)", "", rest), operation="all")
    if _ZH_BOTH.search(rest):
        head, tail = _ZH_BOTH.split(rest, maxsplit=1)
        if re.search(_ZH_SEP, head):
            return None  # "A与B和C都…": more than two things, which no plan here takes
        tail = re.sub(r"(?:吗|嘛|呢|(?<![什怎那这])么)$", "", tail)
        if re.search(r"什么|哪|谁|多少|几", tail):  # "A和B都指什么？": what both are, not yes/no
            return Plan("both", [a, b], attribute=tail, operation="common")
        return Plan("both", [a, b], attribute=tail, operation="all")
    if _ZH_RESPECTIVELY.search(rest):
        return Plan("aggregation", [a, b], attribute=_attribute_zh(_ZH_RESPECTIVELY.sub(" ", rest)))
    return None


def _contrast_attribute_zh(rest: str) -> str:
    """ "在人才培养方面有哪些共同点和不同点" -> "人才培养": what the two are compared in."""
    text = _ZH_CONTRAST.sub(" ", rest)
    text = re.sub(r"(?<=\s)(?:和|及|与)(?=\s)|之间|哪些|有何|何|分别|主要|独特|是什么|什么|有|都", " ", text)
    text = re.sub(r"^\s*在|(?:方面|上|中)\s*$", "", text.strip())
    text = re.sub(r"(?:方面|上|中)(?=\s|$)", "", text)
    return _attribute_zh(text)


def _attribute_zh(text: str) -> str:
    """The words about the attribute, without the comparative, the unit asked for ("多少度")
    or the question words."""
    text = re.sub(r"(?:多少|几)[\u4e00-\u9fff]?$", "", text)
    text = re.sub(r"(?:是不是|是否|相差|相比|比较|是|多少|几|什么|吗|呢|了|有|[，,、：:；;])", " ", text)
    words = []
    for word in re.split(r"[\s的]+", text):
        word = _ZH_COMPARATIVE.sub("", word)
        if word:
            words.append(word)
    return " ".join(words)


def _sub_question_zh(plan: Plan, entity: str) -> str:
    attribute = plan.attribute.replace(" ", "")
    if plan.kind == "contrast":
        return f"{entity}的{attribute}有什么特点？" if attribute else f"{entity}有什么特点？"
    if plan.kind == "both" and plan.operation == "all":
        return f"{entity}{attribute or '是什么'}吗？"
    if plan.kind == "both" and plan.operation == "common":
        return f"{entity}{plan.attribute.replace(' ', '')}？"
    if attribute.endswith(("于", "在", "自", "到")):  # "产于" -> "白毫银针产于哪里？"
        return f"{entity}{attribute}哪里？"
    if plan.direction in ("early", "late") and not attribute:
        return f"{entity}是什么时候的？"
    if plan.direction in ("early", "late") and not re.search("年|时间|日期|时候", attribute):
        return f"{entity}是什么时候{attribute}的？"
    return f"{entity}的{attribute}是多少？" if attribute else f"{entity}是什么？"


# -- both --------------------------------------------------------------------------------------


def sub_question(plan: Plan, entity: str) -> str:
    """The question one hop asks about one entity."""
    return _sub_question_zh(plan, entity) if plan.language == "zh" else _sub_question_en(plan, entity)


def _clean_entity(text: str, language: str) -> str:
    text = text.strip(" ,，、:：;；?？.。\"'“”‘’")
    if language == "zh":
        text = re.sub(r"^(?:请问|请|那么)", "", text)
        return text.strip()
    text = re.sub(r"^(?:the|both|either)\s+", "", text, flags=re.IGNORECASE)
    return text.strip()


# -- bridge: "the author of X" ----------------------------------------------------------------------

# Nouns that name one thing by its relation to another: "the author of X", "X的作者". The
# question is then asked in two hops: who or what that is, and the question about it.
_PERSON_ROLES = (
    "author writer founder co-founder creator director producer winner president ceo co-ceo chairman "
    "chairwoman owner composer singer star host captain coach manager father mother son daughter wife "
    "husband brother sister successor predecessor designer architect inventor publisher editor "
    "narrator leader mayor governor head member player actor actress champion builder"
).split()
_THING_ROLES = (
    "headquarters capital birthplace company team band school university city country developer "
    "manufacturer label studio network department"
).split()
_ROLE_WORDS = "|".join(sorted(_PERSON_ROLES + _THING_ROLES, key=len, reverse=True))
_EN_ROLE_OF = re.compile(
    rf"\bthe\s+(?P<role>(?:(?!(?:of|the|a|an|and|or|in|at|for)\b)[\w'’-]+\s+){{0,3}}?(?:{_ROLE_WORDS}))\s+"
    r"(?P<prep>of|for|behind)\s+"
    r"(?P<np>[^,?]+?)(?=\s+(?:born|located|based|founded|established|built|released|published|died|educated|"
    r"married|named|known|called|made|formed|opened|created|designed|written|directed|produced|situated|"
    r"headquartered)\b|\s+(?:who|which|that|where|when|whose)\b|[,?]|\s*$)",
    re.IGNORECASE,
)
_ZH_PERSON_ROLES = (
    "作者 创始人 创办人 导演 校长 院长 负责人 总经理 董事长 发明者 发明人 设计者 设计师 主编 主席 "
    "父亲 母亲 丈夫 妻子 儿子 女儿 老师 主管 经理 馆长 主任 部长"
).split()
_ZH_THING_ROLES = "首都 总部 所在地 出生地 部门 公司 学校 城市 国家 单位 机构".split()
_ZH_ROLE_OF = re.compile(
    rf"^(?P<np>[^，,？?]+?)的(?P<role>{'|'.join(sorted(_ZH_PERSON_ROLES + _ZH_THING_ROLES, key=len, reverse=True))})"
    r"(?P<rest>(?:是|在|于|出生|位于|叫|有|的|毕业|来自|成立|创办|办公|住).*)$"
)


# A relation at the end of the question after one of these is what the question asks for.
_ASKED_BY = {
    "be",
    "is",
    "was",
    "were",
    "are",
    "become",
    "became",
    "as",
    "named",
    "appointed",
    "elected",
    "hired",
    "called",
    "crowned",
}


@dataclass
class BridgePlan:
    """A question about something named only by its relation to another ("the author of X"):
    hop 1 asks what it is, hop 2 asks the question about what hop 1 found."""

    first_question: str  # "Who is the author of the Orion report?"
    query: str  # what hop 1 searches with
    phrase: str  # the words of the question that hop 1's finding replaces
    question: str  # the whole question
    language: str = "en"
    named: str = ""  # what the relation is of ("the Orion report")
    role: str = ""  # the relation ("author")

    def second_question(self, finding: str) -> str:
        """Hop 2's question: the whole question with its relation phrase replaced by hop 1's
        ``finding``."""
        return self.question.replace(self.phrase, finding, 1)


def bridge_plan(question: str, language: str | None = None) -> BridgePlan | None:
    """The two hops of a question that names something by its relation to another; ``None``
    for any other question."""
    question = " ".join((question or "").split())
    language = language or detect_language(question)
    if language == "zh":
        match = _ZH_ROLE_OF.match(question.rstrip("？?。"))
        if not match:
            return None
        np, role = match.group("np"), match.group("role")
        # "X的作者是谁？" asks for the relation itself: one hop.
        if len(np) < 2 or re.match(
            r"^(?:(?:是|为)(?:谁|什么|哪|多少|何)|在(?:哪|什么地方|何处)|叫什么|位于|是哪)", match.group("rest")
        ):
            return None
        ask = "谁" if role in _ZH_PERSON_ROLES else "什么"
        return BridgePlan(f"{np}的{role}是{ask}？", f"{np} {role}", f"{np}的{role}", question, "zh", np, role)
    match = _EN_ROLE_OF.search(question)
    if not match:
        return None
    role, np = match.group("role").strip(), match.group("np").strip()
    words = np.split()
    # What hop 1 looks up must be named: "the Orion report", "1995"; not "a company", "the film",
    # and not the question's own unknown ("the co-founder of what outlet").
    if (
        not any(w[:1].isupper() or w[:1].isdigit() for w in words)
        or words[0].lower() in ("a", "an")
        or any(w.lower() in ("what", "which", "who", "whom", "whose") for w in words)
    ):
        return None
    head = role.split()[-1]
    if head[:1].isupper():  # "the University of West Florida" is a name, not a relation
        return None
    ask = "Who" if head.lower() in _PERSON_ROLES else "What"
    phrase = question[match.start() : match.end()].strip()
    before = question[: match.start()].split()
    after = question[match.end() :].strip(" ?.!")
    # "Who was hired to be the director of X?" asks for the relation itself; "the nickname of
    # the winner of X" asks about what the relation names.
    if not after and before and before[-1].lower() in _ASKED_BY:
        return None
    rest = question.replace(phrase, " ", 1)
    # "Who is the author of X?" asks for the relation itself: one hop.
    if len([w for w in re.findall(r"[\w'’-]+", rest) if w.lower() not in _EN_WH | _EN_AUX | {"the", "name", "of"}]) < 1:
        return None
    return BridgePlan(
        f"{ask} is the {role} {match.group('prep')} {np}?", f"{role} {np}", phrase, question, "en", np, role
    )


def inner_bridge(plan: BridgePlan) -> BridgePlan | None:
    """The relation inside a relation: for "Who is the wife of the author of X?", the plan
    of "the author of X" (whose finding then stands in for it). English only: in Chinese the
    inner relation comes first ("X的作者的妻子"), and the question that follows is planned again."""
    if plan.language != "en" or not plan.named:
        return None
    match = _EN_ROLE_OF.search(plan.named)
    if not match or match.start() > 4:  # "the author of X" must be the whole of it
        return None
    role, np = match.group("role").strip(), match.group("np").strip()
    if not any(w[:1].isupper() or w[:1].isdigit() for w in np.split()) or role.split()[-1][:1].isupper():
        return None
    ask = "Who" if role.split()[-1].lower() in _PERSON_ROLES else "What"
    phrase = plan.named[match.start() : match.end()].strip()
    return BridgePlan(
        f"{ask} is the {role} {match.group('prep')} {np}?", f"{role} {np}", phrase, plan.first_question, "en", np, role
    )
